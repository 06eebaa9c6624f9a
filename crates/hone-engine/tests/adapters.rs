//! Bottleneck adapters against PyTorch (tests/reference/make_adapter_fixtures.py: transformers'
//! models with the adapters hooked in): logits, loss and every trained gradient on both graphs,
//! for Houlsby and Pfeiffer placements; the folder Hone saves reloads unchanged; a new adapter
//! model starts as its base and trains only adapters and head; merging is refused.

mod common;

use std::collections::HashMap;

use candle_core::{Device, Tensor};
use common::{
    fixtures, golden_batch, gradient_floor, relative_error, relative_error_with_floor, tiny_model,
};
use hone_data::TextTokenizer;
use hone_engine::config::{FineTuneMethod, TrainingConfig};
use hone_engine::export::{export_model, merge_adapter, ModelCard};
use hone_engine::models::{HeadSpec, Model, ModelSpec, Task};
use hone_engine::recipes::apply_freezing;
use hone_engine::rng::HoneRng;

const FAMILIES: [&str; 3] = ["bert", "distilbert", "roberta"];
const TOLERANCE: f64 = 1e-4;

fn adapter_golden(family: &str) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(
        fixtures().join(format!("golden/{family}-adapter.safetensors")),
        &Device::Cpu,
    )
    .expect("adapter golden tensors")
}

fn load(dir: &std::path::Path) -> Model {
    let model = Model::load(
        dir,
        Task::SequenceClassification,
        3,
        Some(0.0),
        &Device::Cpu,
        0,
    )
    .unwrap();
    apply_freezing(&model, &TrainingConfig::default(), None);
    model
}

fn logits(model: &Model, family: &str) -> Tensor {
    let got = hone_engine::step::gradients(model, &golden_batch(family), true, HoneRng::new(0, 0))
        .unwrap();
    let rows = got.logits.values.len() / 3;
    Tensor::from_vec(got.logits.values, (rows, 3), &Device::Cpu).unwrap()
}

#[test]
fn adapters_give_the_reference_logits_loss_and_gradients_on_both_graphs() {
    for family in FAMILIES {
        let want = adapter_golden(family);
        let model = load(&fixtures().join(format!("adapter-{family}")));
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
        let floor = gradient_floor(&want);
        for fast in [true, false] {
            let path = if fast { "CPU graph" } else { "autograd" };
            let got = hone_engine::step::gradients(
                &model,
                &golden_batch(family),
                fast,
                HoneRng::new(0, 0),
            )
            .unwrap();
            let logits =
                Tensor::from_vec(got.logits.values, want["logits"].dims(), &Device::Cpu).unwrap();
            let err = relative_error(&logits, &want["logits"]);
            assert!(err < TOLERANCE, "{family} {path} logits: {err:.2e}");
            let want_loss = want["loss"].to_vec1::<f32>().unwrap()[0] as f64;
            assert!(
                (got.loss - want_loss).abs() / want_loss < TOLERANCE,
                "{family} {path} loss {} vs {want_loss}",
                got.loss
            );
            for name in &want_trained {
                let g = got
                    .grads
                    .get(name)
                    .unwrap_or_else(|| panic!("{family} {path}: no gradient for {name}"));
                let err = relative_error_with_floor(g, &want[&format!("grad.{name}")], floor);
                assert!(err < TOLERANCE, "{family} {path} grad {name}: {err:.2e}");
            }
        }
    }
}

#[test]
fn a_saved_adapter_folder_reloads_unchanged_and_cannot_be_merged() {
    let tmp = tempfile::tempdir().unwrap();
    for family in FAMILIES {
        let source = fixtures().join(format!("adapter-{family}"));
        let model = load(&source);
        let before = logits(&model, family);
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
        let reloaded = load(&out);
        assert_eq!(reloaded.spec().bottleneck, model.spec().bottleneck);
        let err = relative_error(&logits(&reloaded, family), &before);
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
        let mut spec = ModelSpec::from_dir(&tiny_model(family)).unwrap();
        spec.bottleneck = cfg.bottleneck_config(Task::SequenceClassification).unwrap();
        let head = HeadSpec {
            prefix: String::new(),
            task: Task::SequenceClassification,
            num_labels: 3,
        };
        let model = Model::with_heads(
            spec,
            Some(&tiny_model(family)),
            &[head],
            Some(0.0),
            &Device::Cpu,
            3,
        )
        .unwrap()
        .remove(0);
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
            &logits(&model, family),
            &logits(&load(&tiny_model(family)), family),
        );
        assert!(
            err < 1e-6,
            "{family}: a new adapter is the identity ({err:.2e})"
        );
    }
}
