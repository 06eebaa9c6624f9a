#!/usr/bin/env python3
"""Checks a GGUF file written by `hone export --gguf`: llama.cpp's own Python reader (the
`gguf` package) reads it (header, metadata, every tensor's type and shape), and transformers
loads it (`from_pretrained(..., gguf_file=...)`, which dequantizes) as the model and tokenizer
the original transformers folder is: the same token ids for sample texts, and next-token logits
within the tolerance (relative to the largest logit), the same greedy next token.

Usage: check_gguf_export.py GGUF_FILE MODEL_DIR [--tolerance 2e-3]
Exit status 0 when everything matches, 1 otherwise.
"""
import argparse
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import torch  # noqa: E402
from gguf import GGUFReader  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer  # noqa: E402

TEXTS = [
    "What is two plus three?",
    "The quick brown fox jumps over the lazy dog.",
    "élan, naïveté — unicode 😀",
]


def field(reader, key):
    f = reader.fields[key]
    value = f.parts[f.data[0]]
    if f.types and f.types[0].name == "STRING":
        return bytes(value).decode("utf-8")
    return value.tolist()[0] if hasattr(value, "tolist") else value


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("gguf_file")
    ap.add_argument("model_dir")
    ap.add_argument("--tolerance", type=float, default=2e-3)
    args = ap.parse_args()
    failures = 0

    reader = GGUFReader(args.gguf_file)
    arch = field(reader, "general.architecture")
    types = sorted({t.tensor_type.name for t in reader.tensors})
    print(f"gguf reader ok: {arch}, {len(reader.tensors)} tensors ({', '.join(types)}), "
          f"{len(reader.fields)} metadata keys, tokenizer {field(reader, 'tokenizer.ggml.model')}")

    folder, name = os.path.split(os.path.abspath(args.gguf_file))
    gguf_tok = AutoTokenizer.from_pretrained(folder, gguf_file=name)
    hf_tok = AutoTokenizer.from_pretrained(args.model_dir)
    for text in TEXTS:
        a = gguf_tok(text, add_special_tokens=False)["input_ids"]
        b = hf_tok(text, add_special_tokens=False)["input_ids"]
        ok = a == b
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} token ids {'equal' if ok else f'{a} vs {b}'}: {text}")

    gguf_model = AutoModelForCausalLM.from_pretrained(folder, gguf_file=name, dtype=torch.float32).eval()
    hf_model = AutoModelForCausalLM.from_pretrained(args.model_dir, dtype=torch.float32).eval()
    for text in TEXTS:
        ids = torch.tensor([hf_tok(text, add_special_tokens=False)["input_ids"]])
        with torch.no_grad():
            got = gguf_model(input_ids=ids).logits[0].double().numpy()
            want = hf_model(input_ids=ids).logits[0].double().numpy()
        err = float(np.abs(got - want).max() / max(np.abs(want).max(), 1e-6))
        same_next = bool((got.argmax(-1) == want.argmax(-1)).mean() >= 0.9)
        ok = err <= args.tolerance and same_next
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} logits rel.err {err:.2e}, greedy next tokens agree "
              f"{(got.argmax(-1) == want.argmax(-1)).mean():.0%}: {text}")

    print(f"{failures} mismatches")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
