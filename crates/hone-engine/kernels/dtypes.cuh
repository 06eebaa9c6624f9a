// The dtypes Hone's mixed-precision kernels come in (f32, bf16, f16): values are read into
// f32, computed in f32 and rounded once when stored. Instantiated per dtype with
// HONE_FOR_DTYPES(MACRO), which calls MACRO(T, suffix) for each.
#pragma once

#include <cuda_bf16.h>
#include <cuda_fp16.h>

__device__ __forceinline__ float hone_load(float v) { return v; }
__device__ __forceinline__ float hone_load(__nv_bfloat16 v) { return __bfloat162float(v); }
__device__ __forceinline__ float hone_load(__half v) { return __half2float(v); }

template <typename T> __device__ __forceinline__ T hone_store(float v);
template <> __device__ __forceinline__ float hone_store<float>(float v) { return v; }
template <> __device__ __forceinline__ __nv_bfloat16 hone_store<__nv_bfloat16>(float v) {
  return __float2bfloat16(v);
}
template <> __device__ __forceinline__ __half hone_store<__half>(float v) {
  return __float2half(v);
}

#define HONE_FOR_DTYPES(MACRO) \
  MACRO(float, f32)            \
  MACRO(__nv_bfloat16, bf16)   \
  MACRO(__half, f16)
