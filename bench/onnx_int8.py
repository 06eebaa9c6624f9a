#!/usr/bin/env python3
"""Scores an ONNX folder written by `hone export --onnx --int8` on a labeled TSV: accuracy,
samples per second and file size of model.onnx (float32) and model_quantized.onnx (int8) in
ONNX Runtime, beside PyTorch + transformers on the transformers folder, all on the same
batches (in file order, padded to each batch's longest, truncated at --max-length) and the
same number of threads. Prints a Markdown table and writes JSON to --json.

Usage: onnx_int8.py ONNX_DIR MODEL_DIR TEST_TSV [--batch 32] [--max-length 64] [--threads 2]
"""
import argparse
import csv
import json
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForSequenceClassification, AutoTokenizer  # noqa: E402


def batches(tokenizer, texts, batch, max_length):
    for i in range(0, len(texts), batch):
        enc = tokenizer(texts[i:i + batch], padding=True, truncation=True,
                        max_length=max_length, return_tensors="np")
        yield {k: v.astype(np.int64) for k, v in enc.items()}


def score(predict, encoded, labels):
    predict(encoded[0])  # warm-up
    start = time.perf_counter()
    predicted = np.concatenate([predict(b).argmax(-1) for b in encoded])
    seconds = time.perf_counter() - start
    return float((predicted == labels).mean()), len(labels) / seconds, predicted


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx_dir")
    ap.add_argument("model_dir")
    ap.add_argument("test_tsv")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=64)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()

    with open(args.test_tsv, encoding="utf-8") as f:
        rows = list(csv.DictReader(f, delimiter="\t", quoting=csv.QUOTE_NONE))
    texts = [r["sentence"] for r in rows]
    labels = np.array([int(r["label"]) for r in rows])
    tokenizer = AutoTokenizer.from_pretrained(args.onnx_dir)
    encoded = list(batches(tokenizer, texts, args.batch, args.max_length))

    torch.set_num_threads(args.threads)
    model = AutoModelForSequenceClassification.from_pretrained(args.model_dir).eval()

    def torch_predict(b):
        with torch.no_grad():
            return model(**{k: torch.from_numpy(v) for k, v in b.items()}).logits.numpy()

    results = {}
    acc, speed, reference = score(torch_predict, encoded, labels)
    results["pytorch"] = {"accuracy": acc, "samples_per_s": speed, "mb": None}
    for name, file in [("onnx float32", "model.onnx"), ("onnx int8", "model_quantized.onnx")]:
        path = os.path.join(args.onnx_dir, "onnx", file)
        opts = ort.SessionOptions()
        opts.intra_op_num_threads = args.threads
        opts.inter_op_num_threads = 1
        session = ort.InferenceSession(path, opts, providers=["CPUExecutionProvider"])
        inputs = [i.name for i in session.get_inputs()]

        def onnx_predict(b):
            return session.run(["logits"], {n: b[n] for n in inputs})[0]

        acc, speed, predicted = score(onnx_predict, encoded, labels)
        results[name] = {
            "accuracy": acc,
            "samples_per_s": speed,
            "mb": os.path.getsize(path) / 1e6,
            "agrees_with_pytorch": float((predicted == reference).mean()),
        }

    base = results["pytorch"]["samples_per_s"]
    print(f"{len(labels)} rows, batch {args.batch}, max length {args.max_length}, "
          f"{args.threads} threads\n")
    print("| model | file MB | accuracy | samples/s | vs PyTorch | same label as PyTorch |")
    print("|---|---|---|---|---|---|")
    for name, r in results.items():
        mb = "—" if r["mb"] is None else f"{r['mb']:.1f}"
        agree = r.get("agrees_with_pytorch")
        agree = "—" if agree is None else f"{agree:.2%}"
        print(f"| {name} | {mb} | {r['accuracy']:.4f} | {r['samples_per_s']:.1f} | "
              f"{r['samples_per_s'] / base:.2f}× | {agree} |")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as f:
            json.dump(results, f, indent=1)


if __name__ == "__main__":
    main()
