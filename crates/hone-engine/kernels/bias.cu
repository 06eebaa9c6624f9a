// A dense layer's f32 bias on its mixed-precision product (crates/hone-engine/src/graph/bias.rs).
//   hone_bias_add_<dtype>:     out[r, c] = y[r, c] + bias[c], in f32, rounded once
//   hone_column_sums_<dtype>:  sums[c] = Σ_r grad[r, c], accumulated in f32 (the bias's
//                              gradient; candle sums a bf16 tensor in bf16)
// y, out and grad are [rows × cols] contiguous values of the kernel's dtype; bias and sums f32.

#include <stddef.h>

#include "dtypes.cuh"

#define HONE_BIAS_ADD(T, SUFFIX)                                                             \
  extern "C" __global__ void hone_bias_add_##SUFFIX(const size_t n, const size_t cols,       \
                                                    const T *y, const float *bias, T *out) { \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;                    \
         i += (size_t)blockDim.x * gridDim.x) {                                              \
      out[i] = hone_store<T>(hone_load(y[i]) + bias[i % cols]);                              \
    }                                                                                        \
  }

// A block of 32 × 32 threads per 32 columns: thread (x, y) sums column x of the tile over
// rows y, y + 32, …; the 32 partial sums of each column are then added in shared memory.
#define HONE_COLUMN_SUMS(T, SUFFIX)                                                          \
  extern "C" __global__ void hone_column_sums_##SUFFIX(const size_t rows, const size_t cols, \
                                                       const T *grad, float *sums) {         \
    __shared__ float partial[32][33];                                                        \
    const size_t c = blockIdx.x * 32 + threadIdx.x;                                          \
    float acc = 0.0f;                                                                        \
    if (c < cols) {                                                                          \
      for (size_t r = threadIdx.y; r < rows; r += 32) {                                      \
        acc += hone_load(grad[r * cols + c]);                                                \
      }                                                                                      \
    }                                                                                        \
    partial[threadIdx.y][threadIdx.x] = acc;                                                 \
    __syncthreads();                                                                         \
    for (int stride = 16; stride > 0; stride >>= 1) {                                        \
      if (threadIdx.y < stride) {                                                            \
        partial[threadIdx.y][threadIdx.x] += partial[threadIdx.y + stride][threadIdx.x];     \
      }                                                                                      \
      __syncthreads();                                                                       \
    }                                                                                        \
    if (threadIdx.y == 0 && c < cols) {                                                      \
      sums[c] = partial[0][threadIdx.x];                                                     \
    }                                                                                        \
  }

HONE_FOR_DTYPES(HONE_BIAS_ADD)
HONE_FOR_DTYPES(HONE_COLUMN_SUMS)
