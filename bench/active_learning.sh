#!/usr/bin/env bash
# Active learning measured with an oracle: all-MiniLM-L6-v2 on SST-2, labels revealed in rounds
# of 100 from a pool of the file's first 4,000 rows, either the ones the last round's model is
# least sure about (margin) or at random (the control), 5 seeds each; after every round a fresh
# fine-tune from the base model (at least 3 epochs and 100 optimizer steps, batch 16, length
# 64, lr 1e-4) scored on the file's last 2,000 rows, which no round sees. Prints mean accuracy
# at 200, 400, 800 and 1,600 labels per strategy. A benchmark, run by hand (~45 minutes on 2
# cores); not a test. Every round's result is appended to bench/out/al/rounds.jsonl as it comes.
# Usage: [SEEDS=1,2,3,4,5] [STRATEGIES=margin,random] [HONE_BIN=…] bench/active_learning.sh [sst2.tsv]
set -euo pipefail
cd "$(dirname "$0")/.."
sst2=${1:-../shared/datasets/sst2/train.tsv}
out=bench/out/al
mkdir -p "$out"
model=$(scripts/fetch-minilm)
source bench/hone-bins.sh

RAYON_NUM_THREADS=${RAYON_NUM_THREADS:-2} "$HONE_BIN" bench active-learning --model "$model" \
  --data "$sst2" --text-column sentence --label-column label \
  --pool 4000 --test 2000 --round 100 --report-at 200,400,800,1600 \
  --strategies "${STRATEGIES:-margin,random}" --seeds "${SEEDS:-1,2,3,4,5}" \
  --epochs 3 --min-steps 100 --batch-size 16 --max-length 64 --lr 1e-4 \
  --out "$out/rounds.jsonl" --work-dir "$out/work" | tee "$out/summary.txt"
