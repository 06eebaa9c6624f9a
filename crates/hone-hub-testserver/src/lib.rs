//! A real HTTP server on 127.0.0.1 that speaks the parts of the Hugging Face Hub API Hone
//! uses, with the response shapes, headers and status codes of the real service:
//!
//! - `GET /api/models?search=&pipeline_tag=&library=&sort=&direction=-1&limit=&cursor=`:
//!   a JSON list and a `Link: <...>; rel="next"` header while more remain;
//! - `GET /api/models/{id}[/revision/{rev}]?blobs=true`: model info with `sha`, `siblings`
//!   (sizes, `lfs.sha256`), `safetensors.total`, `cardData.license`;
//! - `HEAD|GET /{id}/resolve/{rev}/{file}`: small files answer 200 with `ETag` (git blob SHA-1),
//!   `X-Repo-Commit`; LFS files answer 302 to `/cdn/{sha256}` with `X-Linked-Etag`,
//!   `X-Linked-Size`, `X-Repo-Commit`;
//! - `GET /cdn/{sha256}`: the bytes, with `Range` → 206 + `Content-Range`, 416 past the end;
//! - 404 + `X-Error-Code: RepoNotFound|RevisionNotFound|EntryNotFound`, 401/403 +
//!   `X-Error-Code: GatedRepo` for gated repositories without a (valid) token.
//!
//! [`Faults`] injects what the network does to real downloads: 429/5xx answers, connections
//! cut at random points, ignored ranges, corrupted content, lying sizes, hostile ETags.

use std::collections::{HashMap, HashSet, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::Path;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::thread::JoinHandle;
use std::time::Duration;

use serde_json::{json, Value};
use sha2::Digest as _;

/// The token gated repositories accept.
pub const TOKEN: &str = "hf_testtoken";

/// A file of a served repository.
#[derive(Debug, Clone)]
pub struct ServedFile {
    pub name: String,
    pub bytes: Arc<Vec<u8>>,
    /// Stored with Git LFS: served through a redirect to `/cdn/{sha256}`.
    pub lfs: bool,
}

impl ServedFile {
    /// SHA-256 of the content (the LFS object id).
    pub fn sha256(&self) -> String {
        hex(&sha2::Sha256::digest(&*self.bytes))
    }

    /// Git's blob id: SHA-1 of `blob {len}\0{content}`.
    pub fn git_sha1(&self) -> String {
        let mut h = sha1::Sha1::new();
        h.update(format!("blob {}\0", self.bytes.len()).as_bytes());
        h.update(&*self.bytes);
        hex(&h.finalize())
    }

    fn etag(&self) -> String {
        if self.lfs {
            self.sha256()
        } else {
            self.git_sha1()
        }
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// A served model repository.
#[derive(Debug, Clone)]
pub struct Repo {
    pub id: String,
    /// 40 hex digits.
    pub commit: String,
    pub files: Vec<ServedFile>,
    /// Names listed in `siblings` that have no content (hostile listings).
    pub extra_listing: Vec<String>,
    pub gated: bool,
    pub private: bool,
    pub pipeline_tag: Option<String>,
    pub library: Option<String>,
    pub license: Option<String>,
    pub downloads: u64,
    pub likes: u64,
    pub last_modified: String,
    pub tags: Vec<String>,
}

fn lfs_by_name(name: &str) -> bool {
    let ext = name.rsplit('.').next().unwrap_or("");
    matches!(
        ext,
        "safetensors" | "bin" | "h5" | "onnx" | "msgpack" | "model" | "pt" | "pth" | "ckpt" | "ot"
    )
}

impl Repo {
    /// An empty repository; the commit is derived from the id.
    pub fn new(id: &str) -> Self {
        let commit = hex(&sha1::Sha1::digest(id.as_bytes()));
        Repo {
            id: id.to_string(),
            commit,
            files: Vec::new(),
            extra_listing: Vec::new(),
            gated: false,
            private: false,
            pipeline_tag: None,
            library: Some("transformers".into()),
            license: Some("apache-2.0".into()),
            downloads: 0,
            likes: 0,
            last_modified: "2026-01-01T00:00:00.000Z".into(),
            tags: Vec::new(),
        }
    }

    /// Adds a file (LFS by extension, as a `.gitattributes` of the Hub would).
    pub fn file(mut self, name: &str, bytes: Vec<u8>) -> Self {
        self.files.push(ServedFile {
            name: name.to_string(),
            lfs: lfs_by_name(name),
            bytes: Arc::new(bytes),
        });
        self
    }

    /// A repository holding every file of a folder (not recursive).
    pub fn from_dir(id: &str, dir: &Path) -> std::io::Result<Self> {
        let mut names: Vec<_> = std::fs::read_dir(dir)?
            .filter_map(Result::ok)
            .filter(|e| e.path().is_file())
            .map(|e| e.file_name().to_string_lossy().to_string())
            .collect();
        names.sort();
        let mut repo = Repo::new(id);
        for name in names {
            let bytes = std::fs::read(dir.join(&name))?;
            repo = repo.file(&name, bytes);
        }
        Ok(repo)
    }

    /// Sets the popularity and date fields search sorts by.
    pub fn stats(mut self, downloads: u64, likes: u64, last_modified: &str) -> Self {
        self.downloads = downloads;
        self.likes = likes;
        self.last_modified = last_modified.to_string();
        self
    }

    /// Sets the task (pipeline tag).
    pub fn task(mut self, task: &str) -> Self {
        self.pipeline_tag = Some(task.to_string());
        self
    }

    /// Makes the repository gated (files need [`TOKEN`]).
    pub fn gated(mut self) -> Self {
        self.gated = true;
        self
    }

    /// Makes the repository private (invisible without [`TOKEN`]).
    pub fn private(mut self) -> Self {
        self.private = true;
        self
    }

    fn find(&self, name: &str) -> Option<&ServedFile> {
        self.files.iter().find(|f| f.name == name)
    }

    /// Parameter count from the safetensors header of `model.safetensors`.
    fn parameters(&self) -> Option<u64> {
        let bytes = &self.find("model.safetensors")?.bytes;
        let len = u64::from_le_bytes(bytes.get(..8)?.try_into().ok()?) as usize;
        let header: Value = serde_json::from_slice(bytes.get(8..8 + len)?).ok()?;
        Some(
            header
                .as_object()?
                .iter()
                .filter(|(k, _)| *k != "__metadata__")
                .filter_map(|(_, v)| {
                    v.get("shape")?
                        .as_array()
                        .map(|s| s.iter().filter_map(Value::as_u64).product::<u64>())
                })
                .sum(),
        )
    }

    fn summary(&self) -> Value {
        json!({
            "_id": &self.commit[..24],
            "id": self.id,
            "modelId": self.id,
            "likes": self.likes,
            "downloads": self.downloads,
            "private": self.private,
            "gated": if self.gated { json!("manual") } else { json!(false) },
            "pipeline_tag": self.pipeline_tag,
            "library_name": self.library,
            "tags": self.all_tags(),
            "lastModified": self.last_modified,
            "createdAt": "2025-01-01T00:00:00.000Z",
        })
    }

    /// The tags the Hub shows: the repo's own, its library, task, license and (as the Hub adds
    /// it) the `model_type` of its config.json.
    fn all_tags(&self) -> Vec<String> {
        let mut tags = self.tags.clone();
        if let Some(model_type) = self
            .find("config.json")
            .and_then(|f| serde_json::from_slice::<Value>(&f.bytes).ok())
            .and_then(|c| c.get("model_type")?.as_str().map(str::to_string))
        {
            if !tags.contains(&model_type) {
                tags.push(model_type);
            }
        }
        tags.extend(self.library.clone());
        tags.extend(self.pipeline_tag.clone());
        tags.extend(self.license.as_ref().map(|l| format!("license:{l}")));
        tags
    }

    fn info(&self, faults: &Faults) -> Value {
        let mut siblings: Vec<Value> = self
            .files
            .iter()
            .map(|f| {
                let mut s =
                    json!({"rfilename": f.name, "blobId": f.git_sha1(), "size": f.bytes.len()});
                if f.lfs {
                    s["lfs"] =
                        json!({"sha256": f.sha256(), "size": f.bytes.len(), "pointerSize": 134});
                }
                if let Some(size) = faults.listed_size.get(&f.name) {
                    s["size"] = json!(size);
                }
                s
            })
            .collect();
        siblings.extend(
            self.extra_listing
                .iter()
                .map(|n| json!({"rfilename": n, "blobId": "0".repeat(40), "size": 1})),
        );
        let mut v = self.summary();
        v["author"] = json!(self.id.split('/').next());
        v["sha"] = json!(self.commit);
        v["disabled"] = json!(false);
        v["siblings"] = json!(siblings);
        if let Some(license) = &self.license {
            v["cardData"] = json!({"license": license});
        }
        if let Some(total) = self.parameters() {
            v["safetensors"] = json!({"parameters": {"F32": total}, "total": total});
        }
        if let Some(config) = self
            .find("config.json")
            .and_then(|f| serde_json::from_slice::<Value>(&f.bytes).ok())
        {
            v["config"] = json!({
                "architectures": config.get("architectures"),
                "model_type": config.get("model_type"),
            });
        }
        v
    }
}

/// Faults to inject; change them through [`TestHub::faults`] between requests.
#[derive(Debug, Default)]
pub struct Faults {
    /// Answers for the next requests, in order (any path): a status and a `Retry-After`.
    pub statuses: VecDeque<(u16, Option<u64>)>,
    /// The next this-many file bodies are cut at a random point after the headers.
    pub cuts: u32,
    /// Only bodies of this file are cut or stalled (any file when `None`).
    pub cut_file: Option<String>,
    /// The next this-many file bodies stop sending at a random point and hold the connection
    /// open, silent, for `stall_for` before closing it (a stalled transfer).
    pub stalls: u32,
    /// How long a stalled body stays silent.
    pub stall_for: Duration,
    /// Ignore `Range` and always send the whole file with 200.
    pub ignore_range: bool,
    /// Files whose content is served with one byte changed.
    pub corrupt: HashSet<String>,
    /// Files whose `Content-Length`/`X-Linked-Size` on HEAD claims this size.
    pub claimed_size: HashMap<String, u64>,
    /// Files whose listing `size` says this.
    pub listed_size: HashMap<String, u64>,
    /// Files whose ETag is replaced by this (hostile) value.
    pub etag: HashMap<String, String>,
    /// LFS redirects go to this absolute URL prefix instead of our own `/cdn/`.
    pub cdn_prefix: Option<String>,
}

/// A request the server answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Hit {
    pub method: String,
    pub path: String,
    pub status: u16,
    pub range_start: Option<u64>,
    pub authorized: bool,
}

struct State {
    repos: Mutex<Vec<Repo>>,
    faults: Mutex<Faults>,
    hits: Mutex<Vec<Hit>>,
    rng: Mutex<u64>,
    base: String,
    page_size: usize,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

/// A running server; stops when dropped.
pub struct TestHub {
    addr: SocketAddr,
    state: Arc<State>,
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
}

impl TestHub {
    /// Starts a server on a free port of 127.0.0.1 with these repositories.
    pub fn start(repos: Vec<Repo>) -> std::io::Result<Self> {
        Self::start_on(0, repos)
    }

    /// Starts a server on `port` (0: any free one).
    pub fn start_on(port: u16, repos: Vec<Repo>) -> std::io::Result<Self> {
        let listener = TcpListener::bind(("127.0.0.1", port))?;
        let addr = listener.local_addr()?;
        let state = Arc::new(State {
            repos: Mutex::new(repos),
            faults: Mutex::new(Faults::default()),
            hits: Mutex::new(Vec::new()),
            rng: Mutex::new(0x9E37_79B9_7F4A_7C15),
            base: format!("http://{addr}"),
            page_size: 1000,
        });
        let stop = Arc::new(AtomicBool::new(false));
        let thread = {
            let (state, stop) = (state.clone(), stop.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    let state = state.clone();
                    std::thread::spawn(move || {
                        let _ = serve(stream, &state);
                    });
                }
            })
        };
        Ok(TestHub {
            addr,
            state,
            stop,
            thread: Some(thread),
        })
    }

    /// `http://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        self.state.base.clone()
    }

    /// The faults to inject.
    pub fn faults(&self) -> MutexGuard<'_, Faults> {
        lock(&self.state.faults)
    }

    /// Seeds the generator of cut points.
    pub fn seed(&self, seed: u64) {
        *lock(&self.state.rng) = seed.max(1);
    }

    /// The requests answered so far.
    pub fn hits(&self) -> Vec<Hit> {
        lock(&self.state.hits).clone()
    }

    /// Forgets the requests answered so far.
    pub fn clear_hits(&self) {
        lock(&self.state.hits).clear();
    }

    /// Adds or replaces a repository.
    pub fn put(&self, repo: Repo) {
        let mut repos = lock(&self.state.repos);
        repos.retain(|r| r.id != repo.id);
        repos.push(repo);
    }
}

impl Drop for TestHub {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(self.addr);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A parsed request.
struct Request {
    method: String,
    path: String,
    query: Vec<(String, String)>,
    headers: HashMap<String, String>,
}

impl Request {
    fn param(&self, key: &str) -> Option<&str> {
        self.query
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }
}

fn decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'%' if i + 2 < bytes.len() => {
                let hex = std::str::from_utf8(&bytes[i + 1..i + 3]).ok();
                match hex.and_then(|h| u8::from_str_radix(h, 16).ok()) {
                    Some(b) => {
                        out.push(b);
                        i += 3;
                        continue;
                    }
                    None => out.push(b'%'),
                }
            }
            b'+' => out.push(b' '),
            b => out.push(b),
        }
        i += 1;
    }
    String::from_utf8_lossy(&out).to_string()
}

fn read_request(stream: &TcpStream) -> Option<Request> {
    let mut reader = BufReader::new(stream.try_clone().ok()?).take(64 << 10);
    let mut line = String::new();
    reader.read_line(&mut line).ok()?;
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_string();
    let target = parts.next()?.to_string();
    let mut headers = HashMap::new();
    loop {
        let mut h = String::new();
        if reader.read_line(&mut h).ok()? == 0 || h.trim().is_empty() {
            break;
        }
        if let Some((k, v)) = h.split_once(':') {
            headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_string());
        }
    }
    let (path, query) = target.split_once('?').unwrap_or((&target, ""));
    let query = query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (k, v) = p.split_once('=').unwrap_or((p, ""));
            (decode(k), decode(v))
        })
        .collect();
    Some(Request {
        method,
        path: decode(path),
        query,
        headers,
    })
}

/// An answer.
struct Answer {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
    /// Send only this many body bytes, then close (a dropped connection).
    cut_at: Option<usize>,
    /// After the cut, stay silent this long before closing (a stalled connection).
    stall: Option<Duration>,
    /// HEAD: headers only, `Content-Length` as given.
    head_length: Option<u64>,
}

impl Answer {
    fn new(status: u16) -> Self {
        Answer {
            status,
            headers: Vec::new(),
            body: Vec::new(),
            cut_at: None,
            stall: None,
            head_length: None,
        }
    }

    fn json(status: u16, v: &Value) -> Self {
        let mut a = Answer::new(status);
        a.body = v.to_string().into_bytes();
        a.header("Content-Type", "application/json; charset=utf-8")
    }

    fn error(status: u16, code: &str, message: &str) -> Self {
        Answer::json(status, &json!({ "error": message })).header("X-Error-Code", code)
    }

    fn header(mut self, k: &str, v: impl Into<String>) -> Self {
        self.headers.push((k.to_string(), v.into()));
        self
    }
}

fn reason(status: u16) -> &'static str {
    match status {
        200 => "OK",
        206 => "Partial Content",
        302 => "Found",
        307 => "Temporary Redirect",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        416 => "Range Not Satisfiable",
        429 => "Too Many Requests",
        500 => "Internal Server Error",
        502 => "Bad Gateway",
        503 => "Service Unavailable",
        _ => "Status",
    }
}

fn serve(mut stream: TcpStream, state: &State) -> std::io::Result<()> {
    let Some(req) = read_request(&stream) else {
        return Ok(());
    };
    let head = req.method == "HEAD";
    let authorized = req
        .headers
        .get("authorization")
        .is_some_and(|a| a == &format!("Bearer {TOKEN}"));
    let range_start = req
        .headers
        .get("range")
        .and_then(|r| r.strip_prefix("bytes="))
        .and_then(|r| r.split('-').next())
        .and_then(|s| s.parse().ok());
    let injected = lock(&state.faults).statuses.pop_front();
    let answer = match injected {
        Some((status, retry_after)) => {
            let mut a = Answer::error(status, "", "injected failure");
            if let Some(s) = retry_after {
                a = a.header("Retry-After", s.to_string());
            }
            a
        }
        None => route(&req, state, authorized, range_start),
    };
    lock(&state.hits).push(Hit {
        method: req.method.clone(),
        path: req.path.clone(),
        status: answer.status,
        range_start,
        authorized,
    });
    let length = answer.head_length.unwrap_or(answer.body.len() as u64);
    let mut out = format!("HTTP/1.1 {} {}\r\n", answer.status, reason(answer.status));
    let mut has_length = false;
    for (k, v) in &answer.headers {
        has_length |= k.eq_ignore_ascii_case("content-length");
        out.push_str(&format!("{k}: {v}\r\n"));
    }
    if !has_length {
        out.push_str(&format!("Content-Length: {length}\r\n"));
    }
    out.push_str("Connection: close\r\n\r\n");
    stream.write_all(out.as_bytes())?;
    if !head {
        let end = answer
            .cut_at
            .unwrap_or(answer.body.len())
            .min(answer.body.len());
        stream.write_all(&answer.body[..end])?;
        if let Some(silence) = answer.stall {
            stream.flush()?;
            std::thread::sleep(silence);
        }
    }
    stream.flush()?;
    let _ = stream.shutdown(std::net::Shutdown::Both);
    Ok(())
}

fn route(req: &Request, state: &State, authorized: bool, range_start: Option<u64>) -> Answer {
    let path = req.path.trim_start_matches('/');
    if path == "api/models" {
        return search(req, state, authorized);
    }
    if let Some(rest) = path.strip_prefix("api/models/") {
        return model_info(rest, state, authorized);
    }
    if let Some(sha) = path.strip_prefix("cdn/") {
        let repos = lock(&state.repos);
        let Some(file) = repos
            .iter()
            .flat_map(|r| r.files.iter())
            .find(|f| f.lfs && f.sha256() == sha)
            .cloned()
        else {
            return Answer::error(404, "EntryNotFound", "no such object");
        };
        drop(repos);
        return content(req, state, &file, range_start);
    }
    if let Some((repo_id, rest)) = path.split_once("/resolve/") {
        return resolve(req, state, repo_id, rest, authorized, range_start);
    }
    Answer::error(404, "", "not found")
}

fn visible(repo: &Repo, authorized: bool) -> bool {
    !repo.private || authorized
}

fn search(req: &Request, state: &State, authorized: bool) -> Answer {
    let text = req.param("search").unwrap_or("").to_ascii_lowercase();
    let repos = lock(&state.repos);
    let mut found: Vec<&Repo> = repos
        .iter()
        .filter(|r| visible(r, authorized))
        .filter(|r| r.id.to_ascii_lowercase().contains(&text))
        .filter(|r| {
            req.param("pipeline_tag")
                .is_none_or(|t| r.pipeline_tag.as_deref() == Some(t))
        })
        .filter(|r| {
            req.param("library")
                .is_none_or(|l| r.library.as_deref() == Some(l))
        })
        .collect();
    match req.param("sort").unwrap_or("downloads") {
        "likes" => found.sort_by_key(|r| std::cmp::Reverse(r.likes)),
        "lastModified" => found.sort_by(|a, b| b.last_modified.cmp(&a.last_modified)),
        _ => found.sort_by_key(|r| std::cmp::Reverse(r.downloads)),
    }
    if req.param("direction") == Some("1") {
        found.reverse();
    }
    let limit: usize = req
        .param("limit")
        .and_then(|l| l.parse().ok())
        .unwrap_or(state.page_size)
        .clamp(1, state.page_size);
    let start: usize = req
        .param("cursor")
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    let page: Vec<Value> = found
        .iter()
        .skip(start)
        .take(limit)
        .map(|r| r.summary())
        .collect();
    let mut answer = Answer::json(200, &Value::Array(page));
    if start + limit < found.len() {
        let query: Vec<String> = req
            .query
            .iter()
            .filter(|(k, _)| k != "cursor")
            .map(|(k, v)| format!("{k}={}", encode(v)))
            .collect();
        answer = answer.header(
            "Link",
            format!(
                "<{}/api/models?{}&cursor={}>; rel=\"next\"",
                state.base,
                query.join("&"),
                start + limit
            ),
        );
    }
    answer
}

fn encode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' | b'[' | b']' => {
                (b as char).to_string()
            }
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// Finds a repository and checks the revision; the error answers the Hub gives otherwise.
fn find_repo(state: &State, id: &str, revision: &str, authorized: bool) -> Result<Repo, Answer> {
    let repos = lock(&state.repos);
    let Some(repo) = repos.iter().find(|r| r.id == id && visible(r, authorized)) else {
        let status = if authorized { 404 } else { 401 };
        return Err(Answer::error(
            status,
            "RepoNotFound",
            "Repository not found",
        ));
    };
    if revision != "main" && revision != repo.commit {
        return Err(Answer::error(404, "RevisionNotFound", "Invalid rev id"));
    }
    Ok(repo.clone())
}

fn model_info(rest: &str, state: &State, authorized: bool) -> Answer {
    let (id, revision) = match rest.split_once("/revision/") {
        Some((id, rev)) => (id, rev),
        None => (rest, "main"),
    };
    match find_repo(state, id, revision, authorized) {
        Ok(repo) => Answer::json(200, &repo.info(&lock(&state.faults))),
        Err(a) => a,
    }
}

fn resolve(
    req: &Request,
    state: &State,
    id: &str,
    rest: &str,
    authorized: bool,
    range_start: Option<u64>,
) -> Answer {
    let (revision, name) = rest.split_once('/').unwrap_or((rest, ""));
    let repo = match find_repo(state, id, revision, authorized) {
        Ok(r) => r,
        Err(a) => return a,
    };
    if repo.gated && !authorized {
        let (status, message) = if req.headers.contains_key("authorization") {
            (
                403,
                "Access to this model is restricted; your token has no access",
            )
        } else {
            (401, "Access to model is restricted. You must have access to it and be authenticated to access it. Please log in.")
        };
        return Answer::error(status, "GatedRepo", message);
    }
    let Some(file) = repo.find(name).cloned() else {
        return Answer::error(404, "EntryNotFound", "Entry not found");
    };
    let faults = lock(&state.faults);
    let etag = faults
        .etag
        .get(name)
        .cloned()
        .unwrap_or_else(|| format!("\"{}\"", file.etag()));
    let size = faults
        .claimed_size
        .get(name)
        .copied()
        .unwrap_or(file.bytes.len() as u64);
    let cdn = faults
        .cdn_prefix
        .clone()
        .unwrap_or_else(|| format!("{}/cdn/", state.base));
    drop(faults);
    if file.lfs {
        let mut a = Answer::new(302)
            .header("Location", format!("{cdn}{}", file.sha256()))
            .header("X-Linked-Etag", etag)
            .header("X-Linked-Size", size.to_string())
            .header("X-Repo-Commit", &repo.commit)
            .header("ETag", format!("\"{}\"", file.git_sha1()));
        a.head_length = Some(0);
        return a;
    }
    if req.method == "HEAD" {
        let mut a = Answer::new(200)
            .header("ETag", etag)
            .header("X-Repo-Commit", &repo.commit)
            .header("Accept-Ranges", "bytes");
        a.head_length = Some(size);
        return a;
    }
    content(req, state, &file, range_start).header("X-Repo-Commit", &repo.commit)
}

fn next_random(state: &State) -> u64 {
    let mut x = lock(&state.rng);
    *x ^= *x << 13;
    *x ^= *x >> 7;
    *x ^= *x << 17;
    *x
}

/// File bytes with Range support and the content faults.
fn content(req: &Request, state: &State, file: &ServedFile, range_start: Option<u64>) -> Answer {
    let mut faults = lock(&state.faults);
    let mut bytes = (*file.bytes).clone();
    if faults.corrupt.contains(&file.name) && !bytes.is_empty() {
        let mid = bytes.len() / 2;
        bytes[mid] ^= 0xFF;
    }
    let len = bytes.len() as u64;
    let etag = format!("\"{}\"", file.etag());
    let mut answer = match range_start.filter(|_| !faults.ignore_range) {
        Some(start) if start >= len => {
            return Answer::new(416).header("Content-Range", format!("bytes */{len}"));
        }
        Some(start) => {
            let mut a = Answer::new(206).header(
                "Content-Range",
                format!("bytes {start}-{}/{len}", len.saturating_sub(1)),
            );
            a.body = bytes[start as usize..].to_vec();
            a
        }
        None => {
            let mut a = Answer::new(200);
            a.body = bytes;
            a
        }
    };
    answer = answer
        .header("ETag", etag)
        .header("Accept-Ranges", "bytes")
        .header("Content-Type", "application/octet-stream");
    let cut_this = faults.cut_file.as_ref().is_none_or(|f| *f == file.name);
    if req.method != "HEAD" && faults.cuts > 0 && cut_this && !answer.body.is_empty() {
        faults.cuts -= 1;
        drop(faults);
        answer.cut_at = Some((next_random(state) % answer.body.len() as u64) as usize);
    } else if req.method != "HEAD" && faults.stalls > 0 && cut_this && !answer.body.is_empty() {
        faults.stalls -= 1;
        let silence = faults.stall_for;
        drop(faults);
        answer.cut_at = Some((next_random(state) % answer.body.len() as u64) as usize);
        answer.stall = Some(silence);
    }
    answer
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn decodes_queries() {
        assert_eq!(decode("a%20b+c%2F"), "a b c/");
        assert_eq!(decode("100%"), "100%");
    }
}
