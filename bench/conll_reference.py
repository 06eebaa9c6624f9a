#!/usr/bin/env python3
"""The PyTorch + transformers side of bench/conll_accuracy.sh: fine-tunes a model for token
classification on a CoNLL file the way transformers' run_ner example does (words tokenized with
is_split_into_words, the tag on each word's first sub-token and -100 elsewhere, dynamic padding,
AdamW without decay on biases and LayerNorm weights, linear warmup and decay, clipping, dropout
on, shuffled batches), then scores a second file with conlleval's entity rules (type and both
ends must match; micro P/R/F1). Prints one JSON object.

Usage: conll_reference.py --model DIR --train eng.train --test eng.testa [--epochs 1]
       [--batch 16] [--max-length 128] [--lr 5e-5] [--warmup-ratio 0.1] [--weight-decay 0.01]
       [--clip 1.0] [--seed 42] [--threads 2]
"""
import argparse
import json
import math
import os
import random
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import (AutoModelForTokenClassification, AutoTokenizer,  # noqa: E402
                          get_linear_schedule_with_warmup)


def read_conll(path):
    sentences, words, tags = [], [], []
    with open(path, encoding="utf-8") as f:
        for line in f:
            line = line.strip()
            if not line:
                if words:
                    sentences.append((words, tags))
                words, tags = [], []
                continue
            fields = line.split()
            if fields[0] == "-DOCSTART-":
                continue
            words.append(fields[0])
            tags.append(fields[-1])
    if words:
        sentences.append((words, tags))
    return sentences


def entities(tags):
    """conlleval chunks of IOB tags: (type, start, end)."""
    out, open_ = [], None
    for i, t in enumerate(tags + ["O"]):
        prefix, kind = (t.split("-", 1) + [""])[:2] if t != "O" else ("O", "")
        continues = open_ is not None and prefix == "I" and kind == open_[0]
        if open_ is not None and not continues:
            out.append((open_[0], open_[1], i))
            open_ = None
        if prefix in ("B", "I") and not continues:
            open_ = (kind, i)
    return set(out)


def count_entities(batch, enc, best, labels):
    """Entities right, predicted and gold in a batch: each word takes its first sub-token's
    tag (`best`: the argmax per token), as run_ner and Hone do; returns (correct, predicted,
    gold)."""
    correct = predicted = gold = 0
    for i, (words, tags) in enumerate(batch):
        pred, prev = ["O"] * len(words), None
        for j, w in enumerate(enc.word_ids(i)):
            if w is not None and w != prev:
                pred[w] = labels[best[i, j]]
            prev = w
        g, p = entities(tags), entities(pred)
        correct += len(g & p)
        predicted += len(p)
        gold += len(g)
    return correct, predicted, gold


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
    torch.set_num_threads(args.threads)
    random.seed(args.seed)
    torch.manual_seed(args.seed)

    train, test = read_conll(args.train), read_conll(args.test)
    labels = sorted({t for _, tags in train for t in tags}, key=lambda t: (t != "O", t[2:], t))
    label_id = {t: i for i, t in enumerate(labels)}
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForTokenClassification.from_pretrained(
        args.model, num_labels=len(labels), id2label=dict(enumerate(labels)), label2id=label_id)

    def encode(batch):
        enc = tok([w for w, _ in batch], is_split_into_words=True, truncation=True,
                  max_length=args.max_length, padding=True, return_tensors="pt")
        ys = []
        for i, (_, tags) in enumerate(batch):
            prev, row = None, []
            for w in enc.word_ids(i):
                row.append(-100 if w is None or w == prev else label_id.get(tags[w], 0))
                prev = w
            ys.append(row)
        return enc, torch.tensor(ys)

    no_decay = lambda n: n.endswith(".bias") or "LayerNorm.weight" in n  # noqa: E731
    named = list(model.named_parameters())
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0}], lr=args.lr)
    steps = math.ceil(len(train) / args.batch) * args.epochs
    sched = get_linear_schedule_with_warmup(opt, int(math.ceil(steps * args.warmup_ratio)), steps)

    model.train()
    start = time.time()
    for _ in range(args.epochs):
        order = list(range(len(train)))
        random.shuffle(order)
        for b in range(0, len(order), args.batch):
            enc, ys = encode([train[i] for i in order[b:b + args.batch]])
            loss = model(**enc, labels=ys).loss
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            sched.step()
            opt.zero_grad()
    train_s = time.time() - start

    model.eval()
    correct = predicted = gold = 0
    with torch.no_grad():
        for b in range(0, len(test), 64):
            batch = test[b:b + 64]
            enc, _ = encode(batch)
            best = model(**enc).logits.argmax(-1)
            c, p, g = count_entities(batch, enc, best, labels)
            correct, predicted, gold = correct + c, predicted + p, gold + g
    precision = correct / predicted if predicted else 0.0
    recall = correct / gold if gold else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    print(json.dumps({"entity_f1": f1, "precision": precision, "recall": recall,
                      "train_examples": len(train) * args.epochs, "steps": steps,
                      "train_seconds": train_s}))


if __name__ == "__main__":
    main()
