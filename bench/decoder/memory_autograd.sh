#!/usr/bin/env bash
# What candle's autograd graph (a GPU's, and a mixed-precision CPU run's) keeps for a decoder
# LM: the peak RSS of `hone bench --autograd` on the CPU for SmolLM2-135M (real weights,
# bench/decoder/smollm2_from_gguf.py) and a copy of its first 10 layers, LoRA rank 16 and full
# fine-tuning, fp32 and bf16, on synthetic batches of full sequences (every token learned). The
# 10-layer copy against the 30-layer model separates the per-layer terms from the output
# layer's. Prints the peak, the step time and the estimate's activations for a GPU (`hone
# models check --device cuda:0`: this machine need not have one); the figures are kept in
# memory.rs's test `the_autograd_estimate_matches_measured_peaks`, which compares whole
# estimates with them. Not a test; about 10 minutes on 2 cores (the 30-layer model at 2 × 512
# peaks near 5.5 GiB).
#
# Usage: [SHAPES="8x128 4x256 2x512"] [PRECISIONS="fp32 bf16"] [HONE_BIN=...]
#        bench/decoder/memory_autograd.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
shapes=${SHAPES:-8x128 4x256 2x512}
precisions=${PRECISIONS:-fp32 bf16}
out=bench/out/decoder-autograd
mkdir -p "$out"
python=.reference-venv/bin/python
smollm2=$(bench/decoder/smollm2.sh)
smol10=$out/smollm2-10-layers
[ -f "$smol10/model.safetensors" ] || "$python" - "$smollm2" "$smol10" <<'PY'
import shutil, sys
from pathlib import Path
from transformers import AutoModelForCausalLM
source, out = Path(sys.argv[1]), Path(sys.argv[2])
model = AutoModelForCausalLM.from_pretrained(source)
model.model.layers = model.model.layers[:10]
model.config.num_hidden_layers = 10
model.save_pretrained(out)
for name in ["tokenizer.json", "tokenizer_config.json", "chat_template.jinja"]:
    if (source / name).exists():
        shutil.copy(source / name, out / name)
PY
source bench/hone-bins.sh
hone=$HONE_BIN

printf '%-20s %-5s %-7s %-5s %10s %8s %16s\n' model prec shape lora "peak MiB" "step s" "activations MiB"
for model in "$smol10" "$smollm2"; do
  for p in $precisions; do
    for shape in $shapes; do
      b=${shape%x*}
      s=${shape#*x}
      for lora in 16 full; do
        # Full fine-tuning at one shape: its terms are LoRA's but for the trained weights.
        [ "$lora" = full ] && [ "$shape" != 4x256 ] && continue
        args=(--lora-r 16)
        [ "$lora" = full ] && args=()
        measured=$("$hone" bench --autograd --model "$model" --batch-size "$b" --max-length "$s" \
          --precision "$p" ${args[@]+"${args[@]}"} --steps 1 --warmup 1 --forward-steps 1 --json |
          "$python" -c 'import json, sys; r = json.load(sys.stdin); print(round(r["peak_rss_mib"]), round(r["train_step"]["median_s"], 2))')
        line=full
        [ "$lora" = full ] || line=lora
        # (the check exits 1 here: no GPU to fit on)
        activations=$({ "$hone" models check "$model" --batch-size "$b" --max-length "$s" \
          --precision "$p" ${args[@]+"${args[@]}"} --device cuda:0 --json || true; } |
          "$python" -c "import json, sys; print(round(json.load(sys.stdin)['fit']['$line']['estimate']['activations'] / 2**20))")
        read -r peak step <<<"$measured"
        name=smollm2-135m
        [ "$model" = "$smol10" ] && name=smollm2-10-layers
        printf '%-20s %-5s %-7s %-5s %10s %8s %16s\n' "$name" "$p" "$shape" "$lora" \
          "$peak" "$step" "$activations"
      done
    done
  done
done
