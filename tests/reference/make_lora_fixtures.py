#!/usr/bin/env python3
"""Builds the LoRA fixtures Hone's engine is checked against, with PEFT itself.

For each tiny model in tests/fixtures (BERT, DistilBERT, RoBERTa sequence classifiers, 3
labels) it wraps the model with `peft.get_peft_model` (LoRA, SEQ_CLS, a different setting per
family: targets, rank, alpha, rsLoRA), gives every adapter matrix and the saved head seeded
random values (PEFT starts B at zero, which would leave A without a gradient), and saves the
adapter with `save_pretrained` into tests/fixtures/lora-{family}/ (base_model_name_or_path
pointing at ../tiny-{family}). It then reloads that folder the way a user would
(`PeftModel.from_pretrained` on the base loaded in float64, trainable) and writes
tests/fixtures/golden/{family}-lora.safetensors: on the golden batch of
{family}.safetensors, in eval mode, the logits, the cross-entropy loss and the gradient of
every trained parameter under Hone's names (`…query.lora_A.weight`, `classifier.weight`), and
`{family}-lora.json` with the settings and the tensor names PEFT saved.

Usage: python make_lora_fixtures.py --fixtures tests/fixtures
"""
import argparse
import json
import os
import re

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors import safe_open
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification

SETTINGS = {
    "bert": dict(r=4, lora_alpha=8, target_modules=["query", "value"], use_rslora=False),
    "distilbert": dict(r=3, lora_alpha=5, target_modules=["q_lin", "v_lin", "lin1"], use_rslora=True),
    "roberta": dict(r=2, lora_alpha=4, target_modules=["query", "key", "intermediate.dense"], use_rslora=False),
}


def hone_name(peft_name):
    """PEFT's parameter name → Hone's (and the adapter file's, without base_model.model.)."""
    name = peft_name.removeprefix("base_model.model.")
    name = name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")
    name = name.replace(".modules_to_save.default.", ".")
    return name


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    golden_dir = os.path.join(args.fixtures, "golden")
    for i, (family, settings) in enumerate(SETTINGS.items()):
        base_dir = os.path.join(args.fixtures, f"tiny-{family}")
        out = os.path.join(args.fixtures, f"lora-{family}")
        torch.manual_seed(100 + i)
        model = AutoModelForSequenceClassification.from_pretrained(base_dir)
        config = LoraConfig(task_type="SEQ_CLS", lora_dropout=0.0, **settings)
        peft_model = get_peft_model(model, config)
        with torch.no_grad():
            for name, p in peft_model.named_parameters():
                if p.requires_grad:
                    p.copy_(torch.randn_like(p) * 0.2)
        peft_model.save_pretrained(out)
        # A path relative to the adapter folder, so the fixture works from any checkout.
        cfg_path = os.path.join(out, "adapter_config.json")
        saved_cfg = json.load(open(cfg_path))
        saved_cfg["base_model_name_or_path"] = f"../tiny-{family}"
        json.dump(saved_cfg, open(cfg_path, "w"), indent=2, sort_keys=True)
        with safe_open(os.path.join(out, "adapter_model.safetensors"), "pt") as f:
            saved_names = sorted(f.keys())

        base = AutoModelForSequenceClassification.from_pretrained(base_dir, torch_dtype=torch.float64)
        reloaded = PeftModel.from_pretrained(base, out, is_trainable=True)
        reloaded.eval()
        batch = load_file(os.path.join(golden_dir, f"{family}.safetensors"))
        inputs = {
            "input_ids": batch["input.input_ids"],
            "attention_mask": batch["input.attention_mask"],
        }
        if "input.token_type_ids" in batch:
            inputs["token_type_ids"] = batch["input.token_type_ids"]
        result = reloaded(**inputs, labels=batch["labels"])
        result.loss.backward()
        tensors = {
            "logits": result.logits.detach().float().contiguous(),
            "loss": result.loss.detach().float().reshape(1),
        }
        trained = []
        for name, p in reloaded.named_parameters():
            if not p.requires_grad:
                continue
            hone = hone_name(name)
            trained.append(hone)
            tensors[f"grad.{hone}"] = p.grad.detach().float().contiguous()
        save_file(tensors, os.path.join(golden_dir, f"{family}-lora.safetensors"))
        meta = {
            "settings": settings,
            "trained": sorted(trained),
            "adapter_tensors": saved_names,
            "peft_version": __import__("peft").__version__,
        }
        json.dump(meta, open(os.path.join(golden_dir, f"{family}-lora.json"), "w"), indent=2)
        print(family, "loss", float(result.loss), "trained", len(trained), "saved", len(saved_names))


if __name__ == "__main__":
    main()
