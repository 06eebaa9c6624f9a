// The backward pass of GELU on the autograd graph (crates/hone-engine/src/graph/gelu.rs), the
// derivatives the CPU graph uses (cpu::math::gelu_grad, gelu_tanh_grad):
//   exact:  d/dx x·Φ(x) = Φ(x) + x·φ(x)
//   tanh:   d/dx ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³)
// dx[i] = grad[i] · GELU'(x[i]); every pointer is to n contiguous values of the kernel's dtype
// (hone_gelu_grad_f32, _bf16, _f16), computed in f32.

#include <stddef.h>

#include "dtypes.cuh"

__device__ __forceinline__ float hone_gelu_derivative(const float v, const int tanh_approx) {
  if (tanh_approx) {
    const float inner = fminf(fmaxf(0.7978846f * (v + 0.044715f * v * v * v), -9.0f), 9.0f);
    const float e = expf(2.0f * inner);
    const float t = (e - 1.0f) / (e + 1.0f);
    const float sech2 = 4.0f * e / ((e + 1.0f) * (e + 1.0f));
    return 0.5f * (1.0f + t) + 0.5f * v * sech2 * 0.7978846f * (1.0f + 3.0f * 0.044715f * v * v);
  }
  return 0.5f * (1.0f + erff(v * 0.70710678f)) + v * 0.3989423f * expf(-0.5f * v * v);
}

#define HONE_GELU_GRAD(T, SUFFIX)                                                            \
  extern "C" __global__ void hone_gelu_grad_##SUFFIX(const size_t n, const T *x, const T *grad, \
                                                     T *dx, const int tanh_approx) {         \
    for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;                    \
         i += (size_t)blockDim.x * gridDim.x) {                                              \
      dx[i] = hone_store<T>(hone_load(grad[i]) * hone_gelu_derivative(hone_load(x[i]),        \
                                                                      tanh_approx));         \
    }                                                                                        \
  }

HONE_FOR_DTYPES(HONE_GELU_GRAD)
