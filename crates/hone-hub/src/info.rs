//! Model info: the file list with sizes and checksums, config.json, license, parameter count
//! and the model card, from `GET /api/models/{id}/revision/{rev}?blobs=true` and the files.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::names::{check_file_name, check_repo_id, check_revision};
use crate::search::{encode, summary, ModelSummary};
use crate::{HubClient, HubError};

/// A file of a repository.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct RepoFile {
    /// Path inside the repository (`/`-separated).
    pub name: String,
    pub size: Option<u64>,
    /// SHA-256 of the content, for files stored with Git LFS.
    pub sha256: Option<String>,
}

/// The fields of config.json that say what a model is.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct ModelConfigSummary {
    pub architectures: Vec<String>,
    pub model_type: Option<String>,
    pub num_layers: Option<u64>,
    pub hidden_size: Option<u64>,
    pub num_heads: Option<u64>,
    pub vocab_size: Option<u64>,
    pub max_positions: Option<u64>,
    pub torch_dtype: Option<String>,
}

impl ModelConfigSummary {
    /// Reads the summary from a config.json value (BERT-style or DistilBERT-style keys).
    pub fn from_config(config: &Value) -> Self {
        let num = |keys: &[&str]| {
            keys.iter()
                .find_map(|k| config.get(*k).and_then(Value::as_u64))
        };
        let text = |k: &str| config.get(k).and_then(Value::as_str).map(str::to_string);
        ModelConfigSummary {
            architectures: config
                .get("architectures")
                .and_then(Value::as_array)
                .map(|a| {
                    a.iter()
                        .filter_map(|v| v.as_str().map(str::to_string))
                        .collect()
                })
                .unwrap_or_default(),
            model_type: text("model_type"),
            num_layers: num(&["num_hidden_layers", "n_layers", "n_layer", "num_layers"]),
            hidden_size: num(&["hidden_size", "dim", "d_model", "n_embd"]),
            num_heads: num(&["num_attention_heads", "n_heads", "n_head"]),
            vocab_size: num(&["vocab_size"]),
            max_positions: num(&["max_position_embeddings", "n_positions"]),
            torch_dtype: text("torch_dtype").or_else(|| text("dtype")),
        }
    }
}

/// What the Hub knows about a model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelInfo {
    pub id: String,
    /// The commit the info describes.
    pub sha: Option<String>,
    pub task: Option<String>,
    pub library: Option<String>,
    pub license: Option<String>,
    pub tags: Vec<String>,
    pub gated: bool,
    pub private: bool,
    pub downloads: u64,
    pub likes: u64,
    pub last_modified: Option<String>,
    pub files: Vec<RepoFile>,
    /// Parameter count from the safetensors metadata, when the Hub computed it.
    pub parameters: Option<u64>,
    /// config.json, when the repository has one.
    pub config: Option<Value>,
    pub config_summary: Option<ModelConfigSummary>,
    /// The model card (README.md) text.
    pub card: Option<String>,
}

impl ModelInfo {
    /// A file by name.
    pub fn file(&self, name: &str) -> Option<&RepoFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Total size of all files of the repository.
    pub fn total_size(&self) -> u64 {
        self.files.iter().filter_map(|f| f.size).sum()
    }
}

fn parse_files(value: &Value) -> Result<Vec<RepoFile>, HubError> {
    let Some(siblings) = value.get("siblings").and_then(Value::as_array) else {
        return Ok(Vec::new());
    };
    let mut files = Vec::with_capacity(siblings.len());
    for s in siblings {
        let Some(name) = s.get("rfilename").and_then(Value::as_str) else {
            continue;
        };
        check_file_name(name)?;
        let lfs = s.get("lfs");
        files.push(RepoFile {
            name: name.to_string(),
            size: s
                .get("size")
                .and_then(Value::as_u64)
                .or_else(|| lfs.and_then(|l| l.get("size")).and_then(Value::as_u64)),
            sha256: lfs
                .and_then(|l| l.get("sha256").or_else(|| l.get("oid")))
                .and_then(Value::as_str)
                .map(str::to_string),
        });
    }
    Ok(files)
}

/// The license from the card metadata or a `license:` tag.
fn license(value: &Value, tags: &[String]) -> Option<String> {
    value
        .get("cardData")
        .and_then(|c| c.get("license"))
        .and_then(|l| match l {
            Value::String(s) => Some(s.clone()),
            Value::Array(a) => a.first().and_then(Value::as_str).map(str::to_string),
            _ => None,
        })
        .or_else(|| {
            tags.iter()
                .find_map(|t| t.strip_prefix("license:").map(str::to_string))
        })
}

impl HubClient {
    /// The URL of a file at a revision.
    pub(crate) fn resolve_url(&self, repo: &str, revision: &str, file: &str) -> String {
        let file: Vec<String> = file.split('/').map(encode).collect();
        format!(
            "{}/{repo}/resolve/{}/{}",
            self.http.config.endpoint,
            encode(revision),
            file.join("/")
        )
    }

    /// The listing part of model info: metadata and files, without fetching any file.
    pub fn model_listing(&self, repo: &str, revision: Option<&str>) -> Result<ModelInfo, HubError> {
        check_repo_id(repo)?;
        self.online(repo)?;
        let url = match revision {
            Some(rev) => {
                check_revision(rev)?;
                format!(
                    "{}/api/models/{repo}/revision/{}?blobs=true",
                    self.http.config.endpoint,
                    encode(rev)
                )
            }
            None => format!("{}/api/models/{repo}?blobs=true", self.http.config.endpoint),
        };
        let (value, _) = self.http.get_json(&url, repo)?;
        // The fields a search result has are read the same way as in a search.
        let s = summary(&value).unwrap_or_else(|| ModelSummary {
            id: repo.to_string(),
            ..ModelSummary::default()
        });
        Ok(ModelInfo {
            license: license(&value, &s.tags),
            id: s.id,
            sha: value.get("sha").and_then(Value::as_str).map(str::to_string),
            task: s.task,
            library: s.library,
            gated: s.gated,
            private: s.private,
            downloads: s.downloads,
            likes: s.likes,
            last_modified: s.last_modified,
            files: parse_files(&value)?,
            parameters: value
                .get("safetensors")
                .and_then(|s| s.get("total"))
                .and_then(Value::as_u64),
            config: None,
            config_summary: None,
            card: None,
            tags: s.tags,
        })
    }

    /// Everything about a model: the listing, config.json and the model card.
    pub fn model_info(&self, repo: &str, revision: Option<&str>) -> Result<ModelInfo, HubError> {
        let mut info = self.model_listing(repo, revision)?;
        let at = info
            .sha
            .clone()
            .unwrap_or_else(|| revision.unwrap_or("main").to_string());
        if info.file("config.json").is_some() {
            let url = self.resolve_url(repo, &at, "config.json");
            let text = self.http.get_text(&url, repo)?;
            let config: Value = serde_json::from_str(&text).map_err(|e| HubError::BadResponse {
                url,
                message: format!("config.json is not JSON: {e}"),
            })?;
            info.config_summary = Some(ModelConfigSummary::from_config(&config));
            info.config = Some(config);
        }
        if info.file("README.md").is_some() {
            let url = self.resolve_url(repo, &at, "README.md");
            info.card = Some(self.http.get_text(&url, repo)?);
        }
        Ok(info)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn files_license_and_config_summary() {
        let v = json!({"siblings": [
            {"rfilename": "config.json", "size": 600},
            {"rfilename": "model.safetensors", "size": 90, "lfs": {"sha256": "ab", "size": 90}}
        ], "cardData": {"license": "mit"}});
        let files = parse_files(&v).unwrap();
        assert_eq!(files[1].sha256.as_deref(), Some("ab"));
        assert_eq!(license(&v, &[]).as_deref(), Some("mit"));
        assert_eq!(
            license(&json!({}), &["license:apache-2.0".into()]).as_deref(),
            Some("apache-2.0")
        );
        let bad = json!({"siblings": [{"rfilename": "../x"}]});
        assert!(matches!(
            parse_files(&bad),
            Err(HubError::UnsafeFileName { .. })
        ));
        let s = ModelConfigSummary::from_config(
            &json!({"model_type": "distilbert", "dim": 768, "n_layers": 6}),
        );
        assert_eq!((s.hidden_size, s.num_layers), (Some(768), Some(6)));
    }
}
