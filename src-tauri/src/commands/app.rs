//! The app itself: where its data is, what this machine has, file dialogs.

use std::path::PathBuf;
use std::sync::Arc;

use hone_app::machine::{machine_memory, MachineMemory};
use serde::Serialize;
use tauri::{AppHandle, Runtime, State};
use tauri_plugin_dialog::DialogExt;

use crate::error::CommandResult;
use crate::state::DesktopState;

/// What the window shows in its status bar and first-run page.
#[derive(Serialize)]
pub struct AppInfo {
    pub version: &'static str,
    pub db: PathBuf,
    pub machine: MachineMemory,
    /// Runs found dead since the window opened and marked interrupted (resumable).
    pub recovered: Vec<i64>,
    pub datasets: usize,
    pub runs: usize,
    pub models: usize,
    /// Runs whose model was exported from the window (or `export_run_model`).
    pub exports: usize,
    pub threads: usize,
}

#[tauri::command]
pub async fn app_info(state: State<'_, Arc<DesktopState>>) -> CommandResult<AppInfo> {
    let state = state.inner().clone();
    super::blocking(move || {
        let app = state.app()?;
        Ok(AppInfo {
            version: env!("CARGO_PKG_VERSION"),
            db: state.db().to_path_buf(),
            machine: machine_memory(),
            // Those still interrupted (not resumed or deleted since).
            recovered: state
                .recovered()
                .into_iter()
                .filter(|id| {
                    app.store()
                        .run(*id)
                        .is_ok_and(|r| r.status == hone_app::types::RunStatus::Interrupted)
                })
                .collect(),
            datasets: app.store().datasets()?.len(),
            runs: app.store().runs()?.len(),
            models: app.known_models(state.hub())?.len(),
            exports: app.exported_runs()?,
            threads: std::thread::available_parallelism().map_or(1, |n| n.get()),
        })
    })
    .await
}

/// What a dialog should pick.
#[derive(serde::Deserialize, Clone, Copy)]
#[serde(rename_all = "snake_case")]
pub enum PickKind {
    /// A dataset file to import.
    DataFile,
    /// A model folder to import.
    ModelFolder,
    /// A folder to export into.
    ExportFolder,
}

impl PickKind {
    /// Its name in the window's calls (and in scripted answers: `data_file=PATH`).
    pub fn name(self) -> &'static str {
        match self {
            PickKind::DataFile => "data_file",
            PickKind::ModelFolder => "model_folder",
            PickKind::ExportFolder => "export_folder",
        }
    }
}

/// Opens a file dialog; the chosen path becomes readable (and writable, for exports) by the
/// other commands. `None` when the user cancelled.
#[tauri::command]
pub async fn pick_path<R: Runtime>(
    app: AppHandle<R>,
    state: State<'_, Arc<DesktopState>>,
    kind: PickKind,
) -> CommandResult<Option<PathBuf>> {
    let picked = match state.next_scripted_pick(kind.name()) {
        Some(path) => Some(path),
        None => {
            let dialog = app.dialog().file();
            let chosen = match kind {
                PickKind::DataFile => dialog
                    .add_filter(
                        "Datasets",
                        &["csv", "tsv", "jsonl", "json", "parquet", "conll", "txt"],
                    )
                    .blocking_pick_file(),
                PickKind::ModelFolder | PickKind::ExportFolder => dialog.blocking_pick_folder(),
            };
            chosen.and_then(|p| p.into_path().ok())
        }
    };
    if let Some(path) = &picked {
        state.allow(path);
    }
    Ok(picked)
}
