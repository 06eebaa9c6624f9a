#!/usr/bin/env bash
# int8 on named entities, real data, real model: all-MiniLM-L6-v2 fine-tuned on CoNLL-2003 by
# Hone (bench/conll_accuracy.sh's recipe, seed 42; SENTENCES=N trains on the first N sentences),
# then entity F1 on eng.testa and speed for float32 and int8 — Hone's own `hone eval` with and
# without --int8, and the `hone export --onnx --int8` files in ONNX Runtime beside PyTorch
# (bench/conll_int8.py). A benchmark, run by hand (~10 minutes on 2 cores with every sentence).
# Usage: [SENTENCES=N] [HONE_BIN=…] bench/conll_int8.sh [path/to/conll2003]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/datasets/conll2003}
out=bench/out/conll-int8
mkdir -p "$out"
base=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh
train="$data/eng.train"
if [ -n "${SENTENCES:-}" ]; then
  awk -v n="$SENTENCES" 'BEGIN { RS = ""; ORS = "\n\n" } NR <= n' "$train" > "$out/train.conll"
  train="$out/train.conll"
fi
test="$data/eng.testa"
model="$out/model"
if [ ! -d "$model" ]; then
  RAYON_NUM_THREADS=2 "$HONE_BIN" --db "$out/hone.db" train --task token-classification \
    --model "$base" --train "$train" --format conll --out "$model" --epochs 1 --batch-size 16 \
    --max-length 128 --lr 5e-5 --warmup-ratio 0.1 --weight-decay 0.01 --clip-norm 1.0 --seed 42
fi
for mode in float32 int8; do
  flag=()
  [ "$mode" = int8 ] && flag=(--int8)
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=2 "$HONE_BIN" eval --model "$model" --data "$test" --format conll \
    --max-length 128 --batch-size 32 --json "${flag[@]}" > "$out/hone-$mode.json"
  end=$(date +%s.%N)
  echo "$start $end" > "$out/hone-$mode.time"
done
"$python" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
print("Hone's own predictor (hone eval on eng.testa, whole command incl. loading, 2 threads):")
print("| | entity F1 | seconds |")
print("|---|---|---|")
for mode in ("float32", "int8"):
    report = json.load(open(f"{out}/hone-{mode}.json"))
    start, end = map(float, open(f"{out}/hone-{mode}.time").read().split())
    f1 = report.get("entity_f1", report.get("f1"))
    print(f"| {mode} | {f1:.4f} | {end - start:.1f} |")
PY
rm -rf "$out/onnx"
"$HONE_BIN" export --onnx --int8 --model "$model" --out "$out/onnx"
"$python" bench/conll_int8.py "$out/onnx" "$model" "$test" --json "$out/onnx.json"
