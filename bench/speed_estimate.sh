#!/usr/bin/env bash
# Checks the speed estimate the fit check shows before a download (crates/hone-engine/src/
# speed.rs) against `hone bench` on dense batches (every token slot real, so the packed-sequence
# saving plays no part): all-MiniLM-L6-v2 (full fine-tuning and frozen embeddings) and, with
# DECODER=1, SmolLM2-135M (LoRA rank 8 and full fine-tuning; real weights,
# bench/decoder/smollm2_from_gguf.py), in each precision of PRECISIONS (bf16 is Hone's CPU
# graph with bf16 products; skipped where the CPU has no AVX512-BF16). For each run it prints
# the measured and estimated training samples/s and the estimate's error;
# bench/out/speed/runs.jsonl keeps this invocation's reports (the step's work by kind and the
# measured matrix rates, for a refit; copy it away before the next run).
#
# Usage: [SHAPES="16x13 32x13 ..."] [DECODER_SHAPES="lora:8x128 ... full:4x128"] [DECODER=1]
#        [PRECISIONS="fp32 bf16"] [STEPS=5 (MiniLM; the decoder runs take 3)] [THREADS=2]
#        bench/speed_estimate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${SHAPES:-16x13 32x13 16x24 64x16 16x48 64x32 16x64 16x128 32x128 8x256}
decoder_shapes=${DECODER_SHAPES:-lora:8x128 lora:4x256 lora:2x512 lora:1x1024 full:4x128 full:8x64}
precisions=${PRECISIONS:-fp32 bf16}
steps=${STEPS:-5}
threads=${THREADS:-2}
out=bench/out/speed
mkdir -p "$out"
: > "$out/runs.jsonl"
model=$(scripts/fetch-minilm)
cargo build --release --quiet -p hone
[ "${DECODER:-0}" = 1 ] && smollm2=$(bench/decoder/smollm2.sh)
# bf16 products need AVX512-BF16; elsewhere a bf16 run takes the autograd graph, which the
# estimate does not model.
if [[ " $precisions " == *" bf16 "* ]] && ! target/release/hone devices | grep -q "bf16 products"; then
  echo "speed_estimate: this CPU has no bf16 products (AVX512-BF16): fp32 only" >&2
  precisions=${precisions//bf16/}
fi

# Prints one line for a `hone bench --json` report and keeps it.
report() { # file label
  python3 - "$1" "$2" "$out/runs.jsonl" <<'PY'
import json, sys
r = json.load(open(sys.argv[1]))
with open(sys.argv[3], "a") as keep:
    keep.write(json.dumps({"label": sys.argv[2], "report": r}) + "\n")
m, estimate = r["samples_per_s"], r.get("speed_estimate")
if estimate is None:
    sys.exit(f"no estimate: the bench ran on the {r['path']} path, not Hone's CPU graph")
e = estimate["samples_per_second"]
print(f"{sys.argv[2]:<28} {m:12.3f} {e:12.3f} {e / m - 1:+8.1%}")
PY
}

printf '%-28s %12s %12s %8s\n' "model variant precision shape" "measured/s" "estimate/s" "error"
for precision in $precisions; do
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
      json="$out/hone-$shape-$variant-$precision.json"
      RAYON_NUM_THREADS=$threads target/release/hone bench --model "$model" --batch-file "$batch" \
        --steps "$steps" --warmup 2 --forward-steps 1 --precision "$precision" \
        ${flag[@]+"${flag[@]}"} --json > "$json"
      report "$json" "minilm $variant $precision $shape"
    done
  done
  [ "${DECODER:-0}" = 1 ] || continue
  for item in $decoder_shapes; do
    variant=${item%%:*}
    shape=${item#*:}
    flag=()
    [ "$variant" = lora ] && flag=(--lora-r 8)
    json="$out/smollm2-$shape-$variant-$precision.json"
    # The bench's own batch: every sequence at full length, every slot real.
    RAYON_NUM_THREADS=$threads target/release/hone bench --model "$smollm2" \
      --batch-size "${shape%x*}" --max-length "${shape#*x}" --steps 3 --warmup 1 \
      --forward-steps 1 --precision "$precision" ${flag[@]+"${flag[@]}"} --json > "$json"
    report "$json" "smollm2 $variant $precision $shape"
  done
done
