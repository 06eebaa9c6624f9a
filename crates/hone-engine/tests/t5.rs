//! T5 against Hugging Face `transformers` (tests/reference/make_t5_fixtures.py): a tiny T5
//! v1.0 (ReLU feed-forward, the shared embeddings as the head, its output scaled) and a tiny
//! v1.1 layout (gated-GELU, no output scaling, a decoder deeper than the encoder) — logits,
//! loss and every parameter's gradient on both graphs, and greedy generation token for token;
//! then a tiny T5 trained from scratch learns to copy its source.

mod common;

use std::sync::atomic::AtomicBool;

use candle_core::Device;
use common::{fixtures, golden_tensors, tiny_model};
use hone_data::EncodedExample;
use hone_engine::batch::EncodedSet;
use hone_engine::config::TrainingConfig;
use hone_engine::models::{Model, ModelSpec, Task};
use hone_engine::seq2seq::{generate, Decoding, Search, TextToText};
use hone_engine::step::Stepper;
use hone_engine::trainer::Trainer;

const FAMILIES: [&str; 2] = ["t5", "t5-v1_1"];

fn load(dir: &std::path::Path) -> Model {
    // Dropout 0: the reference ran in eval mode.
    Model::load(dir, Task::Text2Text, 0, Some(0.0), &Device::Cpu, 0).unwrap()
}

#[test]
fn t5_logits_loss_and_every_gradient_match_transformers_on_both_graphs() {
    for family in FAMILIES {
        let want = golden_tensors(family);
        let model = load(&tiny_model(family));
        assert!(
            model.newly_initialized().is_empty(),
            "{family}: {:?}",
            model.newly_initialized()
        );
        let names = common::param_names(&model);
        let reference = want.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(
            names.len(),
            reference,
            "{family}: parameter count {names:?}"
        );
        common::assert_both_graphs_match(&model, family, &want, &names);
    }
}

#[test]
fn label_smoothed_loss_and_gradients_match_transformers_label_smoother_on_both_graphs() {
    // tests/reference/make_t5_smoothing_fixture.py: the Trainer's LabelSmoother, ε 0.1.
    let want = golden_tensors("t5-v1_1-smoothed");
    let epsilon = want["epsilon"].to_vec1::<f32>().unwrap()[0] as f64;
    let plain = golden_tensors("t5-v1_1")["loss"].to_vec1::<f32>().unwrap()[0];
    assert_ne!(want["loss"].to_vec1::<f32>().unwrap()[0], plain);
    let model = load(&tiny_model("t5-v1_1"));
    let names = common::param_names(&model);
    common::assert_both_graphs_match_smoothed(&model, "t5-v1_1-smoothed", &want, &names, epsilon);
}

/// transformers' generations from the fixtures (tests/reference/make_t5_fixtures.py).
fn generations() -> serde_json::Value {
    let path = fixtures().join("golden/t5-generate.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// A JSON list of token ids.
fn ids(v: &serde_json::Value) -> Vec<u32> {
    v.as_array()
        .unwrap()
        .iter()
        .map(|x| x.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn greedy_generation_equals_transformers_on_both_graphs() {
    let golden = generations();
    for family in FAMILIES {
        let model = load(&tiny_model(family));
        for fast in [true, false] {
            let mut stepper = Stepper::new(&model, fast);
            for example in golden[family]["examples"].as_array().unwrap() {
                let got = generate(
                    &model,
                    &mut stepper,
                    &ids(&example["input_ids"]),
                    &Decoding::greedy(8),
                )
                .unwrap();
                assert_eq!(
                    got,
                    ids(&example["greedy"]),
                    "{family} (CPU graph: {fast}) from {}",
                    example["text"]
                );
            }
        }
    }
}

#[test]
fn a_playground_answer_streams_what_generate_writes_and_stops_when_asked() {
    use hone_engine::generate::{GenerationSettings, StopReason};
    use std::cell::Cell;
    let golden = generations();
    let t2t = TextToText::load(&tiny_model("t5"), &Device::Cpu, None).unwrap();
    let example = &golden["t5"]["examples"][0];
    let text = example["text"].as_str().unwrap().to_string();
    let settings = GenerationSettings {
        max_new_tokens: 8,
        ..Default::default()
    };
    let whole = t2t
        .generate(std::slice::from_ref(&text), &Decoding::greedy(8))
        .unwrap()
        .pop()
        .unwrap();
    assert_eq!(whole.token_ids, ids(&example["greedy"]));
    let mut pieces = Vec::new();
    let answer = t2t
        .answer(
            &text,
            &settings,
            &Search::default(),
            &mut |p| pieces.push(p.to_string()),
            &|| true,
        )
        .unwrap();
    assert!(pieces.len() > 2, "streamed token by token: {pieces:?}");
    assert_eq!(pieces.concat(), answer.text);
    assert_eq!(answer.text, whole.text);
    assert_eq!(answer.stop, StopReason::Length);
    assert_eq!(answer.tokens, whole.token_ids);
    assert_eq!(answer.prompt, ids(&example["input_ids"]));

    // Stopped after the second piece: what was sent stays, nothing more is written.
    let sent = Cell::new(0);
    let mut kept = Vec::new();
    let stopped = t2t
        .answer(
            &text,
            &settings,
            &Search::default(),
            &mut |p| {
                kept.push(p.to_string());
                sent.set(sent.get() + 1);
            },
            &|| sent.get() < 2,
        )
        .unwrap();
    assert_eq!(stopped.stop, StopReason::Cancelled);
    assert_eq!(kept.concat(), pieces[..2].concat());
    assert!(stopped.tokens.len() < answer.tokens.len());

    // A stop text ends the answer before it; the text before it is sent whole.
    let cut = answer
        .text
        .char_indices()
        .nth(answer.text.len() / 2)
        .unwrap()
        .0;
    let stop = answer.text[cut..].chars().take(3).collect::<String>();
    let at = answer.text.find(&stop).unwrap();
    let mut streamed = String::new();
    let ended = t2t
        .answer(
            &text,
            &GenerationSettings {
                stop: vec![stop.clone()],
                ..settings.clone()
            },
            &Search::default(),
            &mut |p| streamed.push_str(p),
            &|| true,
        )
        .unwrap();
    assert_eq!(
        ended.stop,
        StopReason::StopString,
        "{stop:?} in {:?}",
        answer.text
    );
    assert_eq!(ended.text, answer.text[..at]);
    assert_eq!(streamed, ended.text);

    // Beam search: transformers' beams, the text sent when the search ends.
    let mut beamed = Vec::new();
    let search = Search {
        num_beams: 3,
        early_stopping: true,
        ..Search::default()
    };
    let beam = t2t
        .answer(
            &text,
            &settings,
            &search,
            &mut |p| beamed.push(p.to_string()),
            &|| true,
        )
        .unwrap();
    let mut want = ids(&example["beam3"]);
    want.retain(|&t| t != 1);
    assert_eq!(beam.tokens, want);
    assert_eq!(beamed.concat(), beam.text);
    let bad = Search {
        num_beams: 0,
        ..Search::default()
    };
    let err = t2t
        .answer(&text, &settings, &bad, &mut |_| {}, &|| true)
        .unwrap_err();
    assert!(err.to_string().contains("beams"), "{err}");
}

#[test]
fn beam_search_equals_transformers() {
    let golden = generations();
    for family in FAMILIES {
        let model = load(&tiny_model(family));
        // The CPU graph keeps a decoder cache per beam; autograd re-runs every token.
        for fast in [true, false] {
            let mut stepper = Stepper::new(&model, fast);
            // transformers' generate(num_beams=3, length_penalty=1.0, early_stopping=True).
            let decoding = Decoding {
                num_beams: 3,
                length_penalty: 1.0,
                early_stopping: true,
                ..Decoding::greedy(8)
            };
            for example in golden[family]["examples"].as_array().unwrap() {
                let source = ids(&example["input_ids"]);
                let got = generate(&model, &mut stepper, &source, &decoding).unwrap();
                assert_eq!(
                    got,
                    ids(&example["beam3"]),
                    "{family} (CPU graph: {fast}) from {}",
                    example["text"]
                );
            }
        }
    }
}

#[test]
fn no_repeat_ngrams_equal_transformers_greedy_and_beam() {
    // tests/reference/make_t5_norepeat_fixture.py: no_repeat_ngram_size 2, 12 new tokens.
    let path = fixtures().join("golden/t5-norepeat.json");
    let golden: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    for family in FAMILIES {
        let model = load(&tiny_model(family));
        for fast in [true, false] {
            let mut stepper = Stepper::new(&model, fast);
            for example in golden[family].as_array().unwrap() {
                for (key, beams) in [("greedy", 1), ("beam3", 3)] {
                    let decoding = Decoding {
                        num_beams: beams,
                        early_stopping: beams > 1,
                        no_repeat_ngram_size: 2,
                        ..Decoding::greedy(12)
                    };
                    let got =
                        generate(&model, &mut stepper, &ids(&example["input_ids"]), &decoding)
                            .unwrap();
                    assert_eq!(
                        got,
                        ids(&example[key]),
                        "{family} {key} (CPU graph: {fast})"
                    );
                }
            }
        }
    }
}

#[test]
fn sampling_is_seeded_and_top_k_of_one_is_greedy() {
    let golden = generations();
    let model = load(&tiny_model("t5-v1_1"));
    let mut stepper = Stepper::new(&model, true);
    let source = ids(&golden["t5-v1_1"]["examples"][1]["input_ids"]);
    let sampled = |top_k: usize, seed: u64, stepper: &mut Stepper| {
        let settings = hone_engine::generate::GenerationSettings {
            temperature: 1.5,
            top_k,
            seed,
            ..Default::default()
        };
        let decoding = Decoding {
            sampling: Some(settings),
            ..Decoding::greedy(8)
        };
        generate(&model, stepper, &source, &decoding).unwrap()
    };
    assert_eq!(
        sampled(1, 3, &mut stepper),
        ids(&golden["t5-v1_1"]["examples"][1]["greedy"])
    );
    let (a, b) = (sampled(0, 3, &mut stepper), sampled(0, 3, &mut stepper));
    assert_eq!(a, b, "the same seed samples the same target");
    let others: Vec<Vec<u32>> = (4..9).map(|seed| sampled(0, seed, &mut stepper)).collect();
    assert!(
        others.iter().any(|o| *o != a),
        "other seeds sample other targets"
    );
}

/// A copy task over tokens 3..VOCAB: the source is a random sequence and its end token, the
/// target the same.
fn copy_set(n: usize, seed: u64) -> EncodedSet {
    const VOCAB: u64 = 24;
    let mut rng = hone_engine::rng::HoneRng::new(seed, 0);
    let mut set = EncodedSet::default();
    for _ in 0..n {
        let len = 3 + (rng.next_u64() % 4) as usize;
        let mut target: Vec<u32> = (0..len)
            .map(|_| 3 + (rng.next_u64() % (VOCAB - 3)) as u32)
            .collect();
        target.push(1);
        let mut input = vec![0];
        input.extend_from_slice(&target[..target.len() - 1]);
        let encoded = |ids: Vec<u32>| EncodedExample {
            type_ids: vec![0; ids.len()],
            input_ids: ids,
            truncated: false,
        };
        set.sources.push(encoded(target.clone()));
        set.examples.push(encoded(input));
        set.token_labels.push(target);
    }
    set
}

#[test]
fn a_tiny_t5_trained_from_scratch_learns_to_copy() {
    let dir = tempfile::tempdir().unwrap();
    let config = serde_json::json!({
        "model_type": "t5", "vocab_size": 24, "d_model": 64, "d_kv": 16, "d_ff": 128,
        "num_layers": 2, "num_heads": 4, "relative_attention_num_buckets": 16,
        "relative_attention_max_distance": 32, "feed_forward_proj": "gated-gelu",
        "dropout_rate": 0.0, "decoder_start_token_id": 0, "pad_token_id": 0,
        "eos_token_id": 1
    });
    std::fs::write(dir.path().join("config.json"), config.to_string()).unwrap();
    let spec = ModelSpec::from_dir(dir.path()).unwrap();
    let model = Model::from_config(spec, Task::Text2Text, 0, None, &Device::Cpu, 7).unwrap();
    let (train, valid) = (copy_set(4000, 1), copy_set(64, 2));
    let cfg = TrainingConfig {
        epochs: 8,
        batch_size: 16,
        lr: 3e-3,
        warmup_ratio: 0.05,
        ..Default::default()
    };
    let work = tempfile::tempdir().unwrap();
    let trainer = Trainer {
        model: &model,
        cfg: &cfg,
        train: &train,
        valid: &valid,
        labels: &[],
        work_dir: work.path(),
        resume: None,
        ewc: None,
        also: &[],
        name: "",
        samples: None,
        generations: None,
    };
    trainer
        .run(&mut |_| {}, &AtomicBool::new(false))
        .expect("training runs");
    let mut stepper = Stepper::new(&model, true);
    let exact = (0..valid.len())
        .filter(|&i| {
            let source = &valid.sources[i].input_ids;
            let got = generate(&model, &mut stepper, source, &Decoding::greedy(10)).unwrap();
            got == valid.token_labels[i]
        })
        .count();
    let em = exact as f64 / valid.len() as f64;
    eprintln!("exact match on unseen sequences: {em}");
    assert!(em >= 0.9, "exact match {em} after training");
}
