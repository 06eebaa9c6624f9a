//! Layer norm and RMS norm as one op each on the autograd graph, with their backward one op
//! too (attention's softmax is `graph::scores`).
//!
//! Composed from candle's primitives (`crate::ops`), a layer norm is nine kernels forward, each
//! result kept for the backward pass, and about thirty backward. Here the forward pass is one
//! kernel (on a GPU, candle-kernels' own `layernorm` and `rmsnorm`, the kernels `candle-nn`
//! launches; on the CPU the CPU graph's own `cpu::kernels::layer_norm` and
//! `cpu::decoder::rms_norm`) and keeps nothing but its input and result. The backward pass is
//! one op too (`kernels/rows.cu` on a GPU, a block per row; on the CPU the CPU graph's norm
//! backward kernels), plus the gain's and bias's column sums. candle's own fused versions
//! record no backward (see FACTS), which is why these exist.
//!
//! f32 only (the graph's norms stay f32 under mixed precision; other dtypes take the composed
//! ops); inputs are made contiguous first.

use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor, D};
use rayon::prelude::*;

use crate::kernel_io;
use crate::ops;

/// Layer normalisation over the last dimension (biased variance, as PyTorch).
pub fn layer_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    if [x.dtype(), gamma.dtype(), beta.dtype()] != [DType::F32; 3] {
        return ops::layer_norm(x, gamma, beta, eps);
    }
    x.contiguous()?.apply_op3(
        &gamma.contiguous()?,
        &beta.contiguous()?,
        Norm {
            eps: eps as f32,
            centred: true,
        },
    )
}

/// RMS normalisation over the last dimension: `x / √(mean(x²) + eps) · gamma`.
pub fn rms_norm(x: &Tensor, gamma: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    if [x.dtype(), gamma.dtype()] != [DType::F32; 2] {
        return ops::rms_norm(x, gamma, eps);
    }
    // The op takes a bias slot; RMS norm has none: the gain fills it, never read (and given
    // no gradient through it).
    let gamma = gamma.contiguous()?;
    x.contiguous()?.apply_op3(
        &gamma,
        &gamma,
        Norm {
            eps: eps as f32,
            centred: false,
        },
    )
}

fn last_dim(layout: &Layout) -> usize {
    layout.dims().last().copied().unwrap_or(1).max(1)
}

/// Layer norm (`centred`) or RMS norm over the last dimension, with a gain and (layer norm) a
/// bias.
#[derive(Debug, Clone, Copy)]
struct Norm {
    eps: f32,
    centred: bool,
}

impl CustomOp3 for Norm {
    fn name(&self) -> &'static str {
        if self.centred {
            "hone-layer-norm"
        } else {
            "hone-rms-norm"
        }
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        gamma: &CpuStorage,
        gl: &Layout,
        beta: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let src = kernel_io::cpu(x, xl, self.name())?;
        let gamma = kernel_io::cpu(gamma, gl, self.name())?;
        let beta = kernel_io::cpu(beta, bl, self.name())?;
        let n = last_dim(xl);
        if gamma.len() != n || beta.len() != n {
            candle_core::bail!("{}: gain and bias must have {n} values", self.name());
        }
        // The CPU graph's own kernels (their row statistics are not kept: the backward
        // recomputes them on any device).
        let mut dst = vec![0f32; src.len()];
        if self.centred {
            let mut stats = crate::cpu::kernels::NormStats::default();
            crate::cpu::kernels::layer_norm(&mut dst, src, gamma, beta, self.eps, n, &mut stats);
        } else {
            let mut rstd = Vec::new();
            crate::cpu::decoder::rms_norm(&mut dst, src, gamma, self.eps, n, &mut rstd);
        }
        Ok((CpuStorage::F32(dst), xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        gamma: &candle_core::CudaStorage,
        gl: &Layout,
        beta: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        cuda::norm(*self, x, xl, gamma, gl, beta, bl)
    }

    fn bwd(
        &self,
        x: &Tensor,
        gamma: &Tensor,
        beta: &Tensor,
        _y: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        // One pass gives dx and g ⊙ x̂ ([`NormGrad`]); dγ = Σ_rows g ⊙ x̂, dβ = Σ_rows g.
        let n = x.dim(D::Minus1)?;
        let rows = x.elem_count() / n.max(1);
        let grad = grad.contiguous()?;
        let both = x.apply_op3_no_bwd(gamma, &grad, &NormGrad(*self))?;
        let dx = both.get(0)?.reshape(x.shape())?;
        // Hone's column sums: candle's sum over the rows reads a column per block, each
        // thread a row apart on a GPU. None for a frozen gain or bias (LoRA's), which leads
        // to no variable: the backward pass would drop them.
        let dgamma = gamma
            .track_op()
            .then(|| super::bias::column_sums(&both.get(1)?)?.reshape(gamma.shape()))
            .transpose()?;
        let dbeta = (self.centred && beta.track_op())
            .then(|| super::bias::column_sums(&grad.reshape((rows, n))?))
            .transpose()?;
        Ok((Some(dx), dgamma, dbeta))
    }
}

/// A norm's backward from its input `x`, gain `γ` and the gradient `g`, the row statistics
/// recomputed: `[2, rows, n]`, first `dx`, then `g ⊙ x̂` (whose column sums are `dγ`). With
/// x̂ = (x − μ)·r, r = 1/√(var + ε) (μ = 0 and var = mean(x²) for RMS norm):
/// `dx = r · (g⊙γ − mean(g⊙γ) − x̂ · mean(g⊙γ ⊙ x̂))` (no `mean(g⊙γ)` term for RMS).
#[derive(Debug, Clone, Copy)]
struct NormGrad(Norm);

impl CustomOp3 for NormGrad {
    fn name(&self) -> &'static str {
        "hone-norm-grad"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        gamma: &CpuStorage,
        gl: &Layout,
        g: &CpuStorage,
        gradl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        use crate::cpu::{decoder, kernels};
        let Norm { eps, centred } = self.0;
        let x = kernel_io::cpu(x, xl, self.name())?;
        let gamma = kernel_io::cpu(gamma, gl, self.name())?;
        let g = kernel_io::cpu(g, gradl, self.name())?;
        let n = last_dim(xl);
        if gamma.len() != n || g.len() != x.len() {
            candle_core::bail!(
                "{}: the gain, input and gradient differ in size",
                self.name()
            );
        }
        // The CPU graph's kernels: its forward for the row statistics, its backward for dx.
        let mut both = vec![0f32; 2 * x.len()];
        let (dx, gxhat) = both.split_at_mut(x.len());
        let mut stats = kernels::NormStats::default();
        if centred {
            kernels::layer_norm(gxhat, x, gamma, gamma, eps, n, &mut stats);
            kernels::layer_norm_backward(dx, g, x, gamma, &stats, n, None, None);
        } else {
            decoder::rms_norm(gxhat, x, gamma, eps, n, &mut stats.rstd);
            decoder::rms_norm_backward(dx, g, x, gamma, &stats.rstd, n, None);
            stats.mean = vec![0.0; stats.rstd.len()];
        }
        gxhat
            .par_chunks_mut(n)
            .zip(x.par_chunks(n).zip(g.par_chunks(n)))
            .zip(stats.mean.par_iter().zip(&stats.rstd))
            .for_each(|((out, (x, g)), (&mean, &rstd))| {
                for ((o, x), g) in out.iter_mut().zip(x).zip(g) {
                    *o = g * ((x - mean) * rstd);
                }
            });
        let rows = x.len() / n;
        Ok((CpuStorage::F32(both), Shape::from((2, rows, n))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        gamma: &candle_core::CudaStorage,
        gl: &Layout,
        g: &candle_core::CudaStorage,
        gradl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        cuda::norm_grad(self.0, x, xl, gamma, gl, g, gradl)
    }
}

/// The forward kernels on an NVIDIA GPU: candle-kernels' `layernorm_f32` and `rmsnorm_f32`,
/// launched as candle-nn 0.11 launches them; the backward Hone's `kernels/rows.cu`.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{kernels, CudaStorage, WrapErr};
    use candle_core::{Layout, Shape};

    use super::Norm;
    use crate::kernel_io::cuda::view;

    fn rows_and_cols(layout: &Layout) -> (usize, usize) {
        let n = super::last_dim(layout);
        (layout.shape().elem_count() / n, n)
    }

    pub(super) fn norm(
        op: Norm,
        x: &CudaStorage,
        xl: &Layout,
        gamma: &CudaStorage,
        gl: &Layout,
        beta: &CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = x.device();
        let src = view(x, xl, "norm")?;
        let gamma = view(gamma, gl, "norm")?;
        let (rows, cols) = rows_and_cols(xl);
        let block = if cols < 1024 { 32 } else { 1024 };
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (block, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: every element is written by the kernel.
        let dst = unsafe { dev.alloc::<f32>(rows * cols)? };
        if op.centred {
            let beta = view(beta, bl, "norm")?;
            let func = dev.get_or_load_func("layernorm_f32", &kernels::REDUCE)?;
            let mut builder = func.builder();
            builder.arg(&src);
            builder.arg(&dst);
            builder.arg(&gamma);
            builder.arg(&beta);
            candle_core::builder_arg!(builder, cols as i32, block as i32, op.eps);
            // SAFETY: the kernel's signature is (src, dst, alpha, beta, ncols, block, eps).
            unsafe { builder.launch(cfg) }.w()?;
        } else {
            let func = dev.get_or_load_func("rmsnorm_f32", &kernels::REDUCE)?;
            let mut builder = func.builder();
            builder.arg(&src);
            builder.arg(&dst);
            builder.arg(&gamma);
            candle_core::builder_arg!(builder, cols as i32, block as i32, op.eps);
            // SAFETY: the kernel's signature is (src, dst, alpha, ncols, block, eps).
            unsafe { builder.launch(cfg) }.w()?;
        }
        let out = crate::kernel_io::cuda::storage(dst, dev);
        Ok((out, xl.shape().clone()))
    }

    /// A block of 32–1024 threads (a multiple of 32) for rows of `cols` values.
    fn row_block(cols: usize) -> u32 {
        (cols.div_ceil(32) * 32).clamp(32, 256) as u32
    }

    pub(super) fn norm_grad(
        op: Norm,
        x: &CudaStorage,
        xl: &Layout,
        gamma: &CudaStorage,
        gl: &Layout,
        g: &CudaStorage,
        gradl: &Layout,
    ) -> candle_core::Result<(CudaStorage, Shape)> {
        let dev = x.device();
        let xs = view(x, xl, "norm-grad")?;
        let gamma = view(gamma, gl, "norm-grad")?;
        let gs = view(g, gradl, "norm-grad")?;
        let (rows, cols) = rows_and_cols(xl);
        if gamma.len() != cols || gs.len() != rows * cols {
            candle_core::bail!("norm-grad: the gain, input and gradient differ in size");
        }
        let func =
            dev.get_or_load_custom_func("hone_norm_grad_f32", "hone_rows", crate::ptx::ROWS)?;
        // SAFETY: every element (dx, then g ⊙ x̂) is written by the kernel.
        let both = unsafe { dev.alloc::<f32>(2 * rows * cols)? };
        let cfg = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (row_block(cols), 1, 1),
            shared_mem_bytes: 0,
        };
        let mut builder = func.builder();
        builder.arg(&xs);
        builder.arg(&gamma);
        builder.arg(&gs);
        builder.arg(&both);
        let centred = op.centred as i32;
        candle_core::builder_arg!(builder, rows as i32, cols as i32, op.eps, centred);
        // SAFETY: the kernel's signature is (x, gamma, grad, out, rows, cols, eps, centred);
        // x and grad hold rows × cols values, gamma cols, out twice rows × cols.
        unsafe { builder.launch(cfg) }.w()?;
        let out = crate::kernel_io::cuda::storage(both, dev);
        Ok((out, Shape::from((2, rows, cols))))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// Each fused op against its composition in `crate::ops`: the values and every gradient
    /// (the input's and the gain's and bias's) under a loss that weights each output.
    #[test]
    fn the_fused_ops_equal_their_compositions_forward_and_backward() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (rows, n) = (6, 37);
        let values = |seed: u32, len: usize, shift: f32| -> Vec<f32> {
            (0..len)
                .map(|i| {
                    let h = (i as u32)
                        .wrapping_mul(2_654_435_761)
                        .wrapping_add(seed * 97);
                    (h % 1000) as f32 / 250.0 - 2.0 + shift
                })
                .collect()
        };
        let x = Var::from_vec(values(1, rows * n, 0.7), (2, rows / 2, n), &dev)?;
        let gamma = Var::from_vec(values(2, n, 1.0), n, &dev)?;
        let beta = Var::from_vec(values(3, n, 0.0), n, &dev)?;
        let weights = Tensor::from_vec(values(4, rows * n, 0.1), (2, rows / 2, n), &dev)?;
        let close = |a: &Tensor, b: &Tensor, what: &str| -> candle_core::Result<()> {
            let (a, b) = (
                a.flatten_all()?.to_vec1::<f32>()?,
                b.flatten_all()?.to_vec1::<f32>()?,
            );
            let scale = b.iter().fold(1e-3f32, |m, v| m.max(v.abs()));
            for (i, (p, q)) in a.iter().zip(&b).enumerate() {
                assert!((p - q).abs() <= 2e-5 * scale, "{what}[{i}]: {p} vs {q}");
            }
            Ok(())
        };
        type Op<'a> = Box<dyn Fn(&Tensor) -> candle_core::Result<Tensor> + 'a>;
        let cases: Vec<(&str, Op, Op, bool)> = vec![
            (
                "layer norm",
                Box::new(|x| layer_norm(x, gamma.as_tensor(), beta.as_tensor(), 1e-12)),
                Box::new(|x| ops::layer_norm(x, gamma.as_tensor(), beta.as_tensor(), 1e-12)),
                true,
            ),
            (
                "rms norm",
                Box::new(|x| rms_norm(x, gamma.as_tensor(), 1e-6)),
                Box::new(|x| ops::rms_norm(x, gamma.as_tensor(), 1e-6)),
                true,
            ),
        ];
        for (name, fused, composed, has_gain) in cases {
            let (a, b) = (fused(x.as_tensor())?, composed(x.as_tensor())?);
            close(&a, &b, &format!("{name} values"))?;
            let ga = (a * &weights)?.sum_all()?.backward()?;
            let gb = (b * &weights)?.sum_all()?.backward()?;
            close(
                ga.get(&x).expect("dx"),
                gb.get(&x).expect("dx"),
                &format!("{name} dx"),
            )?;
            if has_gain {
                close(
                    ga.get(&gamma).expect("dgamma"),
                    gb.get(&gamma).expect("dgamma"),
                    &format!("{name} dgamma"),
                )?;
            }
            if name == "layer norm" {
                close(
                    ga.get(&beta).expect("dbeta"),
                    gb.get(&beta).expect("dbeta"),
                    "layer norm dbeta",
                )?;
            }
        }
        Ok(())
    }

    /// Other dtypes take the composed ops (mixed precision keeps these in f32, but nothing
    /// breaks if a caller does not).
    #[test]
    fn other_dtypes_fall_back_to_the_compositions() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::new(&[[1f32, 2.0, 3.0]], &dev)?.to_dtype(DType::BF16)?;
        let gamma = Tensor::ones(3, DType::BF16, &dev)?;
        let beta = Tensor::zeros(3, DType::BF16, &dev)?;
        let y = layer_norm(&x, &gamma, &beta, 1e-5)?;
        assert_eq!(y.dtype(), DType::BF16);
        let total: f32 = y.to_dtype(DType::F32)?.sum_all()?.to_scalar()?;
        assert!(total.abs() < 1e-2, "a normalised row sums to 0: {total}");
        Ok(())
    }
}
