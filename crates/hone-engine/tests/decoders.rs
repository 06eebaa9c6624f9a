//! Decoder LMs against Hugging Face `transformers` and PEFT (tests/reference/
//! make_llama_fixtures.py): a tiny Llama (grouped-query attention, llama3 rope scaling, untied
//! head) and a tiny Qwen2 (one key/value head, attention biases, tied embeddings) trained as
//! causal LMs, and a tiny Llama with biases on every projection (o_proj included) and linear
//! rope scaling — logits, loss and every parameter's gradient on both graphs — and LoRA on the
//! Llama, made and saved by PEFT.

mod common;

use candle_core::Device;
use common::{fixtures, golden_tensors, tiny_model};
use hone_engine::config::TrainingConfig;
use hone_engine::models::{Model, Task};

fn load(dir: &std::path::Path) -> Model {
    // Dropout 0: the reference ran in eval mode. A language model's classes are its
    // vocabulary, whatever number is asked for.
    Model::load(dir, Task::CausalLm, 0, Some(0.0), &Device::Cpu, 0).unwrap()
}

#[test]
fn decoder_logits_loss_and_every_gradient_match_transformers_on_both_graphs() {
    for family in ["llama", "qwen2", "llama-bias"] {
        let want = golden_tensors(family);
        let model = load(&tiny_model(family));
        assert!(
            model.newly_initialized().is_empty(),
            "{family}: {:?}",
            model.newly_initialized()
        );
        let names = common::param_names(&model);
        let reference = want.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(names.len(), reference, "{family}: parameter count");
        common::assert_both_graphs_match(&model, family, &want, &names);
    }
}

#[test]
fn lora_on_a_decoder_matches_peft_on_both_graphs() {
    let want = golden_tensors("llama-lora");
    let model = load(&fixtures().join("lora-llama"));
    let cfg = TrainingConfig::default();
    hone_engine::recipes::apply_freezing(&model, &cfg, None);
    let trained: Vec<String> = model
        .params()
        .trainable()
        .map(|p| p.name().to_string())
        .collect();
    // Every projection of both layers has A and B; nothing else trains (the head is the
    // pretrained lm_head, frozen as PEFT leaves it).
    assert_eq!(trained.len(), 2 * 7 * 2, "{trained:?}");
    assert!(trained.iter().all(|n| n.contains(".lora_")), "{trained:?}");
    common::assert_both_graphs_match(&model, "llama-lora", &want, &trained);
}

#[test]
fn encoder_families_refuse_a_language_model_head_and_decoders_a_classifier() {
    let err = Model::load(
        &tiny_model("bert"),
        Task::CausalLm,
        0,
        None,
        &Device::Cpu,
        0,
    )
    .err()
    .expect("BERT has no causal LM head here")
    .to_string();
    assert!(err.contains("BERT") && err.contains("causal"), "{err}");
    let err = Model::load(
        &tiny_model("llama"),
        Task::SequenceClassification,
        3,
        None,
        &Device::Cpu,
        0,
    )
    .err()
    .expect("no classifier on Llama yet")
    .to_string();
    assert!(err.contains("Llama") && err.contains("causal-lm"), "{err}");
}

/// Asserts that each token `generated` after `prompt` is what a full forward pass over the
/// text so far picks (greedy).
fn assert_follows_full_passes(model: &Model, prompt: &[u32], generated: &[u32], case: &str) {
    let mut text = prompt.to_vec();
    let mut stepper = hone_engine::step::Stepper::new(model, true);
    for &token in generated {
        let n = text.len();
        let batch = hone_data::Batch::one_sequence(text.clone());
        let logits = stepper.logits(model, &batch).unwrap();
        let last = logits.rows().last().unwrap();
        assert_eq!(
            hone_engine::inference::argmax(last),
            token,
            "{case} after {n}"
        );
        text.push(token);
    }
}

/// Generation through the key/value cache picks, token by token, what a full forward pass
/// over the whole text picks (greedy), on both decoders.
#[test]
fn cached_generation_follows_full_passes() {
    use hone_engine::generate::{generate, GenerationSettings};
    for family in ["llama", "qwen2", "llama-bias"] {
        let dir = tiny_model(family);
        let model = load(&dir);
        let tokenizer = hone_data::TextTokenizer::from_model_dir(&dir, 64).unwrap();
        let prompt = [5u32, 17, 42, 7];
        let settings = GenerationSettings {
            max_new_tokens: 8,
            ..Default::default()
        };
        let mut streamed = String::new();
        let got = generate(&model, &tokenizer, &prompt, &[], &settings, &mut |t| {
            streamed.push_str(t);
            true
        })
        .unwrap();
        assert_eq!(got.tokens.len(), 8, "{family}");
        assert_eq!(
            streamed, got.text,
            "{family}: the stream adds up to the text"
        );
        assert_follows_full_passes(&model, &prompt, &got.tokens, family);
    }
}

/// Prefix tuning made and saved by PEFT (3 virtual tokens on the grouped-query Llama): the
/// folder loads as a prefix-tuned model whose logits, loss and prefix gradient are PEFT's on
/// both graphs, with only the prefix training.
#[test]
fn a_peft_prefix_on_a_decoder_matches_peft_on_both_graphs() {
    let want = golden_tensors("llama-prefix");
    let model = load(&fixtures().join("prefix-llama"));
    assert_eq!(model.prefix_tokens(), 3);
    // The virtual tokens take the first positions: the text has 3 fewer.
    let base = hone_engine::models::ModelSpec::from_dir(&tiny_model("llama")).unwrap();
    assert_eq!(
        model.spec().max_sequence_length(),
        base.max_sequence_length() - 3
    );
    let cfg = TrainingConfig::default();
    hone_engine::recipes::apply_freezing(&model, &cfg, None);
    let trained: Vec<String> = model
        .params()
        .trainable()
        .map(|p| p.name().to_string())
        .collect();
    assert_eq!(trained, ["prompt_embeddings"]);
    common::assert_both_graphs_match(&model, "llama-prefix", &want, &trained);
}

/// A prefix-tuned model generates through a cache that starts with its prefix rows: token by
/// token what full passes (the prefix in every attention) pick.
#[test]
fn cached_generation_with_a_prefix_follows_full_passes() {
    use hone_engine::generate::{generate, GenerationSettings};
    let dir = fixtures().join("prefix-llama");
    let model = load(&dir);
    let tokenizer = hone_data::TextTokenizer::from_model_dir(&tiny_model("llama"), 64).unwrap();
    let prompt = [5u32, 17, 42, 7];
    let settings = GenerationSettings {
        max_new_tokens: 6,
        ..Default::default()
    };
    let got = generate(&model, &tokenizer, &prompt, &[], &settings, &mut |_| true).unwrap();
    assert_eq!(got.tokens.len(), 6);
    assert_follows_full_passes(&model, &prompt, &got.tokens, "prefix");
}

/// The reparameterised prefix (PEFT's prefix_projection: the table is an MLP of an
/// embedding) with PEFT's values: logits, loss and the gradient of the embedding and both MLP
/// layers are PEFT's on both graphs.
#[test]
fn a_projected_prefix_matches_peft_on_both_graphs() {
    let want = golden_tensors("llama-prefix-mlp");
    let mut spec = hone_engine::models::ModelSpec::from_dir(&tiny_model("llama")).unwrap();
    spec.prefix = Some(hone_engine::prefix::PrefixConfig {
        tokens: 3,
        projection: Some(12),
        modules_to_save: Vec::new(),
    });
    let head = hone_engine::models::HeadSpec {
        prefix: String::new(),
        task: Task::CausalLm,
        num_labels: 0,
    };
    let dir = tiny_model("llama");
    let model = Model::with_heads(spec, Some(&dir), &[head], Some(0.0), &Device::Cpu, 0)
        .unwrap()
        .remove(0);
    for p in model.params().all() {
        if let Some(value) = want.get(&format!("param.{}", p.name())) {
            p.var().set(value).unwrap();
        }
    }
    let cfg = TrainingConfig::default();
    hone_engine::recipes::apply_freezing(&model, &cfg, None);
    let mut trained: Vec<String> = model
        .params()
        .trainable()
        .map(|p| p.name().to_string())
        .collect();
    trained.sort();
    let mut expected: Vec<String> = want
        .keys()
        .filter_map(|k| k.strip_prefix("param."))
        .map(str::to_string)
        .collect();
    expected.sort();
    assert_eq!(trained, expected);
    common::assert_both_graphs_match(&model, "llama-prefix-mlp", &want, &trained);
}
