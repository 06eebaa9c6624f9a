//! The desktop commands through Tauri's real dispatch path (`tauri::test::mock_builder` with
//! the app's own context, so the capability file is enforced; no display): dialogs, datasets,
//! the Hub against a local server, training with its event channel, runs, the playground and
//! export.

use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use hone_desktop::state::DesktopState;
use hone_hub::{HubClient, HubConfig};
use hone_hub_testserver::{Repo, TestHub};
use serde_json::{json, Value};
use tauri::ipc::{CallbackFn, InvokeBody};
use tauri::test::{get_ipc_response, mock_builder, MockRuntime, INVOKE_KEY};
use tauri::webview::InvokeRequest;
use tauri::{Manager, WebviewWindow};

fn fixture(rel: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("../tests/fixtures")
        .join(rel)
}

struct Window {
    app: tauri::App<MockRuntime>,
    webview: WebviewWindow<MockRuntime>,
}

fn window(db: &Path, hub_url: &str, cache: &Path, picks: Vec<PathBuf>) -> Window {
    let hub = HubClient::new(HubConfig {
        endpoint: hub_url.to_string(),
        cache_dir: cache.to_path_buf(),
        token: None,
        offline: false,
        max_attempts: 2,
        backoff: Duration::from_millis(1),
        max_backoff: Duration::from_millis(5),
        stall_timeout: Duration::from_secs(10),
    });
    let state = DesktopState::scripted(db.to_path_buf(), hub, picks);
    let app = hone_desktop::with_commands(mock_builder(), state)
        .build(tauri::generate_context!())
        .expect("app");
    let webview = tauri::WebviewWindowBuilder::new(&app, "main", Default::default())
        .build()
        .expect("window");
    Window { app, webview }
}

impl Window {
    fn call(&self, cmd: &str, args: Value) -> Result<Value, Value> {
        get_ipc_response(
            &self.webview,
            InvokeRequest {
                cmd: cmd.into(),
                callback: CallbackFn(0),
                error: CallbackFn(1),
                url: "tauri://localhost".parse().expect("url"),
                body: InvokeBody::Json(args),
                headers: Default::default(),
                invoke_key: INVOKE_KEY.to_string(),
            },
        )
        .map(|body| body.deserialize::<Value>().expect("json"))
    }

    fn state(&self) -> Arc<DesktopState> {
        self.app.state::<Arc<DesktopState>>().inner().clone()
    }

    /// Starts a run of tiny-bert on the stored sst2 dataset with `training`; its events go to
    /// channel `channel`.
    fn start_run(&self, training: Value, name: Option<&str>, channel: u32) -> i64 {
        let config = json!({
            "model": "hone-test/tiny-bert",
            "data": {"dataset": "sst2"},
            "training": training,
        });
        self.ok(
            "train_start",
            json!({"config": config, "name": name, "onEvent": format!("__CHANNEL__:{channel}")}),
        )
        .as_i64()
        .expect("run id")
    }

    fn ok(&self, cmd: &str, args: Value) -> Value {
        self.call(cmd, args)
            .unwrap_or_else(|e| panic!("{cmd} failed: {e}"))
    }
}

#[test]
fn the_whole_workflow_through_the_commands() {
    let tmp = tempfile::tempdir().expect("tmp");
    let db = tmp.path().join("data/hone.db");
    let exports = tmp.path().join("exports");
    std::fs::create_dir_all(&exports).expect("mkdir");
    let hub = TestHub::start(vec![Repo::from_dir(
        "hone-test/tiny-bert",
        &fixture("tiny-bert"),
    )
    .expect("fixture")
    .task("fill-mask")])
    .expect("server");
    let data = fixture("data/sst2_sample.tsv");
    let w = window(
        &db,
        &hub.url(),
        &tmp.path().join("hf"),
        vec![data.clone(), exports.clone()],
    );

    let info = w.ok("app_info", json!({}));
    assert_eq!(info["runs"], 0);
    assert!(info["machine"]["ram_total"].as_u64().unwrap_or(0) > 0);

    // A run whose process died (a CLI run killed while the window is open) is marked
    // interrupted by whichever command opens the database next, and the Start page hears of it.
    let dead_pid = {
        let mut child = std::process::Command::new("true").spawn().expect("spawn");
        let pid = child.id();
        child.wait().expect("wait");
        i64::from(pid)
    };
    // A run recorded as running in process `pid`, as another process would have started it.
    let running_run = |name: &str, pid: i64| {
        let mut store = hone_store::Store::open(&db).expect("store");
        let id = store
            .create_run(&hone_store::NewRun {
                name: Some(name.into()),
                config: json!({}),
                dataset_id: None,
                split_id: None,
                model_fingerprint: None,
                dataset_fingerprint: None,
                hardware: json!({}),
                run_dir: tmp.path().join(name).display().to_string(),
            })
            .expect("run");
        store.start_run(id, pid, None, 10).expect("start");
        id
    };
    let dead_run = running_run("killed", dead_pid);
    w.ok("datasets_list", json!({}));
    let info = w.ok("app_info", json!({}));
    assert_eq!(info["recovered"], json!([dead_run]), "{info}");
    let killed = w.ok("run_show", json!({"id": dead_run}));
    assert_eq!(killed["run"]["status"], "interrupted");
    w.ok("run_delete", json!({"id": dead_run}));

    // A run another process trains (this test's own process keeps it alive): the window asks
    // it to stop through the database; tags and notes are checked and kept.
    let other = running_run("from-the-command-line", i64::from(std::process::id()));
    let mut store = hone_store::Store::open(&db).expect("store");
    w.ok("run_request_stop", json!({"id": other}));
    let shown = w.ok("run_show", json!({"id": other}));
    assert_eq!(shown["run"]["cancel_requested"], true, "{shown}");
    let annotated = w.ok(
        "run_annotate",
        json!({"id": other, "add": [" sweep ", "Sweep", "seed 1"], "notes": "checking"}),
    );
    assert_eq!(annotated["tags"], json!(["sweep", "seed 1"]));
    assert_eq!(annotated["notes"], "checking");
    let removed = w.ok("run_annotate", json!({"id": other, "remove": ["SWEEP"]}));
    assert_eq!(removed["tags"], json!(["seed 1"]));
    // Nothing is written unless all of it is valid.
    let comma = w
        .call(
            "run_annotate",
            json!({"id": other, "add": ["a,b"], "notes": "not saved"}),
        )
        .expect_err("a comma in a tag");
    assert!(comma.to_string().contains("comma"), "{comma}");
    let kept = w.ok("run_show", json!({"id": other}));
    assert_eq!(kept["run"]["notes"], "checking");
    store
        .finish_run(other, hone_store::RunStatus::Cancelled, None, None)
        .expect("finish");
    let stopped = w
        .call("run_request_stop", json!({"id": other}))
        .expect_err("not running");
    assert!(stopped.to_string().contains("not running"), "{stopped}");
    w.ok("run_delete", json!({"id": other}));
    drop(store);

    // Commands outside Hone's own are refused (the dialog plugin is only used from Rust).
    let denied = w
        .call("plugin:dialog|open", json!({"options": {}}))
        .expect_err("not allowed");
    assert!(denied.to_string().contains("not allowed"), "{denied}");

    // A path that was not picked is refused.
    let refused = w
        .call("dataset_preview", json!({"path": data}))
        .expect_err("not picked");
    assert_eq!(refused["kind"], "not_picked");

    // Pick, preview (nothing written), import.
    let picked = w.ok("pick_path", json!({"kind": "data_file"}));
    assert_eq!(picked, json!(data));
    let preview = w.ok("dataset_preview", json!({"path": data}));
    assert_eq!(preview["spec"]["text"], "sentence");
    assert_eq!(preview["spec"]["label"], "label");
    assert!(w
        .ok("datasets_list", json!({}))
        .as_array()
        .expect("list")
        .is_empty());
    let summary = w.ok(
        "dataset_import",
        json!({"path": data, "name": "sst2", "spec": preview["spec"], "onProgress": "__CHANNEL__:7"}),
    );
    let rows = summary["dataset"]["rows"].as_i64().expect("rows");
    assert!(rows > 20);
    // Messages in the window speak of its controls, not of command-line flags.
    let twice = w
        .call(
            "dataset_import",
            json!({"path": data, "name": "sst2", "spec": preview["spec"], "onProgress": "__CHANNEL__:7"}),
        )
        .expect_err("the name is taken");
    let message = twice["message"].as_str().unwrap_or("");
    assert!(message.contains("choose another name"), "{message}");
    assert!(!message.contains("--"), "{message}");

    // Label an example, then undo it.
    let page = w.ok(
        "dataset_examples",
        json!({"name": "sst2", "query": {"limit": 1}}),
    );
    let example = page["examples"][0]["id"].as_i64().expect("id");
    w.ok(
        "example_set_label",
        json!({"exampleId": example, "label": null}),
    );
    let unlabeled = w.ok(
        "dataset_examples",
        json!({"name": "sst2", "query": {"labeled": false}}),
    );
    assert_eq!(unlabeled["examples"].as_array().map(Vec::len), Some(1));
    assert_eq!(unlabeled["total"], 1);
    // Browsing pages through every row: the last page of 20 and the count of all rows.
    let all = w.ok(
        "dataset_examples",
        json!({"name": "sst2", "query": {"limit": 20}}),
    );
    let rows = all["total"].as_i64().expect("total");
    assert_eq!(rows, all["dataset"]["rows"].as_i64().expect("rows"));
    let last = w.ok(
        "dataset_examples",
        json!({"name": "sst2", "query": {"limit": 20, "offset": (rows - 1) / 20 * 20}}),
    );
    let on_last = (rows - 1) % 20 + 1;
    assert_eq!(
        last["examples"].as_array().map(Vec::len),
        Some(on_last as usize)
    );
    assert_eq!(last["total"], rows);
    w.ok(
        "example_set_label",
        json!({"exampleId": example, "label": "1"}),
    );

    // Entities: a CoNLL file; tags must match the tokens one for one.
    let conll = tmp.path().join("ner.conll");
    std::fs::write(
        &conll,
        "EU B-ORG\nrejects O\nGerman B-MISC\ncall O\n\nPeter B-PER\nBlackburn I-PER\n",
    )
    .expect("write");
    let w2 = window(
        &tmp.path().join("data2/hone.db"),
        &hub.url(),
        &tmp.path().join("hf"),
        vec![conll.clone()],
    );
    w2.ok("pick_path", json!({"kind": "data_file"}));
    let preview = w2.ok("dataset_preview", json!({"path": conll}));
    w2.ok("dataset_import", json!({"path": conll, "name": "ner", "spec": preview["spec"], "onProgress": "__CHANNEL__:3"}));
    let page = w2.ok("dataset_examples", json!({"name": "ner", "query": {}}));
    assert_eq!(page["dataset"]["task"], "token_classification");
    let sentence = &page["examples"][1];
    assert_eq!(sentence["tokens"], json!(["Peter", "Blackburn"]));
    let id = sentence["id"].as_i64().expect("id");
    let wrong = w2
        .call(
            "example_set_label",
            json!({"exampleId": id, "label": ["B-PER"]}),
        )
        .expect_err("one tag for two tokens");
    assert!(
        wrong["message"]
            .as_str()
            .unwrap_or("")
            .contains("2 tokens but 1 tags"),
        "{wrong}"
    );
    let class = w2
        .call(
            "example_set_label",
            json!({"exampleId": id, "label": "PER"}),
        )
        .expect_err("a class on tokens");
    assert!(
        class["message"]
            .as_str()
            .unwrap_or("")
            .contains("one tag per token"),
        "{class}"
    );
    w2.ok(
        "example_set_label",
        json!({"exampleId": id, "label": ["B-LOC", "I-LOC"]}),
    );
    let page = w2.ok("dataset_examples", json!({"name": "ner", "query": {}}));
    assert_eq!(page["examples"][1]["label"], json!(["B-LOC", "I-LOC"]));

    // The Hub: search, info with the fit verdict, download into the cache.
    let found = w.ok(
        "hub_search",
        json!({"query": {"text": "tiny", "sort": "downloads", "limit": 10}, "next": null}),
    );
    assert_eq!(found["models"][0]["id"], "hone-test/tiny-bert");
    assert_eq!(found["models"][0]["family"], "BERT");
    let model = w.ok(
        "hub_info",
        json!({"repo": "hone-test/tiny-bert", "settings": {"batch_size": 8, "max_length": 32}}),
    );
    assert_eq!(model["check"]["trainable"], true);
    assert_eq!(model["check"]["fit"]["full"]["verdict"], "fits");
    w.ok(
        "hub_download",
        json!({"repo": "hone-test/tiny-bert", "onEvent": "__CHANNEL__:8"}),
    );
    let models = w.ok("models_list", json!({}));
    assert_eq!(models[0]["reference"], "hone-test/tiny-bert");

    // Train by repo id on the stored dataset; events go to a channel; poll the run.
    let id = w.start_run(
        json!({"epochs": 2, "batch_size": 8, "max_length": 32, "lr": 1e-3}),
        Some("first"),
        9,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    let run = loop {
        let detail = w.ok("run_show", json!({"id": id}));
        let status = detail["run"]["status"].as_str().unwrap_or("").to_string();
        if !detail["live"].as_bool().unwrap_or(true) && status != "running" && status != "queued" {
            break detail;
        }
        assert!(
            Instant::now() < deadline,
            "the run did not finish: {detail}"
        );
        std::thread::sleep(Duration::from_millis(100));
    };
    assert_eq!(run["run"]["status"], "completed", "{run}");
    assert!(run["metrics"]
        .as_array()
        .is_some_and(|m| m.iter().any(|r| r["name"] == "loss")));

    // A second run, then compare.
    let id2 = w.start_run(
        json!({"epochs": 1, "batch_size": 8, "max_length": 32, "lr": 5e-4}),
        None,
        10,
    );
    while w.ok("run_show", json!({"id": id2}))["live"] == json!(true) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let diff = w.ok("runs_compare", json!({"a": id, "b": id2}));
    let keys: Vec<&str> = diff["config_diff"]
        .as_array()
        .expect("diff")
        .iter()
        .filter_map(|d| d[0].as_str())
        .collect();
    assert!(
        keys.contains(&"training.lr") && keys.contains(&"training.epochs"),
        "{keys:?}"
    );

    // Model help: two examples lose their labels; the newest run pre-labels them, least sure
    // first; the next round trains on the rest and joins the labels-vs-score curve.
    let first_two: Vec<i64> = w.ok(
        "dataset_examples",
        json!({"name": "sst2", "query": {"limit": 2}}),
    )["examples"]
        .as_array()
        .expect("examples")
        .iter()
        .map(|e| e["id"].as_i64().expect("id"))
        .collect();
    let mut old_labels = Vec::new();
    for (k, &example) in first_two.iter().enumerate() {
        old_labels.push(
            w.ok(
                "dataset_examples",
                json!({"name": "sst2", "query": {"limit": 2}}),
            )["examples"][k]["label"]
                .clone(),
        );
        w.ok(
            "example_set_label",
            json!({"exampleId": example, "label": null}),
        );
    }
    let queue = w.ok(
        "labeling_suggest",
        json!({"dataset": "sst2", "runId": id2, "strategy": "entropy", "pool": null, "onProgress": "__CHANNEL__:11"}),
    );
    assert_eq!(queue["unlabeled"], 2, "{queue}");
    let suggestions = queue["suggestions"].as_array().expect("suggestions");
    assert_eq!(suggestions.len(), 2);
    assert!(suggestions[0]["uncertainty"].as_f64() >= suggestions[1]["uncertainty"].as_f64());
    for s in suggestions {
        assert!(
            ["0", "1"].contains(&s["label"].as_str().unwrap_or("")),
            "{s}"
        );
    }
    assert_eq!(
        w.ok("labeling_cancel", json!({})),
        json!(false),
        "nothing is being scored"
    );
    let curve = w.ok("labeling_curve", json!({"dataset": "sst2"}));
    assert_eq!(curve.as_array().map(Vec::len), Some(2), "{curve}");
    let round = w
        .ok(
            "labeling_next_round",
            json!({"runId": id2, "dataset": "sst2", "onEvent": "__CHANNEL__:12"}),
        )
        .as_i64()
        .expect("run id");
    while w.ok("run_show", json!({"id": round}))["live"] == json!(true) {
        std::thread::sleep(Duration::from_millis(100));
    }
    let shown = w.ok("run_show", json!({"id": round}));
    assert_eq!(shown["run"]["status"], "completed", "{shown}");
    assert_eq!(shown["run"]["final_metrics"]["labeled_examples"], 46);
    assert!(
        shown["run"]["config"]["model"].as_str().is_some_and(|m| m
            .contains(&format!("runs/{id2}/"))
            || m.contains(&format!("runs\\{id2}\\"))),
        "the round continues from run {id2}'s model: {}",
        shown["run"]["config"]["model"]
    );
    let curve = w.ok("labeling_curve", json!({"dataset": "sst2"}));
    let labels: Vec<i64> = curve
        .as_array()
        .expect("curve")
        .iter()
        .map(|p| p["labels"].as_i64().expect("labels"))
        .collect();
    assert_eq!(labels, [46, 48, 48], "{curve}");
    for (&example, label) in first_two.iter().zip(old_labels) {
        w.ok(
            "example_set_label",
            json!({"exampleId": example, "label": label}),
        );
    }

    // The window cannot point a run at files nobody picked: no `out`, no unknown model folder.
    let outside = tmp.path().join("elsewhere");
    for (config, kind) in [
        (
            json!({"model": "hone-test/tiny-bert", "data": {"dataset": "sst2"}, "out": outside}),
            "invalid",
        ),
        (
            json!({"model": tmp.path().join("hf"), "data": {"dataset": "sst2"}}),
            "not_picked",
        ),
    ] {
        let refused = w
            .call(
                "train_start",
                json!({"config": config, "name": null, "onEvent": "__CHANNEL__:13"}),
            )
            .expect_err("refused");
        assert_eq!(refused["kind"], kind, "{refused}");
    }
    assert!(!outside.exists());
    // Compute targets: none configured; submitting to one that does not exist says so and
    // leaves no run waiting for ever.
    assert_eq!(w.ok("targets_list", json!({})), json!([]));
    let runs_before = w.ok("runs_list", json!({})).as_array().map(Vec::len);
    let refused = w
        .call(
            "train_submit",
            json!({"config": {"model": "hone-test/tiny-bert", "data": {"dataset": "sst2"}},
                "name": null, "target": "nowhere"}),
        )
        .expect_err("no such target");
    assert!(
        refused["message"]
            .as_str()
            .unwrap_or("")
            .contains("no compute target named 'nowhere'"),
        "{refused}"
    );
    assert_eq!(
        w.ok("runs_list", json!({})).as_array().map(Vec::len),
        runs_before
    );
    let unknown = w
        .call(
            "model_check",
            json!({"reference": tmp.path().join("hf"), "settings": null}),
        )
        .expect_err("not a known model");
    assert_eq!(unknown["kind"], "not_picked");

    // A LoRA run (exported below as its adapter and as a merged model).
    let lora = w.start_run(
        json!({"epochs": 1, "batch_size": 8, "max_length": 32, "lr": 5e-3, "peft": "lora", "lora_r": 4}),
        Some("lora"),
        14,
    );
    let deadline = Instant::now() + Duration::from_secs(120);
    loop {
        let detail = w.ok("run_show", json!({"id": lora}));
        let status = detail["run"]["status"].as_str().unwrap_or("").to_string();
        if !detail["live"].as_bool().unwrap_or(true) && status != "running" && status != "queued" {
            assert_eq!(status, "completed", "{detail}");
            break;
        }
        assert!(
            Instant::now() < deadline,
            "the LoRA run did not finish: {detail}"
        );
        std::thread::sleep(Duration::from_millis(100));
    }

    // Quitting mid-run: the window's close handler stops the run cleanly (cancelled, so it
    // stays resumable) and waits for it.
    let id3 = w.start_run(
        json!({"epochs": 500, "batch_size": 8, "max_length": 32, "lr": 5e-4}),
        Some("long"),
        11,
    );
    let state = w.state();
    assert_eq!(state.work_in_progress().as_deref(), Some("a training run"));
    let deadline = Instant::now() + Duration::from_secs(60);
    while w.ok("run_show", json!({"id": id3}))["metrics"]
        .as_array()
        .is_none_or(|m| m.is_empty())
    {
        assert!(Instant::now() < deadline, "the long run never stepped");
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        state.stop_all(Duration::from_secs(60)),
        "the run did not stop"
    );
    assert_eq!(state.work_in_progress(), None);
    let stopped = w.ok("run_show", json!({"id": id3}));
    assert_eq!(stopped["run"]["status"], "cancelled", "{stopped}");
    assert_eq!(stopped["live"], json!(false));
    // Once quitting, nothing new starts.
    let late = w
        .call(
            "train_resume",
            json!({"runId": id3, "onEvent": "__CHANNEL__:12"}),
        )
        .expect_err("quitting");
    assert_eq!(late["kind"], "busy", "{late}");

    // Playground and export into a picked folder.
    let predictions = w.ok(
        "predict",
        json!({"runId": id, "texts": ["a gorgeous film", "", "a dull mess"]}),
    );
    assert_eq!(
        predictions["task"], "sequence-classification",
        "{predictions}"
    );
    assert_eq!(predictions["predictions"].as_array().map(Vec::len), Some(2));
    // The Playground's int8 box: the same classes' probabilities, a little different.
    let int8 = w.ok(
        "predict",
        json!({"runId": id, "texts": ["a gorgeous film", "", "a dull mess"], "int8": true}),
    );
    let probabilities = |p: &serde_json::Value| -> Vec<f64> {
        p["predictions"]
            .as_array()
            .into_iter()
            .flatten()
            .flat_map(|row| row["probabilities"].as_array().cloned().unwrap_or_default())
            .filter_map(|v| v.as_f64())
            .collect()
    };
    let (float, quantized) = (probabilities(&predictions), probabilities(&int8));
    assert_eq!(float.len(), quantized.len(), "{int8}");
    assert!(
        float
            .iter()
            .zip(&quantized)
            .all(|(a, b)| (a - b).abs() < 0.05),
        "{predictions} vs {int8}"
    );
    // Behavioral tests (the run page's Test section): the starter suite for the model's
    // classes, run on the run's held-out examples with a slice; bad slices and suites are
    // refused with what to write.
    let suite = w.ok("behavior_starter", json!({"runId": id}));
    let suite = suite.as_str().expect("a suite").to_string();
    assert!(suite.contains("kind = \"invariance\""), "{suite}");
    let report = w.ok(
        "behavior_run",
        json!({"runId": id, "suite": suite, "slices": ["short=^\\S+( \\S+){0,5}$", " "]}),
    );
    assert!(
        report["tests"].as_array().is_some_and(|t| !t.is_empty()),
        "{report}"
    );
    assert!(report["robustness"].is_number(), "{report}");
    assert_eq!(report["slices"][0]["name"], "all", "{report}");
    assert_eq!(report["slices"][1]["name"], "short", "{report}");
    for (slices, suite, says) in [
        (json!(["nameless"]), suite.as_str(), "NAME=REGEX"),
        (json!([]), "[[test]", "not a test suite"),
    ] {
        let refused = w
            .call(
                "behavior_run",
                json!({"runId": id, "suite": suite, "slices": slices}),
            )
            .expect_err("refused");
        assert!(
            refused["message"]
                .as_str()
                .unwrap_or_default()
                .contains(says),
            "{refused}"
        );
    }
    // A text classifier ranks no options; a file nobody picked is not read for questions.
    let no_options = w
        .call(
            "predict_choices",
            json!({"runId": id, "question": "q", "context": null, "options": ["a", "b"]}),
        )
        .expect_err("a classifier");
    assert!(
        no_options["message"]
            .as_str()
            .unwrap_or_default()
            .contains("multiple-choice models"),
        "{no_options}"
    );
    // …nor answers a question from a passage.
    let no_passage = w
        .call(
            "predict_answer",
            json!({"runId": id, "question": "who?", "context": "Ann ran."}),
        )
        .expect_err("a classifier");
    assert!(
        no_passage["message"]
            .as_str()
            .unwrap_or_default()
            .contains("question-answering models"),
        "{no_passage}"
    );
    let not_a_language_model = w
        .call(
            "chat",
            json!({"runId": id, "messages": [{"role": "user", "content": "hi"}],
                   "onEvent": "__CHANNEL__:41"}),
        )
        .expect_err("a classifier");
    assert!(
        not_a_language_model["message"]
            .as_str()
            .unwrap_or_default()
            .contains("causal LM"),
        "{not_a_language_model}"
    );
    assert_eq!(
        w.ok("chat_stop", json!({})),
        json!(false),
        "nothing to stop"
    );
    let unpicked = w
        .call(
            "conversation_preview",
            json!({"path": "/etc/passwd", "model": null}),
        )
        .expect_err("not picked");
    assert_eq!(unpicked["kind"], "not_picked", "{unpicked}");
    let unpicked = w
        .call(
            "answer_preview",
            json!({"path": "/etc/passwd", "model": null, "maxLength": 64, "stride": 16}),
        )
        .expect_err("not picked");
    assert_eq!(unpicked["kind"], "not_picked", "{unpicked}");
    let unpicked = w
        .call(
            "choice_preview",
            json!({"path": "/etc/passwd", "columns": {"question": "q", "choices": ["a", "b"]}, "model": null, "maxLength": 64}),
        )
        .expect_err("not picked");
    assert_eq!(unpicked["kind"], "not_picked", "{unpicked}");
    // The presets come from Rust too; the multiple-choice recipe scales its rate.
    let presets = w.ok("training_presets", json!({}));
    let kaggle = presets
        .as_array()
        .and_then(|p| p.iter().find(|p| p["key"] == "kaggle-mc"))
        .expect("kaggle-mc");
    assert_eq!(kaggle["lr_scaling"]["reference_batch"], 16, "{kaggle}");
    // The Train form's options come from the run configuration type.
    let options = w.ok("training_options", json!({}));
    let lr = options
        .as_array()
        .and_then(|o| o.iter().find(|o| o["key"] == "lr"))
        .expect("lr");
    assert_eq!(lr["default"], json!(5e-5), "{lr}");
    assert!(lr["help"]
        .as_str()
        .unwrap_or_default()
        .contains("learning rate"));
    let refused = w
        .call(
            "export_run",
            json!({"runId": id, "dest": exports, "name": "m"}),
        )
        .expect_err("not picked yet");
    assert_eq!(refused["kind"], "not_picked");
    assert_eq!(
        w.ok("pick_path", json!({"kind": "export_folder"})),
        json!(exports)
    );
    let climbed = w
        .call(
            "export_run",
            json!({"runId": id, "dest": exports.join("../.."), "name": "m"}),
        )
        .expect_err("no way out of the picked folder");
    assert_eq!(climbed["kind"], "not_picked");
    let out = w.ok(
        "export_run",
        json!({"runId": id, "dest": exports, "name": "sentiment"}),
    );
    let out = PathBuf::from(out.as_str().expect("path"));
    assert_eq!(
        w.ok("app_info", json!({}))["exports"],
        1,
        "the Start page's last step is done"
    );
    for file in [
        "config.json",
        "model.safetensors",
        "tokenizer.json",
        "README.md",
    ] {
        assert!(
            out.join(file).is_file(),
            "{file} missing in {}",
            out.display()
        );
    }
    let again = w
        .call(
            "export_run",
            json!({"runId": id, "dest": exports, "name": "sentiment"}),
        )
        .expect_err("exists");
    assert!(again["message"]
        .as_str()
        .unwrap_or("")
        .contains("already exists"));
    // A LoRA run exports its PEFT adapter, or the adapter merged into a full model.
    let adapter = w.ok(
        "export_run",
        json!({"runId": lora, "dest": exports, "name": "lora-adapter"}),
    );
    let adapter = PathBuf::from(adapter.as_str().expect("path"));
    assert!(adapter.join("adapter_config.json").is_file());
    assert!(!adapter.join("model.safetensors").exists());
    let merged = w.ok(
        "export_run",
        json!({"runId": lora, "dest": exports, "name": "lora-merged", "merge": true}),
    );
    let merged = PathBuf::from(merged.as_str().expect("path"));
    assert!(merged.join("config.json").is_file() && merged.join("model.safetensors").is_file());
    assert!(!merged.join("adapter_config.json").exists());
    // ONNX: the run's model as onnx/model.onnx (and int8) beside the config and tokenizer.
    let onnx = w.ok(
        "export_run",
        json!({"runId": id, "dest": exports, "name": "onnx", "onnx": true, "int8": true}),
    );
    let onnx = PathBuf::from(onnx.as_str().expect("path"));
    for file in [
        "onnx/model.onnx",
        "onnx/model_quantized.onnx",
        "config.json",
        "tokenizer.json",
    ] {
        assert!(
            onnx.join(file).is_file(),
            "{file} missing in {}",
            onnx.display()
        );
    }
    let full = w
        .call(
            "export_run",
            json!({"runId": id, "dest": exports, "name": "not-lora", "merge": true}),
        )
        .expect_err("a full model has no adapter to merge");
    assert!(
        full["message"]
            .as_str()
            .unwrap_or("")
            .contains("nothing to merge"),
        "{full}"
    );
}

#[test]
fn the_capability_allows_exactly_the_registered_commands() {
    let text = std::fs::read_to_string(
        Path::new(env!("CARGO_MANIFEST_DIR")).join("capabilities/main.json"),
    )
    .expect("capability file");
    let cap: Value = serde_json::from_str(&text).expect("json");
    let allowed: Vec<String> = cap["permissions"]
        .as_array()
        .expect("permissions")
        .iter()
        .filter_map(|p| {
            p.as_str()?
                .strip_prefix("allow-")
                .map(|c| c.replace('-', "_"))
        })
        .collect();
    let mut registered: Vec<String> = hone_desktop::COMMANDS
        .iter()
        .map(|c| c.to_string())
        .collect();
    let mut allowed_sorted = allowed.clone();
    registered.sort();
    allowed_sorted.sort();
    assert_eq!(allowed_sorted, registered);
    // Nothing beyond Hone's commands: no file-system, shell or window permissions.
    for p in cap["permissions"].as_array().expect("permissions") {
        let p = p.as_str().unwrap_or("");
        assert!(p.starts_with("allow-"), "{p}");
    }
}
