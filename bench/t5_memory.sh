#!/usr/bin/env bash
# The fit check's memory estimate for T5-layout models (memory.rs::t5_activations) against the
# peak RSS of `hone bench` on the CPU: random models of t5-small's shape with 6 + 6 and 2 + 2
# layers (the two separate the per-layer terms from the output layer's), dense text-to-text
# batches (batch × source × target tokens, every token real), on the CPU's graph and on candle's
# autograd graph (a GPU's) in fp32 and bf16. Prints each peak, what it keeps beyond the same
# model's peak on one 8-token pair, and the estimate's activations (`hone models check
# --max-target-length`; the autograd lines from `--device cuda:0`, which this machine need not
# have). The figures are kept in memory.rs's test `the_t5_estimate_matches_measured_peaks`,
# which compares whole estimates. Not a test; about 10 minutes on 2 cores.
#
# Usage: [SHAPES="8x128x32 4x256x64 16x64x64 4x512x32 8x64x256 4x128x512"] [LAYERS="6 2"]
#        [HONE_BIN=...] bench/t5_memory.sh
set -euo pipefail
cd "$(dirname "$0")/.."
shapes=${SHAPES:-8x128x32 4x256x64 16x64x64 4x512x32 8x64x256 4x128x512}
layer_counts=${LAYERS:-6 2}
out=bench/out/t5-memory
mkdir -p "$out"
scripts/reference-env
python=.reference-venv/bin/python
source bench/hone-bins.sh
hone=$HONE_BIN

for layers in $layer_counts; do
  [ -f "$out/t5-$layers/model.safetensors" ] || "$python" - "$out/t5-$layers" "$layers" <<'PY'
import shutil, sys
import torch
from transformers import T5Config, T5ForConditionalGeneration
out, layers = sys.argv[1], int(sys.argv[2])
torch.manual_seed(0)
config = T5Config(vocab_size=32128, d_model=512, d_kv=64, d_ff=2048, num_layers=layers,
                  num_decoder_layers=layers, num_heads=8, feed_forward_proj="relu",
                  dropout_rate=0.1, decoder_start_token_id=0, pad_token_id=0, eos_token_id=1)
T5ForConditionalGeneration(config).save_pretrained(out)
for name in ["tokenizer.json", "tokenizer_config.json"]:
    shutil.copy(f"tests/fixtures/tiny-t5/{name}", f"{out}/{name}")
PY
done
for shape in 1x8x8 $shapes; do
  [ -f "$out/batch-$shape.json" ] || "$python" - "$shape" "$out/batch-$shape.json" <<'PY'
import json, random, sys
b, s, t = map(int, sys.argv[1].split("x"))
r = random.Random(0)
ids = [[r.randrange(3, 32000) for _ in range(s - 1)] + [1] for _ in range(b)]
decoder = [[0] + [r.randrange(3, 32000) for _ in range(t - 1)] for _ in range(b)]
json.dump({"input_ids": ids, "attention_mask": [[1] * s] * b, "decoder_input_ids": decoder,
           "decoder_attention_mask": [[1] * t] * b,
           "labels": [y for row in decoder for y in row[1:] + [1]]}, open(sys.argv[2], "w"))
PY
done

peak() { # peak LAYERS SHAPE GRAPH: the peak RSS in MiB of a training step
  local args=(--precision fp32)
  [ "$3" = cpu ] || args=(--autograd --precision "$3")
  "$hone" bench --model "$out/t5-$1" --batch-file "$out/batch-$2.json" "${args[@]}" \
    --steps 1 --warmup 1 --forward-steps 1 --json |
    "$python" -c 'import json, sys; print(round(json.load(sys.stdin)["peak_rss_mib"]))'
}
estimated() { # estimated LAYERS SHAPE GRAPH: the estimate's activations in MiB
  local b s t
  IFS=x read -r b s t <<<"$2"
  local args=(--precision fp32 --device cpu)
  [ "$3" = cpu ] || args=(--precision "$3" --device cuda:0)
  { "$hone" models check "$out/t5-$1" --batch-size "$b" --max-length "$s" \
    --max-target-length "$t" "${args[@]}" --json || true; } |
    "$python" -c 'import json, sys; print(round(json.load(sys.stdin)["fit"]["full"]["estimate"]["activations"] / 2**20))'
}

printf '%-7s %-10s %-6s %10s %10s %14s\n' layers shape graph "peak MiB" "kept MiB" "estimate MiB"
for layers in $layer_counts; do
  for graph in cpu fp32 bf16; do
    base=$(peak "$layers" 1x8x8 "$graph")
    for shape in $shapes; do
      total=$(peak "$layers" "$shape" "$graph")
      printf '%-7s %-10s %-6s %10d %10d %14d\n' "$layers" "$shape" "$graph" "$total" \
        $((total - base)) "$(estimated "$layers" "$shape" "$graph")"
    done
  done
done
