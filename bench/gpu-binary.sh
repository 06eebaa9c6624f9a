#!/usr/bin/env bash
# Builds the CUDA `hone` for bench/gpu-check.sh: the toolkit from NVIDIA's wheels
# (scripts/cuda-toolkit), `cargo build --release --features cuda` in target/cuda (so the CPU
# build's artifacts stay), stripped and gzipped to .gpu/hone.gz (~15 MB; git-ignored), small
# enough to carry to a GPU machine with no Rust toolchain.
# CUDA_COMPUTE_CAP picks the GPU generation (default 90: H100/H200).
set -euo pipefail
cd "$(dirname "$0")/.."
toolkit=$(scripts/cuda-toolkit)
CUDA_HOME=$toolkit PATH=$toolkit/bin:$PATH CUDA_COMPUTE_CAP=${CUDA_COMPUTE_CAP:-90} \
  CUDARC_CUDA_VERSION=13000 cargo build --release --locked --features cuda --bin hone \
  --target-dir target/cuda
mkdir -p .gpu
strip -o .gpu/hone target/cuda/release/hone
gzip -9 -c .gpu/hone >.gpu/hone.gz
rm .gpu/hone
ls -l .gpu/hone.gz
