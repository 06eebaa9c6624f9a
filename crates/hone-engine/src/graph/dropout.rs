//! Dropout on the autograd graph with its mask drawn inside the kernel: element `i` of a
//! contiguous tensor is kept when a hash of `(seed, i)` is at least `p`, and scaled by
//! `1/(1 − p)`. The backward pass is the same op on the gradient (the same seed draws the same
//! mask), so nothing but the seed is kept for it.
//!
//! A GPU uses it (`kernels/dropout.cu`): a mask drawn with `Tensor::rand`, compared, cast,
//! scaled and multiplied was five kernels and a stored mask of the activation's size at every
//! dropout site. The hash is SplitMix64's finaliser, integer arithmetic the CPU implementation
//! here repeats exactly, so a GPU and the CPU drop the same values (`hone bench check`
//! compares them). The CPU graphs draw their masks from the step's stream instead
//! (`cpu::kernels::DropMask`), so that the two CPU graphs drop the same values.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernel_io;

/// `x` with each value dropped (probability `p`) or scaled by `1/(1 − p)`, the mask drawn
/// from `seed`.
pub fn dropout(x: &Tensor, seed: u64, p: f64) -> candle_core::Result<Tensor> {
    if p <= 0.0 {
        return Ok(x.clone());
    }
    if !(0.0..1.0).contains(&p) {
        candle_core::bail!("dropout probability {p} is not in [0, 1)");
    }
    let op = Dropout {
        seed,
        p: p as f32,
        scale: (1.0 / (1.0 - p)) as f32,
    };
    match x.dtype() {
        DType::F32 | DType::BF16 | DType::F16 => x.contiguous()?.apply_op1(op),
        other => x
            .to_dtype(DType::F32)?
            .contiguous()?
            .apply_op1(op)?
            .to_dtype(other),
    }
}

/// Uniform in [0, 1) from `(seed, i)`: SplitMix64's finaliser, its top 24 bits (element `i`
/// is kept when it is at least `p`; `graph::scores` draws attention's masks with it too).
pub(crate) fn uniform(seed: u64, i: u64) -> f32 {
    let mut z = seed.wrapping_add((i + 1).wrapping_mul(0x9E37_79B9_7F4A_7C15));
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 40) as f32 * (1.0 / 16_777_216.0)
}

#[derive(Debug, Clone, Copy)]
struct Dropout {
    seed: u64,
    p: f32,
    scale: f32,
}

impl CustomOp1 for Dropout {
    fn name(&self) -> &'static str {
        "hone-dropout"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let x = kernel_io::cpu_as_f32(storage, layout, self.name())?;
        let mut y = vec![0f32; x.len()];
        y.par_chunks_mut(kernel_io::CHUNK)
            .zip(x.par_chunks(kernel_io::CHUNK))
            .enumerate()
            .for_each(|(chunk, (y, x))| {
                let first = (chunk * kernel_io::CHUNK) as u64;
                for (i, (y, &x)) in y.iter_mut().zip(x).enumerate() {
                    if uniform(self.seed, first + i as u64) >= self.p {
                        *y = x * self.scale;
                    }
                }
            });
        let y = kernel_io::cpu_storage(y, storage.dtype(), self.name())?;
        Ok((y, layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let y = crate::by_dtype!(
            storage.dtype(),
            self.name(),
            cuda::dropout(self, storage, layout)
        )?;
        Ok((y, layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
    }
}

/// `hone_dropout_{f32,bf16,f16}` of `kernels/dropout.cu`, compiled to PTX by the build script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use crate::kernel_io::cuda::{elementwise, kernel_suffix, typed_view};

    pub(super) fn dropout<T: CudaDType + DeviceRepr>(
        op: &super::Dropout,
        storage: &CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-dropout";
        let dev = storage.device().clone();
        let x = typed_view::<T>(storage, layout, name)?;
        let n = x.len();
        // SAFETY: every element is written by the kernel.
        let y = unsafe { dev.alloc::<T>(n)? };
        if let Some(cfg) = elementwise(n) {
            let kernel = format!("hone_dropout_{}", kernel_suffix(storage.dtype(), name)?);
            let func = dev.get_or_load_custom_func(&kernel, "hone_dropout", crate::ptx::DROPOUT)?;
            let mut builder = func.builder();
            builder.arg(&n);
            builder.arg(&x);
            builder.arg(&y);
            candle_core::builder_arg!(builder, op.seed, op.p, op.scale);
            // SAFETY: the kernel's signature is (n, x, y, seed, p, scale); x and y hold n
            // values of T.
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(y, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    #[test]
    fn drops_about_p_scales_the_rest_and_the_gradient_follows_the_same_mask(
    ) -> candle_core::Result<()> {
        let n = 100_002; // 7 rows, more than six parallel chunks
        let xs: Vec<f32> = (0..n).map(|i| 1.0 + (i % 17) as f32).collect();
        let x = Var::from_slice(&xs, (7, n / 7), &Device::Cpu)?;
        let y = dropout(x.as_tensor(), 42, 0.1)?;
        let ys = y.flatten_all()?.to_vec1::<f32>()?;
        let scale = (1.0 / 0.9f64) as f32;
        let dropped = ys.iter().filter(|v| **v == 0.0).count() as f64 / n as f64;
        assert!((dropped - 0.1).abs() < 0.005, "dropped {dropped}");
        for (y, x) in ys.iter().zip(&xs) {
            assert!(*y == 0.0 || *y == x * scale);
        }
        let weights = Tensor::from_vec(
            (0..n).map(|i| (i % 5) as f32 - 2.0).collect::<Vec<f32>>(),
            (7, n / 7),
            &Device::Cpu,
        )?;
        let grads = (&y * &weights)?.sum_all()?.backward()?;
        let dx = grads
            .get(x.as_tensor())
            .expect("dx")
            .flatten_all()?
            .to_vec1::<f32>()?;
        let w = weights.flatten_all()?.to_vec1::<f32>()?;
        for i in 0..n {
            let want = if ys[i] == 0.0 { 0.0 } else { w[i] * scale };
            assert_eq!(dx[i], want, "element {i}");
        }
        // The same seed draws the same mask; another seed another one.
        assert_eq!(
            dropout(x.as_tensor(), 42, 0.1)?
                .flatten_all()?
                .to_vec1::<f32>()?,
            ys
        );
        assert_ne!(
            dropout(x.as_tensor(), 43, 0.1)?
                .flatten_all()?
                .to_vec1::<f32>()?,
            ys
        );
        assert!(dropout(x.as_tensor(), 1, 1.0).is_err());
        Ok(())
    }

    /// bf16 and f16 values are dropped where f32 ones are, the kept ones scaled and rounded
    /// once.
    #[test]
    fn low_precision_values_are_dropped_where_f32_ones_are() -> candle_core::Result<()> {
        let xs: Vec<f32> = (0..5000).map(|i| 0.5 + (i % 13) as f32 / 3.0).collect();
        let x = Tensor::from_slice(&xs, (50, 100), &Device::Cpu)?;
        let want = dropout(&x, 7, 0.25)?;
        for dtype in [DType::BF16, DType::F16] {
            let low = x.to_dtype(dtype)?;
            let got = dropout(&low, 7, 0.25)?;
            assert_eq!(got.dtype(), dtype);
            let expected = (low.to_dtype(DType::F32)? * (1.0 / 0.75))?
                .to_dtype(dtype)?
                .to_dtype(DType::F32)?
                .flatten_all()?
                .to_vec1::<f32>()?;
            let got = got.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?;
            let want = want.flatten_all()?.to_vec1::<f32>()?;
            for i in 0..xs.len() {
                match want[i] == 0.0 {
                    true => assert_eq!(got[i], 0.0, "{dtype:?} {i}"),
                    false => assert_eq!(got[i], expected[i], "{dtype:?} {i}"),
                }
            }
        }
        Ok(())
    }
}
