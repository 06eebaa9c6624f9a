//! The one error type that crosses into the UI: a kind the UI can branch on and a message a
//! person can act on.

use serde::Serialize;

/// An error returned by a command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, thiserror::Error)]
#[error("{message}")]
pub struct CommandError {
    /// invalid, not_found, hub, data, engine, store, io, cancelled, busy, not_picked.
    pub kind: &'static str,
    pub message: String,
}

impl CommandError {
    /// An error of `kind` with `message`.
    pub fn new(kind: &'static str, message: impl Into<String>) -> Self {
        CommandError {
            kind,
            message: message.into(),
        }
    }
}

impl From<hone_app::AppError> for CommandError {
    fn from(e: hone_app::AppError) -> Self {
        use hone_app::AppError as A;
        let kind = match &e {
            A::Store(
                hone_app::types::StoreError::NoDataset(_)
                | hone_app::types::StoreError::NoRun(_)
                | hone_app::types::StoreError::NoExample(_),
            ) => "not_found",
            A::Store(_) => "store",
            A::Data(_) => "data",
            A::Engine(_) => "engine",
            A::Hub(hone_app::types::HubError::Cancelled) => "cancelled",
            A::Hub(_) => "hub",
            A::Invalid(_) => "invalid",
            A::Cancelled => "cancelled",
            A::NoSplit { .. } | A::NoModel(_) | A::NotDownloaded(_) => "not_found",
            A::NotQueued { .. } => "invalid",
            A::Io { .. } => "io",
        };
        CommandError::new(kind, e.to_string())
    }
}

impl From<hone_app::types::HubError> for CommandError {
    fn from(e: hone_app::types::HubError) -> Self {
        let kind = match e {
            hone_app::types::HubError::Cancelled => "cancelled",
            _ => "hub",
        };
        CommandError::new(kind, e.to_string())
    }
}

impl From<hone_app::types::StoreError> for CommandError {
    fn from(e: hone_app::types::StoreError) -> Self {
        hone_app::AppError::from(e).into()
    }
}

impl From<hone_app::types::EngineError> for CommandError {
    fn from(e: hone_app::types::EngineError) -> Self {
        CommandError::new("engine", e.to_string())
    }
}

impl From<hone_app::types::DataError> for CommandError {
    fn from(e: hone_app::types::DataError) -> Self {
        CommandError::new("data", e.to_string())
    }
}

/// What commands return.
pub type CommandResult<T> = Result<T, CommandError>;
