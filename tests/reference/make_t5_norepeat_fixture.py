#!/usr/bin/env python3
"""transformers' generations with `no_repeat_ngram_size` from the tiny T5 fixtures
(tests/fixtures/tiny-t5, tiny-t5-v1_1, made by make_t5_fixtures.py), for the sources of
golden/t5-generate.json: greedy and 3-beam (length_penalty 1.0, early_stopping) with
no_repeat_ngram_size 2, 12 new tokens, the float32 models as saved. The random models repeat
tokens a lot, so the ban changes their outputs. Writes golden/t5-norepeat.json:
{family: [{"input_ids": [...], "greedy": [...], "beam3": [...]}]} (without the start token).

Usage: python make_t5_norepeat_fixture.py --fixtures tests/fixtures
"""
import argparse
import json
import os

import torch
from transformers import DynamicCache, EncoderDecoderCache, T5ForConditionalGeneration


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    args = ap.parse_args()
    golden = os.path.join(args.fixtures, "golden")
    sources = json.load(open(os.path.join(golden, "t5-generate.json")))
    out = {}
    for family in ["t5", "t5-v1_1"]:
        model = T5ForConditionalGeneration.from_pretrained(
            os.path.join(args.fixtures, f"tiny-{family}")).eval()
        rows = []
        for example in sources[family]["examples"]:
            ids = torch.tensor([example["input_ids"]])
            row = {"input_ids": example["input_ids"]}
            for name, beams in [("greedy", 1), ("beam3", 3)]:
                with torch.no_grad():
                    # A growing cache: the default one is sized by the encoder's layers.
                    generated = model.generate(
                        ids, max_new_tokens=12, num_beams=beams, do_sample=False,
                        no_repeat_ngram_size=2, length_penalty=1.0, early_stopping=beams > 1,
                        cache=EncoderDecoderCache(DynamicCache(), DynamicCache()))
                row[name] = [t for t in generated[0].tolist()[1:] if t != model.config.pad_token_id]
            rows.append(row)
        out[family] = rows
    with open(os.path.join(golden, "t5-norepeat.json"), "w") as f:
        json.dump(out, f, indent=1)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
