//! Datasets and runs in the database through the command line: import, split, train from a
//! stored dataset, list / show / compare runs; a failed import leaves nothing behind.

mod support;

use std::path::Path;

use support::{fixture, hone, run, stderr, stdout};

fn hone_db(db: &Path, args: &[&str]) -> std::process::Output {
    run(hone().arg("--db").arg(db).args(args))
}

fn json(o: &std::process::Output) -> serde_json::Value {
    assert!(o.status.success(), "{}", stderr(o));
    serde_json::from_str(&stdout(o)).unwrap_or_else(|e| panic!("{e}: {}", stdout(o)))
}

#[test]
fn import_split_train_list_show_and_compare() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let sst = fixture("data/sst2_sample.tsv").display().to_string();
    let summary = json(&hone_db(
        &db,
        &[
            "data",
            "import",
            &sst,
            "--name",
            "sst",
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--json",
        ],
    ));
    assert_eq!(summary["imported"], 48);
    assert_eq!(
        summary["dataset"]["label_names"],
        serde_json::json!(["0", "1"])
    );
    let split = json(&hone_db(
        &db,
        &[
            "data", "split", "sst", "--valid", "0.25", "--test", "0.1", "--json",
        ],
    ));
    assert_eq!(
        split["train"].as_i64().unwrap()
            + split["validation"].as_i64().unwrap()
            + split["test"].as_i64().unwrap(),
        48
    );
    let listed = json(&hone_db(&db, &["data", "list", "--json"]));
    assert_eq!(listed[0]["splits"], serde_json::json!(["default"]));

    let model = fixture("tiny-bert").display().to_string();
    for lr in ["1e-3", "5e-4"] {
        let o = hone_db(
            &db,
            &[
                "train",
                "--dataset",
                "sst",
                "--split",
                "default",
                "--model",
                &model,
                "--epochs",
                "2",
                "--batch-size",
                "8",
                "--lr",
                lr,
                "--json",
            ],
        );
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let runs = json(&hone_db(&db, &["runs", "list", "--json"]));
    assert_eq!(runs.as_array().unwrap().len(), 2);
    for r in runs.as_array().unwrap() {
        for key in ["id", "status", "created_at", "config", "final_metrics"] {
            assert!(!r[key].is_null(), "a run as JSON has {key}: {r}");
        }
        assert_eq!(r["status"], "completed");
        assert_eq!(r["config"]["data"]["dataset"], "sst");
        assert!(r["final_metrics"]["best"]["accuracy"].is_number());
        // The split has a test part: the best checkpoint is scored on it once, at the end.
        assert!(r["final_metrics"]["test"]["accuracy"].is_number(), "{r}");
        assert_eq!(r["final_metrics"]["test_examples"], split["test"]);
    }
    let listed = stdout(&hone_db(&db, &["runs", "list"]));
    assert!(listed.contains(" test "), "{listed}");
    let shown_text = stdout(&hone_db(&db, &["runs", "show", "1"]));
    assert!(
        shown_text.contains("test, the run's score") && shown_text.contains("best validation"),
        "{shown_text}"
    );
    let shown = json(&hone_db(&db, &["runs", "show", "1", "--json"]));
    let evaluations = shown["evaluations"].as_array().unwrap();
    let with_predictions = evaluations
        .iter()
        .find(|e| e["predictions"].is_array())
        .expect("final predictions");
    assert_eq!(
        evaluations.iter().filter(|e| e["part"] == "test").count(),
        1,
        "one test evaluation: {evaluations:?}"
    );
    assert_eq!(
        with_predictions["predictions"].as_array().unwrap().len(),
        split["validation"].as_u64().unwrap() as usize
    );
    assert!(shown["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m["name"] == "eval_macro_f1"));
    let kinds: Vec<&str> = shown["artifacts"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a["kind"].as_str().unwrap())
        .collect();
    assert_eq!(
        kinds,
        ["export"],
        "checkpoints are cleaned after a completed run"
    );

    let cmp = json(&hone_db(&db, &["runs", "compare", "1", "2", "--json"]));
    let diff = cmp["config_diff"].as_array().unwrap();
    assert_eq!(diff.len(), 1, "{diff:?}");
    assert_eq!(diff[0][0], "training.lr");
    assert!(cmp["metrics"]
        .as_array()
        .unwrap()
        .iter()
        .any(|m| m[0] == "accuracy" && m[1].is_number() && m[2].is_number()));
    let human = hone_db(&db, &["runs", "compare", "1", "2"]);
    assert!(stdout(&human).contains("training.lr"), "{}", stdout(&human));

    let o = hone_db(&db, &["runs", "delete", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        json(&hone_db(&db, &["runs", "list", "--json"]))
            .as_array()
            .unwrap()
            .len(),
        1
    );
}

#[test]
fn a_bad_row_anywhere_leaves_nothing_imported() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let mut text = String::from("text,label\n");
    for i in 0..10_000 {
        text.push_str(&format!("row {i},{}\n", i % 2));
    }
    text.push_str("the last row,1,surplus\n");
    let file = dir.path().join("big.csv");
    std::fs::write(&file, text).unwrap();
    let o = hone_db(
        &db,
        &[
            "data",
            "import",
            &file.display().to_string(),
            "--text-column",
            "text",
            "--label-column",
            "label",
        ],
    );
    assert_eq!(o.status.code(), Some(1));
    assert!(stderr(&o).contains("line 10002"), "{}", stderr(&o));
    assert_eq!(
        json(&hone_db(&db, &["data", "list", "--json"])),
        serde_json::json!([])
    );
}

#[test]
fn files_per_split_append_into_one_dataset_with_a_given_split() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let train = dir.path().join("train.jsonl");
    let valid = dir.path().join("valid.jsonl");
    let rows = |n: usize| {
        (0..n)
            .map(|i| {
                format!(
                    "{{\"t\": \"text {i}\", \"y\": \"{}\"}}\n",
                    ["a", "b"][i % 2]
                )
            })
            .collect::<String>()
    };
    std::fs::write(&train, rows(30)).unwrap();
    std::fs::write(&valid, rows(10)).unwrap();
    for (file, part, append) in [(&train, "train", false), (&valid, "validation", true)] {
        let mut args = vec![
            "data",
            "import",
            file.to_str().unwrap(),
            "--name",
            "d",
            "--text-column",
            "t",
            "--label-column",
            "y",
            "--part",
            part,
        ];
        if append {
            args.push("--append");
        }
        let o = hone_db(&db, &args);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    let info = json(&hone_db(&db, &["data", "show", "d", "--json"]));
    assert_eq!(info["dataset"]["rows"], 40);
    assert_eq!(info["dataset"]["splits"], serde_json::json!(["given"]));
    let model = fixture("tiny-distilbert").display().to_string();
    let o = hone_db(
        &db,
        &[
            "train",
            "--dataset",
            "d",
            "--split",
            "given",
            "--model",
            &model,
            "--epochs",
            "1",
            "--json",
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let started: serde_json::Value = stdout(&o)
        .lines()
        .filter_map(|l| serde_json::from_str::<serde_json::Value>(l).ok())
        .find(|e| e["event"] == "started")
        .unwrap();
    assert_eq!(
        (
            started["train_examples"].as_u64(),
            started["valid_examples"].as_u64()
        ),
        (Some(30), Some(10))
    );
    let exported = dir.path().join("d.csv");
    let o = hone_db(
        &db,
        &["data", "export", "d", "--out", exported.to_str().unwrap()],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert_eq!(
        std::fs::read_to_string(&exported).unwrap().lines().count(),
        41
    );
}

#[test]
fn integer_labels_get_names_from_a_file_or_a_map() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let sst = fixture("data/sst2_sample.tsv").display().to_string();
    let names = dir.path().join("names.txt");
    std::fs::write(&names, "negative\npositive\n").unwrap();
    let by_file = json(&hone_db(
        &db,
        &[
            "data",
            "import",
            &sst,
            "--name",
            "a",
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--label-names",
            names.to_str().unwrap(),
            "--json",
        ],
    ));
    assert_eq!(
        by_file["dataset"]["label_names"],
        serde_json::json!(["negative", "positive"])
    );
    assert_eq!(by_file["dataset"]["label_counts"]["negative"], 26);
    let by_map = json(&hone_db(
        &db,
        &[
            "data",
            "import",
            &sst,
            "--name",
            "b",
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--label-map",
            "0=neg,1=pos",
            "--json",
        ],
    ));
    assert_eq!(
        by_map["dataset"]["label_names"],
        serde_json::json!(["neg", "pos"])
    );
    let o = hone_db(
        &db,
        &[
            "data",
            "import",
            &sst,
            "--name",
            "c",
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--label-map",
            "0",
        ],
    );
    assert!(stderr(&o).contains("OLD=NEW"), "{}", stderr(&o));
}

#[test]
fn import_guesses_the_columns_from_the_header_and_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let sst = fixture("data/sst2_sample.tsv").display().to_string();
    let out = hone_db(&db, &["data", "import", &sst, "--name", "sst"]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(
        stderr(&out).contains("columns: text 'sentence', label 'label' (guessed"),
        "{}",
        stderr(&out)
    );
    let shown = json(&hone_db(&db, &["data", "show", "sst", "--json"]));
    assert_eq!(
        shown["dataset"]["label_names"],
        serde_json::json!(["0", "1"]),
        "{shown}"
    );
}

/// `hone runs cancel` stops a run that another process trains (after its current step, as a
/// cancel: resumable) and refuses one that is not running; tags and notes are kept and shown.
#[test]
fn a_run_in_another_process_stops_when_asked_and_keeps_tags_and_notes() {
    use std::io::{BufRead, BufReader};
    use std::process::Stdio;
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let mut child = hone()
        .arg("--db")
        .arg(&db)
        .args(["train", "--model"])
        .arg(fixture("tiny-bert"))
        .arg("--train")
        .arg(fixture("data/sst2_sample.tsv"))
        .args(["--text-column", "sentence", "--label-column", "label"])
        .args([
            "--epochs",
            "500",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--json",
        ])
        .arg("--out")
        .arg(dir.path().join("out"))
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut lines = BufReader::new(child.stdout.take().unwrap()).lines();
    // Training is under way once a step is reported.
    for line in lines.by_ref() {
        if line.unwrap().contains("\"event\":\"step\"") {
            break;
        }
    }
    let asked = hone_db(&db, &["runs", "cancel", "1"]);
    assert!(asked.status.success(), "{}", stderr(&asked));
    assert!(stdout(&asked).contains("asked run 1 to stop"));
    let events: Vec<String> = lines.map_while(Result::ok).collect();
    child.wait().unwrap();
    let finished = events
        .iter()
        .find(|l| l.contains("\"event\":\"finished\""))
        .expect("a finished event");
    assert!(finished.contains("cancelled"), "{finished}");
    let shown = json(&hone_db(&db, &["runs", "show", "1", "--json"]));
    assert_eq!(shown["status"], "cancelled");
    let steps = shown["run"]["step"].as_i64().unwrap();
    assert!(steps < 2500, "stopped at step {steps} of 2500");
    // Nothing left to stop.
    let again = hone_db(&db, &["runs", "cancel", "1"]);
    assert!(!again.status.success());
    assert!(stderr(&again).contains("not running"), "{}", stderr(&again));

    let tagged = hone_db(&db, &["runs", "tag", "1", "baseline", "lr  sweep"]);
    assert_eq!(stdout(&tagged).trim(), "run 1: baseline, lr sweep");
    let retagged = hone_db(&db, &["runs", "tag", "1", "sst2", "--remove", "BASELINE"]);
    assert_eq!(stdout(&retagged).trim(), "run 1: lr sweep, sst2");
    let noted = hone_db(&db, &["runs", "note", "1", "too slow; try lr 1e-4"]);
    assert!(noted.status.success(), "{}", stderr(&noted));
    let shown = json(&hone_db(&db, &["runs", "show", "1", "--json"]));
    assert_eq!(
        shown["run"]["tags"],
        serde_json::json!(["lr sweep", "sst2"])
    );
    assert_eq!(shown["run"]["notes"], "too slow; try lr 1e-4");
    let text = stdout(&hone_db(&db, &["runs", "show", "1"]));
    assert!(
        text.contains("tags lr sweep, sst2") && text.contains("  too slow; try lr 1e-4"),
        "{text}"
    );
    assert!(stdout(&hone_db(&db, &["runs", "list"])).contains("lr sweep, sst2"));
    let bad = hone_db(&db, &["runs", "tag", "1", "a,b"]);
    assert!(!bad.status.success() && stderr(&bad).contains("comma"));
    let cleared = hone_db(&db, &["runs", "note", "1", ""]);
    assert!(stdout(&cleared).contains("notes cleared"));
}

/// A causal-LM run answers its sample prompts at each validation: the answers are stored with
/// the run (`hone runs show`), and those of the best step are what the exported model says to
/// the same prompts (`hone generate --chat`).
#[test]
fn a_causal_run_stores_its_sample_answers_and_they_are_the_exported_models() {
    let dir = tempfile::tempdir().unwrap();
    let (db, data, out) = (
        dir.path().join("hone.db"),
        dir.path().join("sums.jsonl"),
        dir.path().join("out"),
    );
    support::synthetic_conversations(&data);
    let prompts = ["what is two plus one ?", "what is four plus zero ?"];
    let model = fixture("tiny-llama");
    let o = hone_db(
        &db,
        &[
            "train",
            "--task",
            "causal-lm",
            "--model",
            model.to_str().unwrap(),
            "--train",
            data.to_str().unwrap(),
            "--epochs",
            "2",
            "--batch-size",
            "8",
            "--max-length",
            "64",
            "--lr",
            "3e-3",
            "--sample-prompt",
            prompts[0],
            "--sample-prompt",
            prompts[1],
            "--sample-tokens",
            "10",
            "--out",
            out.to_str().unwrap(),
        ],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("sample answers:") || stdout(&o).contains("sample answers:"),
        "the progress shows the answers"
    );
    let shown = json(&hone_db(&db, &["runs", "show", "1", "--json"]));
    let samples = shown["samples"].as_array().unwrap();
    let steps: std::collections::BTreeSet<i64> = samples
        .iter()
        .map(|s| s["step"].as_i64().unwrap())
        .collect();
    assert_eq!(
        steps.len(),
        2,
        "one set per validation (each epoch): {samples:?}"
    );
    let best = shown["final_metrics"]["best_step"].as_i64().unwrap();
    let at_best: Vec<&serde_json::Value> = samples
        .iter()
        .filter(|s| s["step"].as_i64() == Some(best))
        .collect();
    assert_eq!(at_best.len(), 2);
    for (sample, prompt) in at_best.iter().zip(prompts) {
        assert_eq!(sample["prompt"], prompt);
        assert!(sample["tokens"].as_i64().unwrap() <= 10);
        let g = json(&run(hone()
            .args([
                "generate",
                "--chat",
                "--json",
                "--max-new-tokens",
                "10",
                "--model",
            ])
            .arg(&out)
            .arg(prompt)));
        assert_eq!(sample["answer"], g["text"], "{prompt}");
    }
}

/// Packing: a causal-LM run's conversations go into bins of max-length tokens and a step takes
/// batch-size bins, so an epoch has fewer steps than batch-size conversations would make, and
/// the run still learns; other tasks refuse it.
#[test]
fn packing_makes_fewer_fuller_steps_and_only_causal_runs_take_it() {
    let dir = tempfile::tempdir().unwrap();
    let (db, data) = (dir.path().join("hone.db"), dir.path().join("sums.jsonl"));
    support::synthetic_conversations(&data);
    let model = fixture("tiny-llama");
    let train = |extra: &[&str]| {
        let mut args = vec![
            "train",
            "--task",
            "causal-lm",
            "--model",
            model.to_str().unwrap(),
            "--train",
            data.to_str().unwrap(),
            "--epochs",
            "2",
            "--batch-size",
            "4",
            "--max-length",
            "64",
            "--lr",
            "3e-3",
            "--json",
        ];
        args.extend_from_slice(extra);
        let o = hone_db(&db, &args);
        assert!(o.status.success(), "{}", stderr(&o));
        let events: Vec<serde_json::Value> = stdout(&o)
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        events
    };
    let started = |events: &[serde_json::Value]| {
        events
            .iter()
            .find(|e| e["event"] == "started")
            .cloned()
            .unwrap()
    };
    let plain = train(&[]);
    let packed = train(&["--packing"]);
    let (a, b) = (started(&plain), started(&packed));
    assert_eq!(a["train_examples"], b["train_examples"]);
    let (plain_steps, packed_steps) = (
        a["steps_per_epoch"].as_u64().unwrap(),
        b["steps_per_epoch"].as_u64().unwrap(),
    );
    assert!(
        packed_steps < plain_steps,
        "{packed_steps} vs {plain_steps}"
    );
    let notice = packed
        .iter()
        .find(|e| e["event"] == "notice" && e["message"].as_str().unwrap().starts_with("packing"))
        .expect("the run says how it packed");
    assert!(notice["message"]
        .as_str()
        .unwrap()
        .contains("bins of at most 64 tokens"));
    let losses: Vec<f64> = packed
        .iter()
        .filter(|e| e["event"] == "step")
        .map(|e| e["loss"].as_f64().unwrap())
        .collect();
    assert_eq!(losses.len() as u64, 2 * packed_steps);
    assert!(
        losses.last().unwrap() < losses.first().unwrap(),
        "{losses:?}"
    );
    let o = hone_db(
        &db,
        &[
            "train",
            "--model",
            fixture("tiny-bert").to_str().unwrap(),
            "--train",
            fixture("data/sst2_sample.tsv").to_str().unwrap(),
            "--packing",
        ],
    );
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("packing is for causal-LM runs"),
        "{}",
        stderr(&o)
    );
}

/// A sweep here: three of a 2 × 2 grid drawn at random, each an ordinary run tagged with the
/// sweep; `hone sweep show` ranks them by the metric that picks checkpoints, with the settings
/// that differ; a setting that does not exist is refused before anything runs, and a name in
/// use is refused.
#[test]
fn a_sweep_runs_its_trials_and_ranks_them() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let (model, data) = (fixture("tiny-bert"), fixture("data/sst2_sample.tsv"));
    let base = [
        "sweep",
        "create",
        "--sweep",
        "lrs",
        "--model",
        model.to_str().unwrap(),
        "--train",
        data.to_str().unwrap(),
        "--epochs",
        "1",
        "--batch-size",
        "8",
    ];
    let o = run(hone().arg("--db").arg(&db).args(base).args([
        "--grid",
        "lr=1e-4,3e-3",
        "--grid",
        "seed=1,2",
        "--random",
        "3",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let printed = stdout(&o);
    assert!(
        printed.contains("sweep lrs: 3 trials, best macro_f1 first"),
        "{printed}"
    );
    let shown = json(&hone_db(&db, &["sweep", "show", "lrs", "--json"]));
    let trials = shown["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    let values: Vec<f64> = trials
        .iter()
        .map(|t| t["value"].as_f64().unwrap())
        .collect();
    assert!(
        values.windows(2).all(|w| w[0] >= w[1]),
        "best first: {values:?}"
    );
    for t in trials {
        let keys: Vec<&str> = t["settings"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s[0].as_str().unwrap())
            .collect();
        assert!(keys.contains(&"lr") || keys.contains(&"seed"), "{t}");
        assert_eq!(t["status"], "completed");
    }
    // Each trial is an ordinary run, tagged with its sweep.
    let listed = json(&hone_db(&db, &["runs", "list", "--json"]));
    let tagged = listed
        .as_array()
        .unwrap()
        .iter()
        .filter(|r| {
            r["tags"]
                .as_array()
                .is_some_and(|t| t.iter().any(|t| t == "sweep:lrs"))
        })
        .count();
    assert_eq!(tagged, 3);
    // Refused before anything runs: a setting that does not exist, a name in use.
    let o = run(hone()
        .arg("--db")
        .arg(&db)
        .args(base)
        .args(["--grid", "lrr=1"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("'lrr' is not a training setting"),
        "{}",
        stderr(&o)
    );
    let o = run(hone()
        .arg("--db")
        .arg(&db)
        .args(base)
        .args(["--grid", "lr=1e-3"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("has runs already"), "{}", stderr(&o));
    let again = json(&hone_db(&db, &["runs", "list", "--json"]));
    assert_eq!(
        again.as_array().unwrap().len(),
        listed.as_array().unwrap().len()
    );
}

/// The median stopping rule: a trial whose best validation loss at a step is worse than the
/// median of the earlier trials' there is stopped (cancelled, resumable, with a note saying
/// why), and the sweep goes on.
#[test]
fn a_sweep_stops_a_trial_worse_than_the_median_of_the_earlier_ones() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let (model, data) = (fixture("tiny-bert"), fixture("data/sst2_sample.tsv"));
    let o = run(hone().arg("--db").arg(&db).args([
        "sweep",
        "create",
        "--sweep",
        "stop",
        "--model",
        model.to_str().unwrap(),
        "--train",
        data.to_str().unwrap(),
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--early-stopping-metric",
        "loss",
        "--grid",
        "lr=5e-3,3e-3,1e-9",
        "--median-stop",
    ]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("trial 3: stopped by the sweep's median rule at step 6"),
        "{}",
        stderr(&o)
    );
    let shown = json(&hone_db(&db, &["sweep", "show", "stop", "--json"]));
    let trials = shown["trials"].as_array().unwrap();
    let status = |run: i64| {
        trials
            .iter()
            .find(|t| t["run_id"] == run)
            .map(|t| t["status"].as_str().unwrap().to_string())
            .unwrap()
    };
    assert_eq!(
        (status(1), status(2), status(3)),
        ("completed".into(), "completed".into(), "cancelled".into())
    );
    let third = json(&hone_db(&db, &["runs", "show", "3", "--json"]));
    assert!(
        third["run"]["notes"]
            .as_str()
            .unwrap()
            .contains("median rule"),
        "{third}"
    );
    assert_eq!(
        trials.last().unwrap()["run_id"],
        3,
        "the worst loss ranks last"
    );
}

/// A sweep here with --parallel 2: three trials, two at a time in one process — the runs'
/// training times overlap, every trial completes and is ranked as in a sweep run in sequence;
/// --parallel with --median-stop is refused.
#[test]
fn a_sweep_runs_trials_side_by_side_with_parallel() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let (model, data) = (fixture("tiny-bert"), fixture("data/sst2_sample.tsv"));
    let base = [
        "sweep",
        "create",
        "--model",
        model.to_str().unwrap(),
        "--train",
        data.to_str().unwrap(),
        "--epochs",
        "40",
        "--batch-size",
        "8",
        "--max-length",
        "32",
        "--grid",
        "seed=1,2,3",
        "--parallel",
        "2",
    ];
    let o = run(hone()
        .arg("--db")
        .arg(&db)
        .args(base)
        .args(["--sweep", "side"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("trial 3 of 3 started"),
        "{}",
        stderr(&o)
    );
    let shown = json(&hone_db(&db, &["sweep", "show", "side", "--json"]));
    let trials = shown["trials"].as_array().unwrap();
    assert_eq!(trials.len(), 3);
    assert!(trials.iter().all(|t| t["status"] == "completed"), "{shown}");
    // Two of them trained at the same time.
    let runs = json(&hone_db(&db, &["runs", "list", "--json"]));
    let spans: Vec<(String, String)> = runs
        .as_array()
        .unwrap()
        .iter()
        .map(|r| {
            (
                r["started_at"].as_str().unwrap().to_string(),
                r["finished_at"].as_str().unwrap().to_string(),
            )
        })
        .collect();
    let overlap = spans
        .iter()
        .enumerate()
        .any(|(i, a)| spans.iter().skip(i + 1).any(|b| a.0 < b.1 && b.0 < a.1));
    assert!(overlap, "no two trials ran at once: {spans:?}");
    let o = run(hone()
        .arg("--db")
        .arg(&db)
        .args(base)
        .args(["--sweep", "other", "--median-stop"]));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--median-stop"), "{}", stderr(&o));
}
