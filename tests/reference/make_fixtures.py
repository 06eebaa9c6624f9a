#!/usr/bin/env python3
"""Builds the tiny reference models and golden outputs the engine's tests compare against.

For each family (BERT, DistilBERT, RoBERTa, DeBERTa-v3) it:
  * trains a tiny tokenizer on a few hundred SST-2 sentences (WordPiece for BERT and
    DistilBERT, byte-level BPE for RoBERTa) and saves it in Hugging Face format;
  * builds a tiny random `*ForSequenceClassification` model (hidden 32, 2 layers, 3 labels),
    perturbs every parameter so LayerNorm weights and biases are not 1 and 0, and saves it with
    `save_pretrained` (model.safetensors, Hub tensor names);
  * computes, in float64 on the saved float32 weights and in eval mode (no dropout): the logits
    and cross-entropy loss on a fixed padded batch, and the gradient of every parameter;
  * runs three optimizer steps of `torch.optim.AdamW` with two parameter groups (no weight decay
    on biases and LayerNorm weights), gradient clipping by global norm and
    `get_linear_schedule_with_warmup`, recording each step's gradients (before clipping), the
    learning rate, the gradient norm and the parameters after the last step. Hone's optimizer
    test replays those gradients: an f32 model's gradients carry noise of ~1e-9 where the true
    gradient is zero (attention key biases), which Adam's normalisation would amplify to a full
    step, so the optimizer is checked on the reference's own gradients.
For token classification it loads each tiny model as `*ForTokenClassification` (a new head of
5 labels, seeded) and writes `{family}-token.safetensors`: the head's weights, per-token labels
with -100 on special tokens and on every third token (as sub-tokens after a word's first are),
the logits, the loss (mean over labeled tokens) and every gradient. `--only-token` writes just
these from the models already in --out.
For multiple choice it loads each tiny model as `*ForMultipleChoice` (a new one-output
classifier, and RoBERTa's pooler, seeded and perturbed) and writes `{family}-choice.safetensors`
with 3 questions × 4 options (question, option) pairs: the inputs as [12 × seq], the right
options, the [3 × 4] logits, the loss, every gradient and the new head tensors (`head.*`), plus
`{family}-choice.json` with the texts. `--only-choice` writes just these.
For extractive question answering it loads each tiny model as `*ForQuestionAnswering` (a new
`qa_outputs`, seeded and perturbed) and encodes 2 (question, context) examples as Hone does
(question first, truncation only_second, max length 32, stride 8, overflowing windows, padded):
`{family}-qa.safetensors` holds the windows' inputs, sequence ids (-1 for special tokens and
padding), character offsets, sample index, the run_qa.py start/end labels (0, 0 where a window
lacks the answer), the raw start/end logits, the loss (mean of the start and end cross-entropies
with padding masked out of the softmax), every gradient and the head tensors (`head.*`);
`{family}-qa.json` the texts and answers, the answer each example decodes to from those logits by
Hone's rule, and what the transformers question-answering pipeline answers (qa_pipeline.py), also
with answers capped at 2 tokens ("short", where the pipeline's merging of equal answers from
different windows shows: "pipeline_merged").
`--only-qa` writes just these.

It also writes the values of the transformers LR schedules for a few step counts, and a
pytorch_model.bin (bfloat16) copy of the tiny BERT to test the pickle reader.

Usage: python make_fixtures.py --sst2 ../shared/datasets/sst2/train.tsv --out tests/fixtures [--only-token | --only-choice | --only-qa | --only-deberta]
"""
import argparse
import copy
import json
import os
import shutil
import sys

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, decoders, trainers
from transformers import (
    BertConfig,
    BertForMultipleChoice,
    BertForQuestionAnswering,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForMultipleChoice,
    DistilBertForQuestionAnswering,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertTokenizerFast,
    RobertaConfig,
    RobertaForMultipleChoice,
    RobertaForQuestionAnswering,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaTokenizerFast,
    DebertaV2Config,
    DebertaV2ForMultipleChoice,
    DebertaV2ForQuestionAnswering,
    DebertaV2ForSequenceClassification,
    DebertaV2ForTokenClassification,
    get_constant_schedule_with_warmup,
    get_cosine_schedule_with_warmup,
    get_linear_schedule_with_warmup,
)

LABELS = ["negative", "neutral", "positive"]
HIDDEN, LAYERS, HEADS, FFN = 32, 2, 4, 64

PAIRS = [
    ("the movie was a delight", "i would watch it again"),
    ("terrible acting and a dull plot", "avoid it"),
    ("a quiet film", "its ending rewards patient viewers with something rare and beautiful"),
    ("okay", "fine"),
]
GOLDEN_LABELS = [2, 0, 2, 1]


def read_sentences(path, n):
    out = []
    with open(path, encoding="utf-8") as f:
        next(f)
        for line in f:
            out.append(line.split("\t")[0].strip())
            if len(out) >= n:
                break
    return out


def wordpiece_tokenizer(sentences, vocab_size):
    tok = Tokenizer(models.WordPiece(unk_token="[UNK]"))
    tok.normalizer = normalizers.BertNormalizer(lowercase=True)
    tok.pre_tokenizer = pre_tokenizers.BertPreTokenizer()
    specials = ["[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"]
    tok.train_from_iterator(sentences, trainers.WordPieceTrainer(vocab_size=vocab_size, special_tokens=specials))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.WordPiece()
    return tok


def bpe_tokenizer(sentences, vocab_size):
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    specials = ["<s>", "<pad>", "</s>", "<unk>", "<mask>"]
    tok.train_from_iterator(sentences, trainers.BpeTrainer(
        vocab_size=vocab_size, special_tokens=specials,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.RobertaProcessing(("</s>", tok.token_to_id("</s>")), ("<s>", tok.token_to_id("<s>")))
    tok.decoder = decoders.ByteLevel()
    return tok


def unigram_tokenizer(sentences, vocab_size):
    """A SentencePiece-style Unigram tokenizer laid out as DeBERTa-v3's tokenizer.json:
    Metaspace pieces, [PAD] [CLS] [SEP] [UNK] as ids 0-3, `[CLS] A [SEP] B [SEP]`."""
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always")
    specials = ["[PAD]", "[CLS]", "[SEP]", "[UNK]", "[MASK]"]
    tok.train_from_iterator(sentences, trainers.UnigramTrainer(
        vocab_size=vocab_size, special_tokens=specials, unk_token="[UNK]"))
    cls, sep = tok.token_to_id("[CLS]"), tok.token_to_id("[SEP]")
    tok.post_processor = processors.TemplateProcessing(
        single="[CLS] $A [SEP]", pair="[CLS] $A [SEP] $B:1 [SEP]:1",
        special_tokens=[("[CLS]", cls), ("[SEP]", sep)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return tok


def deberta_tokenizer(tok):
    """transformers' own DebertaV2Tokenizer over the trained pieces and scores (its normaliser,
    Metaspace and `[CLS] A [SEP] B [SEP]` template with segment ids 0 and 1)."""
    vocab = [(piece, score) for piece, score in json.loads(tok.to_str())["model"]["vocab"]]
    return transformers.DebertaV2Tokenizer(vocab=vocab, model_max_length=64)


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def no_decay(name):
    return name.endswith(".bias") or "LayerNorm.weight" in name or "layer_norm.weight" in name


def golden(family, model_dir, tokenizer, out_dir, model_cls):
    torch.manual_seed(1)
    ref = model_cls.from_pretrained(model_dir).double().eval()
    pair = family != "distilbert"
    if pair:
        enc = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    else:
        enc = tokenizer([a + " " + b for a, b in PAIRS], padding=True, return_tensors="pt")
    labels = torch.tensor(GOLDEN_LABELS)
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}

    out = ref(**inputs)
    loss = torch.nn.functional.cross_entropy(out.logits, labels)
    loss.backward()
    tensors = {f"input.{k}": v.to(torch.int64).contiguous() for k, v in inputs.items()}
    tensors["labels"] = labels.to(torch.int64)
    tensors["logits"] = out.logits.detach().float().contiguous()
    tensors["loss"] = loss.detach().float().reshape(1)
    for name, p in ref.named_parameters():
        tensors[f"grad.{name}"] = p.grad.detach().float().contiguous()

    # Three AdamW steps with no-decay groups, clipping and linear warmup.
    model = model_cls.from_pretrained(model_dir).double().eval()
    named = list(model.named_parameters())
    groups = [
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": 0.01},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ]
    lr, warmup, total = 1e-3, 2, 10
    opt = torch.optim.AdamW(groups, lr=lr, betas=(0.9, 0.999), eps=1e-8)
    sched = get_linear_schedule_with_warmup(opt, warmup, total)
    first_norm = torch.nn.utils.get_total_norm([p.grad for p in ref.parameters()]).item()
    clip = round(first_norm * 0.5, 6)
    lrs, norms = [], []
    for step in range(3):
        opt.zero_grad()
        logits = model(**inputs).logits
        torch.nn.functional.cross_entropy(logits, labels).backward()
        if step > 0:  # step 0's gradients are the "grad." tensors above
            for name, p in model.named_parameters():
                tensors[f"step{step}.grad.{name}"] = p.grad.detach().float().contiguous()
        norms.append(torch.nn.utils.clip_grad_norm_(model.parameters(), clip).item())
        lrs.append(sched.get_last_lr()[0])
        opt.step()
        sched.step()
    for name, p in model.named_parameters():
        tensors[f"after_adamw.{name}"] = p.detach().float().contiguous()

    save_file(tensors, os.path.join(out_dir, f"{family}.safetensors"))
    meta = {
        "family": family,
        "texts": [list(p) if pair else [p[0] + " " + p[1]] for p in PAIRS],
        "labels": GOLDEN_LABELS,
        "adamw": {"lr": lr, "weight_decay": 0.01, "betas": [0.9, 0.999], "eps": 1e-8,
                  "warmup_steps": warmup, "total_steps": total, "clip_norm": clip, "steps": 3,
                  "lrs": lrs, "grad_norms": norms},
        "torch": torch.__version__,
        "transformers": transformers.__version__,
    }
    with open(os.path.join(out_dir, f"{family}.json"), "w") as f:
        json.dump(meta, f, indent=1)


TOKEN_LABELS = 5
TOKEN_CLASSES = {"bert": BertForTokenClassification, "distilbert": DistilBertForTokenClassification,
                 "roberta": RobertaForTokenClassification, "deberta": DebertaV2ForTokenClassification}


def token_golden(family, model_dir, out_dir):
    """Logits, loss and gradients of a token-classification head on the golden batch."""
    cls = TOKEN_CLASSES[family]
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    config = transformers.AutoConfig.from_pretrained(model_dir)
    config.num_labels = TOKEN_LABELS
    config.id2label = {i: f"T{i}" for i in range(TOKEN_LABELS)}
    config.label2id = {v: k for k, v in config.id2label.items()}
    torch.manual_seed(7)
    ref = cls.from_pretrained(model_dir, config=config, ignore_mismatched_sizes=True)
    with torch.no_grad():  # a head that is not zero-mean random: biases too
        g = torch.Generator().manual_seed(8)
        for p in ref.classifier.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.1)
    ref = ref.double().eval()
    pair = family != "distilbert"
    if pair:
        enc = tokenizer([a for a, _ in PAIRS], [b for _, b in PAIRS], padding=True, return_tensors="pt")
    else:
        enc = tokenizer([a + " " + b for a, b in PAIRS], padding=True, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    ids, mask = inputs["input_ids"], inputs["attention_mask"]
    special = torch.zeros_like(ids, dtype=torch.bool)
    for t in tokenizer.all_special_ids:
        special |= ids == t
    labels = ids % TOKEN_LABELS
    position = torch.arange(ids.shape[1]).expand_as(ids)
    labels[(mask == 0) | special | (position % 3 == 2)] = -100
    out = ref(**inputs)
    loss = torch.nn.functional.cross_entropy(out.logits.reshape(-1, TOKEN_LABELS), labels.reshape(-1),
                                             ignore_index=-100)
    loss.backward()
    tensors = {f"input.{k}": v.to(torch.int64).contiguous() for k, v in inputs.items()}
    tensors["labels"] = labels.to(torch.int64).contiguous()
    tensors["logits"] = out.logits.detach().float().contiguous()
    tensors["loss"] = loss.detach().float().reshape(1)
    for name, p in ref.named_parameters():
        tensors[f"grad.{name}"] = p.grad.detach().float().contiguous()
    for name, p in ref.classifier.named_parameters():
        tensors[f"head.classifier.{name}"] = p.detach().float().contiguous()
    save_file(tensors, os.path.join(out_dir, f"{family}-token.safetensors"))


CHOICES = 4
CHOICE_ANSWERS = [2, 0, 3]
CHOICE_CLASSES = {"bert": BertForMultipleChoice, "distilbert": DistilBertForMultipleChoice,
                  "roberta": RobertaForMultipleChoice, "deberta": DebertaV2ForMultipleChoice}


def choice_questions():
    """Three questions (a golden pair's first text) with four options (the second texts)."""
    return [(PAIRS[q][0], [PAIRS[(q + j) % len(PAIRS)][1] for j in range(CHOICES)])
            for q in range(len(CHOICE_ANSWERS))]


def choice_golden(family, model_dir, out_dir):
    """Logits, loss and gradients of a multiple-choice head on 3 questions × 4 options."""
    cls = CHOICE_CLASSES[family]
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    torch.manual_seed(11)
    ref = cls.from_pretrained(model_dir, ignore_mismatched_sizes=True)
    new = [n for n, _ in ref.named_parameters() if n.startswith("classifier.") or ".pooler." in n]
    if family == "distilbert":
        new = [n for n in new if n.startswith("classifier.")]
    if family == "bert":  # the checkpoint has BERT's pooler: only the classifier is new
        new = [n for n in new if n.startswith("classifier.")]
    with torch.no_grad():  # a head that is not zero-mean random: biases too
        g = torch.Generator().manual_seed(12)
        params = dict(ref.named_parameters())
        for n in new:
            params[n].add_(torch.randn(params[n].shape, generator=g) * 0.1)
    ref = ref.double().eval()
    questions = choice_questions()
    firsts = [q for q, options in questions for _ in options]
    seconds = [o for _, options in questions for o in options]
    enc = tokenizer(firsts, seconds, padding=True, return_tensors="pt")
    inputs = {k: v for k, v in enc.items() if k in ("input_ids", "attention_mask", "token_type_ids")}
    shaped = {k: v.reshape(len(questions), CHOICES, -1) for k, v in inputs.items()}
    labels = torch.tensor(CHOICE_ANSWERS)
    out = ref(**shaped)
    loss = torch.nn.functional.cross_entropy(out.logits, labels)
    loss.backward()
    tensors = {f"input.{k}": v.to(torch.int64).contiguous() for k, v in inputs.items()}
    tensors["labels"] = labels.to(torch.int64)
    tensors["logits"] = out.logits.detach().float().contiguous()
    tensors["loss"] = loss.detach().float().reshape(1)
    params = dict(ref.named_parameters())
    for name, p in params.items():
        tensors[f"grad.{name}"] = p.grad.detach().float().contiguous()
    for name in new:
        tensors[f"head.{name}"] = params[name].detach().float().contiguous()
    save_file(tensors, os.path.join(out_dir, f"{family}-choice.safetensors"))
    with open(os.path.join(out_dir, f"{family}-choice.json"), "w") as f:
        json.dump({"questions": [{"question": q, "options": o, "answer": a}
                                 for (q, o), a in zip(questions, CHOICE_ANSWERS)],
                   "new": new}, f, indent=1)


QA_CLASSES = {"bert": BertForQuestionAnswering, "distilbert": DistilBertForQuestionAnswering,
              "roberta": RobertaForQuestionAnswering, "deberta": DebertaV2ForQuestionAnswering}
# Words the tiny tokenizers know: the byte-level BPE of 400 tokens splits most words, and 32
# tokens with a stride of 8 must give each example 2-4 windows, so the contexts are short.
QA_EXAMPLES = [
    {"question": "who is the son?",
     "context": "the film is the story of a man and his son. it is a movie with humor and heart, and "
                "you will see in it the best of the year. the son is a writer.",
     "answer": "a writer"},
    {"question": "where is it set?",
     "context": "this movie is set in a small town by the sea. it is a film of love, and its story is "
                "one that you will like, but it is too long.",
     "answer": "a small town by the sea"},
]
QA_MAX_LENGTH, QA_STRIDE, QA_MAX_ANSWER_LEN = 32, 8, 30
QA_SEEDS = {"deberta": 19}


def qa_examples():
    """The examples in SQuAD form: answers {"text": [...], "answer_start": [...]}."""
    out = []
    for e in QA_EXAMPLES:
        start = e["context"].index(e["answer"])
        out.append({"question": e["question"], "context": e["context"],
                    "answers": {"text": [e["answer"]], "answer_start": [start]}})
    return out


def qa_labels(enc, examples):
    """Start/end token of the first answer in each window, as run_qa.py's prepare_train_features
    labels them ((0, 0), the [CLS] position, where the window does not hold the whole answer)."""
    starts, ends = [], []
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
            starts.append(cls_index)
            ends.append(cls_index)
        else:
            while token_start_index < len(offsets) and offsets[token_start_index][0] <= start_char:
                token_start_index += 1
            starts.append(token_start_index - 1)
            while offsets[token_end_index][1] >= end_char:
                token_end_index -= 1
            ends.append(token_end_index + 1)
            # run_qa.py's start search runs past the context when the answer starts at its last
            # token; the golden examples must not hit that.
            assert sequence_ids[starts[-1]] == 1 and sequence_ids[ends[-1]] == 1
    return starts, ends


def qa_decode(start_logits, end_logits, sequence_ids, attention_mask, offsets, sample, examples,
              max_answer_len):
    """Hone's answer per example from window logits (float64): per window, non-context tokens
    other than position 0 get logit -10000, padding is left out, softmax, p[0] = 0, the best span
    s <= e <= s + max_answer_len - 1 over context tokens (first maximum in (s, e) order); across
    an example's windows the highest score (first maximum) wins."""
    best = [None] * len(examples)
    for w in range(start_logits.shape[0]):
        seq, mask = sequence_ids[w], attention_mask[w]
        n = int(mask.sum())  # padding is at the end
        allowed = (seq[:n] == 1)
        allowed[0] = True
        probs = []
        for logits in (start_logits[w, :n], end_logits[w, :n]):
            x = torch.where(allowed, logits, torch.full_like(logits, -10000.0))
            p = torch.softmax(x, dim=0)
            p[0] = 0.0
            probs.append(p)
        p_start, p_end = probs
        context = [t for t in range(n) if seq[t] == 1]
        win = None
        for s in context:
            for e in context:
                if s <= e <= s + max_answer_len - 1:
                    score = (p_start[s] * p_end[e]).item()
                    if win is None or score > win[0]:
                        win = (score, s, e)
        i = int(sample[w])
        if best[i] is None or win[0] > best[i][0]:
            score, s, e = win
            start, end = int(offsets[w, s, 0]), int(offsets[w, e, 1])
            best[i] = (score, {"text": examples[i]["context"][start:end], "start": start, "end": end,
                               "score": score})
    return [b[1] for b in best]


def qa_golden(family, model_dir, out_dir):
    """Logits, loss and gradients of a question-answering head on 2 examples cut into windows,
    the answers Hone's decoding gives and what the transformers pipeline answers."""
    sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
    from qa_pipeline import answer as pipeline_answer, port_answer

    cls = QA_CLASSES[family]
    tokenizer = transformers.AutoTokenizer.from_pretrained(model_dir)
    config = transformers.AutoConfig.from_pretrained(model_dir)
    config.num_labels = 2
    config.id2label = {0: "LABEL_0", 1: "LABEL_1"}
    config.label2id = {"LABEL_0": 0, "LABEL_1": 1}
    # A head whose best answer comes from one window (the pipeline sums the scores of windows
    # that give the same text): with DeBERTa the first seeds give merged ones.
    torch.manual_seed(QA_SEEDS.get(family, 13))
    ref = cls.from_pretrained(model_dir, config=config, ignore_mismatched_sizes=True)
    new = [n for n, _ in ref.named_parameters() if n.startswith("qa_outputs.")]
    with torch.no_grad():  # a head that is not zero-mean random: biases too
        g = torch.Generator().manual_seed(QA_SEEDS.get(family, 13) + 1)
        params = dict(ref.named_parameters())
        for n in new:
            params[n].add_(torch.randn(params[n].shape, generator=g) * 0.1)
    single = copy.deepcopy(ref).float().eval()  # what the pipeline runs
    ref = ref.double().eval()

    examples = qa_examples()
    enc = tokenizer([e["question"].lstrip() for e in examples], [e["context"] for e in examples],
                    truncation="only_second", max_length=QA_MAX_LENGTH, stride=QA_STRIDE,
                    return_overflowing_tokens=True, return_offsets_mapping=True, padding=True)
    windows = len(enc["input_ids"])
    starts, ends = qa_labels(enc, examples)
    inputs = {k: torch.tensor(enc[k], dtype=torch.int64) for k in ("input_ids", "attention_mask", "token_type_ids")
              if k in enc}
    sequence_ids = torch.tensor([[-1 if s is None else s for s in enc.sequence_ids(i)] for i in range(windows)])
    offsets = torch.tensor(enc["offset_mapping"], dtype=torch.int64)
    sample = torch.tensor(enc["overflow_to_sample_mapping"], dtype=torch.int64)
    start_positions, end_positions = torch.tensor(starts), torch.tensor(ends)

    out = ref(**inputs)
    pad = inputs["attention_mask"] == 0
    loss = (torch.nn.functional.cross_entropy(out.start_logits.masked_fill(pad, float("-inf")), start_positions)
            + torch.nn.functional.cross_entropy(out.end_logits.masked_fill(pad, float("-inf")), end_positions)) / 2
    loss.backward()

    tensors = {f"input.{k}": v.contiguous() for k, v in inputs.items()}
    tensors["sequence_ids"] = sequence_ids.to(torch.int64).contiguous()
    tensors["offsets"] = offsets.contiguous()
    tensors["sample"] = sample
    tensors["start_positions"] = start_positions.to(torch.int64)
    tensors["end_positions"] = end_positions.to(torch.int64)
    tensors["start_logits"] = out.start_logits.detach().float().contiguous()
    tensors["end_logits"] = out.end_logits.detach().float().contiguous()
    tensors["loss"] = loss.detach().float().reshape(1)
    params = dict(ref.named_parameters())
    for name, p in params.items():
        tensors[f"grad.{name}"] = p.grad.detach().float().contiguous()
    for name in new:
        tensors[f"head.{name}"] = params[name].detach().float().contiguous()
    save_file(tensors, os.path.join(out_dir, f"{family}-qa.safetensors"))

    def agree(a, p):
        return (a["text"], a["start"], a["end"]) == (p["answer"], p["start"], p["end"]) \
            and abs(a["score"] - p["score"]) <= 1e-4 * max(a["score"], 1e-6)

    def decoded(max_answer_len):
        """Hone's answers, the pipeline's, and whether the pipeline merged windows (its score then
        is the sum of the windows' that gave the same text). Hone's rule must equal the pipeline
        without its merging."""
        answers = qa_decode(out.start_logits.detach(), out.end_logits.detach(), sequence_ids,
                            inputs["attention_mask"], offsets, sample, examples, max_answer_len)
        shape = dict(max_seq_len=QA_MAX_LENGTH, doc_stride=QA_STRIDE, max_answer_len=max_answer_len)
        pipeline = [pipeline_answer(single, tokenizer, e["question"], e["context"], **shape) for e in examples]
        single_window = [port_answer(single, tokenizer, e["question"], e["context"], merge=False, **shape)
                         for e in examples]
        for a, p in zip(answers, single_window):
            if not agree(a, p):
                raise SystemExit(f"{family}: Hone's decoding {a} and the pipeline's best window {p} disagree")
        return answers, pipeline, [not agree(a, p) for a, p in zip(answers, pipeline)]

    answers, pipeline, merged = decoded(QA_MAX_ANSWER_LEN)
    if any(merged):
        raise SystemExit(f"{family}: the pipeline merged windows: {pipeline} vs {answers}")
    # A window holds at most ~23 context tokens, so a cap of 30 never binds: the same with 2. There
    # BERT's first example gets "y" from two windows, and the pipeline sums their scores.
    short_answers, short_pipeline, short_merged = decoded(2)
    with open(os.path.join(out_dir, f"{family}-qa.json"), "w") as f:
        json.dump({"examples": examples, "max_length": QA_MAX_LENGTH, "stride": QA_STRIDE,
                   "max_answer_len": QA_MAX_ANSWER_LEN, "new": new, "answers": answers,
                   "pipeline": pipeline,
                   "short": {"max_answer_len": 2, "answers": short_answers, "pipeline": short_pipeline,
                             "pipeline_merged": short_merged}},
                  f, indent=1)
    print(f"{family}: {windows} windows, samples {sample.tolist()}, labels "
          f"{list(zip(starts, ends))}, loss {loss.item():.6f}", file=sys.stderr)


def schedules(out_dir):
    total, warmup = 20, 5
    rows = {}
    for name, make in [("linear", lambda o: get_linear_schedule_with_warmup(o, warmup, total)),
                       ("cosine", lambda o: get_cosine_schedule_with_warmup(o, warmup, total)),
                       ("constant", lambda o: get_constant_schedule_with_warmup(o, warmup))]:
        opt = torch.optim.SGD([torch.nn.Parameter(torch.zeros(1))], lr=1.0)
        s = make(opt)
        vals = []
        for _ in range(total + 1):
            vals.append(s.get_last_lr()[0])
            opt.step()
            s.step()
        rows[name] = vals
    with open(os.path.join(out_dir, "schedules.json"), "w") as f:
        json.dump({"total_steps": total, "warmup_steps": warmup, "multipliers": rows}, f, indent=1)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--sst2", required=True)
    ap.add_argument("--out", required=True)
    ap.add_argument("--only-token", action="store_true")
    ap.add_argument("--only-choice", action="store_true")
    ap.add_argument("--only-qa", action="store_true")
    ap.add_argument("--only-deberta", action="store_true")
    args = ap.parse_args()
    golden_dir = os.path.join(args.out, "golden")
    if args.only_qa:
        for family in QA_CLASSES:
            qa_golden(family, os.path.join(args.out, f"tiny-{family}"), golden_dir)
        return
    if args.only_choice:
        for family in CHOICE_CLASSES:
            choice_golden(family, os.path.join(args.out, f"tiny-{family}"), golden_dir)
        return
    if args.only_token:
        for family in TOKEN_CLASSES:
            token_golden(family, os.path.join(args.out, f"tiny-{family}"), golden_dir)
        return
    torch.manual_seed(0)
    sentences = read_sentences(args.sst2, 2000)
    os.makedirs(golden_dir, exist_ok=True)
    id2label = dict(enumerate(LABELS))
    label2id = {v: k for k, v in id2label.items()}

    wp = wordpiece_tokenizer(sentences, 400)
    bpe = bpe_tokenizer(sentences, 400)
    unigram = unigram_tokenizer(sentences, 400)
    specs = [
        ("bert", BertForSequenceClassification,
         BertConfig(vocab_size=wp.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                    num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=64,
                    type_vocab_size=2, pad_token_id=0),
         BertTokenizerFast(tokenizer_object=wp, model_max_length=64)),
        ("distilbert", DistilBertForSequenceClassification,
         DistilBertConfig(vocab_size=wp.get_vocab_size(), dim=HIDDEN, n_layers=LAYERS, n_heads=HEADS,
                          hidden_dim=FFN, max_position_embeddings=64, pad_token_id=0),
         DistilBertTokenizerFast(tokenizer_object=wp, model_max_length=64)),
        ("roberta", RobertaForSequenceClassification,
         RobertaConfig(vocab_size=bpe.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                       num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=66,
                       type_vocab_size=1, pad_token_id=1, bos_token_id=0, eos_token_id=2,
                       layer_norm_eps=1e-5),
         RobertaTokenizerFast(tokenizer_object=bpe, model_max_length=64)),
        # DeBERTa-v3's layout: relative attention both ways (c2p, p2c) through the shared key
        # and query projections, layer-normed relative embeddings, no absolute positions, no
        # segments. 16 position buckets (v3 has 256) so that the golden batches, up to 32
        # tokens, reach the log-spaced buckets beyond distance 8.
        ("deberta", DebertaV2ForSequenceClassification,
         DebertaV2Config(vocab_size=unigram.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=64,
                         type_vocab_size=0, pad_token_id=0, relative_attention=True,
                         position_buckets=16, max_relative_positions=64, pos_att_type=["p2c", "c2p"],
                         share_att_key=True, norm_rel_ebd="layer_norm", position_biased_input=False,
                         layer_norm_eps=1e-7, pooler_hidden_size=HIDDEN, pooler_dropout=0,
                         pooler_hidden_act="gelu", hidden_act="gelu"),
         deberta_tokenizer(unigram)),
        # DeBERTa-v2's other settings: position projections of each layer's own (no shared
        # key), absolute positions and segments, embeddings narrower than the layers
        # (embed_proj), distances clamped at 12 without buckets, no LayerNorm on the relative
        # embeddings. Sequence classification only.
        ("deberta-v2", DebertaV2ForSequenceClassification,
         DebertaV2Config(vocab_size=unigram.get_vocab_size(), hidden_size=HIDDEN, num_hidden_layers=LAYERS,
                         num_attention_heads=HEADS, intermediate_size=FFN, max_position_embeddings=64,
                         type_vocab_size=2, pad_token_id=0, relative_attention=True, position_buckets=-1,
                         max_relative_positions=12, pos_att_type=["c2p", "p2c"], share_att_key=False,
                         norm_rel_ebd="none", position_biased_input=True, embedding_size=24,
                         layer_norm_eps=1e-7, pooler_hidden_size=HIDDEN, pooler_dropout=0,
                         pooler_hidden_act="tanh", hidden_act="gelu"),
         deberta_tokenizer(unigram)),
    ]
    for i, (family, cls, config, tokenizer) in enumerate(specs):
        if args.only_deberta and not family.startswith("deberta"):
            continue
        config.num_labels = len(LABELS)
        config.id2label, config.label2id = id2label, label2id
        model_dir = os.path.join(args.out, f"tiny-{family}")
        shutil.rmtree(model_dir, ignore_errors=True)
        torch.manual_seed(10 + i)
        model = cls(config)
        perturb(model, 100 + i)
        model.save_pretrained(model_dir)
        tokenizer.save_pretrained(model_dir)
        golden(family, model_dir, tokenizer, golden_dir, cls)
        if family == "deberta-v2":
            continue
        token_golden(family, model_dir, golden_dir)
        choice_golden(family, model_dir, golden_dir)
        qa_golden(family, model_dir, golden_dir)
        if family == "bert":
            pth_dir = os.path.join(args.out, "tiny-bert-pth-bf16")
            shutil.rmtree(pth_dir, ignore_errors=True)
            os.makedirs(pth_dir)
            shutil.copy(os.path.join(model_dir, "config.json"), pth_dir)
            state = {k: v.to(torch.bfloat16) for k, v in model.state_dict().items()}
            torch.save(state, os.path.join(pth_dir, "pytorch_model.bin"))
    schedules(golden_dir)


if __name__ == "__main__":
    main()
