#!/usr/bin/env python3
"""A random model shaped like microsoft/deberta-v3-xsmall (12 layers, hidden 384, 6 heads, 256
position buckets over 512 relative positions, shared position projections, 128,100 words) as a
`DebertaV2ForSequenceClassification` folder with 2 labels, for speed benchmarks: no DeBERTa
weights are reachable here, and a step's time does not depend on the weights' values. The
tokenizer is the tiny Unigram one of tests/fixtures/tiny-deberta (its ids fit any vocabulary).

Usage: python bench/deberta_model.py OUT_DIR
"""
import os
import shutil
import sys

import torch
from transformers import AutoTokenizer, DebertaV2Config, DebertaV2ForSequenceClassification


def main():
    out = sys.argv[1]
    if os.path.isfile(os.path.join(out, "model.safetensors")):
        return
    config = DebertaV2Config(
        vocab_size=128100, hidden_size=384, num_hidden_layers=12, num_attention_heads=6,
        intermediate_size=1536, max_position_embeddings=512, type_vocab_size=0, relative_attention=True,
        position_buckets=256, max_relative_positions=-1, pos_att_type=["p2c", "c2p"], share_att_key=True,
        norm_rel_ebd="layer_norm", position_biased_input=False, layer_norm_eps=1e-7, pooler_hidden_size=384,
        pooler_dropout=0, pooler_hidden_act="gelu", hidden_act="gelu", num_labels=2, pad_token_id=0)
    torch.manual_seed(0)
    model = DebertaV2ForSequenceClassification(config)
    shutil.rmtree(out, ignore_errors=True)
    model.save_pretrained(out)
    fixture = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures", "tiny-deberta")
    AutoTokenizer.from_pretrained(fixture).save_pretrained(out)


if __name__ == "__main__":
    main()
