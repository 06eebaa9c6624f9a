//! Checkpoints on disk: model weights (safetensors, Hub names), optimizer moments and the
//! position of the run. Files are written to a temporary name and renamed, so a crash never
//! leaves a half-written checkpoint that looks complete.

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::{Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::metrics::Report;
use crate::optim::Optimizer;
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
    /// Seconds spent training up to this checkpoint, so a resumed run's time counts training
    /// only (not the time it lay stopped).
    #[serde(default)]
    pub elapsed_s: f64,
    /// fp16's dynamic loss scale when the checkpoint was written (absent in other precisions
    /// and in checkpoints from before it was saved).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub loss_scaler: Option<crate::precision::LossScaler>,
}

/// A `last` checkpoint found: everything a run needs to continue exactly where it stopped. The
/// weights and optimizer state stay on disk until they are streamed into the model and the
/// optimizer one tensor at a time (no second copy of either in memory).
pub struct ResumePoint {
    pub state: TrainerState,
    /// The checkpoint's folder.
    pub dir: PathBuf,
    /// The evaluation of the best checkpoint so far.
    pub best_report: Option<Report>,
}

impl ResumePoint {
    /// The weights, by Hub name by parameter name (for [`load_into`]).
    pub fn weights_file(&self) -> PathBuf {
        self.dir.join("model.safetensors")
    }

    /// The optimizer's buffers (for [`crate::optim::Optimizer::restore_from_file`]).
    pub fn optimizer_file(&self) -> PathBuf {
        self.dir.join("optimizer.safetensors")
    }
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
    for file in ["model.safetensors", "optimizer.safetensors"] {
        let path = dir.join(file);
        if !path.is_file() {
            return Err(EngineError::BadWeights {
                path,
                message: "the resumable checkpoint lacks this file".into(),
            });
        }
    }
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
        dir,
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

/// Reads a safetensors file tensor by tensor (only one tensor in memory at a time) and hands
/// each to `f` with its name. Plain reads rather than `weights::WeightSource`'s memory map on
/// purpose: every mapped page read stays resident until the whole file is done, which is one
/// more copy of the model at the peak this exists to avoid.
pub fn for_each_tensor(
    path: &Path,
    mut f: impl FnMut(&str, Tensor) -> Result<(), EngineError>,
) -> Result<(), EngineError> {
    use std::io::{Read, Seek, SeekFrom};
    let bad = |message: String| EngineError::BadWeights {
        path: path.to_path_buf(),
        message,
    };
    let mut file = std::fs::File::open(path).map_err(|e| EngineError::io(path, e))?;
    let file_len = file.metadata().map_err(|e| EngineError::io(path, e))?.len();
    let mut len_bytes = [0u8; 8];
    file.read_exact(&mut len_bytes)
        .map_err(|e| bad(format!("no safetensors header: {e}")))?;
    let header_len = u64::from_le_bytes(len_bytes);
    if header_len > 100_000_000 || header_len + 8 > file_len {
        return Err(bad(format!(
            "header length {header_len} does not fit the file"
        )));
    }
    let mut header = vec![0u8; header_len as usize];
    file.read_exact(&mut header)
        .map_err(|e| bad(format!("truncated header: {e}")))?;
    let header: HashMap<String, serde_json::Value> =
        serde_json::from_slice(&header).map_err(|e| bad(format!("unreadable header: {e}")))?;
    let mut entries: Vec<(String, SafetensorsEntry)> = header
        .into_iter()
        .filter(|(name, _)| name != "__metadata__")
        .map(|(name, value)| {
            serde_json::from_value(value)
                .map(|entry| (name.clone(), entry))
                .map_err(|e| bad(format!("tensor {name}: {e}")))
        })
        .collect::<Result<_, _>>()?;
    entries.sort_by_key(|(_, e)| e.data_offsets.0);
    let data_start = 8 + header_len;
    for (name, entry) in entries {
        let dtype = match entry.dtype.as_str() {
            "F32" => candle_core::DType::F32,
            "F16" => candle_core::DType::F16,
            "BF16" => candle_core::DType::BF16,
            other => return Err(bad(format!("tensor {name} has unsupported dtype {other}"))),
        };
        let (start, end) = entry.data_offsets;
        let expected = entry.shape.iter().product::<usize>() as u64 * dtype.size_in_bytes() as u64;
        if end < start || end - start != expected || data_start + end > file_len {
            return Err(bad(format!("tensor {name} has inconsistent offsets")));
        }
        file.seek(SeekFrom::Start(data_start + start))
            .map_err(|e| EngineError::io(path, e))?;
        let tensor = if dtype == candle_core::DType::F32 {
            // Read straight into the tensor's own buffer: no second copy of the bytes.
            let mut values = vec![0f32; (end - start) as usize / 4];
            file.read_exact(bytemuck::cast_slice_mut(&mut values))
                .map_err(|e| EngineError::io(path, e))?;
            if cfg!(target_endian = "big") {
                values
                    .iter_mut()
                    .for_each(|v| *v = f32::from_bits(v.to_bits().swap_bytes()));
            }
            Tensor::from_vec(values, entry.shape.as_slice(), &Device::Cpu)?
        } else {
            let mut bytes = vec![0u8; (end - start) as usize];
            file.read_exact(&mut bytes)
                .map_err(|e| EngineError::io(path, e))?;
            Tensor::from_raw_buffer(&bytes, dtype, &entry.shape, &Device::Cpu)?
        };
        f(&name, tensor)?;
    }
    Ok(())
}

/// Copies the tensors of a safetensors checkpoint into `params` (by name) one at a time, so
/// restoring needs no second copy of the model in memory; every parameter must be there
/// (`family` is for the message). One read serves every head of a multi-task model when
/// `params` holds them all.
pub fn load_into(params: &ParamStore, path: &Path, family: &str) -> Result<(), EngineError> {
    let mut seen = std::collections::HashSet::new();
    for_each_tensor(path, |name, value| {
        if let Some(p) = params.get(name) {
            let var = p.var();
            var.set(
                &value
                    .to_dtype(candle_core::DType::F32)?
                    .to_device(var.device())?,
            )?;
            seen.insert(name.to_string());
        }
        Ok(())
    })?;
    if let Some(missing) = params.all().iter().find(|p| !seen.contains(p.name())) {
        return Err(EngineError::MissingTensor {
            dir: path.to_path_buf(),
            name: missing.name().to_string(),
            family: family.to_string(),
        });
    }
    Ok(())
}

/// One tensor's entry in a safetensors header.
#[derive(Deserialize)]
struct SafetensorsEntry {
    dtype: String,
    shape: Vec<usize>,
    data_offsets: (u64, u64),
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
pub fn write_dir_atomic(
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
    report: &Report,
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
    optimizer: &Optimizer,
    state: &TrainerState,
) -> Result<(), EngineError> {
    write_dir_atomic(dir, |tmp| {
        save_tensors(&params.values(), &tmp.join("model.safetensors"))?;
        let path = tmp.join("optimizer.safetensors");
        safetensors::serialize_to_file(optimizer.moment_views()?, None, &path)
            .map_err(|e| export_error(&path, e))?;
        let json = serde_json::to_string_pretty(state).map_err(|e| export_error(tmp, e))?;
        write_atomic(&tmp.join("trainer_state.json"), json.as_bytes())
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tensors_stream_back_as_written_and_broken_files_are_errors() {
        let dir = tempfile::tempdir().expect("tmp");
        let path = dir.path().join("t.safetensors");
        let a = Tensor::arange(0f32, 6.0, &Device::Cpu)
            .and_then(|t| t.reshape((2, 3)))
            .expect("tensor");
        let b = Tensor::new(&[7f32], &Device::Cpu).expect("tensor");
        let tensors = HashMap::from([("a".to_string(), a.clone()), ("b".to_string(), b)]);
        save_tensors(&tensors, &path).expect("saved");
        let mut seen = Vec::new();
        for_each_tensor(&path, |name, t| {
            seen.push((name.to_string(), t.flatten_all()?.to_vec1::<f32>()?));
            Ok(())
        })
        .expect("read");
        seen.sort_by(|x, y| x.0.cmp(&y.0));
        assert_eq!(seen[0], ("a".to_string(), vec![0., 1., 2., 3., 4., 5.]));
        assert_eq!(seen[1], ("b".to_string(), vec![7.]));

        let bytes = std::fs::read(&path).expect("read");
        std::fs::write(&path, &bytes[..bytes.len() - 4]).expect("write");
        let err = for_each_tensor(&path, |_, _| Ok(())).expect_err("truncated");
        assert!(err.to_string().contains("inconsistent offsets"), "{err}");
        std::fs::write(&path, b"\xff\xff\xff\xff\xff\xff\xff\xff").expect("write");
        let err = for_each_tensor(&path, |_, _| Ok(())).expect_err("garbage");
        assert!(err.to_string().contains("header length"), "{err}");
    }
}
