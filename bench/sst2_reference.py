#!/usr/bin/env python3
"""The PyTorch + transformers side of bench/sst2_accuracy.sh: fine-tunes a model on a TSV with the
same recipe as `hone train` (AdamW with no decay on biases and LayerNorm weights, linear warmup
then linear decay, clipping by global norm, dynamic padding, shuffled batches, dropout on) and
prints the accuracy on a held-out TSV as JSON.

With --lora-r R the model is wrapped by PEFT (LoRA on query and value, rank R, --lora-alpha,
--lora-dropout; the classifier trained in full, the rest frozen), as `hone train --peft lora`.

Usage: sst2_reference.py --model DIR --train train.tsv --test test.tsv [--epochs 1 --batch 16
       --max-length 64 --lr 5e-5 --warmup-ratio 0.1 --weight-decay 0.01 --clip 1.0 --seed 42]
       [--lora-r 8 --lora-alpha 16 --lora-dropout 0.1]
"""
import argparse
import csv
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer, get_linear_schedule_with_warmup  # noqa: E402


def read_tsv(path):
    with open(path, encoding="utf-8") as f:
        rows = list(csv.reader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    header = rows[0]
    t, l = header.index("sentence"), header.index("label")
    return [r[t] for r in rows[1:]], [int(r[l]) for r in rows[1:]]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lora-r", type=int, default=None)
    ap.add_argument("--lora-alpha", type=float, default=16)
    ap.add_argument("--lora-dropout", type=float, default=0.1)
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    if args.lora_r:
        from peft import LoraConfig, get_peft_model

        model = get_peft_model(model, LoraConfig(
            task_type="SEQ_CLS", r=args.lora_r, lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout, target_modules=["query", "value"]))
    texts, labels = read_tsv(args.train)
    test_texts, test_labels = read_tsv(args.test)

    no_decay = lambda n: n.endswith(".bias") or "LayerNorm.weight" in n  # noqa: E731
    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=args.lr, eps=1e-8)
    steps_per_epoch = math.ceil(len(texts) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = get_linear_schedule_with_warmup(opt, math.ceil(total * args.warmup_ratio), total)

    g = torch.Generator().manual_seed(args.seed)
    start = time.time()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(texts), generator=g).tolist()
        for i in range(0, len(order), args.batch):
            idx = order[i:i + args.batch]
            enc = tok([texts[j] for j in idx], padding=True, truncation=True,
                      max_length=args.max_length, return_tensors="pt")
            out = model(**enc, labels=torch.tensor([labels[j] for j in idx]))
            out.loss.backward()
            torch.nn.utils.clip_grad_norm_([p for _, p in named], args.clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
    train_s = time.time() - start

    model.eval()
    correct = 0
    with torch.no_grad():
        for i in range(0, len(test_texts), 64):
            enc = tok(test_texts[i:i + 64], padding=True, truncation=True,
                      max_length=args.max_length, return_tensors="pt")
            pred = model(**enc).logits.argmax(-1)
            correct += int((pred == torch.tensor(test_labels[i:i + 64])).sum())
    print(json.dumps({"accuracy": correct / len(test_texts), "test_examples": len(test_texts),
                      "train_examples": len(texts), "steps": total, "train_seconds": train_s}))


if __name__ == "__main__":
    main()
