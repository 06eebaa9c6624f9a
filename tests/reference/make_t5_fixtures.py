#!/usr/bin/env python3
"""Builds the encoder-decoder (T5) fixtures Hone's sequence-to-sequence engine is checked against.

One tiny T5-style tokenizer: a Unigram model trained with `tokenizers` on 400 SST-2 sentences
(vocab 300, no normaliser), `<pad>` `</s>` `<unk>` as ids 0-2, a Metaspace pre-tokenizer and
decoder ("▁", prepend_scheme "always"), and the template `$A </s>` / `$A </s> $B </s>`, wrapped
as transformers' T5Tokenizer (transformers 5 has no separate T5TokenizerFast class: the name is
an alias of the tokenizers-backed T5Tokenizer), extra_ids=0 (no sentinels). The pre-tokenizer is
written as Sequence[WhitespaceSplit, Metaspace(split)], the one T5Tokenizer rebuilds when it
loads a folder, so tokenizer.json on its own (the `tokenizers` crate) and transformers encode runs
of spaces alike; the script checks that they agree on a few awkward texts.

Two tiny random T5ForConditionalGeneration models (d_model 32, d_kv 8, 4 heads, d_ff 48, 8
relative-position buckets with max distance 16, dropout 0.1 in the config), each saved with
`save_pretrained` (model.safetensors, config.json, generation_config.json with
decoder_start_token_id 0, eos 1, pad 0) next to the tokenizer:

- tests/fixtures/tiny-t5: the original T5 layout: ReLU feed-forward (wi, wo), 2 + 2 layers,
  tied embeddings (only `shared.weight` is stored) and the decoder output scaled by
  d_model^-0.5 before the tied lm_head;
- tests/fixtures/tiny-t5-v1_1: the T5 v1.1 / Flan-T5 layout: gated-GELU feed-forward (wi_0,
  wi_1, wo; gelu_new), 2 encoder and 3 decoder layers (decoder deeper on purpose), no output
  scaling and its own `lm_head.weight`. transformers 5.24's T5Config always sets
  tie_word_embeddings to true and keeps the old flag only as `scale_decoder_outputs`
  (false here), and ties lm_head at construction; an lm_head stored apart from `shared.weight`
  is loaded untied. So the script unties lm_head itself (a perturbed copy of the embedding)
  before saving, and writes `"tie_word_embeddings": false` into config.json as the Hub's v1.1
  and Flan-T5 configs have it (transformers reads it back as scale_decoder_outputs false); the
  reload is checked to be untied and unscaled.

Every parameter is perturbed by 0.05·N(0, 1) after the seeded init so none sits at its init
value (layer norms are not 1). Random models have near-ties, so the model seed is searched: the
first from 10 (tiny-t5) or 110 (tiny-t5-v1_1) upwards whose float32 generations (below) have
every greedy top-1/top-2 logit gap at or above 1e-3, never generate <pad> (id 0, which would
read as padding), and, for tiny-t5, stop at </s> before 8 new tokens on at least one text. The
seeds found (112 and 111) are printed and stored in golden/t5-generate.json; the perturbation
seed is the model seed + 1000.

transformers 5.24's generate() sizes its default cache by num_layers (the encoder's depth),
which fails for a decoder deeper than the encoder (get_text_config(decoder=True) does not map
T5's num_decoder_layers), so the script passes a cache that grows as needed.

For each model, tests/fixtures/golden/{t5,t5-v1_1}.safetensors, from the saved folder reloaded in
float64 in eval mode (no dropout), on a fixed padded batch of three examples with source lengths
7, 5, 9 and target lengths 4, 6, 3 (random ids in [3, vocab), the last one </s>):
`input.input_ids` and `input.attention_mask` [3 × 9] (padding 0); `decoder.input_ids` [3 × 6]
(transformers' _shift_right of the labels: the decoder start 0, then the targets but the last;
0 on every padding slot, where _shift_right would leave the last </s> in the first one: the
script checks that this changes no logit) and `decoder.attention_mask` [3 × 6]; `labels` [18]
(the target id of each decoder slot, row by row, -100 on padding: the shift is in the decoder
inputs, so these are also transformers' labels); `logits` (the decoder logits of the real slots,
row by row, [13 × vocab]); `loss` (transformers' own loss, checked against cross-entropy of
those logits); and `grad.{name}` for every parameter in named_parameters() (for tiny-t5 the
embedding gradient `grad.shared.weight` sums the encoder input, decoder input and lm_head uses).

tests/fixtures/golden/t5-generate.json: for each model, three short SST-2 sentences, their ids
(with </s>), and what the float32 model (loaded as saved, eval) generates from each, one text at
a time: "greedy" (max_new_tokens 8, num_beams 1) and "beam3" (num_beams 3, length_penalty 1.0,
early_stopping true, no_repeat_ngram_size 0), each without the leading decoder start token, plus
"beam3_score" (the returned sequences_scores) and "greedy_min_gap" (the smallest top-1 minus
top-2 raw logit over the greedy steps).

Usage: python make_t5_fixtures.py --fixtures tests/fixtures
"""
import argparse
import json
import os

import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
from transformers import (AutoTokenizer, DynamicCache, EncoderDecoderCache, T5Config,
                          T5ForConditionalGeneration, T5TokenizerFast)

SPECIALS = ["<pad>", "</s>", "<unk>"]
SOURCE_LENGTHS = [7, 5, 9]
TARGET_LENGTHS = [4, 6, 3]
MAX_NEW = 8
MIN_GAP = 1e-3
# Texts where tokenizer.json alone and transformers' reloaded T5Tokenizer must agree.
AWKWARD = ["a  gorgeous ,   witty film", "  leading and trailing  ", "tab\tand\nnew line",
           "Caf\u00e9 X"]


def read_sentences(path, n=400):
    with open(path, encoding="utf-8") as f:
        next(f)
        return [line.split("\t")[0].strip() for _, line in zip(range(n), f)]


def tokenizer(sentences):
    tok = Tokenizer(models.Unigram())
    tok.pre_tokenizer = pre_tokenizers.Sequence([
        pre_tokenizers.WhitespaceSplit(),
        pre_tokenizers.Metaspace(replacement="\u2581", prepend_scheme="always", split=True)])
    tok.train_from_iterator(sentences, trainers.UnigramTrainer(
        vocab_size=300, special_tokens=SPECIALS, unk_token="<unk>"))
    assert [tok.token_to_id(t) for t in SPECIALS] == [0, 1, 2]
    tok.post_processor = processors.TemplateProcessing(
        single="$A </s>", pair="$A </s> $B </s>", special_tokens=[("</s>", 1)])
    tok.decoder = decoders.Metaspace(replacement="\u2581", prepend_scheme="always")
    return T5TokenizerFast(tokenizer_object=tok, eos_token="</s>", unk_token="<unk>",
                           pad_token="<pad>", extra_ids=0)


def check_tokenizer(folder, texts):
    """tokenizer.json read by `tokenizers` and the folder read by transformers give the same ids."""
    raw = Tokenizer.from_file(os.path.join(folder, "tokenizer.json"))
    auto = AutoTokenizer.from_pretrained(folder)
    for text in texts:
        assert raw.encode(text).ids == auto(text).input_ids, text
    return type(auto).__name__


def config(name, vocab):
    common = dict(vocab_size=vocab, d_model=32, d_kv=8, d_ff=48, num_layers=2, num_heads=4,
                  relative_attention_num_buckets=8, relative_attention_max_distance=16,
                  dropout_rate=0.1, layer_norm_epsilon=1e-6, initializer_factor=1.0,
                  decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
    if name == "t5":
        return T5Config(feed_forward_proj="relu", tie_word_embeddings=True, num_decoder_layers=2,
                        **common)
    return T5Config(feed_forward_proj="gated-gelu", tie_word_embeddings=False,
                    num_decoder_layers=3, **common)


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def build(name, vocab, seed):
    torch.manual_seed(seed)
    model = T5ForConditionalGeneration(config(name, vocab))
    if name != "t5":
        # transformers 5 ties lm_head to shared whatever the flag says; v1.1 checkpoints have
        # their own. The copy is perturbed below, so the two differ.
        model.lm_head.weight = torch.nn.Parameter(model.shared.weight.detach().clone())
    perturb(model, seed + 1000)
    return model.eval()


def generation_ids(model, input_ids, **kwargs):
    # transformers 5.24 sizes generate()'s default cache by the encoder's depth (see above); a
    # cache made without a config grows to whatever depth it meets.
    cache = EncoderDecoderCache(DynamicCache(), DynamicCache())
    out = model.generate(input_ids=input_ids, attention_mask=torch.ones_like(input_ids),
                         max_new_tokens=MAX_NEW, do_sample=False, return_dict_in_generate=True,
                         cache=cache, **kwargs)
    seq = out.sequences[0]
    assert seq[0].item() == model.config.decoder_start_token_id
    seq = seq[1:]
    # Strip padding after an early </s> (none for a batch of one, but be safe).
    ids = seq.tolist()
    if 1 in ids:
        ids = ids[: ids.index(1) + 1]
    return ids, out


def greedy(model, input_ids):
    ids, out = generation_ids(model, input_ids, num_beams=1, output_logits=True)
    gaps = []
    for step in out.logits:
        top = torch.topk(step[0].double(), 2).values
        gaps.append((top[0] - top[1]).item())
    return ids, min(gaps)


def beam3(model, input_ids):
    ids, out = generation_ids(model, input_ids, num_beams=3, length_penalty=1.0,
                              early_stopping=True, no_repeat_ngram_size=0,
                              output_scores=True)
    return ids, out.sequences_scores[0].item()


@torch.no_grad()
def generations(model, tok, texts):
    rows = []
    for text in texts:
        ids = tok(text).input_ids
        t = torch.tensor([ids])
        g, gap = greedy(model, t)
        b, score = beam3(model, t)
        rows.append({"text": text, "input_ids": ids, "greedy": g, "greedy_min_gap": gap,
                     "beam3": b, "beam3_score": score})
    return rows


def acceptable(name, rows):
    if min(r["greedy_min_gap"] for r in rows) < MIN_GAP:
        return False
    # A generated <pad> (id 0) would read as padding in the golden file.
    if any(0 in r["greedy"] or 0 in r["beam3"] for r in rows):
        return False
    if name == "t5":
        return any(len(r["greedy"]) < MAX_NEW and r["greedy"][-1] == 1 for r in rows)
    return True


def choose_seed(name, vocab, tok, texts, start, tries=400):
    for seed in range(start, start + tries):
        model = build(name, vocab, seed)
        if acceptable(name, generations(model, tok, texts)):
            return seed, model
    raise SystemExit(f"no seed in [{start}, {start + tries}) gives clear greedy steps for {name}")


def batch(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    n, s, t = len(SOURCE_LENGTHS), max(SOURCE_LENGTHS), max(TARGET_LENGTHS)
    ids = torch.zeros(n, s, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    labels = torch.full((n, t), -100, dtype=torch.int64)
    dec_mask = torch.zeros(n, t, dtype=torch.int64)
    for row, (ls, lt) in enumerate(zip(SOURCE_LENGTHS, TARGET_LENGTHS)):
        ids[row, : ls - 1] = torch.randint(3, vocab, (ls - 1,), generator=g)
        ids[row, ls - 1] = 1
        mask[row, :ls] = 1
        labels[row, : lt - 1] = torch.randint(3, vocab, (lt - 1,), generator=g)
        labels[row, lt - 1] = 1
        dec_mask[row, :lt] = 1
    return ids, mask, labels, dec_mask


def packed(x, mask):
    return torch.cat([x[r, : int(mask[r].sum())] for r in range(x.shape[0])])


def golden(model, ids, mask, labels, dec_mask):
    shifted = model._shift_right(labels)
    # _shift_right leaves the last target (</s>) in the first padding slot; Hone pads with 0.
    # A masked slot after the real ones changes nothing (checked below).
    dec_ids = shifted * dec_mask
    out = model(input_ids=ids, attention_mask=mask, decoder_input_ids=dec_ids,
                decoder_attention_mask=dec_mask, labels=labels)
    out.loss.backward()
    logits = packed(out.logits.detach(), dec_mask)
    mine = torch.nn.functional.cross_entropy(logits, packed(labels, dec_mask))
    assert abs(mine.item() - out.loss.item()) < 1e-9 * mine.item(), (mine, out.loss)
    with torch.no_grad():
        theirs = model(input_ids=ids, attention_mask=mask, decoder_input_ids=shifted,
                       decoder_attention_mask=dec_mask, labels=labels)
    assert torch.allclose(packed(theirs.logits, dec_mask), logits, rtol=0, atol=1e-12)
    tensors = {
        "input.input_ids": ids.contiguous(),
        "input.attention_mask": mask.contiguous(),
        "decoder.input_ids": dec_ids.contiguous(),
        "decoder.attention_mask": dec_mask.contiguous(),
        "labels": labels.reshape(-1).contiguous(),
        "logits": logits.float().contiguous(),
        "loss": out.loss.detach().float().reshape(1),
    }
    for name, p in model.named_parameters():
        if p.grad is not None:
            tensors[f"grad.{name}"] = p.grad.float().contiguous()
    return tensors


def stored_names(folder):
    with safe_open(os.path.join(folder, "model.safetensors"), "pt") as f:
        return sorted(f.keys())


def untie_config(folder):
    path = os.path.join(folder, "config.json")
    cfg = json.load(open(path))
    cfg["tie_word_embeddings"] = False
    with open(path, "w") as f:
        json.dump(cfg, f, indent=2, sort_keys=True)
        f.write("\n")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--sentences", default=os.path.join(os.path.dirname(__file__),
                                                        "../../../shared/datasets/sst2/train.tsv"))
    args = ap.parse_args()
    golden_dir = os.path.join(args.fixtures, "golden")
    sentences = read_sentences(args.sentences)
    tok = tokenizer(sentences)
    vocab = len(tok)
    short = [s for s in sentences if 4 <= len(s.split()) <= 7]
    texts = [short[0], short[3], short[7]]
    gen = {"max_new_tokens": MAX_NEW, "vocab": vocab}
    for i, name in enumerate(["t5", "t5-v1_1"]):
        seed, model = choose_seed(name, vocab, tok, texts, 10 + 100 * i)
        out = os.path.join(args.fixtures, f"tiny-{name}")
        model.save_pretrained(out)
        tok.save_pretrained(out)
        if name != "t5":
            untie_config(out)
        reloaded_as = check_tokenizer(out, AWKWARD + sentences[:100])
        print(f"tiny-{name}: seed {seed}, tokenizer reloads as {reloaded_as}")
        print("  named_parameters:", [n for n, _ in model.named_parameters()])
        print("  model.safetensors:", stored_names(out))

        ref = T5ForConditionalGeneration.from_pretrained(out, dtype=torch.float64).eval()
        assert ref.config.scale_decoder_outputs == (name == "t5")
        assert (ref.lm_head.weight is ref.shared.weight) == (name == "t5")
        ids, mask, labels, dec_mask = batch(vocab, 30 + i)
        save_file(golden(ref, ids, mask, labels, dec_mask),
                  os.path.join(golden_dir, f"{name}.safetensors"))

        f32 = T5ForConditionalGeneration.from_pretrained(out, dtype=torch.float32).eval()
        rows = generations(f32, tok, texts)
        assert acceptable(name, rows), rows
        gen[name] = {"seed": seed, "examples": rows}
        for r in rows:
            print(f"  {r['text']!r}: greedy {r['greedy']} (min gap {r['greedy_min_gap']:.4f}), "
                  f"beam3 {r['beam3']}")
    with open(os.path.join(golden_dir, "t5-generate.json"), "w") as f:
        json.dump(gen, f, indent=2)
        f.write("\n")
    print("wrote tiny-t5, tiny-t5-v1_1, golden/t5.safetensors, golden/t5-v1_1.safetensors, "
          "golden/t5-generate.json")


if __name__ == "__main__":
    main()
