#!/usr/bin/env bash
# What handing work to Slurm costs: the same tiny runs (tests/fixtures/tiny-bert, the 48-row
# SST-2 sample, EPOCHS=200 epochs: 1,200 steps) trained here and submitted to a one-node Slurm on this machine
# (scripts/slurm-local, needs root or passwordless sudo), followed with `hone runs sync --wait`.
# One run (no parallelism on either side) and a sweep of 3 seeds (here one after another, on
# Slurm as a job array whose elements run side by side on the node's cores). One thread per run
# on both sides. Writes bench/out/slurm-overhead/results.txt.
# Usage: [HONE_BIN=target/debug/hone] [INTERVAL=0.5] bench/slurm_overhead.sh
set -euo pipefail
cd "$(dirname "$0")/.."
hone=${HONE_BIN:-target/debug/hone}
[ -x "$hone" ] || cargo build --locked --bin hone
hone=$(cd "$(dirname "$hone")" && pwd)/$(basename "$hone")
interval=${INTERVAL:-0.5}
out=bench/out/slurm-overhead
rm -rf "$out" && mkdir -p "$out"
work=$(mktemp -d)
trap 'scripts/slurm-local stop "$work/slurm" >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
eval "$(scripts/slurm-local start "$work/slurm")"
export RAYON_NUM_THREADS=1
flags=(--model tests/fixtures/tiny-bert --train tests/fixtures/data/sst2_sample.tsv
  --text-column sentence --label-column label --epochs "${EPOCHS:-200}" --batch-size 8 --max-length 32
  --lr 5e-4 --seed 11 --json)
now() { date +%s.%N; }
secs() { python3 -c "print(f'{$2 - $1:.2f}')"; }

"$hone" --db "$work/remote.db" target add bench --dir "$work/jobs" --hone "$hone" >&2

t0=$(now); "$hone" --db "$work/local.db" train "${flags[@]}" --out "$work/local-one" > /dev/null; t1=$(now)
local_one=$(secs "$t0" "$t1")
t0=$(now)
"$hone" --db "$work/remote.db" train "${flags[@]}" --target bench > /dev/null
"$hone" --db "$work/remote.db" runs sync --wait --interval "$interval" 2> /dev/null
t1=$(now)
slurm_one=$(secs "$t0" "$t1")

t0=$(now)
"$hone" --db "$work/local.db" sweep create --sweep s "${flags[@]}" --grid seed=1,2,3 > /dev/null
t1=$(now)
local_sweep=$(secs "$t0" "$t1")
t0=$(now)
"$hone" --db "$work/remote.db" sweep create --sweep s "${flags[@]}" --grid seed=1,2,3 --target bench > /dev/null
"$hone" --db "$work/remote.db" runs sync --wait --interval "$interval" 2> /dev/null
t1=$(now)
slurm_sweep=$(secs "$t0" "$t1")
# The training time itself, as each run measured it (elapsed_s), on both sides.
elapsed() { "$hone" --db "$1" runs list --json | python3 -c "import json,sys; rs=json.load(sys.stdin); print(' '.join(f\"{r['final_metrics']['elapsed_s']:.2f}\" for r in sorted(rs, key=lambda r: r['id'])))"; }
{
  echo "one run:        here ${local_one} s, Slurm ${slurm_one} s (submit + sync every ${interval} s)"
  echo "sweep of 3:     here ${local_sweep} s (one after another), Slurm ${slurm_sweep} s (job array)"
  echo "training time (elapsed_s per run, in id order): here $(elapsed "$work/local.db"); Slurm $(elapsed "$work/remote.db")"
  echo "cores: $(nproc); RAYON_NUM_THREADS=1"
} | tee "$out/results.txt"
