// The names of the commands the UI may call: build.rs turns them into permissions (the
// capability file grants exactly these) and lib.rs exports them for the tests.

/// Every command the UI may call.
pub const COMMANDS: &[&str] = &[
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
