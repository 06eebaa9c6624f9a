#!/usr/bin/env python3
"""The transformers + PEFT side of bench/decoder/smollm2_sft.sh: LoRA (or, --peft prefix, prefix
tuning) supervised fine-tuning of a causal LM on Alpaca records with the same recipe and data as `hone train --task causal-lm --peft
lora --no-shuffle`:

- each record becomes a user turn (instruction, then a blank line and the input when there is
  one) and an assistant turn (output), rendered by the model's chat template;
- only the assistant's turn is learned (its text through the template's end of turn), found as
  the characters between the template with the generation prompt and the template with the turn;
- the examples in the file's order, batches of --batch, dynamic padding, truncated to
  --max-length; the loss is the mean over the batch's learned tokens;
- AdamW (no decay on biases and norm weights), linear warmup then linear decay, clipping by
  global norm; LoRA with PEFT's defaults for the family otherwise (A Kaiming-uniform, B zero);
- prefix tuning: PEFT's PREFIX_TUNING (no projection); --save-initial DIR saves the prefix as it
  starts (PEFT's folder), so that Hone can train the very same prefix (`--model DIR --peft
  prefix`).

Prints JSON: per-step losses and seconds, then greedy generations for --prompt texts.

Usage: sft_reference.py --model DIR --train alpaca.json [--batch 4 --max-length 256 --lr 2e-4
       --warmup-ratio 0.1 --weight-decay 0.01 --clip 1.0 --lora-r 8 --lora-alpha 16
       --lora-dropout 0 --targets q_proj,v_proj --seed 42] [--peft prefix --prefix-tokens 20
       --save-initial DIR] [--prompt TEXT ...]
"""
import argparse
import json
import math
import os
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from peft import LoraConfig, PrefixTuningConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup  # noqa: E402


def messages_of(record):
    """Hone's reading of an Alpaca record (crates/hone-data/src/chat.rs)."""
    prompt = record["instruction"]
    extra = (record.get("input") or "").strip()
    if extra:
        prompt = f"{prompt}\n\n{extra}"
    return [{"role": "user", "content": prompt}, {"role": "assistant", "content": record["output"]}]


def encode(tok, messages, max_length):
    """Token ids and labels (-100 where not learned), as Hone's encode_conversation."""
    full = tok.apply_chat_template(messages, tokenize=False)
    before = tok.apply_chat_template(messages[:-1], tokenize=False, add_generation_prompt=True)
    assert full.startswith(before), "the template renders the prompt differently as it grows"
    enc = tok(full, add_special_tokens=False, truncation=True, max_length=max_length,
              return_offsets_mapping=True)
    ids = enc["input_ids"]
    labels = [i if start >= len(before) else -100 for i, (start, _) in zip(ids, enc["offset_mapping"])]
    return ids, labels


def batches(examples, size, pad):
    for at in range(0, len(examples), size):
        chunk = examples[at:at + size]
        width = max(len(ids) for ids, _ in chunk)
        ids = torch.full((len(chunk), width), pad, dtype=torch.long)
        labels = torch.full((len(chunk), width), -100, dtype=torch.long)
        mask = torch.zeros((len(chunk), width), dtype=torch.long)
        for row, (i, l) in enumerate(chunk):
            ids[row, :len(i)] = torch.tensor(i)
            labels[row, :len(l)] = torch.tensor(l)
            mask[row, :len(i)] = 1
        yield ids, mask, labels


def generate(model, tok, prompts, max_new_tokens):
    out = []
    model.eval()
    for p in prompts:
        text = tok.apply_chat_template([{"role": "user", "content": p}], tokenize=False,
                                       add_generation_prompt=True)
        ids = tok(text, add_special_tokens=False, return_tensors="pt")
        with torch.no_grad():
            gen = model.generate(**ids, max_new_tokens=max_new_tokens, do_sample=False)
        out.append(tok.decode(gen[0, ids["input_ids"].shape[1]:], skip_special_tokens=True))
    return out


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--train", required=True)
    ap.add_argument("--batch", type=int, default=4)
    ap.add_argument("--max-length", type=int, default=256)
    ap.add_argument("--lr", type=float, default=2e-4)
    ap.add_argument("--warmup-ratio", type=float, default=0.1)
    ap.add_argument("--weight-decay", type=float, default=0.01)
    ap.add_argument("--clip", type=float, default=1.0)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--lora-alpha", type=float, default=16)
    ap.add_argument("--lora-dropout", type=float, default=0.0)
    ap.add_argument("--targets", default="q_proj,v_proj")
    ap.add_argument("--seed", type=int, default=42)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--prompt", action="append", default=[])
    ap.add_argument("--max-new-tokens", type=int, default=48)
    ap.add_argument("--peft", choices=["lora", "prefix"], default="lora")
    ap.add_argument("--prefix-tokens", type=int, default=20)
    ap.add_argument("--save-initial")
    args = ap.parse_args()

    torch.manual_seed(args.seed)
    torch.set_num_threads(args.threads)
    tok = AutoTokenizer.from_pretrained(args.model)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32)
    if args.peft == "prefix":
        config = PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=args.prefix_tokens)
    else:
        config = LoraConfig(
            task_type="CAUSAL_LM", r=args.lora_r, lora_alpha=args.lora_alpha,
            lora_dropout=args.lora_dropout, target_modules=args.targets.split(","))
    model = get_peft_model(model, config)
    if args.save_initial:
        model.save_pretrained(args.save_initial)
        path = os.path.join(args.save_initial, "adapter_config.json")
        saved = json.load(open(path))
        saved["base_model_name_or_path"] = os.path.abspath(args.model)
        json.dump(saved, open(path, "w"), indent=2)
    records = json.load(open(args.train, encoding="utf-8"))
    examples = [encode(tok, messages_of(r), args.max_length) for r in records]

    named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
    no_decay = lambda n: n.endswith(".bias") or "norm" in n.lower()  # noqa: E731
    opt = torch.optim.AdamW([
        {"params": [p for n, p in named if not no_decay(n)], "weight_decay": args.weight_decay},
        {"params": [p for n, p in named if no_decay(n)], "weight_decay": 0.0},
    ], lr=args.lr, betas=(0.9, 0.999), eps=1e-8)
    steps = (len(examples) + args.batch - 1) // args.batch
    sched = get_linear_schedule_with_warmup(opt, math.ceil(args.warmup_ratio * steps), steps)
    pad = tok.pad_token_id if tok.pad_token_id is not None else 0

    model.train()
    losses, seconds = [], []
    started = time.perf_counter()
    for ids, mask, labels in batches(examples, args.batch, pad):
        t0 = time.perf_counter()
        loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_([p for _, p in named], args.clip)
        opt.step()
        sched.step()
        opt.zero_grad(set_to_none=True)
        losses.append(loss.item())
        seconds.append(time.perf_counter() - t0)
    train_seconds = time.perf_counter() - started
    print(json.dumps({
        "losses": losses,
        "step_seconds": seconds,
        "train_examples": len(examples),
        "train_seconds": train_seconds,
        "trainable": sum(p.numel() for _, p in named),
        "generations": generate(model, tok, args.prompt, args.max_new_tokens),
    }))


if __name__ == "__main__":
    main()
