//! The playground and export: predictions of a finished run's model, and a copy of its
//! exported folder where the user chose.

use std::path::{Path, PathBuf};
use std::sync::Arc;

use hone_app::predict::Predictions;
use hone_engine::EngineError;
use tauri::State;

use crate::error::{CommandError, CommandResult};
use crate::state::DesktopState;

/// Runs `texts` through run `run_id`'s model: classes with probabilities for a text
/// classifier, entities and tagged tokens for a token classifier.
#[tauri::command]
pub async fn predict(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    texts: Vec<String>,
) -> CommandResult<Predictions> {
    let state = state.inner().clone();
    super::blocking(move || {
        let (dir, max_length) = state.app()?.run_model(run_id)?;
        let model = state.predictor(&dir, max_length)?;
        let texts: Vec<String> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
        Ok(model.predict(&texts, None, 32)?)
    })
    .await
}

/// Copies run `run_id`'s exported model (Hugging Face format, with its model card) into a new
/// folder `name` inside the picked folder `dest`; returns the new folder.
#[tauri::command]
pub async fn export_run(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    dest: PathBuf,
    name: String,
) -> CommandResult<PathBuf> {
    let dest = state.allowed(&dest)?;
    let state = state.inner().clone();
    super::blocking(move || {
        let (source, _) = state.app()?.run_model(run_id)?;
        let name = name.trim();
        if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
            return Err(CommandError::new(
                "invalid",
                "the export needs a folder name without slashes",
            ));
        }
        let target = dest.join(name);
        if target.exists() {
            return Err(CommandError::new(
                "invalid",
                format!("{} already exists; choose another name", target.display()),
            ));
        }
        copy_folder(&source, &target)?;
        Ok(target)
    })
    .await
}

/// Copies the files of `from` (not its checkpoints) into the new folder `to`, written as a
/// whole like a checkpoint (`<to>.partial`, then a rename).
fn copy_folder(from: &Path, to: &Path) -> CommandResult<()> {
    hone_engine::checkpoint::write_dir_atomic(to, |tmp| {
        let entries = std::fs::read_dir(from).map_err(|e| EngineError::io(from, e))?;
        for entry in entries {
            let path = entry.map_err(|e| EngineError::io(from, e))?.path();
            if let (true, Some(name)) = (path.is_file(), path.file_name()) {
                std::fs::copy(&path, tmp.join(name)).map_err(|e| EngineError::io(&path, e))?;
            }
        }
        Ok(())
    })?;
    Ok(())
}
