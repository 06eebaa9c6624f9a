//! Where the Hub is, where the cache is, and who we are: read from the environment the way the
//! Python `huggingface_hub` client reads it, so both share one cache.

use std::path::PathBuf;
use std::time::Duration;

/// The Hub endpoint, cache folder, token and retry policy.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// `HF_ENDPOINT`, else `https://huggingface.co`.
    pub endpoint: String,
    /// `HF_HUB_CACHE`, else `HF_HOME/hub`, else `~/.cache/huggingface/hub`.
    pub cache_dir: PathBuf,
    /// `HF_TOKEN`, else the token file (`HF_TOKEN_PATH`, else `HF_HOME/token`, else
    /// `~/.cache/huggingface/token`).
    pub token: Option<String>,
    /// `HF_HUB_OFFLINE=1`: never touch the network.
    pub offline: bool,
    /// Attempts per request on 429, 5xx and dropped connections.
    pub max_attempts: u32,
    /// First backoff delay; doubles each attempt (a `Retry-After` header wins).
    pub backoff: Duration,
    /// Longest wait between attempts.
    pub max_backoff: Duration,
    /// How long a connection may send nothing — while waiting for an answer or inside a body —
    /// before it counts as dropped (a download resumes on a new one): `HF_HUB_DOWNLOAD_TIMEOUT`
    /// seconds (at most a day), else 10, as `huggingface_hub`.
    pub stall_timeout: Duration,
}

fn env(name: &str) -> Option<String> {
    std::env::var(name).ok().filter(|v| !v.trim().is_empty())
}

fn truthy(name: &str) -> bool {
    env(name)
        .is_some_and(|v| matches!(v.to_ascii_lowercase().as_str(), "1" | "true" | "yes" | "on"))
}

impl HubConfig {
    /// The configuration the environment describes.
    pub fn from_env() -> Self {
        let hf_home = env("HF_HOME").map(PathBuf::from).unwrap_or_else(|| {
            dirs::home_dir()
                .unwrap_or_else(|| PathBuf::from("."))
                .join(".cache")
                .join("huggingface")
        });
        let cache_dir = env("HF_HUB_CACHE")
            .or_else(|| env("HUGGINGFACE_HUB_CACHE"))
            .map(PathBuf::from)
            .unwrap_or_else(|| hf_home.join("hub"));
        let token = env("HF_TOKEN")
            .or_else(|| env("HUGGING_FACE_HUB_TOKEN"))
            .or_else(|| {
                let path = env("HF_TOKEN_PATH")
                    .map(PathBuf::from)
                    .unwrap_or_else(|| hf_home.join("token"));
                std::fs::read_to_string(path)
                    .ok()
                    .map(|t| t.trim().to_string())
                    .filter(|t| !t.is_empty())
            });
        HubConfig {
            endpoint: env("HF_ENDPOINT")
                .unwrap_or_else(|| "https://huggingface.co".into())
                .trim_end_matches('/')
                .to_string(),
            cache_dir,
            token,
            offline: truthy("HF_HUB_OFFLINE"),
            max_attempts: 6,
            backoff: Duration::from_millis(500),
            max_backoff: Duration::from_secs(20),
            stall_timeout: env("HF_HUB_DOWNLOAD_TIMEOUT")
                .and_then(|v| v.trim().parse::<f64>().ok())
                .filter(|s| *s > 0.0)
                .and_then(|s| Duration::try_from_secs_f64(s).ok())
                .map(|d| d.min(Duration::from_secs(24 * 3600)))
                .unwrap_or(Duration::from_secs(10)),
        }
    }
}
