#!/usr/bin/env bash
# Named entities, real data, real model: fine-tunes all-MiniLM-L6-v2 on CoNLL-2003 eng.train
# (all 14,041 sentences) in Hone and in PyTorch + transformers (bench/conll_reference.py, the
# run_ner recipe) with the same recipe — 1 epoch, batch 16, length 128, lr 5e-5, 10% warmup +
# linear decay, weight decay 0.01, clip 1.0 — and prints both entity F1 on eng.testa (conlleval
# rules) and both training speeds (sentences/s), per seed and as means.
#
# A benchmark run by hand (on 2 cores ~6 min per seed for Hone, longer for PyTorch); not a
# test. SEEDS defaults to "42 43 44"; SENTENCES=N trains on the first N sentences only.
# Usage: [SEEDS="42"] [SENTENCES=2000] [HONE_BIN=…] bench/conll_accuracy.sh [path/to/conll2003]
set -euo pipefail
cd "$(dirname "$0")/.."
data=${1:-../shared/datasets/conll2003}
out=bench/out/conll
mkdir -p "$out"
model=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh

train="$data/eng.train"
if [ -n "${SENTENCES:-}" ]; then
  awk -v n="$SENTENCES" 'BEGIN { RS = ""; ORS = "\n\n" } NR <= n' "$train" > "$out/train.conll"
  train="$out/train.conll"
fi
test="$data/eng.testa"
seeds=${SEEDS:-42 43 44}
recipe=(--epochs 1 --batch-size 16 --max-length 128 --lr 5e-5 --warmup-ratio 0.1
        --weight-decay 0.01 --clip-norm 1.0)

for seed in $seeds; do
  echo "== seed $seed: Hone" >&2
  rm -rf "$out/hone-model-$seed"
  RAYON_NUM_THREADS=2 "$HONE_BIN" --db "$out/hone.db" train --task token-classification \
    --model "$model" --train "$train" --valid "$test" --format conll \
    --out "$out/hone-model-$seed" "${recipe[@]}" --seed "$seed" --json > "$out/hone-$seed.jsonl"
  "$HONE_BIN" eval --model "$out/hone-model-$seed" --data "$test" --format conll \
    --max-length 128 --json > "$out/hone-$seed.json"

  echo "== seed $seed: PyTorch + transformers" >&2
  "$python" bench/conll_reference.py --model "$model" --train "$train" --test "$test" \
    --epochs 1 --batch 16 --max-length 128 --lr 5e-5 --warmup-ratio 0.1 --weight-decay 0.01 \
    --clip 1.0 --seed "$seed" > "$out/torch-$seed.json" 2> "$out/torch-$seed.log"
done

"$python" - "$out" $seeds <<'PY'
import json, statistics, sys
out, seeds = sys.argv[1], sys.argv[2:]
mean = statistics.mean
print(f"CoNLL-2003 NER, scored on eng.testa (conlleval rules); seeds {' '.join(seeds)}")
print("seed   Hone F1   (sent/s)   PyTorch F1  (sent/s)   speed ratio")
hf, tf, ratios = [], [], []
for s in seeds:
    h = json.load(open(f"{out}/hone-{s}.json"))
    events = [json.loads(l) for l in open(f"{out}/hone-{s}.jsonl") if l.strip()]
    started = next(e for e in events if e.get("event") == "started")
    elapsed = [e for e in events if e.get("event") == "step"][-1]["elapsed_s"]
    hrate = started["train_examples"] / elapsed  # training only: validation excluded
    t = json.load(open(f"{out}/torch-{s}.json"))
    trate = t["train_examples"] / t["train_seconds"]
    hf.append(h["entity_f1"]); tf.append(t["entity_f1"]); ratios.append(hrate / trate)
    print(f"{s:<6} {h['entity_f1']:.4f}   ({hrate:6.1f})   {t['entity_f1']:.4f}      ({trate:6.1f})   {ratios[-1]:.2f}x")
print(f"mean   {mean(hf):.4f}              {mean(tf):.4f}                  {mean(ratios):.2f}x")
print(f"difference (Hone - PyTorch): {100 * (mean(hf) - mean(tf)):+.2f} F1 points")
PY
