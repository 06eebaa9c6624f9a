//! Runs and sweeps on a real Slurm: a one-node cluster on 127.0.0.1 (`scripts/slurm-local`:
//! munged, slurmctld and slurmd as processes this test owns) as a compute target. A sweep goes
//! as a job array of three and a run trains from a stored dataset; every trial lands in the
//! database with its curves, evaluations and exported model. A cancelled job ends cancelled, a
//! job killed with SIGKILL ends interrupted; both, submitted again, continue from their
//! checkpoints and end with the weights of a run never interrupted.
//!
//! Needs root (or passwordless sudo) and apt, so it is ignored by `cargo test` and run by
//! `scripts/test-all` as `cargo test --test slurm -- --ignored`.

mod support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::time::{Duration, Instant};

use hone_store::{RunStatus, Store};
use support::{fixture, hone, root, run, stderr, stdout};

/// The cluster, stopped when the test ends however it ends.
struct Cluster {
    dir: PathBuf,
    conf: String,
}

impl Cluster {
    fn start(dir: &Path) -> Cluster {
        let o = Command::new(root().join("scripts/slurm-local"))
            .args(["start", &dir.display().to_string()])
            .output()
            .unwrap();
        assert!(o.status.success(), "slurm-local start: {}", stderr(&o));
        let conf = stdout(&o)
            .trim()
            .strip_prefix("export SLURM_CONF=")
            .expect("slurm-local prints the configuration's path")
            .to_string();
        Cluster {
            dir: dir.to_path_buf(),
            conf,
        }
    }
}

impl Drop for Cluster {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/slurm-local"))
            .args(["stop", &self.dir.display().to_string()])
            .status();
    }
}

/// An SSH server on 127.0.0.1 standing in for the cluster's login node, stopped at the end.
struct Login {
    dir: PathBuf,
    config: String,
}

impl Login {
    fn start(dir: &Path, slurm_conf: &str) -> Login {
        let o = Command::new(root().join("scripts/sshd-local"))
            .args([
                "start",
                &dir.display().to_string(),
                &format!("SLURM_CONF={slurm_conf}"),
            ])
            .output()
            .unwrap();
        assert!(o.status.success(), "sshd-local start: {}", stderr(&o));
        Login {
            dir: dir.to_path_buf(),
            config: stdout(&o).trim().to_string(),
        }
    }
}

impl Drop for Login {
    fn drop(&mut self) {
        let _ = Command::new(root().join("scripts/sshd-local"))
            .args(["stop", &self.dir.display().to_string()])
            .status();
    }
}

/// `hone --db DB args…` with the cluster's configuration and two threads per run.
fn hone_at(db: &Path, conf: &str, args: &[&str]) -> Output {
    run(hone()
        .arg("--db")
        .arg(db)
        .args(args)
        .env("SLURM_CONF", conf)
        .env("RAYON_NUM_THREADS", "1"))
}

fn ok(o: Output) -> Output {
    assert!(
        o.status.success(),
        "stdout: {}\nstderr: {}",
        stdout(&o),
        stderr(&o)
    );
    o
}

/// Epochs of the runs that are cancelled and killed: long enough (1,200 steps) that they are
/// still training when the test stops them, however fast the machine.
const LONG_EPOCHS: &str = "200";

/// The training flags every run here shares: a tiny BERT, 48 SST-2 rows, checkpoints often.
fn train_flags(epochs: &str) -> Vec<String> {
    [
        "--model",
        &fixture("tiny-bert").display().to_string(),
        "--epochs",
        epochs,
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--lr",
        "5e-4",
        "--seed",
        "11",
        "--eval-every",
        "7",
        "--checkpoint-every",
        "3",
        "--json",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

fn file_flags() -> Vec<String> {
    [
        "--train",
        &fixture("data/sst2_sample.tsv").display().to_string(),
        "--text-column",
        "sentence",
        "--label-column",
        "label",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect()
}

/// `head…`, the shared training flags with `epochs`, the data file's flags (when `files`),
/// then `tail…`: one `hone` command line.
fn training_command(head: &[&str], epochs: &str, files: bool, tail: &[&str]) -> Vec<String> {
    let mut args: Vec<String> = head.iter().map(|s| s.to_string()).collect();
    args.extend(train_flags(epochs));
    if files {
        args.extend(file_flags());
    }
    args.extend(tail.iter().map(|s| s.to_string()));
    args
}

fn as_args(args: &[String]) -> Vec<&str> {
    args.iter().map(String::as_str).collect()
}

/// The run ids of a `submitted` line.
fn submitted(o: &Output) -> (String, Vec<i64>) {
    let line = stdout(o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|v| v["event"] == "submitted")
        .unwrap_or_else(|| panic!("no submitted line in {}", stdout(o)));
    let ids = line["run_ids"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_i64().unwrap())
        .collect();
    (line["job"].as_str().unwrap().to_string(), ids)
}

/// Syncs until run `id` has recorded at least `steps` steps here (its job is running).
fn wait_for_steps(db: &Path, conf: &str, id: i64, steps: i64) {
    let deadline = Instant::now() + Duration::from_secs(300);
    loop {
        ok(hone_at(db, conf, &["runs", "sync"]));
        let run = Store::open(db).unwrap().run(id).unwrap();
        if run.status == RunStatus::Running && run.step >= steps {
            return;
        }
        assert!(
            matches!(run.status, RunStatus::Queued | RunStatus::Running),
            "run {id} ended as {:?} before step {steps}: {:?}",
            run.status,
            run.error
        );
        assert!(
            Instant::now() < deadline,
            "run {id} did not reach step {steps} in 5 minutes"
        );
        std::thread::sleep(Duration::from_millis(300));
    }
}

fn model_of(db: &Path, id: i64) -> Vec<u8> {
    let store = Store::open(db).unwrap();
    let export = store
        .artifacts(id)
        .unwrap()
        .into_iter()
        .find(|a| a.kind == "export")
        .unwrap_or_else(|| panic!("run {id} has no exported model"));
    std::fs::read(Path::new(&export.path).join("model.safetensors")).unwrap()
}

#[test]
#[ignore = "needs root and apt for a real Slurm; scripts/test-all runs it"]
fn sweeps_and_runs_on_a_real_slurm_land_in_the_database_and_resume_exactly() {
    let tmp = tempfile::tempdir().unwrap();
    let cluster = Cluster::start(&tmp.path().join("slurm"));
    let conf = cluster.conf.clone();
    let db = tmp.path().join("hone.db");
    let jobs = tmp.path().join("jobs");
    let jobs_dir = jobs.display().to_string();

    // A target that cannot be reached is refused when added, saying why.
    let refused = hone_at(
        &db,
        &conf,
        &[
            "target",
            "add",
            "far",
            "--ssh",
            "nobody@127.0.0.1:1",
            "--dir",
            "/tmp/x",
        ],
    );
    assert!(!refused.status.success());
    assert!(stderr(&refused).contains("sinfo"), "{}", stderr(&refused));
    ok(hone_at(
        &db,
        &conf,
        &["target", "add", "local", "--dir", &jobs_dir],
    ));
    let listed = stdout(&ok(hone_at(&db, &conf, &["target", "list", "--json"])));
    assert!(listed.contains(&jobs_dir), "{listed}");
    // The nodes run the command line, settled when the target is added (the desktop app's
    // binary, which also adds targets' runs, is not it).
    let targets: serde_json::Value = serde_json::from_str(&listed).unwrap();
    assert_eq!(
        targets[0]["settings"]["hone"].as_str().map(PathBuf::from),
        Some(PathBuf::from(env!("CARGO_BIN_EXE_hone")))
    );

    // The reference: the run the cancelled and killed ones must end equal to, trained here.
    let reference = tmp.path().join("reference");
    let out = reference.display().to_string();
    let args = training_command(&["train"], LONG_EPOCHS, true, &["--out", &out]);
    let refs = as_args(&args);
    ok(hone_at(&tmp.path().join("local.db"), &conf, &refs));
    let reference_weights = std::fs::read(reference.join("model.safetensors")).unwrap();

    // A sweep of three as one job array.
    let args = training_command(
        &["sweep", "create", "--sweep", "seeds"],
        "2",
        true,
        &["--grid", "seed=1,2,3", "--target", "local"],
    );
    let refs = as_args(&args);
    let sweep = ok(hone_at(&db, &conf, &refs));
    let (sweep_job, trials) = submitted(&sweep);
    assert_eq!(trials.len(), 3);

    // A run from a stored dataset (staged as a one-dataset snapshot of the database).
    ok(hone_at(
        &db,
        &conf,
        &[
            "data",
            "import",
            &fixture("data/sst2_sample.tsv").display().to_string(),
            "--name",
            "sst2",
            "--text-column",
            "sentence",
            "--label-column",
            "label",
        ],
    ));
    let args = training_command(
        &["train"],
        "2",
        false,
        &["--dataset", "sst2", "--target", "local"],
    );
    let refs = as_args(&args);
    let (_, stored) = submitted(&ok(hone_at(&db, &conf, &refs)));

    let synced = ok(hone_at(
        &db,
        &conf,
        &["runs", "sync", "--wait", "--interval", "0.5"],
    ));
    assert!(stderr(&synced).contains("completed"), "{}", stderr(&synced));
    let store = Store::open(&db).unwrap();
    for &id in trials.iter().chain(&stored) {
        let run = store.run(id).unwrap();
        assert_eq!(
            run.status,
            RunStatus::Completed,
            "run {id}: {:?}",
            run.error
        );
        assert_eq!(run.step, run.total_steps.unwrap(), "run {id}");
        let metrics = store.metrics(id).unwrap();
        let losses = metrics.iter().filter(|m| m.name == "loss").count() as i64;
        assert_eq!(losses, run.step, "run {id}: every step's loss came back");
        assert!(
            metrics.iter().any(|m| m.name == "eval_accuracy"),
            "run {id}"
        );
        assert!(
            store
                .evaluations(id)
                .unwrap()
                .iter()
                .any(|e| e.part == "validation" && e.predictions.is_some()),
            "run {id}: its best validation with predictions"
        );
        assert!(
            run.final_metrics.as_ref().unwrap()["best"].is_object(),
            "run {id}"
        );
        let placement = run.remote.as_ref().unwrap();
        assert_eq!(placement["target"], "local");
        assert!(!model_of(&db, id).is_empty());
    }
    let jobs_of_trials: Vec<String> = trials
        .iter()
        .map(|&id| {
            store.run(id).unwrap().remote.unwrap()["job"]
                .as_str()
                .unwrap()
                .to_string()
        })
        .collect();
    assert_eq!(
        jobs_of_trials,
        (0..3)
            .map(|i| format!("{sweep_job}_{i}"))
            .collect::<Vec<_>>(),
        "one array element per trial"
    );
    drop(store);
    let shown = stdout(&ok(hone_at(
        &db,
        &conf,
        &["sweep", "show", "seeds", "--json"],
    )));
    let shown: serde_json::Value = serde_json::from_str(&shown).unwrap();
    assert_eq!(shown["trials"].as_array().unwrap().len(), 3);

    // Cancelled through Hone (scancel: SIGTERM, the run saves where it is), then killed with
    // SIGKILL as a node failure would: each resumed on the cluster ends with the reference's
    // weights.
    let args = training_command(&["train"], LONG_EPOCHS, true, &["--target", "local"]);
    let refs = as_args(&args);
    let (_, cancelled) = submitted(&ok(hone_at(&db, &conf, &refs)));
    let (_, killed) = submitted(&ok(hone_at(&db, &conf, &refs)));
    let (cancelled, killed) = (cancelled[0], killed[0]);

    wait_for_steps(&db, &conf, cancelled, 20);
    ok(hone_at(
        &db,
        &conf,
        &["runs", "cancel", &cancelled.to_string()],
    ));
    wait_for_steps(&db, &conf, killed, 25);
    // SIGKILL to the training process itself, as the kernel's OOM killer or a dying node
    // would (scancel --signal=KILL is an ordinary cancel: SIGTERM first).
    let dir = Store::open(&db)
        .unwrap()
        .run(killed)
        .unwrap()
        .remote
        .unwrap()["dir"]
        .as_str()
        .unwrap()
        .to_string();
    let kill = Command::new("pkill")
        .args(["-KILL", "-f", &format!("remote-exec {dir}")])
        .status()
        .unwrap();
    assert!(kill.success(), "no process trains {dir}");
    ok(hone_at(
        &db,
        &conf,
        &["runs", "sync", "--wait", "--interval", "0.5"],
    ));
    let store = Store::open(&db).unwrap();
    let c = store.run(cancelled).unwrap();
    assert_eq!(c.status, RunStatus::Cancelled, "{:?}", c.error);
    assert!(c.step < c.total_steps.unwrap());
    let k = store.run(killed).unwrap();
    assert_eq!(k.status, RunStatus::Interrupted, "{:?}", k.error);
    assert!(
        k.error.as_deref().unwrap_or("").contains("resume it"),
        "{:?}",
        k.error
    );
    drop(store);

    for id in [cancelled, killed] {
        let resumed = ok(hone_at(&db, &conf, &["runs", "resume", &id.to_string()]));
        assert!(
            stdout(&resumed).contains("submitted run"),
            "{}",
            stdout(&resumed)
        );
    }
    ok(hone_at(
        &db,
        &conf,
        &["runs", "sync", "--wait", "--interval", "0.5"],
    ));
    let store = Store::open(&db).unwrap();
    for id in [cancelled, killed] {
        let run = store.run(id).unwrap();
        assert_eq!(
            run.status,
            RunStatus::Completed,
            "run {id}: {:?}",
            run.error
        );
        assert_eq!(run.remote.as_ref().unwrap()["submissions"], 2);
        assert!(
            model_of(&db, id) == reference_weights,
            "run {id}, resumed on the cluster, ends with other weights than the uninterrupted run"
        );
    }
    drop(store);

    // The same cluster through its "login node" over SSH: the model goes there with scp (once
    // per model), the data and run.json through ssh, the events and the outcome come back the
    // same way, and the run ends with the reference's weights.
    let login = Login::start(&tmp.path().join("sshd"), &conf);
    let remote_jobs = tmp.path().join("remote-jobs").display().to_string();
    ok(hone_at(
        &db,
        &conf,
        &[
            "target",
            "add",
            "login",
            "--ssh",
            "hone-login",
            "--ssh-config",
            &login.config,
            "--dir",
            &remote_jobs,
            "--hone",
            env!("CARGO_BIN_EXE_hone"),
        ],
    ));
    let args = training_command(&["train"], LONG_EPOCHS, true, &["--target", "login"]);
    let refs = as_args(&args);
    let (_, over_ssh) = submitted(&ok(hone_at(&db, &conf, &refs)));
    // Seen running over SSH (curves read with tail over ssh) before it ends.
    wait_for_steps(&db, &conf, over_ssh[0], 10);
    ok(hone_at(
        &db,
        &conf,
        &["runs", "sync", "--wait", "--interval", "0.5"],
    ));
    let store = Store::open(&db).unwrap();
    let run = store.run(over_ssh[0]).unwrap();
    assert_eq!(run.status, RunStatus::Completed, "{:?}", run.error);
    let staged_models: Vec<_> = std::fs::read_dir(Path::new(&remote_jobs).join("models"))
        .unwrap()
        .collect();
    assert_eq!(
        staged_models.len(),
        1,
        "the model was copied to the cluster once"
    );
    assert!(
        model_of(&db, over_ssh[0]) == reference_weights,
        "the run over SSH ends with other weights than the same run here"
    );
    let exported = store.artifacts(over_ssh[0]).unwrap();
    let export = exported.iter().find(|a| a.kind == "export").unwrap();
    assert!(
        !export.path.starts_with(&remote_jobs),
        "the exported model was copied back here, not left on the cluster: {}",
        export.path
    );
    drop(store);
    drop(login);

    // A job that cannot start the run (the nodes' hone is missing) fails it with the job's
    // output, instead of leaving it interrupted or waiting.
    ok(hone_at(
        &db,
        &conf,
        &[
            "target",
            "add",
            "broken",
            "--dir",
            &jobs_dir,
            "--hone",
            "/nonexistent/hone",
        ],
    ));
    let args = training_command(&["train"], "2", true, &["--target", "broken"]);
    let refs = as_args(&args);
    let (_, broken) = submitted(&ok(hone_at(&db, &conf, &refs)));
    let synced = hone_at(&db, &conf, &["runs", "sync", "--wait", "--interval", "0.5"]);
    assert!(!synced.status.success(), "a failed run fails the sync");
    let run = Store::open(&db).unwrap().run(broken[0]).unwrap();
    assert_eq!(run.status, RunStatus::Failed);
    let error = run.error.unwrap_or_default();
    assert!(
        error.contains("before the run started") && error.contains("/nonexistent/hone"),
        "{error}"
    );

    // A target with runs on it cannot be removed while they run; with none, it can.
    ok(hone_at(&db, &conf, &["target", "remove", "local"]));
    drop(cluster);
}
