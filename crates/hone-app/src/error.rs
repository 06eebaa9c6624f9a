//! Errors of the service layer: each wraps the layer it came from, with its message intact.

/// What can go wrong in an import or a run.
#[derive(Debug, thiserror::Error)]
pub enum AppError {
    #[error(transparent)]
    Store(#[from] hone_store::StoreError),
    #[error(transparent)]
    Data(#[from] hone_data::DataError),
    #[error(transparent)]
    Engine(#[from] hone_engine::EngineError),
    #[error(transparent)]
    Hub(#[from] hone_hub::HubError),
    #[error("{0}")]
    Invalid(String),
    /// The user stopped it.
    #[error("cancelled")]
    Cancelled,
    #[error("dataset '{dataset}' has no split '{split}' (it has: {available}); make one first")]
    NoSplit {
        dataset: String,
        split: String,
        available: String,
    },
    #[error("run {id} is {status}, not queued; resume it instead")]
    NotQueued { id: i64, status: String },
    #[error("no model \"{0}\" among the downloaded and imported models")]
    NoModel(String),
    /// A Hub repo id that is not in the cache.
    #[error("{0} (or choose a model folder)")]
    NotDownloaded(hone_hub::HubError),
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
