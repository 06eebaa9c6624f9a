#!/usr/bin/env python3
"""PyTorch's side of `hone bench --census`: the operations of one training step, counted on the CPU.

Each operation that does work (a leaf of the profiler's tree that is not a view or an
allocation) is one kernel launch on a GPU, near enough, so the count says how many kernels the
same step launches there. Same model, batch and step as `gpu_step.py step` (AdamW, lr 2e-5,
weight decay 0.01, no clipping), after one untimed step; the optimizer with `foreach=True`, the
default on a GPU (each `_foreach_*` op is one multi-tensor launch per ~320 chunks of 64 Ki
values there; on the CPU its per-tensor fallback is counted as the one op it is on a GPU).

    op_census.py --model DIR --batch-file B.json [--attn eager|sdpa] [--no-dropout]
                 [--precision fp32|bf16] [--json OUT]

bf16 runs the forward pass and the loss under `torch.autocast` (CPU autocast: its casts are
counted as the copies they are; CUDA's autocast also keeps layer norm and softmax in f32,
which changes nothing for BERT, whose norms read f32 residual sums and whose eager
attention's softmax reads f32 scores there).

On the CPU dropout runs as a few ops where the GPU has one fused kernel (`native_dropout`), and
a matrix product copies its operands first: the script counts each as the one kernel it is on a
GPU. The optimizer's `.item()` reads of host scalars are not counted.
"""
import argparse
import collections
import json
import os
import sys

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
from gpu_step import autocast, load  # noqa: E402

# Ops that launch nothing: views, metadata, allocations.
NO_KERNEL = {
    "aten::view", "aten::_unsafe_view", "aten::reshape", "aten::_reshape_alias", "aten::t",
    "aten::transpose", "aten::permute", "aten::expand", "aten::expand_as", "aten::as_strided",
    "aten::slice", "aten::select", "aten::unsqueeze", "aten::squeeze", "aten::detach",
    "aten::detach_", "aten::alias", "aten::empty", "aten::empty_strided", "aten::empty_like",
    "aten::resize_", "aten::lift_fresh", "aten::numpy_T", "aten::split", "aten::unbind",
    "aten::chunk", "aten::narrow", "aten::contiguous", "aten::size", "aten::stride",
    "aten::is_nonzero", "aten::result_type", "aten::to", "aten::_to_copy", "aten::type_as",
    "aten::set_", "aten::_has_compatible_shallow_copy_type", "aten::flatten", "aten::view_as",
    "aten::mT", "aten::resolve_conj", "aten::resolve_neg",
    # A tensor's value read on the host: a copy back (a synchronisation), not a kernel; AdamW's
    # step counts are host scalars.
    "aten::_local_scalar_dense", "aten::item",
}
# Ops counted whole (one GPU kernel) however the CPU runs them underneath.
# Matrix products copy their operands first on the CPU; cuBLAS reads them strided.
WHOLE = ("aten::native_dropout", "aten::native_dropout_backward", "aten::_foreach_",
         "aten::addmm", "aten::mm", "aten::bmm", "aten::baddbmm", "aten::native_layer_norm",
         "aten::native_layer_norm_backward", "aten::_softmax", "aten::_softmax_backward_data",
         "aten::gelu", "aten::gelu_backward", "aten::embedding_dense_backward")


def leaves(events, phase_of):
    """(phase, op) counts of the leaf operations."""
    counts = collections.Counter()

    def visit(e):
        name = e.name
        if name == "aten::dropout":
            # Training: one fused kernel on a GPU (a few ops on the CPU); evaluation: none.
            if e.cpu_children:
                counts[(phase_of(e), "aten::native_dropout")] += 1
            return
        if name.startswith(WHOLE):
            counts[(phase_of(e), name)] += 1
            return
        kids = [k for k in e.cpu_children if k.name.startswith("aten::")]
        if kids:
            for k in kids:
                visit(k)
        elif name.startswith("aten::") and name not in NO_KERNEL:
            counts[(phase_of(e), name)] += 1

    for e in events:
        if e.cpu_parent is None or not e.cpu_parent.name.startswith("aten::"):
            if e.name.startswith("aten::"):
                visit(e)
    return counts


def main():
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", required=True)
    ap.add_argument("--batch-file", required=True)
    ap.add_argument("--attn", choices=["eager", "sdpa"], default="eager")
    ap.add_argument("--no-dropout", action="store_true")
    ap.add_argument("--precision", choices=["fp32", "bf16"], default="fp32")
    ap.add_argument("--json", default=None)
    args = ap.parse_args()
    args.device, args.seed, args.threads = "cpu", 0, None
    torch, model, inputs, labels, batch, amp = load(args, args.no_dropout)
    from torch.profiler import profile, record_function, ProfilerActivity
    opt = torch.optim.AdamW(model.parameters(), lr=2e-5, weight_decay=0.01, foreach=True)
    loss_fn = torch.nn.CrossEntropyLoss()

    def train_step():
        with record_function("phase:forward"), autocast(torch, "cpu", amp):
            loss = loss_fn(model(**inputs).logits.float(), labels)
        with record_function("phase:backward"):
            loss.backward()
        with record_function("phase:optimizer"):
            opt.step()
            opt.zero_grad(set_to_none=True)

    train_step()
    with profile(activities=[ProfilerActivity.CPU]) as prof:
        train_step()
        model.eval()
        with torch.no_grad(), record_function("phase:evaluation"), autocast(torch, "cpu", amp):
            model(**inputs)
    events = prof.events()
    ranges = [(e.time_range.start, e.time_range.end, e.name.split(":", 1)[1])
              for e in events if e.name.startswith("phase:")]

    def phase_of(e):
        t = e.time_range.start
        for start, end, name in ranges:
            if start <= t <= end:
                return name
        return "other"

    counts = leaves(events, phase_of)
    phases = ["forward", "backward", "optimizer", "evaluation"]
    out = {"attn": args.attn, "precision": args.precision, "dropout": not args.no_dropout, "params": len(list(model.parameters())),
           "phases": {p: sum(n for (ph, _), n in counts.items() if ph == p) for p in phases},
           "ops": [{"phase": ph, "op": op, "launches": n} for (ph, op), n in counts.most_common()]}
    out["step"] = sum(out["phases"][p] for p in phases[:3])
    print(f"torch ({args.attn}, {args.precision}, dropout {'on' if out['dropout'] else 'off'}): {out['step']} operations "
          f"a training step ({out['params']} parameter tensors)")
    for p in phases:
        print(f"  {p:<10} : {out['phases'][p]:>6}")
        for row in [r for r in out["ops"] if r["phase"] == p][:6]:
            print(f"      {row['op']:<34} {row['launches']:>6}")
    if args.json:
        with open(args.json, "w") as f:
            json.dump(out, f, indent=2)


if __name__ == "__main__":
    main()
