#!/usr/bin/env python3
"""Builds the bottleneck-adapter fixtures Hone's engine is checked against, in PyTorch.

A bottleneck adapter (Houlsby et al. 2019; placed as AdapterHub's `adapters` library places
it) maps a layer's projection output h, after its dropout and before the residual sum and
LayerNorm, to h + up(act(down(h))). Here the adapters are added to transformers' own modules
with forward hooks, so the reference is transformers' BERT, DistilBERT and RoBERTa code plus the
adapter formula and nothing else:

  * BERT / RoBERTa: on the output of `attention.output.dropout` (Houlsby only) and of
    `output.dropout`;
  * DistilBERT: on the output of `attention.out_lin` (DistilBERT has no dropout there; Houlsby
    only) and of `ffn.dropout`.

For each tiny model (3-label sequence classifiers in tests/fixtures) it draws seeded adapter
weights (a different size, placement and activation per family), writes the adapter folder in
Hone's format to tests/fixtures/adapter-{family}/ (hone_adapter.json, adapter_model.safetensors
with `base_model.model.` names: the adapters `<module>.adapter.{down,up}.{weight,bias}` after
the module they follow, and the classifier), and, in float64 and eval mode on the golden batch
of {family}.safetensors, writes tests/fixtures/golden/{family}-adapter.safetensors: the logits,
the loss and the gradient of every trained tensor (adapters and classifier modules).

Usage: python make_adapter_fixtures.py --fixtures tests/fixtures
"""
import argparse
import json
import os

import torch
from safetensors.torch import load_file, save_file
from transformers import AutoModelForSequenceClassification

SETTINGS = {
    "bert": dict(size=6, placement="houlsby", activation="relu"),
    "distilbert": dict(size=5, placement="houlsby", activation="gelu"),
    "roberta": dict(size=4, placement="pfeiffer", activation="silu"),
}
ACTIVATIONS = {"relu": torch.relu, "gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu}


def sites(family, model, placement):
    """(hooked module, Hone's module name the adapter follows) per adapter."""
    out = []
    if family == "distilbert":
        for i, layer in enumerate(model.distilbert.transformer.layer):
            base = f"distilbert.transformer.layer.{i}"
            if placement == "houlsby":
                out.append((layer.attention.out_lin, f"{base}.attention.out_lin"))
            out.append((layer.ffn.dropout, f"{base}.ffn.lin2"))
    else:
        encoder = getattr(model, family).encoder
        for i, layer in enumerate(encoder.layer):
            base = f"{family}.encoder.layer.{i}"
            if placement == "houlsby":
                out.append((layer.attention.output.dropout, f"{base}.attention.output.dense"))
            out.append((layer.output.dropout, f"{base}.output.dense"))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    golden_dir = os.path.join(args.fixtures, "golden")
    for i, (family, settings) in enumerate(SETTINGS.items()):
        base_dir = os.path.join(args.fixtures, f"tiny-{family}")
        out = os.path.join(args.fixtures, f"adapter-{family}")
        os.makedirs(out, exist_ok=True)
        torch.manual_seed(200 + i)
        model = AutoModelForSequenceClassification.from_pretrained(base_dir, torch_dtype=torch.float64).eval()
        for p in model.parameters():
            p.requires_grad_(False)
        act = ACTIVATIONS[settings["activation"]]
        hidden = model.config.hidden_size if family != "distilbert" else model.config.dim
        trained = {}

        def adapter_hook(names):
            def hook(_module, _inputs, output):
                h = output
                down = h @ trained[names[0]].T + trained[names[1]]
                return h + act(down) @ trained[names[2]].T + trained[names[3]]
            return hook

        for module, name in sites(family, model, settings["placement"]):
            names = [f"{name}.adapter.down.weight", f"{name}.adapter.down.bias",
                     f"{name}.adapter.up.weight", f"{name}.adapter.up.bias"]
            shapes = [(settings["size"], hidden), (settings["size"],), (hidden, settings["size"]), (hidden,)]
            for n, shape in zip(names, shapes):
                # Rounded through float32: the saved fixture is what Hone reads.
                trained[n] = (torch.randn(shape, dtype=torch.float64) * 0.3).float().double().requires_grad_(True)
            module.register_forward_hook(adapter_hook(names))
        for name, p in model.named_parameters():
            if name.startswith("classifier") or name.startswith("pre_classifier"):
                p.requires_grad_(True)
                trained[name] = p

        batch = load_file(os.path.join(golden_dir, f"{family}.safetensors"))
        inputs = {"input_ids": batch["input.input_ids"], "attention_mask": batch["input.attention_mask"]}
        if "input.token_type_ids" in batch:
            inputs["token_type_ids"] = batch["input.token_type_ids"]
        result = model(**inputs, labels=batch["labels"])
        result.loss.backward()

        save_file({f"base_model.model.{n}": t.detach().float().contiguous() for n, t in trained.items()},
                  os.path.join(out, "adapter_model.safetensors"))
        json.dump({"method": "bottleneck", **settings, "modules_to_save": ["classifier", "score"],
                   "task_type": "SEQ_CLS", "base_model_name_or_path": f"../tiny-{family}", "revision": None},
                  open(os.path.join(out, "hone_adapter.json"), "w"), indent=2)
        tensors = {"logits": result.logits.detach().float().contiguous(),
                   "loss": result.loss.detach().float().reshape(1)}
        for n, t in trained.items():
            tensors[f"grad.{n}"] = t.grad.detach().float().contiguous()
        save_file(tensors, os.path.join(golden_dir, f"{family}-adapter.safetensors"))
        print(family, "loss", float(result.loss), "trained tensors", len(trained))


if __name__ == "__main__":
    main()
