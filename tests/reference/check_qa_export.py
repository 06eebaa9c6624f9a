#!/usr/bin/env python3
"""Checks that a question-answering folder exported by Hone loads in Hugging Face transformers
unchanged (AutoModelForQuestionAnswering, AutoTokenizer) and that the transformers
question-answering pipeline gives the answers `hone predict --json` printed: the same answer
text, the same character start and end in the context, and the score within a relative
tolerance.

The pipeline runs with max_seq_len = --max-length, doc_stride = --stride, max_answer_len,
align_to_words=False, top_k=1 (transformers 5 removed it: qa_pipeline.py runs its transformers 4
code then). Note the pipeline merges the answers of different windows that have the same text
(lowercased), summing their scores; when an answer differs, the line says whether Hone's matches
the best single window instead, and --no-merge checks against that rule.

Usage: check_qa_export.py EXPORT_DIR PREDICTIONS_JSON [--max-length 384 --stride 128
       --max-answer-len 30 --tolerance 1e-3 --no-merge]
PREDICTIONS_JSON is a list of `hone predict --json` outputs (each a list of answers with at least
question, context, answer, score, start, end). Exit status 0 when everything matches, 1
otherwise.
"""
import argparse
import json
import os
import sys

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))

from transformers import AutoModelForQuestionAnswering, AutoTokenizer  # noqa: E402

from hone_models import load_exported  # noqa: E402
from qa_pipeline import answer, port_answer  # noqa: E402


def same(ref, hone, tolerance):
    """(text, start and end equal, relative score error)"""
    err = abs(ref["score"] - hone["score"]) / max(abs(ref["score"]), 1e-12)
    return (ref["answer"], ref["start"], ref["end"]) == (hone["answer"], hone["start"], hone["end"]), err


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("export_dir")
    ap.add_argument("predictions")
    ap.add_argument("--max-length", type=int, default=384)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--max-answer-len", type=int, default=30)
    ap.add_argument("--tolerance", type=float, default=1e-3)
    ap.add_argument("--no-merge", action="store_true",
                    help="compare with the best single window, not the pipeline's merged answers")
    args = ap.parse_args()

    model = load_exported(args.export_dir, AutoModelForQuestionAnswering)
    tokenizer = AutoTokenizer.from_pretrained(args.export_dir)
    with open(args.predictions, encoding="utf-8") as f:
        predictions = [p for batch in json.load(f) for p in batch]
    shape = dict(max_seq_len=args.max_length, doc_stride=args.stride, max_answer_len=args.max_answer_len)
    failures, worst = 0, 0.0
    for p in predictions:
        q, c = p["question"], p["context"]
        if args.no_merge:
            ref = port_answer(model, tokenizer, q, c, merge=False, **shape)
        else:
            ref = answer(model, tokenizer, q, c, **shape)
        hone = {"answer": p["answer"], "start": p["start"], "end": p["end"], "score": p["score"]}
        span_ok, err = same(ref, hone, args.tolerance)
        worst = max(worst, err)
        if not span_ok or err > args.tolerance:
            failures += 1
            why = ""
            if not args.no_merge:
                single = port_answer(model, tokenizer, q, c, merge=False, **shape)
                single_ok, single_err = same(single, hone, args.tolerance)
                if single_ok and single_err <= args.tolerance:
                    why = " (Hone's is the best single window's; the pipeline summed windows with the same answer)"
            print(f"FAIL {q[:50]}: transformers {ref['answer']!r} [{ref['start']}:{ref['end']}] "
                  f"score {ref['score']:.6g}, hone {hone['answer']!r} [{hone['start']}:{hone['end']}] "
                  f"score {hone['score']:.6g}{why}")
    print(f"{len(predictions)} questions, {failures} mismatches, worst relative score error {worst:.2e}")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
