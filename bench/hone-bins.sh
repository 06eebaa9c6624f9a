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
