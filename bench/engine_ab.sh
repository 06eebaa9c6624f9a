#!/usr/bin/env bash
# The previous engine against this one, and both against PyTorch + transformers, measured side
# by side in one run on all-MiniLM-L6-v2 (2 threads):
#   1. training steps on fixed batches (the shapes of bench/compare.sh: the batch as the
#      baseline tokenizes it, and "dense" with every slot a real token), ROUNDS rounds,
#      alternating old / new / PyTorch;
#   2. a whole fine-tune: the first 4,000 rows of SST-2, 1 epoch, batch 16, length 64, lr 5e-5,
#      10% warmup + linear, wd 0.01, clip 1.0 — old Hone, new Hone, and transformers with
#      dynamic padding (bench/sst2_reference.py), samples per second of training.
#
# OLD is a git revision (default: the last commit before engine v2); it is built once in a
# worktree under bench/out/ab/old with its own target folder (a cold release build, ~10 min;
# two checkouts of one workspace must not share a target folder: their crates get the same
# artifact names) and kept as bench/out/ab/hone-old (OLD_REBUILD=1 builds it again).
# A benchmark run by hand, not a test.
# Usage: [OLD=b21db56] [ROUNDS=3] [STEPS=20] [SHAPES="16x64 32x128"] [FINETUNE=1] bench/engine_ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
old_rev=${OLD:-b21db56}
rounds=${ROUNDS:-3}
steps=${STEPS:-20}
shapes=${SHAPES:-16x64 32x128}
threads=2
baseline=${HONE_TORCH_BASELINE:-../shared/bench/torch_baseline.py}
sst2=${SST2:-../shared/datasets/sst2/train.tsv}
out=bench/out/ab
mkdir -p "$out"
model=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python

if [ ! -x "$out/hone-old" ] || [ "${OLD_REBUILD:-0}" = 1 ]; then
  if [ ! -d "$out/old" ]; then
    git worktree add --detach "$out/old" "$old_rev" >&2
  fi
  (cd "$out/old" && git checkout --quiet --detach "$old_rev" &&
    CARGO_TARGET_DIR="$PWD/../target-old" cargo build --release --quiet --bin hone)
  cp "$out/target-old/release/hone" "$out/hone-old"
fi
CARGO_TARGET_DIR="$PWD/$out/target-new" cargo build --release --quiet --bin hone
cp "$out/target-new/release/hone" "$out/hone-new"
old="$out/hone-old"
new="$out/hone-new"

for shape in $shapes; do
  b=${shape%x*}
  s=${shape#*x}
  batch="$out/batch-$shape.json"
  HF_HUB_OFFLINE=1 "$python" "$baseline" --model "$model" --batch "$b" --seq "$s" --steps 1 \
    --warmup 0 --matmul-reps 1 --threads "$threads" --dump-batch "$batch" > /dev/null 2>&1
  "$python" -c 'import json, sys; b = json.load(open(sys.argv[1])); b["attention_mask"] = [[1] * len(r) for r in b["attention_mask"]]; json.dump(b, open(sys.argv[2], "w"))' "$batch" "$out/dense-$shape.json"
  for round in $(seq 1 "$rounds"); do
    echo "== $shape round $round" >&2
    for side in old new; do
      bin=$old; [ "$side" = new ] && bin=$new
      for kind in batch dense; do
        RAYON_NUM_THREADS=$threads "$bin" bench --model "$model" --batch-file "$out/$kind-$shape.json" \
          --steps "$steps" --json > "$out/$side-$kind-$shape-$round.json"
      done
    done
    HF_HUB_OFFLINE=1 "$python" "$baseline" --model "$model" --batch "$b" --seq "$s" \
      --steps "$steps" --threads "$threads" --json "$out/torch-$shape-$round.json" > "$out/torch-$shape-$round.log" 2>&1
  done
done

if [ "${FINETUNE:-1}" = 1 ]; then
  head -n 4001 "$sst2" > "$out/train.tsv"
  { head -n 1 "$sst2"; tail -n 500 "$sst2"; } > "$out/test.tsv"
  recipe=(--epochs 1 --batch-size 16 --max-length 64 --lr 5e-5 --warmup-ratio 0.1
          --weight-decay 0.01 --clip-norm 1.0 --seed 42)
  for side in old new; do
    bin=$old; [ "$side" = new ] && bin=$new
    echo "== fine-tune: $side Hone" >&2
    rm -rf "$out/$side-model"
    RAYON_NUM_THREADS=$threads "$bin" --db "$out/$side.db" train --model "$model" \
      --train "$out/train.tsv" --valid "$out/test.tsv" --text-column sentence \
      --label-column label --out "$out/$side-model" "${recipe[@]}" --json > "$out/$side-finetune.jsonl"
  done
  echo "== fine-tune: transformers (dynamic padding)" >&2
  "$python" bench/sst2_reference.py --model "$model" --train "$out/train.tsv" \
    --test "$out/test.tsv" --epochs 1 --batch 16 --max-length 64 --lr 5e-5 --warmup-ratio 0.1 \
    --weight-decay 0.01 --clip 1.0 --seed 42 > "$out/torch-finetune.json" 2> "$out/torch-finetune.log"
fi

"$python" - "$out" "$rounds" "${FINETUNE:-1}" $shapes <<'PY'
import json, os, statistics, sys
out, rounds, finetune, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "1", sys.argv[4:]
med = statistics.median
for shape in shapes:
    print(f"training step, batch x seq = {shape.replace('x', ' x ')} (median of {rounds} rounds)")
    print("             old Hone    new Hone   PyTorch    new/old speed  new vs PyTorch  peak MiB old/new/PyTorch")
    for kind in ("batch", "dense"):
        o = [json.load(open(f"{out}/old-{kind}-{shape}-{r}.json")) for r in range(1, rounds + 1)]
        n = [json.load(open(f"{out}/new-{kind}-{shape}-{r}.json")) for r in range(1, rounds + 1)]
        t = [json.load(open(f"{out}/torch-{shape}-{r}.json")) for r in range(1, rounds + 1)]
        os_ = med(x["train_step"]["median_s"] for x in o)
        ns = med(x["train_step"]["median_s"] for x in n)
        ts = med(x["train_step"]["median_s"] for x in t)
        print(f"  {kind:<9} {os_*1e3:7.1f} ms {ns*1e3:7.1f} ms {ts*1e3:7.1f} ms   {os_/ns:9.3f}      {ts/ns:9.3f}"
              f"      {med(x['peak_rss_mib'] for x in o):.0f}/{med(x['peak_rss_mib'] for x in n):.0f}/{med(x['peak_rss_mib'] for x in t):.0f}")
    print()
if finetune:
    def hone_rate(side):
        steps = [json.loads(l) for l in open(f"{out}/{side}-finetune.jsonl") if l.strip()]
        done = [e for e in steps if e.get("event") == "step" or e.get("type") == "step" or "samples_per_s" in e]
        last = done[-1]
        samples = 4000
        return samples / last["elapsed_s"], last["elapsed_s"]
    t = json.load(open(f"{out}/torch-finetune.json"))
    trate = t["train_examples"] / t["train_seconds"]
    print("whole fine-tune, 4,000 SST-2 rows, 1 epoch, batch 16, length 64 (training time only)")
    for side in ("old", "new"):
        rate, secs = hone_rate(side)
        print(f"  {side} Hone      {rate:7.1f} samples/s ({secs:.1f} s)   {rate/trate:.2f}x transformers")
    print(f"  transformers  {trate:7.1f} samples/s ({t['train_seconds']:.1f} s)  accuracy {t['accuracy']:.4f}")
PY
