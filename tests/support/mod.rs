//! Helpers of the end-to-end tests: the `hone` binary, fixtures and the Python reference.
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

/// The repository root.
pub fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR"))
}

/// A file or folder under tests/fixtures.
pub fn fixture(rel: &str) -> PathBuf {
    root().join("tests/fixtures").join(rel)
}

/// A `hone` command with a database of its own (tests that need one database across
/// commands pass `--db`).
pub fn hone() -> Command {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static NEXT: AtomicUsize = AtomicUsize::new(0);
    let db = Path::new(env!("CARGO_TARGET_TMPDIR"))
        .join(format!("hone-tests-{}", std::process::id()))
        .join(format!("{}.db", NEXT.fetch_add(1, Ordering::SeqCst)));
    let mut c = Command::new(env!("CARGO_BIN_EXE_hone"));
    c.env("NO_COLOR", "1").env("HONE_DB", db);
    c
}

/// Runs a command and returns its output.
pub fn run(cmd: &mut Command) -> Output {
    cmd.output().expect("the command starts")
}

pub fn stdout(o: &Output) -> String {
    String::from_utf8_lossy(&o.stdout).to_string()
}

pub fn stderr(o: &Output) -> String {
    String::from_utf8_lossy(&o.stderr).to_string()
}

/// `hone train` on a tiny fixture model with small settings; `extra` adds or overrides flags.
pub fn train_tiny(family: &str, data: &str, out: &Path, extra: &[&str]) -> Output {
    train_model(&fixture(&format!("tiny-{family}")), data, out, extra)
}

/// [`train_tiny`] on the model folder `model`.
pub fn train_model(model: &Path, data: &str, out: &Path, extra: &[&str]) -> Output {
    let data_path = fixture(&format!("data/{data}"));
    let mut cmd = hone();
    cmd.arg("train")
        .arg("--model")
        .arg(model)
        .arg("--train")
        .arg(&data_path)
        .arg("--out")
        .arg(out);
    for (flag, value) in [
        ("--epochs", "2"),
        ("--batch-size", "8"),
        ("--max-length", "48"),
        ("--lr", "1e-3"),
    ] {
        if !extra.contains(&flag) {
            cmd.args([flag, value]);
        }
    }
    if data.ends_with(".jsonl") {
        cmd.args([
            "--text-column",
            "premise",
            "--text-pair-column",
            "hypothesis",
            "--label-column",
            "label",
        ]);
    } else {
        cmd.args(["--text-column", "sentence", "--label-column", "label"]);
    }
    cmd.args(extra);
    run(&mut cmd)
}

/// The Python interpreter of the reference environment (torch + transformers).
///
/// `HONE_REFERENCE_PYTHON` wins; otherwise `.reference-venv/bin/python`, which
/// `scripts/test-all` creates.
pub fn reference_python() -> PathBuf {
    if let Some(p) = std::env::var_os("HONE_REFERENCE_PYTHON") {
        return PathBuf::from(p);
    }
    let venv = root().join(".reference-venv/bin/python");
    assert!(
        venv.is_file(),
        "the reference Python environment is missing: run `scripts/test-all` (it creates \
         .reference-venv with tests/reference/requirements.txt) or set HONE_REFERENCE_PYTHON"
    );
    venv
}

/// Synthetic multiple-choice questions a tiny model can learn: the kind review among unkind
/// ones, its place rotating (answers as letters), as JSON lines with the options in a list.
pub fn synthetic_choices(path: &std::path::Path) {
    let kind = ["good", "great", "wonderful", "beautiful", "funny"];
    let unkind = ["bad", "terrible", "dull", "awful", "boring", "stupid"];
    let mut lines = String::new();
    for i in 0..48usize {
        let right = i % 4;
        let options: Vec<String> = (0..4)
            .map(|j| {
                let word = if j == right {
                    kind[(i + j) % kind.len()]
                } else {
                    unkind[(i * 3 + j) % unkind.len()]
                };
                format!("the film was {word}")
            })
            .collect();
        let letter = ["A", "B", "C", "D"][right];
        lines.push_str(
            &serde_json::json!({"prompt": "which review is kind ?", "options": options, "answer": letter})
                .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// A question-answering file anyone can learn: "which word is kind ?" over a passage of
/// reviews where exactly one film is called kind words; the answer is that word. JSON lines in
/// the Hugging Face `squad` layout.
pub fn synthetic_answers(path: &std::path::Path) {
    let kind = ["good", "great", "wonderful", "beautiful", "funny"];
    let unkind = ["bad", "terrible", "dull", "awful", "boring", "stupid"];
    let mut lines = String::new();
    for i in 0..64usize {
        let right = i % 5;
        let mut context = String::new();
        let mut start = 0;
        for j in 0..5 {
            let word = if j == right {
                kind[(i + j) % kind.len()]
            } else {
                unkind[(i * 3 + j) % unkind.len()]
            };
            context.push_str("the film was ");
            if j == right {
                start = context.chars().count();
            }
            context.push_str(word);
            context.push_str(" . ");
        }
        let answer = kind[(i + right) % kind.len()];
        lines.push_str(
            &serde_json::json!({
                "id": format!("q{i}"),
                "question": "which word is kind ?",
                "context": context.trim_end(),
                "answers": {"text": [answer], "answer_start": [start]},
            })
            .to_string(),
        );
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// Instruction data a tiny decoder can learn (sums of small numbers, answered in words), as
/// JSON lines in the three layouts Hone reads: Alpaca records, chat `messages`, plain text.
pub fn synthetic_conversations(path: &std::path::Path) {
    let words = [
        "zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten",
    ];
    let mut lines = String::new();
    for i in 0..48usize {
        let (a, b) = (i % 5, (i / 5) % 6);
        let question = format!("what is {} plus {} ?", words[a], words[b]);
        let answer = format!("{} plus {} is {} .", words[a], words[b], words[a + b]);
        let record = match i % 3 {
            0 => serde_json::json!({"instruction": question, "input": "", "output": answer}),
            1 => serde_json::json!({"messages": [
                {"role": "user", "content": question},
                {"role": "assistant", "content": answer}]}),
            _ => serde_json::json!({"text": format!("{question} {answer}")}),
        };
        lines.push_str(&record.to_string());
        lines.push('\n');
    }
    std::fs::write(path, lines).unwrap();
}

/// Sentences in CoNLL form from templates: people, places and organisations a tiny model
/// learns to tag in a few epochs.
pub fn synthetic_conll(path: &std::path::Path) {
    let first = ["Peter", "Anna", "John", "Maria", "David", "Laura"];
    let last = ["Blackburn", "Smith", "Jones", "Brown"];
    let cities = ["Brussels", "Paris", "London", "Berlin", "Madrid"];
    let orgs = ["Reuters", "Siemens", "Google", "Nokia"];
    let mut sentences = Vec::new();
    for i in 0..240usize {
        let (f, l, c, o) = (
            first[i * 7 % 6],
            last[i * 5 % 4],
            cities[i * 3 % 5],
            orgs[i * 11 % 4],
        );
        let words: Vec<(&str, &str)> = match i % 3 {
            0 => vec![
                (f, "B-PER"),
                (l, "I-PER"),
                ("visited", "O"),
                (c, "B-LOC"),
                ("on", "O"),
                ("Monday", "O"),
                (".", "O"),
            ],
            1 => vec![
                (o, "B-ORG"),
                ("said", "O"),
                ("on", "O"),
                ("Tuesday", "O"),
                ("that", "O"),
                (f, "B-PER"),
                ("left", "O"),
                (c, "B-LOC"),
                (".", "O"),
            ],
            _ => vec![
                ("In", "O"),
                (c, "B-LOC"),
                (",", "O"),
                (o, "B-ORG"),
                ("hired", "O"),
                (f, "B-PER"),
                (l, "I-PER"),
                (".", "O"),
            ],
        };
        let lines: Vec<String> = words.iter().map(|(w, t)| format!("{w} {t}")).collect();
        sentences.push(lines.join("\n"));
    }
    std::fs::write(path, sentences.join("\n\n") + "\n").unwrap();
}
