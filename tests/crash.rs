//! A training run killed with SIGKILL at 20 random moments: after every kill the database is
//! intact, every metric the run reported is stored, the run is found `interrupted`, and
//! `hone runs resume` continues it; the final weights equal those of a run never interrupted.

mod support;

use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use hone_store::{RunStatus, Store};
use support::{fixture, hone, run, stderr, stdout};

const KILLS: usize = 20;

fn train_args(out: &Path) -> Vec<String> {
    let mut args: Vec<String> = [
        "train",
        "--model",
        "",
        "--train",
        "",
        "--text-column",
        "sentence",
        "--label-column",
        "label",
        "--epochs",
        "60",
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
        "--out",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    args[2] = fixture("tiny-bert").display().to_string();
    args[4] = fixture("data/sst2_sample.tsv").display().to_string();
    args.push(out.display().to_string());
    args
}

/// Starts `hone` with `args`, and a thread that forwards its stdout lines.
fn start(db: &Path, args: &[String]) -> (Child, mpsc::Receiver<String>) {
    let mut child = hone()
        .arg("--db")
        .arg(db)
        .args(args)
        .env("RAYON_NUM_THREADS", "2")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines().map_while(Result::ok) {
            if tx.send(line).is_err() {
                break;
            }
        }
    });
    (child, rx)
}

/// A small deterministic generator for the kill moments.
struct Lcg(u64);
impl Lcg {
    fn next_ms(&mut self, lo: u64, hi: u64) -> u64 {
        self.0 = self
            .0
            .wrapping_mul(6364136223846793005)
            .wrapping_add(1442695040888963407);
        lo + (self.0 >> 33) % (hi - lo)
    }
}

#[test]
fn twenty_kills_and_resumes_end_with_the_weights_of_an_uninterrupted_run() {
    let dir = tempfile::tempdir().unwrap();
    // The reference: the same run, never interrupted.
    let reference_out = dir.path().join("reference");
    let o = run(hone()
        .arg("--db")
        .arg(dir.path().join("reference.db"))
        .args(train_args(&reference_out))
        .env("RAYON_NUM_THREADS", "2"));
    assert!(o.status.success(), "{}", stderr(&o));
    let total_steps: u64 = stdout(&o)
        .lines()
        .find_map(|l| {
            let v: serde_json::Value = serde_json::from_str(l).ok()?;
            (v["event"] == "started").then(|| v["total_steps"].as_u64().unwrap())
        })
        .unwrap();

    let db = dir.path().join("crash.db");
    let out = dir.path().join("crashed");
    let mut rng = Lcg(2026);
    // The moments: 20 random steps across the run (each kill also waits a random 0–3 ms past
    // its step, to land in checkpoint writes and database commits too).
    let mut targets: Vec<u64> = (0..KILLS).map(|_| rng.next_ms(1, total_steps)).collect();
    targets.sort_unstable();
    let mut run_id = None;
    let mut kills = 0;
    let mut finished = false;
    while !finished {
        let args: Vec<String> = match run_id {
            None => train_args(&out),
            Some(id) => vec![
                "runs".into(),
                "resume".into(),
                format!("{id}"),
                "--json".into(),
            ],
        };
        let (mut child, lines) = start(&db, &args);
        let mut seen = Vec::new();
        if kills < KILLS {
            let target = targets[kills];
            for line in lines.iter() {
                let step = serde_json::from_str::<serde_json::Value>(&line)
                    .ok()
                    .filter(|e| e["event"] == "step")
                    .and_then(|e| e["step"].as_u64());
                seen.push(line);
                if step.is_some_and(|s| s >= target) {
                    break;
                }
            }
            std::thread::sleep(Duration::from_micros(rng.next_ms(0, 3000)));
            child.kill().unwrap(); // SIGKILL
            kills += 1;
        }
        let status = child.wait().unwrap();
        seen.extend(lines.iter());
        let events: Vec<serde_json::Value> = seen
            .iter()
            .filter_map(|l| serde_json::from_str(l).ok())
            .collect();
        if run_id.is_none() {
            run_id = events
                .iter()
                .find(|e| e["event"] == "run")
                .and_then(|e| e["run_id"].as_i64());
            if run_id.is_none() {
                continue; // killed before the run was even created: start over
            }
        }
        let id = run_id.unwrap();

        // The database is intact and holds every metric the run reported.
        let store = Store::open(&db).unwrap();
        assert_eq!(store.integrity_check().unwrap(), "ok");
        let metrics = store.metrics(id).unwrap();
        for e in events.iter().filter(|e| e["event"] == "step") {
            let step = e["step"].as_i64().unwrap();
            assert!(
                metrics.iter().any(|m| m.name == "loss" && m.step == step),
                "step {step} was reported but its loss is not stored"
            );
        }
        drop(store);
        finished = status.success() && events.iter().any(|e| e["event"] == "finished");
        if !finished {
            // The next start finds the dead run and marks it interrupted.
            let listed = run(hone().arg("--db").arg(&db).args(["runs", "list", "--json"]));
            let runs: serde_json::Value = serde_json::from_str(&stdout(&listed)).unwrap();
            let status = runs
                .as_array()
                .unwrap()
                .iter()
                .find(|r| r["id"] == id)
                .unwrap()["status"]
                .clone();
            // Queued: killed before the training thread started it; resuming starts it.
            assert!(
                status == "interrupted" || status == "queued",
                "a killed run is {status}"
            );
        }
    }
    assert_eq!(kills, KILLS);
    let store = Store::open(&db).unwrap();
    let record = store.run(run_id.unwrap()).unwrap();
    assert_eq!(record.status, RunStatus::Completed);
    assert_eq!(record.step as u64, total_steps);
    let resumed = std::fs::read(out.join("model.safetensors")).unwrap();
    let reference = std::fs::read(reference_out.join("model.safetensors")).unwrap();
    assert!(
        resumed == reference,
        "the resumed run's weights differ from the uninterrupted run's"
    );
}
