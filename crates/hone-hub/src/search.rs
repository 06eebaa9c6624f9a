//! Searching the Hub's models: free text, task and library filters, sort, paging.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::http::header;
use crate::{HubClient, HubError};

/// How to sort search results.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Sort {
    #[default]
    Downloads,
    Likes,
    /// Most recently updated first.
    Updated,
}

impl std::str::FromStr for Sort {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "downloads" => Ok(Sort::Downloads),
            "likes" => Ok(Sort::Likes),
            "updated" | "recent" | "lastmodified" | "last_modified" => Ok(Sort::Updated),
            other => Err(format!(
                "unknown sort '{other}': use downloads, likes or updated"
            )),
        }
    }
}

/// A search.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchQuery {
    pub text: String,
    /// Pipeline tag, e.g. `text-classification`.
    pub task: Option<String>,
    /// Library, e.g. `transformers`.
    pub library: Option<String>,
    pub sort: Sort,
    pub limit: usize,
}

/// One model in search results.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelSummary {
    pub id: String,
    pub task: Option<String>,
    pub library: Option<String>,
    pub downloads: u64,
    pub likes: u64,
    pub last_modified: Option<String>,
    pub tags: Vec<String>,
    pub gated: bool,
    pub private: bool,
}

/// One page of results and the address of the next.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct SearchPage {
    pub models: Vec<ModelSummary>,
    /// Pass to [`HubClient::search_page`] for the next page.
    pub next: Option<String>,
}

/// Percent-encodes a query value.
pub(crate) fn encode(s: &str) -> String {
    let mut out = String::new();
    for b in s.bytes() {
        match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                out.push(b as char)
            }
            _ => out.push_str(&format!("%{b:02X}")),
        }
    }
    out
}

/// The `rel="next"` address of a `Link` header.
fn next_link(link: &str) -> Option<String> {
    link.split(',').find_map(|part| {
        let (url, params) = part.split_once(';')?;
        params.contains("rel=\"next\"").then(|| {
            url.trim()
                .trim_start_matches('<')
                .trim_end_matches('>')
                .to_string()
        })
    })
}

/// `gated` is `false` or a string ("auto", "manual").
pub(crate) fn gated(v: &Value) -> bool {
    match v {
        Value::Bool(b) => *b,
        Value::String(s) => !s.is_empty() && s != "false",
        _ => false,
    }
}

pub(crate) fn summary(m: &Value) -> Option<ModelSummary> {
    let text = |k: &str| m.get(k).and_then(|v| v.as_str()).map(str::to_string);
    Some(ModelSummary {
        id: text("id").or_else(|| text("modelId"))?,
        task: text("pipeline_tag"),
        library: text("library_name"),
        downloads: m.get("downloads").and_then(Value::as_u64).unwrap_or(0),
        likes: m.get("likes").and_then(Value::as_u64).unwrap_or(0),
        last_modified: text("lastModified"),
        tags: m
            .get("tags")
            .and_then(Value::as_array)
            .map(|t| {
                t.iter()
                    .filter_map(|v| v.as_str().map(str::to_string))
                    .collect()
            })
            .unwrap_or_default(),
        gated: m.get("gated").map(gated).unwrap_or(false),
        private: m.get("private").and_then(Value::as_bool).unwrap_or(false),
    })
}

impl HubClient {
    /// The first page of a search.
    pub fn search(&self, q: &SearchQuery) -> Result<SearchPage, HubError> {
        let mut url = format!(
            "{}/api/models?search={}&sort={}&direction=-1&limit={}",
            self.http.config.endpoint,
            encode(&q.text),
            match q.sort {
                Sort::Downloads => "downloads",
                Sort::Likes => "likes",
                Sort::Updated => "lastModified",
            },
            q.limit.clamp(1, 1000)
        );
        if let Some(t) = &q.task {
            url.push_str(&format!("&pipeline_tag={}", encode(t)));
        }
        if let Some(l) = &q.library {
            url.push_str(&format!("&library={}", encode(l)));
        }
        for field in [
            "downloads",
            "likes",
            "lastModified",
            "pipeline_tag",
            "library_name",
            "tags",
            "gated",
            "private",
        ] {
            url.push_str(&format!("&expand[]={field}"));
        }
        self.search_page(&url)
    }

    /// A page of results from its address (the `next` of the previous page).
    pub fn search_page(&self, url: &str) -> Result<SearchPage, HubError> {
        self.online("search")?;
        let (value, headers) = self.http.get_json(url, "search")?;
        let models = value
            .as_array()
            .ok_or_else(|| HubError::BadResponse {
                url: url.to_string(),
                message: "expected a list of models".into(),
            })?
            .iter()
            .filter_map(summary)
            .collect();
        Ok(SearchPage {
            models,
            next: header(&headers, "link").and_then(next_link),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn link_headers_and_encoding() {
        assert_eq!(
            next_link("<https://h/api/models?cursor=abc>; rel=\"next\"").as_deref(),
            Some("https://h/api/models?cursor=abc")
        );
        assert_eq!(next_link("<https://h/x>; rel=\"prev\""), None);
        assert_eq!(encode("bert base/ü"), "bert%20base%2F%C3%BC");
        assert!(gated(&serde_json::json!("manual")) && !gated(&serde_json::json!(false)));
    }
}
