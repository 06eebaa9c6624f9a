// Cross-entropy of logit rows against their labels, and the logits' gradient
// (crates/hone-engine/src/graph/cross_entropy.rs); one block per row of `classes` values,
// blockDim.x a multiple of 32, at most 1024. With m the row's largest value, s = Σ exp(x − m),
// ε the label smoothing:
//   hone_cross_entropy_<dtype>:      loss = (1 − ε)·(log s − (x_y − m)) + ε·(log s − mean(x − m)),
//                                    in f32
//   hone_cross_entropy_grad_<dtype>: dx_j = g · (exp(x_j − m) / s − (1 − ε)·[j = y] − ε / classes),
//                                    stored in the logits' dtype
// A label past the classes gives a NaN loss and gradient (the CPU's op errs instead; callers
// check labels on the host first).

#include <math.h>
#include <stddef.h>

#include "dtypes.cuh"
#include "reduce.cuh"

// A row's largest value and log Σ exp(x − largest), for every thread.
template <typename T>
__device__ __forceinline__ void hone_row_log_sum(const T *x, const int classes, float *shared,
                                                 float *mx, float *log_sum) {
  float m = -INFINITY;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) m = fmaxf(m, hone_load(x[j]));
  m = hone_block_max(m, shared);
  float sum = 0.0f;
  for (int j = threadIdx.x; j < classes; j += blockDim.x) sum += expf(hone_load(x[j]) - m);
  *mx = m;
  *log_sum = logf(hone_block_sum(sum, shared));
}

#define HONE_CROSS_ENTROPY(T, SUFFIX)                                                          \
  extern "C" __global__ void hone_cross_entropy_##SUFFIX(const T *logits,                      \
                                                         const unsigned int *labels,           \
                                                         float *losses, const int rows,        \
                                                         const int classes,                    \
                                                         const float smoothing) {              \
    __shared__ float shared[32];                                                               \
    const int row = blockIdx.x;                                                                \
    if (row >= rows) return;                                                                   \
    const T *x = logits + (size_t)row * classes;                                               \
    float mx, log_sum;                                                                         \
    hone_row_log_sum(x, classes, shared, &mx, &log_sum);                                       \
    float shifted = 0.0f;                                                                      \
    if (smoothing != 0.0f) {                                                                   \
      for (int j = threadIdx.x; j < classes; j += blockDim.x) shifted += hone_load(x[j]) - mx; \
      shifted = hone_block_sum(shifted, shared);                                               \
    }                                                                                          \
    if (threadIdx.x == 0) {                                                                    \
      const unsigned int y = labels[row];                                                      \
      const float picked = y < (unsigned int)classes ? -((hone_load(x[y]) - mx) - log_sum) : NAN; \
      losses[row] = smoothing == 0.0f                                                          \
                        ? picked                                                               \
                        : (1.0f - smoothing) * picked +                                        \
                              smoothing * (log_sum - shifted / (float)classes);                \
    }                                                                                          \
  }

#define HONE_CROSS_ENTROPY_GRAD(T, SUFFIX)                                                     \
  extern "C" __global__ void hone_cross_entropy_grad_##SUFFIX(                                 \
      const T *logits, const unsigned int *labels, const float *grad, T *dx, const int rows,   \
      const int classes, const float smoothing) {                                              \
    __shared__ float shared[32];                                                               \
    const int row = blockIdx.x;                                                                \
    if (row >= rows) return;                                                                   \
    const size_t base = (size_t)row * classes;                                                 \
    const T *x = logits + base;                                                                \
    float mx, log_sum;                                                                         \
    hone_row_log_sum(x, classes, shared, &mx, &log_sum);                                       \
    const unsigned int y = labels[row];                                                        \
    const float g = y < (unsigned int)classes ? grad[row] : NAN;                               \
    const float uniform = smoothing / (float)classes;                                          \
    for (int j = threadIdx.x; j < classes; j += blockDim.x) {                                  \
      const float target = (unsigned int)j == y ? 1.0f - smoothing : 0.0f;                     \
      dx[base + j] = hone_store<T>(g * (expf(hone_load(x[j]) - mx - log_sum) - target - uniform)); \
    }                                                                                          \
  }

HONE_FOR_DTYPES(HONE_CROSS_ENTROPY)
HONE_FOR_DTYPES(HONE_CROSS_ENTROPY_GRAD)
