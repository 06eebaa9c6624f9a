//! Generates the permission of each app command, so the capability file can allow exactly
//! Hone's own commands (keep the list equal to `COMMANDS` in src/lib.rs; a test checks).

const COMMANDS: &[&str] = &[
    "app_info",
    "pick_path",
    "hub_search",
    "hub_info",
    "hub_download",
    "hub_cancel_download",
    "models_list",
    "model_check",
    "model_import",
    "model_remove",
    "dataset_preview",
    "dataset_import",
    "datasets_list",
    "dataset_examples",
    "example_set_label",
    "dataset_split",
    "dataset_delete",
    "runs_list",
    "run_show",
    "runs_metrics",
    "runs_compare",
    "run_delete",
    "train_start",
    "train_resume",
    "train_cancel",
    "predict",
    "export_run",
];

fn main() {
    let manifest = tauri_build::AppManifest::new().commands(COMMANDS);
    if let Err(e) = tauri_build::try_build(tauri_build::Attributes::new().app_manifest(manifest)) {
        panic!("tauri build step failed: {e:#}");
    }
}
