#!/usr/bin/env bash
# Multiple choice on real data: fine-tunes all-MiniLM-L6-v2 on SciQ (question + 4 shuffled
# options, no support paragraph) with the same recipe in Hone and in PyTorch + transformers
# (bench/sciq_reference.py, AutoModelForMultipleChoice), and prints accuracy and MAP@3 on the
# last 1,679 SciQ questions, which no run trains on (bench/sciq_prepare.py makes the files).
#
# Recipe (issue 11): 1 epoch, batch 16 questions (64 sequences), max length 128, lr 5e-5, 10%
# warmup then linear decay, weight decay 0.01, clip 1.0. Seeds: SEEDS (default "42 43 44");
# TRAIN=N trains on the first N of the 9,800 training questions only (quicker runs). Training
# speed is questions per second of training (validation excluded); OUT=dir writes elsewhere
# (default bench/out/sciq). A benchmark, run by hand;
# not a test. Usage: [SEEDS="42"] [TRAIN=N] [HONE_BIN=…] bench/sciq_accuracy.sh [sciq/train.json]
set -euo pipefail
cd "$(dirname "$0")/.."
sciq=${1:-../shared/datasets/sciq/train.json}
out=${OUT:-bench/out/sciq}
mkdir -p "$out"

model=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh

"$python" bench/sciq_prepare.py "$sciq" "$out" --train "${TRAIN:-0}" >&2
seeds=${SEEDS:-42 43 44}
recipe=(--epochs 1 --batch-size 16 --max-length 128 --lr 5e-5 --warmup-ratio 0.1
        --weight-decay 0.01 --clip-norm 1.0)
columns=(--question-column question --choice-columns A,B,C,D --label-column answer)

for seed in $seeds; do
  for side in "${sides[@]}"; do
    bin=$(bin_of "$side")
    echo "== seed $seed: Hone ($side)" >&2
    rm -rf "$out/$side-model-$seed"
    RAYON_NUM_THREADS=2 "$bin" --db "$out/$side.db" train --task multiple-choice --model "$model" \
      --train "$out/train.jsonl" --valid "$out/valid.jsonl" "${columns[@]}" \
      --out "$out/$side-model-$seed" "${recipe[@]}" --seed "$seed" --json > "$out/$side-$seed.jsonl"
    "$bin" eval --model "$out/$side-model-$seed" --data "$out/test.jsonl" "${columns[@]}" \
      --max-length 128 --json > "$out/$side-$seed.json"
  done

  echo "== seed $seed: PyTorch + transformers" >&2
  "$python" bench/sciq_reference.py --model "$model" --train "$out/train.jsonl" \
    --test "$out/test.jsonl" --epochs 1 --batch 16 --max-length 128 --lr 5e-5 --warmup-ratio 0.1 \
    --weight-decay 0.01 --clip 1.0 --seed "$seed" > "$out/torch-$seed.json" 2> "$out/torch-$seed.log"
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
tref = [r["train_examples"] / r["train_seconds"] for r in ref]
print(f"test questions: {ref[0]['test_examples']}; training questions: {ref[0]['train_examples']}; seeds {' '.join(seeds)}")
print("seed   " + "".join(f"{s + ' acc':>9} {s + ' MAP@3':>10} {s + ' q/s':>8} " for s in sides) + "torch acc  torch MAP@3  torch q/s")
for i, seed in enumerate(seeds):
    cells = "".join(f"{rows[s][i][0]['accuracy']:>9.4f} {rows[s][i][0]['map_at_3']:>10.4f} {rows[s][i][1]:>8.1f} " for s in sides)
    print(f"{seed:<6} {cells}{ref[i]['accuracy']:>9.4f} {ref[i]['map_at_3']:>11.4f} {tref[i]:>10.1f}")
for s in sides:
    acc = mean(a['accuracy'] for a, _ in rows[s]); m3 = mean(a['map_at_3'] for a, _ in rows[s])
    print(f"{s}: accuracy {acc:.4f} ({100 * (acc - mean(r['accuracy'] for r in ref)):+.2f} points vs transformers), "
          f"MAP@3 {m3:.4f} ({100 * (m3 - mean(r['map_at_3'] for r in ref)):+.2f}), "
          f"training {mean(r for _, r in rows[s]) / mean(tref):.2f}x its questions/s")
PY
