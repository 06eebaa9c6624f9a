//! The local Hugging Face cache: which models are there (usable offline), where a repository's
//! snapshot is, and removal.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use crate::names::{check_repo_id, check_revision, is_commit_hash};
use crate::{HubClient, HubError};

/// One commit of a cached model.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedSnapshot {
    pub commit: String,
    /// The refs (branches, tags) pointing at it.
    pub refs: Vec<String>,
    pub path: PathBuf,
    pub files: Vec<String>,
    /// Has config.json and a weights file: a model folder the engine can load.
    pub complete: bool,
}

/// A model in the cache.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct CachedModel {
    pub repo: String,
    pub path: PathBuf,
    pub snapshots: Vec<CachedSnapshot>,
    /// Bytes of complete blobs.
    pub size_bytes: u64,
    /// Bytes of partial downloads waiting to be resumed.
    pub partial_bytes: u64,
    /// `model_type` from the newest snapshot's config.json.
    pub model_type: Option<String>,
}

impl CachedModel {
    /// The snapshot `main` points to, else the newest complete one.
    pub fn default_snapshot(&self) -> Option<&CachedSnapshot> {
        self.snapshots
            .iter()
            .find(|s| s.complete && s.refs.iter().any(|r| r == "main"))
            .or_else(|| self.snapshots.iter().find(|s| s.complete))
    }
}

/// Files under `dir`, `/`-separated, relative to it, sorted.
pub(crate) fn list_files(dir: &Path, prefix: &str, out: &mut Vec<String>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    let mut entries: Vec<_> = entries.filter_map(Result::ok).collect();
    entries.sort_by_key(|e| e.file_name());
    for entry in entries {
        let name = entry.file_name().to_string_lossy().to_string();
        if name.starts_with(".") {
            continue;
        }
        let rel = format!("{prefix}{name}");
        let path = entry.path();
        if path.is_dir() {
            list_files(&path, &format!("{rel}/"), out);
        } else if path.is_file() {
            out.push(rel);
        }
    }
}

fn has_weights(files: &[String]) -> bool {
    files.iter().any(|f| {
        !f.contains('/')
            && (f == "model.safetensors"
                || f == "pytorch_model.bin"
                || f.ends_with(".safetensors.index.json")
                || f.ends_with(".bin.index.json"))
    })
}

fn dir_bytes(dir: &Path, suffix: Option<&str>) -> u64 {
    std::fs::read_dir(dir)
        .map(|entries| {
            entries
                .filter_map(Result::ok)
                .filter(|e| {
                    let name = e.file_name().to_string_lossy().to_string();
                    match suffix {
                        Some(s) => name.ends_with(s),
                        None => !name.ends_with(".incomplete") && !name.ends_with(".lock"),
                    }
                })
                .filter_map(|e| e.metadata().ok())
                .filter(|m| m.is_file())
                .map(|m| m.len())
                .sum()
        })
        .unwrap_or(0)
}

/// Reads `refs/`, including refs with slashes (`refs/pr/1`).
fn read_refs(dir: &Path, prefix: &str, out: &mut Vec<(String, String)>) {
    let Ok(entries) = std::fs::read_dir(dir) else {
        return;
    };
    for entry in entries.filter_map(Result::ok) {
        let name = format!("{prefix}{}", entry.file_name().to_string_lossy());
        let path = entry.path();
        if path.is_dir() {
            read_refs(&path, &format!("{name}/"), out);
        } else if let Ok(commit) = std::fs::read_to_string(&path) {
            out.push((name, commit.trim().to_string()));
        }
    }
}

fn read_model(path: &Path, repo: String) -> CachedModel {
    let mut refs = Vec::new();
    read_refs(&path.join("refs"), "", &mut refs);
    let mut snapshots: Vec<(std::time::SystemTime, CachedSnapshot)> =
        std::fs::read_dir(path.join("snapshots"))
            .map(|entries| {
                entries
                    .filter_map(Result::ok)
                    .filter(|e| e.path().is_dir())
                    .map(|e| {
                        let commit = e.file_name().to_string_lossy().to_string();
                        let mut files = Vec::new();
                        list_files(&e.path(), "", &mut files);
                        let modified = e
                            .metadata()
                            .and_then(|m| m.modified())
                            .unwrap_or(std::time::UNIX_EPOCH);
                        let snapshot = CachedSnapshot {
                            refs: refs
                                .iter()
                                .filter(|(_, c)| *c == commit)
                                .map(|(r, _)| r.clone())
                                .collect(),
                            complete: files.iter().any(|f| f == "config.json")
                                && has_weights(&files),
                            path: e.path(),
                            files,
                            commit,
                        };
                        (modified, snapshot)
                    })
                    .collect()
            })
            .unwrap_or_default();
    snapshots.sort_by_key(|s| std::cmp::Reverse(s.0));
    let snapshots: Vec<CachedSnapshot> = snapshots.into_iter().map(|(_, s)| s).collect();
    let mut model = CachedModel {
        repo,
        path: path.to_path_buf(),
        size_bytes: dir_bytes(&path.join("blobs"), None),
        partial_bytes: dir_bytes(&path.join("blobs"), Some(".incomplete")),
        model_type: None,
        snapshots,
    };
    model.model_type = model
        .default_snapshot()
        .and_then(|s| std::fs::read_to_string(s.path.join("config.json")).ok())
        .and_then(|t| serde_json::from_str::<serde_json::Value>(&t).ok())
        .and_then(|v| v.get("model_type")?.as_str().map(str::to_string));
    model
}

impl HubClient {
    /// The models in the cache, by repository id.
    pub fn cached_models(&self) -> Vec<CachedModel> {
        let Ok(entries) = std::fs::read_dir(self.cache.path()) else {
            return Vec::new();
        };
        let mut models: Vec<CachedModel> = entries
            .filter_map(Result::ok)
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let rest = name.strip_prefix("models--")?;
                let repo = rest.replacen("--", "/", 1);
                (e.path().is_dir() && check_repo_id(&repo).is_ok())
                    .then(|| read_model(&e.path(), repo))
            })
            .collect();
        models.sort_by(|a, b| a.repo.cmp(&b.repo));
        models
    }

    /// The cached model of a repository.
    pub fn cached_model(&self, repo: &str) -> Option<CachedModel> {
        check_repo_id(repo).ok()?;
        let dir = self.repo_dir(repo);
        dir.is_dir().then(|| read_model(&dir, repo.to_string()))
    }

    /// The snapshot folder of `repo` at `revision` (a ref or a commit), when it is in the cache
    /// with config.json.
    pub fn cached_snapshot(&self, repo: &str, revision: &str) -> Option<PathBuf> {
        check_repo_id(repo).ok()?;
        check_revision(revision).ok()?;
        let config = if is_commit_hash(revision) {
            let p = self
                .cache_repo(repo, revision)
                .pointer_path(revision)
                .join("config.json");
            p.exists().then_some(p)
        } else {
            self.cache_repo(repo, revision).get("config.json")
        }?;
        config.parent().map(Path::to_path_buf)
    }

    /// The snapshot a training run should use for `repo`: `main`, else the newest complete one.
    pub fn resolve_cached(&self, repo: &str) -> Result<PathBuf, HubError> {
        check_repo_id(repo)?;
        self.cached_snapshot(repo, "main")
            .or_else(|| Some(self.cached_model(repo)?.default_snapshot()?.path.clone()))
            .ok_or_else(|| HubError::NotCached {
                repo: repo.to_string(),
                cache: self.cache.path().clone(),
            })
    }

    /// Deletes a model from the cache; returns the bytes freed.
    pub fn remove_cached(&self, repo: &str) -> Result<u64, HubError> {
        let model = self.cached_model(repo).ok_or_else(|| HubError::NotCached {
            repo: repo.to_string(),
            cache: self.cache.path().clone(),
        })?;
        std::fs::remove_dir_all(&model.path).map_err(|e| HubError::io(&model.path, e))?;
        Ok(model.size_bytes + model.partial_bytes)
    }
}
