//! Compute targets in the window: the configured ones (added with `hone target add`), a run
//! submitted to one from the Train page, a stopped one submitted again, and the loop that
//! keeps runs on targets up to date in the database while the window is open.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use hone_app::remote::Target;
use hone_app::{App, RunConfig};
use tauri::State;

use crate::error::CommandResult;
use crate::state::DesktopState;

/// The compute targets.
#[tauri::command]
pub async fn targets_list(state: State<'_, Arc<DesktopState>>) -> CommandResult<Vec<Target>> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.targets()?)).await
}

/// Creates a run from `config` and submits it to compute target `target`; its id.
#[tauri::command]
pub async fn train_submit(
    state: State<'_, Arc<DesktopState>>,
    config: RunConfig,
    name: Option<String>,
    target: String,
) -> CommandResult<i64> {
    state.refuse_if_quitting()?;
    let state = state.inner().clone();
    super::blocking(move || {
        let config = super::train::window_config(&state, config)?;
        let mut app = state.app()?;
        let name = name.filter(|n| !n.trim().is_empty());
        let id = app.create_run(&config, name.clone())?;
        if let Err(e) = app.submit_runs(&[id], &target, &name.unwrap_or_else(|| format!("run{id}")))
        {
            // Nothing was submitted: the run would wait for ever.
            let _ = app.delete_run(id);
            return Err(e.into());
        }
        Ok(id)
    })
    .await
}

/// Submits an interrupted, cancelled or failed run on a compute target again (it continues
/// from its last checkpoint); the scheduler's new job id.
#[tauri::command]
pub async fn run_resubmit(state: State<'_, Arc<DesktopState>>, id: i64) -> CommandResult<String> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.resubmit_run(id)?)).await
}

/// How often the window brings runs on compute targets up to date.
const SYNC_EVERY: Duration = Duration::from_secs(3);

/// Syncs runs on compute targets every few seconds for as long as the window is open: their
/// curves fill in as their jobs write them, and their outcome arrives when the jobs end.
pub fn keep_remote_runs_synced(db: PathBuf) {
    std::thread::spawn(move || {
        // One connection for the window's life (opened again only after an error), not one
        // per tick.
        let mut app: Option<App> = None;
        loop {
            std::thread::sleep(SYNC_EVERY);
            if app.is_none() {
                app = App::open(&db).ok();
            }
            let Some(open) = app.as_mut() else { continue };
            match open.sync_remote_runs() {
                Ok(changes) => {
                    for c in changes.iter().filter(|c| c.error.is_some()) {
                        eprintln!(
                            "warning: run {}: {}",
                            c.run_id,
                            c.error.as_deref().unwrap_or("")
                        );
                    }
                }
                Err(_) => app = None,
            }
        }
    });
}
