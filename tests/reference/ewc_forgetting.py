"""How much of a first task survives training on a second: the second task's encoder with the
first task's head (its classifier and pooler, which Hone trains per task) put back, scored on
the first task's data with transformers. Used by bench/recipes_sst2.sh for EWC.

Usage: python ewc_forgetting.py --encoder DIR --head DIR --data test.tsv
Prints {"accuracy": ..., "examples": ...}.
"""
import argparse
import csv
import json

import torch
from transformers import AutoModelForSequenceClassification, AutoTokenizer

HEAD_PARTS = ("classifier.", "pooler.", "pre_classifier.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--encoder", required=True)
    ap.add_argument("--head", required=True)
    ap.add_argument("--data", required=True)
    ap.add_argument("--max-length", type=int, default=64)
    args = ap.parse_args()
    model = AutoModelForSequenceClassification.from_pretrained(args.head).eval()
    encoder = AutoModelForSequenceClassification.from_pretrained(args.encoder).state_dict()
    state = model.state_dict()
    for name, value in encoder.items():
        if name in state and not any(part in name for part in HEAD_PARTS):
            state[name] = value
    model.load_state_dict(state)
    tokenizer = AutoTokenizer.from_pretrained(args.head)
    label2id = model.config.label2id
    with open(args.data) as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    right = 0
    with torch.no_grad():
        for start in range(0, len(rows), 64):
            chunk = rows[start:start + 64]
            enc = tokenizer([r["sentence"] for r in chunk], padding=True, truncation=True,
                            max_length=args.max_length, return_tensors="pt")
            predicted = model(**enc).logits.argmax(-1).tolist()
            for r, p in zip(chunk, predicted):
                right += int(p == label2id[r["label"]])
    print(json.dumps({"accuracy": right / len(rows), "examples": len(rows)}))


if __name__ == "__main__":
    main()
