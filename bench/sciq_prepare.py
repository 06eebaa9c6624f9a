#!/usr/bin/env python3
"""Turns SciQ's train.json into the multiple-choice CSV-like JSON lines both sides of
bench/sciq_accuracy.sh read: question, options A–D (correct_answer and the three distractors
shuffled with a fixed seed per question), answer as a letter; split into train / valid / test
by position (test: the last 1,679 questions, valid: the 200 before them).

Usage: sciq_prepare.py SCIQ_TRAIN_JSON OUT_DIR [--train N]
"""
import argparse
import json
import os
import random


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("sciq")
    ap.add_argument("out")
    ap.add_argument("--train", type=int, default=0, help="use only the first N training questions")
    args = ap.parse_args()
    with open(args.sciq, encoding="utf-8") as f:
        records = json.load(f)
    rows = []
    for i, r in enumerate(records):
        options = [r["correct_answer"], r["distractor1"], r["distractor2"], r["distractor3"]]
        order = list(range(4))
        random.Random(1000 + i).shuffle(order)
        shuffled = [options[j] for j in order]
        rows.append({"question": r["question"], "A": shuffled[0], "B": shuffled[1],
                     "C": shuffled[2], "D": shuffled[3], "answer": "ABCD"[order.index(0)]})
    test, valid, train = rows[-1679:], rows[-1879:-1679], rows[:-1879]
    if args.train:
        train = train[:args.train]
    os.makedirs(args.out, exist_ok=True)
    for name, part in [("train", train), ("valid", valid), ("test", test)]:
        with open(os.path.join(args.out, f"{name}.jsonl"), "w", encoding="utf-8") as f:
            for r in part:
                f.write(json.dumps(r, ensure_ascii=False) + "\n")
    print(f"train {len(train)}, valid {len(valid)}, test {len(test)}")


if __name__ == "__main__":
    main()
