// AdamW's update in three in-place kernels (crates/hone-engine/src/optim/in_place.rs), the
// arithmetic in the order of the CPU path's `adamw_host`:
//   g' = g·scale
//   m ← β₁·m + (1−β₁)·g'          (hone_moment_f32, square = 0)
//   v ← β₂·v + (1−β₂)·g'·g'       (hone_moment_f32, square = 1)
//   p ← p·decay − step_size·m / (√v / √(1−β₂ᵗ) + ε)   (hone_adamw_apply_f32)
// Every pointer is to n contiguous f32 values.

#include <stddef.h>

extern "C" __global__ void hone_moment_f32(const size_t n, float *moment, const float *grad,
                                           const float beta, const float weight,
                                           const float scale, const int square) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float g = grad[i] * scale;
    const float term = square ? weight * g * g : weight * g;
    moment[i] = beta * moment[i] + term;
  }
}

extern "C" __global__ void hone_adamw_apply_f32(const size_t n, float *param, const float *m,
                                                const float *v, const float decay,
                                                const float step_size, const float bias2_sqrt,
                                                const float eps) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float denom = sqrtf(v[i]) / bias2_sqrt + eps;
    param[i] = param[i] * decay - step_size * m[i] / denom;
  }
}
