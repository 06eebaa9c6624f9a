//! The memory this machine has for training: RAM (total and available now) and, when Hone was
//! built with CUDA, the GPU's memory as `nvidia-smi` reports it.

use hone_engine::device::DeviceSpec;
use serde::{Deserialize, Serialize};

/// Memory of the machine, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineMemory {
    pub ram_total: u64,
    /// What can be allocated now without swapping (Linux's MemAvailable).
    pub ram_available: u64,
    /// Every GPU that answers, in `cuda:N` order (empty without a GPU backend).
    #[serde(default)]
    pub gpus: Vec<GpuMemory>,
    /// The GPU backend this build has ("cuda", "metal"), `None` for a CPU-only build.
    #[serde(default)]
    pub gpu_backend: Option<String>,
}

/// One GPU's memory, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuMemory {
    /// Its number N in `--device cuda:N`.
    #[serde(default)]
    pub index: usize,
    pub name: String,
    pub total: u64,
    pub free: u64,
}

/// The memory a run on a device is judged against.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Judged<'a> {
    /// The RAM, for the CPU.
    Ram,
    /// The RAM, for an Apple GPU (its memory is the RAM; it runs the autograd graph).
    Unified,
    /// An NVIDIA GPU's.
    Gpu(&'a GpuMemory),
    /// The device names a GPU this machine (or this build) does not have: why.
    Missing(String),
}

impl MachineMemory {
    /// What a run on `device` is judged against: `cpu` the RAM, `metal` the RAM an Apple GPU
    /// shares, `cuda:N` GPU N, `auto` the first NVIDIA GPU when there is one, else an Apple
    /// GPU's or the CPU's RAM.
    ///
    /// GPUs are numbered as `nvidia-smi` lists them (PCI bus order), which is CUDA's order
    /// unless `CUDA_VISIBLE_DEVICES` or `CUDA_DEVICE_ORDER` say otherwise.
    pub fn judged(&self, device: DeviceSpec) -> Judged<'_> {
        let metal = self.gpu_backend.as_deref() == Some("metal");
        match device {
            DeviceSpec::Cpu => Judged::Ram,
            DeviceSpec::Metal(_) if metal => Judged::Unified,
            DeviceSpec::Metal(_) => {
                Judged::Missing(format!("{device}: this build of Hone has no Metal support"))
            }
            DeviceSpec::Auto => match self.gpus.first() {
                Some(gpu) => Judged::Gpu(gpu),
                None if metal => Judged::Unified,
                None => Judged::Ram,
            },
            DeviceSpec::Cuda(n) => match self.gpus.iter().find(|g| g.index == n) {
                Some(gpu) => Judged::Gpu(gpu),
                None if self.gpu_backend.as_deref() != Some("cuda") => {
                    Judged::Missing(format!("{device}: this build of Hone has no CUDA support"))
                }
                None if self.gpus.is_empty() => Judged::Missing(format!(
                    "{device}: nvidia-smi lists no NVIDIA GPU on this machine"
                )),
                None => Judged::Missing(format!(
                    "{device}: not on this machine (it has {})",
                    self.gpus
                        .iter()
                        .map(|g| format!("cuda:{}", g.index))
                        .collect::<Vec<_>>()
                        .join(", ")
                )),
            },
        }
    }
}

/// Threads the CPU training path uses.
pub fn training_threads() -> usize {
    hone_engine::candle_core::utils::get_num_threads()
}

/// Measures (once per process) the CPU's matrix-multiply speeds (f32, and bf16 where the CPU
/// has it) the training-time estimates are scaled by; later calls return the kept figures.
pub fn measure_cpu_speed() -> hone_engine::speed::MatrixRates {
    hone_engine::speed::cpu_matrix_rates()
}

/// Reads the machine's memory now.
pub fn machine_memory() -> MachineMemory {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    let cuda = hone_engine::candle_core::utils::cuda_is_available();
    let gpus = if cuda { nvidia_gpus() } else { Vec::new() };
    MachineMemory {
        ram_total: system.total_memory(),
        ram_available: system.available_memory(),
        gpus,
        gpu_backend: if cuda {
            Some("cuda".into())
        } else if hone_engine::candle_core::utils::metal_is_available() {
            Some("metal".into())
        } else {
            None
        },
    }
}

/// The GPUs `nvidia-smi` sees (none if the tool is missing or fails).
fn nvidia_gpus() -> Vec<GpuMemory> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=index,name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ])
        .output();
    match out {
        Ok(out) if out.status.success() => parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout)),
        _ => Vec::new(),
    }
}

/// Parses `index, name, total MiB, free MiB` lines (lines that do not parse are skipped).
fn parse_nvidia_smi(text: &str) -> Vec<GpuMemory> {
    let parse = |line: &str| -> Option<GpuMemory> {
        let mut parts = line.split(',').map(str::trim);
        let index: usize = parts.next()?.parse().ok()?;
        let name = parts.next()?.to_string();
        let total: u64 = parts.next()?.parse().ok()?;
        let free: u64 = parts.next()?.parse().ok()?;
        Some(GpuMemory {
            index,
            name,
            total: total << 20,
            free: free << 20,
        })
    };
    text.lines().filter_map(parse).collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine_and_parses_nvidia_smi() {
        let m = machine_memory();
        assert!(m.ram_total > 0 && m.ram_available <= m.ram_total);
        let gpus = parse_nvidia_smi(
            "0, NVIDIA H100 80GB HBM3, 81559, 80987\n1, NVIDIA H100 80GB HBM3, 81559, 1024\n",
        );
        assert_eq!(gpus.len(), 2);
        assert_eq!(gpus[0].name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpus[0].total, 81559 << 20);
        assert_eq!(gpus[0].free, 80987 << 20);
        assert_eq!((gpus[1].index, gpus[1].free), (1, 1024 << 20));
        assert!(parse_nvidia_smi("No devices were found").is_empty());
        // Without a GPU backend no GPU is listed.
        if m.gpu_backend.is_none() {
            assert!(m.gpus.is_empty());
            assert_eq!(m.judged(DeviceSpec::Auto), Judged::Ram);
        }
    }
}
