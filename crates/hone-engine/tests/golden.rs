//! Hone's models against Hugging Face `transformers` (tests/reference/make_fixtures.py):
//! logits, loss, the gradient of every parameter, and three AdamW steps with warmup, clipping
//! and no-decay groups, for tiny BERT, DistilBERT, RoBERTa and DeBERTa-v3 models.

mod common;

use candle_core::Device;
use common::{
    as_u32, golden, golden_batch, gradient_floor, relative_error, relative_error_with_floor,
    tiny_model,
};
use hone_data::{Batch, TextTokenizer};
use hone_engine::config::TrainingConfig;
use hone_engine::cpu::HostGrads;
use hone_engine::models::{Model, Task};
use hone_engine::optim::{Gradients, Optimizer};
use hone_engine::rng::HoneRng;
use hone_engine::schedule::Schedule;

const FAMILIES: [&str; 4] = ["bert", "distilbert", "roberta", "deberta"];
/// The families with a sequence-classification fixture only: DeBERTa-v2's other layout (its
/// own position projections, absolute positions, segments, narrower embeddings, clamped
/// distances).
const SEQUENCE_FAMILIES: [&str; 5] = ["bert", "distilbert", "roberta", "deberta", "deberta-v2"];
const TOLERANCE: f64 = 1e-4;

fn load(family: &str) -> Model {
    // Dropout 0: the reference ran in eval mode.
    let model = Model::load(
        &tiny_model(family),
        Task::SequenceClassification,
        3,
        Some(0.0),
        &Device::Cpu,
        0,
    )
    .unwrap();
    assert!(
        model.newly_initialized().is_empty(),
        "{:?}",
        model.newly_initialized()
    );
    model
}

#[test]
fn tokenizer_matches_transformers() {
    for family in SEQUENCE_FAMILIES {
        let (_, meta) = golden(family);
        let texts: Vec<(String, Option<String>)> = meta["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| {
                let t = t.as_array().unwrap();
                (
                    t[0].as_str().unwrap().to_string(),
                    t.get(1).map(|p| p.as_str().unwrap().to_string()),
                )
            })
            .collect();
        let tokenizer = TextTokenizer::from_model_dir(&tiny_model(family), 64).unwrap();
        let encoded = tokenizer.encode(&texts).unwrap();
        let model = load(family);
        let batch = hone_data::Batcher::new(model.spec().encoder.pad_token_id)
            .batch(&encoded.iter().collect::<Vec<_>>(), &[]);
        let want = golden_batch(family);
        assert_eq!(batch.input_ids, want.input_ids, "{family} input ids");
        assert_eq!(batch.attention_mask, want.attention_mask, "{family} mask");
        if family == "bert" || family == "deberta-v2" {
            assert_eq!(
                batch.token_type_ids, want.token_type_ids,
                "{family} segments"
            );
        }
    }
}

/// Logits, loss and every parameter's gradient of both graphs (the CPU graph and candle's
/// autograd) against the reference.
#[test]
fn logits_loss_and_every_gradient_match_transformers_on_both_graphs() {
    for family in SEQUENCE_FAMILIES {
        let (want, _) = golden(family);
        let model = load(family);
        // Every parameter trains; the reference has a gradient for each (attention key biases'
        // are exactly zero: softmax ignores a constant shift, so there Hone's f32 noise is
        // compared against 1e-3 × the model's largest gradient).
        let names = common::param_names(&model);
        let reference_count = want.keys().filter(|k| k.starts_with("grad.")).count();
        assert_eq!(names.len(), reference_count, "{family}: parameter count");
        common::assert_both_graphs_match(&model, family, &want, &names);
    }
}

/// Token classification: a `*ForTokenClassification` head (5 labels, its weights from the
/// reference) on the golden batch with per-token labels (-100 on special tokens and every
/// third token), on both graphs.
#[test]
fn token_classification_logits_loss_and_every_gradient_match_transformers_on_both_graphs() {
    for family in FAMILIES {
        let want = common::token_golden(family);
        let model = Model::load(
            &tiny_model(family),
            Task::TokenClassification,
            5,
            Some(0.0),
            &Device::Cpu,
            0,
        )
        .unwrap();
        // The checkpoint's sequence head (3 labels) does not fit: the token head is new, and
        // takes the reference's weights below. Nothing else is new (BERT's pooler is unused).
        assert_eq!(
            model.newly_initialized(),
            ["classifier.weight", "classifier.bias"],
            "{family}"
        );
        for name in ["classifier.weight", "classifier.bias"] {
            let p = model.params().get(name).unwrap();
            p.var().set(&want[&format!("head.{name}")]).unwrap();
        }
        let ids = &want["input.input_ids"];
        let (b, s) = ids.dims2().unwrap();
        let mask = as_u32(&want["input.attention_mask"]);
        let labels: Vec<u32> = want["labels"]
            .flatten_all()
            .unwrap()
            .to_vec1::<i64>()
            .unwrap()
            .into_iter()
            .map(|y| {
                if y < 0 {
                    hone_engine::graph::IGNORE_LABEL
                } else {
                    y as u32
                }
            })
            .collect();
        let batch = Batch {
            input_ids: as_u32(ids),
            token_type_ids: want
                .get("input.token_type_ids")
                .map(as_u32)
                .unwrap_or_else(|| vec![0; b * s]),
            attention_mask: mask.clone(),
            labels,
            batch_size: b,
            seq_len: s,
            padded_options: Vec::new(),
            soft_targets: Vec::new(),
            source: None,
        };
        // The reference's logits of real tokens, in packed order.
        let all = want["logits"]
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        let real: Vec<f32> = all
            .chunks_exact(5)
            .zip(&mask)
            .filter(|(_, &m)| m == 1)
            .flat_map(|(row, _)| row.to_vec())
            .collect();
        let n = real.len();
        let want_logits = candle_core::Tensor::from_vec(real, n, &Device::Cpu).unwrap();
        let floor = gradient_floor(&want);
        for fast in [true, false] {
            let path = if fast { "CPU graph" } else { "autograd" };
            let got =
                hone_engine::step::gradients(&model, &batch, fast, HoneRng::new(0, 0)).unwrap();
            let logits =
                candle_core::Tensor::from_slice(&got.logits.values, n, &Device::Cpu).unwrap();
            let err = relative_error(&logits, &want_logits);
            assert!(err < TOLERANCE, "{family} {path} token logits: {err:.2e}");
            let case = format!("{family} {path} token");
            assert_step_matches(&case, &model, &got, &want, floor, TOLERANCE, TOLERANCE);
        }
    }
}

/// The options of a question share everything below the scorer, and the loss gradients of
/// a question's options add up to zero: the gradients of biases and position embeddings are
/// sums of terms that almost cancel, so f32 leaves them with the terms' absolute error, up to
/// 1.5e-4 of the net value (weight matrices: ~1e-6). Both graphs show it, each with its own
/// summation order; logits and loss are held to [`TOLERANCE`].
const CHOICE_GRADIENT_TOLERANCE: f64 = 2e-4;

/// Multiple choice: a `*ForMultipleChoice` head (one output; its new tensors from the
/// reference) scoring 3 questions × 4 options, softmax over the options, on both graphs; and
/// Hone's encoding of the questions gives the reference's input ids.
#[test]
fn multiple_choice_logits_loss_and_every_gradient_match_transformers_on_both_graphs() {
    for family in FAMILIES {
        let dir = common::fixtures().join("golden");
        let want: std::collections::HashMap<String, candle_core::Tensor> =
            candle_core::safetensors::load(
                dir.join(format!("{family}-choice.safetensors")),
                &Device::Cpu,
            )
            .unwrap();
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{family}-choice.json"))).unwrap(),
        )
        .unwrap();
        let model = Model::load(
            &tiny_model(family),
            Task::MultipleChoice,
            4,
            Some(0.0),
            &Device::Cpu,
            0,
        )
        .unwrap();
        let new: Vec<String> = meta["new"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        let mut got_new = model.newly_initialized().to_vec();
        got_new.sort();
        let mut want_new = new.clone();
        want_new.sort();
        assert_eq!(got_new, want_new, "{family}: new head tensors");
        for name in &new {
            let p = model.params().get(name).unwrap();
            p.var().set(&want[&format!("head.{name}")]).unwrap();
        }
        // Hone's own encoding of the questions: the reference's ids, options back to back.
        let examples: Vec<hone_data::Example> = meta["questions"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| hone_data::Example {
                text: q["question"].as_str().unwrap().into(),
                choices: q["options"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|o| o.as_str().unwrap().into())
                    .collect(),
                label: Some(q["answer"].to_string()),
                ..Default::default()
            })
            .collect();
        let tokenizer = TextTokenizer::from_model_dir(&tiny_model(family), 64).unwrap();
        let set = hone_engine::job::encode_choices(&tokenizer, &examples, 4).unwrap();
        assert_eq!((set.len(), set.group()), (3, 4), "{family}");
        let batcher = hone_data::Batcher::new(model.spec().encoder.pad_token_id);
        let batch = set.batch(&batcher, &[0, 1, 2]);
        let ids = &want["input.input_ids"];
        let (rows, s) = ids.dims2().unwrap();
        assert_eq!((batch.batch_size, batch.seq_len), (rows, s), "{family}");
        assert_eq!(batch.input_ids, as_u32(ids), "{family}: input ids");
        assert_eq!(batch.attention_mask, as_u32(&want["input.attention_mask"]));
        assert_eq!(batch.labels, as_u32(&want["labels"]), "{family}: answers");
        if let Some(types) = want.get("input.token_type_ids") {
            assert_eq!(batch.token_type_ids, as_u32(types), "{family}: segments");
        }
        let floor = gradient_floor(&want);
        for fast in [true, false] {
            let path = if fast { "CPU graph" } else { "autograd" };
            let got =
                hone_engine::step::gradients(&model, &batch, fast, HoneRng::new(0, 0)).unwrap();
            assert_eq!(got.logits.classes, 4, "{family} {path}");
            let logits =
                candle_core::Tensor::from_slice(&got.logits.values, (3, 4), &Device::Cpu).unwrap();
            let err = relative_error(&logits, &want["logits"]);
            assert!(err < TOLERANCE, "{family} {path} choice logits: {err:.2e}");
            let case = format!("{family} {path} choice");
            assert_step_matches(
                &case,
                &model,
                &got,
                &want,
                floor,
                CHOICE_GRADIENT_TOLERANCE,
                1e-2,
            );
        }
    }
}

/// Asserts that one step's loss, its number of gradients and every parameter's gradient are
/// the reference's (`want`: `loss` and `grad.{name}`): each gradient within `tolerance`
/// (relative, against `floor`); one that is zero in the reference (under 1e-12: a shift shared by
/// every option of a multiple-choice scorer) must be under `floor × zero_tolerance`.
fn assert_step_matches(
    case: &str,
    model: &Model,
    got: &hone_engine::step::BatchGradients,
    want: &std::collections::HashMap<String, candle_core::Tensor>,
    floor: f64,
    tolerance: f64,
    zero_tolerance: f64,
) {
    let want_loss = want["loss"].to_vec1::<f32>().unwrap()[0] as f64;
    assert!(
        (got.loss - want_loss).abs() / want_loss < TOLERANCE,
        "{case} loss {} vs {want_loss}",
        got.loss
    );
    let reference_count = want.keys().filter(|k| k.starts_with("grad.")).count();
    assert_eq!(got.grads.len(), reference_count, "{case}: parameters");
    for p in model.params().all() {
        let reference = want
            .get(&format!("grad.{}", p.name()))
            .unwrap_or_else(|| panic!("{case}: no reference gradient for {}", p.name()));
        let got = &got.grads[p.name()];
        if common::max_abs(reference) < 1e-12 {
            assert!(
                common::max_abs(got) < floor * zero_tolerance,
                "{case} grad {} should be zero",
                p.name()
            );
            continue;
        }
        let err = relative_error_with_floor(got, reference, floor);
        assert!(
            err < tolerance,
            "{case} grad {}: relative error {err:.2e}",
            p.name()
        );
    }
}

/// Question answering: a `*ForQuestionAnswering` head (`qa_outputs`; its weights from the
/// reference) on the windows of two passages (max length 32, stride 8), on both graphs. The
/// softmax over a window's tokens leaves its padding out (Hone packs the windows; the
/// reference masks them the same way). Hone's own windows, labels and answers are the
/// reference's.
#[test]
fn question_answering_logits_loss_and_every_gradient_match_transformers_on_both_graphs() {
    for family in FAMILIES {
        let dir = common::fixtures().join("golden");
        let want: std::collections::HashMap<String, candle_core::Tensor> =
            candle_core::safetensors::load(
                dir.join(format!("{family}-qa.safetensors")),
                &Device::Cpu,
            )
            .unwrap();
        let meta: serde_json::Value = serde_json::from_str(
            &std::fs::read_to_string(dir.join(format!("{family}-qa.json"))).unwrap(),
        )
        .unwrap();
        let model = Model::load(
            &tiny_model(family),
            Task::QuestionAnswering,
            2,
            Some(0.0),
            &Device::Cpu,
            0,
        )
        .unwrap();
        let mut new: Vec<String> = meta["new"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_str().unwrap().to_string())
            .collect();
        new.sort();
        let mut got_new = model.newly_initialized().to_vec();
        got_new.sort();
        assert_eq!(got_new, new, "{family}: new head tensors");
        for name in &new {
            let p = model.params().get(name).unwrap();
            p.var().set(&want[&format!("head.{name}")]).unwrap();
        }
        // Hone's own windows of the questions: the reference's ids and labels.
        let examples: Vec<hone_data::Example> = meta["examples"]
            .as_array()
            .unwrap()
            .iter()
            .map(|q| hone_data::Example {
                text: q["question"].as_str().unwrap().into(),
                text_pair: Some(q["context"].as_str().unwrap().into()),
                answers: q["answers"]["text"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .zip(q["answers"]["answer_start"].as_array().unwrap())
                    .map(|(t, s)| hone_data::AnswerSpan {
                        text: t.as_str().unwrap().into(),
                        start: s.as_u64().unwrap() as usize,
                    })
                    .collect(),
                ..Default::default()
            })
            .collect();
        let max_length = meta["max_length"].as_u64().unwrap() as usize;
        let stride = meta["stride"].as_u64().unwrap() as usize;
        let tokenizer = TextTokenizer::from_model_dir(&tiny_model(family), max_length).unwrap();
        let set = hone_engine::answers::encode_answers(&tokenizer, &examples, stride, 30).unwrap();
        let batcher = hone_data::Batcher::new(model.spec().encoder.pad_token_id);
        let all: Vec<usize> = (0..set.len()).collect();
        let batch = set.batch(&batcher, &all);
        let ids = &want["input.input_ids"];
        let (w, s) = ids.dims2().unwrap();
        assert_eq!(
            (batch.batch_size, batch.seq_len),
            (w, s),
            "{family}: windows"
        );
        assert_eq!(batch.input_ids, as_u32(ids), "{family}: input ids");
        let mask = as_u32(&want["input.attention_mask"]);
        assert_eq!(batch.attention_mask, mask, "{family}: mask");
        if let Some(types) = want.get("input.token_type_ids") {
            assert_eq!(batch.token_type_ids, as_u32(types), "{family}: segments");
        }
        let (starts, ends) = (
            as_u32(&want["start_positions"]),
            as_u32(&want["end_positions"]),
        );
        let labels: Vec<u32> = starts
            .iter()
            .zip(&ends)
            .flat_map(|(&a, &b)| [a, b])
            .collect();
        assert_eq!(batch.labels, labels, "{family}: start and end labels");
        assert!(
            labels.contains(&0) && labels.iter().any(|&y| y > 0),
            "{family}: both kinds of window"
        );
        // The reference's scores of real tokens, as Hone lays them out: per window its
        // starts, then its ends.
        let ref_rows: Vec<f32> = {
            let st = want["start_logits"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            let en = want["end_logits"]
                .flatten_all()
                .unwrap()
                .to_vec1::<f32>()
                .unwrap();
            (0..w)
                .flat_map(|r| [&st[r * s..(r + 1) * s], &en[r * s..(r + 1) * s]])
                .flatten()
                .copied()
                .collect()
        };
        let real: Vec<bool> = (0..w)
            .flat_map(|r| {
                let m = &mask[r * s..(r + 1) * s];
                [m, m]
            })
            .flatten()
            .map(|&m| m == 1)
            .collect();
        let pick = |v: &[f32]| -> Vec<f32> {
            v.iter()
                .zip(&real)
                .filter(|(_, &r)| r)
                .map(|(&x, _)| x)
                .collect()
        };
        let want_logits = pick(&ref_rows);
        let n = want_logits.len();
        let want_logits = candle_core::Tensor::from_vec(want_logits, n, &Device::Cpu).unwrap();
        let floor = gradient_floor(&want);
        for fast in [true, false] {
            let path = if fast { "CPU graph" } else { "autograd" };
            let got =
                hone_engine::step::gradients(&model, &batch, fast, HoneRng::new(0, 0)).unwrap();
            assert_eq!(got.logits.classes, s, "{family} {path}");
            let logits =
                candle_core::Tensor::from_vec(pick(&got.logits.values), n, &Device::Cpu).unwrap();
            let err = relative_error(&logits, &want_logits);
            assert!(err < TOLERANCE, "{family} {path} span logits: {err:.2e}");
            let case = format!("{family} {path} span");
            assert_step_matches(&case, &model, &got, &want, floor, TOLERANCE, TOLERANCE);
        }
        // The answers Hone reads from its scores are the question-answering pipeline's (run
        // by tests/reference/qa_pipeline.py): with answers of up to 30 tokens, and of up to 2,
        // where two windows' same answer merges into one with their summed score.
        let mut stepper = hone_engine::step::Stepper::new(&model, true);
        let logits = hone_engine::inference::example_logits(&model, &set, 8, &mut stepper).unwrap();
        let passages = set.passages.as_ref().unwrap();
        for (expected, max_len) in [(&meta["pipeline"], 30), (&meta["short"]["pipeline"], 2)] {
            for (i, (range, want)) in passages
                .windows_by_question()
                .into_iter()
                .zip(expected.as_array().unwrap())
                .enumerate()
            {
                let windows: Vec<_> = range
                    .map(|w| (&logits[w], &passages.offsets[w][..]))
                    .collect();
                let got =
                    hone_engine::answers::best_answer(&windows, &passages.contexts[i], max_len)
                        .unwrap();
                let what = format!("{family} answer {i} (longest {max_len})");
                assert_eq!(got.answer, want["answer"].as_str().unwrap(), "{what}");
                assert_eq!(got.start as u64, want["start"].as_u64().unwrap(), "{what}");
                assert_eq!(got.end as u64, want["end"].as_u64().unwrap(), "{what}");
                let score = want["score"].as_f64().unwrap();
                assert!(
                    (got.score - score).abs() / score < 1e-3,
                    "{what}: score {} vs {score}",
                    got.score
                );
            }
        }
    }
}

/// AdamW with the reference's settings and Hone's parameter groups (no decay on biases and
/// LayerNorm weights).
fn reference_optimizer(model: &Model, a: &serde_json::Value) -> Optimizer {
    let cfg = TrainingConfig {
        weight_decay: a["weight_decay"].as_f64().unwrap(),
        beta1: a["betas"][0].as_f64().unwrap(),
        beta2: a["betas"][1].as_f64().unwrap(),
        adam_eps: a["eps"].as_f64().unwrap(),
        ..Default::default()
    };
    hone_engine::recipes::optimizer(model, &cfg)
}

/// Compares each weight's change since `initial` with the reference's (the change, not the
/// value: an update is ~1e-3 of the weights).
fn assert_changes_match(
    family: &str,
    model: &Model,
    initial: &std::collections::HashMap<String, candle_core::Tensor>,
    want: &std::collections::HashMap<String, candle_core::Tensor>,
) {
    for p in model.params().all() {
        let reference = &want[&format!("after_adamw.{}", p.name())];
        let start = &initial[p.name()];
        let got = (p.value() - start).unwrap();
        let expected = (reference - start).unwrap();
        let err = relative_error(&got, &expected);
        assert!(
            err < TOLERANCE,
            "{family} {} after AdamW: relative error {err:.2e}",
            p.name()
        );
    }
}

/// Replays the reference's gradients of three steps through Hone's clipping, schedule,
/// parameter groups and AdamW, and compares the weights' change after the last step.
#[test]
fn three_adamw_steps_with_warmup_clipping_and_no_decay_groups_match_torch() {
    for family in SEQUENCE_FAMILIES {
        let (want, meta) = golden(family);
        let a = &meta["adamw"];
        let model = load(family);
        let initial = common::snapshot(model.params());
        let mut opt = reference_optimizer(&model, a);
        let (warmup, total) = (
            a["warmup_steps"].as_u64().unwrap(),
            a["total_steps"].as_u64().unwrap(),
        );
        for step in 0..a["steps"].as_u64().unwrap() {
            let prefix = if step == 0 {
                "grad.".to_string()
            } else {
                format!("step{step}.grad.")
            };
            let mut grads = Gradients::default();
            for p in model.params().all() {
                grads.insert(p.name(), want[&format!("{prefix}{}", p.name())].clone());
            }
            let norm = grads.clip(a["clip_norm"].as_f64().unwrap()).unwrap();
            let want_norm = a["grad_norms"][step as usize].as_f64().unwrap();
            assert!(
                (norm - want_norm).abs() / want_norm < 1e-6,
                "{family} step {step}: grad norm {norm} vs {want_norm}"
            );
            let lr = a["lr"].as_f64().unwrap() * Schedule::Linear.multiplier(step, warmup, total);
            let want_lr = a["lrs"][step as usize].as_f64().unwrap();
            assert!(
                (lr - want_lr).abs() < 1e-15,
                "{family} step {step}: lr {lr} vs {want_lr}"
            );
            opt.step(&grads, lr, 1.0).unwrap();
        }
        assert_changes_match(family, &model, &initial, &want);
    }
}

/// The same replay through the CPU path's in-place AdamW.
#[test]
fn host_adamw_replay_matches_torch() {
    for family in SEQUENCE_FAMILIES {
        let (want, meta) = golden(family);
        let a = &meta["adamw"];
        let model = load(family);
        let initial = common::snapshot(model.params());
        let mut opt = reference_optimizer(&model, a);
        let (warmup, total) = (
            a["warmup_steps"].as_u64().unwrap(),
            a["total_steps"].as_u64().unwrap(),
        );
        let store = model.params();
        let mut grads = HostGrads::default();
        for step in 0..a["steps"].as_u64().unwrap() {
            grads.prepare(store);
            let prefix = if step == 0 {
                "grad.".to_string()
            } else {
                format!("step{step}.grad.")
            };
            for (i, p) in store.all().iter().enumerate() {
                let g = want[&format!("{prefix}{}", p.name())]
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                grads.get_mut(i).unwrap().copy_from_slice(&g);
            }
            let norm = grads.squared_norm().sqrt();
            let want_norm = a["grad_norms"][step as usize].as_f64().unwrap();
            assert!(
                (norm - want_norm).abs() / want_norm < 1e-6,
                "{family} step {step}: {norm} vs {want_norm}"
            );
            let clip = a["clip_norm"].as_f64().unwrap();
            let scale = (clip / (norm + 1e-6)).min(1.0) as f32;
            let lr = a["lr"].as_f64().unwrap() * Schedule::Linear.multiplier(step, warmup, total);
            opt.step_host(&grads, store, lr, scale).unwrap();
        }
        assert_changes_match(family, &model, &initial, &want);
    }
}

#[test]
fn schedules_match_transformers() {
    let path = common::fixtures().join("golden/schedules.json");
    let json: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let total = json["total_steps"].as_u64().unwrap();
    let warmup = json["warmup_steps"].as_u64().unwrap();
    for (name, schedule) in [
        ("linear", Schedule::Linear),
        ("cosine", Schedule::Cosine),
        ("constant", Schedule::Constant),
    ] {
        for (step, want) in json["multipliers"][name]
            .as_array()
            .unwrap()
            .iter()
            .enumerate()
        {
            let got = schedule.multiplier(step as u64, warmup, total);
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-12,
                "{name} step {step}: {got} vs {want}"
            );
        }
    }
}

fn recipes_fixture() -> serde_json::Value {
    let path = common::fixtures().join("golden/recipes.json");
    serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap()
}

/// Cosine with restarts, polynomial, exponential, the three cyclic modes and one-cycle against
/// transformers' and PyTorch's own schedulers (tests/reference/make_recipe_fixtures.py).
#[test]
fn every_schedule_matches_its_pytorch_or_transformers_definition() {
    use hone_engine::schedule::{CyclicMode, LrSchedule, ScheduleParams};
    let json = recipes_fixture();
    let total = json["total_steps"].as_u64().unwrap();
    let warmup = json["warmup_steps"].as_u64().unwrap();
    let rows = json["schedules"].as_object().unwrap();
    assert_eq!(rows.len(), 8);
    for (name, row) in rows {
        let shape: Schedule = match name.as_str() {
            n if n.starts_with("cyclic") => Schedule::Cyclic,
            n if n.starts_with("exponential") => Schedule::Exponential,
            n => n.parse().unwrap(),
        };
        let p = &row["params"];
        let params = ScheduleParams {
            min_ratio: p["min_ratio"].as_f64(),
            gamma: p["gamma"].as_f64(),
            power: p["power"].as_f64().unwrap_or(1.0),
            cycles: p["cycles"].as_u64().unwrap_or(2) as u32,
            cyclic_mode: p["cyclic_mode"]
                .as_str()
                .map(|m| m.parse::<CyclicMode>().unwrap())
                .unwrap_or_default(),
        };
        let schedule = LrSchedule {
            shape,
            params,
            warmup,
            total,
        };
        for (step, want) in row["multipliers"].as_array().unwrap().iter().enumerate() {
            let got = schedule.multiplier(step as u64);
            let want = want.as_f64().unwrap();
            assert!(
                (got - want).abs() < 1e-12,
                "{name} step {step}: {got} vs {want}"
            );
        }
    }
}

/// The distillation loss and its gradient, on the CPU kernel and through candle's autograd,
/// against torch's `kl_div` (batchmean) × T² + `cross_entropy` (make_recipe_fixtures.py).
#[test]
fn the_distillation_loss_and_gradient_match_torch() {
    use hone_engine::distill::{distilled_cross_entropy, distilled_loss_sum, Distill};
    let json = recipes_fixture();
    let cases = json["distillation"].as_array().unwrap();
    assert_eq!(cases.len(), 3);
    let floats = |v: &serde_json::Value| -> Vec<f32> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|x| x.as_f64().unwrap() as f32)
            .collect()
    };
    for case in cases {
        let distill = Distill {
            alpha: case["alpha"].as_f64().unwrap(),
            temperature: case["temperature"].as_f64().unwrap(),
        };
        let classes = case["classes"].as_u64().unwrap() as usize;
        let student = floats(&case["student"]);
        let teacher = floats(&case["teacher"]);
        let labels: Vec<u32> = case["labels"]
            .as_array()
            .unwrap()
            .iter()
            .map(|y| y.as_u64().unwrap() as u32)
            .collect();
        let rows = labels.len();
        let want_loss = case["loss"].as_f64().unwrap();
        let want_grad = floats(&case["grad"]);
        // The CPU kernel: summed loss, gradient scaled by 1/rows (torch's batch means).
        let mut d = vec![0f32; student.len()];
        let scale = 1.0 / rows as f64;
        let loss =
            distilled_cross_entropy(&student, &labels, &teacher, classes, scale, distill, &mut d)
                * scale;
        assert!((loss - want_loss).abs() < 1e-6, "{loss} vs {want_loss}");
        for (g, w) in d.iter().zip(&want_grad) {
            assert!((g - w).abs() < 1e-6, "{d:?} vs {want_grad:?}");
        }
        // Candle's autograd.
        let var =
            candle_core::Var::from_vec(student.clone(), (rows, classes), &Device::Cpu).unwrap();
        let sum = distilled_loss_sum(var.as_tensor(), &labels, &teacher, distill).unwrap();
        let mean = (sum / rows as f64).unwrap();
        let value = mean.to_scalar::<f32>().unwrap() as f64;
        assert!((value - want_loss).abs() < 1e-5, "{value} vs {want_loss}");
        let grads = mean.backward().unwrap();
        let g = grads
            .get(var.as_tensor())
            .unwrap()
            .flatten_all()
            .unwrap()
            .to_vec1::<f32>()
            .unwrap();
        for (g, w) in g.iter().zip(&want_grad) {
            assert!((g - w).abs() < 1e-5, "autograd {g} vs {w}");
        }
    }
}

/// Three steps of SGD (momentum, Nesterov, plain with L2 decay) and LAMB on a weight with decay
/// and a bias without it at half the rate, through both the tensor and the in-place host
/// update, against torch.optim.SGD and the LAMB reference (tests/reference/lamb.py).
#[test]
fn sgd_and_lamb_steps_match_torch() {
    use hone_engine::optim::{ParamGroup, Rule};
    use hone_engine::params::{Param, ParamPosition, ParamStore};
    let json = recipes_fixture();
    let flat = |v: &serde_json::Value| -> Vec<f32> {
        match v.as_array() {
            Some(items) if items.iter().all(|x| x.is_number()) => {
                items.iter().map(|x| x.as_f64().unwrap() as f32).collect()
            }
            Some(rows) => rows
                .iter()
                .flat_map(|r| r.as_array().unwrap().iter())
                .map(|x| x.as_f64().unwrap() as f32)
                .collect(),
            None => panic!("not an array: {v}"),
        }
    };
    for case in json["optimizers"].as_array().unwrap() {
        let name = case["name"].as_str().unwrap();
        let r = &case["rule"];
        let rule = match r["kind"].as_str().unwrap() {
            "sgd" => Rule::Sgd {
                momentum: r["momentum"].as_f64().unwrap(),
                dampening: 0.0,
                nesterov: r["nesterov"].as_bool().unwrap(),
            },
            "lamb" => Rule::Lamb {
                beta1: r["beta1"].as_f64().unwrap(),
                beta2: r["beta2"].as_f64().unwrap(),
                eps: r["eps"].as_f64().unwrap(),
            },
            other => panic!("unknown rule {other}"),
        };
        for host in [false, true] {
            let weight = Param::new(
                "weight",
                candle_core::Tensor::from_vec(
                    flat(&case["initial"]["weight"]),
                    (4, 3),
                    &Device::Cpu,
                )
                .unwrap(),
                ParamPosition::Layer(0),
            )
            .unwrap();
            let bias = Param::new(
                "bias",
                candle_core::Tensor::from_vec(flat(&case["initial"]["bias"]), 3, &Device::Cpu)
                    .unwrap(),
                ParamPosition::Layer(0),
            )
            .unwrap();
            let mut store = ParamStore::default();
            store.push(weight.clone());
            store.push(bias.clone());
            let mut opt = Optimizer::new(
                rule,
                vec![
                    (
                        weight.clone(),
                        ParamGroup {
                            lr_scale: 1.0,
                            weight_decay: case["weight_decay"].as_f64().unwrap(),
                        },
                    ),
                    (
                        bias.clone(),
                        ParamGroup {
                            lr_scale: case["bias_lr_scale"].as_f64().unwrap(),
                            weight_decay: 0.0,
                        },
                    ),
                ],
            );
            let mut host_grads = HostGrads::default();
            for (step, g) in case["grads"].as_array().unwrap().iter().enumerate() {
                let lr = case["lrs"][step].as_f64().unwrap();
                if host {
                    host_grads.prepare(&store);
                    host_grads
                        .get_mut(0)
                        .unwrap()
                        .copy_from_slice(&flat(&g["weight"]));
                    host_grads
                        .get_mut(1)
                        .unwrap()
                        .copy_from_slice(&flat(&g["bias"]));
                    opt.step_host(&host_grads, &store, lr, 1.0).unwrap();
                } else {
                    let mut grads = Gradients::default();
                    let shaped = |v: Vec<f32>, dims: &[usize]| {
                        candle_core::Tensor::from_vec(v, dims, &Device::Cpu).unwrap()
                    };
                    grads.insert("weight", shaped(flat(&g["weight"]), &[4, 3]));
                    grads.insert("bias", shaped(flat(&g["bias"]), &[3]));
                    opt.step(&grads, lr, 1.0).unwrap();
                }
            }
            for (param, key) in [(&weight, "weight"), (&bias, "bias")] {
                let got = param
                    .value()
                    .flatten_all()
                    .unwrap()
                    .to_vec1::<f32>()
                    .unwrap();
                let start = flat(&case["initial"][key]);
                let want = flat(&case["final"][key]);
                let change: f32 = start
                    .iter()
                    .zip(&want)
                    .map(|(a, b)| (a - b).abs())
                    .fold(0.0, f32::max);
                for (i, (g, w)) in got.iter().zip(&want).enumerate() {
                    assert!(
                        (g - w).abs() <= 1e-5 * change.max(1e-3),
                        "{name} (host {host}) {key}[{i}]: {g} vs {w}"
                    );
                }
            }
        }
    }
}

/// SQuAD exact match and F1, and MAP@k, against the reference implementations (the official
/// SQuAD v1.1 evaluation functions, Kaggle's MAP@k) on fixed predictions
/// (tests/reference/squad_metric.py).
#[test]
fn squad_and_map_scores_match_the_reference_implementations() {
    use hone_engine::metrics::answers::{exact_match, f1_score, AnswerReport};
    use hone_engine::metrics::choices::{map_at_k, rank_of};
    let path = common::fixtures().join("golden/metrics.json");
    let want: serde_json::Value =
        serde_json::from_str(&std::fs::read_to_string(path).unwrap()).unwrap();
    let strings = |v: &serde_json::Value| -> Vec<String> {
        v.as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_str().unwrap().to_string())
            .collect()
    };
    let (mut predictions, mut gold) = (Vec::new(), Vec::new());
    for case in want["squad"].as_array().unwrap() {
        let p = case["prediction"].as_str().unwrap();
        let answers = strings(&case["answers"]);
        let best =
            |score: fn(&str, &str) -> f64| answers.iter().map(|g| score(p, g)).fold(0.0, f64::max);
        assert_eq!(
            best(exact_match),
            case["exact_match"].as_f64().unwrap(),
            "{case}"
        );
        assert!(
            (best(f1_score) - case["f1"].as_f64().unwrap()).abs() < 1e-12,
            "{case}"
        );
        predictions.push(p.to_string());
        gold.push(answers);
    }
    let report = AnswerReport::from_answers(&predictions, &gold, 0.0, 0);
    let total = &want["squad_total"];
    assert!((report.exact_match - total["exact_match"].as_f64().unwrap()).abs() < 1e-12);
    assert!((report.f1 - total["f1"].as_f64().unwrap()).abs() < 1e-12);

    let mut ranks = Vec::new();
    for case in want["map"].as_array().unwrap() {
        let scores: Vec<f32> = case["scores"]
            .as_array()
            .unwrap()
            .iter()
            .map(|s| s.as_f64().unwrap() as f32)
            .collect();
        let answer = case["answer"].as_u64().unwrap() as usize;
        let rank = rank_of(&scores, answer);
        for k in [1, 3, 5] {
            let got = map_at_k(&[rank], k);
            let expected = case[format!("map_at_{k}")].as_f64().unwrap();
            assert!((got - expected).abs() < 1e-12, "MAP@{k} of {case}: {got}");
        }
        ranks.push(rank);
    }
    for k in [1, 3, 5] {
        let expected = want["map_total"][format!("map_at_{k}")].as_f64().unwrap();
        assert!((map_at_k(&ranks, k) - expected).abs() < 1e-12, "MAP@{k}");
    }
}

/// Mixed precision: a bf16 step (matrix products in bfloat16, everything else f32; on the
/// autograd graph, and on the CPU graph where the CPU has AVX512-BF16) against PyTorch's AMP
/// step under `torch.autocast(bfloat16)` (tests/reference/
/// make_mixed_precision_fixture.py), within bf16's rounding; bf16 moves PyTorch's own logits
/// by 3e-3 and its gradients by 1e-2 from the f32 step, so the check also asks that Hone's
/// bf16 step is no f32 step. An fp16 step (11 bits of mantissa) stays within 1e-2 of f32.
#[test]
fn bf16_and_fp16_steps_match_pytorch_autocast_within_their_rounding() {
    use hone_engine::precision::Precision;
    let model = load("bert");
    let batch = golden_batch("bert");
    let want = common::golden_tensors("bert-bf16");
    let (fp32, _) = golden("bert");
    let floor = gradient_floor(&want);
    let step = |precision| {
        hone_engine::step::mixed_precision_gradients(&model, &batch, precision, HoneRng::new(0, 0))
            .unwrap()
    };
    let logits = |got: &hone_engine::step::BatchGradients| {
        candle_core::Tensor::from_vec(
            got.logits.values.clone(),
            want["logits"].dims(),
            &Device::Cpu,
        )
        .unwrap()
    };
    // The autograd graph's bf16, and the CPU graph's (bf16 operands, f32 sums) where this
    // CPU has AVX512-BF16.
    let mut bf16_steps = vec![("autograd", step(Precision::Bf16))];
    if Precision::Bf16.runs_on_cpu_graph() {
        let host = hone_engine::step::cpu_graph_gradients(
            &model,
            &batch,
            Precision::Bf16,
            HoneRng::new(0, 0),
        )
        .unwrap();
        bf16_steps.push(("CPU graph", host));
    } else {
        eprintln!("the CPU graph's bf16 is not checked: this CPU has no AVX512-BF16");
    }
    for (path, bf16) in &bf16_steps {
        let err = relative_error(&logits(bf16), &want["logits"]);
        assert!(err < 1e-2, "{path} bf16 logits against autocast: {err:.2e}");
        let moved = relative_error(&logits(bf16), &fp32["logits"]);
        assert!(moved > 1e-5, "the {path} bf16 step ran in f32: {moved:.2e}");
        let want_loss = want["loss"].to_vec1::<f32>().unwrap()[0] as f64;
        assert!(
            (bf16.loss - want_loss).abs() / want_loss < 1e-2,
            "{path}: {} vs {want_loss}",
            bf16.loss
        );
        assert_eq!(bf16.grads.len(), 41, "{path}: every parameter trains");
        for (name, g) in &bf16.grads {
            let err = relative_error_with_floor(g, &want[&format!("grad.{name}")], floor);
            assert!(
                err < 5e-2,
                "{path} bf16 grad {name} against autocast: {err:.2e}"
            );
        }
    }
    let fp16 = step(Precision::Fp16);
    let err = relative_error(&logits(&fp16), &fp32["logits"]);
    assert!(
        err < 1e-2 && err > 1e-6,
        "fp16 logits against f32: {err:.2e}"
    );
    for (name, g) in &fp16.grads {
        let err = relative_error_with_floor(g, &fp32[&format!("grad.{name}")], floor);
        assert!(err < 1e-2, "fp16 grad {name} against f32: {err:.2e}");
    }
}
