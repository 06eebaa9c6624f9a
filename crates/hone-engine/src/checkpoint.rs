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
    /// The step of the last validation (so a resumed run does not validate it twice).
    #[serde(default)]
    pub last_eval_step: Option<u64>,
    pub optimizer_steps: HashMap<String, u64>,
}

/// A `last` checkpoint read back: everything a run needs to continue exactly where it stopped.
pub struct ResumePoint {
    pub state: TrainerState,
    pub weights: HashMap<String, Tensor>,
    pub optimizer: AdamWState,
    /// The evaluation of the best checkpoint so far.
    pub best_report: Option<ClassificationReport>,
}

/// Reads the `last` checkpoint of `work_dir`, if the run wrote one.
pub fn load_last(work_dir: &Path) -> Result<Option<ResumePoint>, EngineError> {
    let Some(dir) = complete_dir(&work_dir.join("last"), "trainer_state.json") else {
        return Ok(None);
    };
    let state_path = dir.join("trainer_state.json");
    let text = std::fs::read_to_string(&state_path).map_err(|e| EngineError::io(&state_path, e))?;
    let state: TrainerState = serde_json::from_str(&text).map_err(|e| EngineError::BadWeights {
        path: state_path.clone(),
        message: e.to_string(),
    })?;
    let weights = load_tensors(&dir.join("model.safetensors"))?;
    let optimizer = AdamWState {
        tensors: load_tensors(&dir.join("optimizer.safetensors"))?,
        steps: state.optimizer_steps.clone(),
    };
    let best_report = match (state.best_step, best_dir(work_dir)) {
        (Some(_), Some(best)) => {
            let path = best.join("evaluation.json");
            let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
            let value: serde_json::Value =
                serde_json::from_str(&text).map_err(|e| EngineError::BadWeights {
                    path: path.clone(),
                    message: e.to_string(),
                })?;
            Some(
                serde_json::from_value(value["report"].clone()).map_err(|e| {
                    EngineError::BadWeights {
                        path,
                        message: e.to_string(),
                    }
                })?,
            )
        }
        _ => None,
    };
    Ok(Some(ResumePoint {
        state,
        weights,
        optimizer,
        best_report,
    }))
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

/// Writes a checkpoint folder as a whole: `fill` writes its files into `<dir>.partial`, which
/// then replaces `dir` by renames. A crash at any moment leaves either the old folder (as
/// `dir` or `<dir>.old`) or the new one complete, never a mix of the two.
fn write_dir_atomic(
    dir: &Path,
    fill: impl FnOnce(&Path) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    let with_suffix = |suffix: &str| {
        let name = dir
            .file_name()
            .map(|n| n.to_string_lossy().to_string())
            .unwrap_or_default();
        dir.with_file_name(format!("{name}.{suffix}"))
    };
    let (partial, old) = (with_suffix("partial"), with_suffix("old"));
    let remove = |p: &Path| -> Result<(), EngineError> {
        if p.exists() {
            std::fs::remove_dir_all(p).map_err(|e| EngineError::io(p, e))?;
        }
        Ok(())
    };
    remove(&partial)?;
    std::fs::create_dir_all(&partial).map_err(|e| EngineError::io(&partial, e))?;
    fill(&partial)?;
    if dir.exists() {
        remove(&old)?;
        std::fs::rename(dir, &old).map_err(|e| EngineError::io(dir, e))?;
    }
    std::fs::rename(&partial, dir).map_err(|e| EngineError::io(dir, e))?;
    remove(&old)
}

/// The complete checkpoint folder `dir`, or the previous one a crash left as `<dir>.old`.
fn complete_dir(dir: &Path, marker: &str) -> Option<PathBuf> {
    if dir.join(marker).is_file() {
        return Some(dir.to_path_buf());
    }
    let name = dir.file_name()?.to_string_lossy().to_string();
    let old = dir.with_file_name(format!("{name}.old"));
    old.join(marker).is_file().then_some(old)
}

/// Saves the model weights of the best checkpoint and its evaluation into `dir`.
pub fn save_best(
    dir: &Path,
    params: &ParamStore,
    report: &ClassificationReport,
    step: u64,
) -> Result<(), EngineError> {
    write_dir_atomic(dir, |tmp| {
        save_tensors(&params.values(), &tmp.join("model.safetensors"))?;
        let meta = serde_json::json!({ "step": step, "report": report });
        write_atomic(
            &tmp.join("evaluation.json"),
            serde_json::to_string_pretty(&meta)
                .map_err(|e| export_error(tmp, e))?
                .as_bytes(),
        )
    })
}

/// The folder of the best checkpoint in `work_dir` (after a crash, possibly `best.old`).
pub fn best_dir(work_dir: &Path) -> Option<PathBuf> {
    complete_dir(&work_dir.join("best"), "evaluation.json")
}

/// Saves weights, optimizer moments and the run position into `dir` (a `last` checkpoint).
pub fn save_last(
    dir: &Path,
    params: &ParamStore,
    optimizer: &AdamWState,
    state: &TrainerState,
) -> Result<(), EngineError> {
    write_dir_atomic(dir, |tmp| {
        save_tensors(&params.values(), &tmp.join("model.safetensors"))?;
        save_tensors(&optimizer.tensors, &tmp.join("optimizer.safetensors"))?;
        let json = serde_json::to_string_pretty(state).map_err(|e| export_error(tmp, e))?;
        write_atomic(&tmp.join("trainer_state.json"), json.as_bytes())
    })
}
