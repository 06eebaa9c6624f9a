// The backward pass of GELU on the autograd graph (crates/hone-engine/src/graph/gelu.rs), the
// derivatives the CPU graph uses (cpu::math::gelu_grad, gelu_tanh_grad):
//   exact:  d/dx x·Φ(x) = Φ(x) + x·φ(x)
//   tanh:   d/dx ½x(1 + tanh(u)), u = √(2/π)(x + 0.044715x³)
// dx[i] = grad[i] · GELU'(x[i]); every pointer is to n contiguous f32 values.

#include <stddef.h>

extern "C" __global__ void hone_gelu_grad_f32(const size_t n, const float *x, const float *grad,
                                              float *dx, const int tanh_approx) {
  for (size_t i = blockIdx.x * (size_t)blockDim.x + threadIdx.x; i < n;
       i += (size_t)blockDim.x * gridDim.x) {
    const float v = x[i];
    float d;
    if (tanh_approx) {
      const float inner = fminf(fmaxf(0.7978846f * (v + 0.044715f * v * v * v), -9.0f), 9.0f);
      const float e = expf(2.0f * inner);
      const float t = (e - 1.0f) / (e + 1.0f);
      const float sech2 = 4.0f * e / ((e + 1.0f) * (e + 1.0f));
      d = 0.5f * (1.0f + t) + 0.5f * v * sech2 * 0.7978846f * (1.0f + 3.0f * 0.044715f * v * v);
    } else {
      d = 0.5f * (1.0f + erff(v * 0.70710678f)) + v * 0.3989423f * expf(-0.5f * v * v);
    }
    dx[i] = grad[i] * d;
  }
}
