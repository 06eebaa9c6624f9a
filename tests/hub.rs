//! `hone hub` and `hone models` end to end, against a real HTTP server on 127.0.0.1 that
//! answers like the Hugging Face Hub: search, info with the fit check, download into the cache,
//! then `hone train --model ORG/NAME` from the cache; local imports; removal.

mod support;

use std::path::Path;
use std::process::Command;

use hone_hub_testserver::{Repo, TestHub};
use support::{fixture, hone, run, stderr, stdout};

/// A `hone` command that talks to `hub` and keeps its Hugging Face cache in `home`.
fn hone_hub(hub: &TestHub, home: &Path) -> Command {
    let mut c = hone();
    c.env("HF_ENDPOINT", hub.url())
        .env("HF_HOME", home)
        .env("HF_HUB_CACHE", home.join("hub"))
        .env_remove("HF_TOKEN")
        .env_remove("HF_HUB_OFFLINE");
    c
}

fn tiny_repo(id: &str, downloads: u64) -> Repo {
    Repo::from_dir(id, &fixture("tiny-bert"))
        .expect("fixture")
        .file(
            "README.md",
            b"---\nlicense: apache-2.0\n---\n# Tiny BERT\nFor Hone's tests.\n".to_vec(),
        )
        .file("onnx/model.onnx", vec![7; 4096])
        .task("fill-mask")
        .stats(downloads, 3, "2026-11-01T00:00:00.000Z")
}

#[test]
fn download_then_train_from_the_cache_by_repo_id() {
    let hub = TestHub::start(vec![
        tiny_repo("hone-test/tiny-bert", 500),
        tiny_repo("hone-test/tiny-bert-2", 90),
        Repo::new("other/gpt-thing")
            .file("config.json", br#"{"model_type": "gpt2"}"#.to_vec())
            .file("model.safetensors", vec![0; 64])
            .task("text-generation"),
    ])
    .expect("server");
    let home = tempfile::tempdir().expect("tmp");

    // Search: most downloaded first, with the task.
    let out = run(hone_hub(&hub, home.path()).args(["hub", "search", "tiny", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let found: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    let ids: Vec<&str> = found
        .as_array()
        .expect("a list")
        .iter()
        .filter_map(|m| m["id"].as_str())
        .collect();
    assert_eq!(ids, ["hone-test/tiny-bert", "hone-test/tiny-bert-2"]);
    assert_eq!(found[0]["family"], "BERT", "{found}");
    let table = run(hone_hub(&hub, home.path()).args(["hub", "search", "tiny"]));
    assert!(stdout(&table).contains("fill-mask"), "{}", stdout(&table));
    // A model of a family Hone does not train is marked in the table.
    let all = run(hone_hub(&hub, home.path()).args(["hub", "search", "t"]));
    let row = stdout(&all)
        .lines()
        .find(|l| l.starts_with("other/gpt-thing"))
        .map(str::to_string)
        .unwrap_or_else(|| panic!("{}", stdout(&all)));
    assert!(row.split_whitespace().nth(1) == Some("-"), "{row}");
    assert!(
        stdout(&all).contains("no tag names a family Hone trains"),
        "{}",
        stdout(&all)
    );

    // Info: trainable, with a fit verdict, and what a fine-tune downloads (no ONNX).
    let out =
        run(hone_hub(&hub, home.path()).args(["hub", "info", "hone-test/tiny-bert", "--json"]));
    assert!(out.status.success(), "{}", stderr(&out));
    let info: serde_json::Value = serde_json::from_str(&stdout(&out)).expect("json");
    assert_eq!(info["check"]["trainable"], true);
    assert_eq!(info["check"]["fit"]["full"]["verdict"], "fits");
    let speed = &info["check"]["fit"]["full"]["speed"];
    assert!(
        speed["samples_per_second"]
            .as_f64()
            .is_some_and(|s| s > 0.0)
            && speed["matmul_gflops"].as_f64().is_some_and(|g| g > 0.0),
        "a CPU speed estimate: {speed}"
    );
    assert_eq!(info["info"]["license"], "apache-2.0");
    assert_eq!(info["cached"], false);
    let onnx = 4096;
    let all: u64 = info["info"]["files"]
        .as_array()
        .expect("files")
        .iter()
        .filter_map(|f| f["size"].as_u64())
        .sum();
    assert_eq!(info["download_bytes"].as_u64(), Some(all - onnx));
    let text = run(hone_hub(&hub, home.path()).args(["hub", "info", "hone-test/tiny-bert"]));
    let text = stdout(&text);
    assert!(
        text.contains("Hone can fine-tune this model") && text.contains("full fine-tuning"),
        "{text}"
    );
    let gpt = run(hone_hub(&hub, home.path()).args(["hub", "info", "other/gpt-thing"]));
    assert!(
        stdout(&gpt).contains("cannot train model_type \"gpt2\""),
        "{}",
        stdout(&gpt)
    );

    // Training from a repo id that is not downloaded says how to get it.
    let data = fixture("data/sst2_sample.tsv");
    let runs = tempfile::tempdir().expect("tmp");
    let train = |cmd: &mut Command| {
        run(cmd
            .args(["train", "--model", "hone-test/tiny-bert", "--train"])
            .arg(&data)
            .args(["--text-column", "sentence", "--label-column", "label"])
            .args(["--epochs", "1", "--batch-size", "8", "--max-length", "32"])
            .arg("--out")
            .arg(runs.path().join("model")))
    };
    let out = train(&mut hone_hub(&hub, home.path()));
    assert!(!out.status.success());
    assert!(
        stderr(&out).contains("hone hub download hone-test/tiny-bert"),
        "{}",
        stderr(&out)
    );

    // Download, then train by repo id.
    let out = run(hone_hub(&hub, home.path()).args(["hub", "download", "hone-test/tiny-bert"]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("ready at"), "{}", stdout(&out));
    let snapshots = home
        .path()
        .join("hub/models--hone-test--tiny-bert/snapshots");
    assert!(snapshots.is_dir());
    let info =
        run(hone_hub(&hub, home.path()).args(["hub", "info", "hone-test/tiny-bert", "--json"]));
    let info: serde_json::Value = serde_json::from_str(&stdout(&info)).expect("json");
    assert_eq!(
        info["cached"], true,
        "every planned file is in the snapshot"
    );
    // A half-done download (one planned file missing) is not "downloaded".
    let snapshot = std::fs::read_dir(&snapshots)
        .expect("snapshots")
        .next()
        .expect("one")
        .expect("entry")
        .path();
    let config = std::fs::read(snapshot.join("config.json")).expect("config");
    std::fs::remove_file(snapshot.join("config.json")).expect("rm");
    let info =
        run(hone_hub(&hub, home.path()).args(["hub", "info", "hone-test/tiny-bert", "--json"]));
    let info: serde_json::Value = serde_json::from_str(&stdout(&info)).expect("json");
    assert_eq!(info["cached"], false);
    std::fs::write(snapshot.join("config.json"), config).expect("restore");
    // Offline (asked for, or the Hub out of reach): the page comes from the cached copy, says
    // so, and still checks the model against this machine; a model not in the cache is an
    // error that says what to do.
    for offline in [
        hone_hub(&hub, home.path())
            .env("HF_HUB_OFFLINE", "1")
            .args(["hub", "info", "hone-test/tiny-bert", "--json"])
            .output()
            .expect("runs"),
        hone_hub(&hub, home.path())
            .env("HF_ENDPOINT", "http://127.0.0.1:9")
            .args(["hub", "info", "hone-test/tiny-bert", "--json"])
            .output()
            .expect("runs"),
    ] {
        assert!(offline.status.success(), "{}", stderr(&offline));
        let page: serde_json::Value = serde_json::from_str(&stdout(&offline)).expect("json");
        let why = page["offline"].as_str().unwrap_or_default();
        assert!(
            why.contains("cache") && why.contains("not known offline"),
            "{page}"
        );
        assert_eq!(page["cached"], true);
        assert_eq!(page["check"]["trainable"], true, "{page}");
        assert_eq!(page["check"]["family"], "BERT");
        assert!(page["card_html"]
            .as_str()
            .unwrap_or_default()
            .contains("Tiny BERT"));
    }
    let text = run(hone_hub(&hub, home.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["hub", "info", "hone-test/tiny-bert"]));
    assert!(stderr(&text).contains("offline:"), "{}", stderr(&text));
    let missing = run(hone_hub(&hub, home.path())
        .env("HF_HUB_OFFLINE", "1")
        .args(["hub", "info", "hone-test/tiny-bert-2"]));
    assert!(!missing.status.success());
    assert!(
        stderr(&missing).contains("not in the cache"),
        "{}",
        stderr(&missing)
    );
    let db = runs.path().join("hone.db");
    let out = train(hone_hub(&hub, home.path()).arg("--db").arg(&db));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(runs.path().join("model/model.safetensors").is_file());
    // The export names its base model by repo id, not by the cache folder it was read from,
    // and its weights are as readable as its other files.
    let card = std::fs::read_to_string(runs.path().join("model/README.md")).expect("card");
    assert!(card.contains("base_model: hone-test/tiny-bert\n"), "{card}");
    assert!(
        card.contains("# hone-test/tiny-bert fine-tuned with Hone"),
        "{card}"
    );
    #[cfg(unix)]
    {
        use std::os::unix::fs::PermissionsExt;
        let mode = |name: &str| {
            std::fs::metadata(runs.path().join("model").join(name))
                .expect("exported file")
                .permissions()
                .mode()
        };
        assert_eq!(mode("model.safetensors"), mode("config.json"));
    }

    // The run's model is recorded as the Hub repo it came from.
    let list = run(hone_hub(&hub, home.path())
        .arg("--db")
        .arg(&db)
        .args(["models", "list", "--json"]));
    let models: serde_json::Value = serde_json::from_str(&stdout(&list)).expect("json");
    let hub_models: Vec<&serde_json::Value> = models
        .as_array()
        .expect("a list")
        .iter()
        .filter(|m| m["source"] == "hub")
        .collect();
    assert_eq!(hub_models.len(), 1, "{models}");
    assert_eq!(hub_models[0]["reference"], "hone-test/tiny-bert");
    assert_eq!(hub_models[0]["model_type"], "bert");

    // With the server gone, the cached model still trains.
    drop(hub);
    let offline = TestHub::start(Vec::new()).expect("server");
    let out = train(hone_hub(&offline, home.path()).env("HF_HUB_OFFLINE", "1"));
    assert!(out.status.success(), "{}", stderr(&out));

    // Removal deletes the cache entry.
    let out = run(hone_hub(&offline, home.path()).arg("--db").arg(&db).args([
        "models",
        "remove",
        "hone-test/tiny-bert",
    ]));
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(!home
        .path()
        .join("hub/models--hone-test--tiny-bert")
        .exists());
}

#[test]
fn local_folders_are_checked_before_they_are_imported() {
    let home = tempfile::tempdir().expect("tmp");
    let db = home.path().join("hone.db");
    let hub = TestHub::start(Vec::new()).expect("server");
    let models = |args: &[&str]| {
        run(hone_hub(&hub, home.path())
            .arg("--db")
            .arg(&db)
            .arg("models")
            .args(args))
    };

    let out = models(&["import", fixture("tiny-roberta").to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(stdout(&out).contains("RoBERTa"), "{}", stdout(&out));
    let list = models(&["list"]);
    assert!(stdout(&list).contains("tiny-roberta"), "{}", stdout(&list));

    // A folder without weights is refused with the reason.
    let broken = home.path().join("broken");
    std::fs::create_dir_all(&broken).expect("mkdir");
    std::fs::copy(fixture("tiny-bert/config.json"), broken.join("config.json")).expect("copy");
    let out = models(&["import", broken.to_str().expect("utf-8")]);
    assert!(!out.status.success());
    assert!(stderr(&out).contains("no weights"), "{}", stderr(&out));

    // `check` judges without recording: the verdict, memory and speed at the given shape.
    let roberta = fixture("tiny-roberta");
    let checked = models(&[
        "check",
        roberta.to_str().expect("utf-8"),
        "--batch-size",
        "4",
        "--max-length",
        "16",
        "--json",
    ]);
    assert!(checked.status.success(), "{}", stderr(&checked));
    let check: serde_json::Value = serde_json::from_str(&stdout(&checked)).expect("json");
    assert_eq!(check["family"], "RoBERTa");
    assert_eq!(
        check["fit"]["full"]["estimate"]["settings"]["batch_size"],
        4
    );
    assert!(check["fit"]["full"]["speed"]["samples_per_second"]
        .as_f64()
        .is_some_and(|s| s > 0.0));
    let refused = models(&["check", broken.to_str().expect("utf-8")]);
    assert!(!refused.status.success());
    assert!(
        stdout(&refused).contains("cannot fine-tune"),
        "{}",
        stdout(&refused)
    );
    assert!(
        stdout(&refused).contains("no weights"),
        "{}",
        stdout(&refused)
    );

    // Forgetting a local model leaves its files.
    let out = models(&["remove", fixture("tiny-roberta").to_str().expect("utf-8")]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert!(fixture("tiny-roberta/config.json").is_file());
    assert!(!stdout(&models(&["list"])).contains("tiny-roberta"));
}
