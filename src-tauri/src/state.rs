//! What the commands share: the database path, the Hub client, the runs and downloads in
//! progress (their cancel switches), and the paths the user picked in a dialog.

use std::collections::{HashMap, HashSet};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

use hone_app::predict::FineTunedModel;
use hone_app::types::HubClient;
use hone_app::App;

use crate::error::{CommandError, CommandResult};

/// The playground's model: its folder, length, whether it runs in int8, and the model.
type KeptPredictor = (PathBuf, Option<usize>, bool, Arc<FineTunedModel>);

/// The cancel switch of a one-at-a-time task (scoring the labeling queue, the LR range
/// test): starting one stops the one before.
#[derive(Default)]
pub struct CancelSlot(Mutex<Option<Arc<AtomicBool>>>);

impl CancelSlot {
    /// A fresh switch for a task starting now; the previous task's switch is raised.
    pub fn begin(&self) -> Arc<AtomicBool> {
        let cancel = Arc::new(AtomicBool::new(false));
        if let Some(previous) = lock(&self.0).replace(cancel.clone()) {
            previous.store(true, Ordering::SeqCst);
        }
        cancel
    }

    /// Forgets `cancel` when it is still the current task's switch (the task ended).
    pub fn end(&self, cancel: &Arc<AtomicBool>) {
        let mut slot = lock(&self.0);
        if slot.as_ref().is_some_and(|c| Arc::ptr_eq(c, cancel)) {
            *slot = None;
        }
    }

    /// Raises the current task's switch; true when a task was running and not yet stopped.
    pub fn cancel(&self) -> bool {
        lock(&self.0)
            .as_ref()
            .is_some_and(|flag| !flag.swap(true, Ordering::SeqCst))
    }
}

/// The app's state, managed by Tauri.
pub struct DesktopState {
    db: PathBuf,
    hub: HubClient,
    /// Cancel switches of running trainings, by run id.
    pub runs: Mutex<HashMap<i64, Arc<AtomicBool>>>,
    /// Cancel switches of downloads, by repo id.
    pub downloads: Mutex<HashMap<String, Arc<AtomicBool>>>,
    picked: Mutex<HashSet<PathBuf>>,
    /// Runs found dead (and marked interrupted) by any command's open, for the Start page.
    recovered: Mutex<Vec<i64>>,
    /// The quit dialog is showing: another close request does not open a second one.
    asking_to_quit: AtomicBool,
    /// The user chose to quit: work is being stopped and no new work starts.
    quitting: AtomicBool,
    /// The playground's model, kept between predictions (by its folder).
    predictor: Mutex<Option<KeptPredictor>>,
    /// The cancel switch of the labeling queue being scored, if one is.
    pub scoring: CancelSlot,
    /// The cancel switch of the learning-rate range test running, if one is.
    pub lr_find: CancelSlot,
    /// The Playground chat's answer being written.
    pub chat: CancelSlot,
    /// Paths the file dialogs answer with, in order, instead of opening (end-to-end tests:
    /// `HONE_PICK` holds them separated by the platform's path separator). An entry written
    /// `KIND=PATH` (`data_file`, `model_folder`, `export_folder`) answers only that kind of
    /// dialog; once a kind has no answer left, its last one is given again.
    scripted_picks: Mutex<Vec<PathBuf>>,
    /// The last scripted answer per kind of dialog.
    last_picks: Mutex<HashMap<String, PathBuf>>,
}

/// The kinds a scripted dialog answer may name.
const PICK_KINDS: [&str; 3] = ["data_file", "model_folder", "export_folder"];

/// `path` with `.` dropped and each `..` removing the component before it (no file system
/// access, so it works for paths that do not exist yet).
fn lexical(path: &Path) -> PathBuf {
    use std::path::Component;
    let mut out = PathBuf::new();
    for c in path.components() {
        match c {
            Component::CurDir => {}
            Component::ParentDir => {
                out.pop();
            }
            other => out.push(other),
        }
    }
    out
}

fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The end-to-end test's answers to the file dialogs (`HONE_PICK`): read by debug builds only
/// (the tests' build), so a released app always asks the person.
fn scripted_picks() -> Vec<PathBuf> {
    if !cfg!(debug_assertions) {
        return Vec::new();
    }
    std::env::var_os("HONE_PICK")
        .map(|v| std::env::split_paths(&v).collect())
        .unwrap_or_default()
}

impl DesktopState {
    /// State over the database at `db`, the Hub as the environment configures it.
    pub fn new(db: PathBuf) -> Self {
        Self::scripted(db, HubClient::from_env(), scripted_picks())
    }

    /// State with its own Hub client whose file dialogs answer `picks` in order (tests).
    pub fn scripted(db: PathBuf, hub: HubClient, picks: Vec<PathBuf>) -> Self {
        DesktopState {
            db,
            hub,
            runs: Mutex::default(),
            downloads: Mutex::default(),
            picked: Mutex::default(),
            recovered: Mutex::default(),
            asking_to_quit: AtomicBool::new(false),
            quitting: AtomicBool::new(false),
            predictor: Mutex::default(),
            scoring: CancelSlot::default(),
            lr_find: CancelSlot::default(),
            chat: CancelSlot::default(),
            scripted_picks: Mutex::new(picks),
            last_picks: Mutex::default(),
        }
    }

    /// The database file.
    pub fn db(&self) -> &Path {
        &self.db
    }

    /// Opens the database (a connection per command: SQLite in WAL mode makes this cheap, and
    /// no lock is held while a long command runs). Each open also marks runs whose process died
    /// (a CLI run killed while the window is open shows as interrupted at the next refresh);
    /// what any open found is kept for [`DesktopState::recovered`].
    pub fn app(&self) -> CommandResult<App> {
        let app = App::open(&self.db)?;
        if !app.recovered().is_empty() {
            let mut recovered = lock(&self.recovered);
            for id in app.recovered() {
                if !recovered.contains(id) {
                    recovered.push(*id);
                }
            }
        }
        Ok(app)
    }

    /// Runs found dead and marked interrupted since the window opened.
    pub fn recovered(&self) -> Vec<i64> {
        lock(&self.recovered).clone()
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
    pub fn next_scripted_pick(&self, kind: &str) -> Option<PathBuf> {
        let mut picks = lock(&self.scripted_picks);
        let split = |p: &PathBuf| -> (Option<String>, PathBuf) {
            let text = p.to_string_lossy();
            match text.split_once('=') {
                Some((k, rest)) if PICK_KINDS.contains(&k) => (Some(k.to_string()), rest.into()),
                _ => (None, p.clone()),
            }
        };
        let at = picks
            .iter()
            .position(|p| split(p).0.is_none_or(|k| k == kind));
        let mut last = lock(&self.last_picks);
        match at {
            Some(i) => {
                let (_, path) = split(&picks.remove(i));
                last.insert(kind.to_string(), path.clone());
                Some(path)
            }
            None => last.get(kind).cloned(),
        }
    }

    /// `path` (with `.` and `..` resolved, the form to use) when it is, or is inside, a path
    /// the user picked in a dialog; an error otherwise. The commands that
    /// take a path (imports, export destinations) only ever need the user's own files; Hone's
    /// own folders are reached through the database, never through a path from the window.
    pub fn allowed(&self, path: &Path) -> CommandResult<PathBuf> {
        // Compared with `.` and `..` resolved: `picked/../../etc` is not inside `picked`.
        let path = lexical(path);
        if lock(&self.picked)
            .iter()
            .any(|p| path.starts_with(lexical(p)))
        {
            Ok(path)
        } else {
            Err(CommandError::new(
                "not_picked",
                format!("{} was not chosen in a file dialog", path.display()),
            ))
        }
    }

    /// The folder of a model the window may use: a model Hone knows (the Hub cache or an
    /// imported folder, by reference or path) or one inside a picked path. Anything else is
    /// refused, so the window cannot make Hone read an arbitrary folder.
    pub fn known_model_dir(&self, reference: &Path) -> CommandResult<PathBuf> {
        let dir = hone_app::models::resolve_model(reference, self.hub())?;
        if self.allowed(&dir).is_ok() {
            return Ok(dir);
        }
        let known = self.app()?.known_models(self.hub())?;
        if known
            .iter()
            .any(|m| Path::new(&m.reference) == reference || m.path == dir)
        {
            Ok(dir)
        } else {
            Err(CommandError::new(
                "not_picked",
                format!(
                    "{} is not a model Hone knows; download it or import its folder first",
                    reference.display()
                ),
            ))
        }
    }

    /// The predictor for the model folder `dir` at `max_length` tokens (the run's own length),
    /// loaded once and kept until another model is asked for.
    pub fn predictor(
        &self,
        dir: &Path,
        max_length: Option<usize>,
    ) -> CommandResult<Arc<FineTunedModel>> {
        self.predictor_in(dir, max_length, false)
    }

    /// [`DesktopState::predictor`], its linear layers in int8 when `int8` (the Playground's
    /// "int8" box).
    pub fn predictor_in(
        &self,
        dir: &Path,
        max_length: Option<usize>,
        int8: bool,
    ) -> CommandResult<Arc<FineTunedModel>> {
        let mut kept = lock(&self.predictor);
        if let Some((kept_dir, kept_length, kept_int8, predictor)) = kept.as_ref() {
            if kept_dir == dir && *kept_length == max_length && *kept_int8 == int8 {
                return Ok(predictor.clone());
            }
        }
        let mut model = FineTunedModel::load(dir, hone_app::types::DeviceSpec::Cpu, max_length)?;
        if int8 {
            model.use_int8()?;
        }
        let predictor = Arc::new(model);
        *kept = Some((dir.to_path_buf(), max_length, int8, predictor.clone()));
        Ok(predictor)
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

    /// Fails once the user chose to quit: no new run or download starts then.
    pub fn refuse_if_quitting(&self) -> CommandResult<()> {
        if self.quitting.load(Ordering::SeqCst) {
            return Err(CommandError::new("busy", "Hone is quitting"));
        }
        Ok(())
    }

    /// Marks the quit dialog as shown; false when it already is.
    pub fn begin_asking_to_quit(&self) -> bool {
        !self.asking_to_quit.swap(true, Ordering::SeqCst)
    }

    /// The quit dialog was answered "keep working".
    pub fn keep_working(&self) {
        self.asking_to_quit.store(false, Ordering::SeqCst);
    }

    /// Registers a download, or fails if that repo is already downloading.
    pub fn track_download(&self, repo: &str) -> CommandResult<Arc<AtomicBool>> {
        self.refuse_if_quitting()?;
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

    /// What is still working, in words ("a training run and 1 download"), or `None` when
    /// nothing is: what closing the window would stop.
    pub fn work_in_progress(&self) -> Option<String> {
        let runs = lock(&self.runs).len();
        let downloads = lock(&self.downloads).len();
        let mut parts = Vec::new();
        match runs {
            0 => {}
            1 => parts.push("a training run".to_string()),
            n => parts.push(format!("{n} training runs")),
        }
        match downloads {
            0 => {}
            1 => parts.push("a download".to_string()),
            n => parts.push(format!("{n} downloads")),
        }
        (!parts.is_empty()).then(|| parts.join(" and "))
    }

    /// Asks every run and download to stop and waits up to `wait` for them to end. Runs stop
    /// after their current step and keep their last checkpoint (they can be resumed); partial
    /// downloads are kept and resume next time. True when everything ended in time.
    /// From then on no new run or download starts.
    pub fn stop_all(&self, wait: Duration) -> bool {
        self.quitting.store(true, Ordering::SeqCst);
        let deadline = Instant::now() + wait;
        loop {
            // Set again each pass: a run whose start was already under way when quitting began
            // registers its switch a little later.
            for flag in lock(&self.runs)
                .values()
                .chain(lock(&self.downloads).values())
            {
                flag.store(true, Ordering::SeqCst);
            }
            if self.work_in_progress().is_none() {
                return true;
            }
            if Instant::now() >= deadline {
                return false;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn scripted_answers_go_by_kind_and_the_last_one_repeats() {
        let state = super::DesktopState::scripted(
            "/tmp/x.db".into(),
            hone_app::types::HubClient::from_env(),
            [
                "data_file=/d/a.tsv",
                "export_folder=/e",
                "data_file=/d/b.tsv",
                "/any",
            ]
            .iter()
            .map(std::path::PathBuf::from)
            .collect(),
        );
        let pick = |kind| {
            state
                .next_scripted_pick(kind)
                .map(|p| p.display().to_string())
        };
        assert_eq!(pick("export_folder").as_deref(), Some("/e"));
        assert_eq!(pick("data_file").as_deref(), Some("/d/a.tsv"));
        assert_eq!(pick("data_file").as_deref(), Some("/d/b.tsv"));
        assert_eq!(
            pick("export_folder").as_deref(),
            Some("/any"),
            "unnamed answers any"
        );
        assert_eq!(
            pick("export_folder").as_deref(),
            Some("/any"),
            "then the last repeats"
        );
        assert_eq!(pick("model_folder"), None);
    }

    #[test]
    fn the_dialog_answers_come_from_the_environment_in_debug_builds_only() {
        std::env::set_var("HONE_PICK", "/tmp/picked.csv");
        let picks = super::scripted_picks();
        std::env::remove_var("HONE_PICK");
        if cfg!(debug_assertions) {
            assert_eq!(picks, [std::path::PathBuf::from("/tmp/picked.csv")]);
        } else {
            assert!(picks.is_empty(), "a release build read HONE_PICK");
        }
    }
}
