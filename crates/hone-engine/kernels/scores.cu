// Attention's probabilities from its raw scores, and the scores' gradient
// (crates/hone-engine/src/graph/scores.rs); one block per row of `keys` values, blockDim.x a
// multiple of 32, at most 1024.
//   hone_scores_softmax_<dtype>:      out = softmax(v) in f32, v[j] = max(scores[j] · scale +
//                                     bias[j], lowest) and the lowest for a causal row's keys
//                                     after query i + prefix; bias is the row's sequence's
//                                     keys (row / rows_per_sequence), i = row % queries
//   hone_scores_softmax_grad_<dtype>: dx = (y · (g − Σ g · y)) · scale, y and g f32, dx stored
//                                     in the scores' dtype

#include <stddef.h>

#include "dtypes.cuh"
#include "reduce.cuh"

#define HONE_LOWEST (-3.402823466e38f)

template <typename T>
__device__ __forceinline__ float hone_score(const T *scores, const float *bias, const int j,
                                            const int i, const float scale, const int causal,
                                            const int prefix) {
  if (causal && j > i + prefix) return HONE_LOWEST;
  return fmaxf(hone_load(scores[j]) * scale + bias[j], HONE_LOWEST);
}

#define HONE_SCORES_SOFTMAX(T, SUFFIX)                                                         \
  extern "C" __global__ void hone_scores_softmax_##SUFFIX(                                     \
      const T *scores, const float *bias, float *out, const int rows, const int keys,          \
      const int queries, const int rows_per_sequence, const float scale, const int causal,     \
      const int prefix) {                                                                      \
    __shared__ float shared[32];                                                               \
    const int row = blockIdx.x;                                                                \
    if (row >= rows) return;                                                                   \
    const size_t base = (size_t)row * keys;                                                    \
    const T *s = scores + base;                                                                \
    const float *b = bias + (size_t)(row / rows_per_sequence) * keys;                          \
    const int i = row % queries;                                                               \
    float mx = HONE_LOWEST;                                                                    \
    for (int j = threadIdx.x; j < keys; j += blockDim.x)                                       \
      mx = fmaxf(mx, hone_score(s, b, j, i, scale, causal, prefix));                           \
    mx = hone_block_max(mx, shared);                                                           \
    float sum = 0.0f;                                                                          \
    for (int j = threadIdx.x; j < keys; j += blockDim.x)                                       \
      sum += expf(hone_score(s, b, j, i, scale, causal, prefix) - mx);                         \
    const float inv = 1.0f / hone_block_sum(sum, shared);                                      \
    for (int j = threadIdx.x; j < keys; j += blockDim.x)                                       \
      out[base + j] = expf(hone_score(s, b, j, i, scale, causal, prefix) - mx) * inv;          \
  }

#define HONE_SCORES_SOFTMAX_GRAD(T, SUFFIX)                                                    \
  extern "C" __global__ void hone_scores_softmax_grad_##SUFFIX(                                \
      const float *y, const float *grad, T *dx, const int rows, const int keys,                \
      const float scale) {                                                                     \
    __shared__ float shared[32];                                                               \
    const int row = blockIdx.x;                                                                \
    if (row >= rows) return;                                                                   \
    const size_t base = (size_t)row * keys;                                                    \
    float s = 0.0f;                                                                            \
    for (int j = threadIdx.x; j < keys; j += blockDim.x) s += grad[base + j] * y[base + j];    \
    const float along = hone_block_sum(s, shared);                                             \
    for (int j = threadIdx.x; j < keys; j += blockDim.x)                                       \
      dx[base + j] = hone_store<T>(y[base + j] * (grad[base + j] - along) * scale);            \
  }

HONE_FOR_DTYPES(HONE_SCORES_SOFTMAX)
HONE_FOR_DTYPES(HONE_SCORES_SOFTMAX_GRAD)
