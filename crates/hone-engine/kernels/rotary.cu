// Rotary position embeddings on the autograd graph (crates/hone-engine/src/graph/rotary.rs):
// each head's feature pairs (x1[j], x2[j]) = (x[j], x[half + j]) turned by its position's
// angle, (x1·cos − x2·sin, x2·cos + x1·sin). The backward pass is the same turn the other way
// (sin negated: `sign` −1). x and out are [rows × heads × 2·half], cos and sin [rows × half],
// all contiguous in the kernel's dtype (hone_rotary_f32, _bf16, _f16), computed in f32.

#include <stddef.h>

#include "dtypes.cuh"

#define HONE_ROTARY(T, SUFFIX)                                                                 \
  extern "C" __global__ void hone_rotary_##SUFFIX(const size_t pairs, const size_t heads,     \
                                                  const size_t half, const T *x, const T *cos, \
                                                  const T *sin, T *out, const float sign) {    \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < pairs;                  \
         i += (size_t)blockDim.x * gridDim.x) {                                                \
      const size_t j = i % half;                                                               \
      const size_t row = i / (half * heads);                                                   \
      const size_t first = (i / half) * 2 * half + j;                                          \
      const float c = hone_load(cos[row * half + j]);                                          \
      const float s = sign * hone_load(sin[row * half + j]);                                   \
      const float x1 = hone_load(x[first]);                                                    \
      const float x2 = hone_load(x[first + half]);                                             \
      out[first] = hone_store<T>(x1 * c - x2 * s);                                             \
      out[first + half] = hone_store<T>(x2 * c + x1 * s);                                      \
    }                                                                                          \
  }

HONE_FOR_DTYPES(HONE_ROTARY)
