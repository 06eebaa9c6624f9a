// Reductions across a block: the backward passes of the norms on the autograd graph
// (crates/hone-engine/src/graph/fused.rs; one block per row, every pointer to contiguous f32
// rows of `cols` values). blockDim.x is a multiple of 32, at most 1024.

#include <stddef.h>

#include "reduce.cuh"

// Layer norm's (centred = 1) or RMS norm's (centred = 0) backward, the row statistics
// recomputed from x. With x̂ = (x − μ)·r, r = 1/√(var + ε) (μ = 0, var = mean(x²) for RMS):
//   dx = r·(g·γ − mean(g·γ) − x̂·mean(g·γ·x̂))   (no mean(g·γ) for RMS)
// out[0 .. rows·cols] = dx, out[rows·cols .. 2·rows·cols] = g·x̂ (summed over rows for dγ).
extern "C" __global__ void hone_norm_grad_f32(const float *x, const float *gamma, const float *grad,
                                              float *out, const int rows, const int cols,
                                              const float eps, const int centred) {
  __shared__ float shared[32];
  const int row = blockIdx.x;
  if (row >= rows) return;
  const size_t base = (size_t)row * cols;
  const float *xr = x + base;
  const float *gr = grad + base;
  float *dx = out + base;
  float *gxhat = out + (size_t)rows * cols + base;
  const float inv_n = 1.0f / (float)cols;
  float mean = 0.0f;
  if (centred) {
    float s = 0.0f;
    for (int i = threadIdx.x; i < cols; i += blockDim.x) s += xr[i];
    mean = hone_block_sum(s, shared) * inv_n;
  }
  float sq = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float c = xr[i] - mean;
    sq += c * c;
  }
  const float r = 1.0f / sqrtf(hone_block_sum(sq, shared) * inv_n + eps);
  float s1 = 0.0f, s2 = 0.0f;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float d = gr[i] * gamma[i];
    s1 += d;
    s2 += d * (xr[i] - mean) * r;
  }
  const float mean_d = centred ? hone_block_sum(s1, shared) * inv_n : 0.0f;
  const float mean_dx = hone_block_sum(s2, shared) * inv_n;
  for (int i = threadIdx.x; i < cols; i += blockDim.x) {
    const float xhat = (xr[i] - mean) * r;
    dx[i] = r * (gr[i] * gamma[i] - mean_d - xhat * mean_dx);
    gxhat[i] = gr[i] * xhat;
  }
}
