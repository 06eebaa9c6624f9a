//! Rotary position embeddings on the autograd graph as one op each way.
//!
//! Composed from candle's ops, a rotation records two narrows, four products, a sum, a
//! difference and a concatenation for the forward pass and about twice as many for the
//! backward (a decoder layer turns its queries and keys: ~45 of the ~160 kernels a LoRA step
//! launches per layer on a GPU, counted with `hone bench --census`). Here each head's feature
//! pairs `(x1[j], x2[j]) = (x[j], x[half + j])` become `(x1·cos − x2·sin, x2·cos + x1·sin)` in
//! one pass, and the backward pass is the same turn the other way (sin negated). f32, bf16 and
//! f16, computed in f32 and rounded once (`kernels/rotary.cu` on a GPU); the cos and sin
//! tables are constants (no gradient).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp3, DType, Layout, Shape, Tensor};

use crate::kernel_io;

/// `x` (`[rows × heads·2·half]`) turned by the angles whose cosines and sines are `cos` and
/// `sin` (`[rows × 1 × half]` or `[rows × half]`, in `x`'s dtype).
pub fn rotary(x: &Tensor, cos: &Tensor, sin: &Tensor, heads: usize) -> candle_core::Result<Tensor> {
    let half = cos.elem_count() / x.dim(0)?.max(1);
    let op = Rotary {
        heads,
        half,
        inverse: false,
    };
    match x.dtype() {
        DType::F32 | DType::BF16 | DType::F16 if !x.device().is_metal() => x
            .contiguous()?
            .apply_op3(&cos.contiguous()?, &sin.contiguous()?, op),
        _ => composed(x, cos, sin, heads, half),
    }
}

/// The same with candle's ops (other dtypes, and Apple GPUs, which have no kernel for it).
fn composed(
    x: &Tensor,
    cos: &Tensor,
    sin: &Tensor,
    heads: usize,
    half: usize,
) -> candle_core::Result<Tensor> {
    let (rows, cols) = x.dims2()?;
    let (cos, sin) = (cos.reshape((rows, 1, half))?, sin.reshape((rows, 1, half))?);
    let x = x.reshape((rows, heads, 2 * half))?;
    let x1 = x.narrow(2, 0, half)?;
    let x2 = x.narrow(2, half, half)?;
    let a = (x1.broadcast_mul(&cos)? - x2.broadcast_mul(&sin)?)?;
    let b = (x2.broadcast_mul(&cos)? + x1.broadcast_mul(&sin)?)?;
    Tensor::cat(&[a, b], 2)?.reshape((rows, cols))
}

/// The turn: forward, or (`inverse`, the backward pass) the other way.
#[derive(Debug, Clone, Copy)]
struct Rotary {
    heads: usize,
    half: usize,
    inverse: bool,
}

impl Rotary {
    /// The rows of `x`'s layout, checked against the heads, the frequencies and the tables.
    fn rows(&self, xl: &Layout, table: usize) -> candle_core::Result<usize> {
        let width = self.heads * 2 * self.half;
        let n = xl.shape().elem_count();
        if width == 0 || !n.is_multiple_of(width) || table != n / width * self.half {
            candle_core::bail!(
                "hone-rotary: {n} values are not rows of {} heads of {} features with {table} \
                 table entries",
                self.heads,
                2 * self.half
            );
        }
        Ok(n / width)
    }
}

impl CustomOp3 for Rotary {
    fn name(&self) -> &'static str {
        "hone-rotary"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        cos: &CpuStorage,
        cl: &Layout,
        sin: &CpuStorage,
        sl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let dtype = x.dtype();
        let mut out = kernel_io::cpu_as_f32(x, xl, self.name())?.into_owned();
        let cos = kernel_io::cpu_as_f32(cos, cl, self.name())?;
        let sin = kernel_io::cpu_as_f32(sin, sl, self.name())?;
        kernel_io::same_len(self.name(), &[cos.len(), sin.len()])?;
        self.rows(xl, cos.len())?;
        // The CPU graph's own rotation, in place on a copy.
        crate::cpu::decoder::rotate(&mut out, &cos, &sin, self.heads, self.half, self.inverse);
        let out = kernel_io::cpu_storage(out, dtype, self.name())?;
        Ok((out, xl.shape().clone()))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        cos: &candle_core::CudaStorage,
        cl: &Layout,
        sin: &candle_core::CudaStorage,
        sl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = crate::by_dtype!(
            x.dtype(),
            self.name(),
            cuda::rotary(*self, x, xl, cos, cl, sin, sl)
        )?;
        Ok((out, xl.shape().clone()))
    }

    fn bwd(
        &self,
        _x: &Tensor,
        cos: &Tensor,
        sin: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>, Option<Tensor>)> {
        let back = Rotary {
            inverse: !self.inverse,
            ..*self
        };
        let dx = grad.contiguous()?.apply_op3_no_bwd(cos, sin, &back)?;
        Ok((Some(dx), None, None))
    }
}

/// `hone_rotary_{f32,bf16,f16}` of `kernels/rotary.cu`, compiled to PTX by the build script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use crate::kernel_io::cuda::{elementwise, kernel_suffix, typed_view};
    use crate::kernel_io::same_len;

    pub(super) fn rotary<T: CudaDType + DeviceRepr>(
        op: super::Rotary,
        x: &CudaStorage,
        xl: &Layout,
        cos: &CudaStorage,
        cl: &Layout,
        sin: &CudaStorage,
        sl: &Layout,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-rotary";
        let dev = x.device().clone();
        let xs = typed_view::<T>(x, xl, name)?;
        let (cs, ss) = (
            typed_view::<T>(cos, cl, name)?,
            typed_view::<T>(sin, sl, name)?,
        );
        same_len(name, &[cs.len(), ss.len()])?;
        op.rows(xl, cs.len())?;
        let n = xs.len();
        // SAFETY: every element is written by the kernel (each thread writes a pair).
        let out = unsafe { dev.alloc::<T>(n)? };
        let pairs = n / 2;
        if let Some(cfg) = elementwise(pairs) {
            let kernel = format!("hone_rotary_{}", kernel_suffix(x.dtype(), name)?);
            let func = dev.get_or_load_custom_func(&kernel, "hone_rotary", crate::ptx::ROTARY)?;
            let mut builder = func.builder();
            builder.arg(&pairs);
            builder.arg(&op.heads);
            builder.arg(&op.half);
            builder.arg(&xs);
            builder.arg(&cs);
            builder.arg(&ss);
            builder.arg(&out);
            let sign: f32 = if op.inverse { -1.0 } else { 1.0 };
            candle_core::builder_arg!(builder, sign);
            // SAFETY: the kernel's signature is (pairs, heads, half, x, cos, sin, out, sign);
            // x and out hold 2 · pairs values of T, cos and sin pairs / heads.
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// The op's value and gradient against the composed rotation's, in f32 and bf16.
    #[test]
    fn value_and_gradient_match_the_composed_rotation() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (rows, heads, half) = (7, 3, 4);
        let xs: Vec<f32> = (0..rows * heads * 2 * half)
            .map(|i| ((i * 37) % 23) as f32 / 7.0 - 1.5)
            .collect();
        let angles: Vec<f32> = (0..rows * half).map(|i| i as f32 * 0.37).collect();
        let cos: Vec<f32> = angles.iter().map(|a| a.cos()).collect();
        let sin: Vec<f32> = angles.iter().map(|a| a.sin()).collect();
        let weights = Tensor::from_vec(
            (0..xs.len())
                .map(|i| ((i * 11) % 17) as f32 / 17.0 - 0.3)
                .collect::<Vec<_>>(),
            (rows, heads * 2 * half),
            &dev,
        )?;
        for (dtype, tolerance) in [(DType::F32, 1e-6), (DType::BF16, 2e-2)] {
            let x = Var::from_slice(&xs, (rows, heads * 2 * half), &dev)?;
            let table = |v: &[f32]| Tensor::from_slice(v, (rows, 1, half), &dev)?.to_dtype(dtype);
            let (c, s) = (table(&cos)?, table(&sin)?);
            let low = x.as_tensor().to_dtype(dtype)?;
            let ours = rotary(&low, &c, &s, heads)?;
            let theirs = composed(&low, &c, &s, heads, half)?;
            let to_f32 = |t: &Tensor| t.to_dtype(DType::F32);
            let gap = (to_f32(&ours)? - to_f32(&theirs)?)?.abs()?.max_all()?;
            assert!(
                gap.to_scalar::<f32>()? <= tolerance,
                "{dtype:?} value: {gap}"
            );
            let grad = |t: &Tensor| -> candle_core::Result<Tensor> {
                let loss = (to_f32(t)? * &weights)?.sum_all()?;
                Ok(loss
                    .backward()?
                    .get(x.as_tensor())
                    .expect("a gradient")
                    .clone())
            };
            let gap = (grad(&ours)? - grad(&theirs)?)?.abs()?.max_all()?;
            assert!(
                gap.to_scalar::<f32>()? <= tolerance,
                "{dtype:?} gradient: {gap}"
            );
        }
        Ok(())
    }

    /// Tables that do not match the rows are an error, not a read past their end.
    #[test]
    fn mismatched_tables_are_refused() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Tensor::zeros((4, 16), DType::F32, &dev)?;
        let table = Tensor::zeros((3, 1, 4), DType::F32, &dev)?;
        let err = x
            .apply_op3(
                &table,
                &table,
                Rotary {
                    heads: 2,
                    half: 4,
                    inverse: false,
                },
            )
            .expect_err("three rows of tables for four rows");
        assert!(err.to_string().contains("hone-rotary"), "{err}");
        Ok(())
    }
}
