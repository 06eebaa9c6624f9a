#!/usr/bin/env python3
"""The PyTorch side of bench/gpu-check.sh: a self-contained PyTorch + transformers reference
for Hone's GPU path, usable offline (no Hub access) on a CUDA machine and, on tiny shapes, on CPU.

Subcommands:
  make-model --config {minilm,bert-base} --out DIR [--seed 0] [--intermediate N]
      a random BertModel with the config of all-MiniLM-L6-v2 or bert-base-uncased (the
      feed-forward N wide if given), saved as DIR/config.json + DIR/model.safetensors (float32).
  dump-batch --out FILE --batch B --seq S [--vocab 30522] [--dense] [--seed 0]
      a fixed batch as JSON {input_ids, token_type_ids, attention_mask, labels} (the format
      `hone bench --batch-file` reads): [CLS] random ids [SEP], then padding (id 0, mask 0);
      real lengths uniform in [S/4, S], or all S with --dense; labels i % 2.
  step --model DIR --batch-file FILE --device {cuda,cpu} --precision {fp32,bf16,fp16}
       --attn {eager,sdpa} [--compile] [--no-dropout] [--tf32] [--steps 20] [--warmup 5] [--json OUT]
      times training steps of BertForSequenceClassification (2 labels): forward + cross-entropy
      + backward + AdamW(lr 2e-5, weight_decay 0.01).step + zero_grad(set_to_none=True), as
      ../shared/bench/torch_baseline.py does (warmup steps, then the median of timed steps), and
      forward-only passes (eval, no_grad). bf16/fp16 = torch.autocast around forward + loss with
      fp32 master weights (fp16 with a GradScaler). Exit code 3: torch.compile failed.
  grads --model DIR --batch-file FILE --device {cuda,cpu} --precision {fp32,bf16} --out FILE
      one forward + backward with dropout off: loss, logits and each parameter's gradient L2 norm.
      The classifier head is freshly initialised (torch seed --seed), so compare heads with care.
"""
import argparse
import json
import os
import random
import statistics
import sys
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

CONFIGS = {
    "minilm": dict(hidden_size=384, num_hidden_layers=6, num_attention_heads=12, intermediate_size=1536),
    "bert-base": dict(hidden_size=768, num_hidden_layers=12, num_attention_heads=12, intermediate_size=3072),
}
COMMON = dict(vocab_size=30522, max_position_embeddings=512, type_vocab_size=2, hidden_act="gelu",
              layer_norm_eps=1e-12, hidden_dropout_prob=0.1, attention_probs_dropout_prob=0.1,
              initializer_range=0.02, pad_token_id=0)


def make_model(args):
    import torch
    from transformers import BertConfig, BertModel
    torch.manual_seed(args.seed)
    sizes = dict(CONFIGS[args.config])
    if args.intermediate:
        sizes["intermediate_size"] = args.intermediate
    cfg = BertConfig(**COMMON, **sizes)
    cfg.architectures = ["BertModel"]
    model = BertModel(cfg).float()
    model.save_pretrained(args.out, safe_serialization=True)
    n = sum(p.numel() for p in model.parameters())
    print(f"{args.out} ({args.config}, {n:,} params, float32)")


def dump_batch(args):
    rng = random.Random(args.seed)
    B, S = args.batch, args.seq
    if S < 2:
        sys.exit("--seq must be at least 2 ([CLS] and [SEP])")
    ids, types, mask = [], [], []
    for _ in range(B):
        n = S if args.dense else rng.randint(max(2, S // 4), S)
        row = [101] + [rng.randrange(1000, args.vocab) for _ in range(n - 2)] + [102]
        ids.append(row + [0] * (S - n))
        types.append([0] * S)
        mask.append([1] * n + [0] * (S - n))
    with open(args.out, "w") as f:
        json.dump({"input_ids": ids, "token_type_ids": types, "attention_mask": mask,
                   "labels": [i % 2 for i in range(B)]}, f)
    real = sum(map(sum, mask))
    print(f"{args.out}: {B} x {S}, {real} of {B * S} slots real ({real / (B * S):.0%})")


def load(args, no_dropout):
    """(torch, model on device, inputs dict, labels, batch dict, autocast dtype or None)."""
    import torch
    import transformers
    from transformers import BertForSequenceClassification
    transformers.logging.set_verbosity_error()  # the "classifier.* MISSING" report is expected
    transformers.utils.logging.disable_progress_bar()
    if args.device == "cuda" and not torch.cuda.is_available():
        sys.exit("--device cuda but torch.cuda.is_available() is False")
    if args.device == "cpu" and getattr(args, "threads", None):
        torch.set_num_threads(args.threads)
    torch.manual_seed(args.seed)
    kw = dict(hidden_dropout_prob=0.0, attention_probs_dropout_prob=0.0) if no_dropout else {}
    model = BertForSequenceClassification.from_pretrained(
        args.model, num_labels=2, attn_implementation=args.attn, dtype=torch.float32, **kw)
    model.to(args.device).train()
    batch = json.load(open(args.batch_file))
    inputs = {k: torch.tensor(batch[k], dtype=torch.long, device=args.device)
              for k in ("input_ids", "token_type_ids", "attention_mask") if k in batch}
    labels = torch.tensor(batch["labels"], dtype=torch.long, device=args.device)
    amp = {"fp32": None, "bf16": torch.bfloat16, "fp16": torch.float16}[args.precision]
    return torch, model, inputs, labels, batch, amp


def timed_steps(torch, cuda, train_step, warmup, steps):
    """`warmup` untimed calls of `train_step` (which returns (seconds, loss tensor)), then
    `steps` timed ones: (times, losses, peak GPU memory in MiB or None), the peak counted over
    the timed steps only."""
    for _ in range(warmup):
        train_step()
    if cuda:
        torch.cuda.reset_peak_memory_stats()
    times, losses = [], []
    for _ in range(steps):
        t, loss = train_step()
        times.append(t)
        losses.append(loss)
    peak = torch.cuda.max_memory_allocated() / 2**20 if cuda else None
    return times, losses, peak


def autocast(torch, device, amp):
    import contextlib
    return torch.autocast(device_type=device, dtype=amp) if amp is not None else contextlib.nullcontext()


def step(args):
    torch, model, inputs, labels, batch, amp = load(args, args.no_dropout)
    dev = args.device
    cuda = dev == "cuda"
    if args.tf32:
        torch.set_float32_matmul_precision("high")
    scaler = None
    if args.precision == "fp16":
        try:
            scaler = torch.amp.GradScaler(dev)
            with torch.autocast(device_type=dev, dtype=torch.float16):
                torch.ones(2, 2, device=dev) @ torch.ones(2, 2, device=dev)
        except Exception as e:  # noqa: BLE001
            sys.exit(f"fp16 (autocast + GradScaler) is not supported on {dev}: {e}")
    if args.compile:
        model = torch.compile(model)
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01)
    loss_fn = torch.nn.CrossEntropyLoss()

    def sync():
        if cuda:
            torch.cuda.synchronize()

    def train_step():
        sync()
        t0 = time.perf_counter()
        with autocast(torch, dev, amp):
            loss = loss_fn(model(**inputs).logits.float(), labels)
        if scaler is not None:
            scaler.scale(loss).backward()
            scaler.step(opt)
            scaler.update()
        else:
            loss.backward()
            opt.step()
        opt.zero_grad(set_to_none=True)
        sync()
        return time.perf_counter() - t0, loss.detach()

    def fwd():
        sync()
        t0 = time.perf_counter()
        model(**inputs)
        sync()
        return time.perf_counter() - t0

    try:
        times, losses, peak = timed_steps(torch, cuda, train_step, args.warmup, args.steps)
        model.eval()
        with torch.no_grad(), autocast(torch, dev, amp):
            for _ in range(args.warmup):
                fwd()
            ftimes = [fwd() for _ in range(args.forward_steps or args.steps)]
    except Exception as e:  # noqa: BLE001
        if not args.compile:
            raise
        print(f"torch.compile failed: {type(e).__name__}: {e}", flush=True)
        sys.exit(3)

    losses = [float(l) for l in losses]
    B, S = len(batch["input_ids"]), len(batch["input_ids"][0])
    med = statistics.median(times)
    fmed = statistics.median(ftimes)
    res = {
        "device": dev, "precision": args.precision, "attn": args.attn, "compile": args.compile,
        "dropout": not args.no_dropout, "tf32": args.tf32, "batch": B, "seq": S,
        "real_token_share": float(inputs["attention_mask"].float().mean()) if "attention_mask" in inputs else 1.0,
        "steps": args.steps, "warmup": args.warmup,
        "train_step_median_s": med, "train_step_min_s": min(times), "train_step_all_s": times,
        "samples_per_s": B / med, "tokens_per_s": B * S / med,
        "fwd_median_s": fmed, "fwd_min_s": min(ftimes),
        "peak_mem_mib": peak, "loss_first_last": [losses[0], losses[-1]],
        "torch_version": torch.__version__,
        "transformers_version": __import__("transformers").__version__,
        "gpu_name": torch.cuda.get_device_name() if cuda else None,
    }
    tag = f"{args.attn}{'+compile' if args.compile else ''}"
    peak_s = f"{peak:.0f} MiB" if peak is not None else "n/a"
    print(f"torch {dev} {args.precision} {tag}: step {med * 1e3:.1f} ms (median of {args.steps}), "
          f"{B / med:.0f} samples/s, fwd {fmed * 1e3:.1f} ms, peak {peak_s}, "
          f"loss first/last {losses[0]:.2f}/{losses[-1]:.2f}", flush=True)
    if args.json:
        with open(args.json, "w") as f:
            json.dump(res, f, indent=2)


def grads(args):
    torch, model, inputs, labels, _, amp = load(args, no_dropout=True)
    with autocast(torch, args.device, amp):
        logits = model(**inputs).logits.float()
        loss = torch.nn.functional.cross_entropy(logits, labels)
    loss.backward()
    norms = {n: float(p.grad.float().norm()) for n, p in model.named_parameters() if p.grad is not None}
    out = {"device": args.device, "precision": args.precision, "attn": args.attn, "loss": loss.item(),
           "logits": logits.detach().cpu().tolist(), "grad_norms": norms,
           "grad_norm_total": float(sum(v * v for v in norms.values()) ** 0.5),
           "classifier": {n.split(".")[-1]: p.detach().cpu().tolist()  # the fresh head, to copy
                          for n, p in model.named_parameters() if n.startswith("classifier.")},
           "torch_version": torch.__version__}
    with open(args.out, "w") as f:
        json.dump(out, f, indent=2)
    print(f"{args.out}: loss {out['loss']:.6f}, {len(norms)} gradients, total norm {out['grad_norm_total']:.6f}",
          flush=True)


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("make-model")
    p.add_argument("--config", choices=sorted(CONFIGS), required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--intermediate", type=int, default=None)
    p = sub.add_parser("dump-batch")
    p.add_argument("--out", required=True)
    p.add_argument("--batch", type=int, required=True)
    p.add_argument("--seq", type=int, required=True)
    p.add_argument("--vocab", type=int, default=30522)
    p.add_argument("--dense", action="store_true")
    p.add_argument("--seed", type=int, default=0)
    for name in ("step", "grads"):
        p = sub.add_parser(name)
        p.add_argument("--model", required=True)
        p.add_argument("--batch-file", required=True)
        p.add_argument("--device", choices=["cuda", "cpu"], default="cuda")
        p.add_argument("--seed", type=int, default=0)
        p.add_argument("--threads", type=int, default=None, help="torch.set_num_threads on cpu")
        if name == "step":
            p.add_argument("--precision", choices=["fp32", "bf16", "fp16"], default="fp32")
            p.add_argument("--attn", choices=["eager", "sdpa"], default="sdpa")
            p.add_argument("--compile", action="store_true")
            p.add_argument("--no-dropout", action="store_true")
            p.add_argument("--tf32", action="store_true", help="torch.set_float32_matmul_precision('high')")
            p.add_argument("--steps", type=int, default=20)
            p.add_argument("--warmup", type=int, default=5)
            p.add_argument("--forward-steps", type=int, default=None,
                           help="timed forward passes (default: --steps); a kernel profile keeps them fixed")
            p.add_argument("--json", default=None)
        else:
            p.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
            p.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
            p.add_argument("--out", required=True)
    args = ap.parse_args()
    {"make-model": make_model, "dump-batch": dump_batch, "step": step, "grads": grads}[args.cmd](args)


if __name__ == "__main__":
    main()
