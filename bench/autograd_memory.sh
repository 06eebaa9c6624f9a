#!/usr/bin/env bash
# Checks the fit check's estimate of candle's autograd graph (crates/hone-engine/src/memory.rs,
# `autograd_activations`: what a GPU run, or a mixed-precision run on the CPU, keeps) against
# the peak RSS of `hone bench --autograd` on the CPU: random BERTs of MiniLM-L6's and
# BERT-base's shapes and a MiniLM whose feed-forward is as wide as its hidden size, on dense
# batches, fp32 and bf16. What a shape keeps is its peak less the same model's peak on one
# sequence of 8 tokens (weights, gradients, moments, runtime); the estimate's side is the
# `activations` line of `hone models check --device cuda:0` (the GPU estimate, which this
# machine need not have: its activations are the same as a CPU mixed-precision run's; in bf16
# they include the weights' bf16 copies, which the one-sequence peak holds too, so the bf16
# ratios lean high by 2 bytes a parameter). Prints both and the ratio; no pass or fail (the
# figures are kept in memory.rs's test `the_autograd_estimate_matches_measured_peaks`).
#
# MODELS may also name `deberta` (a random DeBERTa-v3-xsmall, bench/deberta_model.py; at
# 8 × 512 it needs ~20 GiB: SHAPES="64x32 4x256 32x128 4x512"). Decoders are measured by
# `PRECISION=bf16 bench/decoder/memory_decoder.sh` (real `hone train` runs).
#
# Usage: [SHAPES="64x32 4x256 32x128 8x512"] [MODELS="minilm narrow bert-base"]
#        [PRECISIONS="fp32 bf16"] [HONE_BIN=...] bench/autograd_memory.sh
# BERT-base at 8 × 512 peaks near 12 GiB.
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${SHAPES:-64x32 4x256 32x128 8x512}
models=${MODELS:-minilm narrow bert-base}
precisions=${PRECISIONS:-fp32 bf16}
out=${OUT:-bench/out/autograd-memory}
mkdir -p "$out"
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh
hone=$(bin_of new)

for m in $models; do
  [ -f "$out/$m/config.json" ] && continue
  case $m in
    narrow) "$python" bench/gpu_step.py make-model --config minilm --intermediate 384 --out "$out/$m" ;;
    deberta) "$python" bench/deberta_model.py "$out/$m" ;;
    *) "$python" bench/gpu_step.py make-model --config "$m" --out "$out/$m" ;;
  esac >/dev/null 2>&1
done
for shape in 1x8 $shapes; do
  b=${shape%x*}
  s=${shape#*x}
  [ -f "$out/batch-$shape.json" ] || "$python" bench/gpu_step.py dump-batch --dense \
    --batch "$b" --seq "$s" --out "$out/batch-$shape.json" >/dev/null
done

peak() { # peak MODEL SHAPE PRECISION: the peak RSS in MiB of a training step
  "$hone" bench --autograd --model "$out/$1" --batch-file "$out/batch-$2.json" --precision "$3" \
    --steps 1 --warmup 1 --json | "$python" -c 'import json, sys; print(round(json.load(sys.stdin)["peak_rss_mib"]))'
}
estimated() { # estimated MODEL SHAPE PRECISION: the estimate's activations in MiB
  # (the check exits 1 here: no GPU to fit on, and the random model has no tokenizer)
  { "$hone" models check "$out/$1" --batch-size "${2%x*}" --max-length "${2#*x}" --precision "$3" \
    --device cuda:0 --json || true; } | "$python" -c 'import json, sys; print(round(json.load(sys.stdin)["fit"]["full"]["estimate"]["activations"] / 2**20))'
}

printf '%-10s %-7s %-5s %10s %12s %14s %7s\n' model shape prec "peak MiB" "kept MiB" "estimate MiB" ratio
for m in $models; do
  for p in $precisions; do
    base=$(peak "$m" 1x8 "$p")
    for shape in $shapes; do
      total=$(peak "$m" "$shape" "$p")
      kept=$((total - base))
      est=$(estimated "$m" "$shape" "$p")
      printf '%-10s %-7s %-5s %10d %12d %14d %7s\n' "$m" "$shape" "$p" "$total" "$kept" "$est" \
        "$(awk -v e="$est" -v k="$kept" 'BEGIN { printf "%.2f", e / k }')"
    done
  done
done
