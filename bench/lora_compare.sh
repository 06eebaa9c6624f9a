#!/usr/bin/env bash
# LoRA training speed side by side: `hone bench --lora-r R` against PyTorch + transformers + PEFT
# (bench/peft_step.py) on the same fixed batch of all-MiniLM-L6-v2 (as torch_baseline.py
# tokenizes it), LoRA on query and value (rank R, alpha 2R, dropout 0.1), 2 threads,
# alternating the two for ROUNDS rounds at each shape; full fine-tuning steps of Hone on the
# same batch for the saving. Prints per round and the medians:
#   lora speed  PEFT step time / Hone LoRA step time   (> 1: Hone trains faster)
#   vs full     Hone full step time / Hone LoRA step time
# A benchmark run by hand, not a test.
# Usage: [ROUNDS=3] [STEPS=20] [LORA_R=8] [SHAPES="16x64 32x128"] [HONE_BIN=…] bench/lora_compare.sh
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
steps=${STEPS:-20}
rank=${LORA_R:-8}
shapes=${SHAPES:-16x64 32x128}
baseline=${HONE_TORCH_BASELINE:-../shared/bench/torch_baseline.py}
out=bench/out/lora
mkdir -p "$out"
model=$(scripts/fetch-minilm)
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh

for shape in $shapes; do
  b=${shape%x*}
  s=${shape#*x}
  batch="$out/batch-$shape.json"
  dump_batch "$b" "$s" "$batch"
  for round in $(seq 1 "$rounds"); do
    echo "== $shape round $round" >&2
    "$python" bench/peft_step.py --model "$model" --batch-file "$batch" --lora-r "$rank" \
      --steps "$steps" --json "$out/peft-$shape-$round.json" > /dev/null 2>"$out/peft-$shape-$round.log"
    RAYON_NUM_THREADS=2 "$HONE_BIN" bench --model "$model" --batch-file "$batch" --steps "$steps" \
      --lr 5e-4 --lora-r "$rank" --json > "$out/hone-lora-$shape-$round.json"
    RAYON_NUM_THREADS=2 "$HONE_BIN" bench --model "$model" --batch-file "$batch" --steps "$steps" \
      --json > "$out/hone-full-$shape-$round.json"
  done
done

"$python" - "$out" "$rounds" $shapes <<'PY'
import json, statistics, sys
out, rounds, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3:]
print("shape    round  PEFT ms  Hone LoRA ms  Hone full ms  lora speed  vs full  Hone MiB  PEFT MiB")
for shape in shapes:
    speed, saving = [], []
    for r in range(1, rounds + 1):
        peft = json.load(open(f"{out}/peft-{shape}-{r}.json"))
        lora = json.load(open(f"{out}/hone-lora-{shape}-{r}.json"))
        full = json.load(open(f"{out}/hone-full-{shape}-{r}.json"))
        p, l, f = peft["train_step_median_s"], lora["train_step"]["median_s"], full["train_step"]["median_s"]
        speed.append(p / l)
        saving.append(f / l)
        print(f"{shape:<8} {r:>5} {1e3 * p:>8.1f} {1e3 * l:>13.1f} {1e3 * f:>13.1f} {p / l:>11.2f} {f / l:>8.2f}"
              f" {lora.get('peak_rss_mib') or 0:>9.0f} {peft['peak_rss_mib']:>9.0f}")
    print(f"{shape:<8} median {'':>44} {statistics.median(speed):>6.2f} {statistics.median(saving):>8.2f}")
PY
