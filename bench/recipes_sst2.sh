#!/usr/bin/env bash
# The training recipes of issue 14 measured on real data: all-MiniLM-L6-v2 on SST-2, every arm
# with the same data, recipe and seed, scored on 2,000 rows none of them saw.
#
#   finetune     MiniLM (6 layers) fine-tuned as usual — also the distillation teacher
#   scratch      the same architecture from random weights (--init random), same budget
#   student      MiniLM cut to its bottom 2 layers, fine-tuned alone
#   distilled    the same student taught by `finetune` (--teacher, alpha 0.5, T 2)
#   curriculum   the 6-layer model with a length curriculum in its first epoch
#
# Then EWC: each of `plain` and `ewc` continues from `finetune` on emotion (6 classes, a new
# head), and SST-2 accuracy is measured again with the SST-2 head put back (how much the
# encoder forgot; tests/reference/ewc_forgetting.py), beside emotion accuracy.
#
# EWC runs once per λ in EWC_LAMBDAS (default "1e4 1e5 1e6").
#
# A benchmark, run by hand (about 15 minutes on 2 cores); not a test. REUSE=1 keeps the arms
# already scored in bench/out/recipes (to try other λ without training the rest again).
# Usage: [TRAIN=6000] [SEED=42] [EWC_LAMBDAS="1e5"] [REUSE=1] [HONE_BIN=target/release/hone]
#        bench/recipes_sst2.sh
set -euo pipefail
cd "$(dirname "$0")/.."
sst2=../shared/datasets/sst2/train.tsv
emotion=../shared/datasets/emotion
out=bench/out/recipes
mkdir -p "$out"
model=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python
hone=${HONE_BIN:-target/release/hone}
train=${TRAIN:-6000}
seed=${SEED:-42}

head -n $((train + 1)) "$sst2" > "$out/train.tsv"
{ head -n 1 "$sst2"; sed -n "$((train + 2)),$((train + 501))p" "$sst2"; } > "$out/valid.tsv"
{ head -n 1 "$sst2"; tail -n 2000 "$sst2"; } > "$out/test.tsv"

# The student: MiniLM's config with 2 layers; the checkpoint's other layers are not read.
student="$out/minilm-2layers"
rm -rf "$student" && mkdir -p "$student"
cp -r "$model"/. "$student/"
"$python" - "$student/config.json" <<'PY'
import json, sys
path = sys.argv[1]
config = json.load(open(path))
config["num_hidden_layers"] = 2
json.dump(config, open(path, "w"), indent=2)
PY

recipe=(--epochs 2 --batch-size 32 --max-length 64 --lr 1e-4 --warmup-ratio 0.1 --seed "$seed"
        --text-column sentence --label-column label --valid "$out/valid.tsv")
arm() {
  local name=$1 base=$2; shift 2
  if [ -n "${REUSE:-}" ] && [ -s "$out/$name.json" ]; then
    echo "== $name: kept from an earlier run" >&2
    return
  fi
  echo "== $name" >&2
  rm -rf "$out/$name"
  RAYON_NUM_THREADS=2 "$hone" --db "$out/runs.db" train --model "$base" --train "$out/train.tsv" \
    --out "$out/$name" "${recipe[@]}" "$@" --json > "$out/$name.jsonl"
  "$hone" eval --model "$out/$name" --data "$out/test.tsv" --text-column sentence \
    --label-column label --max-length 64 --json > "$out/$name.json"
}
arm finetune "$model"
arm scratch "$model" --init random
arm student "$student"
arm distilled "$student" --teacher "$out/finetune" --distill-alpha 0.5 --distill-temperature 2
arm curriculum "$model" --curriculum length

# EWC: SST-2's model continues on emotion.
"$python" - "$emotion" "$out" <<'PY'
import json, sys
src, out = sys.argv[1], sys.argv[2]
for part, n in [("train", 4000), ("validation", 2000)]:
    with open(f"{src}/{part}.jsonl") as f, open(f"{out}/emotion-{part}.jsonl", "w") as o:
        for i, line in enumerate(f):
            if i >= n:
                break
            o.write(line)
PY
emotion_recipe=(--epochs 1 --batch-size 32 --max-length 64 --lr 1e-4 --warmup-ratio 0.1 --seed "$seed"
                --text-column text --label-column label)
lambdas=${EWC_LAMBDAS:-1e4 1e5 1e6}
for name in plain $(for l in $lambdas; do echo "ewc-$l"; done); do
  extra=()
  if [ "$name" != plain ]; then
    extra=(--ewc-from "$out/finetune" --ewc-data "$out/train.tsv" --ewc-lambda "${name#ewc-}")
  fi
  if [ -n "${REUSE:-}" ] && [ -s "$out/forgetting-$name.json" ]; then
    echo "== emotion after SST-2: $name kept from an earlier run" >&2
    continue
  fi
  echo "== emotion after SST-2: $name" >&2
  rm -rf "$out/emotion-$name"
  RAYON_NUM_THREADS=2 "$hone" --db "$out/runs.db" train --model "$out/finetune" \
    --train "$out/emotion-train.jsonl" --out "$out/emotion-$name" "${emotion_recipe[@]}" "${extra[@]}" \
    --json > "$out/emotion-$name.jsonl"
  "$hone" eval --model "$out/emotion-$name" --data "$out/emotion-validation.jsonl" \
    --text-column text --label-column label --max-length 64 --json > "$out/emotion-$name.json"
  "$python" tests/reference/ewc_forgetting.py --encoder "$out/emotion-$name" --head "$out/finetune" \
    --data "$out/test.tsv" > "$out/forgetting-$name.json"
done

"$python" - "$out" $lambdas <<'PY'
import json, sys
out, lambdas = sys.argv[1], sys.argv[2:]
def acc(name):
    return json.load(open(f"{out}/{name}.json"))["accuracy"]
def speed(name):
    steps = [json.loads(l) for l in open(f"{out}/{name}.jsonl") if '"step"' in l]
    steps = [e for e in steps if e.get("event") == "step"]
    return steps[-1]["elapsed_s"] if steps else float("nan")
print("SST-2 accuracy on 2,000 unseen rows")
for name in ["finetune", "scratch", "student", "distilled", "curriculum"]:
    print(f"  {name:<11} {acc(name):.4f}   ({speed(name):.0f} s of training)")
before = acc("finetune")
print("continual learning: SST-2 then emotion")
for name in ["plain"] + [f"ewc-{l}" for l in lambdas]:
    forgot = json.load(open(f"{out}/forgetting-{name}.json"))["accuracy"]
    print(f"  {name:<9} emotion {acc('emotion-' + name):.4f}   SST-2 with its head back {forgot:.4f}"
          f" (was {before:.4f}; {speed('emotion-' + name):.0f} s of training)")
PY
