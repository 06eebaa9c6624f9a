//! Choosing the compute device: `auto`, `cpu`, `cuda[:N]`, `metal[:N]`.

use std::fmt;
use std::str::FromStr;

use candle_core::Device;
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// Where tensors live and kernels run.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(try_from = "String", into = "String")]
pub enum DeviceSpec {
    /// A CUDA or Metal GPU when Hone was built with one and it is present, else the CPU.
    Auto,
    /// The CPU (the default).
    #[default]
    Cpu,
    /// CUDA GPU number N (needs a build with `--features cuda`).
    Cuda(usize),
    /// Metal GPU number N (needs a build with `--features metal`, macOS).
    Metal(usize),
}

impl FromStr for DeviceSpec {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let s = s.trim().to_ascii_lowercase();
        let (kind, ordinal) = match s.split_once(':') {
            Some((k, n)) => (
                k,
                n.parse::<usize>().map_err(|_| {
                    format!("'{s}': the device number after ':' must be an integer")
                })?,
            ),
            None => (s.as_str(), 0),
        };
        match kind {
            "auto" => Ok(DeviceSpec::Auto),
            "cpu" => Ok(DeviceSpec::Cpu),
            "cuda" | "gpu" => Ok(DeviceSpec::Cuda(ordinal)),
            "metal" | "mps" => Ok(DeviceSpec::Metal(ordinal)),
            _ => Err(format!(
                "unknown device '{s}': use auto, cpu, cuda, cuda:N or metal"
            )),
        }
    }
}

impl TryFrom<String> for DeviceSpec {
    type Error = String;
    fn try_from(s: String) -> Result<Self, Self::Error> {
        s.parse()
    }
}

impl From<DeviceSpec> for String {
    fn from(d: DeviceSpec) -> String {
        d.to_string()
    }
}

impl fmt::Display for DeviceSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            DeviceSpec::Auto => write!(f, "auto"),
            DeviceSpec::Cpu => write!(f, "cpu"),
            DeviceSpec::Cuda(n) => write!(f, "cuda:{n}"),
            DeviceSpec::Metal(n) => write!(f, "metal:{n}"),
        }
    }
}

impl DeviceSpec {
    /// Opens the device, or says why it cannot be used.
    pub fn open(self) -> Result<Device, EngineError> {
        match self {
            DeviceSpec::Cpu => Ok(Device::Cpu),
            DeviceSpec::Auto => {
                if candle_core::utils::cuda_is_available() {
                    if let Ok(d) = Device::new_cuda(0) {
                        return Ok(for_training(d));
                    }
                }
                if candle_core::utils::metal_is_available() {
                    if let Ok(d) = Device::new_metal(0) {
                        return Ok(d);
                    }
                }
                Ok(Device::Cpu)
            }
            DeviceSpec::Cuda(n) => {
                if !candle_core::utils::cuda_is_available() {
                    return Err(EngineError::DeviceUnavailable {
                        device: self.to_string(),
                        reason: "this build of Hone has no CUDA support; rebuild with `cargo build --release --features cuda` (needs the CUDA toolkit's nvcc) or train on the CPU".into(),
                    });
                }
                Device::new_cuda(n)
                    .map(for_training)
                    .map_err(|e| EngineError::DeviceUnavailable {
                        device: self.to_string(),
                        reason: format!("{e}; check `nvidia-smi` and the device number"),
                    })
            }
            DeviceSpec::Metal(n) => {
                if !candle_core::utils::metal_is_available() {
                    return Err(EngineError::DeviceUnavailable {
                        device: self.to_string(),
                        reason: "this build of Hone has no Metal support; rebuild on macOS with `cargo build --release --features metal` or train on the CPU".into(),
                    });
                }
                Device::new_metal(n).map_err(|e| EngineError::DeviceUnavailable {
                    device: self.to_string(),
                    reason: e.to_string(),
                })
            }
        }
    }
}

/// A newly opened GPU set up for training's pattern of allocations (each step allocates and
/// frees the same few gigabytes): on an NVIDIA GPU the memory pool keeps what is freed
/// instead of handing it back to the driver at every synchronisation (its default release
/// threshold is zero, so each step mapped its memory anew; [`release_cached`] hands it back
/// between phases), and no CUDA events are made per allocation. Either setting failing
/// leaves the default, which is only slower.
fn for_training(device: Device) -> Device {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = &device {
        use candle_core::cuda_backend::cudarc::driver::sys;
        let context = cuda.cuda_stream().context().clone();
        // cudarc records and waits on events only when a context has streams of its own;
        // candle's device runs on the calling thread's default stream (it made none), so the
        // events it would make per allocation are never used.
        if !context.is_in_multi_stream_mode() {
            // SAFETY: no stream of this context orders its work by events (above).
            unsafe { cuda.disable_event_tracking() };
        }
        if let Some(pool) = memory_pool(cuda) {
            let mut keep_all = u64::MAX;
            // SAFETY: the pool is the device's own; the attribute takes a pointer to a u64.
            let _ = unsafe {
                sys::cuMemPoolSetAttribute(
                    pool,
                    sys::CUmemPool_attribute::CU_MEMPOOL_ATTR_RELEASE_THRESHOLD,
                    (&mut keep_all as *mut u64).cast(),
                )
            };
        }
    }
    device
}

/// Hands back to the driver the memory an NVIDIA GPU's pool keeps (see [`for_training`]) once
/// its queued work is done: before an evaluation (its buffers and kernels are not the step's)
/// and when a run ends, so that other allocations, this process's and others', find it.
/// Nothing for other devices. An error of the queued work (the synchronisation's) is returned
/// and nothing is handed back; a pool that cannot be trimmed just keeps its memory.
pub fn release_cached(device: &Device) -> candle_core::Result<()> {
    #[cfg(feature = "cuda")]
    if let Device::Cuda(cuda) = device {
        device.synchronize()?;
        if let Some(pool) = memory_pool(cuda) {
            // SAFETY: the pool is the device's own; nothing it holds is in use after the
            // synchronisation.
            let _ =
                unsafe { candle_core::cuda_backend::cudarc::driver::sys::cuMemPoolTrimTo(pool, 0) };
        }
    }
    #[cfg(not(feature = "cuda"))]
    let _ = device;
    Ok(())
}

/// The default memory pool of a CUDA device (what cudarc's asynchronous allocations draw
/// from), `None` if the driver gives none.
#[cfg(feature = "cuda")]
fn memory_pool(
    cuda: &candle_core::CudaDevice,
) -> Option<candle_core::cuda_backend::cudarc::driver::sys::CUmemoryPool> {
    use candle_core::cuda_backend::cudarc::driver::sys;
    let mut pool: sys::CUmemoryPool = std::ptr::null_mut();
    // SAFETY: `pool` is written by the call for the device of a live context.
    unsafe { sys::cuDeviceGetDefaultMemPool(&mut pool, cuda.cuda_stream().context().cu_device()) }
        .result()
        .ok()
        .filter(|_| !pool.is_null())
        .map(|()| pool)
}

/// A short human name of an opened device ("cpu", "cuda:0", "metal:0").
pub fn device_name(device: &Device) -> String {
    match device.location() {
        candle_core::DeviceLocation::Cpu => "cpu".into(),
        candle_core::DeviceLocation::Cuda { gpu_id } => format!("cuda:{gpu_id}"),
        candle_core::DeviceLocation::Metal { gpu_id } => format!("metal:{gpu_id}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_device_names() {
        assert_eq!("cpu".parse::<DeviceSpec>(), Ok(DeviceSpec::Cpu));
        assert_eq!("CUDA:1".parse::<DeviceSpec>(), Ok(DeviceSpec::Cuda(1)));
        assert_eq!("metal".parse::<DeviceSpec>(), Ok(DeviceSpec::Metal(0)));
        assert!("tpu".parse::<DeviceSpec>().is_err());
        assert!("cuda:x".parse::<DeviceSpec>().is_err());
    }

    #[cfg(not(feature = "cuda"))]
    #[test]
    fn cuda_without_the_feature_is_a_clear_error() {
        let err = DeviceSpec::Cuda(0).open().unwrap_err().to_string();
        assert!(err.contains("--features cuda"), "{err}");
    }

    #[test]
    fn auto_falls_back_to_a_working_device() {
        assert!(DeviceSpec::Auto.open().is_ok());
    }
}
