//! Hone's Hugging Face Hub client: model search, model info (files, config, card, parameter
//! count), downloads of the files a fine-tune needs into the standard Hugging Face cache
//! (`models--org--name/blobs|snapshots|refs`, shared with Python tools) with byte progress,
//! resume, cancel and verification, and an inventory of that cache for offline work.
//!
//! The cache layout comes from the `hf-hub` crate ([`hf_hub::Cache`]); the HTTP side is our own
//! (`ureq`), because Hone needs what `hf-hub`'s downloader does not give: cancellation, Range
//! resume of any partial file, checksum verification, a retry policy and refusal of unsafe names.
//! Everything here is blocking; callers run it on their own thread.

pub mod cache;
pub mod config;
pub mod download;
mod error;
mod http;
pub mod info;
mod names;
pub mod search;

pub use cache::{CachedModel, CachedSnapshot};
pub use config::HubConfig;
pub use download::{DownloadEvent, DownloadOptions, Downloaded};
pub use error::HubError;
pub use info::{ModelConfigSummary, ModelInfo, RepoFile};
pub use names::check_repo_id;
pub use search::{ModelSummary, SearchPage, SearchQuery, Sort};

/// A client for one Hub endpoint and one cache folder.
pub struct HubClient {
    http: http::Http,
    cache: hf_hub::Cache,
}

impl HubClient {
    /// A client configured as described.
    pub fn new(config: HubConfig) -> Self {
        let cache = hf_hub::Cache::new(config.cache_dir.clone());
        HubClient {
            http: http::Http::new(config),
            cache,
        }
    }

    /// A client configured from the environment (`HF_ENDPOINT`, `HF_HUB_CACHE`, `HF_HOME`,
    /// `HF_TOKEN`, `HF_HUB_OFFLINE`).
    pub fn from_env() -> Self {
        Self::new(HubConfig::from_env())
    }

    /// The configuration in use.
    pub fn config(&self) -> &HubConfig {
        &self.http.config
    }

    /// Refuses network access when the user asked for offline mode.
    fn online(&self, repo: &str) -> Result<(), HubError> {
        if self.http.config.offline {
            Err(HubError::Offline {
                repo: repo.to_string(),
            })
        } else {
            Ok(())
        }
    }

    fn cache_repo(&self, repo: &str, revision: &str) -> hf_hub::CacheRepo {
        self.cache.repo(hf_hub::Repo::with_revision(
            repo.to_string(),
            hf_hub::RepoType::Model,
            revision.to_string(),
        ))
    }

    /// Where the download locks of a repository live (`.locks/models--org--name`).
    fn locks_dir(&self, repo: &str) -> std::path::PathBuf {
        self.cache
            .path()
            .join(".locks")
            .join(hf_hub::Repo::model(repo.to_string()).folder_name())
    }

    /// The folder of a repository in the cache (`models--org--name`).
    fn repo_dir(&self, repo: &str) -> std::path::PathBuf {
        self.cache
            .path()
            .join(hf_hub::Repo::model(repo.to_string()).folder_name())
    }
}
