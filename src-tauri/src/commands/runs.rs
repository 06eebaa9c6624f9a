//! Runs: the list, one run's record with its curves and evaluations, comparisons, deletion,
//! tags and notes, and asking a run another process trains to stop.

use std::sync::Arc;

use hone_app::types::{ArtifactRecord, EvaluationRecord, MetricRow, RunRecord, SampleRecord};
use hone_app::RunComparison;
use serde::Serialize;
use tauri::State;

use crate::error::CommandResult;
use crate::state::DesktopState;

#[tauri::command]
pub async fn runs_list(state: State<'_, Arc<DesktopState>>) -> CommandResult<Vec<RunRecord>> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.store().runs()?)).await
}

/// The trials of sweep `name` (`hone sweep create`): each run's varied settings and score,
/// best first (`hone sweep show`).
#[tauri::command]
pub async fn sweep_trials(
    state: State<'_, Arc<DesktopState>>,
    name: String,
) -> CommandResult<Vec<hone_app::sweep::SweepTrial>> {
    let state = state.inner().clone();
    super::blocking(move || {
        let runs = state.app()?.store().runs()?;
        Ok(hone_app::sweep::sweep_trials(&runs, &name))
    })
    .await
}

/// Everything about one run.
#[derive(Serialize)]
pub struct RunDetail {
    pub run: RunRecord,
    pub metrics: Vec<MetricRow>,
    pub evaluations: Vec<EvaluationRecord>,
    pub artifacts: Vec<ArtifactRecord>,
    /// A causal-LM run's answers to its fixed prompts, by step.
    pub samples: Vec<SampleRecord>,
    /// Running in this window now (cancellable).
    pub live: bool,
}

/// Min/max pairs per metric sent to the window: about two per pixel of the widest chart.
const CHART_BUCKETS: usize = 1000;

#[tauri::command]
pub async fn run_show(state: State<'_, Arc<DesktopState>>, id: i64) -> CommandResult<RunDetail> {
    let state = state.inner().clone();
    super::blocking(move || {
        let app = state.app()?;
        let store = app.store();
        Ok(RunDetail {
            run: store.run(id)?,
            metrics: hone_app::curves::thin(store.metrics(id)?, CHART_BUCKETS),
            evaluations: store.evaluations(id)?,
            artifacts: store.artifacts(id)?,
            samples: store.samples(id)?,
            live: state.run_switch(id).is_some(),
        })
    })
    .await
}

/// The metric curves of several runs (for overlays), in the order asked.
#[tauri::command]
pub async fn runs_metrics(
    state: State<'_, Arc<DesktopState>>,
    ids: Vec<i64>,
) -> CommandResult<Vec<(i64, Vec<MetricRow>)>> {
    let state = state.inner().clone();
    super::blocking(move || {
        let app = state.app()?;
        ids.into_iter()
            .map(|id| {
                Ok((
                    id,
                    hone_app::curves::thin(app.store().metrics(id)?, CHART_BUCKETS),
                ))
            })
            .collect()
    })
    .await
}

#[tauri::command]
pub async fn runs_compare(
    state: State<'_, Arc<DesktopState>>,
    a: i64,
    b: i64,
) -> CommandResult<RunComparison> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.compare_runs(a, b)?)).await
}

#[tauri::command]
pub async fn run_delete(state: State<'_, Arc<DesktopState>>, id: i64) -> CommandResult<()> {
    let state = state.inner().clone();
    super::blocking(move || {
        if state.run_switch(id).is_some() {
            return Err(crate::error::CommandError::new(
                "busy",
                format!("run {id} is running; cancel it first"),
            ));
        }
        Ok(state.app()?.delete_run(id)?)
    })
    .await
}

/// Adds and removes a run's tags and sets its notes (each when given; nothing is written
/// unless all of it is valid); returns the run as stored. Tags change by difference, so a tag
/// another process added meanwhile is kept.
#[tauri::command]
pub async fn run_annotate(
    state: State<'_, Arc<DesktopState>>,
    id: i64,
    add: Option<Vec<String>>,
    remove: Option<Vec<String>>,
    notes: Option<String>,
) -> CommandResult<RunRecord> {
    let state = state.inner().clone();
    super::blocking(move || {
        let mut app = state.app()?;
        app.annotate_run(
            id,
            &add.unwrap_or_default(),
            &remove.unwrap_or_default(),
            notes.as_deref(),
        )?;
        Ok(app.store().run(id)?)
    })
    .await
}

/// Asks a run to stop after its current step: one this window trains at once, one another
/// process trains (the command line) through the database, which that process reads after
/// each step.
#[tauri::command]
pub async fn run_request_stop(state: State<'_, Arc<DesktopState>>, id: i64) -> CommandResult<()> {
    let state = state.inner().clone();
    super::blocking(move || {
        if let Some(flag) = state.run_switch(id) {
            flag.store(true, std::sync::atomic::Ordering::SeqCst);
            return Ok(());
        }
        Ok(state.app()?.request_cancel(id)?)
    })
    .await
}
