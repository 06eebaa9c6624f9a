#!/usr/bin/env python3
"""Where a GPU training step's time goes, kernel by kernel, from two kprof profiles.

bench/kprof/kprof.c writes one line per kernel name (count, total GPU nanoseconds) for a whole
process. Two runs of the same step, one with SHORT steps and one with LONG, differ only by
LONG - SHORT steps: subtracting them leaves each kernel's time per training step, without the
model's load, the warm-up or the first steps' allocations.

    python3 bench/kernel_profile.py short.csv SHORT long.csv LONG [--step-ms MS] [--top N]
        [--json OUT]

prints the kernels by time per step, grouped into kinds (matrix products, elementwise,
reductions, copies, gathers ...), the GPU's busy time per step, and with --step-ms (the step's
wall time) how much of the step the GPU was idle (the host's share). Standard library only.
"""
import argparse
import json
import re
import shutil
import subprocess
import sys


def read(path):
    rows = {}
    for line in open(path):
        if line.startswith("#") or line.startswith("count\t"):
            continue
        parts = line.rstrip("\n").split("\t", 2)
        if len(parts) != 3:
            continue
        count, total, name = int(parts[0]), int(parts[1]), parts[2]
        c, t = rows.get(name, (0, 0))
        rows[name] = (c + count, t + total)
    return rows


def demangle(names):
    """Readable C++ names (PyTorch's and cuBLAS's kernels are mangled), where c++filt exists."""
    tool = shutil.which("c++filt")
    if not tool or not names:
        return {n: n for n in names}
    out = subprocess.run([tool], input="\n".join(names), capture_output=True, text=True).stdout
    lines = out.split("\n")
    return {n: (lines[i] if i < len(lines) and lines[i] else n) for i, n in enumerate(names)}


# Kinds, first match wins: the pattern is searched in the (demangled) lower-case name.
KINDS = [
    ("matrix products", r"gemm|xmma|cutlass|cublas|sm\d\d_|splitk|gemv|matmul|mma"),
    ("attention (fused)", r"flash|fmha|efficient_attention|sdpa"),
    ("softmax", r"softmax"),
    ("layer norm", r"layer_norm|layernorm|rmsnorm|rms_norm"),
    ("gathers/scatters", r"index|gather|scatter|embedding|\bis_u|\bia_u|\bsa_u|\bga_u|where"),
    ("reductions", r"reduce|sum|max|min|argmax|norm"),
    ("copies/casts", r"copy|cast|memcpy|memset|cat|transpose|fill|const_set|contiguous"),
    ("optimizer", r"adam|foreach|multi_tensor|lerp"),
    ("elementwise", r"elementwise|vectorized|unrolled|^b(add|sub|mul|div|maximum|minimum)|^u|affine|gelu|exp|sqrt|recip|powf|dropout|bernoulli|rand|tanh|erf"),
]


def kind_of(name):
    low = name.lower()
    for kind, pattern in KINDS:
        if re.search(pattern, low):
            return kind
    return "other"


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("short")
    ap.add_argument("short_steps", type=int)
    ap.add_argument("long")
    ap.add_argument("long_steps", type=int)
    ap.add_argument("--step-ms", type=float, help="the step's wall time, for the idle share")
    ap.add_argument("--top", type=int, default=25)
    ap.add_argument("--json", help="write the per-step table here")
    ap.add_argument("--title", default="")
    a = ap.parse_args()
    steps = a.long_steps - a.short_steps
    if steps <= 0:
        sys.exit("the long run must have more steps than the short one")
    short, long = read(a.short), read(a.long)
    per_step = {}
    for name, (count, total) in long.items():
        c0, t0 = short.get(name, (0, 0))
        calls, ns = (count - c0) / steps, (total - t0) / steps
        if calls > 0 or ns > 0:
            per_step[name] = (calls, ns / 1e6)
    busy = sum(ms for _, ms in per_step.values())
    readable = demangle(list(per_step))
    kinds = {}
    for name, (calls, ms) in per_step.items():
        k = kind_of(readable[name])
        c, t = kinds.get(k, (0, 0.0))
        kinds[k] = (c + calls, t + ms)

    print(f"== {a.title or a.long}: GPU busy {busy:.2f} ms per step over {steps} steps", end="")
    if a.step_ms:
        print(f" of a {a.step_ms:.2f} ms step ({100 * busy / a.step_ms:.0f}% busy, "
              f"{max(a.step_ms - busy, 0):.2f} ms idle: the host's share)")
    else:
        print()
    print("kind: ms per step (share of busy), kernel launches per step")
    for k, (calls, ms) in sorted(kinds.items(), key=lambda kv: -kv[1][1]):
        print(f"  {k:<20} {ms:8.2f} ms ({100 * ms / max(busy, 1e-9):4.1f}%)  {calls:7.1f} launches")
    print(f"top {a.top} kernels: ms per step, launches per step, mean µs per launch")
    ranked = sorted(per_step.items(), key=lambda kv: -kv[1][1])
    for name, (calls, ms) in ranked[: a.top]:
        mean_us = 1e3 * ms / calls if calls else 0.0
        print(f"  {ms:8.3f} ms {calls:7.1f}x {mean_us:8.1f} µs  {readable[name][:110]}")
    launches = sum(c for c, _ in per_step.values())
    print(f"all: {launches:.0f} launches per step, mean {1e3 * busy / max(launches, 1):.1f} µs each")
    if a.json:
        json.dump({
            "title": a.title, "steps": steps, "busy_ms": busy, "step_ms": a.step_ms,
            "kinds": {k: {"ms": ms, "launches": c} for k, (c, ms) in kinds.items()},
            "kernels": [{"name": readable[n], "ms": ms, "launches": c} for n, (c, ms) in ranked],
        }, open(a.json, "w"), indent=1)


if __name__ == "__main__":
    main()
