//! The training machinery on tiny models: gradients reach every trainable tensor, recipes
//! freeze exactly what they say, runs are reproducible, accumulation equals a larger batch,
//! and the loop stops cleanly on NaN, cancel and early stopping.

mod common;

use std::path::Path;
use std::sync::atomic::AtomicBool;

use candle_core::Device;
use common::{bits, snapshot, tiny_model, tiny_spec};
use hone_data::{read_examples, ColumnSpec, LabelSet, TextTokenizer};
use hone_engine::batch::EncodedSet;
use hone_engine::config::TrainingConfig;
use hone_engine::events::{CheckpointKind, RunStatus, TrainEvent};
use hone_engine::models::{Model, Task};
use hone_engine::params::ParamPosition;
use hone_engine::recipes::param_groups;
use hone_engine::rng::HoneRng;
use hone_engine::trainer::Trainer;
use hone_engine::EngineError;

struct Fixture {
    train: EncodedSet,
    valid: EncodedSet,
    labels: Vec<String>,
}

fn sst2_fixture(model_dir: &Path, max_length: usize) -> Fixture {
    let file = common::fixtures().join("data/sst2_sample.tsv");
    let columns = ColumnSpec {
        text: "sentence".into(),
        text_pair: None,
        label: Some("label".into()),
    };
    let examples = read_examples(&file, None, &columns).unwrap().examples;
    let labels = LabelSet::from_examples(&examples).unwrap();
    let ids = labels.ids_for(&file, &examples).unwrap();
    let tokenizer = TextTokenizer::from_model_dir(model_dir, max_length).unwrap();
    let texts: Vec<(&str, Option<&str>)> =
        examples.iter().map(|e| (e.text.as_str(), None)).collect();
    let encoded = tokenizer.encode(&texts).unwrap();
    let split = 40;
    Fixture {
        train: EncodedSet {
            examples: encoded[..split].to_vec(),
            labels: ids[..split].to_vec(),
            ..Default::default()
        },
        valid: EncodedSet {
            examples: encoded[split..].to_vec(),
            labels: ids[split..].to_vec(),
            ..Default::default()
        },
        labels: labels.names().to_vec(),
    }
}

fn train(
    model: &Model,
    cfg: &TrainingConfig,
    data: &Fixture,
    cancel: &AtomicBool,
) -> (
    Result<hone_engine::trainer::TrainSummary, EngineError>,
    Vec<TrainEvent>,
) {
    let dir = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let trainer = Trainer {
        model,
        cfg,
        train: &data.train,
        valid: &data.valid,
        labels: &data.labels,
        work_dir: dir.path(),
        resume: None,
        ewc: None,
        also: &[],
        name: "",
        samples: None,
        generations: None,
    };
    let result = trainer.run(&mut |e| events.push(e), cancel);
    (result, events)
}

/// A single-task trainer of `model` on `data` with its work folder at `work`.
fn trainer_in<'a>(
    model: &'a Model,
    cfg: &'a TrainingConfig,
    data: &'a Fixture,
    work: &'a Path,
    resume: Option<hone_engine::checkpoint::ResumePoint>,
) -> Trainer<'a> {
    Trainer {
        model,
        cfg,
        train: &data.train,
        valid: &data.valid,
        labels: &data.labels,
        work_dir: work,
        resume,
        ewc: None,
        also: &[],
        name: "",
        samples: None,
        generations: None,
    }
}

/// Runs `trainer`, stopped as Ctrl-C would stop it once a step event reaches `cancel_at`:
/// its summary and every event.
fn run_until(
    trainer: &Trainer,
    cancel_at: Option<u64>,
) -> (hone_engine::trainer::TrainSummary, Vec<TrainEvent>) {
    let cancel = AtomicBool::new(false);
    let mut events = Vec::new();
    let summary = trainer
        .run(
            &mut |e| {
                if let (TrainEvent::Step { step, .. }, Some(at)) = (&e, cancel_at) {
                    if *step >= at {
                        cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                    }
                }
                events.push(e)
            },
            &cancel,
        )
        .unwrap();
    (summary, events)
}

fn small_config() -> TrainingConfig {
    TrainingConfig {
        epochs: 2,
        batch_size: 8,
        lr: 1e-3,
        ..Default::default()
    }
}

#[test]
fn frozen_tensors_stay_bit_identical_and_the_rest_moves() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let before = snapshot(model.params());
    let cfg = TrainingConfig {
        freeze_embeddings: true,
        freeze_layers: 1,
        ..small_config()
    };
    let (result, _) = train(&model, &cfg, &data, &AtomicBool::new(false));
    result.unwrap();
    for p in model.params().all() {
        let same = bits(&p.value()) == bits(&before[p.name()]);
        let frozen = matches!(
            p.position(),
            ParamPosition::EmbeddingTable { .. } | ParamPosition::Layer(0)
        );
        if frozen {
            assert!(same, "{} was frozen but changed", p.name());
        } else if !p.name().ends_with("key.bias") {
            assert!(!same, "{} was trained but did not change", p.name());
        }
    }
}

#[test]
fn head_warm_start_trains_only_the_head_then_everything() {
    let dir = tiny_model("roberta");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let before = snapshot(model.params());
    // 5 steps per epoch: the whole first epoch is head-only.
    let cfg = TrainingConfig {
        head_warmup_epochs: 1,
        epochs: 1,
        ..small_config()
    };
    let (result, events) = train(&model, &cfg, &data, &AtomicBool::new(false));
    result.unwrap();
    for p in model.params().all() {
        let same = bits(&p.value()) == bits(&before[p.name()]);
        assert_eq!(same, p.position() != ParamPosition::Head, "{}", p.name());
    }
    assert!(!events
        .iter()
        .any(|e| matches!(e, TrainEvent::PhaseChanged { .. })));

    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let cfg = TrainingConfig {
        head_warmup_steps: 2,
        ..small_config()
    };
    let (result, events) = train(&model, &cfg, &data, &AtomicBool::new(false));
    result.unwrap();
    let phase: Vec<u64> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::PhaseChanged { step, .. } => Some(*step),
            _ => None,
        })
        .collect();
    assert_eq!(phase, [2]);
    let word = model
        .params()
        .get("roberta.embeddings.word_embeddings.weight")
        .unwrap();
    assert_ne!(bits(&word.value()), bits(&before[word.name()]));
}

#[test]
fn same_seed_gives_identical_weights_and_another_seed_does_not() {
    let dir = tiny_model("distilbert");
    let data = sst2_fixture(&dir, 32);
    let run = |seed| {
        let model = Model::load(
            &dir,
            Task::SequenceClassification,
            2,
            None,
            &Device::Cpu,
            seed,
        )
        .unwrap();
        let cfg = TrainingConfig {
            seed,
            ..small_config()
        };
        train(&model, &cfg, &data, &AtomicBool::new(false))
            .0
            .unwrap();
        snapshot(model.params())
    };
    let (a, b, c) = (run(5), run(5), run(6));
    let mut differs = false;
    for (name, t) in &a {
        assert_eq!(
            bits(t),
            bits(&b[name]),
            "{name} differs between identical runs"
        );
        differs |= bits(t) != bits(&c[name]);
    }
    assert!(differs, "another seed gave the same weights");
}

#[test]
fn gradient_accumulation_equals_one_larger_batch() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let run = |batch_size, grad_accum| {
        let model = Model::load(
            &dir,
            Task::SequenceClassification,
            2,
            Some(0.0),
            &Device::Cpu,
            0,
        )
        .unwrap();
        let cfg = TrainingConfig {
            batch_size,
            grad_accum,
            epochs: 1,
            ..small_config()
        };
        train(&model, &cfg, &data, &AtomicBool::new(false))
            .0
            .unwrap();
        snapshot(model.params())
    };
    let one = run(8, 1);
    let accumulated = run(4, 2);
    for (name, t) in &one {
        let err = common::relative_error(&accumulated[name], t);
        assert!(err < 1e-5, "{name}: {err:.2e}");
    }
}

#[test]
fn layer_wise_decay_and_no_decay_groups() {
    let model = Model::random(
        tiny_spec("bert"),
        Task::SequenceClassification,
        2,
        &Device::Cpu,
        0,
    )
    .unwrap();
    let cfg = TrainingConfig {
        layer_lr_decay: Some(0.5),
        weight_decay: 0.01,
        ..Default::default()
    };
    let groups = param_groups(&model, &cfg);
    let find = |name: &str| groups.iter().find(|(p, _)| p.name() == name).unwrap().1;
    assert_eq!(find("classifier.weight").lr_scale, 1.0);
    assert_eq!(find("bert.pooler.dense.weight").lr_scale, 1.0);
    assert_eq!(
        find("bert.encoder.layer.1.output.dense.weight").lr_scale,
        0.5
    );
    assert_eq!(
        find("bert.encoder.layer.0.output.dense.weight").lr_scale,
        0.25
    );
    assert_eq!(
        find("bert.embeddings.word_embeddings.weight").lr_scale,
        0.125
    );
    assert_eq!(
        find("bert.encoder.layer.0.output.dense.weight").weight_decay,
        0.01
    );
    assert_eq!(
        find("bert.encoder.layer.0.output.dense.bias").weight_decay,
        0.0
    );
    assert_eq!(
        find("bert.encoder.layer.0.output.LayerNorm.weight").weight_decay,
        0.0
    );
    assert_eq!(find("bert.embeddings.LayerNorm.weight").weight_decay, 0.0);
}

#[test]
fn a_diverging_run_stops_with_the_step_and_a_hint() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let cfg = TrainingConfig {
        lr: 1e30,
        warmup_ratio: 0.0,
        clip_norm: None,
        ..small_config()
    };
    let (result, _) = train(&model, &cfg, &data, &AtomicBool::new(false));
    let err = result.unwrap_err();
    assert!(
        matches!(
            err,
            EngineError::NonFiniteLoss { .. } | EngineError::NonFiniteGradient { .. }
        ),
        "{err}"
    );
    assert!(err.to_string().contains("Lower the learning rate"), "{err}");
}

#[test]
fn cancel_stops_before_the_next_step_and_saves_a_last_checkpoint() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let (result, events) = train(&model, &small_config(), &data, &AtomicBool::new(true));
    let summary = result.unwrap();
    assert_eq!(summary.status, RunStatus::Cancelled);
    assert_eq!(summary.steps, 0);
    assert!(events.iter().any(|e| matches!(
        e,
        TrainEvent::CheckpointSaved {
            kind: CheckpointKind::Last,
            ..
        }
    )));
}

#[test]
fn a_long_epoch_is_checkpointed_by_time() {
    // A killed run must not restart from zero when it dies inside its first epoch: with the
    // time-based checkpoint due at every step, every step writes the resumable checkpoint, in
    // the middle of the epoch too; without it only the epoch ends do.
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let last_saves = |cfg: &TrainingConfig| {
        let (result, events) = train(&model, cfg, &data, &AtomicBool::new(false));
        result.unwrap();
        events
            .iter()
            .filter_map(|e| match e {
                TrainEvent::CheckpointSaved {
                    kind: CheckpointKind::Last,
                    step,
                    ..
                } => Some(*step),
                _ => None,
            })
            .collect::<Vec<_>>()
    };
    let timed = TrainingConfig {
        epochs: 1,
        checkpoint_minutes: Some(1e-9),
        ..small_config()
    };
    let steps = data.train.len().div_ceil(timed.batch_size) as u64;
    assert!(steps >= 3, "the fixture needs a few steps per epoch");
    let saves = last_saves(&timed);
    assert!(saves.contains(&1), "{saves:?}");
    assert_eq!(*saves.last().unwrap(), steps);
    let untimed = TrainingConfig {
        checkpoint_minutes: None,
        ..timed.clone()
    };
    assert_eq!(last_saves(&untimed), vec![steps]);
    let unresumable = TrainingConfig {
        resumable: false,
        ..timed.clone()
    };
    assert_eq!(last_saves(&unresumable), Vec::<u64>::new());
    assert!(TrainingConfig {
        checkpoint_minutes: Some(0.0),
        ..Default::default()
    }
    .validate()
    .is_err());
}

#[test]
fn early_stopping_ends_the_run_when_the_metric_stalls() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let cfg = TrainingConfig {
        eval_every: Some(1),
        early_stopping_patience: Some(2),
        early_stopping_min_delta: 10.0,
        epochs: 5,
        ..small_config()
    };
    let (result, events) = train(&model, &cfg, &data, &AtomicBool::new(false));
    let summary = result.unwrap();
    assert_eq!(summary.status, RunStatus::EarlyStopped);
    assert_eq!(
        summary.steps, 3,
        "first validation is the best, two more without improvement"
    );
    assert_eq!(summary.best.as_ref().map(|(s, _)| *s), Some(1));
    assert!(events
        .iter()
        .any(|e| matches!(e, TrainEvent::EarlyStopped { .. })));
}

#[test]
fn the_cpu_path_and_candle_autograd_take_the_same_steps() {
    use hone_engine::optim::OptimizerKind;
    use hone_engine::step::Stepper;
    let rules = [
        (OptimizerKind::AdamW, false),
        (OptimizerKind::Sgd, true),
        (OptimizerKind::Lamb, false),
    ];
    for (family, (kind, nesterov)) in ["bert", "distilbert", "roberta"].into_iter().zip(rules) {
        let dir = tiny_model(family);
        let data = sst2_fixture(&dir, 32);
        let cfg = TrainingConfig {
            freeze_layers: 1,
            optimizer: kind,
            nesterov,
            ..small_config()
        };
        let run = |fast: bool| {
            let model = Model::load(
                &dir,
                Task::SequenceClassification,
                2,
                Some(0.0),
                &Device::Cpu,
                0,
            )
            .unwrap();
            hone_engine::recipes::apply_freezing(&model, &cfg, None);
            let mut opt = hone_engine::recipes::optimizer(&model, &cfg);
            let mut stepper = Stepper::new(&model, fast);
            assert_eq!(stepper.is_fast(), fast);
            let batcher = hone_data::Batcher::new(model.spec().encoder.pad_token_id);
            let mut losses = Vec::new();
            for step in 0..4u64 {
                let idx: Vec<usize> = (0..12).map(|i| (i * 7 + step as usize * 5) % 40).collect();
                let batches: Vec<_> = idx
                    .chunks(6)
                    .map(|c| data.train.batch(&batcher, c))
                    .collect();
                let done = stepper
                    .step(
                        &model,
                        &mut opt,
                        &batches,
                        Some(1.0),
                        1e-3,
                        HoneRng::new(0, step),
                        step + 1,
                    )
                    .unwrap();
                losses.push(done.loss);
            }
            (snapshot(model.params()), losses)
        };
        let (fast, fast_losses) = run(true);
        let (slow, slow_losses) = run(false);
        for (a, b) in fast_losses.iter().zip(&slow_losses) {
            assert!(
                (a - b).abs() < 1e-5 * b.abs().max(1.0),
                "{family} {kind:?} loss {a} vs {b}"
            );
        }
        for (name, t) in &slow {
            let err = common::relative_error(&fast[name], t);
            // Key biases have an exactly zero gradient; Adam turns its rounding noise into ±lr
            // steps of arbitrary sign, so they are not compared.
            if name.ends_with("key.bias") || name.ends_with("k_lin.bias") {
                continue;
            }
            assert!(err < 1e-4, "{family} {kind:?} {name}: {err:.2e}");
        }
    }
}

#[test]
fn a_resumed_run_counts_its_earlier_training_time_but_not_the_pause() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let cfg = TrainingConfig {
        epochs: 3,
        ..small_config()
    };
    let work = tempfile::tempdir().unwrap();
    let run = |resume, cancel_at: Option<u64>| {
        run_until(
            &trainer_in(&model, &cfg, &data, work.path(), resume),
            cancel_at,
        )
    };
    let (first, _) = run(None, Some(3));
    assert_eq!(first.status, RunStatus::Cancelled);
    let point = hone_engine::checkpoint::load_last(work.path())
        .unwrap()
        .expect("a resumable checkpoint");
    let saved = point.state.elapsed_s;
    assert!(saved > 0.0, "the checkpoint keeps the training time");
    let pause = std::time::Duration::from_millis(400);
    std::thread::sleep(pause);
    let (second, events) = run(Some(point), None);
    let first_step = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Step { elapsed_s, .. } => Some(*elapsed_s),
            _ => None,
        })
        .expect("steps after the resume");
    assert!(first_step >= saved, "{first_step} < {saved}");
    assert!(
        first_step < saved + pause.as_secs_f64(),
        "the pause was counted: {first_step} vs {saved}"
    );
    assert!(second.elapsed_s >= first_step);
}

#[test]
fn gradual_unfreezing_adds_one_layer_from_the_top_at_a_time() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let before = snapshot(model.params());
    // 5 steps: the head alone for steps 0-1, the top layer joins at 2, the bottom one at 4;
    // the embeddings (one group further) never come.
    let cfg = TrainingConfig {
        epochs: 1,
        unfreeze_every_steps: Some(2),
        ..small_config()
    };
    let (result, events) = train(&model, &cfg, &data, &AtomicBool::new(false));
    result.unwrap();
    let phases: Vec<(u64, String, u64)> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::PhaseChanged {
                step,
                phase,
                params_trainable,
                ..
            } => Some((*step, phase.clone(), *params_trainable)),
            _ => None,
        })
        .collect();
    let steps: Vec<u64> = phases.iter().map(|p| p.0).collect();
    assert_eq!(steps, [2, 4], "{phases:?}");
    assert_eq!(phases[0].1, "the head and the top layer");
    assert_eq!(phases[1].1, "the head and the top 2 layers");
    assert!(phases[0].2 < phases[1].2, "{phases:?}");
    for p in model.params().all() {
        let same = bits(&p.value()) == bits(&before[p.name()]);
        match p.position() {
            ParamPosition::EmbeddingTable { .. } | ParamPosition::EmbeddingNorm => {
                assert!(
                    same,
                    "{} is below the unfrozen layers but changed",
                    p.name()
                )
            }
            _ if p.name().ends_with("key.bias") => {}
            _ => assert!(!same, "{} was unfrozen but did not change", p.name()),
        }
    }
}

#[test]
fn training_from_scratch_starts_from_transformers_initialisation() {
    use hone_engine::config::ModelInit;
    use hone_engine::job::{fine_tune_data, RunPaths, TrainingData};
    let dir = tiny_model("bert");
    let file = common::fixtures().join("data/sst2_sample.tsv");
    let columns = ColumnSpec {
        text: "sentence".into(),
        text_pair: None,
        label: Some("label".into()),
    };
    let examples = read_examples(&file, None, &columns).unwrap().examples;
    let labels = LabelSet::from_examples(&examples).unwrap();
    let out = tempfile::tempdir().unwrap();
    let work = tempfile::tempdir().unwrap();
    // A learning rate too small to move anything: what is exported is the initialisation.
    let cfg = TrainingConfig {
        epochs: 1,
        lr: 1e-12,
        init: ModelInit::Random,
        ..small_config()
    };
    let mut events = Vec::new();
    fine_tune_data(
        &RunPaths {
            model: &dir,
            base_model: "tiny-bert",
            out: out.path(),
            work_dir: work.path(),
            teacher: None,
            previous: None,
            multitask: None,
        },
        TrainingData {
            task: Task::SequenceClassification,
            labels,
            train: examples[..40].to_vec(),
            valid: examples[40..].to_vec(),
            notices: Vec::new(),
        },
        &cfg,
        "",
        false,
        &mut |e| events.push(e),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert!(events
        .iter()
        .any(|e| matches!(e, TrainEvent::Notice { message } if message.contains("from scratch"))));
    let pretrained =
        Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let exported = Model::load(
        out.path(),
        Task::SequenceClassification,
        2,
        None,
        &Device::Cpu,
        0,
    )
    .unwrap();
    let std = pretrained.spec().encoder.initializer_range;
    for p in exported.params().all() {
        let v = p.value().flatten_all().unwrap().to_vec1::<f32>().unwrap();
        let name = p.name();
        let theirs = pretrained.params().get(name).unwrap().value();
        if name.contains("LayerNorm.weight") {
            assert!(v.iter().all(|&x| (x - 1.0).abs() < 1e-6), "{name}");
        } else if name.ends_with(".bias") {
            assert!(v.iter().all(|&x| x.abs() < 1e-6), "{name}");
        } else {
            let n = v.len() as f64;
            let mean = v.iter().map(|&x| x as f64).sum::<f64>() / n;
            let sd = (v.iter().map(|&x| (x as f64 - mean).powi(2)).sum::<f64>() / n).sqrt();
            assert!(
                (sd - std).abs() < 0.25 * std,
                "{name}: std {sd} vs initializer_range {std}"
            );
            assert_ne!(
                bits(&p.value()),
                bits(&theirs),
                "{name} is the checkpoint's"
            );
        }
    }
}

#[test]
fn the_lr_range_test_sweeps_up_until_the_loss_blows_up() {
    use hone_engine::lr_find::{lr_find, LrFindSettings};
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let settings = LrFindSettings {
        start_lr: 1e-5,
        end_lr: 1e3,
        steps: 40,
        ..Default::default()
    };
    let mut seen = Vec::new();
    let result = lr_find(
        &model,
        &small_config(),
        &data.train,
        &settings,
        &mut |p| seen.push(p.lr),
        &AtomicBool::new(false),
    )
    .unwrap();
    assert_eq!(seen.len(), result.points.len());
    assert!(result.points.windows(2).all(|w| w[1].lr > w[0].lr));
    // A rate of hundreds wrecks any model: the sweep notices and stops early.
    assert!(result.diverged, "{:?}", result.points.last());
    assert!(result.points.len() < 40);
    let suggested = result.suggested_lr.unwrap();
    let lowest = result.min_loss_lr.unwrap();
    assert!((suggested * 10.0 / lowest - 1.0).abs() < 1e-9);
    assert!(
        lowest > settings.start_lr && lowest < result.points.last().unwrap().lr,
        "{lowest}"
    );
}

/// The range test steps in the run's precision: its first loss (before any update) under
/// bf16 is the bf16 forward pass's, close to f32's but not equal to it.
#[test]
fn the_lr_range_test_runs_in_the_runs_precision() {
    use hone_engine::lr_find::{lr_find, LrFindSettings};
    use hone_engine::precision::Precision;
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let settings = LrFindSettings {
        start_lr: 1e-5,
        end_lr: 1e-4,
        steps: 5,
        ..Default::default()
    };
    let first_loss = |precision| {
        let model =
            Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
        let cfg = TrainingConfig {
            precision,
            dropout: Some(0.0),
            ..small_config()
        };
        let result = lr_find(
            &model,
            &cfg,
            &data.train,
            &settings,
            &mut |_| {},
            &AtomicBool::new(false),
        )
        .unwrap();
        result.points[0].loss
    };
    let (fp32, bf16) = (first_loss(Precision::Fp32), first_loss(Precision::Bf16));
    assert_ne!(fp32, bf16, "the bf16 sweep ran in f32");
    assert!((fp32 - bf16).abs() < 2e-2 * fp32.abs(), "{fp32} vs {bf16}");
}

/// The mean KL divergence from `teacher`'s probabilities to `student`'s over a set.
fn mean_kl(teacher: &[Vec<f32>], student: &[Vec<f32>]) -> f64 {
    let softmax = |row: &[f32]| -> Vec<f64> {
        let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
        let e: Vec<f64> = row.iter().map(|&v| (v as f64 - max).exp()).collect();
        let s: f64 = e.iter().sum();
        e.into_iter().map(|x| x / s).collect()
    };
    let total: f64 = teacher
        .iter()
        .zip(student)
        .map(|(t, s)| {
            let (p, q) = (softmax(t), softmax(s));
            p.iter().zip(&q).map(|(p, q)| p * (p / q).ln()).sum::<f64>()
        })
        .sum();
    total / teacher.len() as f64
}

fn set_logits(model: &Model, set: &hone_engine::batch::EncodedSet) -> Vec<Vec<f32>> {
    let mut stepper = hone_engine::step::Stepper::new(model, true);
    hone_engine::inference::logits_with(model, set, 8, &mut stepper).unwrap()
}

#[test]
fn a_distilled_student_moves_toward_its_teacher_not_only_the_labels() {
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    // The teacher: the same tiny model with another head (an arbitrary, fixed function).
    let teacher =
        Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 7).unwrap();
    let teacher_rows = set_logits(&teacher, &data.train);
    let mut taught = Fixture {
        train: data.train.clone(),
        valid: data.valid.clone(),
        labels: data.labels.clone(),
    };
    taught.train.teacher = teacher_rows.clone();
    let run = |fixture: &Fixture, alpha: f64| {
        let student =
            Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
        let cfg = TrainingConfig {
            epochs: 3,
            distill_alpha: alpha,
            distill_temperature: 1.0,
            ..small_config()
        };
        let (result, _) = train(&student, &cfg, fixture, &AtomicBool::new(false));
        result.unwrap();
        mean_kl(&teacher_rows, &set_logits(&student, &fixture.train))
    };
    let before = {
        let student =
            Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
        mean_kl(&teacher_rows, &set_logits(&student, &data.train))
    };
    let distilled = run(&taught, 1.0);
    let labels_only = run(&data, 1.0);
    assert!(
        distilled < 0.5 * before && distilled < labels_only,
        "KL to the teacher: before {before:.4}, distilled {distilled:.4}, labels only {labels_only:.4}"
    );
}

#[test]
fn a_length_curriculum_starts_short_and_ends_shuffled() {
    use hone_engine::curriculum::CurriculumOrder;
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let lengths = data.train.lengths();
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let cfg = TrainingConfig {
        curriculum: CurriculumOrder::Length,
        ..small_config()
    };
    let work = tempfile::tempdir().unwrap();
    let trainer = Trainer {
        model: &model,
        cfg: &cfg,
        train: &data.train,
        valid: &data.valid,
        labels: &data.labels,
        work_dir: work.path(),
        resume: None,
        ewc: None,
        also: &[],
        name: "",
        samples: None,
        generations: None,
    };
    let mean_length =
        |ids: &[usize]| ids.iter().map(|&i| lengths[i] as f64).sum::<f64>() / ids.len() as f64;
    let first = trainer.epoch_order(0);
    let n = first.len();
    assert!(
        mean_length(&first[..n / 4]) < mean_length(&first[3 * n / 4..]),
        "the curriculum epoch starts with the short examples"
    );
    let longest_first = first[..n / 10].iter().map(|&i| lengths[i]).max().unwrap();
    let shortest_last = first[n - n / 10..]
        .iter()
        .map(|&i| lengths[i])
        .min()
        .unwrap();
    assert!(longest_first <= shortest_last);
    // The second epoch is shuffled as without a curriculum.
    assert_eq!(
        trainer.epoch_order(1),
        hone_data::epoch_order(n, cfg.seed, 1)
    );
    // Without shuffling, the epochs after the curriculum keep the file's order.
    let in_order = TrainingConfig {
        shuffle: false,
        ..cfg.clone()
    };
    let trainer = Trainer {
        cfg: &in_order,
        ..trainer
    };
    assert_eq!(trainer.epoch_order(0), first);
    assert_eq!(trainer.epoch_order(1), (0..n).collect::<Vec<_>>());
}

#[test]
fn ewc_holds_the_weights_the_previous_task_needed() {
    use hone_engine::ewc::Ewc;
    use std::sync::Arc;
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let previous = Model::load(
        &dir,
        Task::SequenceClassification,
        2,
        Some(0.0),
        &Device::Cpu,
        0,
    )
    .unwrap();
    let ewc = Arc::new(Ewc::estimate(&previous, &data.train, 40, 1, 1e9, &mut |_, _| {}).unwrap());
    assert!(ewc.mean_fisher() > 0.0);
    let measure = Ewc::estimate(&previous, &data.train, 40, 1, 1.0, &mut |_, _| {}).unwrap();
    assert!(measure.penalty(previous.params()).unwrap() == 0.0);
    // The new task: the same texts with every label flipped.
    let mut flipped = Fixture {
        train: data.train.clone(),
        valid: data.valid.clone(),
        labels: data.labels.clone(),
    };
    flipped.train.labels.iter_mut().for_each(|y| *y = 1 - *y);
    let drift = |penalty: Option<Arc<Ewc>>| {
        let model =
            Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
        let work = tempfile::tempdir().unwrap();
        let cfg = TrainingConfig {
            epochs: 4,
            ..small_config()
        };
        let trainer = Trainer {
            model: &model,
            cfg: &cfg,
            train: &flipped.train,
            valid: &flipped.valid,
            labels: &flipped.labels,
            work_dir: work.path(),
            resume: None,
            ewc: penalty,
            also: &[],
            name: "",
            samples: None,
            generations: None,
        };
        trainer.run(&mut |_| {}, &AtomicBool::new(false)).unwrap();
        // What the previous task needed moved this much (the penalty without its λ).
        measure.penalty(model.params()).unwrap()
    };
    let free = drift(None);
    let held = drift(Some(ewc));
    assert!(
        held < 0.25 * free,
        "Fisher-weighted drift from the previous task: {held:.3e} with EWC, {free:.3e} without"
    );
}

/// Multi-task learning: two heads on one encoder. A step of one task moves the shared encoder
/// (seen through the other head's model too) and its own head, never the other head; a run
/// trains both heads, reports each task, and every head's values carry Hub names.
#[test]
fn multi_task_heads_share_the_encoder_and_train_only_on_their_own_steps() {
    use hone_data::Batcher;
    use hone_engine::metrics::Report;
    use hone_engine::models::{HeadSpec, ModelSpec};
    use hone_engine::multitask::TaskSet;
    use hone_engine::recipes::optimizer_for;
    use hone_engine::step::Stepper;

    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let spec = ModelSpec::from_dir(&dir).unwrap();
    let heads = [
        HeadSpec {
            prefix: "sentiment::".into(),
            task: Task::SequenceClassification,
            num_labels: 2,
        },
        HeadSpec {
            prefix: "flipped::".into(),
            task: Task::SequenceClassification,
            num_labels: 2,
        },
    ];
    let models = Model::with_heads(spec, Some(&dir), &heads, None, &Device::Cpu, 3).unwrap();
    let (a, b) = (&models[0], &models[1]);
    let encoder = "bert.encoder.layer.0.attention.self.query.weight";
    let head_b = "flipped::classifier.weight";
    assert!(a.params().get(head_b).is_none() && b.params().get(head_b).is_some());
    assert!(a
        .params()
        .get("sentiment::bert.pooler.dense.weight")
        .is_some());
    let before = snapshot(b.params());

    // One step of task A with the optimizer over both heads.
    let cfg = small_config();
    let mut optimizer = optimizer_for(&[a, b], &cfg);
    let batcher = Batcher::new(a.spec().encoder.pad_token_id);
    let batches = data.train.batches(&batcher, &(0..8).collect::<Vec<_>>(), 8);
    let mut stepper = Stepper::new(a, true);
    stepper
        .step(
            a,
            &mut optimizer,
            &batches,
            Some(1.0),
            1e-3,
            HoneRng::new(0, 0),
            1,
        )
        .unwrap();
    assert_ne!(
        bits(&b.params().get(encoder).unwrap().value()),
        bits(&before[encoder]),
        "the shared encoder moved, seen from the other head"
    );
    for name in [head_b, "flipped::bert.pooler.dense.weight"] {
        assert_eq!(
            bits(&b.params().get(name).unwrap().value()),
            bits(&before[name]),
            "{name} belongs to the other task and must not move"
        );
    }
    // A step of task B now updates its head (its optimizer state starts at that step).
    stepper
        .step(
            b,
            &mut optimizer,
            &batches,
            Some(1.0),
            1e-3,
            HoneRng::new(0, 1),
            2,
        )
        .unwrap();
    assert_ne!(
        bits(&b.params().get(head_b).unwrap().value()),
        bits(&before[head_b])
    );
    assert_eq!(optimizer.steps()[head_b], 1);
    assert_eq!(optimizer.steps()[encoder], 2);

    // A whole run: both tasks reported, by name.
    let flipped = Fixture {
        train: EncodedSet {
            labels: data.train.labels.iter().map(|l| 1 - l).collect(),
            ..data.train.clone()
        },
        valid: EncodedSet {
            labels: data.valid.labels.iter().map(|l| 1 - l).collect(),
            ..data.valid.clone()
        },
        labels: data.labels.clone(),
    };
    let also = [TaskSet {
        name: "flipped",
        model: b,
        train: &flipped.train,
        valid: &flipped.valid,
        labels: &flipped.labels,
    }];
    let work = tempfile::tempdir().unwrap();
    let mut events = Vec::new();
    let trainer = Trainer {
        model: a,
        cfg: &cfg,
        train: &data.train,
        valid: &data.valid,
        labels: &data.labels,
        work_dir: work.path(),
        resume: None,
        ewc: None,
        also: &also,
        name: "sentiment",
        samples: None,
        generations: None,
    };
    let summary = trainer
        .run(&mut |e| events.push(e), &AtomicBool::new(false))
        .unwrap();
    // 80 examples in steps of 8, for 2 epochs.
    assert_eq!(summary.steps, 20);
    let Some((_, Report::Tasks(report))) = &summary.best else {
        panic!("a multi-task report expected: {:?}", summary.best)
    };
    let names: Vec<&str> = report.tasks.iter().map(|t| t.name.as_str()).collect();
    assert_eq!(names, ["sentiment", "flipped"]);
    let trained = snapshot(b.params());
    assert_ne!(bits(&trained[head_b]), bits(&before[head_b]));
    // The best checkpoint holds every head once, under its prefixed name.
    let saved =
        hone_engine::checkpoint::load_tensors(&summary.best_dir.join("model.safetensors")).unwrap();
    assert!(saved.contains_key(head_b) && saved.contains_key("sentiment::classifier.weight"));
    assert!(saved.contains_key(encoder));
    // An export of a head uses the Hub's names.
    let hub = b.hub_values();
    assert!(hub.contains_key("classifier.weight") && hub.contains_key("bert.pooler.dense.weight"));
    assert!(hub.keys().all(|k| !k.contains("::")));
}

/// A multi-task run stopped part-way and resumed from its `last` checkpoint (streamed back into
/// every head and the optimizer) ends with the weights of an uninterrupted run: the same
/// task for each step, the same examples, the same optimizer state.
#[test]
fn a_multi_task_run_resumes_exactly() {
    use hone_engine::models::{HeadSpec, ModelSpec};
    use hone_engine::multitask::TaskSet;

    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let flipped = EncodedSet {
        labels: data.train.labels.iter().map(|l| 1 - l).collect(),
        ..data.train.clone()
    };
    let flipped_valid = EncodedSet {
        labels: data.valid.labels.iter().map(|l| 1 - l).collect(),
        ..data.valid.clone()
    };
    let cfg = TrainingConfig {
        epochs: 2,
        eval_every: Some(4),
        task_temperature: 2.0,
        ..small_config()
    };
    let heads = |seed| {
        let spec = ModelSpec::from_dir(&dir).unwrap();
        let heads = [("a::", 2), ("b::", 2)].map(|(prefix, n)| HeadSpec {
            prefix: prefix.into(),
            task: Task::SequenceClassification,
            num_labels: n,
        });
        Model::with_heads(spec, Some(&dir), &heads, None, &Device::Cpu, seed).unwrap()
    };
    let train = |models: &[Model], work: &Path, resume, cancel_at: Option<u64>| {
        let also = [TaskSet {
            name: "b",
            model: &models[1],
            train: &flipped,
            valid: &flipped_valid,
            labels: &data.labels,
        }];
        let trainer = Trainer {
            also: &also,
            name: "a",
            ..trainer_in(&models[0], &cfg, &data, work, resume)
        };
        run_until(&trainer, cancel_at).0
    };
    let whole = heads(5);
    let work = tempfile::tempdir().unwrap();
    assert_eq!(train(&whole, work.path(), None, None).steps, 20);

    let stopped = heads(5);
    let work = tempfile::tempdir().unwrap();
    let first = train(&stopped, work.path(), None, Some(7));
    assert_eq!(first.status, RunStatus::Cancelled);
    let point = hone_engine::checkpoint::load_last(work.path())
        .unwrap()
        .expect("a resumable checkpoint");
    let resumed = heads(99); // other initial heads: everything must come from the checkpoint
    let second = train(&resumed, work.path(), Some(point), None);
    assert_eq!(second.steps, 20);
    for (a, b) in whole.iter().zip(&resumed) {
        for p in a.params().all() {
            assert_eq!(
                bits(&p.value()),
                bits(&b.params().get(p.name()).unwrap().value()),
                "{} differs after the resume",
                p.name()
            );
        }
    }
}

/// A LoRA run's checkpoints hold its adapters and head, not the frozen base, and a run stopped
/// part-way and resumed from them ends with the weights of an uninterrupted run.
#[test]
fn a_lora_run_checkpoints_only_what_trains_and_resumes_exactly() {
    use hone_engine::config::FineTuneMethod;

    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let cfg = TrainingConfig {
        epochs: 2,
        eval_every: Some(4),
        peft: FineTuneMethod::Lora,
        lora_r: 4,
        lora_dropout: 0.1,
        lr: 1e-2,
        ..small_config()
    };
    let model = |seed| {
        Model::load_for_run(
            &dir,
            Task::SequenceClassification,
            2,
            &cfg,
            &Device::Cpu,
            seed,
        )
        .unwrap()
    };
    let train = |m: &Model, work: &Path, resume, cancel_at: Option<u64>| {
        run_until(&trainer_in(m, &cfg, &data, work, resume), cancel_at).0
    };
    let whole = model(5);
    let base = snapshot(whole.params());
    let work = tempfile::tempdir().unwrap();
    let summary = train(&whole, work.path(), None, None);
    assert_eq!(summary.steps, 10);
    let saved =
        hone_engine::checkpoint::load_tensors(&summary.best_dir.join("model.safetensors")).unwrap();
    assert!(
        saved
            .keys()
            .all(|k| k.contains(".lora_") || k.starts_with("classifier.")),
        "{:?}",
        saved.keys()
    );
    assert_eq!(
        saved.len(),
        2 * 2 * 2 + 2,
        "A and B of query and value in 2 layers, the classifier"
    );
    let frozen = "bert.encoder.layer.0.attention.self.query.weight";
    assert_eq!(
        bits(&snapshot(whole.params())[frozen]),
        bits(&base[frozen]),
        "the base stays"
    );

    let stopped = model(5);
    let work = tempfile::tempdir().unwrap();
    let first = train(&stopped, work.path(), None, Some(3));
    assert_eq!(first.status, RunStatus::Cancelled);
    let point = hone_engine::checkpoint::load_last(work.path())
        .unwrap()
        .expect("a resumable checkpoint");
    let resumed = model(99); // other adapters and head: they must come from the checkpoint
    let second = train(&resumed, work.path(), Some(point), None);
    assert_eq!(second.steps, 10);
    let (a, b) = (snapshot(whole.params()), snapshot(resumed.params()));
    for (name, value) in &a {
        assert_eq!(bits(value), bits(&b[name]), "{name}");
    }
}

/// fp16 with dynamic loss scaling: started at 2^24 (the tiny model's gradients fit fp16 at
/// PyTorch's 65,536), the first steps' gradients overflow, so those steps are skipped (the
/// weights stay bit-identical) and each says so in the events with the halved scale; the
/// scale comes down and the run trains on.
#[test]
fn fp16_skips_overflowing_steps_says_so_and_trains_on() {
    use hone_engine::precision::Precision;
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let before: Vec<(String, Vec<u32>)> = snapshot(model.params())
        .into_iter()
        .map(|(name, t)| (name, bits(&t)))
        .collect();
    let now = |name: &str| bits(&model.params().get(name).unwrap().value());
    const START: f64 = 16_777_216.0;
    let mut stepper = hone_engine::step::Stepper::new(&model, true)
        .with_precision(Precision::Fp16)
        .with_initial_loss_scale(START);
    assert!(
        !stepper.is_fast(),
        "mixed precision runs the autograd graph"
    );
    let cfg = small_config();
    let mut optimizer = hone_engine::recipes::optimizer(&model, &cfg);
    let batcher = hone_data::Batcher::new(model.spec().encoder.pad_token_id);
    let all: Vec<usize> = (0..8).collect();
    let batch = data.train.batch(&batcher, &all);
    let mut skipped = 0;
    for step in 1..=30u64 {
        let scale = stepper.loss_scale().unwrap();
        let done = stepper
            .step(
                &model,
                &mut optimizer,
                std::slice::from_ref(&batch),
                None,
                1e-3,
                HoneRng::new(0, step),
                step,
            )
            .unwrap();
        if !done.skipped_overflow {
            break;
        }
        skipped += 1;
        assert_eq!(stepper.loss_scale(), Some(scale / 2.0));
        for (name, bits_before) in &before {
            assert_eq!(&now(name), bits_before, "{name} moved on a skipped step");
        }
    }
    assert!(skipped > 0, "no step overflowed at 2^24");
    assert!(stepper.loss_scale().unwrap() < START);
    assert!(
        before.iter().any(|(name, b)| &now(name) != b),
        "nothing trained"
    );

    let model = Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let cfg = TrainingConfig {
        precision: Precision::Fp16,
        loss_scale: START,
        ..small_config()
    };
    let (result, events) = train(&model, &cfg, &data, &AtomicBool::new(false));
    assert_eq!(result.unwrap().status, RunStatus::Completed);
    let notices: Vec<&str> = events
        .iter()
        .filter_map(|e| match e {
            TrainEvent::Notice { message } if message.contains("overflowed") => {
                Some(message.as_str())
            }
            _ => None,
        })
        .collect();
    assert!(!notices.is_empty() && notices.len() < 10, "{notices:?}");
    assert!(
        notices[0].starts_with("step 1: fp16 overflowed"),
        "{}",
        notices[0]
    );
    assert!(notices[0].contains("halved to 8388608"), "{}", notices[0]);
    // A skipped step has no Step event (no finite loss or norm to chart).
    let steps = events
        .iter()
        .filter(|e| matches!(e, TrainEvent::Step { .. }))
        .count();
    assert_eq!(
        steps + notices.len(),
        10,
        "every step is either charted or said skipped"
    );
}

/// fp16's loss scale is saved with the resumable checkpoint: a run stopped after its scale
/// came down resumes at that scale (not at `loss_scale` again, which would skip the first
/// steps anew) and ends with the same weights, bit for bit, as the run that was not stopped.
#[test]
fn an_fp16_run_resumes_at_the_loss_scale_it_had_reached() {
    use hone_engine::precision::Precision;
    const START: f64 = 16_777_216.0;
    let dir = tiny_model("bert");
    let data = sst2_fixture(&dir, 32);
    let cfg = TrainingConfig {
        precision: Precision::Fp16,
        loss_scale: START,
        ..small_config()
    };
    let model =
        || Model::load(&dir, Task::SequenceClassification, 2, None, &Device::Cpu, 0).unwrap();
    let train = |m: &Model, work: &Path, resume, cancel_at: Option<u64>| {
        run_until(&trainer_in(m, &cfg, &data, work, resume), cancel_at)
    };
    let overflows = |events: &[TrainEvent]| {
        events
            .iter()
            .filter(
                |e| matches!(e, TrainEvent::Notice { message } if message.contains("overflowed")),
            )
            .count()
    };

    let whole = model();
    let work = tempfile::tempdir().unwrap();
    let (summary, events) = train(&whole, work.path(), None, None);
    let skipped = overflows(&events);
    assert!(skipped > 0, "no step overflowed at 2^24");
    let first_charted = events
        .iter()
        .find_map(|e| match e {
            TrainEvent::Step { step, .. } => Some(*step),
            _ => None,
        })
        .expect("steps after the overflows");
    assert!(first_charted < summary.steps, "no step left to resume");

    let stopped = model();
    let work = tempfile::tempdir().unwrap();
    let (first, first_events) = train(&stopped, work.path(), None, Some(first_charted));
    assert_eq!(first.status, RunStatus::Cancelled);
    let point = hone_engine::checkpoint::load_last(work.path())
        .unwrap()
        .expect("a resumable checkpoint");
    let saved_scale = point
        .state
        .loss_scaler
        .as_ref()
        .expect("an fp16 checkpoint keeps its loss scale")
        .scale();
    assert_eq!(
        saved_scale,
        START / 2f64.powi(overflows(&first_events) as i32)
    );
    let resumed = model();
    let (second, second_events) = train(&resumed, work.path(), Some(point), None);
    assert_eq!(second.status, RunStatus::Completed);
    assert_eq!(
        overflows(&first_events) + overflows(&second_events),
        skipped,
        "the resumed run skipped steps the whole run did not"
    );
    let (a, b) = (snapshot(whole.params()), snapshot(resumed.params()));
    for (name, value) in &a {
        assert_eq!(bits(value), bits(&b[name]), "{name}");
    }
}
