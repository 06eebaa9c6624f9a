#!/usr/bin/env bash
# Checks the fit check's memory estimate (crates/hone-engine/src/memory.rs, shown by `hone hub
# info` and `hone models check` before a download) against the peak resident memory of real
# `hone train` runs of all-MiniLM-L6-v2 on texts long enough that every batch is full length
# (the estimate's assumption): for each batch × length, full fine-tuning, frozen embeddings and
# LoRA (rank 8 on query and value: the fit check's LoRA line),
# it prints the measured peak (GNU time's maximum RSS), the estimate and the error, and fails
# when an estimate is more than 25% off.
#
# Usage: [SHAPES="16x64 32x128 8x256 64x32"] [STEPS=20] [THREADS=2] bench/memory_estimate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${SHAPES:-16x64 32x128 8x256 64x32}
steps=${STEPS:-20}
threads=${THREADS:-2}
out=bench/out/memory
mkdir -p "$out"
model=$(scripts/fetch-minilm)
cargo build --release --quiet -p hone
hone=target/release/hone
[ -x /usr/bin/time ] || { echo "memory_estimate: GNU time (/usr/bin/time) is needed: apt install time" >&2; exit 1; }

printf '%-10s %-8s %12s %12s %8s\n' "shape" "variant" "peak MiB" "estimate MiB" "error"
for shape in $shapes; do
  b=${shape%x*}
  s=${shape#*x}
  rows=$(( b * steps * 10 / 9 + b ))
  data="$out/long-$shape.tsv"
  # Whole words of the model's own vocabulary, far more of them than the length keeps.
  python3 - "$model/vocab.txt" "$rows" "$s" "$data" <<'PY'
import random, sys
vocab, rows, length, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
words = [w for w in open(vocab, encoding="utf-8").read().split() if w.isalpha() and w.islower()]
rng = random.Random(rows * 1000 + length)
with open(path, "w", encoding="utf-8") as f:
    f.write("sentence\tlabel\n")
    for i in range(rows):
        f.write(" ".join(rng.choice(words) for _ in range(length + 8)) + f"\t{i % 2}\n")
PY
  estimate=$("$hone" models check "$model" --batch-size "$b" --max-length "$s" --json)
  for variant in full frozen lora; do
    flag=()
    [ "$variant" = frozen ] && flag=(--freeze-embeddings)
    [ "$variant" = lora ] && flag=(--peft lora --lora-r 8)
    RAYON_NUM_THREADS=$threads /usr/bin/time -f '%M' -o "$out/peak-$shape-$variant.kib" \
      "$hone" --db "$out/bench.db" train --model "$model" --train "$data" --epochs 1 \
      --batch-size "$b" --max-length "$s" --out "$out/model-$shape-$variant" ${flag[@]+"${flag[@]}"} \
      --json > "$out/train-$shape-$variant.jsonl"
    rm -rf "$out/model-$shape-$variant" "$out"/bench.db* "$out/bench-runs"
    python3 - "$out/peak-$shape-$variant.kib" "$estimate" "$shape" "$variant" <<'PY'
import json, sys
peak = int(open(sys.argv[1]).read().split()[-1]) / 1024
fit = json.loads(sys.argv[2])["fit"]
line = fit[{"full": "full", "frozen": "frozen_embeddings", "lora": "lora"}[sys.argv[4]]]
est = line["estimate"]["total"] / 2**20
print(f"{sys.argv[3]:<10} {sys.argv[4]:<8} {peak:12.0f} {est:12.0f} {est / peak - 1:+8.1%}")
# The fit check promises the estimate within 25% of the real peak.
sys.exit(1 if abs(est / peak - 1) > 0.25 else 0)
PY
  done
done
