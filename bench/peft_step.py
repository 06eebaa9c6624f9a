#!/usr/bin/env python3
"""The PyTorch + transformers + PEFT side of bench/lora_compare.sh: times LoRA training steps of a
sequence classifier on a fixed batch (a JSON file from torch_baseline.py --dump-batch), as
`hone bench --lora-r R --batch-file` does: LoRA on query and value (rank R, alpha 2R, dropout
0.1, the classifier in full, the rest frozen), forward + cross-entropy + backward + AdamW step +
zero_grad, dropout on, 2 threads.

Usage: peft_step.py --model DIR --batch-file batch.json --lora-r 8 [--steps 20 --warmup 3
       --threads 2] [--json out.json]
"""
import argparse
import json
import os
import resource
import statistics
import time

os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")

import torch  # noqa: E402
from peft import LoraConfig, get_peft_model  # noqa: E402
from transformers import AutoModelForSequenceClassification  # noqa: E402


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-file", required=True)
    ap.add_argument("--lora-r", type=int, default=8)
    ap.add_argument("--steps", type=int, default=20)
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--lr", type=float, default=5e-4)
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    batch = json.load(open(args.batch_file))
    inputs = {k: torch.tensor(batch[k]) for k in ("input_ids", "attention_mask", "token_type_ids") if k in batch}
    labels = torch.tensor(batch["labels"])
    model = AutoModelForSequenceClassification.from_pretrained(args.model, num_labels=2)
    model = get_peft_model(model, LoraConfig(
        task_type="SEQ_CLS", r=args.lora_r, lora_alpha=2 * args.lora_r, lora_dropout=0.1,
        target_modules=["query", "value"]))
    model.train()
    trained = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(trained, lr=args.lr, weight_decay=0.01)
    times = []
    for i in range(args.warmup + args.steps):
        t0 = time.perf_counter()
        out = model(**inputs, labels=labels)
        out.loss.backward()
        opt.step()
        opt.zero_grad(set_to_none=True)
        if i >= args.warmup:
            times.append(time.perf_counter() - t0)
    result = {
        "train_step_median_s": statistics.median(times),
        "trainable_parameters": sum(p.numel() for p in trained),
        "peak_rss_mib": resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024,
    }
    text = json.dumps(result)
    if args.json:
        open(args.json, "w").write(text)
    print(text)


if __name__ == "__main__":
    main()
