#!/usr/bin/env bash
# Training speed side by side: `hone bench` against PyTorch + transformers
# (../shared/bench/torch_baseline.py, the reference training-step benchmark) on the same fixed
# batch of all-MiniLM-L6-v2, alternating the two, ROUNDS rounds, for (batch, seq) = (16, 64) and
# (32, 128).
#
# Prints, per round and as the median over rounds:
#   train   PyTorch step time / Hone step time        (> 1: Hone trains faster)
#   forward PyTorch forward time / Hone forward time  (> 1: Hone infers faster)
#   memory  Hone peak RSS / PyTorch peak RSS          (< 1: Hone needs less memory)
#   dense   PyTorch step time / Hone step time on the same batch with every token marked real
#
# Hone drops padding tokens before the first layer (packed sequences); the baseline's batch is
# mostly padding, so the first three columns include that gain. PyTorch's time does not depend
# on how much of the batch is padding, so the "dense" column (Hone made to process all
# batch × seq tokens) isolates the speed of the kernels themselves.
#
# With HONE_OLD=path (bench/engine_ab.sh sets it) an older hone binary runs every round too, and
# an "old → new" table compares the two engines on the same batches.
# MODEL=dir measures another model folder than all-MiniLM-L6-v2 (bench/deberta_speed.sh);
# TORCH_ATTN=eager for models transformers runs without SDPA (DeBERTa).
# Usage: [ROUNDS=3] [STEPS=20] [THREADS=2] [SHAPES="16x64 32x128"] [MODEL=…] [HONE_BIN=…] [HONE_OLD=…] bench/compare.sh
# The baseline script is found at $HONE_TORCH_BASELINE or ../shared/bench/torch_baseline.py.
set -euo pipefail
cd "$(dirname "$0")/.."
rounds=${ROUNDS:-3}
steps=${STEPS:-20}
threads=${THREADS:-2}
shapes=${SHAPES:-16x64 32x128}
baseline=${HONE_TORCH_BASELINE:-../shared/bench/torch_baseline.py}
if [ ! -f "$baseline" ]; then
  echo "compare: the PyTorch baseline $baseline is missing; set HONE_TORCH_BASELINE" >&2
  exit 1
fi
out=${OUT:-bench/out/compare}
mkdir -p "$out"
model=${MODEL:-$(scripts/fetch-minilm)}
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh

for shape in $shapes; do
  b=${shape%x*}
  s=${shape#*x}
  batch="$out/batch-$shape.json"
  dump_batch "$b" "$s" "$batch"
  "$python" -c 'import json, sys; b = json.load(open(sys.argv[1])); b["attention_mask"] = [[1] * len(r) for r in b["attention_mask"]]; json.dump(b, open(sys.argv[2], "w"))' "$batch" "$out/dense-$shape.json"
  for round in $(seq 1 "$rounds"); do
    echo "== $shape round $round: PyTorch" >&2
    HF_HUB_OFFLINE=1 "$python" "$baseline" --model "$model" --batch "$b" --seq "$s" \
      --steps "$steps" --threads "$threads" --attn "${TORCH_ATTN:-sdpa}" \
      --json "$out/torch-$shape-$round.json" > "$out/torch-$shape-$round.log" 2>&1
    for side in "${sides[@]}"; do
      echo "== $shape round $round: Hone ($side)" >&2
      prefix=hone; [ "$side" = old ] && prefix=old
      RAYON_NUM_THREADS=$threads "$(bin_of "$side")" bench --model "$model" --batch-file "$batch" \
        --steps "$steps" --json > "$out/$prefix-$shape-$round.json"
      RAYON_NUM_THREADS=$threads "$(bin_of "$side")" bench --model "$model" --batch-file "$out/dense-$shape.json" \
        --steps "$steps" --json > "$out/$prefix-dense-$shape-$round.json"
    done
  done
done

"$python" - "$out" "$rounds" "${HONE_OLD:+old}" $shapes <<'PY'
import json, statistics, sys
out, rounds, with_old, shapes = sys.argv[1], int(sys.argv[2]), sys.argv[3] == "old", sys.argv[4:]
for shape in shapes:
    print(f"batch x seq = {shape.replace('x', ' x ')}")
    print("round   PyTorch step  Hone step   train ratio  fwd ratio  mem ratio (Hone/PyTorch MiB)   dense: Hone step  ratio")
    tr, fr, mr, dr = [], [], [], []
    for r in range(1, rounds + 1):
        t = json.load(open(f"{out}/torch-{shape}-{r}.json"))
        h = json.load(open(f"{out}/hone-{shape}-{r}.json"))
        train = t["train_step"]["median_s"] / h["train_step"]["median_s"]
        fwd = t["forward_only"]["median_s"] / h["forward_only"]["median_s"]
        mem = h["peak_rss_mib"] / t["peak_rss_mib"]
        d = json.load(open(f"{out}/hone-dense-{shape}-{r}.json"))
        dense = t["train_step"]["median_s"] / d["train_step"]["median_s"]
        tr.append(train); fr.append(fwd); mr.append(mem); dr.append(dense)
        print(f"{r:<7} {t['train_step']['median_s']*1e3:9.1f} ms {h['train_step']['median_s']*1e3:9.1f} ms"
              f"   {train:9.3f}  {fwd:9.3f}  {mem:9.3f} ({h['peak_rss_mib']:.0f}/{t['peak_rss_mib']:.0f})"
              f"      {d['train_step']['median_s']*1e3:9.1f} ms {dense:7.3f}")
        if t.get("contaminated"):
            print("        (PyTorch reported other processes using the CPU during this round)")
    real = sum(map(sum, json.load(open(f"{out}/batch-{shape}.json"))["attention_mask"]))
    print(f"median  {'':24} {statistics.median(tr):9.3f}  {statistics.median(fr):9.3f}  {statistics.median(mr):9.3f}"
          f"   {'':24} {statistics.median(dr):7.3f}")
    print(f"({real} of the batch's {shape.replace('x', ' x ')} token slots are real tokens)\n")
if with_old:
    med = statistics.median
    print("old engine → new engine, same batches (median over rounds; speed > 1: new is faster)")
    print("shape     batch    old step   new step   speed   old MiB  new MiB")
    for shape in shapes:
        for kind, name in (("", "real"), ("dense-", "dense")):
            o = [json.load(open(f"{out}/old-{kind}{shape}-{r}.json")) for r in range(1, rounds + 1)]
            n = [json.load(open(f"{out}/hone-{kind}{shape}-{r}.json")) for r in range(1, rounds + 1)]
            os_ = med(x["train_step"]["median_s"] for x in o)
            ns = med(x["train_step"]["median_s"] for x in n)
            print(f"{shape:<9} {name:<6} {os_*1e3:8.1f} ms {ns*1e3:8.1f} ms {os_/ns:7.3f}  "
                  f"{med(x['peak_rss_mib'] for x in o):7.0f}  {med(x['peak_rss_mib'] for x in n):7.0f}")
PY
