//! Attention's probabilities from its raw scores in one op each way: `softmax(scores · scale +
//! key bias)` over each row, with keys after a query hidden when attention is causal, through
//! dropout when its mask is drawn by hash (a GPU's, [`crate::graph::dropout`]), stored in the
//! scores' dtype (what the product with the values reads). The backward pass recomputes a
//! row's probabilities from its scores and gives their gradient in the scores' dtype, so
//! nothing but the op's inputs is kept. Composed it was a cast, a scale, a mask add (and a
//! causal add and a clamp), softmax, dropout and a cast forward, each result kept for the
//! backward pass, and as many kernels back: on a GPU a BERT-base layer's `[32 × 12 × 128 ×
//! 128]` scores went through seven kernels forward and four backward, two f32 copies kept.
//!
//! The CPU computes what the composed ops did, in their order (a row softmax that multiplies
//! by the sum's inverse); a GPU runs `kernels/scores.cu`, a block per row.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernel_io;

/// `softmax(scores · scale + key_bias)` over the last dimension, in f32: `scores` is
/// `[sequences, heads, queries, keys]` (f32, bf16 or f16), `key_bias` `[sequences, 1, 1, keys]`
/// f32 (0 for a key, the lowest value for padding). With `causal = Some(prefix)` query `i`
/// sees keys up to `i + prefix` only (the prefix rows come first). Every value is clamped at
/// the lowest f32 (masked values stay finite, and a row with no key left is uniform).
pub fn probabilities(
    scores: &Tensor,
    key_bias: &Tensor,
    scale: f64,
    causal: Option<usize>,
) -> candle_core::Result<Tensor> {
    // [`dropped`] without dropout on the scores in f32: the probabilities come out in f32 (a
    // host-drawn mask then scales them there), the cast's backward rounds the gradient.
    dropped(&scores.to_dtype(DType::F32)?, key_bias, scale, causal, None)
}

/// [`probabilities`] in the scores' dtype, through dropout when `drop` is `Some((seed, p))`:
/// element `i` of the result is kept when `dropout::uniform(seed, i)` is at least `p` (the
/// mask `dropout::dropout` draws with that seed for a tensor of this shape) and scaled by
/// `1/(1 − p)`.
pub fn dropped(
    scores: &Tensor,
    key_bias: &Tensor,
    scale: f64,
    causal: Option<usize>,
    drop: Option<(u64, f64)>,
) -> candle_core::Result<Tensor> {
    check_bias(scores, key_bias)?;
    let drop = match drop {
        Some((_, p)) if !(0.0..1.0).contains(&p) => {
            candle_core::bail!("dropout probability {p} is not in [0, 1)")
        }
        Some((seed, p)) if p > 0.0 => Some(Mask {
            seed,
            p: p as f32,
            scale: (1.0 / (1.0 - p)) as f32,
        }),
        _ => None,
    };
    scores.contiguous()?.apply_op2(
        &key_bias.contiguous()?,
        Dropped {
            softmax: ScoresSoftmax {
                scale: scale as f32,
                causal,
            },
            drop,
        },
    )
}

/// Fails unless `key_bias` is f32 with a row of keys per sequence of `scores`.
fn check_bias(scores: &Tensor, key_bias: &Tensor) -> candle_core::Result<()> {
    let (b, _, _, keys) = scores.dims4()?;
    if key_bias.dtype() != DType::F32 || key_bias.elem_count() != b * keys {
        candle_core::bail!(
            "hone-scores-softmax: a key bias of {:?} {:?} for scores of {:?}",
            key_bias.dtype(),
            key_bias.dims(),
            scores.dims()
        );
    }
    Ok(())
}

/// The rows of a `[sequences, heads, queries, keys]` layout: (rows, keys, queries, rows per
/// sequence).
fn rows(layout: &Layout) -> candle_core::Result<(usize, usize, usize, usize)> {
    let (_, heads, queries, keys) = layout.shape().dims4()?;
    let rows = layout.shape().elem_count().checked_div(keys).unwrap_or(0);
    Ok((rows, keys, queries, heads * queries))
}

#[derive(Debug, Clone, Copy)]
struct ScoresSoftmax {
    scale: f32,
    causal: Option<usize>,
}

impl ScoresSoftmax {
    /// Row `row`'s probabilities in f32 from its scores and its sequence's key bias, as the
    /// composed ops computed them (scale, masks, clamp, then a softmax that multiplies by the
    /// sum's inverse).
    fn row(&self, row: usize, scores: &[f32], bias: &[f32], queries: usize, out: &mut [f32]) {
        let i = row % queries;
        for (j, ((o, &s), &m)) in out.iter_mut().zip(scores).zip(bias).enumerate() {
            let mut v = s * self.scale + m;
            if self.causal.is_some_and(|prefix| j > i + prefix) {
                v += f32::MIN;
            }
            // Clamped at the lowest value as candle's `maximum` does: NaN stays NaN (and
            // reaches the loss), −∞ becomes the lowest.
            *o = if v < f32::MIN { f32::MIN } else { v };
        }
        let max = out.iter().copied().fold(f32::NEG_INFINITY, f32::max);
        let mut sum = 0f32;
        for o in out.iter_mut() {
            *o = (*o - max).exp();
            sum += *o;
        }
        let inv = 1.0 / sum;
        out.iter_mut().for_each(|o| *o *= inv);
    }

    /// Every row's probabilities in f32 (`scores` `[sequences, heads, queries, keys]`
    /// contiguous, `bias` a row of keys per sequence).
    fn cpu_rows(
        &self,
        scores: &[f32],
        bias: &[f32],
        layout: &Layout,
    ) -> candle_core::Result<Vec<f32>> {
        let (_, keys, queries, per_sequence) = rows(layout)?;
        let mut out = vec![0f32; scores.len()];
        if keys > 0 {
            out.par_chunks_mut(keys)
                .zip(scores.par_chunks(keys))
                .enumerate()
                .for_each(|(row, (out, s))| {
                    let bias = &bias[row / per_sequence * keys..][..keys];
                    self.row(row, s, bias, queries, out);
                });
        }
        Ok(out)
    }
}

/// Dropout's mask by hash: kept when `dropout::uniform(seed, i) >= p`, scaled by `scale`.
#[derive(Debug, Clone, Copy)]
struct Mask {
    seed: u64,
    p: f32,
    scale: f32,
}

impl Mask {
    /// Element `i` of value `v` through the mask: `v · scale`, or 0 when dropped (as
    /// `dropout::dropout` computes it).
    fn apply(&self, i: usize, v: f32) -> f32 {
        match super::dropout::uniform(self.seed, i as u64) >= self.p {
            true => v * self.scale,
            false => 0.0,
        }
    }
}

/// [`dropped`]'s op: the probabilities through dropout, in the scores' dtype.
#[derive(Debug, Clone, Copy)]
struct Dropped {
    softmax: ScoresSoftmax,
    drop: Option<Mask>,
}

impl CustomOp2 for Dropped {
    fn name(&self) -> &'static str {
        "hone-scores-dropped"
    }

    fn cpu_fwd(
        &self,
        scores: &CpuStorage,
        sl: &Layout,
        bias: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let s = kernel_io::cpu_as_f32(scores, sl, self.name())?;
        let bias = kernel_io::cpu(bias, bl, self.name())?;
        let mut out = self.softmax.cpu_rows(&s, bias, sl)?;
        if let Some(mask) = self.drop {
            out.par_iter_mut()
                .enumerate()
                .for_each(|(i, v)| *v = mask.apply(i, *v));
        }
        Ok((
            kernel_io::cpu_storage(out, scores.dtype(), self.name())?,
            sl.shape().clone(),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        scores: &candle_core::CudaStorage,
        sl: &Layout,
        bias: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = crate::by_dtype!(
            scores.dtype(),
            self.name(),
            cuda::dropped(*self, scores, sl, bias, bl, None)
        )?;
        Ok((out, sl.shape().clone()))
    }

    fn bwd(
        &self,
        scores: &Tensor,
        bias: &Tensor,
        _probs: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.to_dtype(scores.dtype())?.contiguous()?;
        let ds = scores.apply_op3_no_bwd(bias, &grad, &DroppedGrad(*self))?;
        Ok((Some(ds), None))
    }
}

/// [`Dropped`]'s backward from the scores, the key bias and the result's gradient `g`: the
/// row's probabilities `y` recomputed, `d = g ⊙ mask`, `ds = (y ⊙ (d − Σ d ⊙ y)) · scale`,
/// stored in the scores' dtype.
#[derive(Debug, Clone, Copy)]
struct DroppedGrad(Dropped);

impl CustomOp3 for DroppedGrad {
    fn name(&self) -> &'static str {
        "hone-scores-dropped-grad"
    }

    fn cpu_fwd(
        &self,
        scores: &CpuStorage,
        sl: &Layout,
        bias: &CpuStorage,
        bl: &Layout,
        grad: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let Dropped { softmax, drop } = self.0;
        let s = kernel_io::cpu_as_f32(scores, sl, self.name())?;
        let bias = kernel_io::cpu(bias, bl, self.name())?;
        let g = kernel_io::cpu_as_f32(grad, gl, self.name())?;
        kernel_io::same_len(self.name(), &[s.len(), g.len()])?;
        let y = softmax.cpu_rows(&s, bias, sl)?;
        let keys = sl.dims().last().copied().unwrap_or(1).max(1);
        let mut ds = vec![0f32; y.len()];
        ds.par_chunks_mut(keys)
            .zip(y.par_chunks(keys).zip(g.par_chunks(keys)))
            .enumerate()
            .for_each(|(row, (ds, (y, g)))| {
                // Dropout's backward first (its gradient in f32), then softmax's and the
                // scale's, as the composed ops ran.
                for (j, (d, &g)) in ds.iter_mut().zip(g).enumerate() {
                    *d = match drop {
                        Some(mask) => mask.apply(row * keys + j, g),
                        None => g,
                    };
                }
                let along: f32 = y.iter().zip(ds.iter()).map(|(y, d)| y * d).sum();
                for (d, y) in ds.iter_mut().zip(y) {
                    *d = y * (*d - along) * softmax.scale;
                }
            });
        Ok((
            kernel_io::cpu_storage(ds, scores.dtype(), self.name())?,
            sl.shape().clone(),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        scores: &candle_core::CudaStorage,
        sl: &Layout,
        bias: &candle_core::CudaStorage,
        bl: &Layout,
        grad: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = crate::by_dtype!(
            scores.dtype(),
            self.name(),
            cuda::dropped(self.0, scores, sl, bias, bl, Some((grad, gl)))
        )?;
        Ok((out, sl.shape().clone()))
    }
}

/// `hone_scores_dropped_*` and `hone_scores_dropped_grad_*` of `kernels/scores.cu`, compiled
/// to PTX by the build script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use crate::kernel_io::cuda::{kernel_suffix, typed_view, view};

    /// A block of 32–256 threads (a multiple of 32) for a row of `keys` values.
    fn row_block(keys: usize) -> u32 {
        (keys.div_ceil(32) * 32).clamp(32, 256) as u32
    }

    fn launch_shape(rows: usize, keys: usize) -> LaunchConfig {
        LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (row_block(keys), 1, 1),
            shared_mem_bytes: 0,
        }
    }

    /// [`super::Dropped`]'s forward, or its backward when `grad` is given (the scores'
    /// gradient instead of the probabilities; both in the scores' dtype).
    pub(super) fn dropped<T: CudaDType + DeviceRepr>(
        op: super::Dropped,
        scores: &CudaStorage,
        sl: &Layout,
        bias: &CudaStorage,
        bl: &Layout,
        grad: Option<(&CudaStorage, &Layout)>,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-scores-dropped";
        let dev = scores.device().clone();
        let (s, b) = (typed_view::<T>(scores, sl, name)?, view(bias, bl, name)?);
        let (rows, keys, queries, per_sequence) = super::rows(sl)?;
        // SAFETY: every value is written by the kernel.
        let out = unsafe { dev.alloc::<T>(rows * keys)? };
        if rows == 0 || keys == 0 {
            return Ok(CudaStorage::wrap_cuda_slice(out, dev));
        }
        let suffix = kernel_suffix(scores.dtype(), name)?;
        let (causal, prefix) = match op.softmax.causal {
            Some(prefix) => (1i32, prefix as i32),
            None => (0, 0),
        };
        let (dropping, seed, p, drop_scale) = match op.drop {
            Some(m) => (1i32, m.seed, m.p, m.scale),
            None => (0, 0u64, 0f32, 1f32),
        };
        let g = grad
            .map(|(g, gl)| typed_view::<T>(g, gl, name))
            .transpose()?;
        let kernel = match g {
            Some(_) => format!("hone_scores_dropped_grad_{suffix}"),
            None => format!("hone_scores_dropped_{suffix}"),
        };
        let func = dev.get_or_load_custom_func(&kernel, "hone_scores", crate::ptx::SCORES)?;
        let mut builder = func.builder();
        builder.arg(&s);
        builder.arg(&b);
        if let Some(g) = &g {
            if g.len() != rows * keys {
                candle_core::bail!("{name}: the scores and their gradient differ in size");
            }
            builder.arg(g);
        }
        builder.arg(&out);
        candle_core::builder_arg!(
            builder,
            rows as i32,
            keys as i32,
            queries as i32,
            per_sequence as i32,
            op.softmax.scale,
            causal,
            prefix,
            dropping,
            seed,
            p,
            drop_scale
        );
        // SAFETY: the kernels' signatures are (scores, bias, [grad,] out, rows, keys, queries,
        // rows_per_sequence, scale, causal, prefix, dropping, seed, p, drop_scale); scores,
        // grad and out hold rows · keys values of T, bias keys f32 per sequence (checked by
        // `dropped`).
        unsafe { builder.launch(launch_shape(rows, keys)) }.w()?;
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::graph::constant;
    use candle_core::{Device, Var};

    /// The composed ops the op replaces: scale, key bias, causal bias and clamp, softmax
    /// (candle's primitives, `crate::ops`).
    fn composed(
        scores: &Tensor,
        bias: &Tensor,
        scale: f64,
        causal: Option<usize>,
    ) -> candle_core::Result<Tensor> {
        let (_, _, s, w) = scores.dims4()?;
        let mut x = constant::add_constant(&(scores.to_dtype(DType::F32)? * scale)?, bias)?;
        if let Some(m) = causal {
            let mask: Vec<f32> = (0..s * w)
                .map(|i| if i % w > i / w + m { f32::MIN } else { 0.0 })
                .collect();
            let mask = Tensor::from_vec(mask, (s, w), scores.device())?;
            x = constant::add_constant(&x, &mask)?.maximum(f32::MIN as f64)?;
        }
        crate::ops::softmax_last_dim(&x)
    }

    /// `got` against `want` within `tolerance` of `want`'s largest magnitude.
    fn assert_close(
        got: &Tensor,
        want: &Tensor,
        tolerance: f32,
        what: &str,
    ) -> candle_core::Result<()> {
        let flat = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
        let (got, want) = (flat(got)?, flat(want)?);
        let largest = want.iter().fold(0f32, |m, v| m.max(v.abs()));
        for (i, (g, w)) in got.iter().zip(&want).enumerate() {
            assert!(
                (g - w).abs() <= tolerance * largest,
                "{what}[{i}]: {g} vs {w}"
            );
        }
        Ok(())
    }

    /// Probabilities and the scores' gradient equal the composed ops' within rounding (their
    /// softmax divides where the op multiplies by the inverse), with and without causal
    /// masking and a prefix, in f32 and bf16 (its gradient rounded once).
    #[test]
    fn matches_the_composed_ops() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (b, h, s, m) = (2, 3, 5, 2);
        for causal in [None, Some(0), Some(m)] {
            let w = s + causal.unwrap_or(0);
            for dtype in [DType::F32, DType::BF16] {
                let values: Vec<f32> = (0..b * h * s * w)
                    .map(|i| ((i * 37 % 23) as f32 - 11.0) * 0.4)
                    .collect();
                let x = Var::from_tensor(
                    &Tensor::from_vec(values, (b, h, s, w), &dev)?.to_dtype(dtype)?,
                )?;
                // The second sequence's last key is padding.
                let mut bias = vec![0f32; b * w];
                bias[2 * w - 1] = f32::MIN;
                let bias = Tensor::from_vec(bias, (b, 1, 1, w), &dev)?;
                let got = probabilities(x.as_tensor(), &bias, 0.125, causal)?;
                let want = composed(x.as_tensor(), &bias, 0.125, causal)?;
                assert_eq!(got.dtype(), DType::F32);
                let what = format!("{causal:?} {dtype:?}");
                assert_close(&got, &want, 1e-6, &format!("{what} probabilities"))?;
                let flat = |t: &Tensor| t.flatten_all()?.to_vec1::<f32>();
                if let Some(prefix) = causal {
                    // Query 0 sees the prefix and itself only.
                    let first_row = &flat(&got)?[..w];
                    assert!(first_row[prefix + 1..].iter().all(|&p| p == 0.0));
                }
                let weights = Tensor::rand(-1f32, 1., got.shape(), &dev)?;
                let dx = (got * &weights)?.sum_all()?.backward()?;
                let reference = (want * &weights)?.sum_all()?.backward()?;
                let (dx, reference) = (
                    dx.get(&x).expect("dx"),
                    reference.get(&x).expect("reference"),
                );
                assert_eq!(dx.dtype(), dtype);
                // bf16 keeps 8 bits: the f32 gradients' last bits may round either way.
                let tolerance = if dtype == DType::F32 { 1e-5 } else { 1e-2 };
                assert_close(dx, reference, tolerance, &format!("{what} gradient"))?;
            }
        }
        Ok(())
    }

    /// Through dropout (or none), in the scores' dtype: the composed softmax, hash dropout
    /// and cast, values and gradients to the bit; nothing else is kept for the backward.
    #[test]
    fn dropped_matches_softmax_dropout_and_cast() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (b, h, s) = (2, 2, 7);
        for (causal, drop) in [
            (None, None),
            (None, Some((7u64, 0.25))),
            (Some(1), Some((9, 0.5))),
        ] {
            let w = s + causal.unwrap_or(0);
            for dtype in [DType::F32, DType::BF16, DType::F16] {
                let values: Vec<f32> = (0..b * h * s * w)
                    .map(|i| ((i * 29 % 31) as f32 - 15.0) * 0.3)
                    .collect();
                let x = Var::from_tensor(
                    &Tensor::from_vec(values, (b, h, s, w), &dev)?.to_dtype(dtype)?,
                )?;
                let mut bias = vec![0f32; b * w];
                bias[w - 1] = f32::MIN;
                let bias = Tensor::from_vec(bias, (b, 1, 1, w), &dev)?;
                let got = dropped(x.as_tensor(), &bias, 0.3, causal, drop)?;
                let probs = probabilities(x.as_tensor(), &bias, 0.3, causal)?;
                let want = match drop {
                    Some((seed, p)) => crate::graph::dropout::dropout(&probs, seed, p)?,
                    None => probs,
                }
                .to_dtype(dtype)?;
                assert_eq!(got.dtype(), dtype);
                let flat = |t: &Tensor| t.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>();
                assert_eq!(flat(&got)?, flat(&want)?, "{causal:?} {drop:?} {dtype:?}");
                if drop.is_some() {
                    assert!(flat(&got)?.contains(&0.0), "some probabilities dropped");
                }
                let weights = Tensor::rand(-1f32, 1., got.shape(), &dev)?.to_dtype(dtype)?;
                let loss = |t: Tensor| (t * &weights)?.to_dtype(DType::F32)?.sum_all()?.backward();
                let (dx, reference) = (loss(got)?, loss(want)?);
                assert_eq!(
                    flat(dx.get(&x).expect("dx"))?,
                    flat(reference.get(&x).expect("reference"))?,
                    "{causal:?} {drop:?} {dtype:?}"
                );
            }
        }
        Ok(())
    }

    /// A NaN score is not masked away: its row's probabilities are NaN, as the composed ops
    /// gave (and the loss says so), causal or not, dropped or not.
    #[test]
    fn a_nan_score_reaches_the_probabilities() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let mut values = vec![0.5f32; 2 * 3];
        values[1] = f32::NAN;
        let x = Tensor::from_vec(values, (1, 1, 2, 3), &dev)?;
        let bias = Tensor::zeros((1, 1, 1, 3), DType::F32, &dev)?;
        for causal in [None, Some(0)] {
            for got in [
                probabilities(&x, &bias, 1.0, causal)?,
                dropped(&x, &bias, 1.0, causal, Some((3, 0.1)))?,
            ] {
                let rows = got.squeeze(0)?.squeeze(0)?.to_vec2::<f32>()?;
                assert!(rows[0].iter().any(|p| p.is_nan()), "{causal:?}: {rows:?}");
                assert!(rows[1].iter().all(|p| !p.is_nan()), "{causal:?}: {rows:?}");
            }
        }
        Ok(())
    }

    /// A key bias of the wrong size is an error, not a read past its end.
    #[test]
    fn a_key_bias_of_the_wrong_size_is_an_error() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let scores = Tensor::zeros((2, 1, 3, 4), DType::F32, &dev)?;
        let bias = Tensor::zeros((1, 1, 1, 4), DType::F32, &dev)?;
        assert!(probabilities(&scores, &bias, 1.0, None).is_err());
        Ok(())
    }
}
