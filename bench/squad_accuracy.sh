#!/usr/bin/env bash
# Extractive question answering on real data: fine-tunes all-MiniLM-L6-v2 on SQuAD v1.1 with the
# same recipe in Hone and in PyTorch + transformers (bench/squad_reference.py,
# AutoModelForQuestionAnswering), and prints SQuAD exact match and F1 on the last 2,000 questions
# of SQuAD's train file, which no run trains on (bench/squad_prepare.py makes the files: train =
# the first 20,000 questions, valid = the 1,000 before the test ones).
#
# Recipe: 1 epoch, batch 16 windows, max length 256 with windows overlapping by 128 tokens, lr
# 5e-5, 10% warmup then linear decay, weight decay 0.01, clip 1.0; answers up to 30 tokens.
# Seeds: SEEDS (default "42"); TRAIN=N trains on the first N questions only (default 20000).
# Training speed is windows per second of training (validation excluded; Hone's training
# examples are windows); OUT=dir writes
# elsewhere (default bench/out/squad). A benchmark, run by hand; not a test.
# Usage: [SEEDS="42"] [TRAIN=N] [HONE_BIN=…] bench/squad_accuracy.sh [train-v1.1-reconstructed.json]
set -euo pipefail
cd "$(dirname "$0")/.."
squad=${1:-../shared/datasets/squad/train-v1.1-reconstructed.json}
out=${OUT:-bench/out/squad}
mkdir -p "$out"

model=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh

"$python" bench/squad_prepare.py "$squad" "$out" --train "${TRAIN:-20000}" >&2
seeds=${SEEDS:-42}
recipe=(--epochs 1 --batch-size 16 --max-length 256 --doc-stride 128 --lr 5e-5 --warmup-ratio 0.1
        --weight-decay 0.01 --clip-norm 1.0)

for seed in $seeds; do
  for side in "${sides[@]}"; do
    bin=$(bin_of "$side")
    echo "== seed $seed: Hone ($side)" >&2
    rm -rf "$out/$side-model-$seed"
    RAYON_NUM_THREADS=2 "$bin" --db "$out/$side.db" train --task question-answering --model "$model" \
      --train "$out/train.json" --valid "$out/valid.json" \
      --out "$out/$side-model-$seed" "${recipe[@]}" --seed "$seed" --json > "$out/$side-$seed.jsonl"
    "$bin" eval --model "$out/$side-model-$seed" --data "$out/test.json" --max-length 256 --doc-stride 128 \
      --json > "$out/$side-$seed.json"
  done

  echo "== seed $seed: PyTorch + transformers" >&2
  "$python" bench/squad_reference.py --model "$model" --train "$out/train.json" \
    --test "$out/test.json" --epochs 1 --batch 16 --max-length 256 --stride 128 --lr 5e-5 \
    --warmup-ratio 0.1 --weight-decay 0.01 --clip 1.0 --seed "$seed" --max-answer-len 30 \
    > "$out/torch-$seed.json" 2> "$out/torch-$seed.log"
done

"$python" - "$out" "${sides[*]}" $seeds <<'PY'
import json, statistics, sys
out, sides, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
mean = statistics.mean

def hone(side, seed):
    scores = json.load(open(f"{out}/{side}-{seed}.json"))
    events = [json.loads(l) for l in open(f"{out}/{side}-{seed}.jsonl") if l.strip()]
    started = next(e for e in events if e.get("event") == "started")
    last = [e for e in events if e.get("event") == "step"][-1]
    return scores, started["train_examples"] / last["elapsed_s"]

rows = {s: [hone(s, seed) for seed in seeds] for s in sides}
ref = [json.load(open(f"{out}/torch-{s}.json")) for s in seeds]
# Hone counts windows as its training examples: both sides are compared in windows per second.
tref = [r["train_windows"] / r["train_seconds"] for r in ref]
print(f"test questions: {ref[0]['test_examples']}; training questions: {ref[0]['train_examples']} "
      f"({ref[0]['train_windows']} windows); seeds {' '.join(seeds)}")
print("seed   " + "".join(f"{s + ' EM':>9} {s + ' F1':>9} {s + ' w/s':>8} " for s in sides) + " torch EM  torch F1  torch w/s")
for i, seed in enumerate(seeds):
    cells = "".join(f"{rows[s][i][0]['exact_match']:>9.4f} {rows[s][i][0]['f1']:>9.4f} {rows[s][i][1]:>8.1f} " for s in sides)
    print(f"{seed:<6} {cells}{ref[i]['exact_match']:>9.4f} {ref[i]['f1']:>9.4f} {tref[i]:>10.1f}")
for s in sides:
    em = mean(a['exact_match'] for a, _ in rows[s]); f1 = mean(a['f1'] for a, _ in rows[s])
    print(f"{s}: exact match {em:.4f} ({100 * (em - mean(r['exact_match'] for r in ref)):+.2f} points vs transformers), "
          f"F1 {f1:.4f} ({100 * (f1 - mean(r['f1'] for r in ref)):+.2f}), "
          f"training {mean(r for _, r in rows[s]) / mean(tref):.2f}x its windows/s")
PY
