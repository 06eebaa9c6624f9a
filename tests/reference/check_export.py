#!/usr/bin/env python3
"""Checks that a folder exported by Hone loads in Hugging Face transformers unchanged and gives
the logits `hone predict --json` printed.

A LoRA adapter folder (adapter_config.json) is loaded with PEFT on its base model.

Usage: check_export.py EXPORT_DIR PREDICTIONS_JSON [--tolerance 1e-4]

Exit status 0 when every text's logits match within the tolerance (relative to the largest
logit magnitude of that text), 1 otherwise. Prints one line per text and a summary.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402

from hone_models import load_exported  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("predictions")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    model = load_exported(args.export_dir, AutoModelForSequenceClassification)
    tokenizer = AutoTokenizer.from_pretrained(args.export_dir)
    with open(args.predictions, encoding="utf-8") as f:
        predictions = json.load(f)

    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    failures = 0
    worst = 0.0
    for p in predictions:
        if p["labels"] != labels:
            print(f"labels differ: hone {p['labels']} vs transformers {labels}")
            failures += 1
            continue
        max_length = min(tokenizer.model_max_length, 512)
        if p.get("text_pair") is not None:
            enc = tokenizer(p["text"], p["text_pair"], truncation=True, max_length=max_length, return_tensors="pt")
        else:
            enc = tokenizer(p["text"], truncation=True, max_length=max_length, return_tensors="pt")
        with torch.no_grad():
            logits = model(**enc).logits[0].double()
        hone = torch.tensor(p["logits"], dtype=torch.float64)
        scale = max(logits.abs().max().item(), 1e-6)
        err = (logits - hone).abs().max().item() / scale
        worst = max(worst, err)
        ok = err <= args.tolerance and labels[int(logits.argmax())] == p["label"]
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} rel.err {err:.2e}  {p['label']:<10} {p['text'][:60]}")
    print(f"{len(predictions)} texts, {failures} mismatches, worst relative error {worst:.2e} "
          f"(architecture {model.config.architectures[0]}, tokenizer {type(tokenizer).__name__})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
