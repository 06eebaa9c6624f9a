//! The labeling loop on the command line: `hone data suggest` pre-labels a dataset's unlabeled
//! examples with a finished run's model and orders them by its uncertainty (text classes and
//! entity tags); a run records how many labels it had (the curve's x axis).

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

fn train(db: &Path, dataset: &str, extra: &[&str]) {
    let model = fixture("tiny-bert").display().to_string();
    let mut args = vec![
        "train",
        "--dataset",
        dataset,
        "--model",
        &model,
        "--epochs",
        "3",
        "--batch-size",
        "8",
        "--lr",
        "1e-3",
        "--json",
    ];
    args.extend_from_slice(extra);
    let o = hone_db(db, &args);
    assert!(o.status.success(), "{}", stderr(&o));
}

/// `hone data suggest DATASET --run RUN --json` with `extra` options, as JSON.
fn suggest(db: &Path, dataset: &str, run: &str, extra: &[&str]) -> serde_json::Value {
    let mut args = vec!["data", "suggest", dataset, "--run", run, "--json"];
    args.extend_from_slice(extra);
    json(&hone_db(db, &args))
}

/// `1 - (top - second)` of a probability list.
fn margin(p: &[f64]) -> f64 {
    let mut sorted = p.to_vec();
    sorted.sort_by(|a, b| b.total_cmp(a));
    1.0 - (sorted[0] - sorted[1])
}

#[test]
fn suggestions_rank_unlabeled_texts_by_the_models_own_uncertainty() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    // The SST-2 sample with its first ten labels removed.
    let sample = std::fs::read_to_string(fixture("data/sst2_sample.tsv")).unwrap();
    let mut lines: Vec<String> = sample.lines().map(str::to_string).collect();
    for line in &mut lines[1..11] {
        let text = line.split('\t').next().unwrap_or_default().to_string();
        *line = format!("{text}\t");
    }
    let data = dir.path().join("reviews.tsv");
    std::fs::write(&data, lines.join("\n") + "\n").unwrap();
    let data = data.display().to_string();
    json(&hone_db(
        &db,
        &["data", "import", &data, "--name", "reviews", "--json"],
    ));
    train(&db, "reviews", &[]);
    let runs = json(&hone_db(&db, &["runs", "list", "--json"]));
    assert_eq!(
        runs[0]["final_metrics"]["labeled_examples"], 38,
        "a run counts the labels it had"
    );

    let queue = suggest(&db, "reviews", "1", &["--limit", "10"]);
    assert_eq!(queue["unlabeled"], 10);
    assert_eq!(queue["scored"], 10);
    assert_eq!(queue["strategy"], "margin");
    let suggestions = queue["suggestions"].as_array().unwrap();
    assert_eq!(suggestions.len(), 10);
    // The order is the model's: each text's margin from `hone predict` with the run's model,
    // least sure first.
    let model = json(&hone_db(&db, &["runs", "show", "1", "--json"]))["artifacts"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let texts: Vec<String> = suggestions
        .iter()
        .map(|s| s["text"].as_str().unwrap().to_string())
        .collect();
    let mut args = vec!["predict", "--model", &model, "--json"];
    args.extend(texts.iter().map(String::as_str));
    let predicted = json(&hone_db(&db, &args));
    let mut previous = f64::INFINITY;
    for (s, p) in suggestions.iter().zip(predicted.as_array().unwrap()) {
        let probabilities: Vec<f64> = p["probabilities"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_f64().unwrap())
            .collect();
        let u = s["uncertainty"].as_f64().unwrap();
        assert!((u - margin(&probabilities)).abs() < 1e-4, "{s} vs {p}");
        assert_eq!(s["label"], p["label"], "the suggestion is the prediction");
        assert!(
            u <= previous + 1e-12,
            "least sure first: {u} after {previous}"
        );
        previous = u;
        let confidence = s["confidence"].as_f64().unwrap();
        assert!((0.5..=1.0).contains(&confidence), "{s}");
    }

    // Least confidence is 1 − confidence; the random control is seeded and needs no order.
    let lc = suggest(&db, "reviews", "1", &["--strategy", "least-confidence"]);
    for s in lc["suggestions"].as_array().unwrap() {
        let (u, c) = (
            s["uncertainty"].as_f64().unwrap(),
            s["confidence"].as_f64().unwrap(),
        );
        assert!((u - (1.0 - c)).abs() < 1e-9, "{s}");
    }
    let order = |seed: &str| -> Vec<i64> {
        suggest(
            &db,
            "reviews",
            "1",
            &["--strategy", "random", "--seed", seed],
        )["suggestions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s["example_id"].as_i64().unwrap())
            .collect()
    };
    assert_eq!(order("1"), order("1"));
    assert_ne!(order("1"), order("2"));
    let mut ids = order("1");
    ids.sort();
    assert_eq!(ids, (1..=10).collect::<Vec<i64>>(), "the first ten rows");

    // The table for people, and clear refusals.
    let human = stdout(&hone_db(
        &db,
        &["data", "suggest", "reviews", "--run", "1", "--limit", "3"],
    ));
    assert!(
        human.contains("10 unlabeled, 10 scored by run 1, ordered by margin"),
        "{human}"
    );
    let wrong = hone_db(
        &db,
        &[
            "data",
            "suggest",
            "reviews",
            "--run",
            "1",
            "--strategy",
            "confidence",
        ],
    );
    assert!(!wrong.status.success());
    assert!(
        stderr(&wrong).contains("least-confidence"),
        "{}",
        stderr(&wrong)
    );
    let missing = hone_db(&db, &["data", "suggest", "reviews", "--run", "9"]);
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("hint: `hone runs list` shows the runs"),
        "{}",
        stderr(&missing)
    );

    // Naming the 0/1 classes: the run trained before suggests under the new names, and the
    // next run exports them as id2label.
    let renamed = hone_db(
        &db,
        &["data", "rename-classes", "reviews", "0=negative,1=positive"],
    );
    assert!(renamed.status.success(), "{}", stderr(&renamed));
    assert!(
        stdout(&renamed).contains("'0' is now 'negative'"),
        "{}",
        stdout(&renamed)
    );
    let queue = suggest(&db, "reviews", "1", &[]);
    assert_eq!(queue["labels"], serde_json::json!(["negative", "positive"]));
    for s in queue["suggestions"].as_array().unwrap() {
        assert!(
            ["negative", "positive"].contains(&s["label"].as_str().unwrap()),
            "{s}"
        );
    }
    train(&db, "reviews", &[]);
    let export = json(&hone_db(&db, &["runs", "show", "2", "--json"]))["artifacts"][0]["path"]
        .as_str()
        .unwrap()
        .to_string();
    let config: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(Path::new(&export).join("config.json")).unwrap(),
    )
    .unwrap();
    assert_eq!(
        config["id2label"],
        serde_json::json!({"0": "negative", "1": "positive"})
    );
    let unknown = hone_db(&db, &["data", "rename-classes", "reviews", "7=seven"]);
    assert!(!unknown.status.success());
    assert!(
        stderr(&unknown).contains("no class named '7'"),
        "{}",
        stderr(&unknown)
    );
}

#[test]
fn entity_suggestions_tag_every_word_of_an_unlabeled_sentence() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let sentences = [
        "Peter B-PER\nBlackburn I-PER\nvisited O\nBrussels B-LOC\n. O",
        "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n. O",
        "Anna B-PER\nflew O\nto O\nParis B-LOC\n. O",
    ];
    let mut text = String::new();
    for i in 0..12 {
        text.push_str(sentences[i % 3]);
        text.push_str("\n\n");
    }
    let data = dir.path().join("ner.conll");
    std::fs::write(&data, text).unwrap();
    let data = data.display().to_string();
    json(&hone_db(
        &db,
        &["data", "import", &data, "--name", "ner", "--json"],
    ));
    // Two sentences lose their tags, as sentences still to label.
    {
        let mut store = hone_store::Store::open(&db).unwrap();
        for id in [1, 2] {
            store.set_label(id, None, "test").unwrap();
        }
    }
    train(&db, "ner", &["--task", "token-classification"]);
    let queue = suggest(&db, "ner", "1", &["--strategy", "entropy"]);
    assert_eq!(queue["unlabeled"], 2);
    let tags = queue["labels"].as_array().unwrap();
    for s in queue["suggestions"].as_array().unwrap() {
        let words = s["tokens"].as_array().unwrap();
        let suggested = s["label"].as_array().expect("a tag per word");
        assert_eq!(words.len(), suggested.len(), "{s}");
        assert!(suggested.iter().all(|t| tags.contains(t)), "{s}");
        let u = s["uncertainty"].as_f64().unwrap();
        assert!((0.0..=1.0).contains(&u), "{s}");
    }
    let human = stdout(&hone_db(&db, &["data", "suggest", "ner", "--run", "1"]));
    assert!(human.contains("2 unlabeled"), "{human}");
}
