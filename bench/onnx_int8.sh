#!/usr/bin/env bash
# ONNX export on a real model: all-MiniLM-L6-v2 fine-tuned on SST-2 by bench/sst2_accuracy.sh
# (its seed-42 model, trained first when missing), exported with `hone export --onnx --int8`,
# then scored on the 2,000 held-out rows: accuracy, speed and size of the float32 and int8
# ONNX models in ONNX Runtime, beside PyTorch + transformers on the same batches and Hone's own
# `hone predict` in float32 and with --int8 (bench/onnx_int8.py, then this script). A benchmark, run by hand (~3 minutes on 2 cores).
# Usage: [HONE_BIN=…] bench/onnx_int8.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh
sst2=bench/out/sst2
model=$sst2/new-model-42
if [ ! -d "$model" ]; then
  SEEDS=42 HONE_BIN="$HONE_BIN" bench/sst2_accuracy.sh
fi
out=bench/out/onnx
rm -rf "$out/minilm-sst2"
mkdir -p "$out"
"$HONE_BIN" export --onnx --int8 --model "$model" --out "$out/minilm-sst2"
"$python" bench/onnx_int8.py "$out/minilm-sst2" "$model" "$sst2/test.tsv" --json "$out/onnx.json"
# Hone's own predictor, float32 and --int8 (linear layers int8, activations per token), on the
# same texts and threads: whole commands, model loading included.
cut -f1 "$sst2/test.tsv" | tail -n +2 > "$out/texts.txt"
cut -f2 "$sst2/test.tsv" | tail -n +2 > "$out/labels.txt"
for mode in float32 int8; do
  flag=()
  [ "$mode" = int8 ] && flag=(--int8)
  start=$(date +%s.%N)
  RAYON_NUM_THREADS=2 "$HONE_BIN" predict --model "$model" --max-length 64 --batch-size 32 --json \
    "${flag[@]}" - < "$out/texts.txt" > "$out/hone-$mode.json"
  end=$(date +%s.%N)
  echo "$start $end" > "$out/hone-$mode.time"
done
"$python" - "$out" <<'PY'
import json, sys
out = sys.argv[1]
truth = [int(l) for l in open(f"{out}/labels.txt")]
rows = {}
for mode in ("float32", "int8"):
    preds = json.load(open(f"{out}/hone-{mode}.json"))
    start, end = map(float, open(f"{out}/hone-{mode}.time").read().split())
    ids = [p["label_id"] for p in preds]
    acc = sum(int(p["label"]) == t for p, t in zip(preds, truth)) / len(truth)
    rows[mode] = (ids, acc, len(truth) / (end - start))
same = sum(a == b for a, b in zip(rows["float32"][0], rows["int8"][0])) / len(truth)
print("\nHone's own predictor (hone predict, whole command incl. loading, 2 threads):")
print("| | accuracy | samples/s | int8 vs float32 |")
print("|---|---|---|---|")
for mode, (_, acc, speed) in rows.items():
    ratio = speed / rows["float32"][2]
    print(f"| {mode} | {acc:.4f} | {speed:.1f} | {ratio:.2f}× |")
print(f"int8 gives float32's label on {same:.2%} of the rows")
json.dump({m: {"accuracy": a, "samples_per_s": s} for m, (_, a, s) in rows.items()} | {"same_labels": same},
          open(f"{out}/hone-int8.json", "w"), indent=1)
PY
