# Sourced by the bench scripts: which `hone` binaries to measure.
#   HONE_BIN  the binary under test [default: target/release/hone, built here]
#   HONE_OLD  a second binary (an older engine, e.g. from bench/engine_ab.sh) measured beside it
# Sets `sides` (names: new, and old when HONE_OLD is set) and `bin_of SIDE`.
if [ -z "${HONE_BIN:-}" ]; then
  cargo build --release --quiet --bin hone
  HONE_BIN=target/release/hone
fi
sides=(new)
if [ -n "${HONE_OLD:-}" ]; then
  sides=(old new)
fi
bin_of() { if [ "$1" = old ]; then echo "$HONE_OLD"; else echo "$HONE_BIN"; fi; }

# dump_batch B S FILE: the fixed batch torch_baseline.py builds for batch B × length S, as JSON
# (needs $python, $model and $baseline set).
dump_batch() {
  HF_HUB_OFFLINE=1 "$python" "$baseline" --model "$model" --batch "$1" --seq "$2" --steps 1 \
    --warmup 0 --matmul-reps 1 --threads 2 --attn "${TORCH_ATTN:-sdpa}" --dump-batch "$3" > /dev/null 2>&1
}
