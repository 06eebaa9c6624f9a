//! Loading Hub-format folders in their many shapes: sharded safetensors, base-model checkpoints
//! without the family prefix or head, TensorFlow-era `gamma`/`beta` names, bf16 pickles, and a
//! WordPiece vocab.txt instead of tokenizer.json. Broken folders give errors that name the
//! problem.

mod common;

use std::collections::HashMap;
use std::path::Path;

use candle_core::{DType, Device, Tensor};
use common::{bits, random_batch, tiny_model};
use hone_data::TextTokenizer;
use hone_engine::models::{Model, Task};
use hone_engine::step::Stepper;
use hone_engine::EngineError;

fn copy_folder_without_weights(from: &Path, to: &Path) {
    for entry in std::fs::read_dir(from).unwrap() {
        let path = entry.unwrap().path();
        let name = path.file_name().unwrap().to_string_lossy().to_string();
        if !name.ends_with(".safetensors") && !name.ends_with(".bin") {
            std::fs::copy(&path, to.join(&name)).unwrap();
        }
    }
}

fn weights(dir: &Path) -> HashMap<String, Tensor> {
    candle_core::safetensors::load(dir.join("model.safetensors"), &Device::Cpu).unwrap()
}

fn logits(model: &Model) -> Vec<Vec<f32>> {
    let batch = random_batch(4, 10, model.spec().encoder.pad_token_id, 3);
    hone_engine::inference::batch_logits(model, &mut Stepper::new(model, true), &batch).unwrap()
}

fn load(dir: &Path) -> Result<Model, EngineError> {
    Model::load(dir, Task::SequenceClassification, 3, None, &Device::Cpu, 0)
}

#[test]
fn sharded_safetensors_load_like_one_file() {
    let source = tiny_model("bert");
    let dir = tempfile::tempdir().unwrap();
    copy_folder_without_weights(&source, dir.path());
    let all = weights(&source);
    let mut names: Vec<&String> = all.keys().collect();
    names.sort();
    let (first, second) = names.split_at(names.len() / 2);
    let mut map = serde_json::Map::new();
    for (file, part) in [
        ("model-00001-of-00002.safetensors", first),
        ("model-00002-of-00002.safetensors", second),
    ] {
        let shard: HashMap<String, Tensor> = part
            .iter()
            .map(|n| ((*n).clone(), all[*n].clone()))
            .collect();
        candle_core::safetensors::save(&shard, dir.path().join(file)).unwrap();
        for n in part {
            map.insert((*n).clone(), serde_json::json!(file));
        }
    }
    let index = serde_json::json!({"metadata": {}, "weight_map": map});
    std::fs::write(
        dir.path().join("model.safetensors.index.json"),
        index.to_string(),
    )
    .unwrap();
    assert_eq!(
        logits(&load(dir.path()).unwrap()),
        logits(&load(&source).unwrap())
    );
}

#[test]
fn base_model_without_prefix_and_head_gets_a_new_head() {
    let source = tiny_model("roberta");
    let dir = tempfile::tempdir().unwrap();
    copy_folder_without_weights(&source, dir.path());
    let base: HashMap<String, Tensor> = weights(&source)
        .into_iter()
        .filter_map(|(k, v)| k.strip_prefix("roberta.").map(|k| (k.to_string(), v)))
        .chain([(
            "lm_head.bias".to_string(),
            Tensor::zeros(7, DType::F32, &Device::Cpu).unwrap(),
        )])
        .collect();
    candle_core::safetensors::save(&base, dir.path().join("model.safetensors")).unwrap();
    let model = load(dir.path()).unwrap();
    let mut fresh = model.newly_initialized().to_vec();
    fresh.sort();
    assert_eq!(
        fresh,
        [
            "classifier.dense.bias",
            "classifier.dense.weight",
            "classifier.out_proj.bias",
            "classifier.out_proj.weight"
        ]
    );
    let original = load(&source).unwrap();
    let name = "roberta.encoder.layer.1.output.dense.weight";
    assert_eq!(
        bits(&model.params().get(name).unwrap().value()),
        bits(&original.params().get(name).unwrap().value())
    );
}

#[test]
fn a_head_for_another_number_of_classes_is_replaced() {
    let model = Model::load(
        &tiny_model("distilbert"),
        Task::SequenceClassification,
        5,
        None,
        &Device::Cpu,
        0,
    )
    .unwrap();
    assert_eq!(
        model.newly_initialized(),
        ["classifier.weight", "classifier.bias"]
    );
    assert_eq!(logits(&model)[0].len(), 5);
}

#[test]
fn gamma_and_beta_names_are_read_as_weight_and_bias() {
    let source = tiny_model("bert");
    let dir = tempfile::tempdir().unwrap();
    copy_folder_without_weights(&source, dir.path());
    let renamed: HashMap<String, Tensor> = weights(&source)
        .into_iter()
        .map(|(k, v)| {
            let k = if k.contains("LayerNorm") {
                k.replace("LayerNorm.weight", "LayerNorm.gamma")
                    .replace("LayerNorm.bias", "LayerNorm.beta")
            } else {
                k
            };
            (k, v)
        })
        .collect();
    assert!(renamed.keys().any(|k| k.ends_with(".gamma")));
    candle_core::safetensors::save(&renamed, dir.path().join("model.safetensors")).unwrap();
    assert_eq!(
        logits(&load(dir.path()).unwrap()),
        logits(&load(&source).unwrap())
    );
}

#[test]
fn bf16_pickle_checkpoint_loads_and_converts() {
    let pth = load(&common::fixtures().join("tiny-bert-pth-bf16")).unwrap();
    let st = load(&tiny_model("bert")).unwrap();
    for p in st.params().all() {
        let rounded = p
            .value()
            .to_dtype(DType::BF16)
            .unwrap()
            .to_dtype(DType::F32)
            .unwrap();
        let from_pth = pth.params().get(p.name()).unwrap().value();
        assert_eq!(bits(&from_pth), bits(&rounded), "{}", p.name());
    }
}

#[test]
fn a_missing_tensor_is_named() {
    let source = tiny_model("distilbert");
    let dir = tempfile::tempdir().unwrap();
    copy_folder_without_weights(&source, dir.path());
    let mut w = weights(&source);
    w.remove("distilbert.transformer.layer.1.ffn.lin2.weight");
    candle_core::safetensors::save(&w, dir.path().join("model.safetensors")).unwrap();
    let err = load(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("distilbert.transformer.layer.1.ffn.lin2.weight"),
        "{err}"
    );
}

#[test]
fn a_tensor_of_the_wrong_shape_is_named() {
    let source = tiny_model("bert");
    let dir = tempfile::tempdir().unwrap();
    copy_folder_without_weights(&source, dir.path());
    let mut w = weights(&source);
    w.insert(
        "bert.encoder.layer.0.intermediate.dense.bias".into(),
        Tensor::zeros(3, DType::F32, &Device::Cpu).unwrap(),
    );
    candle_core::safetensors::save(&w, dir.path().join("model.safetensors")).unwrap();
    let err = load(dir.path()).err().unwrap().to_string();
    assert!(
        err.contains("intermediate.dense.bias") && err.contains("[3]"),
        "{err}"
    );
}

#[test]
fn folders_without_config_or_weights_and_unknown_architectures_are_clear_errors() {
    let dir = tempfile::tempdir().unwrap();
    let err = load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("no config.json"), "{err}");
    std::fs::copy(
        tiny_model("bert").join("config.json"),
        dir.path().join("config.json"),
    )
    .unwrap();
    let err = load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("has no weights"), "{err}");
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "gpt2"}"#).unwrap();
    let err = load(dir.path()).err().unwrap();
    assert!(
        matches!(err, EngineError::UnsupportedArchitecture { .. }),
        "{err}"
    );
    assert!(err.to_string().contains("bert"), "{err}");
    std::fs::write(dir.path().join("config.json"), "{ not json").unwrap();
    let err = load(dir.path()).err().unwrap().to_string();
    assert!(err.contains("config.json"), "{err}");
}

#[test]
fn vocab_txt_gives_the_same_tokens_as_tokenizer_json() {
    let source = tiny_model("bert");
    let dir = tempfile::tempdir().unwrap();
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(source.join("tokenizer.json")).unwrap())
            .unwrap();
    let mut vocab: Vec<(String, u64)> = json["model"]["vocab"]
        .as_object()
        .unwrap()
        .iter()
        .map(|(k, v)| (k.clone(), v.as_u64().unwrap()))
        .collect();
    vocab.sort_by_key(|(_, id)| *id);
    let text: String = vocab.into_iter().map(|(t, _)| t + "\n").collect();
    std::fs::write(dir.path().join("vocab.txt"), text).unwrap();
    std::fs::copy(
        source.join("tokenizer_config.json"),
        dir.path().join("tokenizer_config.json"),
    )
    .unwrap();
    let from_vocab = TextTokenizer::from_model_dir(dir.path(), 16).unwrap();
    let from_json = TextTokenizer::from_model_dir(&source, 16).unwrap();
    let texts = [
        ("The Movie was GREAT, honestly!".to_string(), None),
        (
            "a pair".to_string(),
            Some("with a second, much longer text that gets truncated somewhere".to_string()),
        ),
    ];
    let a = from_vocab.encode(&texts).unwrap();
    let b = from_json.encode(&texts).unwrap();
    assert_eq!(a, b);
    assert!(a[1].truncated && a[1].input_ids.len() == 16);
}
