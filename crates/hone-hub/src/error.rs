//! Errors of the Hub client. Each says what to do next.

use std::path::PathBuf;

/// What can go wrong talking to the Hub or writing the cache.
#[derive(Debug, thiserror::Error)]
pub enum HubError {
    #[error("cannot reach the Hub at {endpoint}: {message}; check the network (or HF_ENDPOINT), or work offline with the models already downloaded")]
    Network { endpoint: String, message: String },
    #[error("no model '{repo}' on the Hub (or it is private); check the name")]
    NotFound { repo: String },
    #[error("'{repo}' is gated or private: {hint}")]
    Unauthorized { repo: String, hint: String },
    #[error(
        "the Hub kept refusing ({status}) after {attempts} attempts; wait a little and try again"
    )]
    TooManyRetries { status: u16, attempts: u32 },
    #[error("the Hub answered {status} for {url}")]
    Status { status: u16, url: String },
    #[error("the Hub sent an unexpected answer for {url}: {message}")]
    BadResponse { url: String, message: String },
    #[error("'{repo}' is not a repository id; use the form org/name (e.g. sentence-transformers/all-MiniLM-L6-v2)")]
    BadRepoId { repo: String },
    #[error("'{repo}' has no {what}; it is not a model Hone can fine-tune")]
    NotAModel { repo: String, what: String },
    #[error("bad file pattern '{pattern}': {message}")]
    BadPattern { pattern: String, message: String },
    #[error("refusing file name '{name}' from the Hub: it would be written outside the cache")]
    UnsafeFileName { name: String },
    #[error(
        "{file}: expected {expected} bytes, got {got}; the download was discarded, run it again"
    )]
    SizeMismatch {
        file: String,
        expected: u64,
        got: u64,
    },
    #[error(
        "{file}: the content does not match its checksum; the download was discarded, run it again"
    )]
    HashMismatch { file: String },
    #[error("download cancelled; run it again to resume where it stopped")]
    Cancelled,
    #[error("HF_HUB_OFFLINE is set, so the Hub is not contacted, and '{repo}' is not in the cache; unset it to go online")]
    Offline { repo: String },
    #[error("'{repo}' is not in the cache ({cache}); download it first")]
    NotCached { repo: String, cache: PathBuf },
    #[error("cannot write {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
}

impl HubError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        HubError::Io {
            path: path.into(),
            source,
        }
    }

    /// True for errors a retry cannot fix and that do not mean the network is down.
    pub fn is_final(&self) -> bool {
        !matches!(
            self,
            HubError::Network { .. } | HubError::TooManyRetries { .. }
        )
    }
}
