//! Bringing runs on compute targets up to date in this database: their new events (the live
//! curves), the scheduler's word on their jobs, and once a job ended, the run's outcome.

use std::path::{Path, PathBuf};

use serde::Serialize;

use super::slurm::{self, JobState};
use super::stage::{DB_FILE, EVENTS_FILE};
use super::{RemoteRun, Shell};
use crate::types::{RunStatus, TrainEvent};
use crate::{App, AppError};

/// One run's state after a sync.
#[derive(Debug, Clone, Serialize)]
pub struct RemoteChange {
    pub run_id: i64,
    pub status: RunStatus,
    /// The scheduler's state of its job (PENDING, RUNNING, … or how it ended).
    pub job_state: String,
    /// Events read in this sync.
    pub events: usize,
    /// Why syncing this run failed (the others go on).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub error: Option<String>,
}

impl App {
    /// Brings every queued or running run on a compute target up to date; one change per run.
    /// A run whose job ended without finishing is marked interrupted (resume submits it again).
    pub fn sync_remote_runs(&mut self) -> Result<Vec<RemoteChange>, AppError> {
        let mut changes = Vec::new();
        for run in self.store.active_remote_runs()? {
            let change = self.sync_run(&run).unwrap_or_else(|e| RemoteChange {
                run_id: run.id,
                status: run.status,
                job_state: "unknown".into(),
                events: 0,
                error: Some(e.to_string()),
            });
            changes.push(change);
        }
        Ok(changes)
    }

    fn sync_run(&mut self, run: &hone_store::RunRecord) -> Result<RemoteChange, AppError> {
        let Some(mut placement) = RemoteRun::of(run)? else {
            return Err(AppError::Invalid(format!(
                "run {} is not on a target",
                run.id
            )));
        };
        let target = self.target(&placement.target)?;
        let shell = target.settings.shell();
        if run.cancel_requested {
            slurm::cancel(&shell, &placement.job)?;
        }
        // The scheduler first: events read after it said "ended" are all there will be.
        let state = slurm::state(&shell, &placement.job)?;
        let events = self.read_events(run.id, &shell, &mut placement)?;
        let (job_state, status) = match state {
            JobState::Queued(s) => (s, self.store.run(run.id)?.status),
            JobState::Ended(how) => {
                let how = how.unwrap_or_else(|| "ENDED".into());
                let status =
                    self.import_outcome(run.id, &shell, &placement, &how, &target.settings.dir)?;
                (how, status)
            }
        };
        Ok(RemoteChange {
            run_id: run.id,
            status,
            job_state,
            events,
            error: None,
        })
    }

    /// Records the run's events that arrived since the last sync.
    fn read_events(
        &mut self,
        id: i64,
        shell: &Shell,
        placement: &mut RemoteRun,
    ) -> Result<usize, AppError> {
        let path = format!("{}/{EVENTS_FILE}", placement.dir);
        let bytes = shell.read_from(&path, placement.events_read)?;
        // Only whole lines: the last one may still be being written.
        let Some(end) = bytes.iter().rposition(|&b| b == b'\n') else {
            return Ok(0);
        };
        let mut count = 0;
        for line in bytes[..end].split(|&b| b == b'\n') {
            if line.iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let event: TrainEvent = serde_json::from_slice(line).map_err(|e| {
                AppError::Invalid(format!("run {id}: a malformed line in {path}: {e}"))
            })?;
            match &event {
                TrainEvent::Started { total_steps, .. } => {
                    self.store.start_remote_run(id, *total_steps as i64)?
                }
                other => crate::runs::record(&mut self.store, id, other)?,
            }
            count += 1;
        }
        placement.events_read += end as u64 + 1;
        let value =
            serde_json::to_value(&*placement).map_err(|e| AppError::Invalid(e.to_string()))?;
        self.store.set_run_remote(id, Some(&value))?;
        Ok(count)
    }

    /// A run whose job left the queue: its outcome from the database it trained into (its
    /// evaluations, final metrics, status and exported model), or interrupted when it did not
    /// finish there.
    fn import_outcome(
        &mut self,
        id: i64,
        shell: &Shell,
        placement: &RemoteRun,
        how: &str,
        target_dir: &str,
    ) -> Result<RunStatus, AppError> {
        let output = job_log(shell, target_dir, &placement.job)
            .map(|l| format!(" — the job's last output: {l}"))
            .unwrap_or_default();
        // Nothing written since this submission: the job never started the run (a wrong
        // `hone` on the nodes, a bad sbatch option …); resuming as such would fail again.
        // Its database is not fetched: it holds nothing new.
        if placement.events_read == placement.events_at_submission {
            let why = format!(
                "its Slurm job {} ended ({how}) before the run started there{output}; fix the target's settings, then resume the run",
                placement.job
            );
            self.store
                .finish_run(id, RunStatus::Failed, Some(&why), None)?;
            return Ok(RunStatus::Failed);
        }
        let local_run = self.store.run(id)?;
        let copy = node_database(shell, &placement.dir, &PathBuf::from(&local_run.run_dir))?;
        let node = match &copy {
            Some(path) => {
                let store = hone_store::Store::open(path)?;
                let run = store.runs()?.into_iter().max_by_key(|r| r.id);
                run.map(|r| (store, r))
            }
            None => None,
        };
        let finished = node.as_ref().is_some_and(|(_, r)| {
            matches!(
                r.status,
                RunStatus::Completed | RunStatus::Cancelled | RunStatus::Failed
            )
        });
        let Some((node_store, node_run)) = node.filter(|_| finished) else {
            let why = format!(
                "its Slurm job {} ended ({how}) before the run finished{output}; resume it to submit it again from its last checkpoint",
                placement.job
            );
            self.store
                .finish_run(id, RunStatus::Interrupted, Some(&why), None)?;
            remove_copy(&copy, shell);
            return Ok(RunStatus::Interrupted);
        };
        for e in node_store.evaluations(node_run.id)? {
            self.store.record_evaluation(
                id,
                e.step,
                e.epoch.unwrap_or(0.0),
                &e.part,
                &e.report,
                e.predictions.as_ref(),
                &[],
            )?;
        }
        if let Some(export) = node_store
            .artifacts(node_run.id)?
            .into_iter()
            .find(|a| a.kind == "export")
        {
            let local = Path::new(&local_run.run_dir).join("model");
            if local.exists() {
                std::fs::remove_dir_all(&local).map_err(|e| AppError::Io {
                    path: local.clone(),
                    source: e,
                })?;
            }
            shell.get_dir(&export.path, &local)?;
            self.store
                .record_artifact(id, "export", &local.display().to_string(), export.step)?;
        }
        let error = node_run.error.clone().or_else(|| {
            (node_run.status == RunStatus::Failed)
                .then(|| format!("the run failed on the cluster{output}"))
        });
        self.store.finish_run(
            id,
            node_run.status,
            error.as_deref(),
            node_run.final_metrics.as_ref(),
        )?;
        drop(node_store);
        remove_copy(&copy, shell);
        Ok(node_run.status)
    }
}

/// The run folder's database, readable here: itself on this machine, a copy (with its
/// write-ahead log) in `local_dir` over SSH; `None` when there is none (the job never started).
fn node_database(shell: &Shell, dir: &str, local_dir: &Path) -> Result<Option<PathBuf>, AppError> {
    let path = format!("{dir}/{DB_FILE}");
    match shell {
        Shell::Here => Ok(Path::new(&path).exists().then(|| PathBuf::from(&path))),
        Shell::Ssh { .. } => {
            let db = shell.read_from(&path, 0)?;
            if db.is_empty() {
                return Ok(None);
            }
            std::fs::create_dir_all(local_dir).map_err(|e| AppError::Io {
                path: local_dir.to_path_buf(),
                source: e,
            })?;
            let copy = local_dir.join("remote.db");
            let write = |p: &Path, bytes: &[u8]| {
                std::fs::write(p, bytes).map_err(|e| AppError::Io {
                    path: p.to_path_buf(),
                    source: e,
                })
            };
            write(&copy, &db)?;
            let wal = shell.read_from(&format!("{path}-wal"), 0)?;
            let wal_copy = local_dir.join("remote.db-wal");
            if wal.is_empty() {
                let _ = std::fs::remove_file(&wal_copy);
            } else {
                write(&wal_copy, &wal)?;
            }
            Ok(Some(copy))
        }
    }
}

/// Removes the copy [`node_database`] made over SSH (on this machine it is the run's own).
fn remove_copy(copy: &Option<PathBuf>, shell: &Shell) {
    if let (Some(path), Shell::Ssh { .. }) = (copy, shell) {
        let _ = std::fs::remove_file(path);
        let _ = std::fs::remove_file(path.with_extension("db-wal"));
    }
}

/// The last lines the job's element printed (its Slurm output file), on one line.
fn job_log(shell: &Shell, target_dir: &str, job: &str) -> Option<String> {
    let path = format!("{}/logs/slurm-{job}.out", target_dir.trim_end_matches('/'));
    let bytes = shell.read_from(&path, 0).ok()?;
    let text = String::from_utf8_lossy(&bytes);
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    let tail = lines[lines.len().saturating_sub(3)..].join(" | ");
    (!tail.is_empty()).then_some(tail)
}
