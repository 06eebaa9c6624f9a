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
use tauri::{AppHandle, Builder, Manager, RunEvent, Runtime, Window, WindowEvent};
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
            datasets::choice_preview,
            datasets::answer_preview,
            datasets::conversation_preview,
            datasets::dataset_token_lengths,
            datasets::dataset_import,
            datasets::datasets_list,
            datasets::dataset_examples,
            datasets::example_set_label,
            datasets::dataset_rename_class,
            datasets::dataset_split,
            datasets::dataset_delete,
            runs::runs_list,
            runs::sweep_trials,
            runs::run_show,
            runs::runs_metrics,
            runs::runs_compare,
            runs::run_delete,
            runs::run_annotate,
            runs::run_request_stop,
            targets::targets_list,
            targets::train_submit,
            targets::run_resubmit,
            train::training_options,
            train::training_presets,
            train::train_start,
            train::train_resume,
            train::train_cancel,
            train::lr_find,
            train::lr_find_cancel,
            labeling::labeling_suggest,
            labeling::labeling_cancel,
            labeling::labeling_curve,
            labeling::labeling_next_round,
            playground::predict,
            playground::predict_choices,
            playground::predict_answer,
            playground::behavior_starter,
            playground::behavior_run,
            playground::chat,
            playground::chat_stop,
            playground::export_run,
            playground::ensemble_create,
        ])
}

/// How long quitting waits for runs to reach a checkpoint-safe stop.
const STOP_WAIT: Duration = Duration::from_secs(60);

/// Closing the window while a run trains or a model downloads asks first.
fn confirm_close<R: Runtime>(window: &Window<R>, event: &WindowEvent) {
    let WindowEvent::CloseRequested { api, .. } = event else {
        return;
    };
    if ask_before_quitting(window.app_handle()) {
        api.prevent_close();
    }
}

/// Quitting the app (Cmd+Q on macOS, the last window gone) while work is in progress asks
/// first; `app.exit(code)` from the quit dialog itself goes through.
fn confirm_exit<R: Runtime>(app: &AppHandle<R>, event: RunEvent) {
    if let RunEvent::ExitRequested {
        api, code: None, ..
    } = event
    {
        if ask_before_quitting(app) {
            api.prevent_exit();
        }
    }
}

/// When work is in progress, shows (once) the quit dialog and returns true: the caller holds
/// the close or exit back. On "Stop and quit" everything is stopped cleanly (runs are marked
/// cancelled and stay resumable, partial downloads resume next time) before the app exits.
fn ask_before_quitting<R: Runtime>(app: &AppHandle<R>) -> bool {
    let state = app.state::<Arc<DesktopState>>().inner().clone();
    let Some(work) = state.work_in_progress() else {
        return false;
    };
    if !state.begin_asking_to_quit() {
        return true; // the dialog is already up, or quitting is under way
    }
    let app = app.clone();
    app.clone()
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
            } else {
                state.keep_working();
            }
        });
    true
}

/// Why no window can open here, when that is known before trying: on Linux and the BSDs a
/// window needs an X11 or Wayland display (without one GTK aborts with a backtrace).
pub fn missing_display() -> Option<&'static str> {
    let unix_desktop = cfg!(any(
        target_os = "linux",
        target_os = "freebsd",
        target_os = "openbsd",
        target_os = "netbsd"
    ));
    let has = |name: &str| std::env::var_os(name).is_some_and(|v| !v.is_empty());
    (unix_desktop && !has("DISPLAY") && !has("WAYLAND_DISPLAY")).then_some(
        "Hone's window needs a display, and neither DISPLAY nor WAYLAND_DISPLAY is set. Start it \
         from a desktop session (over SSH: ssh -X, or run it on the machine's own screen); the \
         `hone` command line works without one.",
    )
}

/// Opens the window and runs until it is closed.
pub fn run() {
    if let Some(why) = missing_display() {
        eprintln!("error: {why}");
        std::process::exit(1);
    }
    // The speed estimates need this machine's matrix rates (f32, and bf16 where the CPU has
    // it; ~0.3 s): measured once the window has settled (WebKit's start would slow the
    // measurement), unless a fit check asks first.
    std::thread::spawn(|| {
        std::thread::sleep(Duration::from_secs(5));
        hone_app::machine::measure_cpu_speed();
    });
    let db = hone_app::paths::default_db();
    commands::targets::keep_remote_runs_synced(db.clone());
    let state = DesktopState::new(db);
    let builder = with_commands(
        tauri::Builder::default().plugin(tauri_plugin_dialog::init()),
        state,
    )
    .on_window_event(confirm_close);
    match builder.build(tauri::generate_context!()) {
        Ok(app) => app.run(confirm_exit),
        Err(e) => {
            eprintln!("error: the Hone window could not start: {e}");
            std::process::exit(1);
        }
    }
}
