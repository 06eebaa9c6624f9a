#!/usr/bin/env python3
"""Checks that a token-classification folder exported by Hone loads in Hugging Face
transformers unchanged (AutoModelForTokenClassification, AutoTokenizer), gives the per-token
logits `hone predict --json` printed, and that
`pipeline("token-classification", aggregation_strategy="first")` finds the same entities
(type, start, end; score within 1e-3) for every tokenizer; the "simple" strategy must run on
the folder too.

Usage: check_token_export.py EXPORT_DIR PREDICTIONS_JSON [--tolerance 1e-4]
Exit status 0 when everything matches, 1 otherwise.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer, pipeline  # noqa: E402

from hone_models import load_exported  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("predictions")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    model = load_exported(args.export_dir, AutoModelForTokenClassification)
    tokenizer = AutoTokenizer.from_pretrained(args.export_dir)
    tagger = pipeline("token-classification", model=model, tokenizer=tokenizer,
                      aggregation_strategy="first", device=-1)
    simple = pipeline("token-classification", model=model, tokenizer=tokenizer,
                      aggregation_strategy="simple", device=-1)
    with open(args.predictions, encoding="utf-8") as f:
        predictions = json.load(f)
    failures, worst, entities = 0, 0.0, 0
    for p in predictions:
        enc = tokenizer(p["text"], truncation=True, return_special_tokens_mask=True, return_tensors="pt")
        special = enc.pop("special_tokens_mask")[0].bool()
        with torch.no_grad():
            logits = model(**enc).logits[0][~special].double()
        hone = torch.tensor([t["logits"] for t in p["tokens"]], dtype=torch.float64)
        if hone.shape != logits.shape:
            print(f"FAIL tokens: hone {tuple(hone.shape)} vs transformers {tuple(logits.shape)}: {p['text'][:50]}")
            failures += 1
            continue
        scale = max(logits.abs().max().item(), 1e-6)
        err = (logits - hone).abs().max().item() / scale
        worst = max(worst, err)
        ref = [(e["entity_group"], e["start"], e["end"], float(e["score"])) for e in tagger(p["text"])]
        simple(p["text"])
        got = [(e["type"], e["start"], e["end"], e["score"]) for e in p["entities"]]
        same = len(ref) == len(got) and all(
            a[:3] == b[:3] and abs(a[3] - b[3]) < 1e-3 for a, b in zip(ref, got))
        entities += len(ref)
        ok = err <= args.tolerance and same
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} rel.err {err:.2e}  {len(got)} entities  {p['text'][:50]}")
        if not same:
            print(f"     transformers {ref}\n     hone         {got}")
    print(f"{len(predictions)} texts, {failures} mismatches, worst relative error {worst:.2e}, "
          f"{entities} entities (architecture {model.config.architectures[0]})")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
