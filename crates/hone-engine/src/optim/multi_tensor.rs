//! The optimizer's work over every parameter in one kernel launch on an NVIDIA GPU
//! (`kernels/multi_tensor.cu`), as PyTorch's fused and `foreach` AdamW do: AdamW's update of
//! every f32 parameter, and every gradient's sum of squares (the gradient norm, read back
//! once). One operation a tensor was three launches a parameter for AdamW and one for the
//! norm (BERT-base: 805 launches, most over a few hundred values, and a single block for each
//! sum of squares, however large the tensor).
//!
//! Each block of a kernel covers [`CHUNK`] values of one tensor; the host sends the tensors'
//! addresses and lengths and each block's tensor and first value in one table. Elsewhere (the
//! CPU) the same arithmetic runs tensor by tensor (`in_place`), and a census
//! (`hone bench --census`) counts it as the one launch a GPU makes.

use candle_core::Tensor;

use super::{in_place, AdamUpdate};

/// Values one block of the multi-tensor kernels covers.
#[cfg(any(feature = "cuda", test))]
const CHUNK: usize = 65_536;

/// For tensors of `lens` values: each block's tensor, and its first value, in order.
#[cfg(any(feature = "cuda", test))]
fn blocks(lens: &[usize]) -> (Vec<u64>, Vec<u64>) {
    let mut tensor = Vec::new();
    let mut start = Vec::new();
    for (t, &n) in lens.iter().enumerate() {
        for s in (0..n).step_by(CHUNK) {
            tensor.push(t as u64);
            start.push(s as u64);
        }
    }
    (tensor, start)
}

/// The bytes of `n` f32 values.
fn f32_bytes(n: usize) -> usize {
    n * std::mem::size_of::<f32>()
}

/// One parameter's AdamW update: its weights, gradient and moments (f32, contiguous, of one
/// shape: `in_place::supports`) and the step's constants.
pub(super) struct AdamJob {
    pub p: Tensor,
    pub g: Tensor,
    pub m: Tensor,
    pub v: Tensor,
    pub u: AdamUpdate,
}

/// Every job's update (the gradients times `grad_scale`), the moments updated in place too:
/// one launch on an NVIDIA GPU (every tensor on it), one operation a tensor on the CPU.
pub(super) fn adamw(jobs: &[AdamJob], grad_scale: f32) -> candle_core::Result<()> {
    if jobs.is_empty() {
        return Ok(());
    }
    // Each value: the weight, gradient and moments read, the weight and moments written.
    let values: usize = jobs.iter().map(|j| j.p.elem_count()).sum();
    candle_core::census::as_one("hone-adamw-multi", f32_bytes(7 * values), || {
        #[cfg(feature = "cuda")]
        if let Some(dev) = cuda::one_device(jobs.iter().flat_map(|j| [&j.p, &j.g, &j.m, &j.v])) {
            return cuda::adamw(&dev, jobs, grad_scale);
        }
        if jobs.iter().any(|j| !j.p.device().is_cpu()) {
            candle_core::bail!("AdamW's update needs every parameter on one device");
        }
        for j in jobs {
            in_place::adamw(&j.p, &j.g, &j.m, &j.v, j.u, grad_scale)?;
        }
        Ok(())
    })
}

/// Each tensor's sum of squares (f32 tensors on the CPU or one NVIDIA GPU; `None`
/// otherwise), with one launch and one read-back on a GPU.
pub(super) fn sums_of_squares(tensors: &[&Tensor]) -> candle_core::Result<Option<Vec<f32>>> {
    if tensors.is_empty() {
        return Ok(Some(Vec::new()));
    }
    let values: usize = tensors.iter().map(|t| t.elem_count()).sum();
    candle_core::census::as_one("hone-sums-of-squares-multi", f32_bytes(values), || {
        #[cfg(feature = "cuda")]
        if let Some(dev) = cuda::one_device(tensors.iter().copied()) {
            return cuda::sums_of_squares(&dev, tensors).map(Some);
        }
        in_place::sums_of_squares(tensors)
    })
}

/// The launches, through raw device addresses: the tensors are contiguous f32 on one device,
/// and candle runs everything on that device's one stream, so the kernel sees every earlier
/// write and every later operation sees its.
#[cfg(feature = "cuda")]
mod cuda {
    use candle_core::cuda_backend::cudarc::driver::{DevicePtr, LaunchConfig, PushKernelArg};
    use candle_core::cuda_backend::{CudaDevice, WrapErr};
    use candle_core::{DType, Device, Storage, Tensor};

    use super::{blocks, AdamJob, CHUNK};

    /// Threads of a block of the multi-tensor kernels.
    const THREADS: u32 = 512;

    /// The one NVIDIA GPU all `tensors` (contiguous f32) are on; `None` when they are not
    /// all there.
    pub(super) fn one_device<'a>(
        mut tensors: impl Iterator<Item = &'a Tensor>,
    ) -> Option<CudaDevice> {
        let first = tensors.next()?;
        let Device::Cuda(dev) = first.device() else {
            return None;
        };
        let fits = |t: &Tensor| {
            t.dtype() == DType::F32 && t.is_contiguous() && t.device().same_device(first.device())
        };
        (fits(first) && tensors.all(fits)).then(|| dev.clone())
    }

    /// The device addresses of `tensors`' first values (checked contiguous f32 on `dev`),
    /// read while `use_them` runs (their storages stay locked for reading).
    fn with_addresses<R>(
        dev: &CudaDevice,
        tensors: &[&Tensor],
        use_them: impl FnOnce(&[u64]) -> candle_core::Result<R>,
    ) -> candle_core::Result<R> {
        let stream = dev.cuda_stream();
        let guards: Vec<_> = tensors.iter().map(|t| t.storage_and_layout()).collect();
        let mut addresses = Vec::with_capacity(tensors.len());
        let mut syncs = Vec::with_capacity(tensors.len());
        for (storage, layout) in &guards {
            let Storage::Cuda(storage) = &**storage else {
                candle_core::bail!("the multi-tensor kernels run on an NVIDIA GPU only");
            };
            let Some((start, _)) = layout.contiguous_offsets() else {
                candle_core::bail!("the multi-tensor kernels need contiguous tensors");
            };
            let (address, sync) = storage.as_cuda_slice::<f32>()?.device_ptr(&stream);
            addresses.push(address + (start * std::mem::size_of::<f32>()) as u64);
            syncs.push(sync);
        }
        let out = use_them(&addresses);
        drop(syncs);
        out
    }

    /// One launch of `blocks` blocks.
    fn grid(blocks: usize) -> candle_core::Result<LaunchConfig> {
        let blocks = u32::try_from(blocks)
            .map_err(|_| candle_core::Error::Msg(format!("{blocks} blocks in one launch")))?;
        Ok(LaunchConfig {
            grid_dim: (blocks, 1, 1),
            block_dim: (THREADS, 1, 1),
            shared_mem_bytes: 0,
        })
    }

    pub(super) fn adamw(
        dev: &CudaDevice,
        jobs: &[AdamJob],
        grad_scale: f32,
    ) -> candle_core::Result<()> {
        let mut tensors: Vec<&Tensor> = Vec::with_capacity(4 * jobs.len());
        for part in 0..4 {
            tensors.extend(jobs.iter().map(|j| match part {
                0 => &j.p,
                1 => &j.g,
                2 => &j.m,
                _ => &j.v,
            }));
        }
        let lens: Vec<usize> = jobs.iter().map(|j| j.p.elem_count()).collect();
        if jobs.iter().any(|j| {
            [&j.g, &j.m, &j.v]
                .iter()
                .any(|t| t.elem_count() != j.p.elem_count())
        }) {
            candle_core::bail!("AdamW: a gradient or moment differs from its weights in size");
        }
        let (block_tensor, block_start) = blocks(&lens);
        if block_tensor.is_empty() {
            // Every tensor is empty: nothing to update (a grid of no blocks is an error).
            return Ok(());
        }
        let constants: Vec<f32> = jobs
            .iter()
            .flat_map(|j| [j.u.decay, j.u.step_size, j.u.bias2_sqrt])
            .collect();
        let first = jobs[0].u;
        with_addresses(dev, &tensors, |addresses| {
            let mut table = addresses.to_vec();
            table.extend(lens.iter().map(|&n| n as u64));
            table.extend(&block_tensor);
            table.extend(&block_start);
            let table = dev.clone_htod(&table)?;
            let constants = dev.clone_htod(&constants)?;
            let func = dev.get_or_load_custom_func(
                "hone_adamw_multi_f32",
                "hone_multi_tensor",
                crate::ptx::MULTI_TENSOR,
            )?;
            let (count, blocks) = (jobs.len() as u32, block_tensor.len() as u32);
            let chunk = CHUNK as u64;
            let mut builder = func.builder();
            builder.arg(&table);
            builder.arg(&constants);
            candle_core::builder_arg!(
                builder,
                count,
                blocks,
                chunk,
                first.beta1,
                first.one_minus_beta1,
                first.beta2,
                first.one_minus_beta2,
                first.eps,
                grad_scale
            );
            // SAFETY: the kernel's signature is (table, constants, tensors, blocks, chunk,
            // β₁, 1−β₁, β₂, 1−β₂, ε, scale); the table holds the weights', gradients' and
            // moments' addresses, their lengths (equal per job, checked) and each block's
            // tensor and first value; constants three per job. Every job shares the betas
            // and ε (one optimizer).
            unsafe { builder.launch(grid(block_tensor.len())?) }.w()?;
            Ok(())
        })
    }

    pub(super) fn sums_of_squares(
        dev: &CudaDevice,
        tensors: &[&Tensor],
    ) -> candle_core::Result<Vec<f32>> {
        let lens: Vec<usize> = tensors.iter().map(|t| t.elem_count()).collect();
        let (block_tensor, block_start) = blocks(&lens);
        if block_tensor.is_empty() {
            return Ok(vec![0.0; tensors.len()]);
        }
        let partials = with_addresses(dev, tensors, |addresses| {
            let mut table = addresses.to_vec();
            table.extend(lens.iter().map(|&n| n as u64));
            table.extend(&block_tensor);
            table.extend(&block_start);
            let table = dev.clone_htod(&table)?;
            // SAFETY: every block writes its partial sum.
            let partials = unsafe { dev.alloc::<f32>(block_tensor.len())? };
            {
                let func = dev.get_or_load_custom_func(
                    "hone_sums_of_squares_multi_f32",
                    "hone_multi_tensor",
                    crate::ptx::MULTI_TENSOR,
                )?;
                let (count, blocks) = (tensors.len() as u32, block_tensor.len() as u32);
                let chunk = CHUNK as u64;
                let mut builder = func.builder();
                builder.arg(&table);
                candle_core::builder_arg!(builder, count, blocks, chunk);
                builder.arg(&partials);
                // SAFETY: the kernel's signature is (table, tensors, blocks, chunk,
                // partials); the table holds the tensors' addresses, lengths and each
                // block's tensor and first value; partials one float a block.
                unsafe { builder.launch(grid(block_tensor.len())?) }.w()?;
            }
            dev.clone_dtoh(&partials)
        })?;
        let mut totals = vec![0f64; tensors.len()];
        for (&t, &p) in block_tensor.iter().zip(&partials) {
            totals[t as usize] += p as f64;
        }
        Ok(totals.into_iter().map(|t| t as f32).collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device};

    #[test]
    fn blocks_cover_every_value_of_every_tensor_once() {
        let lens = [0, 5, CHUNK, CHUNK + 1, 3 * CHUNK];
        let (tensor, start) = blocks(&lens);
        assert_eq!(tensor, vec![1, 2, 3, 3, 4, 4, 4]);
        assert_eq!(
            start,
            vec![0, 0, 0, CHUNK as u64, 0, CHUNK as u64, 2 * CHUNK as u64]
        );
    }

    /// On the CPU the update is `in_place`'s, tensor by tensor (its census count is
    /// `tests/cli.rs::bench_census_counts_a_steps_operations`'s).
    #[test]
    fn every_job_is_updated_and_every_tensor_summed() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let jobs: Vec<AdamJob> = [3usize, 700]
            .iter()
            .map(|&n| -> candle_core::Result<AdamJob> {
                let p = Tensor::ones(n, DType::F32, &dev)?;
                Ok(AdamJob {
                    g: (&p * 0.5)?,
                    m: p.zeros_like()?,
                    v: p.zeros_like()?,
                    p,
                    u: AdamUpdate::new(0.9, 0.999, 1e-8, 1e-3, 0.01, 1),
                })
            })
            .collect::<Result<_, _>>()?;
        adamw(&jobs, 1.0)?;
        let grads: Vec<&Tensor> = jobs.iter().map(|j| &j.g).collect();
        assert_eq!(sums_of_squares(&grads)?, Some(vec![0.75, 175.0]));
        // The first step moves every weight by about the learning rate, decayed first.
        for j in &jobs {
            let p = j.p.to_vec1::<f32>()?;
            assert!(
                p.iter().all(|&w| (w - (1.0 - 1e-5 - 1e-3)).abs() < 1e-6),
                "{}",
                p[0]
            );
            assert!(j
                .m
                .to_vec1::<f32>()?
                .iter()
                .all(|&m| (m - 0.05).abs() < 1e-7));
        }
        Ok(())
    }
}
