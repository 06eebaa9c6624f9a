#!/usr/bin/env bash
# The fit check's memory estimate for decoder LMs against the peak resident memory of real
# `hone train --task causal-lm --peft lora` runs on texts long enough that every batch is full
# length: SmolLM2-135M (real weights, bench/decoder/smollm2_from_gguf.py) and a decoder the size
# of Qwen2.5-0.5B (random weights, bench/decoder/make_qwen05b.py) at LoRA rank 16, batch 4 ×
# 512 (the issue's promise: under 8 GiB) and smaller shapes. Prints the measured peak (GNU
# time's maximum RSS), the estimate, the error and the step time; fails when an estimate is
# more than 25% off. Not a test.
#
# PRECISION=bf16 trains in mixed precision, which on the CPU runs candle's autograd graph (the
# GPU's): the estimate is then the autograd graph's (memory.rs::autograd_activations).
#
# Usage: [MODELS="smollm2 qwen05b"] [SHAPES="4x512 8x128"] [STEPS=3] [PRECISION=fp32]
#        bench/decoder/memory_decoder.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
models=${MODELS:-smollm2 qwen05b}
shapes=${SHAPES:-4x512 8x128}
steps=${STEPS:-3}
precision=${PRECISION:-fp32}
out=bench/out/decoder-memory
mkdir -p "$out"
[ -x /usr/bin/time ] || { echo "memory_decoder: GNU time (/usr/bin/time) is needed: apt install time" >&2; exit 1; }
python=.reference-venv/bin/python
smollm2=$(bench/decoder/smollm2.sh)
qwen05b=bench/out/qwen05b
[ -f "$qwen05b/model.safetensors" ] || "$python" bench/decoder/make_qwen05b.py "$smollm2" "$qwen05b"
source bench/hone-bins.sh
hone=$HONE_BIN

printf '%-8s %-7s %10s %12s %8s %9s\n' model shape "peak MiB" "estimate MiB" error "step s"
for name in $models; do
  model=$smollm2
  [ "$name" = qwen05b ] && model=$qwen05b
  for shape in $shapes; do
    b=${shape%x*}
    s=${shape#*x}
    # Plain-text records (every token learned), each far longer than the length keeps: SQuAD
    # paragraphs run together.
    "$python" - "$out/long.json" "$out/valid.json" $(( b * steps )) <<'PY'
import json, sys
out, valid, rows = sys.argv[1], sys.argv[2], int(sys.argv[3])
squad = json.load(open("../shared/datasets/squad/train-v1.1-reconstructed.json", encoding="utf-8"))
paragraphs = [p["context"] for a in squad["data"] for p in a["paragraphs"]]
texts = [" ".join(paragraphs[i * 8:(i + 1) * 8]) for i in range(rows + 2)]
json.dump([{"text": t} for t in texts[:rows]], open(out, "w"))
json.dump([{"text": t} for t in texts[rows:]], open(valid, "w"))
PY
    estimate=$("$hone" models check "$model" --batch-size "$b" --max-length "$s" --lora-r 16 \
      --precision "$precision" --device cpu --json)
    rm -rf "$out/run" "$out"/bench.db*
    RAYON_NUM_THREADS=2 /usr/bin/time -f '%M' -o "$out/peak.kib" "$hone" --db "$out/bench.db" \
      train --task causal-lm --model "$model" --train "$out/long.json" --valid "$out/valid.json" \
      --epochs 1 --batch-size "$b" --max-length "$s" --peft lora --lora-r 16 --lora-alpha 32 \
      --precision "$precision" \
      --out "$out/run" --json > "$out/train-$name-$shape.jsonl"
    rm -rf "$out/run" "$out"/bench.db* "$out/bench-runs"
    "$python" - "$out/peak.kib" "$estimate" "$name" "$shape" "$out/train-$name-$shape.jsonl" <<'PY'
import json, sys
peak = int(open(sys.argv[1]).read().split()[-1]) / 1024
est = json.loads(sys.argv[2])["fit"]["lora"]["estimate"]["total"] / 2**20
steps = [json.loads(l) for l in open(sys.argv[5]) if '"step"' in l]
steps = [e for e in steps if e.get("event") == "step"]
per_step = (steps[-1]["elapsed_s"] - steps[0]["elapsed_s"]) / max(1, len(steps) - 1)
print(f"{sys.argv[3]:<8} {sys.argv[4]:<7} {peak:10.0f} {est:12.0f} {est / peak - 1:+8.1%} {per_step:9.1f}")
sys.exit(1 if abs(est / peak - 1) > 0.25 else 0)
PY
  done
done
