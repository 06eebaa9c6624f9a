#!/usr/bin/env python3
"""Builds the decoder fixtures Hone's engine is checked against.

Three tiny random decoders, made by transformers itself, with one small byte-level BPE
tokenizer and a ChatML chat template (the template SmolLM2 and Qwen2 use):

- tests/fixtures/tiny-llama: LlamaForCausalLM, 4 query heads sharing 2 key/value heads,
  llama3 rope scaling, untied lm_head;
- tests/fixtures/tiny-qwen2: Qwen2ForCausalLM, 4 query heads on 1 key/value head, query/key/
  value biases, tied embeddings;
- tests/fixtures/tiny-llama-bias: LlamaForCausalLM with attention_bias (query, key, value and
  output projections) and mlp_bias, linear rope scaling, 4 key/value heads, tied embeddings.

For each, tests/fixtures/golden/{name}.safetensors holds a padded batch of three sequences
(`input.input_ids`, `input.attention_mask`), Hone's per-slot labels (`labels`: each token's
next token, -100 where no loss is taken: padding, the last token, the first tokens of each
sequence as a prompt), and from the model in float64: the logits of the real tokens in order
(`[tokens × vocab]`), the loss (transformers' own shifted loss) and the gradient of every
parameter (`grad.{name}`).

Then LoRA with PEFT (CAUSAL_LM, every projection of the layers, r=4, alpha=8) on tiny-llama:
the adapter saved with `save_pretrained` into tests/fixtures/lora-llama (base
`../tiny-llama`), A and B given seeded random values, and golden/llama-lora.safetensors with
the logits, loss and every adapter gradient of the reloaded adapter on the same batch.

Usage: python make_llama_fixtures.py --fixtures tests/fixtures
"""
import argparse
import json
import os

import torch
from peft import LoraConfig, PeftModel, get_peft_model
from safetensors.torch import save_file
from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers
from transformers import (LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast, Qwen2Config,
                          Qwen2ForCausalLM)

CHATML = (
    "{% for message in messages %}"
    "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
    "{% endfor %}"
    "{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"
)
SPECIALS = ["<|endoftext|>", "<|im_start|>", "<|im_end|>"]
LENGTHS = [7, 5, 9]
PROMPT = 2


def tokenizer(sentences_path):
    with open(sentences_path, encoding="utf-8") as f:
        next(f)
        sentences = [line.split("\t")[0] for _, line in zip(range(400), f)]
    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(sentences, trainers.BpeTrainer(
        vocab_size=384, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    fast = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<|im_start|>", eos_token="<|im_end|>",
        unk_token="<|endoftext|>", pad_token="<|endoftext|>")
    fast.chat_template = CHATML
    return fast


def perturb(model, seed):
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for p in model.parameters():
            p.add_(torch.randn(p.shape, generator=g) * 0.05)


def batch(vocab, seed):
    g = torch.Generator().manual_seed(seed)
    s = max(LENGTHS)
    ids = torch.zeros(len(LENGTHS), s, dtype=torch.int64)
    mask = torch.zeros_like(ids)
    hf_labels = torch.full_like(ids, -100)
    hone_labels = torch.full_like(ids, -100)
    for row, n in enumerate(LENGTHS):
        ids[row, :n] = torch.randint(3, vocab, (n,), generator=g)
        mask[row, :n] = 1
        hf_labels[row, PROMPT:n] = ids[row, PROMPT:n]
        # Hone's: slot t is labeled with token t+1 (the shift done once, in the data).
        hone_labels[row, PROMPT - 1:n - 1] = ids[row, PROMPT:n]
    return ids, mask, hf_labels, hone_labels


def packed(logits, mask):
    return torch.cat([logits[r, : int(mask[r].sum())] for r in range(logits.shape[0])])


def golden(model, ids, mask, hf_labels, hone_labels, prefix=""):
    out = model(input_ids=ids, attention_mask=mask, labels=hf_labels)
    out.loss.backward()
    logits = packed(out.logits.detach(), mask)
    # Hone's loss from the same logits and its own labels: the shift agrees with transformers'.
    flat = torch.cat([hone_labels[r, : int(mask[r].sum())] for r in range(len(LENGTHS))])
    mine = torch.nn.functional.cross_entropy(logits, flat, ignore_index=-100)
    assert abs(mine.item() - out.loss.item()) < 1e-5 * mine.item(), (mine, out.loss)
    tensors = {
        "input.input_ids": ids.contiguous(),
        "input.attention_mask": mask.contiguous(),
        "labels": hone_labels.reshape(-1).contiguous(),
        "logits": logits.float().contiguous(),
        "loss": mine.detach().float().reshape(1),
    }
    for name, p in model.named_parameters():
        if p.grad is not None:
            tensors[f"grad.{prefix(name) if callable(prefix) else name}"] = p.grad.float().contiguous()
    return tensors


def hone_lora_name(peft_name):
    name = peft_name.removeprefix("base_model.model.")
    return name.replace(".lora_A.default.", ".lora_A.").replace(".lora_B.default.", ".lora_B.")


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--fixtures", required=True)
    ap.add_argument("--sentences", default=os.path.join(os.path.dirname(__file__),
                                                        "../../../shared/datasets/sst2/train.tsv"))
    args = ap.parse_args()
    golden_dir = os.path.join(args.fixtures, "golden")
    tok = tokenizer(args.sentences)
    vocab = len(tok)
    common = dict(vocab_size=vocab, hidden_size=32, intermediate_size=48, num_hidden_layers=2,
                  num_attention_heads=4, max_position_embeddings=64, rms_norm_eps=1e-6,
                  initializer_range=0.1, bos_token_id=tok.bos_token_id,
                  eos_token_id=tok.eos_token_id, pad_token_id=tok.pad_token_id)
    configs = {
        "llama": (LlamaForCausalLM, LlamaConfig(
            num_key_value_heads=2, tie_word_embeddings=False,
            rope_parameters={"rope_type": "llama3", "rope_theta": 10000.0, "factor": 4.0,
                             "low_freq_factor": 1.0, "high_freq_factor": 4.0,
                             "original_max_position_embeddings": 8},
            **common)),
        "qwen2": (Qwen2ForCausalLM, Qwen2Config(
            num_key_value_heads=1, tie_word_embeddings=True,
            rope_parameters={"rope_type": "default", "rope_theta": 1000000.0},
            use_sliding_window=False, **common)),
        # Biases everywhere Llama allows them (attention_bias covers o_proj too), linear rope
        # scaling, plain multi-head attention, tied embeddings.
        "llama-bias": (LlamaForCausalLM, LlamaConfig(
            num_key_value_heads=4, tie_word_embeddings=True, attention_bias=True, mlp_bias=True,
            rope_parameters={"rope_type": "linear", "rope_theta": 10000.0, "factor": 2.0},
            **common)),
    }
    meta = {}
    for i, (name, (cls, config)) in enumerate(configs.items()):
        torch.manual_seed(10 + i)
        model = cls(config)
        perturb(model, 20 + i)
        out = os.path.join(args.fixtures, f"tiny-{name}")
        model.save_pretrained(out)
        tok.save_pretrained(out)
        ids, mask, hf_labels, hone_labels = batch(vocab, 30 + i)
        ref = cls.from_pretrained(out, dtype=torch.float64).eval()
        save_file(golden(ref, ids, mask, hf_labels, hone_labels),
                  os.path.join(golden_dir, f"{name}.safetensors"))
        meta[name] = {"vocab": vocab, "lengths": LENGTHS, "prompt": PROMPT,
                      "chat": tok.apply_chat_template(
                          [{"role": "user", "content": "hi there"},
                           {"role": "assistant", "content": "a fine day"}], tokenize=False)}

    # LoRA with PEFT on tiny-llama.
    base_dir = os.path.join(args.fixtures, "tiny-llama")
    out = os.path.join(args.fixtures, "lora-llama")
    torch.manual_seed(40)
    model = LlamaForCausalLM.from_pretrained(base_dir)
    targets = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    peft_model = get_peft_model(model, LoraConfig(
        task_type="CAUSAL_LM", r=4, lora_alpha=8, lora_dropout=0.0, target_modules=targets))
    with torch.no_grad():
        for _, p in peft_model.named_parameters():
            if p.requires_grad:
                p.copy_(torch.randn_like(p) * 0.2)
    peft_model.save_pretrained(out)
    cfg_path = os.path.join(out, "adapter_config.json")
    saved = json.load(open(cfg_path))
    saved["base_model_name_or_path"] = "../tiny-llama"
    json.dump(saved, open(cfg_path, "w"), indent=2, sort_keys=True)
    base = LlamaForCausalLM.from_pretrained(base_dir, dtype=torch.float64)
    reloaded = PeftModel.from_pretrained(base, out, is_trainable=True).eval()
    ids, mask, hf_labels, hone_labels = batch(vocab, 30)
    save_file(golden(reloaded, ids, mask, hf_labels, hone_labels, prefix=hone_lora_name),
              os.path.join(golden_dir, "llama-lora.safetensors"))
    json.dump(meta, open(os.path.join(golden_dir, "decoders.json"), "w"), indent=2, sort_keys=True)
    print("wrote", ", ".join(f"tiny-{n}" for n in configs), "and lora-llama")


if __name__ == "__main__":
    main()
