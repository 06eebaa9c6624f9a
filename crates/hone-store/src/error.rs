//! Errors of the store.

use std::path::PathBuf;

/// What can go wrong reading or writing the database.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("cannot create {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error(
        "cannot open the database {path}: {source}; check the path or choose another database"
    )]
    Open {
        path: PathBuf,
        #[source]
        source: rusqlite::Error,
    },
    #[error("cannot bring the database schema up to date: {0}")]
    Migration(String),
    #[error("database error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("a dataset named '{0}' already exists; choose another name or delete it first")]
    DatasetExists(String),
    #[error("no dataset named '{0}'")]
    NoDataset(String),
    #[error("no run with id {0}")]
    NoRun(i64),
    #[error("no example with id {0}")]
    NoExample(i64),
    #[error("stored JSON is malformed: {0}")]
    Json(#[from] serde_json::Error),
    #[error("{0}")]
    Invalid(String),
}
