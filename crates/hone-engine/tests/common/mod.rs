//! Shared helpers of the engine's integration tests.
#![allow(dead_code)]

use std::collections::HashMap;
use std::path::PathBuf;

use candle_core::{DType, Device, Tensor};

/// The repository's test fixtures folder.
pub fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

/// A tiny reference model folder (`bert`, `distilbert`, `roberta`).
pub fn tiny_model(family: &str) -> PathBuf {
    fixtures().join(format!("tiny-{family}"))
}

/// The golden tensors and metadata written by tests/reference/make_fixtures.py.
pub fn golden(family: &str) -> (HashMap<String, Tensor>, serde_json::Value) {
    let dir = fixtures().join("golden");
    let tensors =
        candle_core::safetensors::load(dir.join(format!("{family}.safetensors")), &Device::Cpu)
            .expect("golden tensors");
    let meta = std::fs::read_to_string(dir.join(format!("{family}.json"))).expect("golden json");
    (
        tensors,
        serde_json::from_str(&meta).expect("golden json parses"),
    )
}

/// The tensors of a golden file (`golden/{name}.safetensors`).
pub fn golden_tensors(name: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(format!("golden/{name}.safetensors"));
    candle_core::safetensors::load(path, &Device::Cpu).expect("golden tensors")
}

/// Largest absolute difference relative to the reference's largest magnitude.
pub fn relative_error(got: &Tensor, want: &Tensor) -> f64 {
    relative_error_with_floor(got, want, 1e-12)
}

/// Largest absolute difference relative to max(the reference's largest magnitude, `floor`).
pub fn relative_error_with_floor(got: &Tensor, want: &Tensor, floor: f64) -> f64 {
    assert_eq!(got.dims(), want.dims(), "shapes differ");
    let got = got
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let want = want
        .to_dtype(DType::F64)
        .unwrap()
        .flatten_all()
        .unwrap()
        .to_vec1::<f64>()
        .unwrap();
    let scale = want.iter().fold(0f64, |m, v| m.max(v.abs())).max(floor);
    let diff = got
        .iter()
        .zip(&want)
        .fold(0f64, |m, (a, b)| m.max((a - b).abs()));
    diff / scale
}

/// The largest magnitude of a tensor's values.
pub fn max_abs(t: &Tensor) -> f64 {
    t.abs()
        .unwrap()
        .max_all()
        .unwrap()
        .to_dtype(DType::F64)
        .unwrap()
        .to_scalar::<f64>()
        .unwrap()
}

/// The token-classification golden tensors of a family (`{family}-token.safetensors`).
pub fn token_golden(family: &str) -> HashMap<String, Tensor> {
    let path = fixtures().join(format!("golden/{family}-token.safetensors"));
    candle_core::safetensors::load(path, &Device::Cpu).expect("token golden tensors")
}

/// A tensor's values as u32 (golden inputs are stored as i64; transformers' -100 is
/// [`hone_engine::graph::IGNORE_LABEL`]).
pub fn as_u32(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_dtype(DType::I64)
        .unwrap()
        .to_vec1::<i64>()
        .unwrap()
        .into_iter()
        .map(|v| {
            if v == -100 {
                hone_engine::graph::IGNORE_LABEL
            } else {
                v as u32
            }
        })
        .collect()
}

/// Deep copies of all parameter values (a `Var` is updated in place, so a plain detached
/// tensor would follow it).
pub fn snapshot(params: &hone_engine::params::ParamStore) -> HashMap<String, Tensor> {
    params
        .all()
        .iter()
        .map(|p| (p.name().to_string(), p.value().copy().unwrap()))
        .collect()
}

/// A tiny random config of a family, as config.json would give it.
pub fn tiny_spec(family: &str) -> hone_engine::models::ModelSpec {
    let json = match family {
        "bert" => serde_json::json!({
            "model_type": "bert", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 32,
            "type_vocab_size": 2, "hidden_dropout_prob": 0.1, "attention_probs_dropout_prob": 0.1
        }),
        "distilbert" => serde_json::json!({
            "model_type": "distilbert", "vocab_size": 50, "dim": 16, "n_layers": 2, "n_heads": 2,
            "hidden_dim": 32, "max_position_embeddings": 32
        }),
        "roberta" => serde_json::json!({
            "model_type": "roberta", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 2, "intermediate_size": 32, "max_position_embeddings": 34,
            "type_vocab_size": 1, "pad_token_id": 1, "layer_norm_eps": 1e-5
        }),
        // DeBERTa-v3's layout (shared position projections both ways, log buckets from
        // distance 2, layer-normed relative embeddings, no absolute positions) with every
        // dropout on, the pooler's too. Weights 10× the usual spread: with 0.02 the scores are
        // so flat that the relative embeddings' LayerNorm gets a gradient below the checks'
        // floor.
        "deberta" => serde_json::json!({
            "model_type": "deberta-v2", "vocab_size": 50, "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 32, "type_vocab_size": 0, "relative_attention": true,
            "position_buckets": 4, "max_relative_positions": 16, "pos_att_type": "p2c|c2p",
            "share_att_key": true, "norm_rel_ebd": "layer_norm", "position_biased_input": false,
            "pooler_dropout": 0.1, "initializer_range": 0.2
        }),
        // DeBERTa-v2's other settings: its own position key projection (c2p only), distances
        // clamped at 6, absolute positions and segments, embeddings narrower than the layers.
        "deberta-v2" => serde_json::json!({
            "model_type": "deberta-v2", "vocab_size": 50, "hidden_size": 16,
            "num_hidden_layers": 2, "num_attention_heads": 2, "intermediate_size": 32,
            "max_position_embeddings": 32, "type_vocab_size": 2, "relative_attention": true,
            "max_relative_positions": 6, "pos_att_type": ["c2p"], "share_att_key": false,
            "position_biased_input": true, "embedding_size": 12, "initializer_range": 0.2
        }),
        // Decoders with attention dropout on, grouped queries and biases (Qwen2) or not.
        "llama" => serde_json::json!({
            "model_type": "llama", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 2, "intermediate_size": 24,
            "max_position_embeddings": 32, "attention_dropout": 0.1
        }),
        // Every query head with its own key/value head.
        "llama-mha" => serde_json::json!({
            "model_type": "llama", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 4, "intermediate_size": 24,
            "max_position_embeddings": 32, "attention_dropout": 0.1
        }),
        "qwen2" => serde_json::json!({
            "model_type": "qwen2", "vocab_size": 50, "hidden_size": 16, "num_hidden_layers": 2,
            "num_attention_heads": 4, "num_key_value_heads": 1, "intermediate_size": 24,
            "max_position_embeddings": 32, "tie_word_embeddings": true
        }),
        // Encoder–decoders with dropout on: T5 v1.0 (ReLU, scaled output to the shared
        // embeddings) and the v1.1 layout (gated GELU, a deeper decoder).
        "t5" => serde_json::json!({
            "model_type": "t5", "vocab_size": 50, "d_model": 16, "d_kv": 4, "d_ff": 24,
            "num_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 8,
            "relative_attention_max_distance": 16, "dropout_rate": 0.1
        }),
        "t5-v1_1" => serde_json::json!({
            "model_type": "t5", "vocab_size": 50, "d_model": 16, "d_kv": 4, "d_ff": 24,
            "num_layers": 2, "num_decoder_layers": 3, "num_heads": 4,
            "relative_attention_num_buckets": 8, "relative_attention_max_distance": 16,
            "dropout_rate": 0.1, "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false
        }),
        other => panic!("no tiny spec for {other}"),
    };
    hone_engine::models::ModelSpec::from_json(json, std::path::Path::new("config.json")).unwrap()
}

/// A padded batch of `rows` random sequences for a vocabulary of 50 (ids ≥ 3).
pub fn random_batch(rows: usize, seq: usize, pad: u32, seed: u64) -> hone_data::Batch {
    let mut rng = hone_engine::rng::HoneRng::new(seed, 99);
    let mut examples = Vec::new();
    for r in 0..rows {
        let len = seq - (r % 3);
        let ids: Vec<u32> = (0..len)
            .map(|_| 3 + (rng.uniform() * 47.0) as u32)
            .collect();
        let types: Vec<u32> = (0..len).map(|i| u32::from(i >= len / 2)).collect();
        examples.push(hone_data::EncodedExample {
            input_ids: ids,
            type_ids: types,
            truncated: false,
        });
    }
    let refs: Vec<&hone_data::EncodedExample> = examples.iter().collect();
    let labels: Vec<u32> = (0..rows as u32).map(|i| i % 3).collect();
    hone_data::Batcher::new(pad).batch(&refs, &labels)
}

/// The bit patterns of a tensor's f32 values, for exact comparisons.
pub fn bits(t: &Tensor) -> Vec<u32> {
    t.flatten_all()
        .unwrap()
        .to_vec1::<f32>()
        .unwrap()
        .into_iter()
        .map(f32::to_bits)
        .collect()
}

/// The same batch labeled per token: a class on every second real token, the rest (and
/// padding) ignored, as word-level tags aligned to sub-tokens are.
pub fn per_token_labels(mut batch: hone_data::Batch, classes: u32) -> hone_data::Batch {
    batch.labels = batch
        .attention_mask
        .iter()
        .zip(&batch.input_ids)
        .enumerate()
        .map(|(slot, (&m, &id))| {
            if m == 1 && slot % 2 == 0 {
                id % classes
            } else {
                hone_engine::graph::IGNORE_LABEL
            }
        })
        .collect();
    batch
}

/// The fixed padded batch of a family's golden file (inputs and one label per sequence).
pub fn golden_batch(family: &str) -> hone_data::Batch {
    let t = golden_tensors(family);
    // An encoder–decoder's golden batch: `input.*` is the source, `decoder.*` the target.
    if t.contains_key("decoder.input_ids") {
        let mut batch = padded_batch(&t, "decoder", as_u32(&t["labels"]));
        batch.source = Some(Box::new(padded_batch(&t, "input", Vec::new())));
        return batch;
    }
    padded_batch(&t, "input", as_u32(&t["labels"]))
}

/// The padded batch of a golden file's `{prefix}.input_ids` / `.attention_mask` (and
/// `.token_type_ids` when there).
fn padded_batch(t: &HashMap<String, Tensor>, prefix: &str, labels: Vec<u32>) -> hone_data::Batch {
    let ids = &t[&format!("{prefix}.input_ids")];
    let (b, s) = ids.dims2().unwrap();
    let types = t
        .get(&format!("{prefix}.token_type_ids"))
        .map(as_u32)
        .unwrap_or_else(|| vec![0; b * s]);
    hone_data::Batch {
        input_ids: as_u32(ids),
        token_type_ids: types,
        attention_mask: as_u32(&t[&format!("{prefix}.attention_mask")]),
        labels,
        batch_size: b,
        seq_len: s,
        padded_options: Vec::new(),
        soft_targets: Vec::new(),
        source: None,
    }
}

/// The largest gradient of a golden file × 1e-3: the floor relative errors of gradients are
/// measured against where the reference's are exactly zero.
pub fn gradient_floor(want: &HashMap<String, Tensor>) -> f64 {
    want.iter()
        .filter(|(k, _)| k.starts_with("grad."))
        .map(|(_, t)| {
            t.abs()
                .unwrap()
                .max_all()
                .unwrap()
                .to_dtype(DType::F64)
                .unwrap()
                .to_scalar::<f64>()
                .unwrap()
        })
        .fold(0f64, f64::max)
        * 1e-3
}

/// Loads a folder (a model or an adapter folder) as a 3-class sequence classifier without
/// dropout, frozen as a run freezes it.
pub fn load_frozen(dir: &std::path::Path) -> hone_engine::models::Model {
    let model = hone_engine::models::Model::load(
        dir,
        hone_engine::models::Task::SequenceClassification,
        3,
        Some(0.0),
        &Device::Cpu,
        0,
    )
    .unwrap();
    hone_engine::recipes::apply_freezing(
        &model,
        &hone_engine::config::TrainingConfig::default(),
        None,
    );
    model
}

/// The logits of a 3-class model on a family's golden batch (the CPU graph).
pub fn golden_logits(model: &hone_engine::models::Model, family: &str) -> Tensor {
    let got = hone_engine::step::gradients(
        model,
        &golden_batch(family),
        true,
        hone_engine::rng::HoneRng::new(0, 0),
    )
    .unwrap();
    let rows = got.logits.values.len() / 3;
    Tensor::from_vec(got.logits.values, (rows, 3), &Device::Cpu).unwrap()
}

/// On the family's golden batch, both graphs (the CPU graph and candle's autograd) give the
/// reference's logits, loss and gradient of every parameter in `trained`, and of no other
/// (within 1e-4; gradients against a floor of 1e-3 × the largest, where the reference's are
/// exactly zero).
pub fn assert_both_graphs_match(
    model: &hone_engine::models::Model,
    family: &str,
    want: &HashMap<String, Tensor>,
    trained: &[String],
) {
    assert_both_graphs_match_smoothed(model, family, want, trained, 0.0);
}

/// [`assert_both_graphs_match`] for the loss with label smoothing ε = `smoothing`.
pub fn assert_both_graphs_match_smoothed(
    model: &hone_engine::models::Model,
    family: &str,
    want: &HashMap<String, Tensor>,
    trained: &[String],
    smoothing: f64,
) {
    const TOLERANCE: f64 = 1e-4;
    let floor = gradient_floor(want);
    for fast in [true, false] {
        let path = if fast { "CPU graph" } else { "autograd" };
        let got = hone_engine::step::smoothed_gradients(
            model,
            &golden_batch(family),
            fast,
            hone_engine::rng::HoneRng::new(0, 0),
            smoothing,
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
        assert_eq!(
            got.grads.len(),
            trained.len(),
            "{family} {path}: what trains"
        );
        for name in trained {
            let g = got
                .grads
                .get(name)
                .unwrap_or_else(|| panic!("{family} {path}: no gradient reached {name}"));
            let err = relative_error_with_floor(g, &want[&format!("grad.{name}")], floor);
            assert!(err < TOLERANCE, "{family} {path} grad {name}: {err:.2e}");
        }
    }
}

/// The Hub names of every parameter of `model`.
pub fn param_names(model: &hone_engine::models::Model) -> Vec<String> {
    model
        .params()
        .all()
        .iter()
        .map(|p| p.name().to_string())
        .collect()
}
