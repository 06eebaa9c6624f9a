#!/usr/bin/env bash
# The previous engine against this one, on the real all-MiniLM-L6-v2 (2 threads), side by side
# with PyTorch + transformers in the same run: builds both `hone` binaries, then
#   1. bench/compare.sh with HONE_OLD: training steps on the same fixed batches (as the baseline
#      tokenizes them, and "dense" with every slot a real token), alternating old / new /
#      PyTorch, with an old → new table;
#   2. bench/sst2_accuracy.sh with HONE_OLD: the whole fine-tune (4,000 SST-2 rows, 1 epoch,
#      batch 16, length 64, seeds 42 43 44), accuracy on 2,000 unseen rows and training
#      samples/s, old, new and transformers with dynamic padding.
#
# OLD is a git revision (default: the last commit before engine v2); it is built once in a
# worktree under bench/out/ab/old with its own target folder (a cold release build, ~10 min;
# two checkouts of one workspace must not share a target folder: their crates get the same
# artifact names) and kept as bench/out/ab/hone-old (OLD_REBUILD=1 builds it again).
# A benchmark run by hand, not a test. ROUNDS, STEPS, SHAPES pass to compare.sh, SEEDS to
# sst2_accuracy.sh; FINETUNE=0 skips step 2.
# Usage: [OLD=b21db56] [ROUNDS=3] [SEEDS="42 43 44"] [FINETUNE=1] bench/engine_ab.sh
set -euo pipefail
cd "$(dirname "$0")/.."
old_rev=${OLD:-b21db56}
out=bench/out/ab
mkdir -p "$out"
if [ ! -x "$out/hone-old" ] || [ "${OLD_REBUILD:-0}" = 1 ]; then
  if [ ! -d "$out/old" ]; then
    git worktree add --detach "$out/old" "$old_rev" >&2
  fi
  (cd "$out/old" && git checkout --quiet --detach "$old_rev" &&
    CARGO_TARGET_DIR="$PWD/../target-old" cargo build --release --quiet --bin hone)
  cp "$out/target-old/release/hone" "$out/hone-old"
fi
CARGO_TARGET_DIR="$PWD/$out/target-new" cargo build --release --quiet --bin hone
cp "$out/target-new/release/hone" "$out/hone-new"
export HONE_BIN="$PWD/$out/hone-new" HONE_OLD="$PWD/$out/hone-old"

echo "#### training steps (bench/compare.sh)"
bench/compare.sh
if [ "${FINETUNE:-1}" = 1 ]; then
  echo "#### whole fine-tune and accuracy (bench/sst2_accuracy.sh)"
  bench/sst2_accuracy.sh
fi
