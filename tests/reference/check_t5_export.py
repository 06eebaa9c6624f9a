#!/usr/bin/env python3
"""Checks a text-to-text model Hone exported (T5ForConditionalGeneration) against
transformers: for each of `hone generate --json`'s lines, the source's tokens are what the
folder's tokenizer gives for the config's `prefix` + the source; transformers' greedy
`generate` from them writes Hone's tokens exactly, and the tokenizer decodes them to Hone's
text (transformers 5 has no text2text pipeline any more). With Hone's tokens fed back as
decoder inputs, each of Hone's tokens is transformers' most probable one within `tolerance` ×
the row's largest logit.

Usage: check_t5_export.py MODEL_DIR GENERATIONS.jsonl [--tolerance 1e-4]
Prints one line per generation and exits non-zero on any mismatch.
"""
import argparse
import json
import sys

import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer, DynamicCache, EncoderDecoderCache

from hone_models import load_exported


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("generations")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    args = ap.parse_args()
    model = load_exported(args.model, AutoModelForSeq2SeqLM)
    tokenizer = AutoTokenizer.from_pretrained(args.model)
    prefix = getattr(model.config, "prefix", None) or ""
    start = model.config.decoder_start_token_id
    failed = 0
    with open(args.generations, encoding="utf-8") as f:
        lines = [json.loads(l) for l in f if l.strip()]
    for g in lines:
        source, tokens = g["source_ids"], g["token_ids"]
        problems = []
        want_source = tokenizer(prefix + g["source"])["input_ids"]
        if want_source != source:
            problems.append(f"source tokens: hone {source} transformers {want_source}")
        ids = torch.tensor([source])
        with torch.no_grad():
            # A decoder deeper than the encoder needs a cache that grows (transformers sizes
            # the default one by the encoder's layers).
            out = model.generate(ids, max_new_tokens=len(tokens), do_sample=False, num_beams=1,
                                 cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
            greedy = out[0].tolist()[1:]
            logits = model(input_ids=ids,
                           decoder_input_ids=torch.tensor([[start] + tokens[:-1]])).logits[0]
        if greedy != tokens:
            problems.append(f"greedy tokens: hone {tokens} transformers {greedy}")
        worst = 0.0
        for i, t in enumerate(tokens):
            row = logits[i].double()
            worst = max(worst, (row.max() - row[t]).item() / row.abs().max().item())
        if worst > args.tolerance:
            problems.append(f"largest gap to the best logit {worst:.2e}")
        text = tokenizer.decode(greedy, skip_special_tokens=True)
        if text != g["generated"]:
            problems.append(f"decoded text {text!r} vs hone {g['generated']!r}")
        failed += bool(problems)
        print(("ok " if not problems else "MISMATCH ") + f"{len(tokens)} tokens "
              f"{g['generated']!r}" + "".join(f"\n  {p}" for p in problems))
    sys.exit(1 if failed else 0)


if __name__ == "__main__":
    main()
