//! `hone test`: the starter suite written for a model's classes runs on a data file (every
//! invariance test), with minimum-functionality and directional tests added, the robustness
//! score and accuracy per slice; `--fail-above` turns failures into the exit status; a bad
//! suite says what to fix.

mod support;

use support::{fixture, hone, run, stderr, stdout, train_tiny};

/// Texts that must get class "1" and the same texts that must get "0": one of the two tests
/// fails on each text, whatever the model.
const CONTRADICTION: &str = r#"
[[test]]
kind = "mft"
name = "templated ones"
template = "the {thing} was {word} ."
fill = { thing = ["film", "movie"], word = ["great", "awful", "dull"] }
expect = "1"

[[test]]
kind = "mft"
name = "the same as zeros"
template = "the {thing} was {word} ."
fill = { thing = ["film", "movie"], word = ["great", "awful", "dull"] }
expect = "0"

[[test]]
kind = "directional"
name = "a complaint does not raise 1"
append = "but it was boring and awful ."
class = "1"
direction = "down"
tolerance = 0.5
texts = ["a gorgeous , witty film", "a fine movie"]
"#;

#[test]
fn a_suite_runs_every_kind_of_test_with_robustness_and_slices() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let o = train_tiny("bert", "sst2_sample.tsv", &model, &[]);
    assert!(o.status.success(), "{}", stderr(&o));

    let starter = run(hone().args(["test", "--starter", "--model"]).arg(&model));
    assert!(starter.status.success(), "{}", stderr(&starter));
    let starter = stdout(&starter);
    assert!(starter.contains("Classes of this model: 0, 1"), "{starter}");
    let suite = dir.path().join("suite.toml");
    std::fs::write(&suite, format!("{starter}{CONTRADICTION}")).unwrap();

    let data = fixture("data/sst2_sample.tsv");
    let rows = std::fs::read_to_string(&data).unwrap().lines().count() - 1;
    let test = |extra: &[&str]| {
        run(hone()
            .args(["test", "--model"])
            .arg(&model)
            .arg("--suite")
            .arg(&suite)
            .arg("--data")
            .arg(&data)
            .args(["--text-column", "sentence", "--label-column", "label"])
            .args(["--slice", r"short=^\S+( \S+){0,5}\s*$"])
            .args(extra))
    };
    let o = test(&["--json"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let tests = report["tests"].as_array().unwrap();
    let kinds: Vec<&str> = tests.iter().map(|t| t["kind"].as_str().unwrap()).collect();
    assert_eq!(
        kinds,
        [
            "invariance",
            "invariance",
            "invariance",
            "invariance",
            "invariance",
            "mft",
            "mft",
            "directional"
        ]
    );
    // Punctuation and a neutral sentence change every text of the data, typos nearly every
    // one (a word of four letters is needed), names and places only those that have one.
    for i in [1, 4] {
        assert_eq!(
            tests[i]["examples"].as_u64().unwrap() as usize,
            rows,
            "{}",
            tests[i]
        );
    }
    assert!(
        tests[0]["examples"].as_u64().unwrap() as usize * 10 >= rows * 9,
        "{}",
        tests[0]
    );
    let (ones, zeros) = (&tests[5], &tests[6]);
    assert_eq!(ones["examples"], 6);
    assert_eq!(
        ones["failures"].as_u64().unwrap() + zeros["failures"].as_u64().unwrap(),
        6,
        "each text fails exactly one of the two"
    );
    assert_eq!(tests[7]["examples"], 2);
    let robustness = report["robustness"].as_f64().unwrap();
    assert!((0.0..=1.0).contains(&robustness), "{report}");
    let slices = report["slices"].as_array().unwrap();
    assert_eq!(slices[0]["name"], "all");
    assert_eq!(slices[0]["examples"].as_u64().unwrap() as usize, rows);
    assert_eq!(slices[1]["name"], "short");
    assert!(slices[1]["examples"].as_u64().unwrap() > 0);

    // The table, and --fail-above as the exit status.
    let o = test(&[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let table = stdout(&o);
    assert!(
        table.contains("robustness")
            && table.contains("failing examples")
            && table.contains("short"),
        "{table}"
    );
    let o = test(&["--fail-above", "0"]);
    assert_eq!(o.status.code(), Some(1), "{}", stderr(&o));
}

#[test]
fn bad_suites_say_what_to_fix() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("model");
    let o = train_tiny("distilbert", "sst2_sample.tsv", &model, &["--epochs", "1"]);
    assert!(o.status.success(), "{}", stderr(&o));
    for (suite, needle) in [
        (
            "[[test]]\nkind = \"mft\"\nname = \"x\"\ntexts = [\"a\"]\nexpect = \"happy\"\n",
            "has no class 'happy'",
        ),
        (
            "[[test]]\nkind = \"invariance\"\nname = \"x\"\nperturb = \"typos\"\n",
            "give some, or a data file",
        ),
        (
            "[[test]]\nkind = \"invariance\"\nname = \"x\"\nperturb = \"shouting\"\n",
            "not a test suite",
        ),
        (
            "[[test]]\nkind = \"mft\"\nname = \"x\"\ntemplate = \"the {a}\"\nexpect = \"1\"\n",
            "still has a placeholder",
        ),
        ("name = \"empty\"\n", "has no [[test]]"),
    ] {
        let path = dir.path().join("suite.toml");
        std::fs::write(&path, suite).unwrap();
        let o = run(hone()
            .args(["test", "--model"])
            .arg(&model)
            .arg("--suite")
            .arg(&path));
        assert!(!o.status.success(), "{suite}");
        let err = stderr(&o);
        assert!(err.contains(needle), "{suite}: {err}");
    }
}
