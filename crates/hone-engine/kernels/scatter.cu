// The backward pass of an index_select whose ids the host sorted (crates/hone-engine/src/graph/
// lookup.rs): dx[o, id, i] = Σ grad[o, j, i] over the j whose id is `id`, with no atomics (the
// same sum every run). dx starts at zero.
//   hone_scatter_chunks_<dtype>: one block per chunk (at most 32 rows of one id, `order`
//                                [starts[c], starts[c + 1])), a thread per column
//                                (o · inner + i): the chunk's sum in f32, stored in
//                                dx[o, targets[c], i] when it is its id's only chunk
//                                (slots[c] == NO_SLOT), else in partial[slots[c], column]
//   hone_scatter_ids_<dtype>:    a thread per (id of several chunks, column): its scratch rows
//                                [firsts[t], firsts[t + 1]) added in order, stored in
//                                dx[o, targets[t], i]
// grad is [outer × n × inner] contiguous values of the kernel's dtype; columns = outer · inner;
// dx is [outer × rows × inner], out_block = rows · inner.

#include <stddef.h>

#include "dtypes.cuh"

#define HONE_NO_SLOT 0xFFFFFFFFu

#define HONE_SCATTER_CHUNKS(T, SUFFIX)                                                       \
  extern "C" __global__ void hone_scatter_chunks_##SUFFIX(                                   \
      const size_t n, const size_t columns, const size_t inner, const size_t out_block,      \
      const T *grad, const unsigned int *order, const unsigned int *starts,                  \
      const unsigned int *targets, const unsigned int *slots, float *partial, T *dx) {       \
    const size_t c = blockIdx.x;                                                             \
    const unsigned int from = starts[c], to = starts[c + 1];                                 \
    const size_t target = targets[c];                                                        \
    const unsigned int slot = slots[c];                                                      \
    for (size_t col = blockIdx.y * (size_t)blockDim.x + threadIdx.x; col < columns;          \
         col += (size_t)gridDim.y * blockDim.x) {                                            \
      const size_t o = col / inner, i = col % inner;                                         \
      float acc = 0.0f;                                                                      \
      for (unsigned int k = from; k < to; ++k) {                                             \
        acc += hone_load(grad[(o * n + order[k]) * inner + i]);                              \
      }                                                                                      \
      if (slot == HONE_NO_SLOT) {                                                            \
        dx[o * out_block + target * inner + i] = hone_store<T>(acc);                         \
      } else {                                                                               \
        partial[(size_t)slot * columns + col] = acc;                                         \
      }                                                                                      \
    }                                                                                        \
  }

#define HONE_SCATTER_IDS(T, SUFFIX)                                                          \
  extern "C" __global__ void hone_scatter_ids_##SUFFIX(                                      \
      const size_t values, const size_t columns, const size_t inner, const size_t out_block, \
      const float *partial, const unsigned int *firsts, const unsigned int *targets, T *dx) { \
    for (size_t v = blockIdx.x * (size_t)blockDim.x + threadIdx.x; v < values;               \
         v += (size_t)blockDim.x * gridDim.x) {                                              \
      const size_t t = v / columns, col = v % columns;                                       \
      const size_t o = col / inner, i = col % inner;                                         \
      float acc = 0.0f;                                                                      \
      for (unsigned int s = firsts[t]; s < firsts[t + 1]; ++s) {                             \
        acc += partial[(size_t)s * columns + col];                                           \
      }                                                                                      \
      dx[o * out_block + (size_t)targets[t] * inner + i] = hone_store<T>(acc);               \
    }                                                                                        \
  }

HONE_FOR_DTYPES(HONE_SCATTER_CHUNKS)
HONE_FOR_DTYPES(HONE_SCATTER_IDS)
