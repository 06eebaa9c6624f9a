//! LoRA against PEFT (tests/reference/make_lora_fixtures.py): adapters PEFT saved load into
//! Hone and give PEFT's logits, loss and every trained gradient on both graphs; an adapter Hone
//! saves reloads unchanged and merges into a plain model with the same outputs; a new LoRA
//! model trains only its adapters and head and starts as the base model.

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{
    assert_both_graphs_match, fixtures, golden_logits, load_frozen, relative_error, tiny_model,
};
use hone_data::TextTokenizer;
use hone_engine::config::{FineTuneMethod, TrainingConfig};
use hone_engine::export::{export_merged, export_model, ModelCard};
use hone_engine::models::{HeadSpec, Model, ModelSpec, Task};
use hone_engine::recipes::apply_freezing;

const FAMILIES: [&str; 3] = ["bert", "distilbert", "roberta"];
fn lora_golden(family: &str) -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = fixtures().join("golden");
    let tensors = candle_core::safetensors::load(
        dir.join(format!("{family}-lora.safetensors")),
        &Device::Cpu,
    )
    .expect("LoRA golden tensors");
    let meta = std::fs::read_to_string(dir.join(format!("{family}-lora.json"))).expect("json");
    (tensors, serde_json::from_str(&meta).expect("json parses"))
}

#[test]
fn peft_adapters_give_peft_logits_loss_and_gradients_on_both_graphs() {
    for family in FAMILIES {
        let (want, meta) = lora_golden(family);
        let model = load_frozen(&fixtures().join(format!("lora-{family}")));
        assert!(model.spec().lora.is_some(), "{family}: read as LoRA");
        assert!(model.newly_initialized().is_empty(), "{family}");
        let mut trained: Vec<String> = model
            .params()
            .trainable()
            .map(|p| p.name().to_string())
            .collect();
        trained.sort();
        let want_trained: Vec<String> = serde_json::from_value(meta["trained"].clone()).unwrap();
        assert_eq!(trained, want_trained, "{family}: what trains");
        assert_both_graphs_match(&model, family, &want, &want_trained);
    }
}

#[test]
fn an_exported_adapter_reloads_unchanged_and_merges_into_a_plain_model() {
    let tmp = tempfile::tempdir().unwrap();
    for family in FAMILIES {
        let source = fixtures().join(format!("lora-{family}"));
        let model = load_frozen(&source);
        let before = golden_logits(&model, family);
        let tokenizer = TextTokenizer::from_model_dir(&tiny_model(family), 64).unwrap();
        let labels: Vec<String> = ["negative", "neutral", "positive"]
            .map(String::from)
            .to_vec();
        let card = ModelCard {
            base_model: "tiny",
            train_examples: 1,
            valid_examples: 1,
            best_step: None,
            report: None,
            config_text: "",
        };
        let adapter = tmp.path().join(format!("{family}-adapter"));
        export_model(&model, &labels, &source, &tokenizer, &adapter, &card).unwrap();
        for file in [
            "adapter_config.json",
            "adapter_model.safetensors",
            "head_config.json",
            "tokenizer.json",
            "README.md",
        ] {
            assert!(adapter.join(file).is_file(), "{family}: {file}");
        }
        assert!(
            !adapter.join("config.json").exists(),
            "transformers would read it as a full model"
        );
        let config: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(adapter.join("adapter_config.json")).unwrap(),
        )
        .unwrap();
        assert_eq!(config["peft_type"], "LORA");
        assert_eq!(config["task_type"], "SEQ_CLS");
        let base = std::path::Path::new(config["base_model_name_or_path"].as_str().unwrap());
        assert_eq!(
            base.canonicalize().unwrap(),
            tiny_model(family).canonicalize().unwrap(),
            "{family}: the base is named"
        );
        let reloaded = load_frozen(&adapter);
        assert_eq!(reloaded.spec().labels.as_deref(), Some(&labels[..]));
        let err = relative_error(&golden_logits(&reloaded, family), &before);
        assert!(err < 1e-6, "{family}: reloaded adapter {err:.2e}");

        let merged = tmp.path().join(format!("{family}-merged"));
        export_merged(&model, &labels, &source, &tokenizer, &merged, &card).unwrap();
        let plain = load_frozen(&merged);
        assert!(plain.spec().lora.is_none());
        assert!(plain
            .params()
            .all()
            .iter()
            .all(|p| !p.name().contains("lora_")));
        let err = relative_error(&golden_logits(&plain, family), &before);
        assert!(err < 1e-5, "{family}: merged model {err:.2e}");
    }
}

#[test]
fn a_new_lora_model_trains_adapters_and_head_only_and_starts_as_its_base() {
    let family = "distilbert";
    let cfg = TrainingConfig {
        peft: FineTuneMethod::Lora,
        lora_r: 4,
        ..TrainingConfig::default()
    };
    let cfg = TrainingConfig {
        dropout: Some(0.0),
        ..cfg
    };
    let model = Model::load_for_run(
        &tiny_model(family),
        Task::SequenceClassification,
        3,
        &cfg,
        &Device::Cpu,
        7,
    )
    .unwrap();
    apply_freezing(&model, &cfg, None);
    let trained: Vec<&str> = model.params().trainable().map(|p| p.name()).collect();
    assert!(trained
        .iter()
        .all(|n| n.contains(".lora_") || n.contains("classifier")));
    assert_eq!(
        trained.iter().filter(|n| n.contains(".lora_A.")).count(),
        4,
        "q_lin and v_lin of 2 layers"
    );
    // PEFT's defaults: A random, B zero, so the adapted model computes what the base does.
    let a = model
        .params()
        .get("distilbert.transformer.layer.0.attention.q_lin.lora_A.weight")
        .unwrap();
    assert_eq!(a.var().dims(), [4, 32]);
    assert!(common::max_abs(&a.value()) > 0.0);
    let base = load_frozen(&tiny_model(family));
    let err = relative_error(
        &golden_logits(&model, family),
        &golden_logits(&base, family),
    );
    assert!(err < 1e-6, "{err:.2e}");
    let frozen = model.params().all().len() - trained.len();
    assert!(
        model.params().count_trainable() * 10 < model.params().count(),
        "{frozen} frozen"
    );
}

#[test]
fn a_target_that_matches_no_layer_names_the_layers_there_are() {
    let cfg = TrainingConfig {
        peft: FineTuneMethod::Lora,
        lora_targets: "query,qkv_proj".into(),
        ..TrainingConfig::default()
    };
    let mut spec = ModelSpec::from_dir(&tiny_model("bert")).unwrap();
    spec.lora = cfg
        .lora_config(&spec, Task::SequenceClassification)
        .unwrap();
    let err = Model::with_heads(
        spec,
        Some(&tiny_model("bert")),
        &[HeadSpec {
            prefix: String::new(),
            task: Task::SequenceClassification,
            num_labels: 3,
        }],
        None,
        &Device::Cpu,
        0,
    )
    .err()
    .expect("refused")
    .to_string();
    assert!(err.contains("'qkv_proj'"), "{err}");
    assert!(err.contains("query") && err.contains("dense"), "{err}");
}
