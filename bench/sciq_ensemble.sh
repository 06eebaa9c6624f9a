#!/usr/bin/env bash
# The three seeds of bench/sciq_accuracy.sh ensembled (`hone ensemble create`, mean of
# probabilities), scored on the same held-out SciQ questions, with each member beside it: the
# guide's "three runs → one ensemble" step. Run after sciq_accuracy.sh (it reads its models).
# Usage: [SEEDS="42 43 44"] [HONE_BIN=…] bench/sciq_ensemble.sh
set -euo pipefail
cd "$(dirname "$0")/.."
out=${OUT:-bench/out/sciq}
bin=${HONE_BIN:-target/release/hone}
seeds=${SEEDS:-42 43 44}
columns=(--question-column question --choice-columns A,B,C,D --label-column answer)
members=()
for seed in $seeds; do members+=("$out/new-model-$seed"); done
rm -rf "$out/ensemble"
"$bin" ensemble create "${members[@]}" --out "$out/ensemble" >&2
for model in "${members[@]}" "$out/ensemble"; do
  printf '%-32s ' "$(basename "$model")"
  "$bin" eval --model "$model" --data "$out/test.jsonl" "${columns[@]}" --max-length 128 --json |
    python3 -c 'import json,sys; r=json.load(sys.stdin); print("accuracy %.4f  MAP@3 %.4f" % (r["accuracy"], r["map_at_3"]))'
done
