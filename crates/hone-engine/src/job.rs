//! A whole fine-tuning run from files: read and check the data, tokenize, load the model,
//! train, restore the best checkpoint and export it.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use hone_data::{read_examples, stratified_holdout, Example, LabelSet, TextTokenizer};

use crate::batch::EncodedSet;
use crate::checkpoint::load_tensors;
use crate::config::RunConfig;
use crate::device::device_name;
use crate::events::{RunStatus, TrainEvent};
use crate::export::{export_classifier, ModelCard};
use crate::models::{Classifier, ModelSpec};
use crate::trainer::{TrainPlan, TrainSummary, Trainer};
use crate::EngineError;

/// The result of [`fine_tune`].
#[derive(Debug, Clone)]
pub struct FineTuneOutcome {
    pub summary: TrainSummary,
    pub labels: Vec<String>,
}

fn encode(
    tokenizer: &TextTokenizer,
    examples: &[Example],
    labels: Vec<u32>,
) -> Result<EncodedSet, EngineError> {
    let texts: Vec<(&str, Option<&str>)> = examples
        .iter()
        .map(|e| (e.text.as_str(), e.text_pair.as_deref()))
        .collect();
    Ok(EncodedSet {
        examples: tokenizer.encode(&texts)?,
        labels,
    })
}

/// Runs the fine-tuning described by `config`, reporting through `sink` and stopping after the
/// current step when `cancel` is raised. The best checkpoint (or, without validation, the last
/// weights) is exported to `config.out`.
pub fn fine_tune(
    config: &RunConfig,
    sink: &mut dyn FnMut(TrainEvent),
    cancel: &AtomicBool,
) -> Result<FineTuneOutcome, EngineError> {
    let cfg = &config.training;
    cfg.validate()?;
    let spec = ModelSpec::from_dir(&config.model)?;
    let device = cfg.device.open()?;

    let columns = config.data.columns();
    let train_file = &config.data.train;
    let read =
        |path: &Path, sink: &mut dyn FnMut(TrainEvent)| -> Result<Vec<Example>, EngineError> {
            let file = read_examples(path, config.data.format, &columns)?;
            for message in file.warnings {
                sink(TrainEvent::Notice { message });
            }
            Ok(file.examples)
        };
    let all_train = read(train_file, sink)?;
    let labels = LabelSet::from_examples(&all_train)?;
    let all_ids = labels.ids_for(train_file, &all_train)?;
    let (train_examples, train_ids, valid_examples, valid_ids) = match &config.data.valid {
        Some(valid_file) => {
            let valid = read(valid_file, sink)?;
            let ids = labels.ids_for(valid_file, &valid)?;
            (all_train, all_ids, valid, ids)
        }
        None => {
            let (train_idx, valid_idx) =
                stratified_holdout(&all_ids, config.data.valid_fraction, cfg.seed);
            let pick = |idx: &[usize]| -> (Vec<Example>, Vec<u32>) {
                idx.iter()
                    .map(|&i| (all_train[i].clone(), all_ids[i]))
                    .unzip()
            };
            let (t, ti) = pick(&train_idx);
            let (v, vi) = pick(&valid_idx);
            (t, ti, v, vi)
        }
    };
    if train_examples.is_empty() {
        return Err(EngineError::InvalidConfig(
            "no training examples are left after holding out the validation share".into(),
        ));
    }

    let model_max = spec.max_sequence_length();
    let max_length = cfg.max_length.min(model_max);
    if max_length < cfg.max_length {
        sink(TrainEvent::Notice {
            message: format!(
                "max length {} is longer than the model allows; using {model_max}",
                cfg.max_length
            ),
        });
    }
    let tokenizer = TextTokenizer::from_model_dir(&config.model, max_length)?;
    let train = encode(&tokenizer, &train_examples, train_ids)?;
    let valid = encode(&tokenizer, &valid_examples, valid_ids)?;

    let model = Classifier::load(&config.model, labels.len(), cfg.dropout, &device, cfg.seed)?;
    let plan = TrainPlan::new(cfg, train.len());
    crate::recipes::apply_freezing(&model, cfg, plan.head_only_steps > 0);
    sink(TrainEvent::Started {
        device: device_name(&device),
        model_type: spec.model_type.clone(),
        labels: labels.names().to_vec(),
        train_examples: train.len() as u64,
        valid_examples: valid.len() as u64,
        truncated_train: train.truncated() as u64,
        truncated_valid: valid.truncated() as u64,
        max_length,
        epochs: cfg.epochs,
        steps_per_epoch: plan.steps_per_epoch,
        total_steps: plan.total_steps,
        warmup_steps: plan.warmup_steps,
        params_total: model.params().count() as u64,
        params_trainable: model.params().count_trainable() as u64,
        newly_initialized: model.newly_initialized().to_vec(),
    });

    let work_dir = config.out.join("checkpoints");
    let trainer = Trainer {
        model: &model,
        cfg,
        train: &train,
        valid: &valid,
        labels: labels.names(),
        work_dir: &work_dir,
    };
    let summary = trainer.run(sink, cancel)?;

    if summary.best.is_some() {
        model.set_values(&load_tensors(&summary.best_dir.join("model.safetensors"))?)?;
    } else if summary.status == RunStatus::Cancelled {
        sink(TrainEvent::Notice {
            message: "stopped before the first validation: exporting the current weights".into(),
        });
    }
    let config_text = toml::to_string(config).unwrap_or_default();
    let base = config.model.display().to_string();
    export_classifier(
        &model,
        labels.names(),
        &config.model,
        &tokenizer,
        &config.out,
        &ModelCard {
            base_model: &base,
            train_examples: train.len() as u64,
            valid_examples: valid.len() as u64,
            best_step: summary.best.as_ref().map(|(s, _)| *s),
            report: summary.best.as_ref().map(|(_, r)| r),
            config_text: &config_text,
        },
    )?;
    save_run_config(config, &config.out)?;
    sink(TrainEvent::Finished {
        status: summary.status,
        steps: summary.steps,
        elapsed_s: summary.elapsed_s,
        best_step: summary.best.as_ref().map(|(s, _)| *s),
        best: summary.best.as_ref().map(|(_, r)| r.clone()),
        export_dir: config.out.clone(),
    });
    Ok(FineTuneOutcome {
        summary,
        labels: labels.names().to_vec(),
    })
}

/// Keeps the run configuration beside the exported model (`hone_run.json`).
fn save_run_config(config: &RunConfig, out: &Path) -> Result<(), EngineError> {
    let json = serde_json::to_string_pretty(config).map_err(|e| EngineError::Export {
        path: out.join("hone_run.json"),
        message: e.to_string(),
    })?;
    crate::checkpoint::write_atomic(&out.join("hone_run.json"), json.as_bytes())
}
