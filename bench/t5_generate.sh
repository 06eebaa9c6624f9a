#!/usr/bin/env bash
# T5 generation speed against transformers' generate (its key/value cache), greedy or with
# BEAMS beams (length penalty 1, no early stop on both sides), on the
# t5-small-shaped random model bench/t5_speed.sh writes (run that first), one SAMSum dialogue
# as the source (cut to 128 tokens), MAX new tokens, 2 threads, ROUNDS rounds alternating.
# Prints each side's new tokens per second (the encoder pass included) and whether both wrote
# the same tokens.
# Usage: [ROUNDS=3] [MAX=64] [THREADS=2] [BEAMS=1] bench/t5_generate.sh
set -euo pipefail
cd "$(dirname "$0")/.."
python=.reference-venv/bin/python
hone=${HONE_BIN:-target/release/hone}
model=bench/out/t5/model
[ -d "$model" ] || { echo "t5_generate: run bench/t5_speed.sh first (it writes $model)" >&2; exit 1; }
threads=${THREADS:-2}
max=${MAX:-64}
beams=${BEAMS:-1}
source_text=$("$python" -c 'import json; print(json.loads(open("../shared/datasets/samsum/validation.jsonl").readline())["context"].replace("\r\n", " "))')
for round in $(seq 1 "${ROUNDS:-3}"); do
  RAYON_NUM_THREADS=$threads "$hone" generate --model "$model" --json --max-new-tokens "$max" --num-beams "$beams" \
    --max-length 128 "$source_text" > bench/out/t5/hone-generate.json
  "$python" - "$model" "$max" "$threads" bench/out/t5/hone-generate.json "$source_text" "$beams" <<'PY' 2>/dev/null
import json, sys, time
import torch
from transformers import AutoModelForSeq2SeqLM, AutoTokenizer
model_dir, max_new, threads, hone_file, text = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4], sys.argv[5]
beams = int(sys.argv[6])
torch.set_num_threads(threads)
hone = json.load(open(hone_file))
model = AutoModelForSeq2SeqLM.from_pretrained(model_dir).eval()
ids = torch.tensor([hone["source_ids"]])
with torch.no_grad():
    model.generate(ids, max_new_tokens=4, do_sample=False, num_beams=beams)  # warm up
    t0 = time.perf_counter()
    search = dict(num_beams=beams, length_penalty=1.0, early_stopping=False) if beams > 1 else {}
    out = model.generate(ids, max_new_tokens=max_new, do_sample=False, **search)
    seconds = time.perf_counter() - t0
tokens = out[0].tolist()[1:]
print(f"transformers {len(tokens) / seconds:7.1f} tokens/s ({len(tokens)} tokens) · "
      f"Hone {hone['tokens_per_second']:7.1f} tokens/s ({hone['new_tokens']} tokens) · "
      f"ratio {hone['tokens_per_second'] / (len(tokens) / seconds):.2f} · "
      f"same tokens: {tokens == hone['token_ids']} · source {len(hone['source_ids'])} tokens")
PY
done
