#!/usr/bin/env bash
# DeBERTa-v3 training speed against PyTorch + transformers: bench/compare.sh on a random model
# shaped like deberta-v3-xsmall (bench/deberta_model.py; no DeBERTa weights are reachable here,
# and a step's time does not depend on their values), same fixed batches, alternating the two.
# Usage: [ROUNDS=3] [STEPS=10] [SHAPES="16x64 32x128"] bench/deberta_speed.sh
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/reference-env
model=bench/out/deberta-v3-xsmall
.reference-venv/bin/python bench/deberta_model.py "$model"
# transformers runs DeBERTa's attention eagerly (no SDPA path).
MODEL=$model OUT=bench/out/deberta-compare STEPS=${STEPS:-10} TORCH_ATTN=eager bench/compare.sh
