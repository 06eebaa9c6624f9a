#!/usr/bin/env python3
"""Checks an ONNX folder written by `hone export --onnx`: every .onnx file (in onnx/) passes ONNX's full
checker, ONNX Runtime runs it on a padded batch of texts of different lengths (dynamic batch
and sequence axes), and its outputs equal, at every real token, those of

- `hone predict --json` (PREDICTIONS_JSON, text classification: Hone's own logits), and
- transformers on the transformers folder the export came from (every task),

within the tolerance (relative to the largest output magnitude). An int8 model
(model_quantized.onnx) is compared with the float32 one: its largest relative error and its
agreement on the top class are printed, and must stay within --int8-tolerance.

Usage: check_onnx_export.py ONNX_DIR MODEL_DIR [--predictions FILE] [--tolerance 1e-4]
                            [--int8-tolerance 0.1]
Exit status 0 when everything matches, 1 otherwise.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import numpy as np  # noqa: E402
import onnx  # noqa: E402
import onnxruntime as ort  # noqa: E402
import torch  # noqa: E402
import transformers  # noqa: E402
from transformers import AutoTokenizer  # noqa: E402

SENTENCES = [
    "The movie was an absolute delight from start to finish.",
    "Terrible.",
    "Shipping was fast but the box arrived crushed, and the manual was missing two pages.",
    "élan, naïveté and café au lait — unicode survives tokenization 😀",
    "Great value for the price.",
]
QUESTIONS = [
    ("Where did the guide live?", "Our guide lived in Lisbon for ten years before moving to Porto."),
    ("What broke?", "The battery died after two hours, then the screen cracked."),
    ("Who wrote it?", "It was written by a committee."),
]
CHOICES = [
    ("What do plants need to make food?", ["sunlight", "sand", "plastic"]),
    ("Which is a mammal?", ["a whale", "a shark", "a trout that lives in a cold river"]),
]


def task_of(config):
    arch = (config.architectures or ["ForSequenceClassification"])[0]
    for suffix, task in [
        ("ForTokenClassification", "token-classification"),
        ("ForMultipleChoice", "multiple-choice"),
        ("ForQuestionAnswering", "question-answering"),
    ]:
        if arch.endswith(suffix):
            return task
    return "sequence-classification"


def encode(tokenizer, task, texts):
    """A padded batch for the task (numpy int64) and the mask of real tokens."""
    if task == "question-answering":
        enc = tokenizer([q for q, _ in QUESTIONS], [c for _, c in QUESTIONS], padding=True,
                        return_tensors="np")
    elif task == "multiple-choice":
        first = [q for q, options in CHOICES for _ in options]
        second = [o for _, options in CHOICES for o in options]
        enc = tokenizer(first, second, padding=True, return_tensors="np")
        n = len(CHOICES[0][1])
        enc = {k: v.reshape(len(CHOICES), n, -1) for k, v in enc.items()}
    else:
        enc = tokenizer(texts, padding=True, return_tensors="np")
    return {k: np.asarray(v, dtype=np.int64) for k, v in enc.items()}


def run_onnx(path, enc):
    session = ort.InferenceSession(path, providers=["CPUExecutionProvider"])
    names = [i.name for i in session.get_inputs()]
    feed = {n: enc[n] if n in enc else np.zeros_like(enc["input_ids"]) for n in names}
    outputs = session.run(None, feed)
    return {o.name: v for o, v in zip(session.get_outputs(), outputs)}


def run_transformers(model_dir, task, enc):
    auto = {
        "sequence-classification": transformers.AutoModelForSequenceClassification,
        "token-classification": transformers.AutoModelForTokenClassification,
        "multiple-choice": transformers.AutoModelForMultipleChoice,
        "question-answering": transformers.AutoModelForQuestionAnswering,
    }[task]
    model = auto.from_pretrained(model_dir).eval()
    with torch.no_grad():
        out = model(**{k: torch.from_numpy(v) for k, v in enc.items()})
    if task == "question-answering":
        return {"start_logits": out.start_logits.numpy(), "end_logits": out.end_logits.numpy()}
    return {"logits": out.logits.numpy()}


def relative_error(a, b, mask=None):
    """The largest |a − b| over real tokens, relative to the largest |b| there."""
    a, b = np.asarray(a, dtype=np.float64), np.asarray(b, dtype=np.float64)
    if mask is not None:
        keep = mask.astype(bool)
        a, b = a[keep], b[keep]
    return float(np.abs(a - b).max() / max(np.abs(b).max(), 1e-6))


def token_mask(task, enc, name):
    """The real tokens of a per-token output (None for per-sequence outputs)."""
    if task in ("token-classification", "question-answering"):
        return enc["attention_mask"]
    return None


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("onnx_dir")
    ap.add_argument("model_dir")
    ap.add_argument("--predictions")
    ap.add_argument("--tolerance", type=float, default=1e-4)
    ap.add_argument("--int8-tolerance", type=float, default=0.1)
    args = ap.parse_args()

    failures = 0
    models = os.path.join(args.onnx_dir, "onnx")
    files = sorted(f for f in os.listdir(models) if f.endswith(".onnx"))
    for f in files:
        onnx.checker.check_model(os.path.join(models, f), full_check=True)
        model = onnx.load(os.path.join(models, f))
        opset = max(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))
        print(f"checker ok: {f} (opset {opset}, inputs "
              f"{[i.name for i in model.graph.input]}, outputs {[o.name for o in model.graph.output]})")

    config = transformers.AutoConfig.from_pretrained(args.onnx_dir)
    task = task_of(config)
    tokenizer = AutoTokenizer.from_pretrained(args.onnx_dir)
    texts = SENTENCES
    hone = None
    if args.predictions:
        with open(args.predictions, encoding="utf-8") as fh:
            hone = json.load(fh)
        texts = [p["text"] for p in hone]
    enc = encode(tokenizer, task, texts)
    print(f"task {task}; batch {tuple(enc['input_ids'].shape)} with padding")

    ours = run_onnx(os.path.join(models, "model.onnx"), enc)
    reference = run_transformers(args.model_dir, task, enc)
    for name, want in reference.items():
        err = relative_error(ours[name], want, token_mask(task, enc, name))
        ok = err <= args.tolerance
        failures += 0 if ok else 1
        print(f"{'ok  ' if ok else 'FAIL'} onnxruntime vs transformers {name}: rel.err {err:.2e}")

    if hone is not None:
        logits = ours["logits"]
        for i, p in enumerate(hone):
            err = relative_error(logits[i], p["logits"])
            ok = err <= args.tolerance and config.id2label[int(logits[i].argmax())] == p["label"]
            failures += 0 if ok else 1
            print(f"{'ok  ' if ok else 'FAIL'} onnxruntime vs hone rel.err {err:.2e}  {p['text'][:50]}")

    quantized = os.path.join(models, "model_quantized.onnx")
    if os.path.exists(quantized):
        q = run_onnx(quantized, enc)
        for name, want in ours.items():
            mask = token_mask(task, enc, name)
            err = relative_error(q[name], want, mask)
            if task == "question-answering":
                # The best start (end) of each window, among its real tokens.
                real = mask.astype(bool)
                top_q = np.where(real, q[name], -np.inf).argmax(-1)
                top_f = np.where(real, want, -np.inf).argmax(-1)
            else:
                top_q, top_f = q[name].argmax(-1), want.argmax(-1)
                if mask is not None:
                    top_q, top_f = top_q[mask.astype(bool)], top_f[mask.astype(bool)]
            agree = float((top_q == top_f).mean())
            ok = err <= args.int8_tolerance
            failures += 0 if ok else 1
            print(f"{'ok  ' if ok else 'FAIL'} int8 vs float32 {name}: rel.err {err:.2e}, "
                  f"top class agrees on {agree:.0%}")

    print(f"{len(files)} ONNX files, {failures} mismatches")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
