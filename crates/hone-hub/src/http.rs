//! HTTP to the Hub with the retry policy the Hub asks for: 429 and 5xx answers and dropped
//! connections are retried with exponential backoff (honouring `Retry-After`); 401/403/404 are
//! turned into errors that say what to do. The token goes only to the Hub itself, never to the
//! storage a download is redirected to.

use std::time::Duration;

use ureq::http::{HeaderMap, Response};
use ureq::{Agent, Body};

use crate::{HubConfig, HubError};

/// Two agents: one follows redirects (API calls, file bodies), one does not (file metadata,
/// whose headers live on the first answer).
pub(crate) struct Http {
    follow: Agent,
    plain: Agent,
    pub(crate) config: HubConfig,
}

/// The value of a header as text.
pub(crate) fn header<'a>(headers: &'a HeaderMap, name: &str) -> Option<&'a str> {
    headers.get(name).and_then(|v| v.to_str().ok())
}

impl Http {
    pub(crate) fn new(config: HubConfig) -> Self {
        let stall = config.stall_timeout;
        let agent = |redirects: u32| -> Agent {
            Agent::config_builder()
                .http_status_as_error(false)
                .max_redirects(redirects)
                .timeout_connect(Some(Duration::from_secs(20)))
                .timeout_recv_response(Some(Duration::from_secs(60)))
                .timeout_recv_body(None)
                // Silence for this long (before the answer or inside a body) is a dropped
                // connection: retried, and a download resumes where it stopped.
                .timeout_per_read(Some(stall))
                .user_agent(concat!("hone/", env!("CARGO_PKG_VERSION")))
                .build()
                .into()
        };
        Http {
            follow: agent(10),
            plain: agent(0),
            config,
        }
    }

    pub(crate) fn backoff(&self, attempt: u32, retry_after: Option<u64>) -> Duration {
        let exp = self.config.backoff.saturating_mul(1 << attempt.min(16));
        retry_after
            .map(Duration::from_secs)
            .unwrap_or(exp)
            .min(self.config.max_backoff)
    }

    /// A GET (or HEAD) with retries. `range` asks for the bytes from that offset; `follow`
    /// follows redirects. Answers other than 2xx/3xx become errors naming `repo`.
    pub(crate) fn send(
        &self,
        url: &str,
        head: bool,
        range: Option<u64>,
        follow: bool,
        repo: &str,
    ) -> Result<Response<Body>, HubError> {
        let agent = if follow { &self.follow } else { &self.plain };
        let mut last_status = 0;
        for attempt in 0..self.config.max_attempts.max(1) {
            let mut request = if head {
                agent.head(url)
            } else {
                agent.get(url)
            };
            if let (Some(token), true) =
                (&self.config.token, url.starts_with(&self.config.endpoint))
            {
                request = request.header("Authorization", format!("Bearer {token}"));
            }
            if let Some(start) = range {
                request = request.header("Range", format!("bytes={start}-"));
            }
            let response = match request.call() {
                Ok(r) => r,
                Err(e) => {
                    // Nothing answering at all (offline, no such host, refused) is retried
                    // once, not through the whole backoff: the caller (a cached copy, the
                    // user) decides what next in a second rather than fifteen.
                    if attempt + 1 == self.config.max_attempts || (attempt >= 1 && unreachable(&e))
                    {
                        return Err(HubError::Network {
                            endpoint: self.config.endpoint.clone(),
                            message: e.to_string(),
                        });
                    }
                    std::thread::sleep(self.backoff(attempt, None));
                    continue;
                }
            };
            let status = response.status().as_u16();
            match status {
                429 | 500..=599 => {
                    last_status = status;
                    let retry_after = header(response.headers(), "retry-after")
                        .and_then(|v| v.trim().parse().ok());
                    if attempt + 1 < self.config.max_attempts {
                        std::thread::sleep(self.backoff(attempt, retry_after));
                    }
                }
                401 | 403 | 404 => return Err(self.refusal(status, response.headers(), repo, url)),
                _ if status >= 400 => {
                    return Err(HubError::Status {
                        status,
                        url: url.to_string(),
                    })
                }
                _ => return Ok(response),
            }
        }
        Err(HubError::TooManyRetries {
            status: last_status,
            attempts: self.config.max_attempts,
        })
    }

    fn refusal(&self, status: u16, headers: &HeaderMap, repo: &str, url: &str) -> HubError {
        let repo = repo.to_string();
        match header(headers, "x-error-code") {
            Some("RepoNotFound") => HubError::NotFound { repo },
            Some("EntryNotFound") => HubError::BadResponse {
                url: url.to_string(),
                message: "the file the model lists is not on the Hub".into(),
            },
            _ if status == 404 => HubError::NotFound { repo },
            _ => HubError::Unauthorized {
                hint: if self.config.token.is_some() {
                    "your token has no access: accept the model's terms on its Hub page, or use a token that can read it".into()
                } else {
                    "accept its terms on its Hub page, then set HF_TOKEN to a read token from https://huggingface.co/settings/tokens (or put it in ~/.cache/huggingface/token)".into()
                },
                repo,
            },
        }
    }

    /// GET `url` and parse the body as JSON; returns the headers too (for paging).
    pub(crate) fn get_json(
        &self,
        url: &str,
        repo: &str,
    ) -> Result<(serde_json::Value, HeaderMap), HubError> {
        let response = self.send(url, false, None, true, repo)?;
        let headers = response.headers().clone();
        let text = response
            .into_body()
            .with_config()
            .limit(64 << 20)
            .read_to_string()
            .map_err(|e| HubError::Network {
                endpoint: self.config.endpoint.clone(),
                message: e.to_string(),
            })?;
        let value = serde_json::from_str(&text).map_err(|e| HubError::BadResponse {
            url: url.to_string(),
            message: e.to_string(),
        })?;
        Ok((value, headers))
    }

    /// GET `url` as text (a model card, a config).
    pub(crate) fn get_text(&self, url: &str, repo: &str) -> Result<String, HubError> {
        let response = self.send(url, false, None, true, repo)?;
        response
            .into_body()
            .with_config()
            .limit(16 << 20)
            .read_to_string()
            .map_err(|e| HubError::Network {
                endpoint: self.config.endpoint.clone(),
                message: e.to_string(),
            })
    }
}

/// True when nothing answered: no such host, or no route or listener for the connection.
fn unreachable(e: &ureq::Error) -> bool {
    use std::io::ErrorKind;
    match e {
        ureq::Error::HostNotFound | ureq::Error::ConnectionFailed => true,
        ureq::Error::Io(io) => matches!(
            io.kind(),
            ErrorKind::ConnectionRefused
                | ErrorKind::NetworkUnreachable
                | ErrorKind::HostUnreachable
                | ErrorKind::AddrNotAvailable
        ),
        _ => false,
    }
}
