//! Bottleneck adapters against PyTorch (tests/reference/make_adapter_fixtures.py: transformers'
//! models with the adapters hooked in): logits, loss and every trained gradient on both graphs,
//! for Houlsby and Pfeiffer placements; the folder Hone saves reloads unchanged; a new adapter
//! model starts as its base and trains only adapters and head; merging is refused.

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{
    assert_both_graphs_match, fixtures, golden_logits, load_frozen, relative_error, tiny_model,
};
use hone_data::TextTokenizer;
use hone_engine::config::{FineTuneMethod, TrainingConfig};
use hone_engine::export::{export_model, merge_adapter, ModelCard};
use hone_engine::models::{Model, Task};
use hone_engine::recipes::apply_freezing;

const FAMILIES: [&str; 3] = ["bert", "distilbert", "roberta"];
fn adapter_golden(family: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join(format!("golden/{family}-adapter.safetensors")),
        &Device::Cpu,
    )
    .expect("adapter golden tensors")
}

#[test]
fn adapters_give_the_reference_logits_loss_and_gradients_on_both_graphs() {
    for family in FAMILIES {
        let want = adapter_golden(family);
        let model = load_frozen(&fixtures().join(format!("adapter-{family}")));
        assert!(model.spec().bottleneck.is_some(), "{family}");
        let mut trained: Vec<String> = model
            .params()
            .trainable()
            .map(|p| p.name().to_string())
            .collect();
        trained.sort();
        let mut want_trained: Vec<String> = want
            .keys()
            .filter_map(|k| k.strip_prefix("grad.").map(str::to_string))
            .collect();
        want_trained.sort();
        assert_eq!(trained, want_trained, "{family}: what trains");
        assert_both_graphs_match(&model, family, &want, &want_trained);
    }
}

#[test]
fn a_saved_adapter_folder_reloads_unchanged_and_cannot_be_merged() {
    let tmp = tempfile::tempdir().unwrap();
    for family in FAMILIES {
        let source = fixtures().join(format!("adapter-{family}"));
        let model = load_frozen(&source);
        let before = golden_logits(&model, family);
        let tokenizer = TextTokenizer::from_model_dir(&tiny_model(family), 64).unwrap();
        let labels: Vec<String> = ["a", "b", "c"].map(String::from).to_vec();
        let card = ModelCard {
            base_model: "tiny",
            train_examples: 1,
            valid_examples: 1,
            best_step: None,
            report: None,
            config_text: "",
        };
        let out = tmp.path().join(family);
        export_model(&model, &labels, &source, &tokenizer, &out, &card).unwrap();
        for file in [
            "hone_adapter.json",
            "adapter_model.safetensors",
            "head_config.json",
        ] {
            assert!(out.join(file).is_file(), "{family}: {file}");
        }
        let reloaded = load_frozen(&out);
        assert_eq!(reloaded.spec().bottleneck, model.spec().bottleneck);
        let err = relative_error(&golden_logits(&reloaded, family), &before);
        assert!(err < 1e-6, "{family}: {err:.2e}");
        let refused = merge_adapter(&out, &tmp.path().join(format!("{family}-merged")))
            .unwrap_err()
            .to_string();
        assert!(refused.contains("cannot be merged"), "{refused}");
    }
}

#[test]
fn a_new_adapter_model_starts_as_its_base_and_trains_adapters_and_head_only() {
    for (family, placement, per_layer) in [("bert", "houlsby", 2), ("roberta", "pfeiffer", 1)] {
        let cfg = TrainingConfig {
            peft: FineTuneMethod::Adapter,
            adapter_size: 8,
            adapter_placement: placement.parse().unwrap(),
            ..TrainingConfig::default()
        };
        let model = Model::load_for_run(
            &tiny_model(family),
            Task::SequenceClassification,
            3,
            &TrainingConfig {
                dropout: Some(0.0),
                ..cfg.clone()
            },
            &Device::Cpu,
            3,
        )
        .unwrap();
        apply_freezing(&model, &cfg, None);
        let trained: Vec<&str> = model.params().trainable().map(|p| p.name()).collect();
        let downs = trained
            .iter()
            .filter(|n| n.ends_with(".adapter.down.weight"))
            .count();
        assert_eq!(downs, 2 * per_layer, "{family}: adapters in 2 layers");
        assert!(
            trained
                .iter()
                .all(|n| n.contains(".adapter.") || n.contains("classifier")),
            "{trained:?}"
        );
        let err = relative_error(
            &golden_logits(&model, family),
            &golden_logits(&load_frozen(&tiny_model(family)), family),
        );
        assert!(
            err < 1e-6,
            "{family}: a new adapter is the identity ({err:.2e})"
        );
    }
}
