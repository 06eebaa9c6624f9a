//! Staging a run for a compute target: its folder there with `run.json` (the configuration as
//! the nodes see it), its data and, over SSH, the model folder.

use std::path::Path;

use super::shell::Shell;
use super::TargetSettings;
use crate::run_config::{DataConfig, RunConfig};
use crate::{fingerprint, App, AppError};

/// What `hone remote-exec` reads from a run's folder.
#[derive(Debug, serde::Serialize, serde::Deserialize)]
pub(super) struct StagedRun {
    pub config: RunConfig,
    pub name: Option<String>,
}

/// The file name of a staged run's description.
pub(super) const RUN_FILE: &str = "run.json";
/// The database a staged run trains into (a snapshot of its dataset when it has one).
pub(super) const DB_FILE: &str = "hone.db";
/// The events a staged run appends, one JSON object a line.
pub(super) const EVENTS_FILE: &str = "events.jsonl";

fn unsupported(run: i64, what: &str) -> AppError {
    AppError::Invalid(format!(
        "run {run} uses {what}, which runs on this machine only for now; start it here"
    ))
}

impl App {
    /// Stages run `run` in folder `dir` of the target.
    pub(super) fn stage_run(
        &self,
        run: &hone_store::RunRecord,
        settings: &TargetSettings,
        shell: &Shell,
        dir: &str,
    ) -> Result<(), AppError> {
        let mut config = RunConfig::of_run(run)?;
        if config.ensemble.is_some() {
            return Err(AppError::Invalid(format!(
                "run {} is an ensemble of other runs; it has nothing to train",
                run.id
            )));
        }
        if !config.also.is_empty() {
            return Err(unsupported(run.id, "several tasks (multi-task learning)"));
        }
        if config.teacher.is_some() {
            return Err(unsupported(run.id, "a teacher (distillation)"));
        }
        if config.ewc.is_some() {
            return Err(unsupported(run.id, "a previous task (EWC)"));
        }
        if shell.exists(dir)? {
            return Err(AppError::Invalid(format!(
                "{dir} exists on {} already; choose another folder for the target",
                shell.describe()
            )));
        }
        config.model = match shell {
            Shell::Here => config.model.canonicalize().map_err(|e| AppError::Io {
                path: config.model.clone(),
                source: e,
            })?,
            Shell::Ssh { .. } => {
                // One copy per model on the cluster, named by its contents.
                let fp = fingerprint::model(&config.model)?;
                let there = format!("{}/models/{fp}", settings.dir.trim_end_matches('/'));
                if !shell.exists(&there)? {
                    shell.put_dir(&config.model, &there)?;
                }
                there.into()
            }
        };
        match &mut config.data {
            DataConfig::Files(files) => {
                files.train = put_file(shell, &files.train, dir, "train")?.into();
                if let Some(valid) = &files.valid {
                    files.valid = Some(put_file(shell, valid, dir, "valid")?.into());
                }
            }
            DataConfig::Stored(_) => {
                let dataset = run.dataset_id.ok_or_else(|| {
                    AppError::Invalid(format!("run {} names a dataset it does not hold", run.id))
                })?;
                let there = format!("{dir}/{DB_FILE}");
                match shell {
                    // On this machine the snapshot is written in place, once.
                    Shell::Here => {
                        std::fs::create_dir_all(dir).map_err(|e| AppError::Io {
                            path: dir.into(),
                            source: e,
                        })?;
                        self.store.snapshot_dataset(dataset, Path::new(&there))?;
                    }
                    Shell::Ssh { .. } => {
                        let runs_dir = self.runs_dir();
                        std::fs::create_dir_all(&runs_dir).map_err(|e| AppError::Io {
                            path: runs_dir.clone(),
                            source: e,
                        })?;
                        let snapshot = runs_dir.join(format!("snapshot-run{}.db", run.id));
                        let _ = std::fs::remove_file(&snapshot);
                        self.store.snapshot_dataset(dataset, &snapshot)?;
                        let bytes = std::fs::read(&snapshot).map_err(|e| AppError::Io {
                            path: snapshot.clone(),
                            source: e,
                        });
                        let _ = std::fs::remove_file(&snapshot);
                        shell.write(&there, &bytes?)?;
                    }
                }
            }
        }
        config.out = None;
        let staged = StagedRun {
            config,
            name: run.name.clone(),
        };
        let text =
            serde_json::to_vec_pretty(&staged).map_err(|e| AppError::Invalid(e.to_string()))?;
        shell.write(&format!("{dir}/{RUN_FILE}"), &text)
    }
}

/// Copies data file `file` into the run's folder as `data/<part>.<extension>`; its path there.
fn put_file(shell: &Shell, file: &Path, dir: &str, part: &str) -> Result<String, AppError> {
    let bytes = std::fs::read(file).map_err(|e| AppError::Io {
        path: file.to_path_buf(),
        source: e,
    })?;
    let name = match file.extension().and_then(|e| e.to_str()) {
        Some(ext) => format!("{part}.{ext}"),
        None => part.to_string(),
    };
    let there = format!("{dir}/data/{name}");
    shell.write(&there, &bytes)?;
    Ok(there)
}
