//! AdamW's update of a tensor parameter in place on the CPU: three operations (the first
//! moment, the second, the weights), where the update composed from candle's tensor ops wrote
//! a new tensor for each of about seventeen. The arithmetic is the CPU graph's
//! ([`super::adamw_host`]), in the same order, so both give the same bits. On an NVIDIA GPU
//! every parameter's update is one kernel instead (`super::multi_tensor`).
//!
//! f32 and contiguous tensors on the CPU or an NVIDIA GPU; [`supports`] says when, and the
//! optimizer composes the update from tensor ops otherwise.

use candle_core::{CpuStorage, DType, InplaceOp2, InplaceOp3, Layout, Tensor};
use rayon::prelude::*;

use super::{AdamUpdate, CHUNK};
use crate::kernel_io;

/// Whether `p`, `g`, `m` and `v` can take the in-place update (here on the CPU, in
/// `super::multi_tensor`'s one kernel on a GPU).
pub(super) fn supports(tensors: [&Tensor; 4]) -> bool {
    let device = tensors[0].device();
    (device.is_cpu() || device.is_cuda())
        && tensors
            .iter()
            .all(|t| t.dtype() == DType::F32 && t.is_contiguous() && t.dims() == tensors[0].dims())
}

/// One AdamW update of `p` from the gradient `g` (times `grad_scale`), its moments `m` and
/// `v` updated in place too.
pub(super) fn adamw(
    p: &Tensor,
    g: &Tensor,
    m: &Tensor,
    v: &Tensor,
    u: AdamUpdate,
    grad_scale: f32,
) -> candle_core::Result<()> {
    m.inplace_op2(
        g,
        &Moment {
            beta: u.beta1,
            weight: u.one_minus_beta1,
            scale: grad_scale,
            square: false,
        },
    )?;
    v.inplace_op2(
        g,
        &Moment {
            beta: u.beta2,
            weight: u.one_minus_beta2,
            scale: grad_scale,
            square: true,
        },
    )?;
    p.inplace_op3(m, v, &Apply(u))
}

/// Each tensor's sum of squares (one operation a tensor, into one buffer), when all are f32
/// on the CPU; `None` otherwise.
pub(super) fn sums_of_squares(tensors: &[&Tensor]) -> candle_core::Result<Option<Vec<f32>>> {
    let Some(first) = tensors.first() else {
        return Ok(Some(Vec::new()));
    };
    let device = first.device();
    if !device.is_cpu()
        || tensors
            .iter()
            .any(|t| t.dtype() != DType::F32 || !t.device().same_device(device))
    {
        return Ok(None);
    }
    let totals = Tensor::zeros(tensors.len(), DType::F32, device)?;
    for (slot, t) in tensors.iter().enumerate() {
        totals.inplace_op2(&t.contiguous()?, &SumOfSquares { slot })?;
    }
    Ok(Some(totals.to_vec1::<f32>()?))
}

/// `totals[slot] ← Σ x²` over a tensor.
struct SumOfSquares {
    slot: usize,
}

impl InplaceOp2 for SumOfSquares {
    fn name(&self) -> &'static str {
        "hone-sum-of-squares"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        x: &CpuStorage,
        x_l: &Layout,
    ) -> candle_core::Result<()> {
        let totals = kernel_io::cpu_mut(dst, dst_l, self.name())?;
        let x = kernel_io::cpu(x, x_l, self.name())?;
        let sum: f64 = x
            .par_chunks(CHUNK)
            .map(|c| c.iter().map(|&v| (v as f64) * (v as f64)).sum::<f64>())
            .sum();
        match totals.get_mut(self.slot) {
            Some(t) => *t = sum as f32,
            None => candle_core::bail!("{}: no slot {}", self.name(), self.slot),
        }
        Ok(())
    }
}

/// `moment ← beta·moment + weight·x` (or `weight·x·x`), `x` the gradient times `scale`.
struct Moment {
    beta: f32,
    weight: f32,
    scale: f32,
    square: bool,
}

impl Moment {
    fn at(&self, moment: f32, grad: f32) -> f32 {
        let g = grad * self.scale;
        let term = if self.square {
            self.weight * g * g
        } else {
            self.weight * g
        };
        self.beta * moment + term
    }
}

/// `p ← p·decay − step_size·m / (√v / √(1−β₂ᵗ) + ε)`.
struct Apply(AdamUpdate);

impl Apply {
    fn at(&self, p: f32, m: f32, v: f32) -> f32 {
        let u = &self.0;
        let denom = v.sqrt() / u.bias2_sqrt + u.eps;
        p * u.decay - u.step_size * m / denom
    }
}

impl InplaceOp2 for Moment {
    fn name(&self) -> &'static str {
        "hone-adam-moment"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        grad: &CpuStorage,
        grad_l: &Layout,
    ) -> candle_core::Result<()> {
        let moment = kernel_io::cpu_mut(dst, dst_l, self.name())?;
        let grad = kernel_io::cpu(grad, grad_l, self.name())?;
        kernel_io::same_len(self.name(), &[moment.len(), grad.len()])?;
        moment
            .par_chunks_mut(CHUNK)
            .zip(grad.par_chunks(CHUNK))
            .for_each(|(m, g)| m.iter_mut().zip(g).for_each(|(m, &g)| *m = self.at(*m, g)));
        Ok(())
    }
}

impl InplaceOp3 for Apply {
    fn name(&self) -> &'static str {
        "hone-adamw-apply"
    }

    fn cpu_fwd(
        &self,
        dst: &mut CpuStorage,
        dst_l: &Layout,
        m: &CpuStorage,
        m_l: &Layout,
        v: &CpuStorage,
        v_l: &Layout,
    ) -> candle_core::Result<()> {
        let p = kernel_io::cpu_mut(dst, dst_l, self.name())?;
        let (m, v) = (
            kernel_io::cpu(m, m_l, self.name())?,
            kernel_io::cpu(v, v_l, self.name())?,
        );
        kernel_io::same_len(self.name(), &[p.len(), m.len(), v.len()])?;
        p.par_chunks_mut(CHUNK)
            .zip(m.par_chunks(CHUNK).zip(v.par_chunks(CHUNK)))
            .for_each(|(p, (m, v))| {
                for ((p, &m), &v) in p.iter_mut().zip(m).zip(v) {
                    *p = self.at(*p, m, v);
                }
            });
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::Device;

    fn update(t: u64) -> AdamUpdate {
        AdamUpdate::new(0.9, 0.999, 1e-8, 1e-3, 0.01, t)
    }

    #[test]
    fn the_in_place_update_gives_the_host_updates_bits() -> candle_core::Result<()> {
        let n = 70_007; // more than two parallel chunks, not a multiple of one, 7 rows
        let values = |k: f32| (0..n).map(|i| ((i as f32) * k).sin()).collect::<Vec<f32>>();
        let (p0, m0, v0) = (values(0.37), values(0.11), values(0.05));
        let v0: Vec<f32> = v0.iter().map(|x| x * x).collect();
        let g = values(0.73);
        let (mut p, mut m, mut v) = (p0.clone(), m0.clone(), v0.clone());
        let scale = 0.5;
        for t in 1..=3 {
            super::super::adamw_host(&mut p, &g, &mut m, &mut v, update(t), scale);
        }
        let dev = Device::Cpu;
        let tensor = |x: &[f32]| Tensor::from_slice(x, (7, n / 7), &dev);
        let (pt, mt, vt, gt) = (tensor(&p0)?, tensor(&m0)?, tensor(&v0)?, tensor(&g)?);
        assert!(supports([&pt, &gt, &mt, &vt]));
        for t in 1..=3 {
            adamw(&pt, &gt, &mt, &vt, update(t), scale)?;
        }
        assert_eq!(pt.flatten_all()?.to_vec1::<f32>()?, p);
        assert_eq!(mt.flatten_all()?.to_vec1::<f32>()?, m);
        assert_eq!(vt.flatten_all()?.to_vec1::<f32>()?, v);
        Ok(())
    }

    #[test]
    fn sums_of_squares_one_per_tensor() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let a = Tensor::new(&[[3f32, 4.0], [1.0, 2.0]], &dev)?;
        let b = Tensor::new(&[0.5f32, -0.5], &dev)?;
        let strided = a.t()?;
        let totals = sums_of_squares(&[&a, &b, &strided])?.expect("f32 on the CPU");
        assert_eq!(totals, vec![30.0, 0.5, 30.0]);
        let half = b.to_dtype(DType::BF16)?;
        assert!(sums_of_squares(&[&a, &half])?.is_none());
        Ok(())
    }

    #[test]
    fn strided_or_other_dtypes_take_the_composed_update() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 6), DType::F32, &dev)?;
        let strided = x.t()?;
        let half = x.to_dtype(DType::BF16)?;
        assert!(!supports([&strided, &strided, &strided, &strided]));
        assert!(!supports([&half, &half, &half, &half]));
        assert!(!supports([&x, &x, &x, &x.narrow(1, 0, 3)?]));
        Ok(())
    }
}
