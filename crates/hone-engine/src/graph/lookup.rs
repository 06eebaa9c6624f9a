//! `index_select` with ids known on the host (embedding lookups, the first tokens, the
//! scored rows of a loss, relative-position tables) whose backward does not run candle's
//! `index_add`: that CUDA kernel gives one thread to each (outer, feature) pair and walks
//! every id in turn with a read-modify-write of the output (768 threads, 4,096 dependent
//! steps each, for BERT-base's word embeddings at 32 × 128; 12 threads over 16,384 ids for a
//! T5 relative-bias table). Here the host sorts the ids once and uploads, with them, the plan
//! of their gradient: the rows of each id in chunks of at most [`CHUNK`], so a GPU sums
//! every chunk in its own block, writing an id of one chunk straight to the gradient, and
//! then adds the chunks of each id that has several, in order (`kernels/scatter.cu`, one or
//! two launches, no atomics: the same sum every run; the f32 scratch is only for those ids).
//! The CPU adds each row in id order as candle's `index_add` does (the same f32 sums as
//! candle's, the same bits where nothing else adds to the table's gradient).

use candle_core::backend::BackendStorage;
use candle_core::{CpuStorage, CustomOp2, Device, Layout, Shape, Tensor};

use crate::kernel_io;

/// The most rows of one id a GPU block sums before the per-id pass adds the blocks' sums.
pub const CHUNK: usize = 32;

/// Ids on the device with the plan of their backward's scatter.
#[derive(Debug, Clone)]
pub struct HostIndex {
    /// u32, one upload: `[ids (n) | order: the positions sorted by id (n) | each chunk's
    /// first position in order (chunks + 1) | each chunk's id (chunks) | each chunk's scratch
    /// row, NO_SLOT for an id of one chunk (chunks) | the first scratch row of each id of
    /// several chunks (multi + 1) | those ids (multi)]`.
    plan: Tensor,
    sizes: Sizes,
}

/// A chunk that is its id's only one: its sum is the gradient's row, no scratch row.
const NO_SLOT: u32 = u32::MAX;

/// The lengths of a plan's parts, and its largest id.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Sizes {
    ids: usize,
    chunks: usize,
    /// Ids with more than one chunk.
    multi: usize,
    /// The chunks of those ids (scratch rows).
    slots: usize,
    largest: Option<u32>,
}

#[cfg_attr(not(feature = "cuda"), allow(dead_code))]
impl Sizes {
    fn order(&self) -> usize {
        self.ids
    }
    fn chunk_starts(&self) -> usize {
        2 * self.ids
    }
    fn chunk_targets(&self) -> usize {
        self.chunk_starts() + self.chunks + 1
    }
    fn chunk_slots(&self) -> usize {
        self.chunk_targets() + self.chunks
    }
    fn multi_firsts(&self) -> usize {
        self.chunk_slots() + self.chunks
    }
    fn multi_targets(&self) -> usize {
        self.multi_firsts() + self.multi + 1
    }
    fn len(&self) -> usize {
        self.multi_targets() + self.multi
    }
}

impl HostIndex {
    /// The ids on `device`, with their backward's plan.
    pub fn new(ids: &[u32], device: &Device) -> candle_core::Result<Self> {
        let (plan, sizes) = plan(ids);
        let len = plan.len();
        Ok(HostIndex {
            plan: Tensor::from_vec(plan, len, device)?,
            sizes,
        })
    }

    /// How many ids.
    pub fn len(&self) -> usize {
        self.sizes.ids
    }

    /// Whether there are no ids.
    pub fn is_empty(&self) -> bool {
        self.sizes.ids == 0
    }

    /// The ids alone, as candle's `index_select` takes them.
    pub fn ids(&self) -> candle_core::Result<Tensor> {
        self.plan.narrow(0, 0, self.sizes.ids)
    }

    /// `x.index_select(ids, dim)`, whose gradient is this index's scatter.
    pub fn select(&self, x: &Tensor, dim: usize) -> candle_core::Result<Tensor> {
        let rows = x.dim(dim)?;
        if let Some(largest) = self.sizes.largest {
            if largest as usize >= rows {
                candle_core::bail!("index-select: id {largest} is past the {rows} rows")
            }
        }
        x.contiguous()?.apply_op2(
            &self.plan,
            Select {
                sizes: self.sizes,
                dim,
            },
        )
    }
}

/// The plan of `ids` (see [`HostIndex::plan`]).
fn plan(ids: &[u32]) -> (Vec<u32>, Sizes) {
    let mut order: Vec<u32> = (0..ids.len() as u32).collect();
    order.sort_by_key(|&i| ids[i as usize]);
    let (mut chunk_starts, mut chunk_targets, mut chunk_slots) =
        (Vec::new(), Vec::new(), Vec::new());
    let (mut multi_firsts, mut multi_targets) = (Vec::new(), Vec::new());
    let mut slots = 0u32;
    let mut k = 0;
    while k < order.len() {
        let id = ids[order[k] as usize];
        let end = k + order[k..].partition_point(|&i| ids[i as usize] == id);
        let chunks = (end - k).div_ceil(CHUNK);
        chunk_starts.extend((k..end).step_by(CHUNK).map(|s| s as u32));
        chunk_targets.extend(std::iter::repeat_n(id, chunks));
        if chunks == 1 {
            chunk_slots.push(NO_SLOT);
        } else {
            multi_firsts.push(slots);
            multi_targets.push(id);
            chunk_slots.extend(slots..slots + chunks as u32);
            slots += chunks as u32;
        }
        k = end;
    }
    let sizes = Sizes {
        ids: ids.len(),
        chunks: chunk_starts.len(),
        multi: multi_targets.len(),
        slots: slots as usize,
        largest: chunk_targets.last().copied(),
    };
    chunk_starts.push(ids.len() as u32);
    multi_firsts.push(slots);
    let mut plan = Vec::with_capacity(sizes.len());
    for part in [
        ids,
        &order,
        &chunk_starts,
        &chunk_targets,
        &chunk_slots,
        &multi_firsts,
        &multi_targets,
    ] {
        plan.extend_from_slice(part);
    }
    debug_assert_eq!(plan.len(), sizes.len());
    (plan, sizes)
}

/// The layout of the plan's ids.
fn ids_layout(plan: &Layout, sizes: &Sizes) -> Layout {
    Layout::contiguous_with_offset(sizes.ids, plan.start_offset())
}

/// `x`'s dimensions with `dim` resized to `n`.
fn resized(x: &Layout, dim: usize, n: usize) -> Shape {
    let mut dims = x.dims().to_vec();
    dims[dim] = n;
    Shape::from(dims)
}

/// The gather (forward).
#[derive(Debug, Clone)]
struct Select {
    sizes: Sizes,
    dim: usize,
}

impl CustomOp2 for Select {
    fn name(&self) -> &'static str {
        "hone-select"
    }

    fn cpu_fwd(
        &self,
        x: &CpuStorage,
        xl: &Layout,
        plan: &CpuStorage,
        pl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let out = x.index_select(plan, xl, &ids_layout(pl, &self.sizes), self.dim)?;
        Ok((out, resized(xl, self.dim, self.sizes.ids)))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        x: &candle_core::CudaStorage,
        xl: &Layout,
        plan: &candle_core::CudaStorage,
        pl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let out = x.index_select(plan, xl, &ids_layout(pl, &self.sizes), self.dim)?;
        Ok((out, resized(xl, self.dim, self.sizes.ids)))
    }

    fn metal_fwd(
        &self,
        x: &candle_core::MetalStorage,
        xl: &Layout,
        plan: &candle_core::MetalStorage,
        pl: &Layout,
    ) -> candle_core::Result<(candle_core::MetalStorage, Shape)> {
        let out = x.index_select(plan, xl, &ids_layout(pl, &self.sizes), self.dim)?;
        Ok((out, resized(xl, self.dim, self.sizes.ids)))
    }

    fn bwd(
        &self,
        x: &Tensor,
        plan: &Tensor,
        _result: &Tensor,
        grad: &Tensor,
    ) -> candle_core::Result<(Option<Tensor>, Option<Tensor>)> {
        let rows = x.dim(self.dim)?;
        let dx = if grad.device().is_metal() {
            // Hone has no Metal kernel for the scatter: candle's.
            let ids = plan.narrow(0, 0, self.sizes.ids)?;
            x.zeros_like()?
                .index_add(&ids, &grad.contiguous()?, self.dim)?
        } else {
            grad.contiguous()?.apply_op2_no_bwd(
                plan,
                &Scatter {
                    sizes: self.sizes,
                    dim: self.dim,
                    rows,
                },
            )?
        };
        Ok((Some(dx), None))
    }
}

/// The gradient (backward): `dx[.., id, ..] = Σ grad[.., j, ..]` over the `j` whose id is
/// `id`, zero for the rows no id names.
#[derive(Debug, Clone)]
struct Scatter {
    sizes: Sizes,
    dim: usize,
    /// `x`'s size along `dim`.
    rows: usize,
}

impl Scatter {
    /// The sizes before and after `dim` of a gradient laid out as `layout`, checked against
    /// the plan.
    fn outer_inner(&self, layout: &Layout) -> candle_core::Result<(usize, usize)> {
        let dims = layout.dims();
        if dims.get(self.dim) != Some(&self.sizes.ids) {
            candle_core::bail!(
                "hone-scatter: a gradient of shape {dims:?} for {} ids along dimension {}",
                self.sizes.ids,
                self.dim
            );
        }
        Ok((
            dims[..self.dim].iter().product(),
            dims[self.dim + 1..].iter().product(),
        ))
    }
}

impl CustomOp2 for Scatter {
    fn name(&self) -> &'static str {
        "hone-scatter"
    }

    fn cpu_fwd(
        &self,
        grad: &CpuStorage,
        gl: &Layout,
        plan: &CpuStorage,
        pl: &Layout,
    ) -> candle_core::Result<(CpuStorage, Shape)> {
        let (outer, inner) = self.outer_inner(gl)?;
        let (n, rows) = (self.sizes.ids, self.rows);
        let g = kernel_io::cpu_as_f32(grad, gl, self.name())?;
        let plan = kernel_io::cpu_u32(plan, pl, self.name())?;
        let ids = plan.get(..n).ok_or_else(|| {
            candle_core::Error::Msg(format!("{}: a plan shorter than its ids", self.name()))
        })?;
        let mut out = vec![0f32; outer * rows * inner];
        // candle's index_add order: for each outer slice, the ids in turn.
        for o in 0..outer {
            for (j, &id) in ids.iter().enumerate() {
                let id = id as usize;
                if id >= rows {
                    candle_core::bail!("hone-scatter: id {id} is past the {rows} rows");
                }
                let src = &g[(o * n + j) * inner..][..inner];
                let dst = &mut out[(o * rows + id) * inner..][..inner];
                for (d, s) in dst.iter_mut().zip(src) {
                    *d += s;
                }
            }
        }
        Ok((
            kernel_io::cpu_storage(out, grad.dtype(), self.name())?,
            resized(gl, self.dim, rows),
        ))
    }

    #[cfg(feature = "cuda")]
    fn cuda_fwd(
        &self,
        grad: &candle_core::CudaStorage,
        gl: &Layout,
        plan: &candle_core::CudaStorage,
        pl: &Layout,
    ) -> candle_core::Result<(candle_core::CudaStorage, Shape)> {
        let (outer, inner) = self.outer_inner(gl)?;
        let out = crate::by_dtype!(
            grad.dtype(),
            self.name(),
            cuda::scatter(
                grad,
                gl,
                plan,
                pl,
                &self.sizes,
                outer * inner,
                self.rows * inner,
                inner
            )
        )?;
        Ok((out, resized(gl, self.dim, self.rows)))
    }
}

/// `hone_scatter_chunks_*` and `hone_scatter_ids_*` of `kernels/scatter.cu`, compiled to
/// PTX by the build script.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::backend::BackendStorage;
    use candle_core::cuda_backend::cudarc::driver::{
        DeviceRepr, LaunchConfig, PushKernelArg, ValidAsZeroBits,
    };
    use candle_core::cuda_backend::{CudaDType, CudaStorage, WrapErr};
    use candle_core::Layout;

    use super::Sizes;
    use crate::kernel_io::cuda::{elementwise, kernel_suffix, typed_view};

    /// Threads of a chunk's block (each sums one column of the chunk's rows).
    const THREADS: usize = 128;

    /// `columns` = outer · inner values per id; `out_block` = rows · inner values per outer
    /// slice of the output.
    #[allow(clippy::too_many_arguments)]
    pub(super) fn scatter<T: CudaDType + DeviceRepr + ValidAsZeroBits>(
        grad: &CudaStorage,
        gl: &Layout,
        plan: &CudaStorage,
        pl: &Layout,
        sizes: &Sizes,
        columns: usize,
        out_block: usize,
        inner: usize,
    ) -> candle_core::Result<CudaStorage> {
        let name = "hone-scatter";
        let dev = grad.device().clone();
        let g = typed_view::<T>(grad, gl, name)?;
        let outer = columns.checked_div(inner).unwrap_or(0);
        let out = dev.alloc_zeros::<T>(outer * out_block)?;
        if columns == 0 || sizes.ids == 0 {
            return Ok(CudaStorage::wrap_cuda_slice(out, dev));
        }
        let base = pl.start_offset();
        let whole = plan.as_cuda_slice::<u32>()?;
        let part = |from: usize, len: usize| whole.slice(base + from..base + from + len);
        let suffix = kernel_suffix(grad.dtype(), name)?;
        let func = |kernel: &str| {
            dev.get_or_load_custom_func(
                &format!("{kernel}_{suffix}"),
                "hone_scatter",
                crate::ptx::SCATTER,
            )
        };
        // The ids of several chunks add their chunks' sums from here (one value for none: a
        // kernel argument must point somewhere).
        // SAFETY: each slot's row is written by the chunks' kernel before the ids' reads it.
        let partial = unsafe { dev.alloc::<f32>(sizes.slots.max(1) * columns)? };
        let (order, starts, targets, slots) = (
            part(sizes.order(), sizes.ids),
            part(sizes.chunk_starts(), sizes.chunks + 1),
            part(sizes.chunk_targets(), sizes.chunks),
            part(sizes.chunk_slots(), sizes.chunks),
        );
        let chunks = func("hone_scatter_chunks")?;
        let mut builder = chunks.builder();
        builder.arg(&sizes.ids);
        builder.arg(&columns);
        builder.arg(&inner);
        builder.arg(&out_block);
        builder.arg(&g);
        builder.arg(&order);
        builder.arg(&starts);
        builder.arg(&targets);
        builder.arg(&slots);
        builder.arg(&partial);
        builder.arg(&out);
        let cfg = LaunchConfig {
            // Past the largest grid's y the blocks loop over the rest of the columns.
            grid_dim: (
                sizes.chunks as u32,
                columns.div_ceil(THREADS).min(65_535) as u32,
                1,
            ),
            block_dim: (THREADS as u32, 1, 1),
            shared_mem_bytes: 0,
        };
        // SAFETY: the kernel's signature is (n, columns, inner, out_block, grad, order, starts,
        // targets, slots, partial, dx); grad holds outer · n · inner values of T, order n
        // positions below n, starts chunks + 1 offsets into order, targets chunks ids below
        // the output's rows (checked when selecting), slots chunks rows of partial (slots ·
        // columns f32) or NO_SLOT, dx outer · out_block values of T; one block per chunk.
        unsafe { builder.launch(cfg) }.w()?;

        let values = sizes.multi * columns;
        if let Some(cfg) = elementwise(values) {
            let (firsts, multi) = (
                part(sizes.multi_firsts(), sizes.multi + 1),
                part(sizes.multi_targets(), sizes.multi),
            );
            let ids = func("hone_scatter_ids")?;
            let mut builder = ids.builder();
            builder.arg(&values);
            builder.arg(&columns);
            builder.arg(&inner);
            builder.arg(&out_block);
            builder.arg(&partial);
            builder.arg(&firsts);
            builder.arg(&multi);
            builder.arg(&out);
            // SAFETY: the kernel's signature is (values, columns, inner, out_block, partial,
            // firsts, targets, dx); firsts holds multi + 1 offsets into partial's slots rows,
            // targets multi ids below the output's rows, dx outer · out_block values of T.
            unsafe { builder.launch(cfg) }.w()?;
        }
        Ok(CudaStorage::wrap_cuda_slice(out, dev))
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Var};

    /// The plan of ids with repeats: sorted positions, chunks of at most CHUNK rows per id,
    /// scratch rows only for the id of several chunks.
    #[test]
    fn the_plan_sorts_the_ids_and_chunks_each_ids_rows() {
        let c = CHUNK as u32;
        let mut ids = vec![5u32; CHUNK + 3];
        ids.extend([2, 9, 2]);
        let (plan, sizes) = plan(&ids);
        let n = ids.len();
        assert_eq!(
            sizes,
            Sizes {
                ids: n,
                chunks: 4,
                multi: 1,
                slots: 2,
                largest: Some(9)
            }
        );
        let mut parts = Vec::new();
        let mut rest = &plan[..];
        for len in [n, n, 5, 4, 4, 2, 1] {
            let (part, tail) = rest.split_at(len);
            parts.push(part);
            rest = tail;
        }
        assert!(rest.is_empty());
        assert_eq!(parts[0], &ids[..]);
        let order = parts[1];
        assert_eq!(&order[..2], &[c + 3, c + 5]);
        assert_eq!(order[2..2 + CHUNK + 3], (0..c + 3).collect::<Vec<_>>()[..]);
        assert_eq!(order[n - 1], c + 4);
        assert_eq!(parts[2], &[0, 2, 2 + c, 2 + c + 3, n as u32]);
        assert_eq!(parts[3], &[2, 5, 5, 9], "each chunk's id");
        assert_eq!(
            parts[4],
            &[NO_SLOT, 0, 1, NO_SLOT],
            "scratch rows of id 5's chunks"
        );
        assert_eq!(parts[5], &[0, 2]);
        assert_eq!(parts[6], &[5]);
        let (empty, sizes) = super::plan(&[]);
        assert_eq!(empty, vec![0, 0]);
        assert_eq!((sizes.largest, sizes.slots), (None, 0));
    }

    /// Values and gradients against candle's `index_select` along each dimension, in f32 to
    /// the bit, in bf16 the f32 sums rounded once.
    #[test]
    fn selects_and_scatters_as_index_select_and_index_add() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let ids: Vec<u32> = (0..70).map(|i| (i * 7 % 5) as u32).chain([6, 6]).collect();
        let index = HostIndex::new(&ids, &dev)?;
        let candle_ids = Tensor::from_slice(&ids, ids.len(), &dev)?;
        for dim in 0..3 {
            let mut dims = vec![2, 3, 4];
            dims[dim] = 8;
            let n: usize = dims.iter().product();
            let x = Var::from_vec(
                (0..n).map(|v| (v as f32 * 0.37).sin()).collect::<Vec<_>>(),
                dims.as_slice(),
                &dev,
            )?;
            let got = index.select(x.as_tensor(), dim)?;
            let want = x.as_tensor().index_select(&candle_ids, dim)?;
            assert_eq!(got.dims(), want.dims());
            assert_eq!(
                got.flatten_all()?.to_vec1::<f32>()?,
                want.flatten_all()?.to_vec1::<f32>()?
            );
            let w = Tensor::rand(-1f32, 1., want.shape(), &dev)?;
            let dx = (got * &w)?.sum_all()?.backward()?;
            let reference = (want * &w)?.sum_all()?.backward()?;
            assert_eq!(
                dx.get(&x).expect("dx").flatten_all()?.to_vec1::<f32>()?,
                reference
                    .get(&x)
                    .expect("dx")
                    .flatten_all()?
                    .to_vec1::<f32>()?,
                "dimension {dim}"
            );
        }
        // bf16: the gradient in bf16, summed in f32.
        let x = Var::from_tensor(&Tensor::ones((8, 3), DType::BF16, &dev)?)?;
        let w = Tensor::full(1.0f32 / 3.0, (ids.len(), 3), &dev)?.to_dtype(DType::BF16)?;
        let dx = (index.select(x.as_tensor(), 0)? * &w)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .backward()?;
        let dx = dx.get(&x).expect("dx");
        assert_eq!(dx.dtype(), DType::BF16);
        let third = half::bf16::from_f32(1.0 / 3.0).to_f32();
        let count = |id: u32| ids.iter().filter(|&&i| i == id).count() as f32;
        for (row, values) in dx
            .to_dtype(DType::F32)?
            .to_vec2::<f32>()?
            .iter()
            .enumerate()
        {
            let want = half::bf16::from_f32(third * count(row as u32)).to_f32();
            assert_eq!(values, &vec![want; 3], "row {row}");
        }
        Ok(())
    }

    /// An id past the table is an error, not a panic.
    #[test]
    fn an_id_past_the_table_is_an_error() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let index = HostIndex::new(&[0, 4], &dev)?;
        let x = Tensor::zeros((4, 2), DType::F32, &dev)?;
        let err = index.select(&x, 0).expect_err("id 4 of 4 rows");
        assert!(err.to_string().contains("id 4 is past the 4 rows"), "{err}");
        Ok(())
    }
}
