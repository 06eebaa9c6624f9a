//! Cross-entropy of logit rows against their labels in one op each way: each row's loss
//! `(1 − ε)·(lse − x_y) + ε·(lse − mean x)` (`lse` the row's log-sum-exp, `ε` label smoothing),
//! computed in f32 from logits in any float dtype; the backward pass recomputes the row's
//! softmax `p` and gives `g · (p − (1 − ε)·[j = y] − ε / classes)` in the logits' dtype. Composed
//! (a cast to f32, the composed `log_softmax` of `crate::ops`, a gather and sums) it kept an f32 copy of the
//! logits and three f32 tensors of their size for the backward pass, and as many gradients of
//! that size came back: a language model's logits are `[tokens × vocabulary]`, the largest
//! tensors of its step (SmolLM2's 49,152 columns, Llama 3's 128,256).
//!
//! The CPU computes a row with the CPU path's own kernels (`cpu::kernels::cross_entropy`,
//! in f64); a GPU runs `kernels/cross_entropy.cu`, a block per row, in f32.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::cpu::kernels;
use crate::kernel_io;

/// Each row's cross-entropy (f32, `[rows]`) of `logits` (`[rows, classes]`, f32, bf16 or f16)
/// against `labels` (u32, `[rows]`, each below `classes`), with label smoothing `smoothing`.
/// A label past the classes is an error on the CPU; a GPU, whose labels are not read on the
/// host, gives that row a NaN loss and gradient (callers check labels on the host first, as
/// `graph::autograd::cross_entropy_sum` does). A NaN logit makes its row's loss NaN.
pub fn row_losses(logits: &Tensor, labels: &Tensor, smoothing: f64) -> candle_core::Result<Tensor> {
    let (rows, _) = logits.dims2()?;
    if labels.dtype() != DType::U32 || labels.dims() != [rows] {
        candle_core::bail!(
            "hone-cross-entropy: labels of {:?} {:?} for {rows} rows",
            labels.dtype(),
            labels.dims()
        );
    }
    if !(0.0..=1.0).contains(&smoothing) {
        candle_core::bail!("hone-cross-entropy: label smoothing {smoothing} is not in [0, 1]");
    }
    logits.contiguous()?.apply_op2(
        &labels.contiguous()?,
        CrossEntropy {
            smoothing: smoothing as f32,
        },
    )
}

/// [`row_losses`]'s op.
#[derive(Debug, Clone, Copy)]
struct CrossEntropy {
    smoothing: f32,
}

/// Fails unless every label is below the number of classes.
fn check_labels(labels: &[u32], classes: usize, op: &str) -> candle_core::Result<()> {
    match labels.iter().find(|&&y| y as usize >= classes) {
        Some(y) => candle_core::bail!("{op}: label {y} is past the {classes} classes"),
        None => Ok(()),
    }
}

/// `[rows, classes]` of a logits layout.
fn rows_classes(layout: &Layout) -> candle_core::Result<(usize, usize)> {
    layout.shape().dims2()
}

/// The logits as f32 and the labels, a label per row, each below the classes.
fn cpu_inputs<'a, 'b>(
    logits: &'a CpuStorage,
    ll: &Layout,
    labels: &'b CpuStorage,
    yl: &Layout,
    op: &str,
) -> candle_core::Result<(std::borrow::Cow<'a, [f32]>, &'b [u32])> {
    let (rows, classes) = rows_classes(ll)?;
    let x = kernel_io::cpu_as_f32(logits, ll, op)?;
    let labels = kernel_io::cpu_u32(labels, yl, op)?;
    check_labels(labels, classes, op)?;
    kernel_io::same_len(op, &[rows, labels.len()])?;
    Ok((x, labels))
}

impl CustomOp2 for CrossEntropy {
    fn name(&self) -> &'static str {
        "hone-cross-entropy"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        ll: &Layout,
        labels: &CpuStorage,
        yl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, classes) = rows_classes(ll)?;
        let (x, labels) = cpu_inputs(logits, ll, labels, yl, self.name())?;
        let mut out = vec![0f32; rows];
        if classes > 0 {
            out.par_iter_mut()
                .zip(x.par_chunks(classes).zip(labels.par_iter()))
                .for_each(|(o, (x, &y))| {
                    let log_sum = kernels::log_sum_exp(x);
                    *o =
                        kernels::smoothed_nll(x, y as usize, log_sum, self.smoothing as f64) as f32;
                });
        }
        Ok((CpuStorage::F32(out), Shape::from(rows)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        logits: &candle_core::CudaStorage,
        ll: &Layout,
        labels: &candle_core::CudaStorage,
        yl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let rows = rows_classes(ll)?.0;
        let out = crate::by_dtype!(
            logits.dtype(),
            self.name(),
            cuda::launch(*self, logits, ll, labels, yl, None)
        )?;
        Ok((out, Shape::from(rows)))
    }

    fn bwd(
        &self,
        logits: &Tensor,
        labels: &Tensor,
        _losses: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.to_dtype(DType::F32)?.contiguous()?;
        let dx = logits.apply_op3_no_bwd(labels, &grad, &CrossEntropyGrad(*self))?;
        Ok((Some(dx), None))
    }
}

/// [`CrossEntropy`]'s backward from the logits, the labels and each row's loss gradient (f32):
/// the logits' gradient in their dtype.
#[derive(Debug, Clone, Copy)]
struct CrossEntropyGrad(CrossEntropy);

impl CustomOp3 for CrossEntropyGrad {
    fn name(&self) -> &'static str {
        "hone-cross-entropy-grad"
    }

    fn cpu_fwd(
        &self,
        logits: &CpuStorage,
        ll: &Layout,
        labels: &CpuStorage,
        yl: &Layout,
        grad: &CpuStorage,
        gl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (rows, classes) = rows_classes(ll)?;
        let (x, labels) = cpu_inputs(logits, ll, labels, yl, self.name())?;
        let g = kernel_io::cpu(grad, gl, self.name())?;
        kernel_io::same_len(self.name(), &[rows, g.len()])?;
        let mut dx = vec![0f32; x.len()];
        if classes > 0 {
            dx.par_chunks_mut(classes)
                .zip(x.par_chunks(classes))
                .zip(labels.par_iter().zip(g.par_iter()))
                .for_each(|((dx, x), (&y, &g))| {
                    let smoothing = self.0.smoothing as f64;
                    kernels::cross_entropy(x, &[y], classes, g as f64, smoothing, dx);
                });
        }
        Ok((
            kernel_io::cpu_storage(dx, logits.dtype(), self.name())?,
            ll.shape().clone(),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        logits: &candle_core::CudaStorage,
        ll: &Layout,
        labels: &candle_core::CudaStorage,
        yl: &Layout,
        grad: &candle_core::CudaStorage,
        gl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = crate::by_dtype!(
            logits.dtype(),
            self.name(),
            cuda::launch(self.0, logits, ll, labels, yl, Some((grad, gl)))
        )?;
        Ok((out, ll.shape().clone()))
    }
}

/// `hone_cross_entropy_*` and `hone_cross_entropy_grad_*` of `kernels/cross_entropy.cu`,
/// compiled to PTX by the build script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use crate::kernel_io::cuda::{kernel_suffix, typed_view};

    /// [`super::CrossEntropy`]'s forward (each row's f32 loss), or its backward when `grad`
    /// is given (the logits' gradient in their dtype).
    pub(super) fn launch<T: CudaDType + DeviceRepr>(
        op: super::CrossEntropy,
        logits: &CudaStorage,
        ll: &Layout,
        labels: &CudaStorage,
        yl: &Layout,
        grad: Option<(&CudaStorage, &Layout)>,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-cross-entropy";
        let dev = logits.device().clone();
        let (rows, classes) = super::rows_classes(ll)?;
        if classes == 0 && rows > 0 {
            candle_core::bail!("{name}: {rows} rows of no classes");
        }
        let x = typed_view::<T>(logits, ll, name)?;
        let y = typed_view::<u32>(labels, yl, name)?;
        let g = grad
            .map(|(g, gl)| typed_view::<f32>(g, gl, name))
            .transpose()?;
        if y.len() != rows || g.as_ref().is_some_and(|g| g.len() != rows) {
            candle_core::bail!("{name}: a label and a gradient per row of logits");
        }
        let suffix = kernel_suffix(logits.dtype(), name)?;
        let kernel = match g {
            Some(_) => format!("hone_cross_entropy_grad_{suffix}"),
            None => format!("hone_cross_entropy_{suffix}"),
        };
        let func =
            dev.get_or_load_custom_func(&kernel, "hone_cross_entropy", crate::ptx::CROSS_ENTROPY)?;
        // Block threads for a row: 32–1,024, a multiple of 32.
        let threads = (classes.div_ceil(32) * 32).clamp(32, 1024) as u32;
        let config = LaunchConfig {
            grid_dim: (rows as u32, 1, 1),
            block_dim: (threads, 1, 1),
            shared_mem_bytes: 0,
        };
        let out = match &g {
            Some(g) => {
                // SAFETY: every value is written by the kernel.
                let dx = unsafe { dev.alloc::<T>(rows * classes)? };
                if rows > 0 && classes > 0 {
                    let mut builder = func.builder();
                    builder.arg(&x);
                    builder.arg(&y);
                    builder.arg(g);
                    builder.arg(&dx);
                    candle_core::builder_arg!(builder, rows as i32, classes as i32, op.smoothing);
                    // SAFETY: (logits, labels, grad, dx, rows, classes, smoothing): logits and
                    // dx hold rows · classes values of T, labels and grad one per row (checked
                    // above); a label past `classes` is read nowhere (a NaN gradient).
                    unsafe { builder.launch(config) }.w()?;
                }
                CudaStorage::wrap_cuda_slice(dx, dev)
            }
            None => {
                // SAFETY: every value is written by the kernel.
                let losses = unsafe { dev.alloc::<f32>(rows)? };
                if rows > 0 && classes > 0 {
                    let mut builder = func.builder();
                    builder.arg(&x);
                    builder.arg(&y);
                    builder.arg(&losses);
                    candle_core::builder_arg!(builder, rows as i32, classes as i32, op.smoothing);
                    // SAFETY: (logits, labels, losses, rows, classes, smoothing): logits hold
                    // rows · classes values of T, labels and losses one per row (checked
                    // above); a label past `classes` is read nowhere (a NaN loss).
                    unsafe { builder.launch(config) }.w()?;
                }
                CudaStorage::wrap_cuda_slice(losses, dev)
            }
        };
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The composed ops the op replaces: f32 cast, `log_softmax`, the label's value and the
    /// smoothing term, per row.
    fn composed(logits: &Tensor, labels: &[u32], smoothing: f64) -> Tensor {
        let n = labels.len();
        let log_probs =
            crate::ops::log_softmax_last_dim(&logits.to_dtype(DType::F32).unwrap()).unwrap();
        let ids = Tensor::from_vec(labels.to_vec(), (n, 1), logits.device()).unwrap();
        let picked = log_probs
            .gather(&ids, 1)
            .unwrap()
            .squeeze(1)
            .unwrap()
            .neg()
            .unwrap();
        let classes = logits.dims2().unwrap().1 as f64;
        let spread = (log_probs.sum(1).unwrap().neg().unwrap() / classes).unwrap();
        ((picked * (1.0 - smoothing)).unwrap() + (spread * smoothing).unwrap()).unwrap()
    }

    fn max_diff(a: &Tensor, b: &Tensor) -> f32 {
        let a = a.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
        let b = b.to_dtype(DType::F32).unwrap().flatten_all().unwrap();
        (a - b)
            .unwrap()
            .abs()
            .unwrap()
            .max(0)
            .unwrap()
            .to_scalar()
            .unwrap()
    }

    #[test]
    fn losses_and_gradients_match_the_composed_ops() {
        let dev = Device::Cpu;
        let (rows, classes) = (7, 301);
        let values: Vec<f32> = (0..rows * classes)
            .map(|i| ((i * 7919 % 1000) as f32 / 100.0 - 5.0) * if i % 13 == 0 { 3.0 } else { 1.0 })
            .collect();
        let labels: Vec<u32> = (0..rows as u32).map(|r| r * 41 % classes as u32).collect();
        // Each row's loss weighted, so that each row's gradient differs.
        let weights: Vec<f32> = (0..rows).map(|r| 0.5 + r as f32).collect();
        let weights = Tensor::from_vec(weights, rows, &dev).unwrap();
        for dtype in [DType::F32, DType::BF16, DType::F16] {
            for smoothing in [0.0, 0.1] {
                let x = Var::from_tensor(
                    &Tensor::from_vec(values.clone(), (rows, classes), &dev)
                        .unwrap()
                        .to_dtype(dtype)
                        .unwrap(),
                )
                .unwrap();
                let ids = Tensor::from_vec(labels.clone(), rows, &dev).unwrap();
                let fused = row_losses(x.as_tensor(), &ids, smoothing).unwrap();
                let reference = composed(x.as_tensor(), &labels, smoothing);
                assert_eq!(fused.dtype(), DType::F32);
                assert!(
                    max_diff(&fused, &reference) < 1e-4,
                    "{dtype:?} ε {smoothing}"
                );
                let grad = |loss: &Tensor| {
                    let total = (loss * &weights).unwrap().sum_all().unwrap();
                    total.backward().unwrap().get(&x).unwrap().clone()
                };
                let (g_fused, g_reference) = (grad(&fused), grad(&reference));
                assert_eq!(g_fused.dtype(), dtype);
                // Within a unit in the dtype's last place of the largest gradient (the
                // composed ops round the f32 gradient once too, from other f32 sums).
                let tolerance = match dtype {
                    DType::F32 => 1e-6,
                    DType::F16 => 1e-3,
                    _ => 8e-3,
                };
                let largest = max_diff(&g_reference, &g_reference.zeros_like().unwrap());
                let d = max_diff(&g_fused, &g_reference) / largest;
                assert!(
                    d < tolerance,
                    "{dtype:?} ε {smoothing}: gradients differ by {d} (relative)"
                );
            }
        }
    }

    #[test]
    fn a_nan_logit_makes_its_row_nan() {
        let dev = Device::Cpu;
        let mut values = vec![0.5f32; 2 * 4];
        values[1] = f32::NAN;
        for smoothing in [0.0, 0.2] {
            let x =
                Var::from_tensor(&Tensor::from_vec(values.clone(), (2, 4), &dev).unwrap()).unwrap();
            let ids = Tensor::from_vec(vec![0u32, 3], 2, &dev).unwrap();
            let losses = row_losses(x.as_tensor(), &ids, smoothing).unwrap();
            let l = losses.to_vec1::<f32>().unwrap();
            assert!(l[0].is_nan() && (l[1] - 4f32.ln()).abs() < 1e-6, "{l:?}");
            let g = losses.sum_all().unwrap().backward().unwrap();
            let g = g.get(&x).unwrap().to_vec2::<f32>().unwrap();
            assert!(g[0].iter().all(|v| v.is_nan()), "{g:?}");
            assert!(g[1].iter().all(|v| v.is_finite()), "{g:?}");
        }
    }

    /// `cross_entropy_sum` (rows without a label skipped, label smoothing) against the
    /// composed ops it replaced, value and gradient.
    #[test]
    fn the_summed_loss_matches_the_composed_one() {
        use crate::graph::autograd::cross_entropy_sum;
        let dev = Device::Cpu;
        let (rows, classes) = (6, 11);
        let values: Vec<f32> = (0..rows * classes)
            .map(|i| (i * 37 % 23) as f32 * 0.3 - 3.0)
            .collect();
        let none = crate::graph::IGNORE_LABEL;
        let labels = [3, none, 0, 10, none, 7];
        let kept: Vec<u32> = vec![0, 2, 3, 5];
        let ids: Vec<u32> = kept.iter().map(|&r| labels[r as usize]).collect();
        for smoothing in [0.0, 0.1] {
            let x = Tensor::from_vec(values.clone(), (rows, classes), &dev).unwrap();
            let x = Var::from_tensor(&x).unwrap();
            let fused = cross_entropy_sum(x.as_tensor(), &labels, smoothing).unwrap();
            let index = Tensor::new(kept.as_slice(), &dev).unwrap();
            let picked = x.as_tensor().index_select(&index, 0).unwrap();
            let reference = composed(&picked, &ids, smoothing).sum_all().unwrap();
            let a = fused.to_scalar::<f32>().unwrap();
            let b = reference.to_scalar::<f32>().unwrap();
            assert!((a - b).abs() < 1e-5 * b.abs(), "ε {smoothing}: {a} vs {b}");
            let g = |t: &Tensor| t.backward().unwrap().get(&x).unwrap().clone();
            let (g_fused, g_reference) = (g(&fused), g(&reference));
            assert!(max_diff(&g_fused, &g_reference) < 1e-6, "ε {smoothing}");
            // The unlabeled rows get no gradient.
            let by_row = g_fused.to_vec2::<f32>().unwrap();
            assert!(by_row[1].iter().chain(&by_row[4]).all(|v| *v == 0.0));
        }
    }

    #[test]
    fn bad_labels_are_errors() {
        let dev = Device::Cpu;
        let x = Tensor::zeros((2, 3), DType::F32, &dev).unwrap();
        let past = Tensor::from_vec(vec![0u32, 3], 2, &dev).unwrap();
        let err = row_losses(&x, &past, 0.0).unwrap_err().to_string();
        assert!(err.contains("label 3 is past the 3 classes"), "{err}");
        let short = Tensor::from_vec(vec![0u32], 1, &dev).unwrap();
        assert!(row_losses(&x, &short, 0.0).is_err());
        let ok = Tensor::from_vec(vec![0u32, 2], 2, &dev).unwrap();
        assert!(row_losses(&x, &ok, 1.5).is_err());
        let uniform = row_losses(&x, &ok, 0.0).unwrap().to_vec1::<f32>().unwrap();
        assert!(uniform.iter().all(|l| (l - 3f32.ln()).abs() < 1e-6));
    }
}
