//! The contiguous values Hone's custom ops read and write: a CPU storage's slice, or a view
//! of a GPU buffer, with a clear error for another dtype or a strided layout; and the launch
//! shape of an elementwise kernel. Ops that also run in a mixed-precision dtype (bf16, f16)
//! read those as f32 on the CPU ([`cpu_as_f32`], [`cpu_storage`]) and launch the dtype's
//! kernel on a GPU ([`cuda::typed_view`], [`cuda::kernel_suffix`]).

use std::borrow::Cow;

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, DType, Layout};

/// Elements per parallel task of an elementwise op on the CPU.
pub(crate) const CHUNK: usize = 16_384;

/// The f32 values `layout` spans in `storage`.
pub(crate) fn cpu<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [f32]> {
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only, got {:?}", storage.dtype())
    };
    let (start, end) = span(layout, op)?;
    Ok(&data[start..end])
}

/// The u32 values (ids, labels, a plan) `layout` spans in `storage`.
pub(crate) fn cpu_u32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a [u32]> {
    let CpuStorage::U32(data) = storage else {
        candle_core::bail!("{op}: u32 only, got {:?}", storage.dtype())
    };
    let (start, end) = span(layout, op)?;
    Ok(&data[start..end])
}

/// The f32 values `layout` spans in `storage`, to write.
pub(crate) fn cpu_mut<'a>(
    storage: &'a mut CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<&'a mut [f32]> {
    let dtype = storage.dtype();
    let CpuStorage::F32(data) = storage else {
        candle_core::bail!("{op}: f32 only, got {dtype:?}")
    };
    let (start, end) = span(layout, op)?;
    Ok(&mut data[start..end])
}

/// The values `layout` spans in `storage` as f32: borrowed when they are f32, converted from
/// bf16 or f16.
pub(crate) fn cpu_as_f32<'a>(
    storage: &'a CpuStorage,
    layout: &Layout,
    op: &str,
) -> candle_core::Result<Cow<'a, [f32]>> {
    let (start, end) = span(layout, op)?;
    Ok(match storage {
        CpuStorage::F32(data) => Cow::Borrowed(&data[start..end]),
        CpuStorage::BF16(data) => Cow::Owned(data[start..end].iter().map(|v| v.to_f32()).collect()),
        CpuStorage::F16(data) => Cow::Owned(data[start..end].iter().map(|v| v.to_f32()).collect()),
        other => candle_core::bail!("{op}: f32, bf16 or f16 only, got {:?}", other.dtype()),
    })
}

/// `values` as a CPU storage of `dtype` (f32, bf16 or f16), each rounded to it.
pub(crate) fn cpu_storage(
    values: Vec<f32>,
    dtype: DType,
    op: &str,
) -> candle_core::Result<CpuStorage> {
    Ok(match dtype {
        DType::F32 => CpuStorage::F32(values),
        DType::BF16 => CpuStorage::BF16(values.into_iter().map(half::bf16::from_f32).collect()),
        DType::F16 => CpuStorage::F16(values.into_iter().map(half::f16::from_f32).collect()),
        other => candle_core::bail!("{op}: f32, bf16 or f16 only, got {other:?}"),
    })
}

/// `$run::<T>($args)` with `T` the Rust type of `$dtype` (f32, bf16 or f16); an error naming
/// `$op` for another dtype. For the GPU launches of ops that run in mixed precision.
#[macro_export]
macro_rules! by_dtype {
    ($dtype:expr, $op:expr, $($run:ident)::+ ( $($arg:expr),* $(,)? )) => {
        match $dtype {
            candle_core::DType::F32 => $($run)::+::<f32>($($arg),*),
            candle_core::DType::BF16 => $($run)::+::<half::bf16>($($arg),*),
            candle_core::DType::F16 => $($run)::+::<half::f16>($($arg),*),
            other => Err(candle_core::Error::Msg(format!(
                "{}: f32, bf16 or f16 only, got {other:?}",
                $op
            ))),
        }
    };
}

/// Where a contiguous layout's values start and end.
fn span(layout: &Layout, op: &str) -> candle_core::Result<(usize, usize)> {
    layout
        .contiguous_offsets()
        .ok_or_else(|| candle_core::Error::Msg(format!("{op}: the tensor must be contiguous")))
}

/// Fails unless every length equals the first.
pub(crate) fn same_len(op: &str, lens: &[usize]) -> candle_core::Result<()> {
    if lens.windows(2).any(|w| w[0] != w[1]) {
        candle_core::bail!("{op}: the tensors differ in size ({lens:?})");
    }
    Ok(())
}

/// The same on an NVIDIA GPU.
#[cfg(feature = "cuda")]
pub(crate) mod cuda {
    use candle_core::cuda_backend::cudarc::driver::{CudaSlice, CudaView, LaunchConfig};
    use candle_core::cuda_backend::{CudaDType, CudaDevice, CudaStorage, CudaStorageSlice};
    use candle_core::Layout;

    /// A view of the f32 values `layout` spans in `storage`.
    pub(crate) fn view<'a>(
        storage: &'a CudaStorage,
        layout: &Layout,
        op: &str,
    ) -> candle_core::Result<CudaView<'a, f32>> {
        typed_view::<f32>(storage, layout, op)
    }

    /// A view of the `T` values `layout` spans in `storage` (an error for another dtype).
    pub(crate) fn typed_view<'a, T: CudaDType>(
        storage: &'a CudaStorage,
        layout: &Layout,
        op: &str,
    ) -> candle_core::Result<CudaView<'a, T>> {
        let (start, end) = super::span(layout, op)?;
        Ok(storage.as_cuda_slice::<T>()?.slice(start..end))
    }

    /// A new f32 buffer on `device` as candle's storage (a kernel's output).
    pub(crate) fn storage(values: CudaSlice<f32>, device: &CudaDevice) -> CudaStorage {
        CudaStorage {
            slice: CudaStorageSlice::F32(values),
            device: device.clone(),
        }
    }

    /// The suffix of a kernel's name for `dtype` (`hone_dropout_bf16`): Hone's kernels that run
    /// in mixed precision come in f32, bf16 and f16.
    pub(crate) fn kernel_suffix(
        dtype: candle_core::DType,
        op: &str,
    ) -> candle_core::Result<&'static str> {
        Ok(match dtype {
            candle_core::DType::F32 => "f32",
            candle_core::DType::BF16 => "bf16",
            candle_core::DType::F16 => "f16",
            other => candle_core::bail!("{op}: f32, bf16 or f16 only, got {other:?}"),
        })
    }

    /// A grid of 1,024-thread blocks over `n` values (a grid-stride loop covers any rest);
    /// `None` for no values (a grid of none is an error).
    pub(crate) fn elementwise(n: usize) -> Option<LaunchConfig> {
        const THREADS: usize = 1024;
        // Past the largest grid the blocks loop over the rest.
        let blocks = n.div_ceil(THREADS).min(i32::MAX as usize) as u32;
        (n > 0).then_some(LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS as u32, 1, 1),
            shared_mem_bytes: 0,
        })
    }
}
