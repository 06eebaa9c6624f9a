//! Downloads of the files a fine-tune needs into the standard Hugging Face cache:
//! `blobs/<etag>` holds content, `snapshots/<commit>/<file>` links to it, `refs/<revision>`
//! names the commit. A blob is written as `<etag>.incomplete`, resumed with HTTP Range after
//! any interruption, checked against its size and checksum, and only then renamed into place,
//! so no half file ever looks complete. A lock in `.locks/` (where the Python client keeps its
//! own, with the same `flock`) keeps two downloaders off the same blob.

use std::fs::{File, OpenOptions};
use std::io::{Read, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};

use serde::{Deserialize, Serialize};
use sha1::Digest as _;

use crate::http::header;
use crate::info::{ModelInfo, RepoFile};
use crate::names::{
    check_file_name, check_repo_id, check_revision, checksum_of, etag_to_blob_name, is_commit_hash,
    Checksum,
};
use crate::{HubClient, HubError};

/// Tokenizer files (and a decoder's chat template and generation settings) of the families Hone
/// trains, whichever the repository has; hone-app's tests check it holds every file of every
/// family descriptor in the engine.
pub const TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "chat_template.jinja",
    "generation_config.json",
    "tokenizer.model",
    "vocab.txt",
    "vocab.json",
    "merges.txt",
    "sentencepiece.bpe.model",
    "spiece.model",
    "spm.model",
];

/// What to download besides the essentials.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DownloadOptions {
    /// Branch, tag or commit; `main` when absent.
    pub revision: Option<String>,
    /// Extra files by glob pattern (e.g. `onnx/*`), fetched on top of the essentials.
    pub include: Vec<String>,
}

/// A file in a download plan.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PlannedFile {
    pub name: String,
    pub size: u64,
    /// Already complete in the cache.
    pub cached: bool,
}

/// What a download reports while it runs.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum DownloadEvent {
    /// The files to fetch, once their sizes are known.
    Planned {
        repo: String,
        commit: String,
        files: Vec<PlannedFile>,
        total_bytes: u64,
        /// Bytes already in the cache (complete blobs and resumable partial ones).
        done_bytes: u64,
    },
    /// A file starts (or resumes at `resumed_from`).
    FileStarted {
        name: String,
        size: u64,
        resumed_from: u64,
    },
    /// Bytes arrived.
    Progress {
        name: String,
        file_bytes: u64,
        file_size: u64,
        done_bytes: u64,
        total_bytes: u64,
    },
    /// The connection dropped; the file resumes where it stopped.
    Retrying {
        name: String,
        attempt: u32,
        message: String,
    },
    /// A file is complete and verified.
    FileDone { name: String },
}

/// A finished download (or the cached copy used instead).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Downloaded {
    pub repo: String,
    pub commit: String,
    /// The snapshot folder: a model folder the engine loads.
    pub snapshot: PathBuf,
    pub files: Vec<String>,
    /// Bytes that came over the network this time.
    pub fetched_bytes: u64,
    /// Set when the Hub was unreachable and the cached snapshot is used instead.
    pub notice: Option<String>,
}

/// The essential files of a repository: config.json, the tokenizer files and one set of
/// weights (safetensors preferred over PyTorch pickles, single file over shards), the model
/// card, plus what `include` asks for.
pub fn plan_files(info: &ModelInfo, include: &[String]) -> Result<Vec<RepoFile>, HubError> {
    let has = |n: &str| info.file(n).is_some();
    let no = |what: &str| HubError::NotAModel {
        repo: info.id.clone(),
        what: what.into(),
    };
    if !has("config.json") {
        return Err(no("config.json"));
    }
    let shards = |index: &str, prefix: &str, ext: &str| -> Vec<String> {
        let mut names = vec![index.to_string()];
        names.extend(
            info.files
                .iter()
                .filter(|f| {
                    !f.name.contains('/')
                        && f.name.starts_with(prefix)
                        && f.name.contains("-of-")
                        && f.name.ends_with(ext)
                })
                .map(|f| f.name.clone()),
        );
        names
    };
    let weights = if has("model.safetensors") {
        vec!["model.safetensors".to_string()]
    } else if has("model.safetensors.index.json") {
        shards("model.safetensors.index.json", "model-", ".safetensors")
    } else if has("pytorch_model.bin") {
        vec!["pytorch_model.bin".to_string()]
    } else if has("pytorch_model.bin.index.json") {
        shards("pytorch_model.bin.index.json", "pytorch_model-", ".bin")
    } else {
        return Err(no("weights in safetensors or PyTorch format"));
    };
    let patterns = include
        .iter()
        .map(|p| {
            glob::Pattern::new(p).map_err(|e| HubError::BadPattern {
                pattern: p.clone(),
                message: e.to_string(),
            })
        })
        .collect::<Result<Vec<_>, _>>()?;
    let wanted = |f: &RepoFile| {
        f.name == "config.json"
            || f.name == "README.md"
            || TOKENIZER_FILES.contains(&f.name.as_str())
            || weights.contains(&f.name)
            || patterns.iter().any(|p| p.matches(&f.name))
    };
    Ok(info.files.iter().filter(|f| wanted(f)).cloned().collect())
}

/// Where a file's content is and what it must be.
struct RemoteFile {
    name: String,
    blob: String,
    size: u64,
    url: String,
}

/// Whether a read failed because the connection went silent for the stall timeout.
fn is_timeout(e: &std::io::Error) -> bool {
    e.kind() == std::io::ErrorKind::TimedOut
        || e.get_ref()
            .and_then(|inner| inner.downcast_ref::<ureq::Error>())
            .is_some_and(|u| matches!(u, ureq::Error::Timeout(_)))
}

/// An open exclusive lock on a blob, released when dropped (or when the process dies).
struct BlobLock(File);

impl BlobLock {
    fn take(path: &Path) -> Result<Self, HubError> {
        let file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .write(true)
            .open(path)
            .map_err(|e| HubError::io(path, e))?;
        file.lock().map_err(|e| HubError::io(path, e))?;
        Ok(BlobLock(file))
    }
}

impl Drop for BlobLock {
    fn drop(&mut self) {
        let _ = self.0.unlock();
    }
}

fn file_len(path: &Path) -> u64 {
    std::fs::metadata(path).map(|m| m.len()).unwrap_or(0)
}

/// Checks a finished blob against its size and checksum.
fn verify(path: &Path, name: &str, blob: &str, size: u64) -> Result<(), HubError> {
    let got = file_len(path);
    if got != size {
        return Err(HubError::SizeMismatch {
            file: name.to_string(),
            expected: size,
            got,
        });
    }
    let kind = checksum_of(blob);
    if kind == Checksum::None {
        return Ok(());
    }
    let mut file = File::open(path).map_err(|e| HubError::io(path, e))?;
    let mut sha256 = sha2::Sha256::new();
    let mut sha1 = sha1::Sha1::new();
    if kind == Checksum::GitSha1 {
        sha1.update(format!("blob {size}\0").as_bytes());
    }
    let mut buf = vec![0u8; 1 << 20];
    loop {
        let n = file.read(&mut buf).map_err(|e| HubError::io(path, e))?;
        if n == 0 {
            break;
        }
        match kind {
            Checksum::Sha256 => sha256.update(&buf[..n]),
            _ => sha1.update(&buf[..n]),
        }
    }
    let digest = match kind {
        Checksum::Sha256 => hex(&sha256.finalize()),
        _ => hex(&sha1.finalize()),
    };
    if digest.eq_ignore_ascii_case(blob) {
        Ok(())
    } else {
        Err(HubError::HashMismatch {
            file: name.to_string(),
        })
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Makes `snapshots/<commit>/<name>` a relative link to `blobs/<blob>`, refusing to go
/// through anything but real folders inside the snapshot.
fn link_pointer(
    repo_dir: &Path,
    commit: &str,
    name: &str,
    blob: &str,
) -> Result<PathBuf, HubError> {
    let snapshot = repo_dir.join("snapshots").join(commit);
    let parts: Vec<&str> = name.split('/').collect();
    let mut dir = snapshot.clone();
    std::fs::create_dir_all(&dir).map_err(|e| HubError::io(&dir, e))?;
    for part in &parts[..parts.len() - 1] {
        dir.push(part);
        match std::fs::symlink_metadata(&dir) {
            Ok(m) if m.is_dir() => {}
            Ok(_) => {
                return Err(HubError::UnsafeFileName {
                    name: name.to_string(),
                })
            }
            Err(_) => std::fs::create_dir(&dir).map_err(|e| HubError::io(&dir, e))?,
        }
    }
    let pointer = snapshot.join(name);
    if std::fs::symlink_metadata(&pointer).is_ok_and(|m| m.is_dir()) {
        return Err(HubError::UnsafeFileName {
            name: name.to_string(),
        });
    }
    let target = format!("{}blobs/{blob}", "../".repeat(parts.len() + 1));
    let temp = dir.join(format!(".{}.hone-link", parts[parts.len() - 1]));
    let _ = std::fs::remove_file(&temp);
    #[cfg(unix)]
    std::os::unix::fs::symlink(&target, &temp).map_err(|e| HubError::io(&temp, e))?;
    #[cfg(not(unix))]
    std::fs::copy(repo_dir.join("blobs").join(blob), &temp).map_err(|e| HubError::io(&temp, e))?;
    std::fs::rename(&temp, &pointer).map_err(|e| HubError::io(&pointer, e))?;
    Ok(pointer)
}

/// Progress bookkeeping of one download.
struct Tally<'a> {
    done: u64,
    total: u64,
    fetched: u64,
    on_event: &'a mut dyn FnMut(&DownloadEvent),
}

impl HubClient {
    /// Downloads what a fine-tune needs from `repo` into the cache and returns the snapshot
    /// folder. Files already complete are not fetched again; partial ones resume. When the Hub
    /// cannot be reached and a cached snapshot exists, that snapshot is returned with a notice.
    pub fn download(
        &self,
        repo: &str,
        options: &DownloadOptions,
        cancel: &AtomicBool,
        on_event: &mut dyn FnMut(&DownloadEvent),
    ) -> Result<Downloaded, HubError> {
        check_repo_id(repo)?;
        let revision = options.revision.as_deref().unwrap_or("main");
        check_revision(revision)?;
        let info = match self.model_listing(repo, Some(revision)) {
            Ok(info) => info,
            Err(e) if !e.is_final() || matches!(e, HubError::Offline { .. }) => {
                return match self.cached_snapshot(repo, revision) {
                    Some(snapshot) => Ok(self.cached_instead(repo, snapshot, &e)),
                    None => Err(e),
                };
            }
            Err(e) => return Err(e),
        };
        let files = plan_files(&info, &options.include)?;
        let mut commit = info.sha.clone();
        let mut remotes = Vec::with_capacity(files.len());
        for file in &files {
            let at = commit.clone().unwrap_or_else(|| revision.to_string());
            let (remote, file_commit) = self.remote_file(repo, &at, file)?;
            if commit.is_none() {
                commit = file_commit;
            }
            remotes.push(remote);
        }
        let commit = commit
            .filter(|c| is_commit_hash(c))
            .ok_or_else(|| HubError::BadResponse {
                url: self.resolve_url(repo, revision, "config.json"),
                message: "no commit hash (X-Repo-Commit) in the answer".into(),
            })?;
        let repo_dir = self.repo_dir(repo);
        let blobs = repo_dir.join("blobs");
        std::fs::create_dir_all(&blobs).map_err(|e| HubError::io(&blobs, e))?;
        let locks = self.locks_dir(repo);
        std::fs::create_dir_all(&locks).map_err(|e| HubError::io(&locks, e))?;

        let planned: Vec<PlannedFile> = remotes
            .iter()
            .map(|r| PlannedFile {
                name: r.name.clone(),
                size: r.size,
                cached: blobs.join(&r.blob).is_file(),
            })
            .collect();
        let total_bytes = remotes.iter().map(|r| r.size).sum();
        let done_bytes = remotes
            .iter()
            .map(|r| {
                let blob = blobs.join(&r.blob);
                if blob.is_file() {
                    r.size
                } else {
                    file_len(&blobs.join(format!("{}.incomplete", r.blob))).min(r.size)
                }
            })
            .sum();
        on_event(&DownloadEvent::Planned {
            repo: repo.to_string(),
            commit: commit.clone(),
            files: planned,
            total_bytes,
            done_bytes,
        });
        let mut tally = Tally {
            done: done_bytes,
            total: total_bytes,
            fetched: 0,
            on_event,
        };
        for remote in &remotes {
            self.fetch_blob(repo, &blobs, &locks, remote, cancel, &mut tally)?;
            link_pointer(&repo_dir, &commit, &remote.name, &remote.blob)?;
            (tally.on_event)(&DownloadEvent::FileDone {
                name: remote.name.clone(),
            });
        }
        if revision != commit {
            self.cache_repo(repo, revision)
                .create_ref(&commit)
                .map_err(|e| HubError::io(repo_dir.join("refs").join(revision), e))?;
        }
        Ok(Downloaded {
            repo: repo.to_string(),
            snapshot: repo_dir.join("snapshots").join(&commit),
            commit,
            files: remotes.iter().map(|r| r.name.clone()).collect(),
            fetched_bytes: tally.fetched,
            notice: None,
        })
    }

    fn cached_instead(&self, repo: &str, snapshot: PathBuf, error: &HubError) -> Downloaded {
        let mut files = Vec::new();
        crate::cache::list_files(&snapshot, "", &mut files);
        Downloaded {
            repo: repo.to_string(),
            commit: snapshot
                .file_name()
                .map(|n| n.to_string_lossy().to_string())
                .unwrap_or_default(),
            snapshot,
            files,
            fetched_bytes: 0,
            notice: Some(match error {
                HubError::Offline { .. } => {
                    "working offline (HF_HUB_OFFLINE is set): using the cached copy".to_string()
                }
                e => format!("{e}; using the cached copy"),
            }),
        }
    }

    /// The blob name, size and content URL of a file (a HEAD on its resolve URL, following only
    /// the Hub's own relative redirects), and the commit the Hub reports.
    fn remote_file(
        &self,
        repo: &str,
        at: &str,
        file: &RepoFile,
    ) -> Result<(RemoteFile, Option<String>), HubError> {
        check_file_name(&file.name)?;
        let mut url = self.resolve_url(repo, at, &file.name);
        for _ in 0..5 {
            let response = self.http.send(&url, true, None, false, repo)?;
            let headers = response.headers();
            let location = header(headers, "location").map(str::to_string);
            if response.status().is_redirection() {
                if let Some(loc) = location.as_deref().filter(|l| l.starts_with('/')) {
                    if header(headers, "x-linked-etag").is_none() {
                        url = format!("{}{loc}", self.http.config.endpoint);
                        continue;
                    }
                }
            }
            let etag = header(headers, "x-linked-etag")
                .or_else(|| header(headers, "etag"))
                .or(file.sha256.as_deref())
                .ok_or_else(|| HubError::BadResponse {
                    url: url.clone(),
                    message: "no ETag for the file".into(),
                })?;
            let blob = etag_to_blob_name(etag)?;
            let size = header(headers, "x-linked-size")
                .or_else(|| header(headers, "content-length"))
                .and_then(|s| s.trim().parse().ok())
                .or(file.size)
                .ok_or_else(|| HubError::BadResponse {
                    url: url.clone(),
                    message: "no size for the file".into(),
                })?;
            let commit = header(headers, "x-repo-commit").map(str::to_string);
            let content_url = match location {
                Some(loc) if response.status().is_redirection() => {
                    if loc.starts_with('/') {
                        format!("{}{loc}", self.http.config.endpoint)
                    } else {
                        loc
                    }
                }
                _ => url,
            };
            return Ok((
                RemoteFile {
                    name: file.name.clone(),
                    blob,
                    size,
                    url: content_url,
                },
                commit,
            ));
        }
        Err(HubError::BadResponse {
            url,
            message: "too many redirects".into(),
        })
    }

    /// Brings `blobs/<blob>` into place: resumes `<blob>.incomplete` with Range requests until
    /// it has every byte, verifies it, renames it.
    fn fetch_blob(
        &self,
        repo: &str,
        blobs: &Path,
        locks: &Path,
        remote: &RemoteFile,
        cancel: &AtomicBool,
        tally: &mut Tally,
    ) -> Result<(), HubError> {
        let blob = blobs.join(&remote.blob);
        let _lock = BlobLock::take(&locks.join(format!("{}.lock", remote.blob)))?;
        if blob.is_file() {
            return Ok(());
        }
        let partial = blobs.join(format!("{}.incomplete", remote.blob));
        let mut file = OpenOptions::new()
            .create(true)
            .truncate(false)
            .read(true)
            .write(true)
            .open(&partial)
            .map_err(|e| HubError::io(&partial, e))?;
        let mut have = file
            .metadata()
            .map_err(|e| HubError::io(&partial, e))?
            .len();
        if have > remote.size {
            file.set_len(0).map_err(|e| HubError::io(&partial, e))?;
            tally.done -= have.min(remote.size);
            have = 0;
        }
        (tally.on_event)(&DownloadEvent::FileStarted {
            name: remote.name.clone(),
            size: remote.size,
            resumed_from: have,
        });
        let mut stalls = 0u32;
        let mut buf = vec![0u8; 256 << 10];
        while have < remote.size {
            if cancel.load(Ordering::Relaxed) {
                return Err(HubError::Cancelled);
            }
            let response =
                match self
                    .http
                    .send(&remote.url, false, (have > 0).then_some(have), true, repo)
                {
                    Ok(r) => r,
                    // Nothing past what we have: the file is shorter than announced.
                    Err(HubError::Status { status: 416, .. }) => {
                        drop(file);
                        let _ = std::fs::remove_file(&partial);
                        tally.done -= have;
                        return Err(HubError::SizeMismatch {
                            file: remote.name.clone(),
                            expected: remote.size,
                            got: have,
                        });
                    }
                    Err(e) => return Err(e),
                };
            let status = response.status().as_u16();
            let ranged = status == 206
                && header(response.headers(), "content-range")
                    .is_some_and(|r| r.trim().starts_with(&format!("bytes {have}-")));
            if have > 0 && !ranged {
                // The server sent the whole file (or another range): start over.
                file.set_len(0).map_err(|e| HubError::io(&partial, e))?;
                tally.done -= have;
                have = 0;
            }
            file.seek(SeekFrom::Start(have))
                .map_err(|e| HubError::io(&partial, e))?;
            let mut body = response.into_body().into_reader();
            let before = have;
            let failure = loop {
                if cancel.load(Ordering::Relaxed) {
                    file.flush().map_err(|e| HubError::io(&partial, e))?;
                    return Err(HubError::Cancelled);
                }
                match body.read(&mut buf) {
                    Ok(0) => break None,
                    Ok(n) => {
                        if have + n as u64 > remote.size {
                            drop(file);
                            let _ = std::fs::remove_file(&partial);
                            return Err(HubError::SizeMismatch {
                                file: remote.name.clone(),
                                expected: remote.size,
                                got: have + n as u64,
                            });
                        }
                        file.write_all(&buf[..n])
                            .map_err(|e| HubError::io(&partial, e))?;
                        have += n as u64;
                        tally.done += n as u64;
                        tally.fetched += n as u64;
                        (tally.on_event)(&DownloadEvent::Progress {
                            name: remote.name.clone(),
                            file_bytes: have,
                            file_size: remote.size,
                            done_bytes: tally.done,
                            total_bytes: tally.total,
                        });
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) if is_timeout(&e) => {
                        break Some(format!(
                            "nothing arrived for {} s (HF_HUB_DOWNLOAD_TIMEOUT)",
                            self.http.config.stall_timeout.as_secs_f64()
                        ))
                    }
                    Err(e) => break Some(e.to_string()),
                }
            };
            if have >= remote.size {
                break;
            }
            stalls = if have > before { 0 } else { stalls + 1 };
            if stalls >= self.http.config.max_attempts {
                return Err(HubError::Network {
                    endpoint: self.http.config.endpoint.clone(),
                    message: format!(
                        "{} stopped at {have} of {} bytes: {}",
                        remote.name,
                        remote.size,
                        failure.unwrap_or_else(|| "the connection closed early".into())
                    ),
                });
            }
            (tally.on_event)(&DownloadEvent::Retrying {
                name: remote.name.clone(),
                attempt: stalls + 1,
                message: failure.unwrap_or_else(|| "the connection closed early".into()),
            });
            std::thread::sleep(self.http.backoff(stalls, None));
        }
        file.sync_all().map_err(|e| HubError::io(&partial, e))?;
        drop(file);
        if let Err(e) = verify(&partial, &remote.name, &remote.blob, remote.size) {
            let _ = std::fs::remove_file(&partial);
            tally.done -= remote.size;
            return Err(e);
        }
        std::fs::rename(&partial, &blob).map_err(|e| HubError::io(&blob, e))?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn info(names: &[&str]) -> ModelInfo {
        ModelInfo {
            id: "org/m".into(),
            sha: None,
            task: None,
            library: None,
            license: None,
            tags: vec![],
            gated: false,
            private: false,
            downloads: 0,
            likes: 0,
            last_modified: None,
            files: names
                .iter()
                .map(|n| RepoFile {
                    name: n.to_string(),
                    size: Some(1),
                    sha256: None,
                })
                .collect(),
            parameters: None,
            config: None,
            config_summary: None,
            card: None,
        }
    }

    fn planned(names: &[&str], include: &[&str]) -> Vec<String> {
        let include: Vec<String> = include.iter().map(|s| s.to_string()).collect();
        plan_files(&info(names), &include)
            .unwrap()
            .into_iter()
            .map(|f| f.name)
            .collect()
    }

    #[test]
    fn plans_only_what_a_fine_tune_needs() {
        let all = [
            "config.json",
            "model.safetensors",
            "pytorch_model.bin",
            "tf_model.h5",
            "onnx/model.onnx",
            "vocab.txt",
            "tokenizer.json",
            "README.md",
            ".gitattributes",
        ];
        assert_eq!(
            planned(&all, &[]),
            [
                "config.json",
                "model.safetensors",
                "vocab.txt",
                "tokenizer.json",
                "README.md"
            ]
        );
        assert!(planned(&all, &["onnx/*"]).contains(&"onnx/model.onnx".to_string()));
        let sharded = [
            "config.json",
            "model.safetensors.index.json",
            "model-00001-of-00002.safetensors",
            "model-00002-of-00002.safetensors",
            "pytorch_model.bin",
        ];
        assert_eq!(planned(&sharded, &[]).len(), 4);
        assert_eq!(planned(&["config.json", "pytorch_model.bin"], &[]).len(), 2);
        assert!(matches!(
            plan_files(&info(&["config.json", "tf_model.h5"]), &[]),
            Err(HubError::NotAModel { .. })
        ));
        assert!(matches!(
            plan_files(&info(&["model.safetensors"]), &[]),
            Err(HubError::NotAModel { .. })
        ));
    }

    #[test]
    fn pointers_are_relative_links_that_stay_inside() {
        let dir = tempfile::tempdir().unwrap();
        let repo = dir.path().join("models--o--m");
        std::fs::create_dir_all(repo.join("blobs")).unwrap();
        std::fs::write(repo.join("blobs/abc"), b"x").unwrap();
        let p = link_pointer(&repo, "c0", "sub/f.txt", "abc").unwrap();
        assert_eq!(std::fs::read(&p).unwrap(), b"x");
        #[cfg(unix)]
        {
            assert_eq!(
                std::fs::read_link(&p).unwrap(),
                PathBuf::from("../../../blobs/abc")
            );
            // A folder in the chain that is a link (say to /tmp) is refused.
            std::os::unix::fs::symlink(dir.path(), repo.join("snapshots/c0/evil")).unwrap();
            assert!(link_pointer(&repo, "c0", "evil/x", "abc").is_err());
        }
    }

    #[test]
    fn verification_catches_size_and_content() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f");
        std::fs::write(&path, b"hello\n").unwrap();
        // git hash-object of "hello\n" and sha256 of it.
        let git = "ce013625030ba8dba906f756967f9e9ca394464a";
        let sha = "5891b5b522d5df086d0ff0b110fbd9d21bb4fc7163af34d08286a2e846f6be03";
        verify(&path, "f", git, 6).unwrap();
        verify(&path, "f", sha, 6).unwrap();
        assert!(matches!(
            verify(&path, "f", sha, 7),
            Err(HubError::SizeMismatch { .. })
        ));
        let wrong = "0".repeat(64);
        assert!(matches!(
            verify(&path, "f", &wrong, 6),
            Err(HubError::HashMismatch { .. })
        ));
    }
}
