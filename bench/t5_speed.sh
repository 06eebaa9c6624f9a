#!/usr/bin/env bash
# T5 training speed against PyTorch + transformers: a random t5-small-shaped model
# (bench/t5_step.py: no T5 weights are reachable here), one fixed batch of SAMSum dialogues →
# summaries, the median training step (forward with the loss, backward, AdamW) of transformers
# and of `hone bench --batch-file` on the same batch, alternating the two, ROUNDS rounds.
# Prints per round and the median: PyTorch step / Hone step (> 1: Hone trains faster).
# Usage: [ROUNDS=3] [STEPS=10] [THREADS=2] [BATCH=8] [SOURCE=128] [TARGET=32] [SHAPE=small] bench/t5_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/reference-env
python=.reference-venv/bin/python
hone=${HONE_BIN:-target/release/hone}
out=bench/out/t5
mkdir -p "$out"
rounds=${ROUNDS:-3}
steps=${STEPS:-10}
threads=${THREADS:-2}
ratios=()
for round in $(seq 1 "$rounds"); do
  "$python" bench/t5_step.py "$out/model" "$out/batch.json" --batch "${BATCH:-8}" \
    --source "${SOURCE:-128}" --target "${TARGET:-32}" --steps "$steps" --threads "$threads" \
    --shape "${SHAPE:-small}" 2>/dev/null | tail -1 > "$out/torch-$round.json"
  RAYON_NUM_THREADS=$threads "$hone" bench --model "$out/model" \
    --batch-file "$out/batch.json" --steps "$steps" --json > "$out/hone-$round.json"
  ratio=$("$python" - "$out/torch-$round.json" "$out/hone-$round.json" <<'PY'
import json, sys
t = json.load(open(sys.argv[1]))
h = json.load(open(sys.argv[2]))
hs = h["train_step"]["median_s"]
print(f"{t['median_s'] / hs:.3f} (PyTorch {t['median_s'] * 1000:.0f} ms, Hone {hs * 1000:.0f} ms, "
      f"batch {t['batch']} x source {t['source']} x target {t['target']}, "
      f"losses {t['loss']:.3f} / {h['loss_first_last'][0]:.3f})")
PY
)
  echo "round $round: PyTorch/Hone $ratio"
  ratios+=("${ratio%% *}")
done
printf '%s\n' "${ratios[@]}" | sort -n | awk '{a[NR]=$1} END {print "median PyTorch/Hone step time: " a[int((NR+1)/2)]}'
