#!/usr/bin/env python3
"""Splits SQuAD v1.1 train (shared/datasets/squad/train-v1.1-reconstructed.json) into the
SQuAD-format files both sides of bench/squad_accuracy.sh read, by position in the file: test.json
the last 2,000 questions, valid.json the 1,000 before them, train.json the first N (default
20,000; the first 89 articles, Notre Dame to the Marshall Islands). Each file keeps SQuAD's
nested form ({"data": [{"title", "paragraphs": [{"context", "qas": [...]}]}], "version"}) with
only its questions, and only the articles and paragraphs that hold them; the valid/test cut can
fall inside a paragraph, whose context then appears in both.

Usage: squad_prepare.py SQUAD_JSON OUT_DIR [--train N]
"""
import argparse
import json
import os
import sys

VALID, TEST = 1000, 2000


def subset(data, keep):
    """The articles and paragraphs of `data` holding the questions whose positions are in `keep`."""
    out, i = [], 0
    for article in data:
        paragraphs = []
        for paragraph in article["paragraphs"]:
            qas = []
            for qa in paragraph["qas"]:
                if i in keep:
                    qas.append(qa)
                i += 1
            if qas:
                paragraphs.append({"context": paragraph["context"], "qas": qas})
        if paragraphs:
            out.append({"title": article["title"], "paragraphs": paragraphs})
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("squad")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=20000, help="the first N questions train")
    args = ap.parse_args()
    with open(args.squad, encoding="utf-8") as f:
        squad = json.load(f)
    total = sum(len(p["qas"]) for a in squad["data"] for p in a["paragraphs"])
    if args.train <= 0 or args.train > total - VALID - TEST:
        sys.exit(f"--train must be 1..{total - VALID - TEST}")
    splits = [("train", range(0, args.train)),
              ("valid", range(total - TEST - VALID, total - TEST)),
              ("test", range(total - TEST, total))]
    os.makedirs(args.out, exist_ok=True)
    counts = []
    for name, positions in splits:
        data = subset(squad["data"], set(positions))
        with open(os.path.join(args.out, f"{name}.json"), "w", encoding="utf-8") as f:
            json.dump({"data": data, "version": squad.get("version", "1.1")}, f)
        paragraphs = sum(len(a["paragraphs"]) for a in data)
        counts.append(f"{name} {len(positions)} questions ({len(data)} articles, {paragraphs} paragraphs)")
    print("; ".join(counts), file=sys.stderr)


if __name__ == "__main__":
    main()
