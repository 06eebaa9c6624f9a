//! Training: start, resume and cancel runs; their events stream to the window over an
//! `ipc::Channel` in batches (at most four messages a second however fast the steps are).

use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hone_app::types::TrainEvent;
use hone_app::{spawn, JobHandle};
use hone_app::{DataConfig, RunConfig};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use crate::error::{CommandError, CommandResult};
use crate::state::DesktopState;

/// How often batched events are sent.
const FLUSH_EVERY: Duration = Duration::from_millis(250);

/// A message of a run's stream.
#[derive(Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum RunMessage {
    /// Events in the order they happened.
    Events {
        run_id: i64,
        events: Vec<TrainEvent>,
    },
    /// The run ended: completed, cancelled or failed (with the error).
    Ended {
        run_id: i64,
        status: String,
        error: Option<String>,
    },
}

/// Every training option with its default, help and kind, read from the run configuration
/// type: the Train form's one source.
#[tauri::command]
pub fn training_options() -> Vec<hone_app::types::TrainingOption> {
    hone_app::types::training_options()
}

/// The Train page's presets: named option sets, some with a learning rate that follows the
/// batch size.
#[tauri::command]
pub fn training_presets() -> Vec<hone_app::types::Preset> {
    hone_app::types::presets()
}

/// A message of the LR range test's stream: a step as it finishes, or a notice.
#[derive(Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum LrFindMessage {
    Point {
        point: hone_app::types::LrFindPoint,
        steps: u64,
    },
    Notice {
        message: String,
    },
}

/// The learning-rate range test on the form's configuration: steps stream over `on_event`,
/// the suggestion comes back at the end. Nothing is stored.
#[tauri::command]
pub async fn lr_find(
    state: State<'_, Arc<DesktopState>>,
    config: RunConfig,
    settings: Option<hone_app::types::LrFindSettings>,
    on_event: Channel<LrFindMessage>,
) -> CommandResult<hone_app::types::LrFindResult> {
    state.refuse_if_quitting()?;
    let state = state.inner().clone();
    let cancel = state.lr_find.begin();
    let worker = (state.clone(), cancel.clone());
    let result = super::blocking(move || {
        let (state, cancel) = worker;
        let config = window_config(&state, config)?;
        let settings = settings.unwrap_or_default();
        let steps = settings.steps;
        let events = &on_event;
        let app = state.app()?;
        Ok(app.find_lr(
            &config,
            &settings,
            &mut |event| {
                if let TrainEvent::Notice { message } = event {
                    let _ = events.send(LrFindMessage::Notice { message });
                }
            },
            &mut |point| {
                let _ = events.send(LrFindMessage::Point {
                    point: *point,
                    steps,
                });
            },
            &cancel,
        )?)
    })
    .await;
    state.lr_find.end(&cancel);
    result
}

/// Stops the range test after its current step; true when one was running.
#[tauri::command]
pub fn lr_find_cancel(state: State<'_, Arc<DesktopState>>) -> bool {
    state.lr_find.cancel()
}

/// Creates a run from `config` and starts it; returns its id at once.
#[tauri::command]
pub async fn train_start(
    state: State<'_, Arc<DesktopState>>,
    config: RunConfig,
    name: Option<String>,
    on_event: Channel<RunMessage>,
) -> CommandResult<i64> {
    state.refuse_if_quitting()?;
    let state = state.inner().clone();
    let id = super::blocking({
        let state = state.clone();
        move || {
            let config = window_config(&state, config)?;
            Ok(state
                .app()?
                .create_run(&config, name.filter(|n| !n.trim().is_empty()))?)
        }
    })
    .await?;
    let job = spawn(state.db().to_path_buf(), id, false)?;
    follow(state, job, on_event);
    Ok(id)
}

/// A run configuration from the window, held to the files the user may reach: a model Hone
/// knows, data files only inside picked paths, and no `out` folder (a window run exports
/// into its run folder; Export copies it elsewhere).
pub(crate) fn window_config(
    state: &DesktopState,
    mut config: RunConfig,
) -> CommandResult<RunConfig> {
    if config.out.is_some() {
        return Err(CommandError::new(
            "invalid",
            "a run started from the window keeps its model in its run folder; use Export to copy it elsewhere",
        ));
    }
    if let DataConfig::Files(files) = &mut config.data {
        files.train = state.allowed(&files.train)?;
        if let Some(valid) = &files.valid {
            files.valid = Some(state.allowed(valid)?);
        }
    }
    // Holding on to a finished run's task means continuing from its model.
    let continued = match config.ewc.as_ref().map(|p| p.from.trim().parse::<i64>()) {
        Some(Ok(id)) => Some(state.app()?.run_model(id)?.0),
        _ => None,
    };
    config.model = match continued {
        Some(dir) => dir,
        None => state.known_model_dir(&config.model)?,
    };
    Ok(config)
}

/// Continues an interrupted, cancelled or failed run from its last checkpoint.
#[tauri::command]
pub async fn train_resume(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    on_event: Channel<RunMessage>,
) -> CommandResult<i64> {
    state.refuse_if_quitting()?;
    if state.run_switch(run_id).is_some() {
        return Err(CommandError::new(
            "busy",
            format!("run {run_id} is running"),
        ));
    }
    let state = state.inner().clone();
    let job = spawn(state.db().to_path_buf(), run_id, true)?;
    follow(state, job, on_event);
    Ok(run_id)
}

/// Asks a run to stop after its current step; it keeps its best checkpoint and can resume.
#[tauri::command]
pub fn train_cancel(state: State<'_, Arc<DesktopState>>, run_id: i64) -> bool {
    match state.run_switch(run_id) {
        Some(flag) => {
            flag.store(true, Ordering::SeqCst);
            true
        }
        None => false,
    }
}

/// Forwards a job's events in batches on a thread of its own, then reports how it ended.
pub(crate) fn follow(state: Arc<DesktopState>, job: JobHandle, channel: Channel<RunMessage>) {
    let run_id = job.run_id;
    state.track_run(run_id, job.cancel_flag());
    std::thread::spawn(move || {
        let mut batch = Vec::new();
        let mut last_flush = Instant::now();
        loop {
            let wait = FLUSH_EVERY.saturating_sub(last_flush.elapsed());
            match job.events().recv_timeout(wait) {
                Ok(event) => {
                    // Only the start and the end go out at once: validations and
                    // checkpoints come every few steps when steps are fast, and sent one by
                    // one they flooded the window (each message redraws its charts).
                    let urgent = matches!(
                        event,
                        TrainEvent::Started { .. } | TrainEvent::Finished { .. }
                    );
                    batch.push(event);
                    if !urgent && last_flush.elapsed() < FLUSH_EVERY {
                        continue;
                    }
                }
                Err(std::sync::mpsc::RecvTimeoutError::Timeout) => {}
                Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            }
            if !batch.is_empty() {
                let events = std::mem::take(&mut batch);
                let _ = channel.send(RunMessage::Events { run_id, events });
            }
            last_flush = Instant::now();
        }
        if !batch.is_empty() {
            let _ = channel.send(RunMessage::Events {
                run_id,
                events: batch,
            });
        }
        let ended = match job.join() {
            Ok(outcome) => {
                if outcome.status == hone_app::types::RunStatus::Completed {
                    if let Ok(mut app) = state.app() {
                        let _ = app.clean_checkpoints(run_id);
                    }
                }
                RunMessage::Ended {
                    run_id,
                    status: outcome.status.as_str().to_string(),
                    error: None,
                }
            }
            Err(e) => RunMessage::Ended {
                run_id,
                status: "failed".into(),
                error: Some(e.to_string()),
            },
        };
        state.untrack_run(run_id);
        let _ = channel.send(ended);
    });
}
