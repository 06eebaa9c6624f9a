#!/usr/bin/env bash
# ONNX export on a real model: all-MiniLM-L6-v2 fine-tuned on SST-2 by bench/sst2_accuracy.sh
# (its seed-42 model, trained first when missing), exported with `hone export --onnx --int8`,
# then scored on the 2,000 held-out rows: accuracy, speed and size of the float32 and int8
# ONNX models in ONNX Runtime, beside PyTorch + transformers on the same batches and Hone's own
# `hone eval` (bench/onnx_int8.py). A benchmark, run by hand (~3 minutes on 2 cores).
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
start=$(date +%s.%N)
RAYON_NUM_THREADS=2 "$HONE_BIN" eval --model "$model" --data "$sst2/test.tsv" --text-column sentence \
  --label-column label --max-length 64 --batch-size 32 --json > "$out/hone-eval.json"
end=$(date +%s.%N)
"$python" - "$out/hone-eval.json" "$start" "$end" <<'PY'
import json, sys
report = json.load(open(sys.argv[1]))
seconds = float(sys.argv[3]) - float(sys.argv[2])
print(f"\nhone eval (float32, whole command incl. loading): accuracy {report['accuracy']:.4f}, "
      f"{2000 / seconds:.1f} samples/s")
PY
