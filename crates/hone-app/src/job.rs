//! A run on its own OS thread: the caller gets a stream of events and a cancel switch, and the
//! window (or terminal) never waits on a training step.

use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::mpsc::{channel, Receiver};
use std::sync::Arc;
use std::thread::JoinHandle;

use hone_engine::TrainEvent;

use crate::{App, AppError, RunOutcome};

/// A run in progress on its own thread.
pub struct JobHandle {
    pub run_id: i64,
    events: Receiver<TrainEvent>,
    cancel: Arc<AtomicBool>,
    thread: JoinHandle<Result<RunOutcome, AppError>>,
}

/// Starts (or resumes) run `run_id` of the database at `db` on a new thread, which opens its
/// own connection.
pub fn spawn(db: PathBuf, run_id: i64, resume: bool) -> Result<JobHandle, AppError> {
    let (sender, events) = channel();
    let cancel = Arc::new(AtomicBool::new(false));
    let flag = cancel.clone();
    let thread = std::thread::Builder::new()
        .name(format!("hone-run-{run_id}"))
        .spawn(move || {
            let mut app = App::open(&db)?;
            app.execute_run(
                run_id,
                resume,
                &mut |e: &TrainEvent| {
                    let _ = sender.send(e.clone());
                },
                &flag,
            )
        })
        .map_err(|e| AppError::Invalid(format!("cannot start the training thread: {e}")))?;
    Ok(JobHandle {
        run_id,
        events,
        cancel,
        thread,
    })
}

impl JobHandle {
    /// The run's events as they happen; the channel closes when the run ends.
    pub fn events(&self) -> &Receiver<TrainEvent> {
        &self.events
    }

    /// Asks the run to stop after its current step (it keeps its best checkpoint).
    pub fn cancel(&self) {
        self.cancel.store(true, Ordering::SeqCst);
    }

    /// The switch [`JobHandle::cancel`] sets, for signal handlers.
    pub fn cancel_flag(&self) -> Arc<AtomicBool> {
        self.cancel.clone()
    }

    /// Waits for the run to end.
    pub fn join(self) -> Result<RunOutcome, AppError> {
        self.thread
            .join()
            .map_err(|_| AppError::Invalid("the training thread panicked".into()))?
    }
}
