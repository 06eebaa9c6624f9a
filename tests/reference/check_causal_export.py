#!/usr/bin/env python3
"""Checks a causal LM Hone exported (a full model folder, a merged one, or a PEFT LoRA adapter
folder) against transformers: for each of `hone generate --json`'s lines, the prompt's tokens
are what transformers' chat template and tokenizer give (with --chat), and with Hone's tokens
fed back, each token Hone chose greedily is transformers' most probable one, within
`tolerance` × the row's largest logit (ties at float precision either way); a generation that
stopped at an end token stopped where transformers' best next token is one.

Usage: check_causal_export.py MODEL_DIR GENERATIONS.jsonl [--chat] [--tolerance 1e-4]
Prints one line per generation and exits non-zero on any mismatch.
"""
import argparse
import json
import sys

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from hone_models import load_exported


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("generations")
    ap.add_argument("--chat", action="store_true")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    model = load_exported(args.model, AutoModelForCausalLM)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    eos = model.config.eos_token_id
    eos = set(eos if isinstance(eos, list) else [eos]) | {tokenizer.eos_token_id}
    failed = 0
    with open(args.generations, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    for g in lines:
        prompt, tokens = g["prompt_ids"], g["token_ids"]
        if args.chat:
            text = tokenizer.apply_chat_template(
                [{"role": "user", "content": g["prompt"]}], add_generation_prompt=True, tokenize=False)
            want = tokenizer(text, add_special_tokens=False)["input_ids"]
            if want != prompt:
                print(f"MISMATCH prompt tokens of {g['prompt']!r}: hone {prompt} transformers {want}")
                failed += 1
                continue
        with torch.no_grad():
            logits = model(torch.tensor([prompt + tokens])).logits[0].double()
        worst = 0.0
        for i, t in enumerate(tokens):
            row = logits[len(prompt) - 1 + i]
            gap = (row.max() - row[t]).item() / row.abs().max().item()
            worst = max(worst, gap)
        stop_ok = True
        if g["stop"] == "end_token":
            row = logits[-1]
            stop_ok = int(row.argmax()) in eos or any(
                (row.max() - row[e]).item() <= args.tolerance * row.abs().max().item() for e in eos)
        ok = worst <= args.tolerance and stop_ok
        failed += not ok
        print(f"{'ok' if ok else 'MISMATCH'} {len(tokens)} tokens, largest gap to the best "
              f"logit {worst:.2e}, stop {g['stop']}{'' if stop_ok else ' (transformers would go on)'}")
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
