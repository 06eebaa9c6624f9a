// Dropout on the autograd graph with its mask drawn inside the kernel
// (crates/hone-engine/src/graph/dropout.rs): element i is kept when a hash of (seed, i) is
// at least p, and scaled by 1/(1 − p). The backward pass is the same kernel on the gradient
// (the same seed draws the same mask), so no mask is stored. The hash is SplitMix64's
// finaliser, the same integer arithmetic as the CPU's, so both devices drop the same values.
// One kernel per dtype (hone_dropout_f32, _bf16, _f16): mixed precision drops a product's
// low-precision output as it is.

#include <stddef.h>
#include <stdint.h>

#include "dtypes.cuh"
#include "hash.cuh"

#define HONE_DROPOUT(T, SUFFIX)                                                              \
  extern "C" __global__ void hone_dropout_##SUFFIX(const size_t n, const T *x, T *y,         \
                                                   const uint64_t seed, const float p,       \
                                                   const float scale) {                      \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;                    \
         i += (size_t)blockDim.x * gridDim.x) {                                              \
      y[i] = hone_store<T>(hone_uniform(seed, i) >= p ? hone_load(x[i]) * scale : 0.0f);      \
    }                                                                                        \
  }

HONE_FOR_DTYPES(HONE_DROPOUT)
