// Attention's probabilities from its raw scores through dropout, and the scores' gradient
// (crates/hone-engine/src/graph/scores.rs); one block per row of `keys` values, blockDim.x a
// multiple of 32, at most 1024.
//   hone_scores_dropped_<dtype>:      softmax(v) in f32, v[j] = scores[j] · scale + bias[j]
//                                     (plus the lowest for a causal row's keys after query
//                                     i + prefix), clamped at the lowest, NaN kept; bias is
//                                     the row's sequence's keys (row / rows_per_sequence),
//                                     i = row % queries; then dropout when `dropping` (element
//                                     i kept when hone_uniform(seed, i) >= p, scaled by
//                                     drop_scale), stored in the scores' dtype
//   hone_scores_dropped_grad_<dtype>: its backward from the scores: y recomputed, d = g · mask,
//                                     dx = (y · (d − Σ d · y)) · scale

#include <stddef.h>

#include "dtypes.cuh"
#include "hash.cuh"
#include "reduce.cuh"

#define HONE_LOWEST (-3.402823466e38f)

template <typename T>
__device__ __forceinline__ float hone_score(const T *scores, const float *bias, const int j,
                                            const int i, const float scale, const int causal,
                                            const int prefix) {
  float v = hone_load(scores[j]) * scale + bias[j];
  if (causal && j > i + prefix) v += HONE_LOWEST;
  // Clamped at the lowest value, NaN kept (it reaches the loss).
  return v < HONE_LOWEST ? HONE_LOWEST : v;
}

// A row's softmax statistics (its largest value and 1 / Σ exp(v − largest)) for every thread.
template <typename T>
__device__ __forceinline__ void hone_row_stats(const T *s, const float *b, const int keys,
                                               const int i, const float scale, const int causal,
                                               const int prefix, float *shared, float *mx,
                                               float *inv) {
  float m = HONE_LOWEST;
  for (int j = threadIdx.x; j < keys; j += blockDim.x)
    m = fmaxf(m, hone_score(s, b, j, i, scale, causal, prefix));
  m = hone_block_max(m, shared);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < keys; j += blockDim.x)
    sum += expf(hone_score(s, b, j, i, scale, causal, prefix) - m);
  *mx = m;
  *inv = 1.0f / hone_block_sum(sum, shared);
}

// Element i of value v through dropout's mask (as hone_dropout computes it), or v as it is.
__device__ __forceinline__ float hone_drop(const float v, const int dropping,
                                           const uint64_t seed, const size_t i, const float p,
                                           const float drop_scale) {
  if (!dropping) return v;
  return hone_uniform(seed, i) >= p ? v * drop_scale : 0.0f;
}

#define HONE_SCORES_DROPPED(T, SUFFIX)                                                         \
  extern "C" __global__ void hone_scores_dropped_##SUFFIX(                                     \
      const T *scores, const float *bias, T *out, const int rows, const int keys,              \
      const int queries, const int rows_per_sequence, const float scale, const int causal,     \
      const int prefix, const int dropping, const uint64_t seed, const float p,                \
      const float drop_scale) {                                                                \
    __shared__ float shared[32];                                                               \
    const int row = blockIdx.x;                                                                \
    if (row >= rows) return;                                                                   \
    const size_t base = (size_t)row * keys;                                                    \
    const T *s = scores + base;                                                                \
    const float *b = bias + (size_t)(row / rows_per_sequence) * keys;                          \
    const int i = row % queries;                                                               \
    float mx, inv;                                                                             \
    hone_row_stats(s, b, keys, i, scale, causal, prefix, shared, &mx, &inv);                   \
    for (int j = threadIdx.x; j < keys; j += blockDim.x) {                                     \
      const float y = expf(hone_score(s, b, j, i, scale, causal, prefix) - mx) * inv;          \
      out[base + j] = hone_store<T>(hone_drop(y, dropping, seed, base + j, p, drop_scale));     \
    }                                                                                          \
  }

#define HONE_SCORES_DROPPED_GRAD(T, SUFFIX)                                                    \
  extern "C" __global__ void hone_scores_dropped_grad_##SUFFIX(                                \
      const T *scores, const float *bias, const T *grad, T *dx, const int rows,                \
      const int keys, const int queries, const int rows_per_sequence, const float scale,       \
      const int causal, const int prefix, const int dropping, const uint64_t seed,             \
      const float p, const float drop_scale) {                                                 \
    __shared__ float shared[32];                                                               \
    const int row = blockIdx.x;                                                                \
    if (row >= rows) return;                                                                   \
    const size_t base = (size_t)row * keys;                                                    \
    const T *s = scores + base;                                                                \
    const float *b = bias + (size_t)(row / rows_per_sequence) * keys;                          \
    const int i = row % queries;                                                               \
    float mx, inv;                                                                             \
    hone_row_stats(s, b, keys, i, scale, causal, prefix, shared, &mx, &inv);                   \
    float along = 0.0f;                                                                        \
    for (int j = threadIdx.x; j < keys; j += blockDim.x) {                                     \
      const float y = expf(hone_score(s, b, j, i, scale, causal, prefix) - mx) * inv;          \
      along += y * hone_drop(hone_load(grad[base + j]), dropping, seed, base + j, p, drop_scale); \
    }                                                                                          \
    along = hone_block_sum(along, shared);                                                     \
    for (int j = threadIdx.x; j < keys; j += blockDim.x) {                                     \
      const float y = expf(hone_score(s, b, j, i, scale, causal, prefix) - mx) * inv;          \
      const float d = hone_drop(hone_load(grad[base + j]), dropping, seed, base + j, p, drop_scale); \
      dx[base + j] = hone_store<T>(y * (d - along) * scale);                                   \
    }                                                                                          \
  }

HONE_FOR_DTYPES(HONE_SCORES_DROPPED)
HONE_FOR_DTYPES(HONE_SCORES_DROPPED_GRAD)
