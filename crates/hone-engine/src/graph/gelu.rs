//! GELU (exact, and the tanh approximation) on the autograd graph with a one-kernel backward.
//!
//! candle's `gelu_erf` records a backward of thirteen elementwise ops over the activation
//! (a BERT-base step's feed-forward layers: ~12 GiB of memory traffic of its 41 GiB backward,
//! counted with `hone bench --census`); here the forward pass is candle's own kernel and the
//! backward one pass, `dx = g · GELU'(x)`, with the CPU graph's derivatives
//! (`cpu::math::gelu_grad`, `gelu_tanh_grad`) on the CPU and `kernels/activations.cu` on a GPU.
//! f32, bf16 and f16 (mixed precision keeps a product's output in its dtype; the derivative
//! is computed in f32, as PyTorch's kernel does); other dtypes take candle's ops.

use candle_core::backend::BackendStorage;
use candle_core::op::{Gelu as GeluTanhOp, GeluErf};
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::math;
use crate::kernel_io;

/// GELU of `x`, exact or (`tanh`) the tanh approximation.
pub fn gelu(x: &Tensor, tanh: bool) -> candle_core::Result<Tensor> {
    match (x.dtype(), tanh) {
        (DType::F32 | DType::BF16 | DType::F16, _) => x.contiguous()?.apply_op1(Gelu { tanh }),
        (_, true) => x.gelu(),
        (_, false) => x.gelu_erf(),
    }
}

#[derive(Clone, Copy)]
struct Gelu {
    tanh: bool,
}

impl CustomOp1 for Gelu {
    fn name(&self) -> &'static str {
        if self.tanh {
            "hone-gelu-tanh"
        } else {
            "hone-gelu"
        }
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = match self.tanh {
            true => storage.unary_impl::<GeluTanhOp>(layout)?,
            false => storage.unary_impl::<GeluErf>(layout)?,
        };
        Ok((out, layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = match self.tanh {
            true => storage.unary_impl::<GeluTanhOp>(layout)?,
            false => storage.unary_impl::<GeluErf>(layout)?,
        };
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        let grad = grad.contiguous()?;
        Ok(Some(
            x.apply_op2_no_bwd(&grad, &GeluGrad { tanh: self.tanh })?,
        ))
    }
}

/// `dx = grad · GELU'(x)` (x first, the gradient second).
struct GeluGrad {
    tanh: bool,
}

impl CustomOp2 for GeluGrad {
    fn name(&self) -> &'static str {
        "hone-gelu-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        g: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dtype = x.dtype();
        let (x, g) = (
            kernel_io::cpu_as_f32(x, xl, self.name())?,
            kernel_io::cpu_as_f32(g, gl, self.name())?,
        );
        kernel_io::same_len(self.name(), &[x.len(), g.len()])?;
        let derivative = if self.tanh {
            math::gelu_tanh_grad
        } else {
            math::gelu_grad
        };
        let mut dx = vec![0f32; x.len()];
        dx.par_chunks_mut(kernel_io::CHUNK)
            .zip(
                x.par_chunks(kernel_io::CHUNK)
                    .zip(g.par_chunks(kernel_io::CHUNK)),
            )
            .for_each(|(dx, (x, g))| {
                for ((d, &x), &g) in dx.iter_mut().zip(x).zip(g) {
                    *d = g * derivative(x);
                }
            });
        let dx = kernel_io::cpu_storage(dx, dtype, self.name())?;
        Ok((dx, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        g: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let dx = crate::by_dtype!(
            x.dtype(),
            self.name(),
            cuda::gelu_grad(self.tanh, x, xl, g, gl)
        )?;
        Ok((dx, xl.shape().clone()))
    }
}

/// `hone_gelu_grad_{f32,bf16,f16}` of `kernels/activations.cu`, compiled to PTX by the build
/// script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use crate::kernel_io::cuda::{elementwise, kernel_suffix, typed_view};
    use crate::kernel_io::same_len;

    pub(super) fn gelu_grad<T: CudaDType + DeviceRepr>(
        tanh: bool,
        x: &CudaStorage,
        xl: &Layout,
        g: &CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-gelu-grad";
        let dev = x.device().clone();
        let (xs, gs) = (typed_view::<T>(x, xl, name)?, typed_view::<T>(g, gl, name)?);
        let n = xs.len();
        same_len(name, &[n, gs.len()])?;
        // SAFETY: every element is written by the kernel.
        let dx = unsafe { dev.alloc::<T>(n)? };
        if let Some(cfg) = elementwise(n) {
            let kernel = format!("hone_gelu_grad_{}", kernel_suffix(x.dtype(), name)?);
            let func =
                dev.get_or_load_custom_func(&kernel, "hone_activations", crate::ptx::ACTIVATIONS)?;
            let mut builder = func.builder();
            builder.arg(&n);
            builder.arg(&xs);
            builder.arg(&gs);
            builder.arg(&dx);
            let tanh = tanh as i32;
            candle_core::builder_arg!(builder, tanh);
            // SAFETY: the kernel's signature is (n, x, grad, dx, tanh_approx); each buffer
            // holds n values of T.
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(dx, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The op's value and gradient against candle's composed `gelu_erf`/`gelu` and theirs.
    #[test]
    fn value_and_gradient_match_candles_composed_gelu() -> candle_core::Result<()> {
        let xs: Vec<f32> = (0..4000).map(|i| (i as f32 - 2000.0) / 250.0).collect();
        let weights: Vec<f32> = (0..4000)
            .map(|i| ((i * 7) % 13) as f32 / 13.0 - 0.4)
            .collect();
        let dev = Device::Cpu;
        let w = Tensor::from_slice(&weights, (40, 100), &dev)?;
        for tanh in [false, true] {
            let x = Var::from_slice(&xs, (40, 100), &dev)?;
            let ours = gelu(x.as_tensor(), tanh)?;
            let grad = (&ours * &w)?.sum_all()?.backward()?;
            let ours_dx = grad
                .get(x.as_tensor())
                .expect("a gradient")
                .flatten_all()?
                .to_vec1::<f32>()?;
            let x2 = Var::from_slice(&xs, (40, 100), &dev)?;
            let theirs = match tanh {
                true => x2.as_tensor().gelu()?,
                false => x2.as_tensor().gelu_erf()?,
            };
            let grad = (&theirs * &w)?.sum_all()?.backward()?;
            let theirs_dx = grad
                .get(x2.as_tensor())
                .expect("a gradient")
                .flatten_all()?
                .to_vec1::<f32>()?;
            assert_eq!(
                ours.flatten_all()?.to_vec1::<f32>()?,
                theirs.flatten_all()?.to_vec1::<f32>()?,
                "the forward pass is candle's own kernel"
            );
            for (i, (a, b)) in ours_dx.iter().zip(&theirs_dx).enumerate() {
                // candle's exact-GELU backward uses 0.398942 for 1/√(2π); the CPU graph's
                // derivative the full constant.
                assert!(
                    (a - b).abs() <= 2e-5 * (1.0 + b.abs()),
                    "x = {}: {a} vs {b} (tanh {tanh})",
                    xs[i]
                );
            }
        }
        Ok(())
    }

    /// In bf16 and f16 the derivative is the f32 one at the rounded input, times the rounded
    /// gradient, rounded once.
    #[test]
    fn low_precision_gradients_are_the_f32_ones_rounded() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let xs: Vec<f32> = (0..512).map(|i| (i as f32 - 256.0) / 40.0).collect();
        let gs: Vec<f32> = (0..512)
            .map(|i| ((i * 5) % 11) as f32 / 7.0 - 0.6)
            .collect();
        for dtype in [DType::BF16, DType::F16] {
            let x = Tensor::from_slice(&xs, 512, &dev)?.to_dtype(dtype)?;
            let g = Tensor::from_slice(&gs, 512, &dev)?.to_dtype(dtype)?;
            for tanh in [false, true] {
                let ours = x.apply_op2_no_bwd(&g, &GeluGrad { tanh })?;
                assert_eq!(ours.dtype(), dtype);
                let (x32, g32) = (x.to_dtype(DType::F32)?, g.to_dtype(DType::F32)?);
                let want = x32
                    .apply_op2_no_bwd(&g32, &GeluGrad { tanh })?
                    .to_dtype(dtype)?;
                assert_eq!(
                    ours.to_dtype(DType::F32)?.to_vec1::<f32>()?,
                    want.to_dtype(DType::F32)?.to_vec1::<f32>()?
                );
            }
            assert_eq!(gelu(&x, false)?.dtype(), dtype);
        }
        Ok(())
    }
}
