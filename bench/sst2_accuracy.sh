#!/usr/bin/env bash
# Real data, real model: fine-tunes all-MiniLM-L6-v2 on the first 4,000 rows of SST-2 with the
# same recipe in Hone and in PyTorch + transformers (bench/sst2_reference.py), and prints both
# accuracies on 2,000 rows neither run saw (the last rows of the file).
#
# Recipe: 1 epoch, batch 16, max length 64, lr 5e-5, 10% warmup then linear decay, weight decay
# 0.01, clip 1.0, seed 42. One seed differs from another by a few tenths of a point (head
# initialisation, dropout masks, data order), so the script runs each side with several seeds
# (SEEDS, default "42 43 44") and compares the means. A benchmark, run by hand (~4 minutes per
# seed on 2 cores); not a test. With HONE_OLD=path (bench/engine_ab.sh sets it) an older hone
# binary runs the same seeds beside this one. Training speed is samples per second of training
# (Hone: the last step's elapsed time; transformers: its training loop), validation excluded.
# With LORA_R=r both sides train LoRA adapters instead (query and value, rank r, alpha 2r,
# dropout 0.1, the head in full; PEFT on the reference side) at LR (default 5e-4 with LoRA).
# With PRECISION=bf16 Hone trains in bf16 (its CPU graph's bf16 products where the CPU has
# AVX512-BF16); the reference stays fp32.
# Usage: [SEEDS="42"] [LORA_R=8] [LR=…] [PRECISION=bf16] [HONE_BIN=…] [HONE_OLD=…] bench/sst2_accuracy.sh [path/to/sst2/train.tsv]
set -euo pipefail
cd "$(dirname "$0")/.."
sst2=${1:-../shared/datasets/sst2/train.tsv}
out=bench/out/sst2
mkdir -p "$out"

model=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh

head -n 4001 "$sst2" > "$out/train.tsv"
{ head -n 1 "$sst2"; tail -n 2000 "$sst2"; } > "$out/test.tsv"
# A validation slice for Hone's per-epoch checkpointing (one epoch: the only checkpoint is the
# final model, so it selects nothing); disjoint from train and test.
{ head -n 1 "$sst2"; sed -n '4002,4501p' "$sst2"; } > "$out/valid.tsv"

seeds=${SEEDS:-42 43 44}
lora=()
ref_lora=()
lr=${LR:-5e-5}
if [ -n "${LORA_R:-}" ]; then
  lr=${LR:-5e-4}
  lora=(--peft lora --lora-r "$LORA_R" --lora-alpha $((2 * LORA_R)) --lora-dropout 0.1)
  ref_lora=(--lora-r "$LORA_R" --lora-alpha $((2 * LORA_R)) --lora-dropout 0.1)
  out=bench/out/sst2-lora
  mkdir -p "$out"
  cp bench/out/sst2/{train,test,valid}.tsv "$out/"
fi
recipe=(--epochs 1 --batch-size 16 --max-length 64 --lr "$lr" --warmup-ratio 0.1
        --weight-decay 0.01 --clip-norm 1.0 --precision "${PRECISION:-fp32}" "${lora[@]}")

for seed in $seeds; do
  for side in "${sides[@]}"; do
    bin=$(bin_of "$side")
    echo "== seed $seed: Hone ($side)" >&2
    rm -rf "$out/$side-model-$seed"
    RAYON_NUM_THREADS=2 "$bin" --db "$out/$side.db" train --model "$model" --train "$out/train.tsv" \
      --valid "$out/valid.tsv" --text-column sentence --label-column label \
      --out "$out/$side-model-$seed" "${recipe[@]}" --seed "$seed" --json > "$out/$side-$seed.jsonl"
    "$bin" eval --model "$out/$side-model-$seed" --data "$out/test.tsv" \
      --text-column sentence --label-column label --max-length 64 --json > "$out/$side-$seed.json"
  done

  echo "== seed $seed: PyTorch + transformers" >&2
  "$python" bench/sst2_reference.py --model "$model" --train "$out/train.tsv" \
    --test "$out/test.tsv" --epochs 1 --batch 16 --max-length 64 --lr "$lr" --warmup-ratio 0.1 \
    --weight-decay 0.01 --clip 1.0 --seed "$seed" "${ref_lora[@]}" > "$out/torch-$seed.json" 2> "$out/torch-$seed.log"
done

"$python" - "$out" "${sides[*]}" $seeds <<'PY'
import json, statistics, sys
out, sides, seeds = sys.argv[1], sys.argv[2].split(), sys.argv[3:]
mean = statistics.mean

def hone(side, seed):
    acc = json.load(open(f"{out}/{side}-{seed}.json"))
    events = [json.loads(l) for l in open(f"{out}/{side}-{seed}.jsonl") if l.strip()]
    started = next(e for e in events if e.get("event") == "started")
    last = [e for e in events if e.get("event") == "step"][-1]
    return acc, started["train_examples"] / last["elapsed_s"]

rows = {s: [hone(s, seed) for seed in seeds] for s in sides}
ref = [json.load(open(f"{out}/torch-{s}.json")) for s in seeds]
tref = [r["train_examples"] / r["train_seconds"] for r in ref]
print(f"test examples: {rows['new'][0][0]['examples']} (unseen by every run); seeds {' '.join(seeds)}")
print("seed   " + "".join(f"{s + ' acc':>10} {s + ' samp/s':>12} " for s in sides) + "torch acc  torch samp/s")
for i, seed in enumerate(seeds):
    cells = "".join(f"{rows[s][i][0]['accuracy']:>10.4f} {rows[s][i][1]:>12.1f} " for s in sides)
    print(f"{seed:<6} {cells}{ref[i]['accuracy']:>9.4f} {tref[i]:>12.1f}")
cells = "".join(f"{mean(a['accuracy'] for a, _ in rows[s]):>10.4f} {mean(r for _, r in rows[s]):>12.1f} " for s in sides)
print(f"mean   {cells}{mean(r['accuracy'] for r in ref):>9.4f} {mean(tref):>12.1f}")
for s in sides:
    print(f"{s}: accuracy {100 * (mean(a['accuracy'] for a, _ in rows[s]) - mean(r['accuracy'] for r in ref)):+.2f} points vs transformers, "
          f"training {mean(r for _, r in rows[s]) / mean(tref):.2f}x its samples/s")
PY
