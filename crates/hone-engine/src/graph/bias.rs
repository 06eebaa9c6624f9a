//! A dense layer's bias added to its mixed-precision product: the product's output stays in
//! the low dtype (bf16, f16), as PyTorch's autocast keeps it, and the bias stays an f32
//! weight. The sum is computed in f32 and rounded once (PyTorch's `addmm` adds the bias in
//! its epilogue); the bias's gradient is the column sums of the output's, accumulated in f32
//! (candle's sum of a bf16 tensor adds in bf16, and its cast and broadcast would be two more
//! kernels each way). The CPU runs the same arithmetic; a GPU `kernels/bias.cu`.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp1, CustomOp2, DType, Layout, Shape, Tensor};
use rayon::prelude::*;

use crate::kernel_io;

/// `y + bias` over `y`'s last dimension: in `y`'s dtype, `bias` any float dtype.
pub fn add_bias(y: &Tensor, bias: &Tensor) -> candle_core::Result<Tensor> {
    match (y.dtype(), bias.dtype()) {
        (DType::BF16 | DType::F16, DType::F32) => {
            y.contiguous()?.apply_op2(&bias.contiguous()?, BiasAdd)
        }
        _ => y.broadcast_add(&bias.to_dtype(y.dtype())?),
    }
}

/// The columns of a `[rows × cols]` layout, checked against the bias's length.
fn columns(y: &Layout, bias: &Layout, op: &str) -> candle_core::Result<usize> {
    let cols = y.dims().last().copied().unwrap_or(1);
    if bias.shape().elem_count() != cols {
        candle_core::bail!(
            "{op}: a bias of {} values for rows of {cols}",
            bias.shape().elem_count()
        );
    }
    Ok(cols)
}

struct BiasAdd;

impl CustomOp2 for BiasAdd {
    fn name(&self) -> &'static str {
        "hone-bias-add"
    }

    fn cpu_fwd(
        &self,
        y: &CpuStorage,
        yl: &Layout,
        bias: &CpuStorage,
        bl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let cols = columns(yl, bl, self.name())?;
        let dtype = y.dtype();
        let (ys, b) = (
            kernel_io::cpu_as_f32(y, yl, self.name())?,
            kernel_io::cpu(bias, bl, self.name())?,
        );
        let mut out = ys.into_owned();
        if cols > 0 {
            out.par_chunks_mut(cols).for_each(|row| {
                for (v, b) in row.iter_mut().zip(b) {
                    *v += b;
                }
            });
        }
        Ok((
            kernel_io::cpu_storage(out, dtype, self.name())?,
            yl.shape().clone(),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        y: &candle_core::CudaStorage,
        yl: &Layout,
        bias: &candle_core::CudaStorage,
        bl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let cols = columns(yl, bl, self.name())?;
        let out = crate::by_dtype!(
            y.dtype(),
            self.name(),
            cuda::bias_add(y, yl, bias, bl, cols)
        )?;
        Ok((out, yl.shape().clone()))
    }

    fn bwd(
        &self,
        _y: &Tensor,
        bias: &Tensor,
        _out: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        // No sums for a frozen bias (LoRA's): it leads to no variable.
        let sums = bias
            .track_op()
            .then(|| {
                grad.contiguous()?
                    .apply_op1_no_bwd(&ColumnSums)?
                    .reshape(bias.shape())
            })
            .transpose()?;
        Ok((Some(grad.clone()), sums))
    }
}

/// The f32 sums of a `[rows × cols]` tensor's columns (any float dtype), added in f32.
pub fn column_sums(x: &Tensor) -> candle_core::Result<Tensor> {
    x.contiguous()?.apply_op1_no_bwd(&ColumnSums)
}

struct ColumnSums;

impl CustomOp1 for ColumnSums {
    fn name(&self) -> &'static str {
        "hone-column-sums"
    }

    fn cpu_fwd(
        &self,
        storage: &CpuStorage,
        layout: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let cols = layout.dims().last().copied().unwrap_or(1);
        let x = kernel_io::cpu_as_f32(storage, layout, self.name())?;
        let mut sums = vec![0f32; cols];
        if cols > 0 {
            crate::cpu::kernels::add_column_sums(&mut sums, &x, cols);
        }
        Ok((CpuStorage::F32(sums), Shape::from(cols)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        storage: &candle_core::CudaStorage,
        layout: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let cols = layout.dims().last().copied().unwrap_or(1);
        let sums = crate::by_dtype!(
            storage.dtype(),
            self.name(),
            cuda::column_sums(storage, layout, cols)
        )?;
        Ok((sums, Shape::from(cols)))
    }
}

/// `hone_bias_add_*` and `hone_column_sums_*` of `kernels/bias.cu`, compiled to PTX by the
/// build script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{DeviceRepr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use crate::kernel_io::cuda::{elementwise, kernel_suffix, typed_view, view};

    pub(super) fn bias_add<T: CudaDType + DeviceRepr>(
        y: &CudaStorage,
        yl: &Layout,
        bias: &CudaStorage,
        bl: &Layout,
        cols: usize,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-bias-add";
        let dev = y.device().clone();
        let (ys, b) = (typed_view::<T>(y, yl, name)?, view(bias, bl, name)?);
        let n = ys.len();
        // SAFETY: every element is written by the kernel.
        let out = unsafe { dev.alloc::<T>(n)? };
        if let Some(cfg) = elementwise(n) {
            let kernel = format!("hone_bias_add_{}", kernel_suffix(y.dtype(), name)?);
            let func = dev.get_or_load_custom_func(&kernel, "hone_bias", crate::ptx::BIAS)?;
            let mut builder = func.builder();
            builder.arg(&n);
            builder.arg(&cols);
            builder.arg(&ys);
            builder.arg(&b);
            builder.arg(&out);
            // SAFETY: the kernel's signature is (n, cols, y, bias, out); y and out hold n
            // values of T, bias cols f32 (checked by the caller).
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }

    pub(super) fn column_sums<T: CudaDType + DeviceRepr>(
        x: &CudaStorage,
        layout: &Layout,
        cols: usize,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-column-sums";
        let dev = x.device().clone();
        let xs = typed_view::<T>(x, layout, name)?;
        let rows = xs.len().checked_div(cols).unwrap_or(0);
        let sums = dev.alloc_zeros::<f32>(cols)?;
        if cols > 0 {
            let kernel = format!("hone_column_sums_{}", kernel_suffix(x.dtype(), name)?);
            let func = dev.get_or_load_custom_func(&kernel, "hone_bias", crate::ptx::BIAS)?;
            let mut builder = func.builder();
            builder.arg(&rows);
            builder.arg(&cols);
            builder.arg(&xs);
            builder.arg(&sums);
            let cfg = LaunchConfig {
                grid_dim: (cols.div_ceil(32) as u32, 1, 1),
                block_dim: (32, 32, 1),
                shared_mem_bytes: 0,
            };
            // SAFETY: the kernel's signature is (rows, cols, grad, sums); grad holds rows ·
            // cols values of T, sums cols f32; a block covers 32 columns.
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(sums, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{Device, Var};

    /// bf16 and f16 products plus an f32 bias: the value is the f32 sum rounded once, the
    /// bias's gradient the f32 column sums of the output's, the product's the output's.
    #[test]
    fn the_sum_rounds_once_and_the_bias_gradient_adds_in_f32() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let (rows, cols) = (3000, 5);
        let ys: Vec<f32> = (0..rows * cols)
            .map(|i| ((i * 7) % 23) as f32 / 8.0 - 1.0)
            .collect();
        let bs: Vec<f32> = vec![0.1, -0.25, 1e-3, 3.0, -7.5];
        for dtype in [DType::BF16, DType::F16] {
            let y =
                Var::from_tensor(&Tensor::from_slice(&ys, (rows, cols), &dev)?.to_dtype(dtype)?)?;
            let b = Var::from_slice(&bs, cols, &dev)?;
            let out = add_bias(y.as_tensor(), b.as_tensor())?;
            assert_eq!(out.dtype(), dtype);
            let want = y
                .as_tensor()
                .to_dtype(DType::F32)?
                .broadcast_add(b.as_tensor())?
                .to_dtype(dtype)?;
            assert_eq!(
                out.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?,
                want.to_dtype(DType::F32)?.flatten_all()?.to_vec1::<f32>()?
            );
            // A gradient of ones·k per row: the bias's is the f32 sum of the rounded values.
            let weights: Vec<f32> = (0..rows * cols)
                .map(|i| (i / cols % 7) as f32 * 0.37)
                .collect();
            let w = Tensor::from_slice(&weights, (rows, cols), &dev)?.to_dtype(dtype)?;
            let grads = (&out * &w)?.to_dtype(DType::F32)?.sum_all()?.backward()?;
            let db = grads.get(b.as_tensor()).expect("db").to_vec1::<f32>()?;
            assert_eq!(grads.get(b.as_tensor()).expect("db").dtype(), DType::F32);
            let rounded = w.to_dtype(DType::F32)?.to_vec2::<f32>()?;
            for (c, got) in db.iter().enumerate() {
                let want: f64 = rounded.iter().map(|r| r[c] as f64).sum();
                assert!(
                    (*got as f64 - want).abs() <= 1e-4 * want.abs().max(1.0),
                    "{dtype:?} column {c}: {got} vs {want}"
                );
            }
            let dy = grads.get(y.as_tensor()).expect("dy");
            assert_eq!(dy.dtype(), dtype);
            assert_eq!(
                dy.to_dtype(DType::F32)?.to_vec2::<f32>()?,
                rounded,
                "the product's gradient is the output's"
            );
        }
        // Same dtypes: candle's broadcast add.
        let y = Tensor::from_slice(&ys, (rows, cols), &dev)?;
        let b = Tensor::from_slice(&bs, cols, &dev)?;
        assert_eq!(
            add_bias(&y, &b)?.to_vec2::<f32>()?,
            y.broadcast_add(&b)?.to_vec2::<f32>()?
        );
        Ok(())
    }
}
