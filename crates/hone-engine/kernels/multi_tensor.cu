// The optimizer's work over every parameter in one launch each (crates/hone-engine/src/optim/
// multi_tensor.rs), as PyTorch's fused and foreach AdamW do: one kernel per tensor was three
// launches a parameter (~600 for BERT-base), most over a few hundred values.
//
// Each block covers one chunk of one tensor: `table` holds, for T tensors and B blocks,
//   AdamW:            params[T], grads[T], m[T], v[T], lens[T], block_tensor[B], block_start[B]
//   sums of squares:  values[T], lens[T], block_tensor[B], block_start[B]
// (pointers as 64-bit integers, to contiguous f32 values).

#include <stddef.h>
#include <stdint.h>

#include "reduce.cuh"

// AdamW on every tensor, the arithmetic (and its order) of the CPU path's `adamw_host`:
//   g' = g·scale;  m ← β₁·m + (1−β₁)·g';  v ← β₂·v + (1−β₂)·g'·g'
//   p ← p·decay − step_size·m / (√v / √(1−β₂ᵗ) + ε)
// with each tensor's decay, step size and √(1−β₂ᵗ) at constants[3t .. 3t+3].
extern "C" __global__ void hone_adamw_multi_f32(const uint64_t *table, const float *constants,
                                                const uint32_t tensors, const uint32_t blocks,
                                                const uint64_t chunk, const float beta1,
                                                const float weight1, const float beta2,
                                                const float weight2, const float eps,
                                                const float scale) {
  const uint64_t t = table[5 * (uint64_t)tensors + blockIdx.x];
  const uint64_t start = table[5 * (uint64_t)tensors + blocks + blockIdx.x];
  const uint64_t len = table[4 * (uint64_t)tensors + t];
  const uint64_t end = start + chunk < len ? start + chunk : len;
  float *p = (float *)table[t];
  const float *g = (const float *)table[tensors + t];
  float *m = (float *)table[2 * (uint64_t)tensors + t];
  float *v = (float *)table[3 * (uint64_t)tensors + t];
  const float decay = constants[3 * t], step_size = constants[3 * t + 1];
  const float bias2_sqrt = constants[3 * t + 2];
  for (uint64_t i = start + threadIdx.x; i < end; i += blockDim.x) {
    const float gs = g[i] * scale;
    const float mi = beta1 * m[i] + weight1 * gs;
    const float vi = beta2 * v[i] + weight2 * gs * gs;
    m[i] = mi;
    v[i] = vi;
    const float denom = sqrtf(vi) / bias2_sqrt + eps;
    p[i] = p[i] * decay - step_size * mi / denom;
  }
}

// Each block's sum of squares of its chunk into partials[block] (the host adds a tensor's
// blocks in f64): the gradient norm in one launch and one read-back.
extern "C" __global__ void hone_sums_of_squares_multi_f32(const uint64_t *table,
                                                          const uint32_t tensors,
                                                          const uint32_t blocks,
                                                          const uint64_t chunk,
                                                          float *partials) {
  __shared__ float shared[32];
  const uint64_t t = table[2 * (uint64_t)tensors + blockIdx.x];
  const uint64_t start = table[2 * (uint64_t)tensors + blocks + blockIdx.x];
  const uint64_t len = table[(uint64_t)tensors + t];
  const uint64_t end = start + chunk < len ? start + chunk : len;
  const float *x = (const float *)table[t];
  float s = 0.0f;
  for (uint64_t i = start + threadIdx.x; i < end; i += blockDim.x) s += x[i] * x[i];
  s = hone_block_sum(s, shared);
  if (threadIdx.x == 0) partials[blockIdx.x] = s;
}
