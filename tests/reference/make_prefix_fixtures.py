#!/usr/bin/env python3
"""Builds the prefix-tuning fixtures Hone's engine is checked against, with PEFT itself.

PEFT's PREFIX_TUNING (CAUSAL_LM, 3 virtual tokens, no projection) on tests/fixtures/tiny-llama
(4 query heads sharing 2 key/value heads, llama3 rope scaling): the prefix is given seeded
random values, saved with `save_pretrained` into tests/fixtures/prefix-llama (base
`../tiny-llama`), reloaded the way a user would
(`PeftModel.from_pretrained` on the base in float64; PEFT loads a saved prefix for inference
only, so its table is made to take a gradient), and golden/llama-prefix.safetensors gets that batch of
golden/llama.safetensors (make_llama_fixtures.py), and on it the logits of the real tokens, the loss and
the gradient of the prefix (`grad.prompt_embeddings`, `[tokens × layers·2·kv hidden]`).

Then the reparameterised prefix (prefix_projection, an MLP of 12 hidden units, 3 virtual tokens):
PEFT cannot save its MLP (a saved prefix is the MLP's output), so
golden/llama-prefix-mlp.safetensors holds the MLP's seeded values under Hone's names
(`param.prefix_encoder.…`) beside the logits, loss and the gradient of each of them, computed
in float64 by PEFT on the same batch.

Run after make_llama_fixtures.py. Usage: python make_prefix_fixtures.py --fixtures tests/fixtures
"""
import argparse
import json
import os

import torch
from peft import PeftModel, PrefixTuningConfig, get_peft_model
from safetensors.torch import load_file, save_file
from transformers import LlamaForCausalLM

TOKENS = 3


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    golden_dir = os.path.join(args.fixtures, "golden")
    base_dir = os.path.join(args.fixtures, "tiny-llama")
    out = os.path.join(args.fixtures, "prefix-llama")
    torch.manual_seed(50)
    model = LlamaForCausalLM.from_pretrained(base_dir)
    peft_model = get_peft_model(model, PrefixTuningConfig(task_type="CAUSAL_LM",
                                                          num_virtual_tokens=TOKENS))
    with torch.no_grad():
        for _, p in peft_model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.5)
    peft_model.save_pretrained(out)
    cfg_path = os.path.join(out, "adapter_config.json")
    saved = json.load(open(cfg_path))
    saved["base_model_name_or_path"] = "../tiny-llama"
    json.dump(saved, open(cfg_path, "w"), indent=2, sort_keys=True)

    base = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    # PEFT loads a saved prefix for inference only; its table takes a gradient all the same.
    reloaded = PeftModel.from_pretrained(base, out).eval()
    reloaded.prompt_encoder["default"].embedding.weight.requires_grad_(True)
    batch = load_file(os.path.join(golden_dir, "llama.safetensors"))
    ids, mask = batch["input.input_ids"], batch["input.attention_mask"]
    hone_labels = batch["labels"].reshape(ids.shape)
    result = reloaded(input_ids=ids, attention_mask=mask)
    rows = [int(mask[r].sum()) for r in range(ids.shape[0])]
    logits = torch.cat([result.logits[r, :n] for r, n in enumerate(rows)])
    flat = torch.cat([hone_labels[r, :n] for r, n in enumerate(rows)])
    loss = torch.nn.functional.cross_entropy(logits, flat, ignore_index=-100)
    loss.backward()
    (name, param), = [(n, p) for n, p in reloaded.named_parameters() if p.requires_grad]
    assert name.endswith("embedding.weight"), name
    save_file({
        "input.input_ids": ids.contiguous(),
        "input.attention_mask": mask.contiguous(),
        "labels": batch["labels"].contiguous(),
        "logits": logits.detach().float().contiguous(),
        "loss": loss.detach().float().reshape(1),
        "grad.prompt_embeddings": param.grad.float().contiguous(),
    }, os.path.join(golden_dir, "llama-prefix.safetensors"))
    print("prefix-llama: loss", float(loss), "prefix", tuple(param.shape))

    # The reparameterised prefix.
    torch.manual_seed(51)
    base = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    mlp = get_peft_model(base, PrefixTuningConfig(
        task_type="CAUSAL_LM", num_virtual_tokens=TOKENS, prefix_projection=True,
        encoder_hidden_size=12))
    mlp.prompt_encoder.double()
    with torch.no_grad():
        for _, p in mlp.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.3)
    mlp.eval()
    result = mlp(input_ids=ids, attention_mask=mask)
    logits = torch.cat([result.logits[r, :n] for r, n in enumerate(rows)])
    loss = torch.nn.functional.cross_entropy(logits, flat, ignore_index=-100)
    loss.backward()
    tensors = {
        "input.input_ids": ids.contiguous(),
        "input.attention_mask": mask.contiguous(),
        "labels": batch["labels"].contiguous(),
        "logits": logits.detach().float().contiguous(),
        "loss": loss.detach().float().reshape(1),
    }
    for name, p in mlp.named_parameters():
        if p.requires_grad:
            hone = "prefix_encoder." + name.split("prompt_encoder.default.", 1)[1]
            tensors[f"param.{hone}"] = p.detach().float().contiguous()
            tensors[f"grad.{hone}"] = p.grad.float().contiguous()
    save_file(tensors, os.path.join(golden_dir, "llama-prefix-mlp.safetensors"))
    print("prefix MLP: loss", float(loss), sorted(k for k in tensors if k.startswith("grad.")))


if __name__ == "__main__":
    main()
