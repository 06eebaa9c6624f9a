#!/usr/bin/env python3
"""Builds the tiny reference models and golden outputs the engine's tests compare against.

For each family (BERT, DistilBERT, RoBERTa) it:
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

It also writes the values of the transformers LR schedules for a few step counts, and a
pytorch_model.bin (bfloat16) copy of the tiny BERT to test the pickle reader.

Usage: python make_fixtures.py --sst2 ../shared/datasets/sst2/train.tsv --out tests/fixtures [--only-token | --only-choice]
"""
import argparse
import json
import os
import shutil

import torch
import transformers
from safetensors.torch import save_file
from tokenizers import Tokenizer, models, normalizers, pre_tokenizers, processors, decoders, trainers
from transformers import (
    BertConfig,
    BertForMultipleChoice,
    BertForSequenceClassification,
    BertForTokenClassification,
    BertTokenizerFast,
    DistilBertConfig,
    DistilBertForMultipleChoice,
    DistilBertForSequenceClassification,
    DistilBertForTokenClassification,
    DistilBertTokenizerFast,
    RobertaConfig,
    RobertaForMultipleChoice,
    RobertaForSequenceClassification,
    RobertaForTokenClassification,
    RobertaTokenizerFast,
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
                 "roberta": RobertaForTokenClassification}


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
                  "roberta": RobertaForMultipleChoice}


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
    args = ap.parse_args()
    golden_dir = os.path.join(args.out, "golden")
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
    ]
    for i, (family, cls, config, tokenizer) in enumerate(specs):
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
        token_golden(family, model_dir, golden_dir)
        choice_golden(family, model_dir, golden_dir)
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
