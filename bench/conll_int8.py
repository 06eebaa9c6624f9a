#!/usr/bin/env python3
"""Entity F1 (conlleval rules, bench/conll_reference.py's) and speed of a token classifier
exported by `hone export --onnx --int8`: model.onnx (float32) and model_quantized.onnx (int8)
in ONNX Runtime, beside PyTorch + transformers on the transformers folder, on the same batches
and threads. Each word takes its first sub-token's tag, as Hone and run_ner do. Prints a
Markdown table and writes JSON to --json.

Usage: conll_int8.py ONNX_DIR MODEL_DIR TEST_CONLL [--batch 32] [--max-length 128] [--threads 2]
"""
import argparse
import json
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
from transformers import AutoModelForTokenClassification, AutoTokenizer  # noqa: E402

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from conll_reference import count_entities, read_conll  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx_dir")
    ap.add_argument("model_dir")
    ap.add_argument("test_conll")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--max-length", type=int, default=128)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--json")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    sentences = read_conll(args.test_conll)
    tokenizer = AutoTokenizer.from_pretrained(args.model_dir)
    model = AutoModelForTokenClassification.from_pretrained(args.model_dir).eval()
    labels = [model.config.id2label[i] for i in range(model.config.num_labels)]
    encoded = []
    for b in range(0, len(sentences), args.batch):
        batch = sentences[b:b + args.batch]
        enc = tokenizer([w for w, _ in batch], is_split_into_words=True, padding=True,
                        truncation=True, max_length=args.max_length, return_tensors="np")
        encoded.append((batch, enc))

    def f1(predict):
        predict(encoded[0][1])  # warm-up
        correct = predicted = gold = 0
        seconds = 0.0
        for batch, enc in encoded:
            start = time.perf_counter()
            best = predict(enc).argmax(-1)
            seconds += time.perf_counter() - start
            c, p, g = count_entities(batch, enc, best, labels)
            correct, predicted, gold = correct + c, predicted + p, gold + g
        precision = correct / predicted if predicted else 0.0
        recall = correct / gold if gold else 0.0
        score = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        return score, len(sentences) / seconds

    def torch_predict(enc):
        with torch.no_grad():
            return model(**{k: torch.from_numpy(v.astype(np.int64)) for k, v in enc.items()}).logits.numpy()

    def session(path):
        options = ort.SessionOptions()
        options.intra_op_num_threads = args.threads
        options.inter_op_num_threads = 1
        s = ort.InferenceSession(path, options, providers=["CPUExecutionProvider"])
        names = {i.name for i in s.get_inputs()}
        return lambda enc: s.run(["logits"], {k: v.astype(np.int64) for k, v in enc.items() if k in names})[0]

    rows = {"PyTorch + transformers": (f1(torch_predict), None)}
    for name, file in [("ONNX float32", "model.onnx"), ("ONNX int8", "model_quantized.onnx")]:
        path = os.path.join(args.onnx_dir, "onnx", file)
        rows[name] = (f1(session(path)), os.path.getsize(path) / 1e6)
    base = rows["PyTorch + transformers"][0][1]
    print(f"CoNLL-2003 eng.testa, {len(sentences)} sentences, batch {args.batch}, {args.threads} threads")
    print("| | file | entity F1 | sentences/s | vs PyTorch |")
    print("|---|---|---|---|---|")
    out = {}
    for name, ((score, speed), size) in rows.items():
        file = f"{size:.1f} MB" if size else "—"
        print(f"| {name} | {file} | {score:.4f} | {speed:.1f} | {speed / base:.2f}× |")
        out[name] = {"entity_f1": score, "sentences_per_s": speed, "megabytes": size}
    if args.json:
        json.dump(out, open(args.json, "w"), indent=1)


if __name__ == "__main__":
    main()
