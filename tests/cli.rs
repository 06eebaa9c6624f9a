//! `hone train`, `hone eval` and `hone predict` end to end through the binary: JSON events,
//! exported folders, reproducibility, and every kind of bad input giving a one-line error.

mod support;

use std::io::{BufRead, BufReader};
use std::process::Stdio;

use support::{fixture, hone, run, stderr, stdout, train_tiny};

fn events(out: &str) -> Vec<serde_json::Value> {
    out.lines()
        .map(|l| serde_json::from_str(l).unwrap_or_else(|e| panic!("not JSON ({e}): {l}")))
        .collect()
}

#[test]
fn train_emits_json_events_and_exports_a_model_that_predicts_and_evaluates() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("model");
    let o = train_tiny(
        "distilbert",
        "sst2_sample.tsv",
        &out,
        &["--json", "--eval-every", "3"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let ev = events(&stdout(&o));
    let kinds: Vec<&str> = ev.iter().map(|e| e["event"].as_str().unwrap()).collect();
    assert_eq!(kinds.first(), Some(&"run"));
    assert_eq!(kinds.get(1), Some(&"started"));
    assert_eq!(kinds.last(), Some(&"finished"));
    let steps = kinds.iter().filter(|k| **k == "step").count();
    assert_eq!(steps as u64, ev[1]["total_steps"].as_u64().unwrap());
    assert!(kinds.contains(&"evaluated"));
    for e in ev.iter().filter(|e| e["event"] == "step") {
        for key in ["loss", "lr", "grad_norm", "samples_per_s", "eta_s"] {
            assert!(e[key].is_number(), "step event lacks {key}: {e}");
        }
    }
    let finished = ev.last().unwrap();
    assert_eq!(finished["status"], "completed");
    assert!(finished["best"]["confusion_matrix"].is_array());
    for f in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
        "hone_run.json",
    ] {
        assert!(out.join(f).is_file(), "{f} missing from the export");
    }
    assert!(
        !out.join("checkpoints").exists(),
        "checkpoints are removed after a finished run"
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("config.json")).unwrap()).unwrap();
    assert_eq!(
        config["architectures"][0],
        "DistilBertForSequenceClassification"
    );
    assert_eq!(config["id2label"]["1"], "1");

    let p = run(hone()
        .arg("predict")
        .arg("--model")
        .arg(&out)
        .arg("--json")
        .args(["a fine film", "dreadful"]));
    assert!(p.status.success(), "{}", stderr(&p));
    let preds: Vec<serde_json::Value> = serde_json::from_str(&stdout(&p)).unwrap();
    assert_eq!(preds.len(), 2);
    let probs: f64 = preds[0]["probabilities"]
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_f64().unwrap())
        .sum();
    assert!((probs - 1.0).abs() < 1e-9);
    assert_eq!(preds[0]["logits"].as_array().unwrap().len(), 2);

    let e = run(hone()
        .arg("eval")
        .arg("--model")
        .arg(&out)
        .arg("--data")
        .arg(fixture("data/sst2_sample.tsv"))
        .args([
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--json",
        ]));
    assert!(e.status.success(), "{}", stderr(&e));
    let report: serde_json::Value = serde_json::from_str(&stdout(&e)).unwrap();
    for key in ["accuracy", "macro_f1", "per_class", "confusion_matrix"] {
        assert!(!report[key].is_null(), "eval --json lacks {key}");
    }
    let total: u64 = report["confusion_matrix"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|r| r.as_array().unwrap().iter().map(|v| v.as_u64().unwrap()))
        .sum();
    assert_eq!(total, 48);
}

#[test]
fn human_output_shows_progress_validation_and_truncation() {
    let dir = tempfile::tempdir().unwrap();
    let o = train_tiny(
        "bert",
        "sst2_sample.tsv",
        &dir.path().join("m"),
        &["--max-length", "8"],
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let err = stderr(&o);
    assert!(err.contains("were truncated"), "{err}");
    assert!(err.contains("validation: loss"), "{err}");
    assert!(err.contains("model exported to"), "{err}");
}

#[test]
fn the_same_seed_exports_identical_weights() {
    let dir = tempfile::tempdir().unwrap();
    let (a, b) = (dir.path().join("a"), dir.path().join("b"));
    for out in [&a, &b] {
        let o = train_tiny("roberta", "sst2_sample.tsv", out, &["--seed", "3"]);
        assert!(o.status.success(), "{}", stderr(&o));
    }
    assert_eq!(
        std::fs::read(a.join("model.safetensors")).unwrap(),
        std::fs::read(b.join("model.safetensors")).unwrap()
    );
}

#[test]
fn a_toml_run_file_works_and_flags_override_it() {
    let dir = tempfile::tempdir().unwrap();
    let toml = format!(
        "model = {:?}\nout = {:?}\n[data]\ntrain = {:?}\ntext_column = \"sentence\"\nlabel_column = \"label\"\n[training]\nepochs = 5\nbatch_size = 16\nmax_length = 32\n",
        fixture("tiny-bert"),
        dir.path().join("m"),
        fixture("data/sst2_sample.tsv")
    );
    let path = dir.path().join("run.toml");
    std::fs::write(&path, toml).unwrap();
    let o = run(hone()
        .arg("train")
        .arg("--config")
        .arg(&path)
        .args(["--epochs", "1", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let ev = events(&stdout(&o));
    assert_eq!(ev[1]["epochs"], 1);
    assert_eq!(
        ev[1]["total_steps"], 3,
        "44 training examples in batches of 16"
    );
}

/// A preset applies before the flags; the Kaggle multiple-choice recipe scales its learning
/// rate (2e-5 at batch 16) to the batch size the flags give, unless --lr is given.
#[test]
fn a_preset_sets_its_options_and_scales_its_rate_to_the_batch() {
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let data = dir.path().join("kind.jsonl");
    support::synthetic_choices(&data);
    let train = |extra: &[&str], out: &str| {
        let o = run(hone()
            .arg("--db")
            .arg(&db)
            .args(["train", "--task", "multiple-choice", "--model"])
            .arg(fixture("tiny-bert"))
            .arg("--train")
            .arg(&data)
            .args(["--question-column", "prompt", "--choices-column", "options"])
            .args(["--label-column", "answer", "--preset", "kaggle-mc"])
            .args(["--epochs", "1", "--batch-size", "8", "--out"])
            .arg(dir.path().join(out))
            .args(extra));
        assert!(o.status.success(), "{}", stderr(&o));
    };
    let config = |id: &str| -> serde_json::Value {
        let show = run(hone()
            .arg("--db")
            .arg(&db)
            .args(["runs", "show", id, "--json"]));
        let shown: serde_json::Value = serde_json::from_str(&stdout(&show)).unwrap();
        shown["run"]["config"]["training"].clone()
    };
    train(&[], "a");
    let t = config("1");
    assert!((t["lr"].as_f64().unwrap() - 1e-5).abs() < 1e-15, "{t}");
    assert_eq!(t["freeze_embeddings"], true, "{t}");
    assert_eq!(t["layer_lr_decay_shape"], "cosine", "{t}");
    assert_eq!(t["schedule"], "cosine", "{t}");
    assert_eq!(t["head_warmup_steps"], 50, "{t}");
    assert_eq!(t["early_stopping_metric"], "map_at_3", "{t}");
    // An explicit rate wins over the scaled one.
    train(&["--lr", "3e-5"], "b");
    assert!((config("2")["lr"].as_f64().unwrap() - 3e-5).abs() < 1e-15);
    fails_with(
        &["train", "--preset", "fast"],
        &["unknown preset 'fast'", "kaggle-mc"],
    );
}

/// Runs `hone` and checks it failed with one `error:` line (and at most a `hint:` line naming
/// the flag or command to use) containing every `needle` between them.
fn fails_with(args: &[&str], needles: &[&str]) {
    let o = run(hone().args(args));
    let err = stderr(&o);
    assert_eq!(
        o.status.code(),
        Some(1),
        "expected a clean failure, got {:?}: {err}",
        o.status
    );
    assert!(!err.contains("panicked"), "{err}");
    let mut lines: Vec<&str> = err.lines().filter(|l| !l.trim().is_empty()).collect();
    let hint = match lines.last() {
        Some(l) if l.starts_with("hint: ") => lines.pop().unwrap_or_default(),
        _ => "",
    };
    let last = lines.last().copied().unwrap_or("");
    assert!(last.starts_with("error: "), "{err}");
    let said = format!("{last}\n{hint}");
    for n in needles {
        assert!(said.contains(n), "'{n}' not in: {said}");
    }
}

fn tiny(family: &str) -> String {
    fixture(&format!("tiny-{family}")).display().to_string()
}

#[test]
fn bad_input_gives_one_line_errors_that_say_what_to_do() {
    let dir = tempfile::tempdir().unwrap();
    let d = |name: &str, text: &str| {
        let p = dir.path().join(name);
        std::fs::write(&p, text).unwrap();
        p.display().to_string()
    };
    let sst = fixture("data/sst2_sample.tsv").display().to_string();
    let out = dir.path().join("out").display().to_string();
    let base = |model: &str, train: &str| -> Vec<String> {
        [
            "train",
            "--model",
            model,
            "--train",
            train,
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--out",
            &out,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    };
    let call = |args: Vec<String>, extra: &[&str], needles: &[&str]| {
        let mut all: Vec<&str> = args.iter().map(String::as_str).collect();
        all.extend_from_slice(extra);
        fails_with(&all, needles);
    };

    // Missing flags, folders and files.
    fails_with(
        &["train", "--model", &tiny("bert")],
        &["missing --train", "--text-column", "--label-column"],
    );
    call(
        base("/no/such/model", &sst),
        &[],
        &[
            "/no/such/model",
            "no config.json",
            "hint: --model takes a folder",
        ],
    );
    call(
        base(&tiny("bert"), "/no/such/train.tsv"),
        &[],
        &["/no/such/train.tsv"],
    );
    // An architecture Hone cannot train.
    let gpt = dir.path().join("gpt2");
    std::fs::create_dir(&gpt).unwrap();
    std::fs::write(gpt.join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    call(
        base(&gpt.display().to_string(), &sst),
        &[],
        &["'gpt2'", "supported: bert", "distilbert", "roberta"],
    );
    // Malformed data, unknown columns, empty and unseen labels.
    let ragged = d("ragged.tsv", "sentence\tlabel\ngood\t1\nbad\t0\textra\n");
    call(base(&tiny("bert"), &ragged), &[], &["line 3", "3 fields"]);
    let other = d("other.tsv", "text\tlabel\nx\t1\n");
    call(
        base(&tiny("bert"), &other),
        &[],
        &[
            "no column named 'sentence'",
            "text, label",
            "as the text column",
            "hint: pass one of the file's columns to --text-column",
        ],
    );
    let empty_label = d("empty_label.tsv", "sentence\tlabel\na\t1\nb\t\nc\t0\n");
    call(
        base(&tiny("bert"), &empty_label),
        &[],
        &["line 3", "'label' value is empty"],
    );
    let unseen = d("valid.tsv", "sentence\tlabel\nfine\t1\nodd\t7\n");
    call(
        base(&tiny("bert"), &sst),
        &["--valid", &unseen],
        &["line 3", "label '7'", "known labels: 0, 1"],
    );
    let one_class = d("one.tsv", "sentence\tlabel\na\t1\nb\t1\n");
    call(base(&tiny("bert"), &one_class), &[], &["only one label"]);
    // Bad settings.
    call(base(&tiny("bert"), &sst), &["--lr=-1"], &["learning rate"]);
    call(
        base(&tiny("bert"), &sst),
        &["--max-length", "2"],
        &["too short"],
    );
    // Divergence.
    call(
        base(&tiny("bert"), &sst),
        &["--lr", "1e30", "--clip-norm", "0", "--warmup-ratio", "0"],
        &[
            "at step",
            "Lower the learning rate",
            "hint: pass a lower --lr",
        ],
    );
    // A device that was not compiled in.
    #[cfg(not(feature = "cuda"))]
    call(
        base(&tiny("bert"), &sst),
        &["--device", "cuda"],
        &["--features cuda"],
    );
    // Prediction with a model that has no classification head.
    let head_less = dir.path().join("base");
    std::fs::create_dir(&head_less).unwrap();
    std::fs::write(
        head_less.join("config.json"),
        std::fs::read_to_string(fixture("tiny-bert/config.json"))
            .unwrap()
            .replace("\"id2label\"", "\"unused_id2label\""),
    )
    .unwrap();
    fails_with(
        &[
            "predict",
            "--model",
            &head_less.display().to_string(),
            "hello",
        ],
        &["no classification head"],
    );
}

#[test]
fn ctrl_c_stops_after_the_current_step_and_keeps_the_best_checkpoint() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("m");
    let db = dir.path().join("hone.db");
    let mut child = hone()
        .arg("--db")
        .arg(&db)
        .arg("train")
        .arg("--model")
        .arg(fixture("tiny-bert"))
        .arg("--train")
        .arg(fixture("data/sst2_sample.tsv"))
        .args([
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--epochs",
            "10000",
            "--json",
        ])
        .arg("--out")
        .arg(&out)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let reader = BufReader::new(child.stdout.take().unwrap());
    let mut sent = false;
    let mut last = serde_json::Value::Null;
    let mut steps_after_signal = 0;
    for line in reader.lines() {
        let event: serde_json::Value = serde_json::from_str(&line.unwrap()).unwrap();
        if sent && event["event"] == "step" {
            steps_after_signal += 1;
        }
        if !sent && event["event"] == "evaluated" {
            let status = std::process::Command::new("kill")
                .args(["-INT", &child.id().to_string()])
                .status()
                .unwrap();
            assert!(status.success());
            sent = true;
        }
        last = event;
    }
    let status = child.wait().unwrap();
    let mut err = String::new();
    if let Some(mut e) = child.stderr.take() {
        use std::io::Read;
        let _ = e.read_to_string(&mut err);
    }
    assert_eq!(
        status.code(),
        Some(130),
        "stderr: {err}\nlast event: {last}"
    );
    // Events reach this pipe through a channel and a database commit each, so the trainer
    // can be a few (millisecond) steps ahead of the last event read when the signal is sent;
    // "no step starts after the cancel flag is raised" is checked exactly, without timing, by
    // the engine's `cancel_stops_before_the_next_step_and_saves_a_last_checkpoint`.
    assert!(
        steps_after_signal <= 5,
        "{steps_after_signal} steps ran after Ctrl-C"
    );
    assert_eq!(last["event"], "finished");
    assert_eq!(last["status"], "cancelled");
    assert!(last["best_step"].is_u64());
    assert!(out.join("model.safetensors").is_file());
    let show = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["runs", "show", "1", "--json"]));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&show)).unwrap();
    assert_eq!(shown["status"], "cancelled");
    let run_dir = std::path::PathBuf::from(shown["run"]["run_dir"].as_str().unwrap());
    assert!(run_dir
        .join("checkpoints/last/optimizer.safetensors")
        .is_file());
    assert!(run_dir.join("checkpoints/best/model.safetensors").is_file());
}

#[test]
fn bench_runs_on_a_tiny_model_with_and_without_a_batch_file() {
    let o = run(hone()
        .arg("bench")
        .arg("--model")
        .arg(fixture("tiny-bert"))
        .args([
            "--batch-size",
            "4",
            "--max-length",
            "16",
            "--steps",
            "2",
            "--warmup",
            "1",
            "--json",
        ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    assert_eq!(report["batch"], 4);
    assert_eq!(report["seq"], 16);
    for key in ["train_step", "forward_only"] {
        assert!(report[key]["median_s"].as_f64().unwrap() > 0.0, "{key}");
    }
    assert!(report["samples_per_s"].as_f64().unwrap() > 0.0);
    assert!(report["peak_rss_mib"].as_f64().unwrap() > 0.0);

    let dir = tempfile::tempdir().unwrap();
    let batch = dir.path().join("batch.json");
    std::fs::write(
        &batch,
        r#"{"input_ids": [[2, 40, 41, 3], [2, 50, 3, 0]], "token_type_ids": [[0, 0, 0, 0], [0, 0, 0, 0]],
            "attention_mask": [[1, 1, 1, 1], [1, 1, 1, 0]], "labels": [0, 1]}"#,
    )
    .unwrap();
    let o = run(hone()
        .arg("bench")
        .arg("--model")
        .arg(fixture("tiny-bert"))
        .arg("--batch-file")
        .arg(&batch)
        .args(["--steps", "1", "--warmup", "0"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(stdout(&o).contains("batch 2 x seq 4"), "{}", stdout(&o));
    std::fs::write(
        &batch,
        r#"{"input_ids": [[1, 2]], "attention_mask": [[1]], "labels": [0]}"#,
    )
    .unwrap();
    fails_with(
        &[
            "bench",
            "--model",
            &tiny("bert"),
            "--batch-file",
            &batch.display().to_string(),
        ],
        &["rectangular"],
    );
}

/// The fit check of a text-to-text model counts its targets: a longer target length keeps
/// more (the decoder's layers and the output layer run over it).
#[test]
fn the_fit_check_of_t5_takes_the_target_length() {
    let activations = |target: &str| {
        let o = run(hone()
            .args(["models", "check", &tiny("t5"), "--device", "cpu"])
            .args([
                "--batch-size",
                "8",
                "--max-length",
                "128",
                "--max-target-length",
                target,
                "--json",
            ]));
        assert!(o.status.success(), "{}", stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        r["fit"]["full"]["estimate"]["activations"]
            .as_u64()
            .unwrap()
    };
    let (short, long) = (activations("16"), activations("256"));
    assert!(long > 2 * short, "{short} -> {long}");
}

/// A decoder is timed and checked as a language model: every sequence full, every token
/// learned, on the CPU graph, candle's autograd graph with LoRA, and in `bench check`.
#[test]
fn bench_times_and_checks_a_language_model() {
    for extra in [&[][..], &["--autograd", "--lora-r", "4"][..]] {
        let o = run(hone()
            .args(["bench", "--model", &tiny("llama")])
            .args(["--batch-size", "2", "--max-length", "16", "--steps", "1"])
            .args(["--warmup", "0", "--json"])
            .args(extra));
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        let report: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(report["seq"], 16);
        assert_eq!(report["real_token_share"], 1.0, "{report}");
        assert_eq!(
            report["path"],
            if extra.is_empty() { "cpu" } else { "autograd" }
        );
        let loss = report["loss_first_last"][0].as_f64().unwrap();
        // A random model over its vocabulary: near ln(vocabulary).
        assert!(loss > 1.0 && loss.is_finite(), "{report}");
    }
    let check = |extra: &[&str]| {
        let o = run(hone()
            .args([
                "bench",
                "check",
                "--model",
                &tiny("qwen2"),
                "--device",
                "cpu",
            ])
            .args(["--batch-size", "2", "--max-length", "16", "--json"])
            .args(extra));
        assert!(o.status.success(), "{extra:?}: {}", stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(r["passed"], true, "{r}");
        r
    };
    let full = check(&[]);
    assert!(full["gradients"].as_u64().unwrap() > 20, "{full}");
    assert_eq!(full["lora_rank"], serde_json::Value::Null);
    // With LoRA only the adapters get gradients (an A and a B per query and value
    // projection of each layer), on the autograd graph as on the CPU graph, and the A
    // matrices get non-zero ones (the check gives B values).
    let lora = check(&["--lora-r", "4"]);
    assert_eq!(lora["lora_rank"], 4);
    let layers = std::fs::read_to_string(std::path::Path::new(&tiny("qwen2")).join("config.json"))
        .ok()
        .and_then(|c| serde_json::from_str::<serde_json::Value>(&c).ok())
        .and_then(|c| c["num_hidden_layers"].as_u64())
        .expect("the tiny Qwen2's config has its layer count");
    assert_eq!(lora["gradients"].as_u64(), Some(4 * layers), "{lora}");
    assert_eq!(lora["zero_gradients"], 0, "{lora}");
    assert!(
        lora["worst_gradient_error"].as_f64().unwrap() < 1e-3,
        "{lora}"
    );
}

#[test]
fn train_guesses_the_columns_of_a_file_and_says_which() {
    let dir = tempfile::tempdir().unwrap();
    let o = run(hone()
        .arg("train")
        .arg("--model")
        .arg(tiny("bert"))
        .arg("--train")
        .arg(fixture("data/pairs_sample.jsonl"))
        .arg("--out")
        .arg(dir.path().join("m"))
        .args(["--epochs", "1", "--batch-size", "8", "--max-length", "32"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("columns: text 'premise', pair 'hypothesis', label 'label' (guessed"),
        "{}",
        stderr(&o)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(dir.path().join("m/config.json")).unwrap())
            .unwrap();
    assert!(config["id2label"].is_object(), "{config}");
    // A file that is not there is named, not a missing flag.
    let missing = run(hone()
        .arg("train")
        .arg("--model")
        .arg(tiny("bert"))
        .arg("--train")
        .arg(dir.path().join("nope.tsv")));
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("nope.tsv: no such file"),
        "{}",
        stderr(&missing)
    );
}

/// Output into a closed pipe (`hone … | head`) ends `hone` quietly, not with a panic.
#[test]
fn a_closed_pipe_ends_the_output_without_a_panic() {
    let mut child = hone()
        .args(["predict", "--json", "--model"])
        .arg(fixture("tiny-bert"))
        .args(["a fine film", "a dull film"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    // The reader goes away while `hone` loads the model, before it prints.
    drop(child.stdout.take());
    let out = child.wait_with_output().unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(!err.contains("panicked"), "{err}");
    assert_ne!(out.status.code(), Some(101), "{err}");
}

#[test]
fn lr_find_sweeps_and_suggests_and_recipes_land_in_the_run_configuration() {
    let o = run(hone()
        .args(["lr-find", "--model"])
        .arg(fixture("tiny-bert"))
        .arg("--train")
        .arg(fixture("data/sst2_sample.tsv"))
        .args(["--batch-size", "8", "--steps", "30", "--start-lr", "1e-5"])
        .args(["--end-lr", "1e3", "--optimizer", "lamb", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let result: serde_json::Value = serde_json::from_str(stdout(&o).trim()).unwrap();
    let points = result["points"].as_array().unwrap();
    assert!(!points.is_empty() && points.len() <= 30);
    assert_eq!(result["diverged"], true, "{result}");
    assert!(result["suggested_lr"].as_f64().unwrap() > 0.0);

    // Every recipe flag is recorded where Runs can diff it; the teacher is the first run.
    let dir = tempfile::tempdir().unwrap();
    let db = dir.path().join("hone.db");
    let train = |extra: &[&str], out: &str| {
        run(hone()
            .arg("--db")
            .arg(&db)
            .args(["train", "--model"])
            .arg(fixture("tiny-bert"))
            .arg("--train")
            .arg(fixture("data/sst2_sample.tsv"))
            .args(["--epochs", "1", "--batch-size", "8", "--out"])
            .arg(dir.path().join(out))
            .args(extra))
    };
    let first = train(&[], "teacher");
    assert!(first.status.success(), "{}", stderr(&first));
    let o = train(
        &[
            "--teacher",
            "1",
            "--curriculum",
            "loss",
            "--optimizer",
            "sgd",
            "--nesterov",
            "--schedule",
            "one-cycle",
            "--gradual-unfreeze",
            "every=2",
            "--ewc-from",
            "1",
            "--ewc-samples",
            "8",
        ],
        "student",
    );
    assert!(o.status.success(), "{}", stderr(&o));
    let show = run(hone()
        .arg("--db")
        .arg(&db)
        .args(["runs", "show", "2", "--json"]));
    let shown: serde_json::Value = serde_json::from_str(&stdout(&show)).unwrap();
    let config = &shown["run"]["config"];
    assert_eq!(config["teacher"], "1", "{config}");
    assert_eq!(config["ewc"]["from"], "1", "{config}");
    let t = &config["training"];
    assert_eq!(t["curriculum"], "loss", "{t}");
    assert_eq!(t["optimizer"], "sgd", "{t}");
    assert_eq!(t["nesterov"], true, "{t}");
    assert_eq!(t["schedule"], "one_cycle", "{t}");
    assert_eq!(t["unfreeze_every_steps"], 2, "{t}");
    // A loss curriculum without a teacher says what it needs.
    let o = train(&["--curriculum", "loss"], "alone");
    assert!(!o.status.success());
    assert!(stderr(&o).contains("give a teacher"), "{}", stderr(&o));
}

/// A LoRA run continues an adapter PEFT saved (its own rank and targets), and what cannot work
/// is refused before training with what to do instead.
#[test]
fn lora_continues_a_peft_adapter_and_refuses_what_cannot_work() {
    let dir = tempfile::tempdir().unwrap();
    let sst = fixture("data/sst2_sample.tsv").display().to_string();
    let adapter = fixture("lora-bert").display().to_string();
    let out = dir.path().join("continued");
    let args = |model: &str, out: &str| -> Vec<String> {
        [
            "train",
            "--model",
            model,
            "--train",
            &sst,
            "--text-column",
            "sentence",
            "--label-column",
            "label",
            "--epochs",
            "1",
            "--batch-size",
            "8",
            "--max-length",
            "32",
            "--out",
            out,
        ]
        .map(String::from)
        .to_vec()
    };
    let o = run(hone()
        .args(args(&adapter, &out.display().to_string()))
        .args(["--peft", "lora", "--lora-r", "16"]));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stderr(&o).contains("continuing the adapter's LoRA (rank 4"),
        "{}",
        stderr(&o)
    );
    let config: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(out.join("adapter_config.json")).unwrap())
            .unwrap();
    assert_eq!(config["r"], 4, "{config}");
    let mut targets: Vec<&str> = config["target_modules"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|t| t.as_str())
        .collect();
    targets.sort();
    assert_eq!(targets, ["query", "value"], "PEFT keeps them as a set");
    let p = run(hone()
        .args(["predict", "--json", "--model"])
        .arg(&out)
        .arg("a fine film"));
    assert!(p.status.success(), "{}", stderr(&p));

    // The model check reads an adapter folder as its base, and says what the adapter is.
    let c = run(hone().args(["models", "check"]).arg(&out));
    assert!(c.status.success(), "{}", stderr(&c));
    assert!(
        stdout(&c).contains("It is a LoRA adapter (rank 4"),
        "{}",
        stdout(&c)
    );

    // Bottleneck adapters: Hone's own adapter folder, used as a model; merging is refused.
    let adapters = dir.path().join("adapters");
    let o = run(hone()
        .args(args(&tiny("distilbert"), &adapters.display().to_string()))
        .args([
            "--peft",
            "adapter",
            "--adapter-size",
            "8",
            "--adapter-placement",
            "pfeiffer",
        ]));
    assert!(o.status.success(), "{}", stderr(&o));
    let settings: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(adapters.join("hone_adapter.json")).unwrap())
            .unwrap();
    assert_eq!(settings["size"], 8, "{settings}");
    assert_eq!(settings["placement"], "pfeiffer", "{settings}");
    let p = run(hone()
        .args(["predict", "--json", "--model"])
        .arg(&adapters)
        .arg("a fine film"));
    assert!(p.status.success(), "{}", stderr(&p));
    fails_with(
        &[
            "export",
            "--merge",
            "--model",
            &adapters.display().to_string(),
            "--out",
            &dir.path().join("merged").display().to_string(),
        ],
        &["cannot be merged"],
    );

    let elsewhere = dir.path().join("x").display().to_string();
    let with = |model: &str, extra: &[&str]| -> Vec<String> {
        let mut a = args(model, &elsewhere);
        a.extend(extra.iter().map(|s| s.to_string()));
        a
    };
    let refused = |a: Vec<String>, needles: &[&str]| {
        fails_with(&a.iter().map(String::as_str).collect::<Vec<_>>(), needles)
    };
    refused(
        with(&adapter, &[]),
        &["is an adapter folder", "peft = lora", "hone export --merge"],
    );
    refused(
        with(
            &tiny("bert"),
            &["--peft", "lora", "--lora-targets", "query,qkv"],
        ),
        &["'qkv' matches no linear layer", "query", "value", "dense"],
    );
    refused(
        with(&tiny("bert"), &["--peft", "lora", "--lora-r", "0"]),
        &["rank must be at least 1"],
    );
    refused(
        with(&tiny("bert"), &["--peft", "lora", "--init", "random"]),
        &["adapt pretrained weights"],
    );
}

/// `hone bench --census` counts a step's backend operations (a GPU's kernel launches) per
/// phase: AdamW's in-place update is three a parameter, dropout draws its masks in its kernel
/// as on a GPU, and the census needs the autograd graph.
#[test]
fn bench_census_counts_a_steps_operations() {
    let args = [
        "bench",
        "--model",
        &tiny("bert"),
        "--batch-size",
        "4",
        "--max-length",
        "16",
        "--steps",
        "1",
        "--warmup",
        "0",
        "--census",
    ];
    let o = run(hone().args(args).args(["--autograd", "--json"]));
    assert!(o.status.success(), "{}", stderr(&o));
    let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
    let census = &r["census"];
    let launches = |phase: &str, op: &str| -> u64 {
        census["ops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["phase"] == phase && o["op"] == op)
            .map(|o| o["launches"].as_u64().unwrap())
            .sum()
    };
    for phase in ["forward", "backward", "optimizer", "evaluation"] {
        let rows: Vec<_> = census["ops"]
            .as_array()
            .unwrap()
            .iter()
            .filter(|o| o["phase"] == phase)
            .collect();
        assert!(!rows.is_empty(), "{phase}: {census}");
        assert!(
            rows.iter().all(|o| o["bytes"].as_u64().is_some()),
            "{census}"
        );
    }
    // Every parameter's AdamW update is one launch, the gradient norm another (a GPU's
    // multi-tensor kernels), counted as one on the CPU too; no per-tensor update is left.
    assert_eq!(launches("optimizer", "hone-adamw-multi"), 1, "{census}");
    assert_eq!(launches("optimizer", "hone-sums-of-squares-multi"), 1);
    for per_tensor in [
        "hone-adamw-apply",
        "hone-adam-moment",
        "hone-sum-of-squares",
    ] {
        assert_eq!(launches("optimizer", per_tensor), 0, "{census}");
    }
    assert!(launches("forward", "matmul") > 0 && launches("backward", "matmul") > 0);
    assert!(launches("forward", "hone-dropout") > 0, "{census}");
    assert_eq!(launches("evaluation", "hone-dropout"), 0);
    let o = run(hone().args(args).arg("--autograd"));
    assert!(o.status.success(), "{}", stderr(&o));
    assert!(
        stdout(&o).contains("launches a training step"),
        "{}",
        stdout(&o)
    );
    let o = run(hone().args(args));
    assert!(!o.status.success());
    assert!(stderr(&o).contains("--autograd"), "{}", stderr(&o));
}

/// `hone bench check` compares one training step on a device and precision with the CPU
/// (here the CPU's autograd graph against its fast graph, and bf16/fp16 against the autograd
/// graph in the same precision), `hone devices` lists what this build can train on, and a
/// mixed-precision run on the CPU trains and says that it runs the slower autograd graph.
#[test]
fn bench_check_devices_and_a_mixed_precision_run() {
    for precision in ["fp32", "bf16", "fp16"] {
        let o = run(hone().args([
            "bench",
            "check",
            "--model",
            &tiny("bert"),
            "--device",
            "cpu",
            "--precision",
            precision,
            "--batch-size",
            "4",
            "--max-length",
            "16",
            "--json",
        ]));
        assert!(o.status.success(), "{precision}: {}", stderr(&o));
        let r: serde_json::Value = serde_json::from_str(&stdout(&o)).unwrap();
        assert_eq!(r["precision"], precision);
        assert_eq!(r["passed"], true, "{r}");
        assert!(r["gradients"].as_u64().unwrap() > 30, "{r}");
        assert_eq!(r["update_error"], 0.0, "{r}");
        assert_eq!(r["norm_error"], 0.0, "{r}");
        assert_eq!(r["dropout_mismatches"], 0, "{r}");
        assert_eq!(r["attention_error"], 0.0, "{r}");
        assert_eq!(r["cross_entropy_error"], 0.0, "{r}");
        let (loss, fp32) = (
            r["loss_device"].as_f64().unwrap(),
            r["loss_fp32"].as_f64().unwrap(),
        );
        assert!((loss - fp32).abs() < 1e-2 * fp32, "{r}");
        let reference = r["reference"].as_str().unwrap();
        match precision {
            "fp32" => assert_eq!(reference, "the CPU graph in fp32"),
            _ => assert!(reference.contains("autograd graph in"), "{reference}"),
        }
    }
    let o = run(hone().arg("devices"));
    assert!(o.status.success(), "{}", stderr(&o));
    let out = stdout(&o);
    assert!(out.starts_with("cpu ") && out.contains("threads"), "{out}");
    let bf16 = hone_app::types::Precision::Bf16.runs_on_cpu_graph();
    assert_eq!(out.contains("bf16 products (AVX512-BF16)"), bf16, "{out}");
    assert!(out.contains("GiB RAM"), "{out}");

    // The fit check judges the device it is told: the RAM for the CPU, and a GPU this build
    // cannot reach does not fit, saying why.
    let fit = |device: &str| {
        let o = run(hone()
            .args(["models", "check", &tiny("bert"), "--device"])
            .arg(device));
        assert!(o.status.success(), "{device}: {}", stderr(&o));
        stdout(&o)
    };
    let out = fit("cpu");
    assert!(out.contains("tokens, against RAM ("), "{out}");
    if !cfg!(feature = "cuda") {
        let out = fit("cuda:3");
        assert!(
            out.contains("against cuda:3: this build of Hone has no CUDA support:"),
            "{out}"
        );
        assert!(out.contains("does not fit"), "{out}");
    }

    // fp16 runs candle's autograd graph on the CPU and says so; bf16 runs the CPU graph where
    // the CPU has AVX512-BF16 (bf16 operands, f32 sums), saying nothing, else as fp16 does.
    let dir = tempfile::tempdir().unwrap();
    let bf16_on_cpu_graph = hone_app::types::Precision::Bf16.runs_on_cpu_graph();
    for precision in ["fp16", "bf16"] {
        let o = train_tiny(
            "bert",
            "sst2_sample.tsv",
            &dir.path().join(precision),
            &["--max-length", "16", "--precision", precision],
        );
        assert!(o.status.success(), "{precision}: {}", stderr(&o));
        let err = stderr(&o);
        let notice = format!("{precision} on the CPU runs candle's autograd graph");
        let expected = precision == "fp16" || !bf16_on_cpu_graph;
        assert_eq!(err.contains(&notice), expected, "{precision}: {err}");
        assert!(err.contains("model exported to"), "{precision}: {err}");
    }
    let o = run(hone().args(["train", "--model", &tiny("bert"), "--precision", "fp8"]));
    assert!(!o.status.success());
    assert!(
        stderr(&o).contains("unknown precision 'fp8': use fp32, bf16 or fp16"),
        "{}",
        stderr(&o)
    );
}
