#!/usr/bin/env python3
"""Checks that a multiple-choice folder exported by Hone loads in Hugging Face transformers
unchanged (AutoModelForMultipleChoice, AutoTokenizer) and gives the option scores
`hone predict --json --question Q --choices "a|b|c"` printed, and the same best option
(options whose scores agree within the tolerance are a tie: either may be picked).

Each (prompt, option) pair is encoded as transformers' multiple-choice examples do: the prompt
is the question, after its context when there is one; a pair too long loses the end of its
prompt (truncation="only_first", as Hone keeps the option), longest first when that cannot fit.

Usage: check_choice_export.py EXPORT_DIR PREDICTIONS_JSON [--tolerance 1e-4]
PREDICTIONS_JSON is a list of `hone predict --json` outputs (each a list of questions).
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
from transformers import AutoModelForMultipleChoice, AutoTokenizer  # noqa: E402

from hone_models import load_exported  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("predictions")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()

    model = load_exported(args.export_dir, AutoModelForMultipleChoice)
    tokenizer = AutoTokenizer.from_pretrained(args.export_dir)
    with open(args.predictions, encoding="utf-8") as f:
        questions = [q for batch in json.load(f) for q in batch]
    failures, worst = 0, 0.0
    for q in questions:
        prompt = q["question"] if q.get("context") is None else q["context"] + " " + q["question"]
        options = q["options"]
        try:
            enc = tokenizer([prompt] * len(options), options, truncation="only_first", padding=True,
                            return_tensors="pt")
        except Exception:  # an option too long to keep whole
            enc = tokenizer([prompt] * len(options), options, truncation=True, padding=True,
                            return_tensors="pt")
        with torch.no_grad():
            logits = model(**{k: v.unsqueeze(0) for k, v in enc.items()}).logits[0].double()
        hone = torch.tensor(q["logits"], dtype=torch.float64)
        scale = max(logits.abs().max().item(), 1e-6)
        err = (logits - hone).abs().max().item() / scale
        worst = max(worst, err)
        # Options whose scores agree within the tolerance are a tie: either pick is right.
        theirs, ours = int(logits.argmax()), int(q["answer"])
        same_best = theirs == ours or (logits[theirs] - logits[ours]).abs().item() / scale <= args.tolerance
        if err > args.tolerance or not same_best:
            failures += 1
            print(f"FAIL {q['question'][:50]}: error {err:.2e}, transformers picks "
                  f"{int(logits.argmax())}, hone {q['answer']}")
    print(f"{len(questions)} questions, {failures} mismatches, worst relative error {worst:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
