//! Checkpoints on disk: model weights (safetensors, Hub names), optimizer moments and the
//! position of the run. Files are written to a temporary name and renamed, so a crash never
//! leaves a half-written checkpoint that looks complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::metrics::ClassificationReport;
use crate::optim::AdamWState;
use crate::params::ParamStore;
use crate::EngineError;

/// Where the run stands, saved beside the weights of a `last` checkpoint.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TrainerState {
    /// Optimizer steps done.
    pub step: u64,
    /// Epoch in progress (0-based) and examples of it already consumed.
    pub epoch: u32,
    pub examples_in_epoch: u64,
    pub best_step: Option<u64>,
    pub best_value: Option<f64>,
    pub evals_without_improvement: u32,
    pub optimizer_steps: HashMap<String, u64>,
}

fn export_error(path: &Path, e: impl std::fmt::Display) -> EngineError {
    EngineError::Export {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

/// Writes `bytes` to `path` through a temporary file and a rename.
pub fn write_atomic(path: &Path, bytes: &[u8]) -> Result<(), EngineError> {
    let tmp = temp_name(path);
    std::fs::write(&tmp, bytes).map_err(|e| export_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| export_error(path, e))
}

fn temp_name(path: &Path) -> PathBuf {
    let name = path
        .file_name()
        .map(|n| n.to_string_lossy().to_string())
        .unwrap_or_default();
    path.with_file_name(format!(".{name}.partial"))
}

/// Saves tensors as safetensors at `path`, atomically.
pub fn save_tensors(tensors: &HashMap<String, Tensor>, path: &Path) -> Result<(), EngineError> {
    let tmp = temp_name(path);
    let on_cpu: HashMap<String, Tensor> = tensors
        .iter()
        .map(|(k, v)| Ok((k.clone(), v.to_device(&Device::Cpu)?.contiguous()?)))
        .collect::<Result<_, candle_core::Error>>()?;
    candle_core::safetensors::save(&on_cpu, &tmp).map_err(|e| export_error(&tmp, e))?;
    std::fs::rename(&tmp, path).map_err(|e| export_error(path, e))
}

/// Loads all tensors of a safetensors file onto the CPU.
pub fn load_tensors(path: &Path) -> Result<HashMap<String, Tensor>, EngineError> {
    candle_core::safetensors::load(path, &Device::Cpu).map_err(|e| EngineError::BadWeights {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

/// Saves the model weights of the best checkpoint and its evaluation into `dir`.
pub fn save_best(
    dir: &Path,
    params: &ParamStore,
    report: &ClassificationReport,
    step: u64,
) -> Result<(), EngineError> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    save_tensors(&params.values(), &dir.join("model.safetensors"))?;
    let meta = serde_json::json!({ "step": step, "report": report });
    write_atomic(
        &dir.join("evaluation.json"),
        serde_json::to_string_pretty(&meta)
            .map_err(|e| export_error(dir, e))?
            .as_bytes(),
    )
}

/// Saves weights, optimizer moments and the run position into `dir` (a `last` checkpoint).
pub fn save_last(
    dir: &Path,
    params: &ParamStore,
    optimizer: &AdamWState,
    state: &TrainerState,
) -> Result<(), EngineError> {
    std::fs::create_dir_all(dir).map_err(|e| EngineError::io(dir, e))?;
    save_tensors(&params.values(), &dir.join("model.safetensors"))?;
    save_tensors(&optimizer.tensors, &dir.join("optimizer.safetensors"))?;
    let json = serde_json::to_string_pretty(state).map_err(|e| export_error(dir, e))?;
    write_atomic(&dir.join("trainer_state.json"), json.as_bytes())
}
