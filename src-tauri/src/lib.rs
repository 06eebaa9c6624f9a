//! Hone's desktop shell: a Tauri window over `hone-app`. Commands live in modules by domain
//! (`commands::*`), each a thin adapter; errors cross into the UI as one serializable type;
//! training progress streams over `ipc::Channel`.

mod command_names;
pub mod commands;
pub mod error;
pub mod state;

use std::sync::Arc;
use std::time::Duration;

use state::DesktopState;
use tauri::{Builder, Manager, Runtime, Window, WindowEvent};
use tauri_plugin_dialog::{DialogExt, MessageDialogButtons, MessageDialogKind};

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

/// How long quitting waits for runs to reach a checkpoint-safe stop.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Closing the window while a run trains or a model downloads asks first; when the user
/// confirms, everything is stopped cleanly (runs are marked cancelled and stay resumable,
/// partial downloads resume next time) before the app exits.
fn confirm_close<R: Runtime>(window: &Window<R>, event: &WindowEvent) {
    let WindowEvent::CloseRequested { api, .. } = event else {
        return;
    };
    let state = window.state::<Arc<DesktopState>>().inner().clone();
    let Some(work) = state.work_in_progress() else {
        return;
    };
    api.prevent_close();
    let app = window.app_handle().clone();
    window
        .dialog()
        .message(format!(
            "Hone is still working: {work}. Quitting stops it now. A stopped run keeps its \
             last checkpoint and can be resumed from the Runs page; a download resumes where \
             it stopped."
        ))
        .title("Quit Hone?")
        .kind(MessageDialogKind::Warning)
        .buttons(MessageDialogButtons::OkCancelCustom(
            "Stop and quit".into(),
            "Keep working".into(),
        ))
        .show(move |quit| {
            if quit {
                std::thread::spawn(move || {
                    if !state.stop_all(STOP_WAIT) {
                        eprintln!("warning: quitting before every run stopped; they will show as interrupted");
                    }
                    app.exit(0);
                });
            }
        });
}

/// Opens the window and runs until it is closed.
pub fn run() {
    // The speed estimates need this machine's matrix rate: measure it now, while idle.
    std::thread::spawn(hone_engine::speed::cpu_matmul_gflops);
    let state = DesktopState::new(hone_app::paths::default_db());
    let builder = with_commands(
        tauri::Builder::default().plugin(tauri_plugin_dialog::init()),
        state,
    )
    .on_window_event(confirm_close);
    if let Err(e) = builder.run(tauri::generate_context!()) {
        eprintln!("error: the Hone window could not start: {e}");
        std::process::exit(1);
    }
}
