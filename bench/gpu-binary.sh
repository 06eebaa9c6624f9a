#!/usr/bin/env bash
# Builds the CUDA `hone` for bench/gpu-check.sh: the toolkit from NVIDIA's wheels
# (scripts/cuda-toolkit), `cargo build --release --features cuda` in target/cuda (so the CPU
# build's artifacts stay), stripped and gzipped to .gpu/hone.gz (~15 MB; git-ignored), small
# enough to carry to a GPU machine with no Rust toolchain. Beside it, the kernel profiler
# .gpu/libkprof.so (bench/kprof/kprof.c, a CUPTI injection library) with the CUPTI it was
# built against (libcupti.so.13 from NVIDIA's wheel, 4 MB), for gpu-check.sh's kernels stage.
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

# The kernel profiler: CUPTI's headers and library from its wheel (the toolkit's version).
cupti=$toolkit/cupti
if [[ ! -f "$cupti/nvidia/cu13/lib/libcupti.so.13" ]]; then
  mkdir -p "$cupti"
  python3 -m pip download --quiet --disable-pip-version-check --no-deps --no-cache-dir \
    --dest "$cupti" "nvidia-cuda-cupti==13.0.*"
  python3 -m zipfile -e "$cupti"/nvidia_cuda_cupti-*.whl "$cupti"
fi
cc -O2 -Wall -Wextra -fPIC -shared -o .gpu/libkprof.so bench/kprof/kprof.c \
  -I"$cupti/nvidia/cu13/include" -I"$toolkit/include" -L"$cupti/nvidia/cu13/lib" \
  -l:libcupti.so.13 -lpthread -Wl,-rpath,'$ORIGIN'
cp "$cupti/nvidia/cu13/lib/libcupti.so.13" .gpu/
ls -l .gpu/
