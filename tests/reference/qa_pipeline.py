#!/usr/bin/env python3
"""What `transformers.pipeline("question-answering")` answers, for the reference scripts
(make_fixtures.py's QA goldens, check_qa_export.py).

transformers 5 removed the question-answering pipeline (`pipeline("question-answering")` raises
"The task question-answering has been removed from transformers"), and the reference
environment pins transformers 5. So when the installed transformers no longer has
`QuestionAnsweringPipeline`, `answer()` runs a line-for-line port of the last transformers 4
one (4.57, fast tokenizers, align_to_words=False), which calls transformers' own
`select_starts_ends` (still shipped, in pipelines/document_question_answering.py). Under
transformers 4 it runs the real pipeline. The port was checked against transformers 4.57.6's
pipeline: same answers, start, end and scores.

What the pipeline does, in short: each window (question first, truncation only_second, stride
doc_stride, no padding) is run alone; non-context tokens other than [CLS] get logit -10000;
softmax per window; p_start[0] = p_end[0] = 0; the best span of the window maximises
p_start[s]·p_end[e] with s <= e <= s + max_answer_len - 1 (first maximum in (s, e) order);
answer = context[offsets[s][0]:offsets[e][1]]. Across windows: windows whose best answers have
the same text (compared lowercased) are MERGED, their scores summed, keeping the first window's
start/end; then the highest (summed) score wins, ties to the earlier window.

Usage: imported (`from qa_pipeline import answer`); `python qa_pipeline.py MODEL_DIR QUESTION
CONTEXT [--max-seq-len 384 --doc-stride 128 --max-answer-len 15 --port [--no-merge]]` prints one
answer.
"""
import argparse
import json

import numpy as np
import torch
import transformers


def has_pipeline():
    """Whether the installed transformers still has the question-answering pipeline (v4)."""
    return hasattr(transformers, "QuestionAnsweringPipeline")


def answer(model, tokenizer, question, context, max_seq_len=384, doc_stride=128, max_answer_len=15,
           top_k=1, port=False):
    """The pipeline's answer {"score", "start", "end", "answer"} (a list when top_k > 1)."""
    if has_pipeline() and not port:
        qa = transformers.pipeline("question-answering", model=model, tokenizer=tokenizer)
        return qa(question=question, context=context, max_seq_len=max_seq_len, doc_stride=doc_stride,
                  max_answer_len=max_answer_len, top_k=top_k, align_to_words=False)
    return port_answer(model, tokenizer, question, context, max_seq_len, doc_stride, max_answer_len, top_k)


def port_answer(model, tokenizer, question, context, max_seq_len, doc_stride, max_answer_len, top_k=1,
                merge=True):
    """QuestionAnsweringPipeline (transformers 4.57) preprocess + _forward + postprocess, fast
    tokenizers, handle_impossible_answer=False, align_to_words=False. merge=False leaves out the
    pipeline's merging of equal answers from different windows: each window's best span stands
    alone and the best of them wins (ties to the earlier window)."""
    try:  # transformers 5 keeps the function beside the document QA pipeline
        from transformers.pipelines.document_question_answering import select_starts_ends
    except ImportError:  # pragma: no cover
        from transformers.pipelines.question_answering import select_starts_ends
    if not tokenizer.is_fast:
        raise ValueError("the port covers fast tokenizers only")
    if doc_stride > max_seq_len:
        raise ValueError(f"`doc_stride` ({doc_stride}) is larger than `max_seq_len` ({max_seq_len})")
    if tokenizer.padding_side != "right":
        raise ValueError("the port covers right-padding tokenizers (question first) only")

    # preprocess
    encoded = tokenizer(
        text=question,
        text_pair=context,
        padding="do_not_pad",
        truncation="only_second",
        max_length=max_seq_len,
        stride=doc_stride,
        return_token_type_ids=True,
        return_overflowing_tokens=True,
        return_offsets_mapping=True,
        return_special_tokens_mask=True,
    )
    num_spans = len(encoded["input_ids"])
    p_mask = [[tok != 1 for tok in encoded.sequence_ids(span_id)] for span_id in range(num_spans)]
    windows = []
    for span_idx in range(num_spans):
        ids = encoded["input_ids"][span_idx]
        if tokenizer.cls_token_id is not None:  # keep the cls token unmasked
            for cls_index in np.nonzero(np.array(ids) == tokenizer.cls_token_id)[0]:
                p_mask[span_idx][cls_index] = 0
        inputs = {k: torch.tensor(encoded[k][span_idx]).long().unsqueeze(0)
                  for k in tokenizer.model_input_names}
        windows.append((inputs, p_mask[span_idx], encoded[span_idx]))

    # _forward + postprocess
    min_null_score = 1000000
    answers = []
    for inputs, submask, enc in windows:
        with torch.no_grad():
            out = model(**inputs)
        start_, end_ = out.start_logits, out.end_logits
        if start_.dtype == torch.bfloat16:
            start_, end_ = start_.to(torch.float32), end_.to(torch.float32)
        attention_mask = inputs["attention_mask"].numpy() if "attention_mask" in inputs else None
        starts, ends, scores, min_null_score = select_starts_ends(
            start_, end_, submask, attention_mask, min_null_score, top_k, False, max_answer_len)
        for s, e, score in zip(starts, ends, scores):
            start_index, end_index = enc.offsets[s][0], enc.offsets[e][1]
            target = context[start_index:end_index]
            same = next((a for a in answers if a["answer"].lower() == target.lower()), None) if merge else None
            if same:
                same["score"] += score.item()
            else:
                answers.append({"score": score.item(), "start": start_index, "end": end_index,
                                "answer": target})
    answers = sorted(answers, key=lambda x: x["score"], reverse=True)[:top_k]
    if len(answers) == 1:
        return answers[0]
    return answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("model")
    ap.add_argument("question")
    ap.add_argument("context")
    ap.add_argument("--max-seq-len", type=int, default=384)
    ap.add_argument("--doc-stride", type=int, default=128)
    ap.add_argument("--max-answer-len", type=int, default=15)
    ap.add_argument("--port", action="store_true", help="use the port even under transformers 4")
    ap.add_argument("--no-merge", action="store_true", help="the port without merging equal answers")
    args = ap.parse_args()
    model = transformers.AutoModelForQuestionAnswering.from_pretrained(args.model).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(args.model)
    if args.no_merge:
        out = port_answer(model, tokenizer, args.question, args.context, args.max_seq_len, args.doc_stride,
                          args.max_answer_len, merge=False)
    else:
        out = answer(model, tokenizer, args.question, args.context, args.max_seq_len, args.doc_stride,
                     args.max_answer_len, port=args.port)
    print(json.dumps(out))


if __name__ == "__main__":
    main()
