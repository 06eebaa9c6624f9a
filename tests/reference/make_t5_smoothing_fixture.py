#!/usr/bin/env python3
"""The label-smoothed loss of transformers' Trainer (`LabelSmoother`, epsilon 0.1, what
`label_smoothing_factor=0.1` trains with) and every parameter's gradient of it, for the tiny
T5 v1.1 fixture (tests/fixtures/tiny-t5-v1_1: untied head, gated-GELU) on the batch of
golden/t5-v1_1.safetensors (made by make_t5_fixtures.py), in float64. Writes
golden/t5-v1_1-smoothed.safetensors with the same inputs, the logits, the smoothed loss and
the gradients, and checks LabelSmoother against torch's cross_entropy(label_smoothing=0.1).

Usage: python make_t5_smoothing_fixture.py --fixtures tests/fixtures
"""
import argparse
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import T5ForConditionalGeneration
from transformers.trainer_pt_utils import LabelSmoother

EPSILON = 0.1


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    golden = os.path.join(args.fixtures, "golden")
    base = load_file(os.path.join(golden, "t5-v1_1.safetensors"))
    model = T5ForConditionalGeneration.from_pretrained(
        os.path.join(args.fixtures, "tiny-t5-v1_1"), dtype=torch.float64).eval()
    n = base["input.input_ids"].shape[0]
    labels = base["labels"].reshape(n, -1)
    dec_mask = base["decoder.attention_mask"]
    out = model(input_ids=base["input.input_ids"], attention_mask=base["input.attention_mask"],
                decoder_input_ids=base["decoder.input_ids"], decoder_attention_mask=dec_mask)
    # Seq2seq labels are not shifted: the Trainer passes shift_labels=False for them.
    loss = LabelSmoother(epsilon=EPSILON)({"logits": out.logits}, labels)
    flat = out.logits.reshape(-1, out.logits.shape[-1])
    torch_loss = torch.nn.functional.cross_entropy(flat, labels.reshape(-1),
                                                   label_smoothing=EPSILON)
    # LabelSmoother sums the smoothing term in float32: equal to about 1e-7.
    assert abs(loss.item() - torch_loss.item()) < 1e-6 * loss.item(), (loss, torch_loss)
    loss.backward()
    keep = dec_mask.reshape(-1).bool()
    tensors = {k: v for k, v in base.items() if k.startswith(("input.", "decoder.", "labels"))}
    tensors["logits"] = flat[keep].detach().float().contiguous()
    tensors["loss"] = loss.detach().float().reshape(1)
    tensors["epsilon"] = torch.tensor([EPSILON], dtype=torch.float32)
    for name, p in model.named_parameters():
        if p.grad is not None:
            tensors[f"grad.{name}"] = p.grad.float().contiguous()
    save_file(tensors, os.path.join(golden, "t5-v1_1-smoothed.safetensors"))
    print(f"wrote golden/t5-v1_1-smoothed.safetensors: smoothed loss {loss.item():.6f}, "
          f"plain {base['loss'].item():.6f}")


if __name__ == "__main__":
    main()
