//! `hone export --onnx`: the ONNX graph written from the model's one definition passes ONNX's
//! checker, and ONNX Runtime, on padded batches of several lengths, gives the logits `hone
//! predict --json` prints and those transformers gives on the folder, within 1e-4, for every
//! encoder family and head (tests/reference/check_onnx_export.py in the reference Python
//! environment, with onnx and onnxruntime). The int8 model stays near the float32 one.

mod support;

use std::path::Path;

use support::{
    fixture, hone, reference_python, run, stderr, stdout, synthetic_answers, synthetic_choices,
    synthetic_conll, train_tiny,
};

/// Texts `hone predict` scores for the comparison (different lengths: the ONNX batch pads).
const TEXTS: [&str; 4] = [
    "The movie was an absolute delight from start to finish.",
    "Terrible.",
    "Shipping was fast but the box arrived crushed, and the manual was missing two pages.",
    "élan, naïveté and café au lait — unicode survives tokenization 😀",
];

/// Tiny models' logits are small, so int8's error relative to them is large; a broken
/// quantization is off by more than the logits themselves. SST-2 with MiniLM is measured in
/// bench/onnx_int8.sh.
const INT8_TOLERANCE: &str = "0.5";

fn export(model: &Path, out: &Path) {
    let o = run(hone()
        .args(["export", "--onnx", "--int8", "--model"])
        .arg(model)
        .arg("--out")
        .arg(out));
    assert!(o.status.success(), "{}: {}", model.display(), stderr(&o));
    let said = stderr(&o);
    assert!(
        said.contains("model.onnx") && said.contains("model_quantized.onnx"),
        "{said}"
    );
}

/// Runs the reference check on an ONNX folder against its model folder (and Hone's logits).
fn check(onnx: &Path, model: &Path, predictions: Option<&Path>) -> String {
    let mut cmd = std::process::Command::new(reference_python());
    cmd.arg(support::root().join("tests/reference/check_onnx_export.py"))
        .arg(onnx)
        .arg(model)
        .args(["--tolerance", "1e-4", "--int8-tolerance", INT8_TOLERANCE]);
    if let Some(p) = predictions {
        cmd.arg("--predictions").arg(p);
    }
    let c = run(&mut cmd);
    let report = stdout(&c);
    assert!(
        c.status.success(),
        "{}: ONNX Runtime disagrees:\n{report}\n{}",
        onnx.display(),
        stderr(&c)
    );
    assert!(report.contains("2 ONNX files, 0 mismatches"), "{report}");
    report
}

/// Every encoder family's text classifier (DeBERTa with shared and separate position keys,
/// bucketed and not): ONNX Runtime's logits are Hone's and transformers'.
#[test]
fn text_classifiers_export_to_onnx_for_every_family() {
    let dir = tempfile::tempdir().unwrap();
    for family in ["bert", "distilbert", "roberta", "deberta", "deberta-v2"] {
        let model = dir.path().join(family);
        let o = train_tiny(family, "sst2_sample.tsv", &model, &["--epochs", "1"]);
        assert!(o.status.success(), "{family}: {}", stderr(&o));
        let onnx = dir.path().join(format!("{family}-onnx"));
        export(&model, &onnx);
        for file in ["config.json", "tokenizer.json", "onnx/model.onnx"] {
            assert!(onnx.join(file).is_file(), "{family}: no {file}");
        }
        let p = run(hone()
            .arg("predict")
            .arg("--model")
            .arg(&model)
            .arg("--json")
            .args(TEXTS));
        assert!(p.status.success(), "{}", stderr(&p));
        let predictions = dir.path().join(format!("{family}.json"));
        std::fs::write(&predictions, stdout(&p)).unwrap();
        let report = check(&onnx, &model, Some(&predictions));
        assert_eq!(
            report.matches("ok   onnxruntime vs hone").count(),
            4,
            "{report}"
        );
    }
}

/// Token classification, multiple choice (inputs `[batch × options × sequence]`) and question
/// answering (`start_logits`, `end_logits`), each on another family, and a LoRA adapter
/// (merged on export).
#[test]
fn token_choice_answer_and_lora_models_export_to_onnx() {
    let dir = tempfile::tempdir().unwrap();
    let (conll, choices, answers) = (
        dir.path().join("ner.conll"),
        dir.path().join("kind.jsonl"),
        dir.path().join("squad.jsonl"),
    );
    synthetic_conll(&conll);
    synthetic_choices(&choices);
    synthetic_answers(&answers);
    let cases: [(&str, &str, &Path, &[&str]); 4] = [
        ("token-classification", "bert", &conll, &[]),
        (
            "multiple-choice",
            "roberta",
            &choices,
            &[
                "--question-column",
                "prompt",
                "--choices-column",
                "options",
                "--label-column",
                "answer",
            ],
        ),
        ("question-answering", "deberta", &answers, &[]),
        (
            "sequence-classification",
            "distilbert",
            &fixture("data/sst2_sample.tsv"),
            &[
                "--text-column",
                "sentence",
                "--label-column",
                "label",
                "--peft",
                "lora",
            ],
        ),
    ];
    for (task, family, data, extra) in cases {
        let model = dir.path().join(task);
        let o = run(hone()
            .args(["train", "--task", task, "--model"])
            .arg(fixture(&format!("tiny-{family}")))
            .arg("--train")
            .arg(data)
            .args(["--epochs", "1", "--batch-size", "8", "--lr", "3e-3"])
            .args(extra)
            .arg("--out")
            .arg(&model));
        assert!(o.status.success(), "{task}: {}", stderr(&o));
        let onnx = dir.path().join(format!("{task}-onnx"));
        export(&model, &onnx);
        // A LoRA folder is merged first: transformers compares against the merged model.
        let reference = if model.join("adapter_config.json").is_file() {
            let merged = dir.path().join("merged");
            let m = run(hone()
                .args(["export", "--merge", "--model"])
                .arg(&model)
                .arg("--out")
                .arg(&merged));
            assert!(m.status.success(), "{}", stderr(&m));
            merged
        } else {
            model
        };
        let report = check(&onnx, &reference, None);
        assert!(report.contains(&format!("task {task}")), "{report}");
    }
}

/// A run is exported by id (the folder recorded with the run); a decoder or an existing
/// folder gets a clear refusal and leaves nothing behind.
#[test]
fn a_run_exports_by_id_and_decoders_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let o = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["train", "--model"])
        .arg(fixture("tiny-bert"))
        .arg("--train")
        .arg(fixture("data/sst2_sample.tsv"))
        .args(["--text-column", "sentence", "--label-column", "label"])
        .args(["--epochs", "1", "--batch-size", "8", "--out"])
        .arg(dir.path().join("model")));
    assert!(o.status.success(), "{}", stderr(&o));
    let onnx = dir.path().join("by-run");
    let e = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["export", "--run", "1", "--onnx", "--json", "--out"])
        .arg(&onnx));
    assert!(e.status.success(), "{}", stderr(&e));
    let written: serde_json::Value = serde_json::from_str(&stdout(&e)).unwrap();
    assert_eq!(written[0]["task"], "sequence-classification", "{written}");
    assert_eq!(
        written[0]["inputs"],
        serde_json::json!(["input_ids", "attention_mask", "token_type_ids"])
    );
    assert_eq!(written[0]["outputs"], serde_json::json!(["logits"]));
    assert!(onnx.join("onnx/model.onnx").is_file());
    assert!(!onnx.join("onnx/model_quantized.onnx").exists());
    let path = written[0]["path"].as_str().unwrap();
    assert_eq!(Path::new(path), onnx.join("onnx/model.onnx"));

    let again = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["export", "--run", "1", "--onnx", "--out"])
        .arg(&onnx));
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );

    let decoder = dir.path().join("decoder-onnx");
    let d = run(hone()
        .args(["export", "--onnx", "--model"])
        .arg(fixture("tiny-llama"))
        .arg("--out")
        .arg(&decoder));
    assert!(!d.status.success());
    assert!(stderr(&d).contains("is a decoder"), "{}", stderr(&d));
    assert!(!decoder.exists(), "a refused export leaves no folder");
}

/// The logits of `hone predict --json` (one row per text).
fn predicted_logits(model: &Path, extra: &[&str]) -> Vec<Vec<f64>> {
    let p = run(hone()
        .arg("predict")
        .arg("--model")
        .arg(model)
        .arg("--json")
        .args(extra)
        .args(TEXTS));
    assert!(p.status.success(), "{}", stderr(&p));
    let rows: Vec<serde_json::Value> = serde_json::from_str(&stdout(&p)).unwrap();
    rows.iter()
        .map(|r| {
            r["logits"]
                .as_array()
                .unwrap()
                .iter()
                .map(|v| v.as_f64().unwrap())
                .collect()
        })
        .collect()
}

/// Hone's own int8 predictor (`--int8`: linear layers quantized per output feature, per token
/// at run time) stays near float32 on a classifier, on every text and in `hone eval`, and
/// runs a token classifier; a text-generating model is refused with what to use instead.
#[test]
fn hones_own_int8_predictor_stays_near_float32() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("bert");
    let o = train_tiny("bert", "sst2_sample.tsv", &model, &["--epochs", "2"]);
    assert!(o.status.success(), "{}", stderr(&o));
    let float = predicted_logits(&model, &[]);
    let int8 = predicted_logits(&model, &["--int8"]);
    let largest = float.iter().flatten().fold(0f64, |m, v| m.max(v.abs()));
    let mut differs = false;
    for (f, q) in float.iter().zip(&int8) {
        for (a, b) in f.iter().zip(q) {
            assert!((a - b).abs() <= 0.05 * largest.max(1.0), "{f:?} vs {q:?}");
            differs |= a != b;
        }
    }
    assert!(
        differs,
        "--int8 changed nothing: the int8 kernels did not run"
    );

    let evaluate = |extra: &[&str]| {
        let e = run(hone()
            .args(["eval", "--json", "--model"])
            .arg(&model)
            .arg("--data")
            .arg(fixture("data/sst2_sample.tsv"))
            .args(["--text-column", "sentence", "--label-column", "label"])
            .args(extra));
        assert!(e.status.success(), "{}", stderr(&e));
        let report: serde_json::Value = serde_json::from_str(&stdout(&e)).unwrap();
        report["accuracy"].as_f64().unwrap()
    };
    let (f, q) = (evaluate(&[]), evaluate(&["--int8"]));
    assert!((f - q).abs() <= 0.1, "accuracy {f} in f32, {q} in int8");

    let conll = dir.path().join("ner.conll");
    synthetic_conll(&conll);
    let tagger = dir.path().join("ner");
    let o = run(hone()
        .args(["train", "--task", "token-classification", "--model"])
        .arg(fixture("tiny-bert"))
        .arg("--train")
        .arg(&conll)
        .args(["--epochs", "1", "--batch-size", "8"])
        .arg("--out")
        .arg(&tagger));
    assert!(o.status.success(), "{}", stderr(&o));
    let p = run(hone()
        .args(["predict", "--int8", "--json", "--model"])
        .arg(&tagger)
        .arg("John lives in Berlin"));
    assert!(p.status.success(), "{}", stderr(&p));
    assert!(stdout(&p).contains("tokens"), "{}", stdout(&p));

    let p = run(hone()
        .args(["generate", "--int8", "--model"])
        .arg(fixture("tiny-llama"))
        .arg("Hello"));
    assert!(!p.status.success());
    assert!(stderr(&p).contains("GGUF q8_0"), "{}", stderr(&p));
}
