// A gated feed-forward's SiLU gate on the autograd graph (crates/hone-engine/src/graph/gated.rs):
//   out = silu(g) · u = g · σ(g) · u
// and its backward pass in one kernel, both gradients into one [2 × n] buffer:
//   du = grad · silu(g),  dg = grad · u · σ(g) · (1 + g · (1 − σ(g))).
// Every pointer is to n contiguous values of the kernel's dtype (hone_swiglu_f32, _bf16,
// _f16; hone_swiglu_grad_*), computed in f32.

#include <stddef.h>

#include "dtypes.cuh"

__device__ __forceinline__ float hone_sigmoid(const float v) { return 1.0f / (1.0f + expf(-v)); }

#define HONE_SWIGLU(T, SUFFIX)                                                                 \
  extern "C" __global__ void hone_swiglu_##SUFFIX(const size_t n, const T *gate, const T *up,  \
                                                  T *out) {                                    \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;                      \
         i += (size_t)blockDim.x * gridDim.x) {                                                \
      const float g = hone_load(gate[i]);                                                      \
      out[i] = hone_store<T>(g * hone_sigmoid(g) * hone_load(up[i]));                          \
    }                                                                                          \
  }                                                                                            \
  extern "C" __global__ void hone_swiglu_grad_##SUFFIX(const size_t n, const T *gate,          \
                                                       const T *up, const T *grad, T *both) {  \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;                      \
         i += (size_t)blockDim.x * gridDim.x) {                                                \
      const float g = hone_load(gate[i]);                                                      \
      const float s = hone_sigmoid(g);                                                         \
      const float d = hone_load(grad[i]);                                                      \
      both[i] = hone_store<T>(d * hone_load(up[i]) * s * (1.0f + g * (1.0f - s)));             \
      both[n + i] = hone_store<T>(d * g * s);                                                  \
    }                                                                                          \
  }

HONE_FOR_DTYPES(HONE_SWIGLU)
