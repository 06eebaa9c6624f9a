//! What runs on a cluster node: `hone remote-exec FOLDER` trains the staged run in its folder
//! (or continues it from its last checkpoint when an earlier job was stopped), appending each
//! event to the folder's `events.jsonl` for the machine that submitted it.

use std::io::Write;
use std::path::Path;
use std::sync::atomic::AtomicBool;

use super::stage::{StagedRun, DB_FILE, EVENTS_FILE, RUN_FILE};
use crate::types::{RunStatus, TrainEvent};
use crate::{App, AppError};

/// Trains (or resumes) the run staged in `dir`; its status at the end. A run that completed
/// in an earlier job is left as it is.
pub fn remote_exec(dir: &Path, cancel: &AtomicBool) -> Result<RunStatus, AppError> {
    let io = |path: &Path| {
        let path = path.to_path_buf();
        move |source| AppError::Io { path, source }
    };
    let run_file = dir.join(RUN_FILE);
    let text = std::fs::read(&run_file).map_err(io(&run_file))?;
    let staged: StagedRun = serde_json::from_slice(&text).map_err(|e| {
        AppError::Invalid(format!("{} is not a staged run: {e}", run_file.display()))
    })?;
    // Opening marks a run whose job was killed as interrupted (its process is gone).
    let mut app = App::open(&dir.join(DB_FILE))?;
    let existing = app.store().runs()?.into_iter().max_by_key(|r| r.id);
    let (id, resume) = match existing {
        None => (app.create_run(&staged.config, staged.name.clone())?, false),
        Some(run) => match run.status {
            RunStatus::Completed => return Ok(RunStatus::Completed),
            RunStatus::Queued => (run.id, false),
            _ => (run.id, true),
        },
    };
    let events_path = dir.join(EVENTS_FILE);
    let mut events = std::fs::OpenOptions::new()
        .create(true)
        .append(true)
        .open(&events_path)
        .map_err(io(&events_path))?;
    let mut write_error = None;
    let mut sink = |event: &TrainEvent| {
        if write_error.is_some() {
            return;
        }
        let line = serde_json::to_string(event).unwrap_or_default();
        // One write per line, flushed: the reader never sees half of one but at the end.
        if let Err(e) = events
            .write_all(format!("{line}\n").as_bytes())
            .and_then(|_| events.flush())
        {
            write_error = Some(e);
        }
    };
    let outcome = app.execute_run(id, resume, &mut sink, cancel);
    if let Some(e) = write_error {
        return Err(io(&events_path)(e));
    }
    Ok(outcome?.status)
}
