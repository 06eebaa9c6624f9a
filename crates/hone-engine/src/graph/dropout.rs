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
        DType::F32 => x.contiguous()?.apply_op1(op),
        other => x
            .to_dtype(DType::F32)?
            .contiguous()?
            .apply_op1(op)?
            .to_dtype(other),
    }
}

/// Uniform in [0, 1) from `(seed, i)`: SplitMix64's finaliser, its top 24 bits.
fn uniform(seed: u64, i: u64) -> f32 {
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
        let x = kernel_io::cpu(storage, layout, self.name())?;
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
        Ok((CpuStorage::F32(y), layout.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        use candle_core::backend::BackendStorage;
        use candle_core::cuda_backend::cudarc::driver::PushKernelArg;
        use candle_core::cuda_backend::WrapErr;
        use kernel_io::cuda::{elementwise, view};
        let dev = storage.device().clone();
        let x = view(storage, layout, self.name())?;
        let n = x.len();
        // SAFETY: every element is written by the kernel.
        let y = unsafe { dev.alloc::<f32>(n)? };
        if let Some(cfg) = elementwise(n) {
            let func = dev.get_or_load_custom_func(
                "hone_dropout_f32",
                "hone_dropout",
                crate::ptx::DROPOUT,
            )?;
            let mut builder = func.builder();
            builder.arg(&n);
            builder.arg(&x);
            builder.arg(&y);
            candle_core::builder_arg!(builder, self.seed, self.p, self.scale);
            // SAFETY: the kernel's signature is (n, x, y, seed, p, scale); x and y hold n
            // values.
            unsafe { builder.launch(cfg) }.w()?;
        }
        let out = crate::kernel_io::cuda::storage(y, &dev);
        Ok((out, layout.shape().clone()))
    }

    fn bwd(&self, _x: &Tensor, _y: &Tensor, grad: &Tensor) -> candle_core::Result<Option<Tensor>> {
        Ok(Some(grad.contiguous()?.apply_op1_no_bwd(self)?))
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
}
