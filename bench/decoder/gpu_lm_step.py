#!/usr/bin/env python3
"""The PyTorch side of bench/gpu-check.sh's decoder stage: a random decoder of SmolLM2-135M's
shape (no weights needed: a step's time does not depend on their values) and the median time of
transformers' (4.56 or later) causal-LM training step on a batch of full sequences, LoRA (PEFT, when it is
installed) or full fine-tuning, as `hone bench --model DIR --lora-r R --batch-size B
--max-length S` times Hone's: forward with labels (every token learned) + backward + AdamW step
+ zero_grad; bf16 = torch.autocast around forward and loss with f32 master weights. Offline.

Subcommands:
  make-model --out DIR --tokenizer DIR [--layers 30] [--seed 0]
      the model (LlamaForCausalLM, SmolLM2-135M's config.json, float32) with the tokenizer
      files of --tokenizer copied beside it (`hone bench` encodes its synthetic texts with them).
  step --model DIR --batch B --seq S [--lora-r R] [--precision fp32|bf16] [--device cuda|cpu]
       [--attn eager|sdpa] [--steps 10] [--warmup 3] [--threads N] [--json OUT]
      prints one line and writes JSON: median step, samples/s, tokens/s, peak GPU memory. With
      --lora-r and no PEFT installed it exits 4 (nothing timed).
"""
import argparse
import json
import os
import shutil
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

# The timing loop bench/gpu_step.py's classifier steps use too.
sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), ".."))
from gpu_step import timed_steps  # noqa: E402

SMOLLM2 = dict(vocab_size=49152, hidden_size=576, intermediate_size=1536, num_attention_heads=9,
               num_key_value_heads=3, head_dim=64, max_position_embeddings=8192,
               rms_norm_eps=1e-5, rope_theta=100000.0, tie_word_embeddings=True,
               hidden_act="silu", bos_token_id=1, eos_token_id=2, pad_token_id=2)


def make_model(args):
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(args.seed)
    config = LlamaConfig(num_hidden_layers=args.layers, **SMOLLM2)
    model = LlamaForCausalLM(config).float()
    model.save_pretrained(args.out, safe_serialization=True)
    for name in ("tokenizer.json", "tokenizer_config.json"):
        if os.path.exists(os.path.join(args.tokenizer, name)):
            shutil.copy(os.path.join(args.tokenizer, name), os.path.join(args.out, name))
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out} ({args.layers} layers, {n:,} params, float32)")


def step(args):
    import torch
    import transformers
    from transformers import AutoModelForCausalLM
    transformers.utils.logging.disable_progress_bar()
    if args.steps < 1:
        sys.exit("--steps must be at least 1")
    dev = args.device
    cuda = dev == "cuda"
    if cuda and not torch.cuda.is_available():
        sys.exit("--device cuda but torch.cuda.is_available() is False")
    if not cuda and args.threads:
        torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    model = AutoModelForCausalLM.from_pretrained(args.model, dtype=torch.float32,
                                                 attn_implementation=args.attn)
    if args.lora_r:
        try:
            from peft import LoraConfig, get_peft_model
        except ImportError:
            print("torch decoder: PEFT is not installed, no LoRA step to time", flush=True)
            sys.exit(4)
        # Hone's LoRA: query and value projections, alpha 2 × rank, dropout 0.1.
        model = get_peft_model(model, LoraConfig(
            r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.1,
            target_modules=["q_proj", "v_proj"], task_type="CAUSAL_LM"))
    model.to(dev).train()
    vocab = model.config.vocab_size
    generator = torch.Generator().manual_seed(0)
    ids = torch.randint(3, min(vocab, 49152), (args.batch, args.seq), generator=generator).to(dev)
    amp = {"fp32": None, "bf16": torch.bfloat16}[args.precision]
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=2e-4, weight_decay=0.01)

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def train_step():
        sync()
        t0 = time.perf_counter()
        if amp is None:
            loss = model(input_ids=ids, labels=ids).loss
        else:
            with torch.autocast(device_type=dev, dtype=amp):
                loss = model(input_ids=ids, labels=ids).loss
        loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0, loss.detach()

    times, losses, peak = timed_steps(torch, cuda, train_step, args.warmup, args.steps)
    losses = [float(loss) for loss in losses]
    med = statistics.median(times)
    method = f"LoRA r{args.lora_r}" if args.lora_r else "full"
    res = {
        "device": dev, "precision": args.precision, "attn": args.attn, "method": method,
        "batch": args.batch, "seq": args.seq, "trained_parameters": sum(p.numel() for p in trained),
        "steps": args.steps, "warmup": args.warmup, "train_step_median_s": med,
        "train_step_all_s": times, "samples_per_s": args.batch / med,
        "tokens_per_s": args.batch * args.seq / med, "peak_mem_mib": peak,
        "loss_first_last": [losses[0], losses[-1]], "torch_version": torch.__version__,
        "transformers_version": transformers.__version__,
        "gpu_name": torch.cuda.get_device_name() if cuda else None,
    }
    peak_s = f"{peak:.0f} MiB" if peak is not None else "n/a"
    print(f"torch decoder {dev} {args.precision} {args.attn} {method} {args.batch}x{args.seq}: "
          f"step {med * 1e3:.1f} ms (median of {args.steps}), {args.batch * args.seq / med:.0f} "
          f"tokens/s, peak {peak_s}, loss first/last {losses[0]:.2f}/{losses[-1]:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-model")
    p.add_argument("--out", required=True)
    p.add_argument("--tokenizer", required=True)
    p.add_argument("--layers", type=int, default=30)
    p.add_argument("--seed", type=int, default=0)
    p = sub.add_parser("step")
    p.add_argument("--model", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--lora-r", type=int, default=0)
    p.add_argument("--precision", choices=["fp32", "bf16"], default="bf16")
    p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
    p.add_argument("--attn", choices=["eager", "sdpa"], default="sdpa")
    p.add_argument("--steps", type=int, default=10)
    p.add_argument("--warmup", type=int, default=3)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--json", default=None)
    args = ap.parse_args()
    {"make-model": make_model, "step": step}[args.cmd](args)


if __name__ == "__main__":
    main()
