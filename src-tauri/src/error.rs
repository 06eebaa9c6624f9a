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
                hone_store::StoreError::NoDataset(_)
                | hone_store::StoreError::NoRun(_)
                | hone_store::StoreError::NoExample(_),
            ) => "not_found",
            A::Store(_) => "store",
            A::Data(_) => "data",
            A::Engine(_) => "engine",
            A::Hub(hone_hub::HubError::Cancelled) => "cancelled",
            A::Hub(_) => "hub",
            A::Invalid(_) => "invalid",
            A::Io { .. } => "io",
        };
        CommandError::new(kind, e.to_string())
    }
}

impl From<hone_hub::HubError> for CommandError {
    fn from(e: hone_hub::HubError) -> Self {
        let kind = match e {
            hone_hub::HubError::Cancelled => "cancelled",
            _ => "hub",
        };
        CommandError::new(kind, e.to_string())
    }
}

impl From<hone_store::StoreError> for CommandError {
    fn from(e: hone_store::StoreError) -> Self {
        hone_app::AppError::from(e).into()
    }
}

impl From<hone_engine::EngineError> for CommandError {
    fn from(e: hone_engine::EngineError) -> Self {
        CommandError::new("engine", e.to_string())
    }
}

impl From<hone_data::DataError> for CommandError {
    fn from(e: hone_data::DataError) -> Self {
        CommandError::new("data", e.to_string())
    }
}

/// What commands return.
pub type CommandResult<T> = Result<T, CommandError>;
