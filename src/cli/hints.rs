//! The command line's half of an error message: the library layers say what went wrong and
//! what to change in words any front end can use ("lower the learning rate"); this names the
//! flag or command that changes it here (`--lr`). The desktop app's controls carry those
//! words as their labels.

use hone_app::types::{DataError, EngineError, HubError, StoreError};
use hone_app::AppError;

/// The flag or command that fixes `error`, when one does.
pub fn hint(error: &anyhow::Error) -> Option<String> {
    error.chain().find_map(|cause| {
        if let Some(e) = cause.downcast_ref::<AppError>() {
            return app_hint(e);
        }
        if let Some(e) = cause.downcast_ref::<EngineError>() {
            return engine_hint(e);
        }
        if let Some(e) = cause.downcast_ref::<StoreError>() {
            return store_hint(e);
        }
        if let Some(e) = cause.downcast_ref::<HubError>() {
            return hub_hint(e);
        }
        cause.downcast_ref::<DataError>().and_then(data_hint)
    })
}

fn app_hint(e: &AppError) -> Option<String> {
    match e {
        AppError::Engine(e) => engine_hint(e),
        AppError::Store(e) => store_hint(e),
        AppError::Data(e) => data_hint(e),
        AppError::Hub(e) | AppError::NotDownloaded(e) => hub_hint(e),
        AppError::NoSplit { dataset, split, .. } => Some(format!(
            "`hone data split {dataset} --name {split}` makes it"
        )),
        AppError::NotQueued { id, .. } => Some(format!("`hone runs resume {id}`")),
        AppError::NoModel(_) => Some("`hone models list` shows the known models".into()),
        _ => None,
    }
}

fn engine_hint(e: &EngineError) -> Option<String> {
    match e {
        EngineError::NonFiniteLoss { .. } | EngineError::NonFiniteGradient { .. } => {
            Some("pass a lower --lr (e.g. 2e-5) and keep --clip-norm 1.0".into())
        }
        EngineError::NotAModelFolder { .. } => {
            Some("--model takes a folder with config.json and the weights, or a Hub repo id".into())
        }
        EngineError::NoClassificationHead { .. } => {
            Some("`hone train` fine-tunes one; pass its --out folder".into())
        }
        EngineError::DeviceUnavailable { .. } => Some("--device cpu trains on the CPU".into()),
        EngineError::Data(e) => data_hint(e),
        _ => None,
    }
}

fn store_hint(e: &StoreError) -> Option<String> {
    match e {
        StoreError::Open { .. } => Some("--db PATH (or HONE_DB) chooses the database".into()),
        StoreError::DatasetExists(name) => Some(format!(
            "pass another --name, or `hone data delete {name}` first (--append adds rows)"
        )),
        StoreError::NoDataset(_) => Some("`hone data list` shows the datasets".into()),
        StoreError::NoRun(_) => Some("`hone runs list` shows the runs".into()),
        _ => None,
    }
}

fn data_hint(e: &DataError) -> Option<String> {
    match e {
        DataError::UnknownFormat { .. } => {
            Some("pass --format csv, tsv, jsonl, json, parquet, conll or lines".into())
        }
        DataError::UnknownColumn { flag, .. } => {
            Some(format!("pass one of the file's columns to {flag}"))
        }
        DataError::NotText { .. } => {
            Some("--encoding utf-16le (or utf-16be) reads UTF-16 text without a BOM".into())
        }
        _ => None,
    }
}

fn hub_hint(e: &HubError) -> Option<String> {
    match e {
        HubError::Network { .. } => {
            Some("`hone models list` shows the models you can use offline".into())
        }
        HubError::NotCached { repo, .. } => Some(format!("`hone hub download {repo}`")),
        _ => None,
    }
}
