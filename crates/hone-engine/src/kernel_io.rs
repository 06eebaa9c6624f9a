//! The contiguous f32 values Hone's custom ops read and write: a CPU storage's slice, or a
//! view of a GPU buffer, with a clear error for another dtype or a strided layout; and the
//! launch shape of an elementwise kernel.

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, Layout};

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
    use candle_core::cuda_backend::cudarc::driver::{
        CudaSlice, CudaView, CudaViewMut, LaunchConfig,
    };
    use candle_core::cuda_backend::{CudaDevice, CudaStorage, CudaStorageSlice};
    use candle_core::Layout;

    /// A view of the f32 values `layout` spans in `storage`.
    pub(crate) fn view<'a>(
        storage: &'a CudaStorage,
        layout: &Layout,
        op: &str,
    ) -> candle_core::Result<CudaView<'a, f32>> {
        let CudaStorageSlice::F32(slice) = &storage.slice else {
            candle_core::bail!("{op}: f32 only")
        };
        let (start, end) = super::span(layout, op)?;
        Ok(slice.slice(start..end))
    }

    /// A view of the f32 values `layout` spans in `storage`, to write.
    pub(crate) fn view_mut<'a>(
        storage: &'a mut CudaStorage,
        layout: &Layout,
        op: &str,
    ) -> candle_core::Result<CudaViewMut<'a, f32>> {
        let CudaStorageSlice::F32(slice) = &mut storage.slice else {
            candle_core::bail!("{op}: f32 only")
        };
        let (start, end) = super::span(layout, op)?;
        Ok(slice.slice_mut(start..end))
    }

    /// A new f32 buffer on `device` as candle's storage (a kernel's output).
    pub(crate) fn storage(values: CudaSlice<f32>, device: &CudaDevice) -> CudaStorage {
        CudaStorage {
            slice: CudaStorageSlice::F32(values),
            device: device.clone(),
        }
    }

    /// A grid of 1,024-thread blocks over `n` values (a grid-stride loop covers any rest);
    /// `None` for no values (a grid of none is an error).
    pub(crate) fn elementwise(n: usize) -> Option<LaunchConfig> {
        (n > 0).then(|| LaunchConfig::for_num_elems(n as u32))
    }
}
