//! Hone's desktop shell: a Tauri window over `hone-app`. Commands live in modules by domain
//! (`commands::*`), each a thin adapter; errors cross into the UI as one serializable type;
//! training progress streams over `ipc::Channel`.

mod command_names;
pub mod commands;
pub mod error;
pub mod state;

use std::sync::Arc;

use state::DesktopState;
use tauri::{Builder, Runtime};

pub use command_names::COMMANDS;

/// Registers the state and every command on `builder` (the window and the tests share this).
pub fn with_commands<R: Runtime>(builder: Builder<R>, state: DesktopState) -> Builder<R> {
    use commands::*;
    builder
        .manage(Arc::new(state))
        .invoke_handler(tauri::generate_handler![
            app::app_info,
            app::pick_path,
            models::hub_search,
            models::hub_info,
            models::hub_download,
            models::hub_cancel_download,
            models::models_list,
            models::model_check,
            models::model_import,
            models::model_remove,
            datasets::dataset_preview,
            datasets::dataset_import,
            datasets::datasets_list,
            datasets::dataset_examples,
            datasets::example_set_label,
            datasets::dataset_split,
            datasets::dataset_delete,
            runs::runs_list,
            runs::run_show,
            runs::runs_metrics,
            runs::runs_compare,
            runs::run_delete,
            train::train_start,
            train::train_resume,
            train::train_cancel,
            playground::predict,
            playground::export_run,
        ])
}

/// Opens the window and runs until it is closed.
pub fn run() {
    let state = DesktopState::new(hone_app::paths::default_db());
    let builder = with_commands(
        tauri::Builder::default().plugin(tauri_plugin_dialog::init()),
        state,
    );
    if let Err(e) = builder.run(tauri::generate_context!()) {
        eprintln!("error: the Hone window could not start: {e}");
        std::process::exit(1);
    }
}
