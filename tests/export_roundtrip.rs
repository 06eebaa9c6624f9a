//! The exported folder loads in Hugging Face `transformers` unchanged and gives the logits
//! `hone predict --json` prints, within 1e-4, for each family (tests/reference/check_export.py
//! in the reference Python environment).

mod support;

use support::{
    hone, reference_python, run, stderr, stdout, synthetic_answers, synthetic_choices,
    synthetic_conll, synthetic_conversations, train_tiny,
};

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
    classifier_matches_transformers(&out, pair);
}

/// `hone predict --json` on [`SENTENCES`] (each paired with `pair`) gives the logits
/// transformers gives with the folder `model` (tests/reference/check_export.py, 1e-4).
fn classifier_matches_transformers(model: &std::path::Path, pair: Option<&str>) {
    let mut cmd = hone();
    cmd.arg("predict")
        .arg("--model")
        .arg(model)
        .arg("--json")
        .args(SENTENCES);
    if let Some(p) = pair {
        cmd.args(["--pair", p]);
    }
    let p = run(&mut cmd);
    assert!(p.status.success(), "{}", stderr(&p));
    let scratch = tempfile::tempdir().unwrap();
    let predictions = scratch.path().join("predictions.json");
    std::fs::write(&predictions, stdout(&p)).unwrap();
    let check = run(std::process::Command::new(reference_python())
        .arg(support::root().join("tests/reference/check_export.py"))
        .arg(model)
        .arg(&predictions)
        .args(["--tolerance", "1e-4"]));
    let report = stdout(&check);
    assert!(
        check.status.success(),
        "{}: transformers disagrees:\n{report}\n{}",
        model.display(),
        stderr(&check)
    );
    assert!(report.contains("16 texts, 0 mismatches"), "{report}");
}

/// A LoRA run's folder is a PEFT adapter: PEFT loads it on the base model and gives the
/// logits `hone predict` prints; `hone export --merge` turns it into a full model plain
/// transformers loads, with the same logits again.
#[test]
fn lora_adapters_load_in_peft_and_merge_into_a_plain_model() {
    for family in ["bert", "distilbert", "roberta", "deberta"] {
        let dir = tempfile::tempdir().unwrap();
        let out = dir.path().join("adapter");
        let o = train_tiny(
            family,
            "sst2_sample.tsv",
            &out,
            &["--peft", "lora", "--lora-r", "4", "--lora-alpha", "8"],
        );
        assert!(o.status.success(), "{}", stderr(&o));
        assert!(out.join("adapter_config.json").is_file(), "{family}");
        assert!(
            !out.join("model.safetensors").exists(),
            "{family}: only the adapter"
        );
        classifier_matches_transformers(&out, None);
        let merged = dir.path().join("merged");
        let m = run(hone()
            .args(["export", "--merge", "--model"])
            .arg(&out)
            .arg("--out")
            .arg(&merged));
        assert!(m.status.success(), "{}", stderr(&m));
        assert!(!merged.join("adapter_config.json").exists());
        classifier_matches_transformers(&merged, None);
        let logits = |model: &std::path::Path| -> Vec<f64> {
            let p = run(hone()
                .args(["predict", "--json", "--model"])
                .arg(model)
                .args(SENTENCES));
            assert!(p.status.success(), "{}", stderr(&p));
            let v: serde_json::Value = serde_json::from_str(&stdout(&p)).unwrap();
            v.as_array()
                .unwrap()
                .iter()
                .flat_map(|p| p["logits"].as_array().unwrap().clone())
                .map(|x| x.as_f64().unwrap())
                .collect()
        };
        let (a, b) = (logits(&out), logits(&merged));
        let worst = a
            .iter()
            .zip(&b)
            .map(|(x, y)| (x - y).abs())
            .fold(0f64, f64::max);
        assert!(
            worst < 1e-4,
            "{family}: adapter and merged model differ by {worst:.2e}"
        );
    }
}

/// A LoRA token classifier: PEFT (TOKEN_CLS) loads the adapter on its base and gives the
/// per-token logits `hone predict` prints, and the pipeline on the merged model finds the same
/// entities.
#[test]
fn a_lora_token_classifier_loads_in_peft() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ner.conll");
    synthetic_conll(&data);
    let out = dir.path().join("adapter");
    let o = run(hone()
        .args(["train", "--task", "token-classification", "--model"])
        .arg(support::fixture("tiny-bert"))
        .arg("--train")
        .arg(&data)
        .args([
            "--epochs",
            "8",
            "--lr",
            "2e-2",
            "--batch-size",
            "8",
            "--peft",
            "lora",
        ])
        .args(["--lora-targets", "query,key,value,dense", "--out"])
        .arg(&out));
    assert!(o.status.success(), "{}", stderr(&o));
    let config = std::fs::read_to_string(out.join("adapter_config.json")).unwrap();
    assert!(config.contains("\"TOKEN_CLS\""), "{config}");
    tagger_matches_transformers(
        &out,
        &[
            "Peter Blackburn visited Brussels on Monday.",
            "In Paris , Nokia hired Anna Smith .",
        ],
    );
}

/// `hone predict --json` on `texts` with the token classifier `model`: the per-token logits
/// transformers gives and the entities its pipeline finds (check_token_export.py). Returns
/// Hone's predictions.
fn tagger_matches_transformers(model: &std::path::Path, texts: &[&str]) -> serde_json::Value {
    let p = run(hone()
        .args(["predict", "--model"])
        .arg(model)
        .arg("--json")
        .args(texts));
    assert!(p.status.success(), "{}", stderr(&p));
    let scratch = tempfile::tempdir().unwrap();
    let path = scratch.path().join("predictions.json");
    std::fs::write(&path, &p.stdout).unwrap();
    let check = run(std::process::Command::new(reference_python())
        .arg(support::root().join("tests/reference/check_token_export.py"))
        .arg(model)
        .arg(&path));
    assert!(
        check.status.success(),
        "{}: transformers disagrees:\n{}\n{}",
        model.display(),
        stdout(&check),
        stderr(&check)
    );
    serde_json::from_slice(&p.stdout).unwrap()
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

/// A DeBERTa-v3 folder as the Hub ships one (`spm.model`, no tokenizer.json) trains, and its
/// export (which gets a tokenizer.json) loads in transformers with the same logits.
#[test]
fn a_deberta_folder_with_only_spm_model_trains_and_exports() {
    let dir = tempfile::tempdir().unwrap();
    let model = dir.path().join("deberta-spm");
    std::fs::create_dir(&model).unwrap();
    // The tiny SentencePiece vocabulary (301 ids) fits the tiny model's 400 rows.
    for (folder, file) in [
        ("tiny-deberta", "config.json"),
        ("tiny-deberta", "model.safetensors"),
        ("spm-deberta", "spm.model"),
        ("spm-deberta", "tokenizer_config.json"),
    ] {
        std::fs::copy(support::fixture(folder).join(file), model.join(file)).unwrap();
    }
    let out = dir.path().join("out");
    let o = support::train_model(&model, "sst2_sample.tsv", &out, &[]);
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(out.join("spm.model").is_file() && out.join("tokenizer.json").is_file());
    classifier_matches_transformers(&out, None);
}

/// DeBERTa-v3's layout (disentangled attention, the `ContextPooler` head) on sentence pairs.
#[test]
fn deberta_sentence_pair_export_matches_transformers() {
    round_trip(
        "deberta",
        "pairs_sample.jsonl",
        Some("A person is doing something."),
    );
}

/// Token classification: the exported `*ForTokenClassification` folder gives the per-token
/// logits `hone predict --json` printed, and transformers' pipeline finds the same entities
/// (tests/reference/check_token_export.py); `hone eval --json` has the promised keys.
#[test]
fn token_classification_exports_match_transformers_for_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ner.conll");
    synthetic_conll(&data);
    for family in ["bert", "distilbert", "roberta", "deberta"] {
        let out = dir.path().join(family);
        let o = run(hone()
            .args(["train", "--task", "token-classification", "--model"])
            .arg(support::fixture(&format!("tiny-{family}")))
            .arg("--train")
            .arg(&data)
            .args([
                "--epochs",
                "8",
                "--lr",
                "5e-3",
                "--batch-size",
                "8",
                "--out",
            ])
            .arg(&out));
        assert!(o.status.success(), "{family}: {}", stderr(&o));
        let config = std::fs::read_to_string(out.join("config.json")).unwrap();
        assert!(config.contains("ForTokenClassification"), "{config}");

        let predictions = tagger_matches_transformers(
            &out,
            &[
                "Peter Blackburn visited Brussels on Monday.",
                "In Paris , Nokia hired Anna Smith .",
                "Dr. Anna-Maria Jones (Reuters) flew to Berlin, Madrid & London.",
                "Ünïcødé café — Laura in Zürich 😀",
            ],
        );
        let first = &predictions[0];
        assert!(first["tokens"][0]["tag"].is_string(), "{first}");
        let types: Vec<&str> = first["entities"]
            .as_array()
            .unwrap()
            .iter()
            .filter_map(|e| e["type"].as_str())
            .collect();
        // The tiny byte-level BPE and Unigram split a lone space token off some words;
        // transformers' "first" reading (which Hone follows exactly) then starts a word there,
        // so only the WordPiece families are held to clean entities here (the check below
        // compares all).
        if matches!(family, "bert" | "distilbert") {
            assert_eq!(types, ["PER", "LOC"], "{family}: {first}");
        }

        let e = run(hone()
            .args(["eval", "--model"])
            .arg(&out)
            .arg("--data")
            .arg(&data)
            .arg("--json"));
        assert!(e.status.success(), "{}", stderr(&e));
        let report: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
        for key in ["entity_f1", "precision", "recall", "token_accuracy"] {
            assert!(
                report[key].as_f64().is_some(),
                "{family}: no {key} in {report}"
            );
        }
        assert!(
            report["entity_f1"].as_f64().unwrap() > 0.9,
            "{family}: {report}"
        );
        for kind in ["PER", "LOC", "ORG"] {
            for key in ["precision", "recall", "f1", "support"] {
                assert!(
                    report["per_type"][kind][key].is_number(),
                    "{family}: {report}"
                );
            }
        }
    }
}

/// Multiple choice: the exported `*ForMultipleChoice` folder gives the option scores `hone
/// predict --json --question … --choices …` printed (tests/reference/check_choice_export.py),
/// for every family; `hone eval --json` has accuracy and MAP@3, and the model learned the
/// synthetic task.
#[test]
fn multiple_choice_exports_match_transformers_for_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kind.jsonl");
    synthetic_choices(&data);
    // The last is a LoRA adapter: PEFT has no multiple-choice task type and wraps it as a plain
    // PeftModel on the base's `*ForMultipleChoice`. DeBERTa also trains with the Kaggle
    // science-exam recipe it was written for (head first, frozen embeddings, cosine layer-wise
    // decay).
    let lora = ["--peft", "lora", "--lora-targets", "query,key,value,dense"];
    let kaggle = ["--preset", "kaggle-mc", "--head-warmup-steps", "10"];
    for (family, method, lr) in [
        ("bert", &[][..], "3e-3"),
        ("distilbert", &[], "3e-3"),
        ("roberta", &[], "3e-3"),
        ("deberta", &[], "3e-3"),
        ("deberta", &kaggle[..], "3e-3"),
        ("bert", &lora[..], "2e-2"),
    ] {
        let is_lora = method.contains(&"lora");
        let out = dir.path().join(format!("{family}{}", method.len()));
        let o = run(hone()
            .args(["train", "--task", "multiple-choice", "--model"])
            .arg(support::fixture(&format!("tiny-{family}")))
            .arg("--train")
            .arg(&data)
            .args([
                "--question-column",
                "prompt",
                "--choices-column",
                "options",
                "--label-column",
                "answer",
                "--valid-fraction",
                "0.25",
                "--epochs",
                "10",
                "--lr",
                lr,
                "--batch-size",
                "4",
            ])
            .args(method)
            .arg("--out")
            .arg(&out));
        assert!(o.status.success(), "{family}: {}", stderr(&o));
        if is_lora {
            let config = std::fs::read_to_string(out.join("adapter_config.json")).unwrap();
            assert!(config.contains("\"task_type\": null"), "{config}");
        } else {
            let config = std::fs::read_to_string(out.join("config.json")).unwrap();
            assert!(config.contains("ForMultipleChoice"), "{config}");
        }

        let mut all = Vec::new();
        for (question, choices, context) in [
            (
                "which review is kind ?",
                "the film was dull|the film was great|the film was bad",
                None,
            ),
            (
                "pick one",
                "a|the film was wonderful and funny|boring|the film was awful|ok",
                None,
            ),
            (
                "which review is kind ?",
                "the film was terrible|the film was good",
                Some("a review, in a café 😀"),
            ),
        ] {
            let mut cmd = hone();
            cmd.args(["predict", "--json", "--model"]).arg(&out).args([
                "--question",
                question,
                "--choices",
                choices,
            ]);
            if let Some(c) = context {
                cmd.args(["--context", c]);
            }
            let p = run(&mut cmd);
            assert!(p.status.success(), "{family}: {}", stderr(&p));
            let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
            let q = &v[0];
            let n = choices.split('|').count();
            assert_eq!(q["probabilities"].as_array().unwrap().len(), n, "{q}");
            assert_eq!(q["ranking"].as_array().unwrap().len(), n, "{q}");
            all.push(v);
        }
        let path = dir.path().join(format!("{family}-choices.json"));
        std::fs::write(&path, serde_json::to_string(&all).unwrap()).unwrap();
        let check = run(std::process::Command::new(reference_python())
            .arg(support::root().join("tests/reference/check_choice_export.py"))
            .arg(&out)
            .arg(&path));
        let report = stdout(&check);
        assert!(
            check.status.success() && report.contains("3 questions, 0 mismatches"),
            "{family}: transformers disagrees:\n{report}\n{}",
            stderr(&check)
        );

        let e = run(hone()
            .args(["eval", "--json", "--model"])
            .arg(&out)
            .arg("--data")
            .arg(&data)
            .args(["--question-column", "prompt", "--choices-column", "options"])
            .args(["--label-column", "answer"]));
        assert!(e.status.success(), "{}", stderr(&e));
        let report: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
        for key in ["loss", "accuracy", "map_at_3"] {
            assert!(
                report[key].as_f64().is_some(),
                "{family}: no {key} in {report}"
            );
        }
        if method.is_empty() {
            assert!(
                report["accuracy"].as_f64().unwrap() > 0.9,
                "{family}: {report}"
            );
        }
        assert!(report["map_at_3"].as_f64().unwrap() >= report["accuracy"].as_f64().unwrap());
    }
}

/// Question answering: the exported `*ForQuestionAnswering` folder finds the answers `hone
/// predict --json --question … --context …` printed, with the same scores, when transformers
/// runs it (tests/reference/check_qa_export.py: the question-answering pipeline's reading),
/// for every family, on passages long enough to be read in several windows (trained on
/// windows of 24 tokens, read in windows of 32: transformers cannot read a question that
/// leaves fewer passage tokens than the stride, which Hone reads with a smaller one); `hone eval
/// --json` has exact match and F1, and the model learned the synthetic task.
#[test]
fn question_answering_exports_match_transformers_for_every_family() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("kind.jsonl");
    synthetic_answers(&data);
    let window = ["--max-length", "24", "--doc-stride", "8"];
    // The last is a LoRA adapter (PEFT's QUESTION_ANS), which PEFT loads on its base.
    let lora = ["--peft", "lora", "--lora-targets", "query,key,value,dense"];
    for (family, method, lr) in [
        ("bert", &[][..], "3e-3"),
        ("distilbert", &[], "3e-3"),
        ("roberta", &[], "3e-3"),
        ("deberta", &[], "3e-3"),
        ("bert", &lora[..], "2e-2"),
    ] {
        let out = dir.path().join(format!("{family}{}", method.len()));
        let o = run(hone()
            .args(["train", "--task", "question-answering", "--model"])
            .arg(support::fixture(&format!("tiny-{family}")))
            .arg("--train")
            .arg(&data)
            .args(window)
            .args(["--valid-fraction", "0.25", "--epochs", "12", "--lr", lr])
            .args(["--batch-size", "8"])
            .args(method)
            .arg("--out")
            .arg(&out));
        assert!(o.status.success(), "{family}: {}", stderr(&o));
        if method.is_empty() {
            let config = std::fs::read_to_string(out.join("config.json")).unwrap();
            assert!(config.contains("ForQuestionAnswering"), "{config}");
        } else {
            let config = std::fs::read_to_string(out.join("adapter_config.json")).unwrap();
            assert!(config.contains("\"QUESTION_ANS\""), "{config}");
        }

        let mut all = Vec::new();
        for (question, context) in [
            ("which word is kind ?", "the film was dull . the film was great . the film was bad ."),
            (
                "which word is kind ?",
                "the film was awful . the film was boring . the film was stupid . the film was terrible . the film was dull . the film was bad . the film was wonderful .",
            ),
            ("where is the café ?", "a café 😀 near the film , the film was funny ."),
        ] {
            let p = run(hone()
                .args(["predict", "--json", "--model"])
                .arg(&out)
                .args(["--question", question, "--context", context])
                .args(["--max-length", "32", "--doc-stride", "8"]));
            assert!(p.status.success(), "{family}: {}", stderr(&p));
            let v: serde_json::Value = serde_json::from_slice(&p.stdout).unwrap();
            let a = &v[0];
            let (start, end) = (a["start"].as_u64().unwrap(), a["end"].as_u64().unwrap());
            let chars: Vec<char> = context.chars().collect();
            let text: String = chars[start as usize..end as usize].iter().collect();
            assert_eq!(a["answer"].as_str().unwrap(), text, "{family}: {a}");
            all.push(v);
        }
        assert!(
            all[1][0]["windows"].as_u64().unwrap() > 1,
            "{family}: the long passage should take several windows: {}",
            all[1][0]
        );
        let path = dir.path().join(format!("{family}-answers.json"));
        std::fs::write(&path, serde_json::to_string(&all).unwrap()).unwrap();
        let check = run(std::process::Command::new(reference_python())
            .arg(support::root().join("tests/reference/check_qa_export.py"))
            .arg(&out)
            .arg(&path)
            .args(["--max-length", "32", "--stride", "8"]));
        let report = stdout(&check);
        assert!(
            check.status.success() && report.contains("3 questions, 0 mismatches"),
            "{family}: transformers disagrees:\n{report}\n{}",
            stderr(&check)
        );

        let e = run(hone()
            .args(["eval", "--json", "--model"])
            .arg(&out)
            .arg("--data")
            .arg(&data)
            .args(window));
        assert!(e.status.success(), "{}", stderr(&e));
        let report: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
        for key in ["loss", "exact_match", "f1"] {
            assert!(
                report[key].as_f64().is_some(),
                "{family}: no {key} in {report}"
            );
        }
        // Full fine-tuning learns the task; the LoRA run (a few thousand parameters on a
        // random tiny base) is here for PEFT's loading, not its score.
        if method.is_empty() {
            assert!(report["f1"].as_f64().unwrap() > 0.8, "{family}: {report}");
        }
        assert!(report["f1"].as_f64().unwrap() >= report["exact_match"].as_f64().unwrap());
    }
}

/// A CoNLL file imported with `hone data import` trains a token classifier with `hone train
/// --dataset` (the task comes from the dataset), and `hone runs show` / `runs list` report
/// its entity scores.
#[test]
fn a_stored_conll_dataset_trains_a_token_classifier() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("ner.conll");
    synthetic_conll(&data);
    let db = dir.path().join("hone.db");
    let with_db = |args: &[&str]| {
        let mut cmd = hone();
        cmd.arg("--db").arg(&db).args(args);
        run(&mut cmd)
    };
    let i = with_db(&["data", "import", data.to_str().unwrap(), "--name", "ner"]);
    assert!(i.status.success(), "{}", stderr(&i));
    let model = support::fixture("tiny-bert");
    let t = with_db(&[
        "train",
        "--model",
        model.to_str().unwrap(),
        "--dataset",
        "ner",
        "--epochs",
        "3",
        "--lr",
        "5e-3",
        "--batch-size",
        "8",
    ]);
    assert!(t.status.success(), "{}", stderr(&t));
    let show = with_db(&["runs", "show", "1"]);
    let text = stdout(&show);
    assert!(
        text.contains("\"task\": \"token-classification\""),
        "{text}"
    );
    assert!(text.contains("entity F1") && text.contains("PER"), "{text}");
    let list = stdout(&with_db(&["runs", "list"]));
    let row = list
        .lines()
        .find(|l| l.trim_start().starts_with('1'))
        .unwrap_or_default();
    assert!(
        !row.contains('—'),
        "the F1 and accuracy columns are filled: {list}"
    );
}

/// Multi-task learning: one run trains a text classifier and an entity tagger on one encoder
/// (`--also`); each head's folder loads in transformers with the logits `hone predict`
/// printed, both hold the same encoder, the run's stored report has both tasks, and the
/// tagger learned its task.
#[test]
fn multi_task_heads_export_one_folder_each_that_transformers_loads() {
    let dir = tempfile::tempdir().unwrap();
    let conll = dir.path().join("ner.conll");
    synthetic_conll(&conll);
    let out = dir.path().join("multi");
    let db = dir.path().join("hone.db");
    let o = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["train", "--model"])
        .arg(support::fixture("tiny-bert"))
        .arg("--train")
        .arg(support::fixture("data/sst2_sample.tsv"))
        .arg("--also")
        .arg(format!("ner=token-classification:{}", conll.display()))
        .args(["--task-name", "sentiment", "--task-temperature", "2"])
        .args([
            "--epochs",
            "8",
            "--lr",
            "5e-3",
            "--batch-size",
            "8",
            "--out",
        ])
        .arg(&out));
    let log = format!("{}{}", stdout(&o), stderr(&o));
    assert!(o.status.success(), "{log}");
    assert!(log.contains("multi-task: 2 heads"), "{log}");
    assert!(log.contains("sentiment:") && log.contains("ner:"), "{log}");
    assert!(log.contains("ner head exported to"), "{log}");
    let (text_head, tag_head) = (out.join("sentiment"), out.join("ner"));
    let config = std::fs::read_to_string(text_head.join("config.json")).unwrap();
    assert!(config.contains("BertForSequenceClassification"), "{config}");
    let config = std::fs::read_to_string(tag_head.join("config.json")).unwrap();
    assert!(config.contains("BertForTokenClassification"), "{config}");

    // One encoder: every embedding and layer tensor is the same in both folders.
    let load = |d: &std::path::Path| {
        candle_core::safetensors::load(d.join("model.safetensors"), &candle_core::Device::Cpu)
            .unwrap()
    };
    let (a, b) = (load(&text_head), load(&tag_head));
    let shared: Vec<&String> = a
        .keys()
        .filter(|k| k.starts_with("bert.encoder.") || k.starts_with("bert.embeddings."))
        .collect();
    assert!(shared.len() > 10);
    for k in shared {
        let (x, y) = (a[k].flatten_all().unwrap(), b[k].flatten_all().unwrap());
        assert_eq!(
            x.to_vec1::<f32>().unwrap(),
            y.to_vec1::<f32>().unwrap(),
            "{k} differs between the heads"
        );
    }
    assert!(a.contains_key("classifier.weight") && b.contains_key("classifier.weight"));
    assert!(a.keys().chain(b.keys()).all(|k| !k.contains("::")));

    // Each head against transformers.
    classifier_matches_transformers(&text_head, None);
    tagger_matches_transformers(
        &tag_head,
        &[
            "Peter Blackburn visited Brussels on Monday.",
            "In Paris , Nokia hired Anna Smith .",
        ],
    );
    // The tagger learned its task.
    let e = run(hone()
        .args(["eval", "--model"])
        .arg(&tag_head)
        .arg("--data")
        .arg(&conll)
        .arg("--json"));
    assert!(e.status.success(), "{}", stderr(&e));
    let report: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
    assert!(report["entity_f1"].as_f64().unwrap() > 0.8, "{report}");

    // The run as stored: per-task metrics and the best report of both tasks.
    let show = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["runs", "show", "1", "--json"]));
    assert!(show.status.success(), "{}", stderr(&show));
    let shown = stdout(&show);
    assert!(
        shown.contains("eval_ner/entity_f1") && shown.contains("eval_sentiment/accuracy"),
        "{shown}"
    );
}

/// Greedy chat answers of `model` (`hone generate --chat --json`) are what transformers
/// (through PEFT for an adapter folder) reads from the folder: the same prompt tokens from the
/// chat template, and at each step Hone's token is transformers' most probable one
/// (tests/reference/check_causal_export.py).
fn generator_matches_transformers(model: &std::path::Path) {
    let g = run(hone()
        .args([
            "generate",
            "--chat",
            "--json",
            "--max-new-tokens",
            "12",
            "--model",
        ])
        .arg(model)
        .args([
            "what is two plus three ?",
            "what is four plus one ?",
            "hello",
        ]));
    assert!(g.status.success(), "{}", stderr(&g));
    let scratch = tempfile::tempdir().unwrap();
    let generations = scratch.path().join("generations.jsonl");
    std::fs::write(&generations, stdout(&g)).unwrap();
    let check = run(std::process::Command::new(reference_python())
        .arg(support::root().join("tests/reference/check_causal_export.py"))
        .arg(model)
        .arg(&generations)
        .args(["--chat", "--tolerance", "1e-4"]));
    let report = stdout(&check);
    assert!(
        check.status.success(),
        "{}: transformers disagrees:\n{report}\n{}",
        model.display(),
        stderr(&check)
    );
    assert_eq!(report.matches("ok ").count(), 3, "{report}");
}

/// Causal LMs: a fully fine-tuned Llama, a LoRA Qwen2 (every projection adapted, PEFT's
/// CAUSAL_LM adapter folder) and a prefix-tuned Llama (through PEFT's MLP reparameterisation;
/// the PREFIX_TUNING folder holds the table it makes) trained on
/// conversations generate in Hone what transformers (with PEFT) generates from the exported
/// folders; the LoRA adapter merged into a plain model too, and the prefix refuses to merge.
#[test]
fn causal_lm_exports_generate_as_in_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sums.jsonl");
    synthetic_conversations(&data);
    let targets = "q_proj,k_proj,v_proj,o_proj,gate_proj,up_proj,down_proj";
    for (name, family, extra) in [
        ("full", "llama", &[][..]),
        (
            "lora",
            "qwen2",
            &["--peft", "lora", "--lora-targets", targets][..],
        ),
        (
            "prefix",
            "llama",
            &[
                "--peft",
                "prefix",
                "--prefix-tokens",
                "5",
                "--prefix-projection",
                "16",
            ][..],
        ),
    ] {
        let out = dir.path().join(name);
        let o = run(hone()
            .args(["train", "--task", "causal-lm", "--model"])
            .arg(support::fixture(&format!("tiny-{family}")))
            .arg("--train")
            .arg(&data)
            .args([
                "--epochs",
                "3",
                "--batch-size",
                "8",
                "--max-length",
                "64",
                "--lr",
                "3e-3",
            ])
            .args(extra)
            .arg("--out")
            .arg(&out));
        assert!(o.status.success(), "{family}: {}", stderr(&o));
        let log = stdout(&o) + &stderr(&o);
        assert!(log.contains("perplexity"), "{family}: {log}");
        generator_matches_transformers(&out);
        if name == "prefix" {
            let config: serde_json::Value = serde_json::from_str(
                &std::fs::read_to_string(out.join("adapter_config.json")).unwrap(),
            )
            .unwrap();
            assert_eq!(config["peft_type"], "PREFIX_TUNING", "{config}");
            assert_eq!(config["prefix_projection"], true, "{config}");
            assert_eq!(config["encoder_hidden_size"], 16, "{config}");
            let m = run(hone()
                .args(["export", "--merge", "--model"])
                .arg(&out)
                .arg("--out")
                .arg(dir.path().join("prefix-merged")));
            assert!(!m.status.success());
            assert!(stderr(&m).contains("cannot be merged"), "{}", stderr(&m));
        } else if !extra.is_empty() {
            assert!(out.join("adapter_config.json").is_file());
            let merged = dir.path().join("merged");
            let m = run(hone()
                .args(["export", "--merge", "--model"])
                .arg(&out)
                .arg("--out")
                .arg(&merged));
            assert!(m.status.success(), "{}", stderr(&m));
            generator_matches_transformers(&merged);
        }
    }
}

/// Text-to-text (T5 v1.0 with a task prefix, and the v1.1 layout: its own `lm_head`, a
/// decoder deeper than the encoder): trained and exported by Hone, the folder loads in
/// transformers, whose greedy `generate` writes the tokens `hone generate` wrote
/// (tests/reference/check_t5_export.py); `hone eval` scores it with ROUGE.
#[test]
fn text_to_text_exports_generate_as_in_transformers() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("first-words.jsonl");
    let lines: String = SENTENCES
        .iter()
        .cycle()
        .take(64)
        .map(|s| {
            let first: Vec<&str> = s.split_whitespace().take(3).collect();
            format!(
                "{}\n",
                serde_json::json!({"document": s, "summary": first.join(" ")})
            )
        })
        .collect();
    std::fs::write(&data, lines).unwrap();
    for (family, prefix) in [("t5", "first words: "), ("t5-v1_1", "")] {
        let out = dir.path().join(family);
        let o = run(hone()
            .args(["train", "--task", "text2text", "--model"])
            .arg(support::fixture(&format!("tiny-{family}")))
            .arg("--train")
            .arg(&data)
            // v1.1 trains with label smoothing (transformers' label_smoothing_factor) and
            // keeps the checkpoint with the best validation ROUGE-L.
            .args(match family {
                "t5" => &[][..],
                _ => &[
                    "--label-smoothing",
                    "0.1",
                    "--early-stopping-metric",
                    "rouge_l",
                ][..],
            })
            .args([
                "--source-column",
                "document",
                "--target-column",
                "summary",
                "--source-prefix",
                prefix,
                "--epochs",
                "4",
                "--batch-size",
                "8",
                "--lr",
                "3e-3",
                "--out",
            ])
            .arg(&out));
        assert!(o.status.success(), "{family}: {}", stderr(&o));
        if family != "t5" {
            let card = std::fs::read_to_string(out.join("README.md")).unwrap();
            assert!(card.contains("label_smoothing = 0.1"), "{card}");
            assert!(
                card.contains("early_stopping_metric = \"rouge_l\""),
                "{card}"
            );
        }
        let g = run(hone()
            .args(["generate", "--json", "--max-new-tokens", "10", "--model"])
            .arg(&out)
            .args(&SENTENCES[..4]));
        assert!(g.status.success(), "{family}: {}", stderr(&g));
        let scratch = tempfile::tempdir().unwrap();
        let generations = scratch.path().join("generations.jsonl");
        std::fs::write(&generations, stdout(&g)).unwrap();
        let check = run(std::process::Command::new(reference_python())
            .arg(support::root().join("tests/reference/check_t5_export.py"))
            .arg(&out)
            .arg(&generations));
        assert!(
            check.status.success(),
            "{family}: {}\n{}",
            stdout(&check),
            stderr(&check)
        );
        let e = run(hone()
            .args(["eval", "--json", "--model"])
            .arg(&out)
            .arg("--data")
            .arg(&data)
            .args(["--source-column", "document", "--target-column", "summary"]));
        assert!(e.status.success(), "{family}: {}", stderr(&e));
        let report: serde_json::Value = serde_json::from_slice(&e.stdout).unwrap();
        for key in ["rouge1", "rouge2", "rougeL", "rougeLsum", "exact_match"] {
            let v = report[key].as_f64().unwrap_or(-1.0);
            assert!((0.0..=1.0).contains(&v), "{family}: {key} in {report}");
        }
        assert!(
            report["gen_len"].as_f64().unwrap_or(0.0) >= 1.0,
            "{family}: {report}"
        );
        assert_eq!(report["examples"], 64, "{family}: {report}");
    }
}
