//! `hone export --gguf f16|q8_0`: a fine-tuned decoder as one GGUF file that llama.cpp's own
//! `gguf` reader reads and transformers loads (dequantized) as the same model and tokenizer:
//! the same token ids, next-token logits within 2e-3 (f16) or 5e-2 (q8_0) of the transformers
//! folder's (tests/reference/check_gguf_export.py). Llama (query/key rows interleaved for
//! llama.cpp's rotary layout, untied head, grouped-query attention) and Qwen2 (tied,
//! query/key/value biases).

mod support;

use std::path::Path;

use support::{fixture, hone, reference_python, run, stderr, stdout, synthetic_conversations};

fn check(gguf: &Path, model: &Path, tolerance: &str) -> String {
    let c = run(std::process::Command::new(reference_python())
        .arg(support::root().join("tests/reference/check_gguf_export.py"))
        .arg(gguf)
        .arg(model)
        .args(["--tolerance", tolerance]));
    let report = stdout(&c);
    assert!(
        c.status.success(),
        "{}: transformers disagrees:\n{report}\n{}",
        gguf.display(),
        stderr(&c)
    );
    assert!(report.contains("0 mismatches"), "{report}");
    report
}

#[test]
fn fine_tuned_decoders_export_to_gguf_that_transformers_loads() {
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("sums.jsonl");
    synthetic_conversations(&data);
    // The tiny Llama scales its rotary frequencies as Llama 3 does, which llama.cpp keeps in
    // a tensor transformers' GGUF loader does not read: this copy has plain rotary positions.
    let plain_llama = dir.path().join("tiny-llama-plain-rope");
    std::fs::create_dir(&plain_llama).unwrap();
    for entry in std::fs::read_dir(fixture("tiny-llama")).unwrap() {
        let path = entry.unwrap().path();
        std::fs::copy(&path, plain_llama.join(path.file_name().unwrap())).unwrap();
    }
    let config = plain_llama.join("config.json");
    let mut json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(&config).unwrap()).unwrap();
    json["rope_parameters"] = serde_json::json!({"rope_type": "default", "rope_theta": 10000.0});
    std::fs::write(&config, json.to_string()).unwrap();
    for family in ["llama", "qwen2"] {
        let base = match family {
            "llama" => plain_llama.clone(),
            _ => fixture(&format!("tiny-{family}")),
        };
        let model = dir.path().join(family);
        let o = run(hone()
            .args(["train", "--task", "causal-lm", "--model"])
            .arg(&base)
            .arg("--train")
            .arg(&data)
            .args([
                "--epochs",
                "1",
                "--batch-size",
                "4",
                "--lr",
                "3e-3",
                "--out",
            ])
            .arg(&model));
        assert!(o.status.success(), "{family}: {}", stderr(&o));
        for (kind, tolerance) in [("f16", "2e-3"), ("q8_0", "5e-2")] {
            let file = dir.path().join(format!("{family}-{kind}.gguf"));
            let e = run(hone()
                .args(["export", "--gguf", kind, "--json", "--model"])
                .arg(&model)
                .arg("--out")
                .arg(&file));
            assert!(e.status.success(), "{family} {kind}: {}", stderr(&e));
            let written: serde_json::Value = serde_json::from_str(&stdout(&e)).unwrap();
            let arch = if family == "qwen2" { "qwen2" } else { "llama" };
            assert_eq!(written["architecture"], arch, "{written}");
            assert_eq!(written["weights"], kind, "{written}");
            let report = check(&file, &model, tolerance);
            assert!(
                report.contains(&format!("gguf reader ok: {arch}")),
                "{report}"
            );
        }
    }
}

/// Encoders are pointed to ONNX, and a file that exists is not overwritten.
#[test]
fn gguf_export_refuses_encoders_and_existing_files() {
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("bert.gguf");
    let e = run(hone()
        .args(["export", "--gguf", "q8_0", "--model"])
        .arg(fixture("tiny-bert"))
        .arg("--out")
        .arg(&file));
    assert!(!e.status.success());
    assert!(stderr(&e).contains("export it as ONNX"), "{}", stderr(&e));
    assert!(!file.exists());
    std::fs::write(&file, b"keep me").unwrap();
    let again = run(hone()
        .args(["export", "--gguf", "f16", "--model"])
        .arg(fixture("tiny-llama"))
        .arg("--out")
        .arg(&file));
    assert!(!again.status.success());
    assert!(
        stderr(&again).contains("already exists"),
        "{}",
        stderr(&again)
    );
    assert_eq!(std::fs::read(&file).unwrap(), b"keep me");
}
