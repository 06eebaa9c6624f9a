//! Every family × head runs the same function on both graphs: the CPU graph (fused kernels,
//! hand-derived backward) and candle's autograd give the same logits, loss and gradient of
//! every parameter on random tiny models, with dropout on (both draw the same masks), and
//! every trainable tensor receives a gradient.

mod common;

use candle_core::Device;
use common::{per_token_labels, random_batch, tiny_spec};
use hone_engine::models::{Model, Task};
use hone_engine::rng::HoneRng;
use hone_engine::step::{gradients, BatchGradients};

const FAMILIES: [&str; 9] = [
    "bert",
    "distilbert",
    "roberta",
    "deberta",
    "deberta-v2",
    "llama",
    "qwen2",
    "t5",
    "t5-v1_1",
];
const ENCODERS: [&str; 5] = ["bert", "distilbert", "roberta", "deberta", "deberta-v2"];
const TOLERANCE: f64 = 1e-4;

#[test]
fn both_graphs_give_the_same_loss_and_gradients_for_every_family_and_head() {
    for family in FAMILIES {
        for &task in tiny_spec(family).descriptor().tasks {
            let spec = tiny_spec(family);
            let vocab = spec.encoder.vocab_size;
            let pad = spec.encoder.pad_token_id;
            let model = Model::random(spec, task, 3, &Device::Cpu, 7).unwrap();
            assert_eq!(model.task(), task);
            let batch = random_batch(6, 12, pad, 1);
            let batch = match task {
                Task::SequenceClassification => batch,
                Task::TokenClassification | Task::CausalLm => per_token_labels(batch, 3),
                // The decoder's targets, and a source of other lengths for the encoder.
                Task::Text2Text => hone_data::Batch {
                    source: Some(Box::new(random_batch(6, 9, pad, 2))),
                    ..per_token_labels(batch, 3)
                },
                // Two questions of three options each: one answer per question.
                Task::MultipleChoice => hone_data::Batch {
                    labels: vec![2, 0],
                    ..batch
                },
                // An answer's start and end token inside each sequence.
                Task::QuestionAnswering => {
                    let s = batch.seq_len;
                    let labels = (0..batch.batch_size)
                        .flat_map(|r| {
                            let len = batch.attention_mask[r * s..(r + 1) * s]
                                .iter()
                                .filter(|&&m| m == 1)
                                .count() as u32;
                            [(r as u32 + 1) % len, (r as u32 + 3) % len]
                        })
                        .collect();
                    hone_data::Batch { labels, ..batch }
                }
            };
            let case = format!("{family} {}", task.name());
            let host = gradients(&model, &batch, true, HoneRng::new(1, 1)).unwrap();
            let auto = gradients(&model, &batch, false, HoneRng::new(1, 1)).unwrap();
            let values = match task {
                Task::SequenceClassification => 6 * 3,
                Task::TokenClassification => batch.real_tokens() * 3,
                Task::MultipleChoice => 2 * 3,
                // A start and an end row per sequence, as long as the longest.
                Task::QuestionAnswering => 2 * 6 * host.logits.classes,
                Task::CausalLm | Task::Text2Text => batch.real_tokens() * vocab,
            };
            assert_eq!(host.logits.values.len(), values, "{case}");
            assert_same_logits_and_loss(&case, &host, &auto);
            assert_eq!(
                host.grads.len(),
                model.params().all().len(),
                "{case}: the CPU graph missed a parameter"
            );
            let largest = largest_gradient(&auto);
            for p in model.params().all() {
                let (h, a) = (&host.grads[p.name()], &auto.grads[p.name()]);
                // DeBERTa's key projections (`key_proj`, `pos_key_proj`) add the same
                // `query · bias` to every score of a row too.
                let key_bias = ["key.bias", "k_lin.bias", "key_proj.bias"]
                    .iter()
                    .any(|end| p.name().ends_with(end));
                // A shift shared by every option of a question, or by every token of a window
                // (the span scorer's bias, and the last layer's output norm bias, which only
                // feeds the span scorer): the softmax ignores it.
                let option_bias = (task == Task::MultipleChoice && p.name() == "classifier.bias")
                    || (task == Task::QuestionAnswering
                        && (p.name() == "qa_outputs.bias" || last_norm_bias(p.name())));
                if option_bias {
                    // Exactly zero in theory: both are rounding noise, far below the rest.
                    for g in [h, a] {
                        let ratio = common::max_abs(g) / largest;
                        assert!(ratio < 1e-5, "{case}: {} {ratio:.2e}", p.name());
                    }
                    continue;
                }
                let err = common::relative_error_with_floor(h, a, largest * 1e-3);
                assert!(err < TOLERANCE, "{case} {}: {err:.2e}", p.name());
                if !key_bias && !option_bias {
                    // Softmax ignores a shift shared by all keys (or all options), so key
                    // biases (and the option scorer's bias) get exactly zero; every other
                    // tensor must move.
                    assert!(
                        common::max_abs(a) > largest * 1e-6,
                        "{case}: no gradient reached {}",
                        p.name()
                    );
                }
            }
        }
    }
}

/// A question with fewer options than the others is padded with an option that takes no
/// part in its softmax: on both graphs its score is the padding score, the loss is the
/// cross-entropy over the real options alone, and what the padding row holds changes
/// nothing (no loss, no gradient).
#[test]
fn padded_options_take_no_part_in_the_loss_on_either_graph() {
    for family in ENCODERS {
        let spec = tiny_spec(family);
        let pad = spec.encoder.pad_token_id;
        let model = Model::random(spec, Task::MultipleChoice, 4, &Device::Cpu, 7).unwrap();
        // Two questions of four rows; the second question's last row pads it.
        let batch = hone_data::Batch {
            labels: vec![1, 2],
            padded_options: vec![false, false, false, false, false, false, false, true],
            ..random_batch(8, 10, pad, 3)
        };
        let mut other = batch.clone();
        let s = other.seq_len;
        for id in &mut other.input_ids[7 * s..7 * s + 4] {
            *id = 5 + (*id % 7);
        }
        for fast in [true, false] {
            let case = format!("{family} fast={fast}");
            let a = gradients(&model, &batch, fast, HoneRng::new(1, 1)).unwrap();
            let b = gradients(&model, &other, fast, HoneRng::new(1, 1)).unwrap();
            let v = &a.logits.values;
            assert_eq!(v.len(), 8, "{case}");
            assert_eq!(v[7], hone_engine::graph::PADDED_OPTION_SCORE, "{case}");
            // The loss over the real options: question 1 all four, question 2 the first three.
            let ce = |scores: &[f32], y: usize| {
                let max = scores.iter().fold(f32::MIN, |m, &x| m.max(x)) as f64;
                let sum: f64 = scores.iter().map(|&x| (x as f64 - max).exp()).sum();
                sum.ln() + max - scores[y] as f64
            };
            let want = (ce(&v[0..4], 1) + ce(&v[4..7], 2)) / 2.0;
            assert!((a.loss - want).abs() < 1e-5, "{case}: {} vs {want}", a.loss);
            assert_eq!(
                a.loss, b.loss,
                "{case}: the padding row's tokens changed the loss"
            );
            for p in model.params().all() {
                let (ga, gb) = (&a.grads[p.name()], &b.grads[p.name()]);
                let diff = common::relative_error_with_floor(ga, gb, 1e-12);
                assert!(
                    diff < 1e-6,
                    "{case}: {} moved with the padding row: {diff:.2e}",
                    p.name()
                );
            }
        }
    }
}

/// The output norm bias of the last layer of the tiny models (2 layers) where nothing but the
/// span scorer follows it (DistilBERT's `qa_dropout` masks tokens unevenly, so its moves).
fn last_norm_bias(name: &str) -> bool {
    name.ends_with("layer.1.output.LayerNorm.bias")
}

/// LoRA (with its own dropout) and bottleneck adapters run the same function on both graphs:
/// the same logits, loss and gradient of every adapter and head tensor, with dropout on, and
/// only those receive one.
#[test]
fn adapters_take_the_same_gradients_on_both_graphs_with_dropout() {
    use hone_engine::bottleneck::{BottleneckConfig, Placement};
    use hone_engine::lora::{LoraConfig, LoraTargets};

    for family in ENCODERS {
        for kind in ["lora", "bottleneck"] {
            let mut spec = tiny_spec(family);
            let targets = match family {
                "distilbert" => "q_lin,v_lin,lin1",
                // The query projection also projects DeBERTa-v3's relative embeddings; v2's
                // own position key projection is a target too.
                "deberta" => "query_proj,value_proj,dense",
                "deberta-v2" => "query_proj,value_proj,pos_key_proj,dense",
                _ => "query,value,dense",
            };
            let saved = vec!["classifier".to_string()];
            if kind == "lora" {
                spec.lora = Some(LoraConfig {
                    r: 3,
                    alpha: 6.0,
                    dropout: 0.2,
                    targets: LoraTargets::parse_list(targets),
                    rslora: false,
                    modules_to_save: saved,
                });
            } else {
                spec.bottleneck = Some(BottleneckConfig {
                    size: 5,
                    placement: Placement::Houlsby,
                    activation: "gelu".into(),
                    modules_to_save: saved,
                });
            }
            let model =
                Model::random(spec, Task::SequenceClassification, 3, &Device::Cpu, 7).unwrap();
            // B and up start at zero (a new adapter is the identity), which would leave A and
            // down without a gradient: give them values.
            for p in model.params().all() {
                if p.name().contains(".lora_B.") || p.name().contains(".adapter.up.") {
                    let noise = candle_core::Tensor::randn(0f32, 0.2, p.var().dims(), &Device::Cpu)
                        .unwrap();
                    p.var().set(&noise).unwrap();
                }
            }
            hone_engine::recipes::apply_freezing(
                &model,
                &hone_engine::config::TrainingConfig::default(),
                None,
            );
            let case = format!("{family} {kind}");
            let batch = random_batch(6, 12, model.spec().encoder.pad_token_id, 1);
            let host = gradients(&model, &batch, true, HoneRng::new(1, 1)).unwrap();
            let auto = gradients(&model, &batch, false, HoneRng::new(1, 1)).unwrap();
            assert_same_logits_and_loss(&case, &host, &auto);
            let trained: Vec<String> = model
                .params()
                .trainable()
                .map(|p| p.name().to_string())
                .collect();
            assert!(trained.len() > 4, "{case}: {trained:?}");
            assert_eq!(host.grads.len(), trained.len(), "{case}");
            assert_eq!(auto.grads.len(), trained.len(), "{case}");
            let largest = largest_gradient(&auto);
            for name in &trained {
                let (h, a) = (&host.grads[name], &auto.grads[name]);
                let err = common::relative_error_with_floor(h, a, largest * 1e-3);
                assert!(err < TOLERANCE, "{case} {name}: {err:.2e}");
                assert!(
                    common::max_abs(a) > largest * 1e-6,
                    "{case}: no gradient reached {name}"
                );
            }
        }
    }
}

/// A prefix (prefix tuning) runs the same function on both graphs with attention dropout on:
/// the dropout mask covers the prefix columns in the same layout, and the prefix's gradient
/// (summed over the sequences sharing it) agrees, on decoders with grouped, single and one
/// key/value head per query head; in bf16 the step runs too (the prefix's keys reach the
/// product in a layout it reads) and stays near f32's.
#[test]
fn a_prefix_takes_the_same_gradient_on_both_graphs_with_dropout() {
    for family in ["llama", "qwen2", "llama-mha"] {
        let mut spec = tiny_spec(family);
        spec.encoder.dropout.attention = 0.2;
        spec.prefix = Some(hone_engine::prefix::PrefixConfig {
            tokens: 4,
            projection: None,
            modules_to_save: Vec::new(),
        });
        let pad = spec.encoder.pad_token_id;
        let model = Model::random(spec, Task::CausalLm, 0, &Device::Cpu, 7).unwrap();
        hone_engine::recipes::apply_freezing(
            &model,
            &hone_engine::config::TrainingConfig::default(),
            None,
        );
        let batch = per_token_labels(random_batch(5, 11, pad, 3), 3);
        let host = gradients(&model, &batch, true, HoneRng::new(2, 1)).unwrap();
        let auto = gradients(&model, &batch, false, HoneRng::new(2, 1)).unwrap();
        assert_same_logits_and_loss(family, &host, &auto);
        let name = hone_engine::prefix::PREFIX_PARAM;
        assert_eq!(host.grads.len(), 1, "{family}: only the prefix trains");
        assert_eq!(auto.grads.len(), 1, "{family}: only the prefix trains");
        let (h, a) = (&host.grads[name], &auto.grads[name]);
        assert!(
            common::max_abs(a) > 0.0,
            "{family}: no gradient reached the prefix"
        );
        let err = common::relative_error(h, a);
        assert!(err < TOLERANCE, "{family} prefix gradient: {err:.2e}");
        let bf16 = hone_engine::step::mixed_precision_gradients(
            &model,
            &batch,
            hone_engine::precision::Precision::Bf16,
            HoneRng::new(2, 1),
        )
        .unwrap();
        assert!(
            (bf16.loss - auto.loss).abs() < 2e-2 * auto.loss.abs(),
            "{family} bf16 loss {} vs {}",
            bf16.loss,
            auto.loss
        );
        assert!(common::max_abs(&bf16.grads[name]) > 0.0, "{family} bf16");
    }
}

/// Label smoothing takes the same loss and gradients on both graphs for every task it covers
/// (the CPU graph's class rows and fused output layer, autograd's log-softmax), changes the
/// loss, and is refused where rows of classes are padded (multiple choice, answer spans).
#[test]
fn label_smoothing_gives_the_same_loss_and_gradients_on_both_graphs() {
    let smoothed = hone_engine::step::smoothed_gradients;
    for (family, task) in [
        ("bert", Task::SequenceClassification),
        ("roberta", Task::TokenClassification),
        ("llama", Task::CausalLm),
    ] {
        let spec = tiny_spec(family);
        let pad = spec.encoder.pad_token_id;
        let model = Model::random(spec, task, 3, &Device::Cpu, 7).unwrap();
        let batch = random_batch(6, 12, pad, 1);
        let batch = match task {
            Task::SequenceClassification => batch,
            _ => per_token_labels(batch, 3),
        };
        let case = format!("{family} {}", task.name());
        let host = smoothed(&model, &batch, true, HoneRng::new(1, 1), 0.2).unwrap();
        let auto = smoothed(&model, &batch, false, HoneRng::new(1, 1), 0.2).unwrap();
        let plain = gradients(&model, &batch, true, HoneRng::new(1, 1)).unwrap();
        // Near-uniform random logits keep the loss close; the targets' gradient moves.
        let moved = model
            .params()
            .all()
            .iter()
            .map(|p| {
                let (s, p) = (&host.grads[p.name()], &plain.grads[p.name()]);
                common::max_abs(&(s - p).unwrap()) / common::max_abs(p).max(1e-12)
            })
            .fold(0f64, f64::max);
        assert!(
            moved > 0.05,
            "{case}: smoothing changed nothing ({moved:.2e})"
        );
        assert!(
            (host.loss - auto.loss).abs() < TOLERANCE * auto.loss.abs(),
            "{case} loss {} vs {}",
            host.loss,
            auto.loss
        );
        let largest = largest_gradient(&auto);
        for p in model.params().all() {
            let (h, a) = (&host.grads[p.name()], &auto.grads[p.name()]);
            let err = common::relative_error_with_floor(h, a, largest * 1e-3);
            assert!(err < TOLERANCE, "{case} {}: {err:.2e}", p.name());
        }
    }
    let spec = tiny_spec("bert");
    let pad = spec.encoder.pad_token_id;
    let model = Model::random(spec, Task::MultipleChoice, 3, &Device::Cpu, 7).unwrap();
    let batch = hone_data::Batch {
        labels: vec![2, 0],
        ..random_batch(6, 12, pad, 1)
    };
    for fast in [true, false] {
        let err = smoothed(&model, &batch, fast, HoneRng::new(1, 1), 0.1)
            .err()
            .expect("multiple choice refuses label smoothing")
            .to_string();
        assert!(err.contains("label smoothing"), "{err}");
    }
}

/// The largest gradient value of a pass: the scale gradient errors are measured against.
fn largest_gradient(pass: &BatchGradients) -> f64 {
    pass.grads
        .values()
        .map(common::max_abs)
        .fold(0f64, f64::max)
}

/// Asserts that the CPU graph's step (`host`) gave the autograd graph's logits and loss
/// within [`TOLERANCE`].
fn assert_same_logits_and_loss(case: &str, host: &BatchGradients, auto: &BatchGradients) {
    let to_tensor = |v: &[f32]| candle_core::Tensor::from_slice(v, v.len(), &Device::Cpu).unwrap();
    let err = common::relative_error(
        &to_tensor(&host.logits.values),
        &to_tensor(&auto.logits.values),
    );
    assert!(err < TOLERANCE, "{case} logits: {err:.2e}");
    assert!(
        (host.loss - auto.loss).abs() < TOLERANCE * auto.loss.abs(),
        "{case} loss {} vs {}",
        host.loss,
        auto.loss
    );
}
