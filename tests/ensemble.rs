//! `hone ensemble create`: finished runs (by id) or model folders combined into one folder
//! that `hone predict` and `hone eval` read; its probabilities (or logits) are the members'
//! mean; members of another task or other classes are refused.

mod support;

use support::{fixture, hone, run, stderr, stdout, synthetic_choices};

fn probabilities(predict_json: &[u8]) -> Vec<f64> {
    let v: serde_json::Value = serde_json::from_slice(predict_json).unwrap();
    v[0]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p.as_f64().unwrap())
        .collect()
}

#[test]
fn an_ensemble_of_runs_averages_their_probabilities_and_evaluates_as_one_model() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let data = dir.path().join("kind.jsonl");
    synthetic_choices(&data);
    let mut members = Vec::new();
    for seed in ["1", "2"] {
        let out = dir.path().join(format!("member-{seed}"));
        let o = run(hone()
            .arg("--db")
            .arg(&db)
            .args(["train", "--task", "multiple-choice", "--model"])
            .arg(fixture("tiny-bert"))
            .arg("--train")
            .arg(&data)
            // One validation file for both: the ensemble is scored on it beside them.
            .arg("--valid")
            .arg(&data)
            .args(["--question-column", "prompt", "--choices-column", "options"])
            .args(["--label-column", "answer", "--epochs", "4", "--lr", "3e-3"])
            .args(["--batch-size", "4", "--seed", seed, "--out"])
            .arg(&out));
        assert!(o.status.success(), "{}", stderr(&o));
        members.push(out);
    }
    let question = [
        "--question",
        "which review is kind ?",
        "--choices",
        "the film was dull|the film was good|the film was bad",
    ];
    let predict = |model: &std::path::Path| {
        let p = run(hone()
            .args(["predict", "--json", "--model"])
            .arg(model)
            .args(question));
        assert!(p.status.success(), "{}", stderr(&p));
        p.stdout
    };
    // By run id, from the database the runs were recorded in.
    let ensemble = dir.path().join("ensemble");
    let c = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["ensemble", "create", "1", "2", "--out"])
        .arg(&ensemble));
    assert!(c.status.success(), "{}", stderr(&c));
    let said = stdout(&c);
    assert!(said.contains("run 1, run 2"), "{said}");
    // Recorded as a run of its own, scored beside its members on their validation questions.
    assert!(said.contains("recorded as run 3"), "{said}");
    assert!(
        said.contains("on the 48 validation examples every member held out")
            && said.contains("run 1 ")
            && said.contains("ensemble  loss"),
        "{said}"
    );
    let shown = run(hone().arg("--db").arg(&db).args(["runs", "show", "3"]));
    let shown = stdout(&shown);
    assert!(
        shown.contains("name ensemble of runs 1, 2")
            && shown.contains("ensemble members")
            && shown.contains("run 2 "),
        "{shown}"
    );
    // Its record's model is the ensemble folder: the Playground predicts with it, and exporting
    // it copies the members with the manifest.
    let mut app = hone_app::App::open(&db).unwrap();
    let (model_dir, _) = app.run_model(3).unwrap();
    assert_eq!(model_dir, ensemble);
    let copied = app
        .export_run_model(3, dir.path(), "ensemble-copy")
        .unwrap();
    drop(app);
    assert_eq!(
        probabilities(&predict(&copied)),
        probabilities(&predict(&ensemble)),
        "the copy predicts as the ensemble"
    );
    let got = probabilities(&predict(&ensemble));
    let (a, b) = (
        probabilities(&predict(&members[0])),
        probabilities(&predict(&members[1])),
    );
    for i in 0..3 {
        let want = (a[i] + b[i]) / 2.0;
        assert!(
            (got[i] - want).abs() < 1e-6,
            "option {i}: {got:?} vs {a:?} and {b:?}"
        );
    }
    // The mean of logits, from folders.
    let by_logits = dir.path().join("by-logits");
    let c = run(hone()
        .args(["ensemble", "create", "--mean", "logits", "--out"])
        .arg(&by_logits)
        .args(&members));
    assert!(c.status.success(), "{}", stderr(&c));
    let logits = |json: &[u8]| -> Vec<f64> {
        let v: serde_json::Value = serde_json::from_slice(json).unwrap();
        v[0]["logits"]
            .as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap())
            .collect()
    };
    let (la, lb, lm) = (
        logits(&predict(&members[0])),
        logits(&predict(&members[1])),
        logits(&predict(&by_logits)),
    );
    for i in 0..3 {
        assert!((lm[i] - (la[i] + lb[i]) / 2.0).abs() < 1e-5, "{lm:?}");
    }
    // `hone eval` scores the ensemble like a model.
    let e = run(hone()
        .args(["eval", "--json", "--model"])
        .arg(&ensemble)
        .arg("--data")
        .arg(&data)
        .args(["--question-column", "prompt", "--choices-column", "options"])
        .args(["--label-column", "answer"]));
    assert!(e.status.success(), "{}", stderr(&e));
    let report: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert!(report["map_at_3"].as_f64().unwrap() > 0.9, "{report}");
    let text = run(hone()
        .args(["eval", "--model"])
        .arg(&ensemble)
        .arg("--data")
        .arg(&data)
        .args(["--question-column", "prompt", "--choices-column", "options"])
        .args(["--label-column", "answer"]));
    assert!(
        stdout(&text).contains("48 questions · 2 members"),
        "{}",
        stdout(&text)
    );

    // A text classifier does not join a multiple-choice ensemble; one member is not enough.
    let classifier = fixture("tiny-bert");
    let bad = run(hone()
        .args(["ensemble", "create", "--out"])
        .arg(dir.path().join("mixed"))
        .arg(&members[0])
        .arg(&classifier));
    assert!(!bad.status.success());
    assert!(
        stderr(&bad).contains("share the task and classes"),
        "{}",
        stderr(&bad)
    );
    assert!(!dir.path().join("mixed").exists(), "nothing is left behind");
    let one = run(hone()
        .args(["ensemble", "create", "--out"])
        .arg(dir.path().join("one"))
        .arg(&members[0]));
    assert!(!one.status.success());
}
