//! The labeling loop: a run's model pre-labels the unlabeled examples (the queue ordered by
//! its uncertainty, scored with progress and a cancel switch), the next round trains on the
//! labels so far, and the curve shows each round's score against its labels.

use std::sync::Arc;

use hone_app::active::{suggest, CurvePoint, Strategy, SuggestRequest, Suggestions};
use hone_app::spawn;
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use super::train::{follow, RunMessage};
use crate::error::{CommandError, CommandResult};
use crate::state::DesktopState;

/// How far scoring the queue has come.
#[derive(Clone, Serialize)]
pub struct ScoringProgress {
    pub done: usize,
    pub total: usize,
}

/// The queue of `dataset`'s unlabeled examples, pre-labeled by run `run_id`'s model and
/// ordered by `strategy`; at most `pool` of them are scored (a seeded sample).
#[tauri::command]
pub async fn labeling_suggest(
    state: State<'_, Arc<DesktopState>>,
    dataset: String,
    run_id: i64,
    strategy: Strategy,
    pool: Option<usize>,
    on_progress: Channel<ScoringProgress>,
) -> CommandResult<Suggestions> {
    let state = state.inner().clone();
    let cancel = state.scoring.begin();
    let worker = (state.clone(), cancel.clone());
    let result = super::blocking(move || {
        let (state, cancel) = worker;
        let request = SuggestRequest {
            dataset,
            run_id,
            strategy,
            limit: None,
            pool,
            seed: 42,
        };
        let (pool, dir, max_length) = {
            let app = state.app()?;
            let (dir, max_length) = app.run_model(run_id)?;
            (app.unlabeled_pool(&request)?, dir, max_length)
        };
        let model = state.predictor(&dir, max_length)?;
        let mut report = |done, total| {
            let _ = on_progress.send(ScoringProgress { done, total });
        };
        Ok(suggest(&model, &request, pool, &mut report, &cancel)?)
    })
    .await;
    state.scoring.end(&cancel);
    result
}

/// Stops scoring the queue; true when something was being scored.
#[tauri::command]
pub fn labeling_cancel(state: State<'_, Arc<DesktopState>>) -> bool {
    state.scoring.cancel()
}

/// Every completed run on `dataset`: its labels and its score.
#[tauri::command]
pub async fn labeling_curve(
    state: State<'_, Arc<DesktopState>>,
    dataset: String,
) -> CommandResult<Vec<CurvePoint>> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.label_curve(&dataset)?)).await
}

/// Starts the next round: run `run_id`'s settings on every label of `dataset` so far,
/// continuing from its model; the run streams like any other. Returns the new run's id.
#[tauri::command]
pub async fn labeling_next_round(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    dataset: String,
    on_event: Channel<RunMessage>,
) -> CommandResult<i64> {
    state.refuse_if_quitting()?;
    if !state
        .runs
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .is_empty()
    {
        return Err(CommandError::new(
            "busy",
            "a run is training; the next round starts when it has finished",
        ));
    }
    let state = state.inner().clone();
    let id = super::blocking({
        let state = state.clone();
        move || {
            let mut app = state.app()?;
            let config = app.next_round_config(run_id, &dataset)?;
            let labeled = app.store().dataset(&dataset)?.labeled;
            Ok(app.create_run(
                &config,
                Some(format!("{dataset}: round at {labeled} labels")),
            )?)
        }
    })
    .await?;
    let job = spawn(state.db().to_path_buf(), id, false)?;
    follow(state, job, on_event);
    Ok(id)
}
