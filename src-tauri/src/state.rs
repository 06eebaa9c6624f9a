//! What the commands share: the database path, the Hub client, the runs and downloads in
//! progress (their cancel switches), and the paths the user picked in a dialog.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::sync::{Arc, Mutex, MutexGuard};

use hone_app::App;
use hone_hub::HubClient;

use crate::error::{CommandError, CommandResult};

/// The app's state, managed by Tauri.
pub struct DesktopState {
    db: PathBuf,
    hub: HubClient,
    /// Cancel switches of running trainings, by run id.
    pub runs: Mutex<HashMap<i64, Arc<AtomicBool>>>,
    /// Cancel switches of downloads, by repo id.
    pub downloads: Mutex<HashMap<String, Arc<AtomicBool>>>,
    picked: Mutex<HashSet<PathBuf>>,
    /// Paths the file dialogs answer with, in order, instead of opening (end-to-end tests:
    /// `HONE_PICK` holds them separated by the platform's path separator).
    scripted_picks: Mutex<Vec<PathBuf>>,
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

impl DesktopState {
    /// State over the database at `db`, the Hub as the environment configures it.
    pub fn new(db: PathBuf) -> Self {
        let scripted = std::env::var_os("HONE_PICK")
            .map(|v| std::env::split_paths(&v).collect())
            .unwrap_or_default();
        Self::scripted(db, HubClient::from_env(), scripted)
    }

    /// State with its own Hub client whose file dialogs answer `picks` in order (tests).
    pub fn scripted(db: PathBuf, hub: HubClient, picks: Vec<PathBuf>) -> Self {
        DesktopState {
            db,
            hub,
            runs: Mutex::default(),
            downloads: Mutex::default(),
            picked: Mutex::default(),
            scripted_picks: Mutex::new(picks),
        }
    }

    /// The database file.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Opens the database (a connection per command: SQLite in WAL mode makes this cheap, and
    /// no lock is held while a long command runs).
    pub fn app(&self) -> CommandResult<App> {
        Ok(App::open(&self.db)?)
    }

    /// The Hub client.
    pub fn hub(&self) -> &HubClient {
        &self.hub
    }

    /// Remembers a path the user picked: commands may read it and what is inside it.
    pub fn allow(&self, path: &Path) {
        lock(&self.picked).insert(path.to_path_buf());
    }

    /// The next scripted dialog answer, if a test scripted one.
    pub fn next_scripted_pick(&self) -> Option<PathBuf> {
        let mut picks = lock(&self.scripted_picks);
        (!picks.is_empty()).then(|| picks.remove(0))
    }

    /// Fails unless `path` is (inside) a path the user picked in a dialog, or a file Hone
    /// made itself (under the database's folder).
    pub fn check_allowed(&self, path: &Path) -> CommandResult<()> {
        let inside = |root: &Path| path.starts_with(root);
        let own = self.db.parent().is_some_and(&inside);
        if own || lock(&self.picked).iter().any(|p| inside(p)) {
            Ok(())
        } else {
            Err(CommandError::new(
                "not_picked",
                format!("{} was not chosen in a file dialog", path.display()),
            ))
        }
    }

    /// Registers a running training's cancel switch.
    pub fn track_run(&self, id: i64, cancel: Arc<AtomicBool>) {
        lock(&self.runs).insert(id, cancel);
    }

    /// Forgets a finished training.
    pub fn untrack_run(&self, id: i64) {
        lock(&self.runs).remove(&id);
    }

    /// The cancel switch of a running training.
    pub fn run_switch(&self, id: i64) -> Option<Arc<AtomicBool>> {
        lock(&self.runs).get(&id).cloned()
    }

    /// Registers a download, or fails if that repo is already downloading.
    pub fn track_download(&self, repo: &str) -> CommandResult<Arc<AtomicBool>> {
        let mut downloads = lock(&self.downloads);
        if downloads.contains_key(repo) {
            return Err(CommandError::new(
                "busy",
                format!("{repo} is already downloading"),
            ));
        }
        let flag = Arc::new(AtomicBool::new(false));
        downloads.insert(repo.to_string(), flag.clone());
        Ok(flag)
    }

    /// Forgets a download.
    pub fn untrack_download(&self, repo: &str) {
        lock(&self.downloads).remove(repo);
    }

    /// The cancel switch of a download.
    pub fn download_switch(&self, repo: &str) -> Option<Arc<AtomicBool>> {
        lock(&self.downloads).get(repo).cloned()
    }
}
