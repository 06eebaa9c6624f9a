#!/usr/bin/env bash
# Multi-task learning measured on real data: all-MiniLM-L6-v2 trained on SST-2 (sentiment) and
# CoNLL-2003 (named entities) each alone, and both together on one encoder (two heads, steps
# drawn in proportion to the tasks' sizes), same recipe and seed; each head scored on held-out
# data none of the runs saw (SST-2: 2,000 rows from the end of the file; CoNLL: eng.testa
# sentences after the validation ones). The multi-task run sees each task's examples about as
# often as its single-task run, in about the sum of their time.
#
# A benchmark, run by hand (about 10 minutes on 2 cores); not a test.
# Usage: [SST2=3000] [CONLL=3000] [SEED=42] [HONE_BIN=target/release/hone] bench/multitask.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sst2=../shared/datasets/sst2/train.tsv
conll=../shared/datasets/conll2003
out=bench/out/multitask
mkdir -p "$out"
model=$(scripts/fetch-minilm)
hone=${HONE_BIN:-target/release/hone}
n_sst2=${SST2:-3000}
n_conll=${CONLL:-3000}
seed=${SEED:-42}

head -n $((n_sst2 + 1)) "$sst2" > "$out/sst2.tsv"
{ head -n 1 "$sst2"; sed -n "$((n_sst2 + 2)),$((n_sst2 + 501))p" "$sst2"; } > "$out/sst2-valid.tsv"
{ head -n 1 "$sst2"; tail -n 2000 "$sst2"; } > "$out/sst2-test.tsv"
awk -v n="$n_conll" 'BEGIN { RS = ""; ORS = "\n\n" } NR <= n' "$conll/eng.train" > "$out/ner.conll"
awk 'BEGIN { RS = ""; ORS = "\n\n" } NR <= 500' "$conll/eng.testa" > "$out/ner-valid.conll"
awk 'BEGIN { RS = ""; ORS = "\n\n" } NR > 500 && NR <= 2000' "$conll/eng.testa" > "$out/ner-test.conll"

recipe=(--epochs 2 --batch-size 16 --max-length 64 --lr 1e-4 --warmup-ratio 0.1 --seed "$seed")
sst2_data=(--train "$out/sst2.tsv" --valid "$out/sst2-valid.tsv" --text-column sentence
           --label-column label)
run() {
  local name=$1; shift
  echo "== $name" >&2
  rm -rf "$out/$name"
  local start=$SECONDS
  RAYON_NUM_THREADS=2 "$hone" --db "$out/runs.db" train --model "$model" --out "$out/$name" \
    "${recipe[@]}" "$@" --json > "$out/$name.jsonl"
  echo $((SECONDS - start)) > "$out/$name.seconds"
}
score() {
  local folder=$1 data=$2 into=$3; shift 3
  "$hone" eval --model "$folder" --data "$data" --max-length 64 --json "$@" > "$into"
}

run sst2-alone "${sst2_data[@]}"
score "$out/sst2-alone" "$out/sst2-test.tsv" "$out/sst2-alone.json" --text-column sentence --label-column label
run ner-alone --task token-classification --train "$out/ner.conll" --valid "$out/ner-valid.conll"
score "$out/ner-alone" "$out/ner-test.conll" "$out/ner-alone.json"
# The multi-task run's NER validation file goes in a TOML table ([[also]] data); the flag
# form holds out 10% of the training sentences instead, so both arms use the same split here.
cat > "$out/multi.toml" <<TOML
model = "$model"
name = "sst2"
[data]
train = "$out/sst2.tsv"
valid = "$out/sst2-valid.tsv"
text_column = "sentence"
label_column = "label"
[[also]]
name = "ner"
task = "token-classification"
[also.data]
train = "$out/ner.conll"
valid = "$out/ner-valid.conll"
format = "conll"
text_column = "tokens"
label_column = "tags"
TOML
run both --config "$out/multi.toml"
score "$out/both/sst2" "$out/sst2-test.tsv" "$out/both-sst2.json" --text-column sentence --label-column label
score "$out/both/ner" "$out/ner-test.conll" "$out/both-ner.json"

python3 - "$out" <<'PY'
import json, sys
out = sys.argv[1]
load = lambda n: json.load(open(f"{out}/{n}.json"))
secs = lambda n: int(open(f"{out}/{n}.seconds").read())
a, b = load("sst2-alone"), load("ner-alone")
ma, mb = load("both-sst2"), load("both-ner")
print("all-MiniLM-L6-v2, 2 epochs, held-out test data")
print(f"{'':22}{'SST-2 accuracy':>16}{'CoNLL entity F1':>17}{'seconds':>9}")
print(f"{'SST-2 alone':22}{a['accuracy']:>16.4f}{'':>17}{secs('sst2-alone'):>9}")
print(f"{'CoNLL alone':22}{'':>16}{b['entity_f1']:>17.4f}{secs('ner-alone'):>9}")
print(f"{'both (one encoder)':22}{ma['accuracy']:>16.4f}{mb['entity_f1']:>17.4f}{secs('both'):>9}")
PY
