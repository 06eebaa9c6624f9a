//! The exported folder loads in Hugging Face `transformers` unchanged and gives the logits
//! `hone predict --json` prints, within 1e-4, for each family (tests/reference/check_export.py
//! in the reference Python environment).

mod support;

use support::{hone, reference_python, run, stderr, stdout, train_tiny};

const SENTENCES: [&str; 16] = [
    "The movie was an absolute delight from start to finish.",
    "I would not recommend this restaurant to anyone I like.",
    "A quiet, thoughtful film that rewards patient viewers.",
    "The battery died after two hours.",
    "Great value for the price.",
    "The plot made no sense and the acting was wooden.",
    "Our guide was friendly, knowledgeable, and genuinely funny.",
    "Terrible.",
    "The soup was cold and the bread was stale.",
    "I have read this book three times.",
    "Shipping was fast but the box arrived crushed.",
    "Honestly one of the best concerts I have ever attended.",
    "The update fixed nothing and introduced three new bugs.",
    "Comfortable shoes that held up well on a week of hiking in the rain, across rivers and mud.",
    "élan, naïveté and café au lait — unicode survives tokenization 😀",
    "A charming little cafe with excellent coffee and a view of the harbour.",
];

fn round_trip(family: &str, data: &str, pair: Option<&str>) {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join(family);
    let o = train_tiny(family, data, &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    let mut cmd = hone();
    cmd.arg("predict")
        .arg("--model")
        .arg(&out)
        .arg("--json")
        .args(SENTENCES);
    if let Some(p) = pair {
        cmd.args(["--pair", p]);
    }
    let p = run(&mut cmd);
    assert!(p.status.success(), "{}", stderr(&p));
    let predictions = dir.path().join("predictions.json");
    std::fs::write(&predictions, stdout(&p)).unwrap();
    let check = run(std::process::Command::new(reference_python())
        .arg(support::root().join("tests/reference/check_export.py"))
        .arg(&out)
        .arg(&predictions)
        .args(["--tolerance", "1e-4"]));
    let report = stdout(&check);
    assert!(
        check.status.success(),
        "{family}: transformers disagrees:\n{report}\n{}",
        stderr(&check)
    );
    assert!(report.contains("16 texts, 0 mismatches"), "{report}");
}

#[test]
fn bert_sentence_pair_export_matches_transformers() {
    round_trip(
        "bert",
        "pairs_sample.jsonl",
        Some("A person is doing something."),
    );
}

#[test]
fn distilbert_export_matches_transformers() {
    round_trip("distilbert", "sst2_sample.tsv", None);
}

#[test]
fn roberta_export_matches_transformers() {
    round_trip("roberta", "sst2_sample.tsv", None);
}
