//! A gated feed-forward's SiLU gate (`silu(gate) · up`, Llama's and Qwen2's MLP) on the
//! autograd graph as one op each way.
//!
//! Composed, candle records the SiLU and the product forward and, backward, SiLU's derivative
//! through its sigmoid (an exponential, a negation, sums and products) and both sides of the
//! product, keeping the SiLU's output for it. Here the forward pass is one kernel and the
//! backward one kernel writing both gradients (`[2 × n]`: the gate's, then the up
//! projection's), from the gate and up values alone. f32, bf16 and f16, computed in f32 and
//! rounded once (`kernels/gated.cu` on a GPU); other dtypes and Apple GPUs take candle's ops.

use crate::kernel_io;
use crate::ops::Activation;
use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, CustomOp3, DType, Layout, Shape, Tensor};

/// `silu(gate) · up` (the two of one shape and dtype).
pub fn silu_gated(gate: &Tensor, up: &Tensor) -> candle_core::Result<Tensor> {
    match gate.dtype() {
        DType::F32 | DType::BF16 | DType::F16
            if !gate.device().is_metal() && gate.dtype() == up.dtype() =>
        {
            gate.contiguous()?.apply_op2(&up.contiguous()?, SiluGated)
        }
        _ => gate.silu()?.mul(up),
    }
}

struct SiluGated;

impl CustomOp2 for SiluGated {
    fn name(&self) -> &'static str {
        "hone-swiglu"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gl: &Layout,
        up: &CpuStorage,
        ul: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dtype = gate.dtype();
        let g = kernel_io::cpu_as_f32(gate, gl, self.name())?;
        let u = kernel_io::cpu_as_f32(up, ul, self.name())?;
        kernel_io::same_len(self.name(), &[g.len(), u.len()])?;
        // The CPU graph's own kernel.
        let mut out = vec![0f32; g.len()];
        crate::cpu::decoder::gated(&mut out, &g, &u, Activation::Silu);
        let out = kernel_io::cpu_storage(out, dtype, self.name())?;
        Ok((out, gl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gate: &candle_core::CudaStorage,
        gl: &Layout,
        up: &candle_core::CudaStorage,
        ul: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = crate::by_dtype!(
            gate.dtype(),
            self.name(),
            cuda::launch(gate, gl, up, ul, None)
        )?;
        Ok((out, gl.shape().clone()))
    }

    fn bwd(
        &self,
        gate: &Tensor,
        up: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let grad = grad.to_dtype(gate.dtype())?.contiguous()?;
        let both = gate.apply_op3_no_bwd(up, &grad, &SiluGatedGrad)?;
        Ok((
            Some(both.get(0)?.reshape(gate.shape())?),
            Some(both.get(1)?.reshape(up.shape())?),
        ))
    }
}

/// [`SiluGated`]'s backward from the gate, up and the result's gradient `d`: `[2, n]`, first
/// `dgate = d · up · σ(g) · (1 + g · (1 − σ(g)))`, then `dup = d · silu(g)`.
struct SiluGatedGrad;

impl CustomOp3 for SiluGatedGrad {
    fn name(&self) -> &'static str {
        "hone-swiglu-grad"
    }

    fn cpu_fwd(
        &self,
        gate: &CpuStorage,
        gl: &Layout,
        up: &CpuStorage,
        ul: &Layout,
        grad: &CpuStorage,
        dl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dtype = gate.dtype();
        let g = kernel_io::cpu_as_f32(gate, gl, self.name())?;
        let u = kernel_io::cpu_as_f32(up, ul, self.name())?;
        let d = kernel_io::cpu_as_f32(grad, dl, self.name())?;
        let n = g.len();
        kernel_io::same_len(self.name(), &[n, u.len(), d.len()])?;
        // The CPU graph's own backward, both halves of one buffer.
        let mut both = vec![0f32; 2 * n];
        let (dg, du) = both.split_at_mut(n);
        crate::cpu::decoder::gated_backward(dg, du, &d, &g, &u, Activation::Silu);
        let both = kernel_io::cpu_storage(both, dtype, self.name())?;
        Ok((both, Shape::from((2, n))))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        gate: &candle_core::CudaStorage,
        gl: &Layout,
        up: &candle_core::CudaStorage,
        ul: &Layout,
        grad: &candle_core::CudaStorage,
        dl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let both = crate::by_dtype!(
            gate.dtype(),
            self.name(),
            cuda::launch(gate, gl, up, ul, Some((grad, dl)))
        )?;
        Ok((both, Shape::from((2, gl.shape().elem_count()))))
    }
}

/// `hone_swiglu_{f32,bf16,f16}` and `hone_swiglu_grad_*` of `kernels/gated.cu`, compiled to
/// PTX by the build script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use crate::kernel_io::cuda::{elementwise, kernel_suffix, typed_view};
    use crate::kernel_io::same_len;

    /// The forward kernel, or with `grad` the backward one (its output twice as long).
    pub(super) fn launch<T: CudaDType + DeviceRepr>(
        gate: &CudaStorage,
        gl: &Layout,
        up: &CudaStorage,
        ul: &Layout,
        grad: Option<(&CudaStorage, &Layout)>,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-swiglu";
        let dev = gate.device().clone();
        let (gs, us) = (
            typed_view::<T>(gate, gl, name)?,
            typed_view::<T>(up, ul, name)?,
        );
        let n = gs.len();
        same_len(name, &[n, us.len()])?;
        let ds = grad
            .map(|(d, dl)| typed_view::<T>(d, dl, name))
            .transpose()?;
        if let Some(ds) = &ds {
            same_len(name, &[n, ds.len()])?;
        }
        let outputs = if ds.is_some() { 2 } else { 1 };
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(outputs * n)? };
        if let Some(cfg) = elementwise(n) {
            let suffix = kernel_suffix(gate.dtype(), name)?;
            let kernel = match ds {
                Some(_) => format!("hone_swiglu_grad_{suffix}"),
                None => format!("hone_swiglu_{suffix}"),
            };
            let func = dev.get_or_load_custom_func(&kernel, "hone_gated", crate::ptx::GATED)?;
            let mut builder = func.builder();
            builder.arg(&n);
            builder.arg(&gs);
            builder.arg(&us);
            if let Some(ds) = &ds {
                builder.arg(ds);
            }
            builder.arg(&out);
            // SAFETY: the kernels' signatures are (n, gate, up, out) and (n, gate, up, grad,
            // both); the inputs hold n values of T, the output n or 2n.
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The op's value and both gradients against candle's `silu(gate) · up`, f32 and bf16.
    #[test]
    fn value_and_gradients_match_candles_composed_gate() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let n = 3000;
        let gs: Vec<f32> = (0..n).map(|i| (i as f32 - 1500.0) / 200.0).collect();
        let us: Vec<f32> = (0..n).map(|i| ((i * 13) % 29) as f32 / 9.0 - 1.5).collect();
        let w = Tensor::from_vec(
            (0..n)
                .map(|i| ((i * 7) % 11) as f32 / 11.0 - 0.4)
                .collect::<Vec<_>>(),
            (30, 100),
            &dev,
        )?;
        for (dtype, tolerance) in [(DType::F32, 1e-5), (DType::BF16, 3e-2)] {
            let g = Var::from_slice(&gs, (30, 100), &dev)?;
            let u = Var::from_slice(&us, (30, 100), &dev)?;
            let (gl, ul) = (
                g.as_tensor().to_dtype(dtype)?,
                u.as_tensor().to_dtype(dtype)?,
            );
            let ours = silu_gated(&gl, &ul)?;
            let theirs = gl.silu()?.mul(&ul)?;
            let f32_of = |t: &Tensor| t.to_dtype(DType::F32);
            let largest =
                |t: Tensor| -> candle_core::Result<f32> { t.abs()?.max_all()?.to_scalar::<f32>() };
            let scale = largest(f32_of(&theirs)?)?.max(1.0);
            let gap = largest((f32_of(&ours)? - f32_of(&theirs)?)?)?;
            assert!(gap <= tolerance * scale, "{dtype:?} value: {gap}");
            let grads = |t: &Tensor| -> candle_core::Result<(Tensor, Tensor)> {
                let store = (f32_of(t)? * &w)?.sum_all()?.backward()?;
                let get = |v: &Var| store.get(v.as_tensor()).expect("a gradient").clone();
                Ok((get(&g), get(&u)))
            };
            let ((og, ou), (tg, tu)) = (grads(&ours)?, grads(&theirs)?);
            for (what, a, b) in [("gate", og, tg), ("up", ou, tu)] {
                let scale = largest(b.clone())?.max(1.0);
                let gap = largest((a - b)?)?;
                assert!(gap <= tolerance * scale, "{dtype:?} {what} gradient: {gap}");
            }
        }
        Ok(())
    }
}
