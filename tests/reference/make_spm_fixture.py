#!/usr/bin/env python3
"""Builds a DeBERTa-v3-style tokenizer folder that has only `spm.model` (as microsoft/deberta-v3-*
on the Hub: no tokenizer.json) and what transformers' DebertaV2Tokenizer makes of it.

The SentencePiece Unigram model is trained on a few hundred SST-2 sentences laid out as
DeBERTa-v3's: [PAD] [CLS] [SEP] as control pieces 0-2, [UNK] as 3, no [MASK] piece (the
tokenizer adds it after the vocabulary), identity normalisation (transformers 5 ignores the
model's own normaliser for DeBERTa and applies its fixed one). The folder gets
`tokenizer_config.json` as on the Hub (`do_lower_case: false`) plus the class name, and
`golden/spm-deberta.json` the ids and segment ids transformers gives for single texts and pairs
that exercise the normaliser (runs of spaces, tabs, new lines, trailing space, composed and
decomposed accents), unknown characters and a [MASK] in the text.

Usage: python make_spm_fixture.py --sst2 ../shared/datasets/sst2/train.tsv --out tests/fixtures
"""
import argparse
import json
import os
import shutil
import tempfile

import sentencepiece as spm
import transformers

TEXTS = [
    ["the movie was a delight"],
    ["  a  quiet\tfilm \n with   heart  "],
    ["Caf\u00e9 cafe\u0301 na\u00efve \u2014 \U0001F600 [MASK] end."],
    ["terrible acting and a dull plot", "avoid it ."],
    ["it 's [MASK] good", "  yes\tand\nno  "],
]


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sst2", required=True)
    ap.add_argument("--out", required=True)
    args = ap.parse_args()
    with open(args.sst2, encoding="utf-8") as f:
        next(f)
        sentences = [line.split("\t")[0].strip() for _, line in zip(range(400), f)]
    folder = os.path.join(args.out, "spm-deberta")
    shutil.rmtree(folder, ignore_errors=True)
    os.makedirs(folder)
    with tempfile.TemporaryDirectory() as scratch:
        corpus = os.path.join(scratch, "corpus.txt")
        with open(corpus, "w", encoding="utf-8") as f:
            f.write("\n".join(sentences) + "\n")
        spm.SentencePieceTrainer.train(
            input=corpus, model_prefix=os.path.join(scratch, "spm"), vocab_size=300,
            model_type="unigram", normalization_rule_name="identity", pad_id=0, pad_piece="[PAD]",
            bos_id=1, bos_piece="[CLS]", eos_id=2, eos_piece="[SEP]", unk_id=3, unk_piece="[UNK]",
            minloglevel=2)
        shutil.copy(os.path.join(scratch, "spm.model"), os.path.join(folder, "spm.model"))
    with open(os.path.join(folder, "tokenizer_config.json"), "w") as f:
        json.dump({"do_lower_case": False, "vocab_type": "spm", "tokenizer_class": "DebertaV2Tokenizer"}, f,
                  indent=1)
    tokenizer = transformers.AutoTokenizer.from_pretrained(folder)
    assert type(tokenizer).__name__ == "DebertaV2Tokenizer", type(tokenizer)
    cases = []
    for texts in TEXTS:
        enc = tokenizer(*texts)
        cases.append({"texts": texts, "input_ids": enc["input_ids"], "token_type_ids": enc["token_type_ids"],
                      "tokens": tokenizer.convert_ids_to_tokens(enc["input_ids"])})
    with open(os.path.join(args.out, "golden", "spm-deberta.json"), "w") as f:
        json.dump({"transformers": transformers.__version__, "cases": cases}, f, indent=1, ensure_ascii=False)


if __name__ == "__main__":
    main()
