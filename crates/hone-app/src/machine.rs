//! The memory this machine has for training: RAM (total and available now) and, when Hone was
//! built with CUDA, the GPU's memory as `nvidia-smi` reports it.

use serde::{Deserialize, Serialize};

/// Memory of the machine, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct MachineMemory {
    pub ram_total: u64,
    /// What can be allocated now without swapping (Linux's MemAvailable).
    pub ram_available: u64,
    /// The first GPU, when a GPU backend is compiled in and one answers.
    pub gpu: Option<GpuMemory>,
}

/// One GPU's memory, in bytes.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct GpuMemory {
    pub name: String,
    pub total: u64,
    pub free: u64,
}

/// Threads the CPU training path uses.
pub fn training_threads() -> usize {
    hone_engine::candle_core::utils::get_num_threads()
}

/// Measures (once per process) the CPU's matrix-multiply speed the training-time estimates
/// are scaled by; later calls return the kept figure.
pub fn measure_cpu_speed() -> f64 {
    hone_engine::speed::cpu_matmul_gflops()
}

/// Reads the machine's memory now.
pub fn machine_memory() -> MachineMemory {
    let mut system = sysinfo::System::new();
    system.refresh_memory();
    MachineMemory {
        ram_total: system.total_memory(),
        ram_available: system.available_memory(),
        gpu: if hone_engine::candle_core::utils::cuda_is_available() {
            nvidia_gpu()
        } else {
            None
        },
    }
}

/// The first GPU from `nvidia-smi`, if the tool is installed and sees one.
fn nvidia_gpu() -> Option<GpuMemory> {
    let out = std::process::Command::new("nvidia-smi")
        .args([
            "--query-gpu=name,memory.total,memory.free",
            "--format=csv,noheader,nounits",
        ])
        .output()
        .ok()?;
    if !out.status.success() {
        return None;
    }
    parse_nvidia_smi(&String::from_utf8_lossy(&out.stdout))
}

/// Parses `name, total MiB, free MiB` (the first line).
fn parse_nvidia_smi(text: &str) -> Option<GpuMemory> {
    let line = text.lines().next()?;
    let mut parts = line.split(',').map(str::trim);
    let name = parts.next()?.to_string();
    let total: u64 = parts.next()?.parse().ok()?;
    let free: u64 = parts.next()?.parse().ok()?;
    Some(GpuMemory {
        name,
        total: total << 20,
        free: free << 20,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_this_machine_and_parses_nvidia_smi() {
        let m = machine_memory();
        assert!(m.ram_total > 0 && m.ram_available <= m.ram_total);
        let gpu = parse_nvidia_smi("NVIDIA H100 80GB HBM3, 81559, 80987\n").expect("parses");
        assert_eq!(gpu.name, "NVIDIA H100 80GB HBM3");
        assert_eq!(gpu.total, 81559 << 20);
        assert_eq!(gpu.free, 80987 << 20);
        assert_eq!(parse_nvidia_smi("No devices were found"), None);
    }
}
