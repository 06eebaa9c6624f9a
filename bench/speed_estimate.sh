#!/usr/bin/env bash
# Checks the speed estimate the fit check shows before a download (crates/hone-engine/src/
# speed.rs) against `hone bench` on dense batches of all-MiniLM-L6-v2 (every token slot real,
# so the packed-sequence saving plays no part): for each batch × length it prints the measured
# and estimated training samples/s and the estimate's error.
#
# Usage: [SHAPES="16x13 32x13 16x24 64x16 16x48 64x32 16x64 16x128 32x128 8x256"] [STEPS=5] [THREADS=2] bench/speed_estimate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${SHAPES:-16x13 32x13 16x24 64x16 16x48 64x32 16x64 16x128 32x128 8x256}
steps=${STEPS:-5}
threads=${THREADS:-2}
out=bench/out/speed
mkdir -p "$out"
model=$(scripts/fetch-minilm)
cargo build --release --quiet -p hone

printf '%-10s %-8s %12s %12s %8s\n' "shape" "variant" "measured/s" "estimate/s" "error"
for shape in $shapes; do
  b=${shape%x*}
  s=${shape#*x}
  batch="$out/dense-$shape.json"
  # Random word-piece ids between [CLS] and [SEP], every mask entry 1.
  python3 - "$b" "$s" "$batch" <<'PY'
import json, random, sys
b, s, path = int(sys.argv[1]), int(sys.argv[2]), sys.argv[3]
rng = random.Random(b * 1000 + s)
ids = [[101] + [rng.randint(2000, 29000) for _ in range(s - 2)] + [102] for _ in range(b)]
json.dump({"input_ids": ids, "token_type_ids": [[0] * s] * b, "attention_mask": [[1] * s] * b,
           "labels": [i % 2 for i in range(b)]}, open(path, "w"))
PY
  for variant in full frozen; do
    flag=()
    [ "$variant" = frozen ] && flag=(--freeze-embeddings)
    RAYON_NUM_THREADS=$threads target/release/hone bench --model "$model" --batch-file "$batch" \
      --steps "$steps" --warmup 2 ${flag[@]+"${flag[@]}"} --json > "$out/hone-$shape-$variant.json"
    python3 - "$out/hone-$shape-$variant.json" "$shape" "$variant" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
m, e = r["samples_per_s"], r["estimated_dense_samples_per_s"]
if e is None:
    sys.exit(f"no estimate: the bench ran on the {r['path']} path, not Hone's CPU path")
print(f"{sys.argv[2]:<10} {sys.argv[3]:<8} {m:12.2f} {e:12.2f} {e / m - 1:+8.1%}")
PY
  done
done
