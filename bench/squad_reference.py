#!/usr/bin/env python3
"""The PyTorch + transformers side of bench/squad_accuracy.sh: fine-tunes
AutoModelForQuestionAnswering on the prepared SQuAD JSON with the same recipe as `hone train
--task question-answering` and prints SQuAD exact match and F1 (fractions) on the test questions
as JSON.

Recipe: each question + context cut into windows as transformers' run_qa.py does (question
lstripped and first, truncation only_second, --max-length, overlap --stride, overflowing
windows), labelled with the first answer's start and end tokens as run_qa.py labels them ((0, 0)
where a window does not hold the whole answer); shuffled windows, batches of --batch windows
with dynamic padding; loss = (cross-entropy of the start + of the end) / 2, each a mean over the
batch's windows, with padding masked out of the softmax as Hone does (--unmasked-loss: the loss
transformers computes, padding included); AdamW with no decay on biases and LayerNorm weights,
linear warmup then linear decay, clipping by global norm, dropout on.

Answers (as Hone decodes them, = transformers' question-answering pipeline with
align_to_words=False but without its merging of equal answers across windows): per window,
non-context tokens other than position 0 get logit -10000, padding is left out, softmax,
p_start[0] = p_end[0] = 0, the best span s <= e <= s + max_answer_len - 1 over context tokens by
p_start[s]·p_end[e] (first maximum); across a question's windows the highest score (the earlier
window on a tie); the answer is the context's characters from the start token's first to the end
token's last. Scored with the official SQuAD v1.1 exact match and F1 (tests/reference/squad_metric.py).

Usage: squad_reference.py --model DIR --train train.json --test test.json [--epochs 1 --batch 16
       --max-length 256 --stride 128 --lr 5e-5 --warmup-ratio 0.1 --weight-decay 0.01 --clip 1.0
       --seed 42 --max-answer-len 30 --threads N --unmasked-loss]
--threads defaults to $OMP_NUM_THREADS, else 2. Progress goes to stderr every 50 steps.
"""
import argparse
import json
import math
import os
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from transformers import AutoModelForQuestionAnswering, AutoTokenizer, get_linear_schedule_with_warmup  # noqa: E402

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "reference"))
from squad_metric import exact_match_score, f1_score, metric_max_over_ground_truths  # noqa: E402


def read(path):
    """SQuAD JSON -> [{"question", "context", "answers": {"text", "answer_start"}}] in file order."""
    with open(path, encoding="utf-8") as f:
        data = json.load(f)["data"]
    return [{"question": qa["question"], "context": p["context"],
             "answers": {"text": [a["text"] for a in qa["answers"]],
                         "answer_start": [a["answer_start"] for a in qa["answers"]]}}
            for article in data for p in article["paragraphs"] for qa in p["qas"]]


def windows(tok, examples, max_length, stride):
    return tok([e["question"].lstrip() for e in examples], [e["context"] for e in examples],
               truncation="only_second", max_length=max_length, stride=stride,
               return_overflowing_tokens=True, return_offsets_mapping=True)


def train_features(tok, examples, max_length, stride):
    """run_qa.py's prepare_train_features: the windows with start/end labels."""
    enc = windows(tok, examples, max_length, stride)
    names = [k for k in tok.model_input_names if k in enc]
    features = []
    for i, offsets in enumerate(enc["offset_mapping"]):
        input_ids = enc["input_ids"][i]
        cls_index = 0
        sequence_ids = enc.sequence_ids(i)
        answers = examples[enc["overflow_to_sample_mapping"][i]]["answers"]
        start_char = answers["answer_start"][0]
        end_char = start_char + len(answers["text"][0])
        token_start_index = 0
        while sequence_ids[token_start_index] != 1:
            token_start_index += 1
        token_end_index = len(input_ids) - 1
        while sequence_ids[token_end_index] != 1:
            token_end_index -= 1
        if not (offsets[token_start_index][0] <= start_char and offsets[token_end_index][1] >= end_char):
            start, end = cls_index, cls_index
        else:
            while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                token_start_index += 1
            start = token_start_index - 1
            while offsets[token_end_index][1] >= end_char:
                token_end_index -= 1
            end = token_end_index + 1
        feature = {k: enc[k][i] for k in names}
        feature["start_positions"], feature["end_positions"] = start, end
        features.append(feature)
    return features


def pad(tok, features):
    """Dynamic padding to the longest window of the batch."""
    width = max(len(f["input_ids"]) for f in features)
    batch = {}
    for k in ("input_ids", "attention_mask", "token_type_ids"):
        if k in features[0]:
            value = tok.pad_token_id if k == "input_ids" else 0
            batch[k] = torch.tensor([f[k] + [value] * (width - len(f[k])) for f in features])
    return batch


def loss_of(out, batch, starts, ends, masked):
    start_logits, end_logits = out.start_logits, out.end_logits
    if masked:
        pads = batch["attention_mask"] == 0
        start_logits = start_logits.masked_fill(pads, float("-inf"))
        end_logits = end_logits.masked_fill(pads, float("-inf"))
    ce = torch.nn.functional.cross_entropy
    return (ce(start_logits, starts) + ce(end_logits, ends)) / 2


def best_span(start_logits, end_logits, sequence_ids, max_answer_len):
    """(score, s, e) of one window (unpadded logits, float64) by Hone's rule."""
    n = len(start_logits)
    context = torch.tensor([s == 1 for s in sequence_ids[:n]])
    allowed = context.clone()
    allowed[0] = True
    probs = []
    for logits in (start_logits, end_logits):
        p = torch.softmax(torch.where(allowed, logits, torch.full_like(logits, -10000.0)), dim=0)
        p[0] = 0.0
        probs.append(p)
    scores = probs[0][:, None] * probs[1][None, :]
    ok = torch.triu(torch.ones(n, n, dtype=torch.bool)) & ~torch.triu(torch.ones(n, n, dtype=torch.bool),
                                                                     diagonal=max_answer_len)
    ok &= context[:, None] & context[None, :]
    scores = torch.where(ok, scores, torch.full_like(scores, -1.0))
    flat = int(torch.argmax(scores))  # the first maximum in (s, e) order
    return scores.flatten()[flat].item(), flat // n, flat % n


def predict(model, tok, examples, max_length, stride, max_answer_len, batch_size=64):
    """Each question's answer as Hone and the question-answering pipeline read it: each window's
    best span, windows whose spans read the same (ignoring case) merged with their scores
    summed, the highest score (the earliest on a tie)."""
    enc = windows(tok, examples, max_length, stride)
    names = [k for k in tok.model_input_names if k in enc]
    found = [[] for _ in examples]  # per question: [score, text] in window order
    model.eval()
    with torch.no_grad():
        for i in range(0, len(enc["input_ids"]), batch_size):
            idx = list(range(i, min(i + batch_size, len(enc["input_ids"]))))
            batch = pad(tok, [{k: enc[k][j] for k in names} for j in idx])
            out = model(**batch)
            for row, j in enumerate(idx):
                n = len(enc["input_ids"][j])
                score, s, e = best_span(out.start_logits[row, :n].double(), out.end_logits[row, :n].double(),
                                        enc.sequence_ids(j), max_answer_len)
                if score < 0:
                    continue  # no passage token in the window
                q = enc["overflow_to_sample_mapping"][j]
                offsets = enc["offset_mapping"][j]
                text = examples[q]["context"][offsets[s][0]:offsets[e][1]]
                same = next((a for a in found[q] if a[1].lower() == text.lower()), None)
                if same:
                    same[0] += score
                else:
                    found[q].append([score, text])
    answers = []
    for candidates in found:
        best = None
        for score, text in candidates:
            if best is None or score > best[0]:
                best = (score, text)
        answers.append(best[1] if best else "")
    return answers


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--test", required=True)
    ap.add_argument("--epochs", type=int, default=1)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--stride", type=int, default=128)
    ap.add_argument("--lr", type=float, default=5e-5)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--max-answer-len", type=int, default=30)
    ap.add_argument("--threads", type=int, default=int(os.environ.get("OMP_NUM_THREADS", 2)))
    ap.add_argument("--unmasked-loss", action="store_true", help="padding inside the softmax, as transformers")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForQuestionAnswering.from_pretrained(args.model)
    train, test = read(args.train), read(args.test)
    features = train_features(tok, train, args.max_length, args.stride)

    def no_decay(n):
        return n.endswith(".bias") or "LayerNorm.weight" in n or "layer_norm.weight" in n

    named = list(model.named_parameters())
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=args.lr, eps=1e-8)
    steps_per_epoch = math.ceil(len(features) / args.batch)
    total = steps_per_epoch * args.epochs
    sched = get_linear_schedule_with_warmup(opt, math.ceil(total * args.warmup_ratio), total)

    g = torch.Generator().manual_seed(args.seed)
    start = time.time()
    model.train()
    for _ in range(args.epochs):
        order = torch.randperm(len(features), generator=g).tolist()
        for i in range(0, len(order), args.batch):
            chunk = [features[j] for j in order[i:i + args.batch]]
            batch = pad(tok, chunk)
            out = model(**batch)
            loss = loss_of(out, batch, torch.tensor([f["start_positions"] for f in chunk]),
                           torch.tensor([f["end_positions"] for f in chunk]), not args.unmasked_loss)
            loss.backward()
            torch.nn.utils.clip_grad_norm_(model.parameters(), args.clip)
            opt.step()
            sched.step()
            opt.zero_grad(set_to_none=True)
            step = i // args.batch + 1
            if step % 50 == 0:
                print(f"step {step}/{steps_per_epoch} loss {loss.item():.4f} "
                      f"{time.time() - start:.0f}s", file=sys.stderr)
    train_s = time.time() - start

    answers = predict(model, tok, test, args.max_length, args.stride, args.max_answer_len)
    em = sum(metric_max_over_ground_truths(exact_match_score, a, e["answers"]["text"])
             for a, e in zip(answers, test)) / len(test)
    f1 = sum(metric_max_over_ground_truths(f1_score, a, e["answers"]["text"])
             for a, e in zip(answers, test)) / len(test)
    print(json.dumps({"exact_match": em, "f1": f1, "test_examples": len(test), "train_examples": len(train),
                      "train_windows": len(features), "steps": total, "train_seconds": train_s,
                      "loss": "unmasked" if args.unmasked_loss else "padding masked"}))


if __name__ == "__main__":
    main()
