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
    #[error("cannot read {path}: {source}")]
    Io {
        path: std::path::PathBuf,
        #[source]
        source: std::io::Error,
    },
}
