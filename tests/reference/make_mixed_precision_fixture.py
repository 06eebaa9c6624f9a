#!/usr/bin/env python3
"""A bf16 mixed-precision training step of the tiny BERT fixture as PyTorch's AMP takes it:
the model in float32 (the master weights), forward under torch.autocast("cpu", bfloat16)
(linear and matmul in bf16; eager attention, whose softmax runs in float32), the
cross-entropy in float32 on the golden batch of golden/bert.safetensors (made by
make_fixtures.py), backward to float32 gradients. Writes golden/bert-bf16.safetensors with the
logits, the loss and every parameter's gradient, and prints how far bf16 moved them from the
float32 step, the scale Hone's bf16 check is judged against.

Usage: python make_mixed_precision_fixture.py --fixtures tests/fixtures
"""
import argparse
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import BertForSequenceClassification


def step(model, inputs, labels, autocast):
    model.zero_grad(set_to_none=True)
    with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
        logits = model(**inputs).logits
    loss = torch.nn.functional.cross_entropy(logits.float(), labels)
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in model.named_parameters()}
    return logits.detach().float(), loss.detach().float(), grads


def rel(a, b, floor=1e-12):
    return ((a - b).abs().max() / b.abs().max().clamp_min(floor)).item()


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    golden = os.path.join(args.fixtures, "golden")
    base = load_file(os.path.join(golden, "bert.safetensors"))
    model = BertForSequenceClassification.from_pretrained(
        os.path.join(args.fixtures, "tiny-bert"), dtype=torch.float32,
        attn_implementation="eager").eval()
    inputs = {k[len("input."):]: v for k, v in base.items() if k.startswith("input.")}
    labels = base["labels"]
    logits, loss, grads = step(model, inputs, labels, True)
    f_logits, f_loss, f_grads = step(model, inputs, labels, False)
    tensors = {k: v for k, v in base.items() if k.startswith(("input.", "labels"))}
    tensors["logits"] = logits.contiguous()
    tensors["loss"] = loss.reshape(1)
    for name, g in grads.items():
        tensors[f"grad.{name}"] = g.float().contiguous()
    path = os.path.join(golden, "bert-bf16.safetensors")
    save_file(tensors, path)
    os.chmod(path, 0o644)
    # Against a floor of 1e-3 × the largest gradient, as the Rust checks (attention key biases'
    # gradients are exactly zero in exact arithmetic).
    floor = 1e-3 * max(g.abs().max().item() for g in f_grads.values())
    worst = max(rel(grads[n], f_grads[n], floor) for n in grads)
    print(f"wrote golden/bert-bf16.safetensors: loss {loss.item():.6f} (fp32 {f_loss.item():.6f}); "
          f"bf16 moved the logits by {rel(logits, f_logits):.2e}, the gradients by up to {worst:.2e}")


if __name__ == "__main__":
    main()
