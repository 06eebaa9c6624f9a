#!/usr/bin/env python3
"""The PyTorch side of bench/t5_speed.sh: a random T5 of a real shape (t5-small by default: no
T5 weights are reachable here, and a step's time does not depend on their values), one fixed
text-to-text batch of SAMSum dialogues and summaries (tokenized by the tiny fixture's
SentencePiece-style tokenizer, cut to --source/--target tokens), and the median time of
transformers' training step (forward with labels, backward, AdamW) on it.

Writes MODEL_DIR (config, weights, tokenizer) and BATCH (JSON: input_ids, attention_mask,
decoder_input_ids, decoder_attention_mask, labels per decoder slot with -100), then prints one
JSON line: {"median_s": ..., "steps": ..., "batch": ..., "source": ..., "target": ...}.

Usage: t5_step.py MODEL_DIR BATCH [--batch 8] [--source 128] [--target 32] [--steps 10]
       [--threads 2] [--shape small|tiny]
"""
import argparse
import json
import os
import statistics
import time

import torch
from transformers import AutoTokenizer, T5Config, T5ForConditionalGeneration

SHAPES = {
    "small": dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8),
    "tiny": dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4),
}


def samsum(path, n):
    with open(path, encoding="utf-8") as f:
        rows = [json.loads(line) for _, line in zip(range(n), f)]
    return [r["context"] for r in rows], [r["response"] for r in rows]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("batch_file")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--source", type=int, default=128)
    ap.add_argument("--target", type=int, default=32)
    ap.add_argument("--steps", type=int, default=10)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--shape", default="small", choices=sorted(SHAPES))
    here = os.path.dirname(os.path.abspath(__file__))
    ap.add_argument("--tokenizer", default=os.path.join(here, "../tests/fixtures/tiny-t5"))
    ap.add_argument("--samsum", default=os.path.join(here, "../../shared/datasets/samsum/validation.jsonl"))
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    tok = AutoTokenizer.from_pretrained(args.tokenizer)
    config = T5Config(vocab_size=32128, feed_forward_proj="relu", dropout_rate=0.1,
                      decoder_start_token_id=0, pad_token_id=0, eos_token_id=1,
                      **SHAPES[args.shape])
    model = T5ForConditionalGeneration(config)
    model.save_pretrained(args.model)
    tok.save_pretrained(args.model)

    dialogues, summaries = samsum(args.samsum, args.batch)
    src = tok(dialogues, max_length=args.source, truncation=True, padding="longest", return_tensors="pt")
    tgt = tok(summaries, max_length=args.target, truncation=True, padding="longest", return_tensors="pt")
    labels = tgt.input_ids.masked_fill(tgt.attention_mask == 0, -100)
    decoder_input_ids = model._shift_right(labels).masked_fill(tgt.attention_mask == 0, 0)
    with open(args.batch_file, "w") as f:
        json.dump({"input_ids": src.input_ids.tolist(), "attention_mask": src.attention_mask.tolist(),
                   "decoder_input_ids": decoder_input_ids.tolist(),
                   "decoder_attention_mask": tgt.attention_mask.tolist(),
                   "labels": labels.reshape(-1).tolist()}, f)

    model.train()
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    times = []
    for step in range(3 + args.steps):
        t0 = time.perf_counter()
        out = model(input_ids=src.input_ids, attention_mask=src.attention_mask,
                    decoder_input_ids=decoder_input_ids, decoder_attention_mask=tgt.attention_mask,
                    labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if step >= 3:
            times.append(time.perf_counter() - t0)
    print(json.dumps({"median_s": statistics.median(times), "steps": args.steps, "batch": args.batch,
                      "source": int(src.input_ids.shape[1]), "target": int(tgt.input_ids.shape[1]),
                      "real_source_tokens": int(src.attention_mask.sum()),
                      "loss": float(out.loss)}))


if __name__ == "__main__":
    main()
