#!/usr/bin/env python3
"""The PyTorch + transformers side of bench/sciq_accuracy.sh: fine-tunes
AutoModelForMultipleChoice on the prepared SciQ JSON lines with the same recipe as `hone train
--task multiple-choice` (each (question, option) pair encoded with only the question cut when too long,
dynamic padding, AdamW with no decay on biases and LayerNorm weights, linear warmup then
linear decay, clipping by global norm, shuffled batches, dropout on) and prints accuracy and
MAP@3 on the test questions as JSON.

Usage: sciq_reference.py --model DIR --train train.jsonl --test test.jsonl [--epochs 1
       --batch 16 --max-length 128 --lr 5e-5 --warmup-ratio 0.1 --weight-decay 0.01 --clip 1.0
       --seed 42]
"""
import argparse
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForMultipleChoice, AutoTokenizer, get_linear_schedule_with_warmup  # noqa: E402

LETTERS = "ABCD"


def read(path):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for line in f if line.strip()]
    return [(r["question"], [r[c] for c in LETTERS], LETTERS.index(r["answer"])) for r in rows]


def encode(tok, questions, max_length):
    firsts = [q for q, options, _ in questions for _ in options]
    seconds = [o for _, options, _ in questions for o in options]
    try:  # Hone keeps the option whole: only the question is cut
        enc = tok(firsts, seconds, padding=True, truncation="only_first", max_length=max_length, return_tensors="pt")
    except Exception:  # an option too long to keep whole
        enc = tok(firsts, seconds, padding=True, truncation=True, max_length=max_length, return_tensors="pt")
    n = len(questions[0][1])
    return {k: v.reshape(len(questions), n, -1) for k, v in enc.items()}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForMultipleChoice.from_pretrained(args.model)
    train, test = read(args.train), read(args.test)

    no_decay = lambda n: n.endswith(".bias") or "LayerNorm.weight" in n  # noqa: E731
    named = list(model.named_parameters())
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=args.lr, eps=1e-8)
    steps_per_epoch = math.ceil(len(train) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = get_linear_schedule_with_warmup(opt, math.ceil(total * args.warmup_ratio), total)

    g = torch.Generator().manual_seed(args.seed)
    start = time.time()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(train), generator=g).tolist()
        for i in range(0, len(order), args.batch):
            batch = [train[j] for j in order[i:i + args.batch]]
            out = model(**encode(tok, batch, args.max_length),
                        labels=torch.tensor([a for _, _, a in batch]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    train_s = time.time() - start

    model.eval()
    correct, ap3 = 0, 0.0
    with torch.no_grad():
        for i in range(0, len(test), 32):
            batch = test[i:i + 32]
            logits = model(**encode(tok, batch, args.max_length)).logits
            for row, (_, _, right) in zip(logits, batch):
                # Rank of the right option, ties to the option listed first (as Hone).
                rank = 1 + sum(1 for j, s in enumerate(row.tolist())
                               if s > row[right].item() or (s == row[right].item() and j < right))
                correct += rank == 1
                ap3 += 1.0 / rank if rank <= 3 else 0.0
    print(json.dumps({"accuracy": correct / len(test), "map_at_3": ap3 / len(test),
                      "test_examples": len(test), "train_examples": len(train), "steps": total,
                      "train_seconds": train_s}))


if __name__ == "__main__":
    main()
