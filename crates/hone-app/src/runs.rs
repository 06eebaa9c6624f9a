//! Runs: recorded before they start, executed with every event written to the database,
//! resumed exactly after a crash or a cancel, compared.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;

use hone_data::{Example, LabelSet};
use hone_engine::events::{CheckpointKind, RunStatus as EngineStatus};
use hone_engine::job::{fine_tune_data, hold_out, tagged_data, RunPaths, TrainingData};
use hone_engine::models::ModelSpec;
use hone_engine::{Task as EngineTask, TrainEvent};
use hone_store::{ExampleFilter, Label, NewRun, Part, RunRecord, RunStatus, Store, Task};
use serde::Serialize;

use crate::evaluation::evaluate_examples;
use crate::predict::FineTunedModel;
use crate::run_config::{load_files, save_run_config, DataConfig, RunConfig, StoredData};
use crate::{fingerprint, process, App, AppError};

/// How a run ended.
#[derive(Debug, Clone, Serialize)]
pub struct RunOutcome {
    pub run_id: i64,
    pub status: RunStatus,
    pub export_dir: PathBuf,
}

/// Two runs side by side.
#[derive(Debug, Clone, Serialize)]
pub struct RunComparison {
    pub runs: [RunRecord; 2],
    /// Configuration keys whose values differ: (dotted key, first run's, second run's).
    pub config_diff: Vec<(String, serde_json::Value, serde_json::Value)>,
    /// Final metrics: (name, first run's, second run's).
    pub metrics: Vec<(String, Option<f64>, Option<f64>)>,
}

fn hardware() -> serde_json::Value {
    serde_json::json!({
        "os": std::env::consts::OS,
        "arch": std::env::consts::ARCH,
        "threads": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(1),
    })
}

/// A stored dataset's training data (its split's train and validation parts, or its labeled
/// examples with a seeded held-out share), and the examples of its split's test part (empty
/// when the split has none).
pub(crate) fn stored_data(
    store: &Store,
    data: &StoredData,
    seed: u64,
) -> Result<(TrainingData, Vec<Example>), AppError> {
    let info = store.dataset(&data.dataset)?;
    let task = engine_task(info.task);
    let labels = LabelSet::from_names(info.label_names.clone());
    if task == EngineTask::SequenceClassification && labels.len() < 2 {
        return Err(AppError::Invalid(format!(
            "dataset '{}' has {} class(es); a classifier needs at least two",
            data.dataset,
            labels.len()
        )));
    }
    let name = &data.dataset;
    let to_example = |e: hone_store::StoredExample| -> Result<Option<Example>, AppError> {
        let line = e.source_line.unwrap_or(e.position) as u64;
        Ok(match e.label {
            Some(Label::Class(label)) => Some(Example {
                line,
                text: e.text,
                text_pair: e.text_pair,
                label: Some(label),
                stored_id: Some(e.id),
                ..Default::default()
            }),
            // The store keeps one tag per token; an import keeps the file's scheme and the
            // Labeling page writes IOB2, so each sentence is normalised on its own.
            Some(Label::Tags(tags)) => {
                let tags = hone_data::normalise_tags(&tags).map_err(|err| {
                    AppError::Invalid(format!(
                        "dataset '{name}', line {line}: token {}: {}",
                        err.token + 1,
                        err.message
                    ))
                })?;
                let tokens = e.tokens.unwrap_or_default();
                Some(Example {
                    line,
                    text: tokens.join(" "),
                    tokens,
                    tags,
                    ..Default::default()
                })
            }
            None => None,
        })
    };
    let examples = |filter: &ExampleFilter| -> Result<Vec<Example>, AppError> {
        let mut out = Vec::new();
        for e in store.examples(info.id, filter)? {
            out.extend(to_example(e)?);
        }
        Ok(out)
    };
    let labeled = ExampleFilter {
        labeled: Some(true),
        ..Default::default()
    };
    // The training examples and, when the dataset says which, the validation ones.
    let (train, valid, test) = match data.split.as_deref() {
        Some("given") => {
            let mut all = store.examples(info.id, &labeled)?;
            let (mut train, mut valid, mut test) = (Vec::new(), Vec::new(), Vec::new());
            for e in all.drain(..) {
                match e.given_part {
                    Some(Part::Train) => train.extend(to_example(e)?),
                    Some(Part::Validation) => valid.extend(to_example(e)?),
                    Some(Part::Test) => test.extend(to_example(e)?),
                    _ => {}
                }
            }
            (train, Some(valid), test)
        }
        Some(split_name) => {
            let split = store
                .split(info.id, split_name)?
                .ok_or_else(|| AppError::NoSplit {
                    dataset: name.to_string(),
                    split: split_name.to_string(),
                    available: info.splits.join(", "),
                })?;
            let part = |part: Part| ExampleFilter {
                labeled: Some(true),
                part: Some((split.id, part)),
                ..Default::default()
            };
            (
                examples(&part(Part::Train))?,
                Some(examples(&part(Part::Validation))?),
                examples(&part(Part::Test))?,
            )
        }
        None => (examples(&labeled)?, None, Vec::new()),
    };
    let data = match task {
        EngineTask::SequenceClassification => {
            let (train, valid) = match valid {
                Some(valid) => (train, valid),
                None => {
                    let ids = labels.ids_for(Path::new(name), &train)?;
                    hold_out(train, &ids, data.valid_fraction, seed)
                }
            };
            TrainingData {
                task,
                labels,
                train,
                valid,
                notices: Vec::new(),
            }
        }
        EngineTask::TokenClassification => {
            tagged_data(train, valid, data.valid_fraction, seed, Vec::new())
        }
        EngineTask::MultipleChoice
        | EngineTask::QuestionAnswering
        | EngineTask::CausalLm
        | EngineTask::Text2Text => {
            return Err(AppError::Invalid(format!(
                "dataset '{name}' holds {}; {} trains from files (--train)",
                task.display_name(),
                task.display_name()
            )))
        }
    };
    if data.train.is_empty() {
        return Err(AppError::Invalid(format!(
            "dataset '{name}' has no labeled training examples in that split"
        )));
    }
    Ok((data, test))
}

/// The engine's task for a stored dataset's.
pub(crate) fn engine_task(task: Task) -> EngineTask {
    match task {
        Task::Classification => EngineTask::SequenceClassification,
        Task::TokenClassification => EngineTask::TokenClassification,
    }
}

/// Writes one event to the database.
pub(crate) fn record(
    store: &mut Store,
    id: i64,
    event: &TrainEvent,
) -> Result<(), hone_store::StoreError> {
    match event {
        TrainEvent::Started { total_steps, .. } => {
            let (pid, started) = process::current();
            store.start_run(id, pid, started, *total_steps as i64)
        }
        TrainEvent::Step {
            step,
            epoch,
            loss,
            lr,
            grad_norm,
            samples_per_s,
            tokens_per_s,
            task,
            ..
        } => {
            // A multi-task step's loss is also kept under its task (`loss/ner`).
            let per_task = task.as_ref().map(|t| format!("loss/{t}"));
            let mut values = vec![
                ("loss", *loss),
                ("lr", *lr),
                ("grad_norm", *grad_norm),
                ("samples_per_s", *samples_per_s),
                ("tokens_per_s", *tokens_per_s),
            ];
            values.extend(per_task.as_deref().map(|name| (name, *loss)));
            store.record_step(id, *step as i64, *epoch, &values)
        }
        // Where the set of trained parameters changed: the charts mark it.
        TrainEvent::PhaseChanged {
            step,
            epoch,
            params_trainable,
            ..
        } => store.record_step(
            id,
            *step as i64,
            *epoch,
            &[("params_trainable", *params_trainable as f64)],
        ),
        TrainEvent::Evaluated {
            step,
            epoch,
            report,
            ..
        } => {
            let names: Vec<(String, f64)> = report
                .metrics()
                .into_iter()
                .map(|(name, value)| (format!("eval_{name}"), value))
                .collect();
            let metrics: Vec<(&str, f64)> = names.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            store.record_evaluation(
                id,
                *step as i64,
                *epoch,
                "validation",
                &serde_json::to_value(report).unwrap_or_default(),
                None,
                &metrics,
            )
        }
        TrainEvent::Samples { step, samples } => {
            let rows: Vec<(&str, &str, i64)> = samples
                .iter()
                .map(|s| (s.prompt.as_str(), s.text.as_str(), s.tokens as i64))
                .collect();
            store.record_samples(id, *step as i64, &rows)
        }
        TrainEvent::CheckpointSaved { step, kind, path } => {
            let kind = match kind {
                CheckpointKind::Best => "checkpoint_best",
                CheckpointKind::Last => "checkpoint_last",
            };
            store.record_artifact(id, kind, &path.display().to_string(), Some(*step as i64))
        }
        _ => Ok(()),
    }
}

/// Keys of a JSON object flattened to dotted paths.
fn flatten(prefix: &str, value: &serde_json::Value, out: &mut BTreeMap<String, serde_json::Value>) {
    match value {
        serde_json::Value::Object(map) => {
            for (k, v) in map {
                let key = if prefix.is_empty() {
                    k.clone()
                } else {
                    format!("{prefix}.{k}")
                };
                flatten(&key, v, out);
            }
        }
        other => {
            out.insert(prefix.to_string(), other.clone());
        }
    }
}

impl App {
    /// Records a new, queued run of `config` with its own folder. Returns its id.
    pub fn create_run(
        &mut self,
        config: &RunConfig,
        name: Option<String>,
    ) -> Result<i64, AppError> {
        config.training.validate()?;
        ModelSpec::from_dir(&config.model)?;
        let mut config = config.clone();
        let dataset_id = match &config.data {
            DataConfig::Stored(s) => {
                // A stored dataset knows its task: tags train a token classifier.
                let info = self.store.dataset(&s.dataset)?;
                config.task = engine_task(info.task);
                Some(info.id)
            }
            DataConfig::Files(_) => None,
        };
        // Multi-task: each other task's stored dataset sets its task too, and the names are
        // checked now rather than when the run starts.
        for also in &mut config.also {
            if let DataConfig::Stored(s) = &also.data {
                also.task = engine_task(self.store.dataset(&s.dataset)?.task);
            }
        }
        hone_engine::job::check_task_names(config.task_names().iter().map(String::as_str))?;
        let id = self.store.create_run(&NewRun {
            name,
            config: serde_json::to_value(&config).map_err(|e| AppError::Invalid(e.to_string()))?,
            dataset_id,
            split_id: None,
            model_fingerprint: None,
            dataset_fingerprint: None,
            hardware: hardware(),
            run_dir: String::new(),
        })?;
        let dir = self.runs_dir().join(id.to_string());
        self.store.set_run_dir(id, &dir.display().to_string())?;
        Ok(id)
    }

    /// Runs run `id` on this thread (or, with `resume`, continues it from its last checkpoint),
    /// writing every event to the database before passing it to `sink`.
    pub fn execute_run(
        &mut self,
        id: i64,
        resume: bool,
        sink: &mut dyn FnMut(&TrainEvent),
        cancel: &AtomicBool,
    ) -> Result<RunOutcome, AppError> {
        let run = self.store.run(id)?;
        if let Some(placement) = crate::remote::RemoteRun::of(&run)? {
            return Err(AppError::Invalid(format!(
                "run {id} runs on compute target '{}' (Slurm job {}); resuming it submits it there again",
                placement.target, placement.job
            )));
        }
        match (resume, run.status) {
            (false, RunStatus::Queued) => {}
            // A queued run whose process died before it started can be "resumed" from step 0.
            (
                true,
                RunStatus::Interrupted
                | RunStatus::Cancelled
                | RunStatus::Failed
                | RunStatus::Queued,
            ) => {}
            (true, status) => {
                return Err(AppError::Invalid(format!(
                    "run {id} is {}; only interrupted, cancelled or failed runs can be resumed",
                    status.as_str()
                )))
            }
            (false, status) => {
                return Err(AppError::NotQueued {
                    id,
                    status: status.as_str().to_string(),
                })
            }
        }
        let config = RunConfig::of_run(&run)?;
        if config.ensemble.is_some() {
            return Err(AppError::Invalid(format!(
                "run {id} is an ensemble of other runs; it has nothing to train"
            )));
        }
        let result = self.execute_config(id, &run, &config, resume, sink, cancel);
        if let Err(e) = &result {
            self.store
                .finish_run(id, RunStatus::Failed, Some(&e.to_string()), None)?;
        }
        result
    }

    fn execute_config(
        &mut self,
        id: i64,
        run: &RunRecord,
        config: &RunConfig,
        resume: bool,
        sink: &mut dyn FnMut(&TrainEvent),
        cancel: &AtomicBool,
    ) -> Result<RunOutcome, AppError> {
        ModelSpec::from_dir(&config.model)?;
        let seed = config.training.seed;
        let (data, test) = self.read_data(&config.data, config.task, seed)?;
        let model_fp = fingerprint::model(&config.model)?;
        let multitask = self.multitask(config, seed)?;
        // A multi-task run's data is every task's: a resume refuses when any of them changed.
        let data_fp = std::iter::once(fingerprint::examples(&data.train, &data.valid))
            .chain(multitask.iter().flat_map(|m| {
                m.also
                    .iter()
                    .map(|t| fingerprint::examples(&t.data.train, &t.data.valid))
            }))
            .collect::<Vec<_>>()
            .join("+");
        if resume {
            if run
                .dataset_fingerprint
                .as_deref()
                .is_some_and(|f| f != data_fp)
            {
                return Err(AppError::Invalid(format!(
                    "the training data of run {id} changed since it started; start a new run instead"
                )));
            }
            if run
                .model_fingerprint
                .as_deref()
                .is_some_and(|f| f != model_fp)
            {
                return Err(AppError::Invalid(format!(
                    "the model folder of run {id} changed since it started; start a new run instead"
                )));
            }
        }
        self.store.set_run_fingerprints(id, &model_fp, &data_fp)?;
        self.record_model(&config.model, &model_fp)?;
        let (pid, started) = process::current();
        self.store.start_run(id, pid, started, 0)?;

        let run_dir = PathBuf::from(&run.run_dir);
        let out = config.out.clone().unwrap_or_else(|| run_dir.join("model"));
        let work_dir = run_dir.join("checkpoints");
        let base_model = crate::models::hub_origin(&config.model)
            .map_or_else(|| config.model.display().to_string(), |(repo, _)| repo);
        let teacher = config
            .teacher
            .as_deref()
            .map(|t| self.model_reference(t))
            .transpose()?;
        let previous = config
            .ewc
            .as_ref()
            .map(|p| self.previous_task(p, seed))
            .transpose()?;
        let paths = RunPaths {
            model: &config.model,
            base_model: &base_model,
            out: &out,
            work_dir: &work_dir,
            teacher: teacher.as_deref(),
            previous: previous.as_ref(),
            multitask: multitask.as_ref(),
        };
        // Every label the run had: the active-learning curve's x axis.
        let labeled_examples = data.train.len() + data.valid.len() + test.len();
        let valid = data.valid.clone();
        let labels = data.labels.clone();
        let config_text = toml::to_string(config).unwrap_or_default();
        let store = &mut self.store;
        let mut record_error = None;
        let outcome = fine_tune_data(
            &paths,
            data,
            &config.training,
            &config_text,
            resume,
            &mut |event: TrainEvent| {
                if record_error.is_none() {
                    if let Err(e) = record(store, id, &event) {
                        record_error = Some(e);
                    }
                }
                // Another process (the window, `hone runs cancel`) may ask this run to stop:
                // the request is read after every event (each step, and while the run starts)
                // and stops it as a cancel does.
                if store.cancel_requested(id).unwrap_or(false) {
                    cancel.store(true, std::sync::atomic::Ordering::SeqCst);
                }
                sink(&event);
            },
            cancel,
        )?;
        if let Some(e) = record_error {
            return Err(e.into());
        }
        // A multi-task run exports a folder per head; the run's own task's is its model.
        let heads: Vec<PathBuf> = match &multitask {
            Some(m) => m.names().map(|n| out.join(n)).collect(),
            None => vec![out.clone()],
        };
        for head in &heads {
            save_run_config(config, head)?;
        }
        let out = heads[0].clone();
        self.store.record_artifact(
            id,
            "export",
            &out.display().to_string(),
            Some(outcome.summary.steps as i64),
        )?;
        for head in &heads[1..] {
            self.store.record_artifact(
                id,
                "export_head",
                &head.display().to_string(),
                Some(outcome.summary.steps as i64),
            )?;
        }
        let status = match outcome.summary.status {
            EngineStatus::Completed | EngineStatus::EarlyStopped => RunStatus::Completed,
            EngineStatus::Cancelled => RunStatus::Cancelled,
        };
        // The exported model, loaded at most once for what follows (at the run's own length, so
        // these passes need no more memory than training did).
        let mut exported: Option<FineTunedModel> = None;
        if let Some((step, report)) = &outcome.summary.best {
            // Classification keeps every validation prediction (the worst mistakes are picked
            // from them); an entity report carries its wrongly tagged sentences itself.
            let predictions = match (report, &outcome.summary.best_logits) {
                (hone_engine::Report::Entities(_) | hone_engine::Report::Tasks(_), _) => None,
                (_, Some(logits)) => Some(predictions_json(&labels, &valid, logits)),
                (_, None) => Some(validation_predictions(
                    exported_model(&mut exported, &out, config.training.max_length)?,
                    &labels,
                    &valid,
                    &config.training,
                )?),
            };
            let report_json = serde_json::to_value(report).unwrap_or_default();
            self.store.record_evaluation(
                id,
                *step as i64,
                0.0,
                "validation",
                &report_json,
                predictions.as_ref(),
                &[],
            )?;
        }
        // The split's test part, scored once with the exported (best) model: the run's honest
        // score, since validation also picked the checkpoint.
        // (A multi-task run is scored by its validation report over every task: testing its own
        // task's head alone would stand for the whole run.)
        let tested = match (&outcome.summary.best, test.is_empty(), status) {
            (Some((step, _)), false, RunStatus::Completed) if multitask.is_none() => {
                let evaluation = evaluate_examples(
                    exported_model(&mut exported, &out, config.training.max_length)?,
                    &test,
                    Path::new("the test part"),
                    config.training.batch_size,
                )?;
                let report_json = serde_json::to_value(&evaluation.report).unwrap_or_default();
                self.store.record_evaluation(
                    id,
                    *step as i64,
                    0.0,
                    "test",
                    &report_json,
                    None,
                    &[],
                )?;
                Some(report_json)
            }
            _ => None,
        };
        let final_metrics = serde_json::json!({
            "steps": outcome.summary.steps,
            "elapsed_s": outcome.summary.elapsed_s,
            "stopped_early": outcome.summary.status == EngineStatus::EarlyStopped,
            "best_step": outcome.summary.best.as_ref().map(|(s, _)| *s),
            "best": outcome.summary.best.as_ref().map(|(_, r)| r),
            "test": tested,
            "test_examples": tested.as_ref().map(|_| test.len()),
            "labeled_examples": labeled_examples,
        });
        self.store
            .finish_run(id, status, None, Some(&final_metrics))?;
        Ok(RunOutcome {
            run_id: id,
            status,
            export_dir: out,
        })
    }

    /// Multi-task learning: the other tasks' data, read like the run's own.
    fn multitask(
        &self,
        config: &RunConfig,
        seed: u64,
    ) -> Result<Option<hone_engine::job::MultiTask>, AppError> {
        let names = config.task_names();
        let Some((main, others)) = names.split_first() else {
            return Ok(None);
        };
        let mut also = Vec::with_capacity(others.len());
        for (name, task) in others.iter().zip(&config.also) {
            let (data, _) = self.read_data(&task.data, task.task, seed)?;
            if data.task != task.task {
                return Err(AppError::Invalid(format!(
                    "task '{name}': its data holds {} examples, not {}",
                    data.task.display_name(),
                    task.task.display_name()
                )));
            }
            also.push(hone_engine::job::NamedTask {
                name: name.clone(),
                data,
            });
        }
        Ok(Some(hone_engine::job::MultiTask {
            main: main.clone(),
            also,
        }))
    }

    /// Keeps the model a run uses in the models table (a Hub snapshot as the repo it came from).
    fn record_model(&mut self, dir: &Path, fingerprint: &str) -> Result<(), AppError> {
        let spec = ModelSpec::from_dir(dir)?;
        self.store.upsert_model(&crate::models::model_record(
            dir,
            Some(spec.model_type),
            fingerprint.to_string(),
        ))?;
        Ok(())
    }

    /// A finished run's exported model folder and the sequence length it was trained with
    /// (what predictions with it should use); an error saying what to do when there is none.
    pub fn run_model(&self, id: i64) -> Result<(PathBuf, Option<usize>), AppError> {
        let run = self.store.run(id)?;
        let dir = self
            .store
            .artifacts(id)?
            .iter()
            .rev()
            .find(|a| a.kind == "export")
            .map(|a| PathBuf::from(&a.path))
            // A model folder, or an ensemble's (its members in folders beside the manifest).
            .filter(|p| {
                hone_engine::lora::is_model_folder(p) || p.join(crate::ensemble::MANIFEST).is_file()
            })
            .ok_or_else(|| {
                AppError::Invalid(format!(
                    "run {id} has no exported model yet; finish (or resume) it first"
                ))
            })?;
        let max_length = run.config["training"]["max_length"]
            .as_u64()
            .map(|n| n as usize);
        Ok((dir, max_length))
    }

    /// The examples run `id` held out: its split's test part when it has one, else the
    /// validation examples its configuration reads (the same files, dataset, split and seed).
    pub fn held_out_examples(&self, id: i64) -> Result<Vec<Example>, AppError> {
        let config = RunConfig::of_run(&self.store.run(id)?)?;
        let (data, test) = self.read_data(&config.data, config.task, config.training.seed)?;
        Ok(if test.is_empty() { data.valid } else { test })
    }

    /// The examples `data` names for a run of `task`: training data, and a stored split's
    /// test part (empty for files and splits without one).
    pub fn read_data(
        &self,
        data: &DataConfig,
        task: hone_engine::models::Task,
        seed: u64,
    ) -> Result<(TrainingData, Vec<Example>), AppError> {
        match data {
            DataConfig::Files(files) => Ok((load_files(files, task, seed)?, Vec::new())),
            DataConfig::Stored(stored) => stored_data(&self.store, stored, seed),
        }
    }

    /// How run `id`'s question-answering model reads passages: the stride and longest answer
    /// it trained with.
    pub fn run_answer_settings(&self, id: i64) -> Result<crate::predict::AnswerSettings, AppError> {
        let config = RunConfig::of_run(&self.store.run(id)?)?;
        Ok((&config.training).into())
    }

    /// Copies run `id`'s exported model (Hugging Face format, with its model card; not its
    /// checkpoints) into a new folder `name` inside `dest`, written whole or not at all;
    /// returns the new folder.
    pub fn export_run_model(
        &mut self,
        id: i64,
        dest: &Path,
        name: &str,
    ) -> Result<PathBuf, AppError> {
        let (source, _) = self.run_model(id)?;
        let target = new_folder(dest, name)?;
        hone_engine::checkpoint::write_dir_atomic(&target, |tmp| copy_files(&source, tmp))?;
        // The latest copy is the run's `copy` artifact (Runs lists it; Start ticks its step).
        self.store
            .record_artifact(id, "copy", &target.display().to_string(), None)?;
        Ok(target)
    }

    /// Merges run `id`'s LoRA adapter into its base model and writes the full model to a new
    /// folder `name` inside `dest` (see [`merge_adapter`]).
    pub fn export_run_merged(
        &mut self,
        id: i64,
        dest: &Path,
        name: &str,
    ) -> Result<PathBuf, AppError> {
        let (source, _) = self.run_model(id)?;
        let target = new_folder(dest, name)?;
        merge_adapter(&source, &target)?;
        self.store
            .record_artifact(id, "copy", &target.display().to_string(), None)?;
        Ok(target)
    }

    /// Writes run `id`'s model as ONNX into a new folder `name` inside `dest` (see
    /// [`export_onnx`]), written whole or not at all; returns the folder and what it holds.
    pub fn export_run_onnx(
        &mut self,
        id: i64,
        dest: &Path,
        name: &str,
        int8: bool,
    ) -> Result<(PathBuf, Vec<hone_engine::onnx::OnnxModel>), AppError> {
        let (source, _) = self.run_model(id)?;
        let target = new_folder(dest, name)?;
        let written = export_onnx(&source, &target, int8)?;
        self.store
            .record_artifact(id, "onnx", &target.display().to_string(), None)?;
        Ok((target, written))
    }

    /// Writes run `id`'s decoder as the GGUF file `name` inside `dest` (see [`export_gguf`])
    /// and records it.
    pub fn export_run_gguf(
        &mut self,
        id: i64,
        dest: &Path,
        name: &str,
        weights: hone_engine::gguf::GgufType,
    ) -> Result<hone_engine::gguf::GgufFile, AppError> {
        let (source, _) = self.run_model(id)?;
        let out = new_folder(dest, name)?;
        let written = export_gguf(&source, &out, weights)?;
        self.store
            .record_artifact(id, "gguf", &out.display().to_string(), None)?;
        Ok(written)
    }

    /// Combines finished runs into a new ensemble folder `name` inside `dest` (see
    /// [`crate::ensemble`]) and records it as a run scored beside its members
    /// ([`App::record_ensemble`]); returns the folder, its manifest and the record.
    pub fn ensemble_runs(
        &mut self,
        ids: &[i64],
        dest: &Path,
        name: &str,
        mean: crate::ensemble::Mean,
    ) -> Result<
        (
            PathBuf,
            crate::ensemble::EnsembleManifest,
            crate::ensemble_record::EnsembleRecord,
        ),
        AppError,
    > {
        let members = ids
            .iter()
            .map(|&id| Ok((self.run_model(id)?.0, format!("run {id}"))))
            .collect::<Result<Vec<_>, AppError>>()?;
        let out = new_folder(dest, name)?;
        let manifest = crate::ensemble::create(&members, &out, mean)?;
        let record = self.record_ensemble(ids, &out, &manifest, None)?;
        Ok((out, manifest, record))
    }

    /// How many runs have had their model exported (copied out) from Hone.
    pub fn exported_runs(&self) -> Result<usize, AppError> {
        Ok(self.store.runs_with_artifact("copy")?)
    }

    /// Two runs side by side: their configuration differences and final metrics.
    pub fn compare_runs(&self, a: i64, b: i64) -> Result<RunComparison, AppError> {
        let (ra, rb) = (self.store.run(a)?, self.store.run(b)?);
        let (mut fa, mut fb) = (BTreeMap::new(), BTreeMap::new());
        flatten("", &ra.config, &mut fa);
        flatten("", &rb.config, &mut fb);
        let keys: std::collections::BTreeSet<&String> = fa.keys().chain(fb.keys()).collect();
        let config_diff = keys
            .into_iter()
            .filter_map(|k| {
                let (va, vb) = (
                    fa.get(k).cloned().unwrap_or(serde_json::Value::Null),
                    fb.get(k).cloned().unwrap_or(serde_json::Value::Null),
                );
                (va != vb).then(|| (k.clone(), va, vb))
            })
            .collect();
        // The best evaluation's headline numbers, whichever the task (`Report::metrics`).
        let best = |r: &RunRecord| -> Vec<(String, f64)> {
            r.final_metrics
                .as_ref()
                .and_then(|m| m.get("best"))
                .and_then(|b| serde_json::from_value::<hone_engine::Report>(b.clone()).ok())
                .map(|report| report.metrics())
                .unwrap_or_default()
        };
        let (best_a, best_b) = (best(&ra), best(&rb));
        let mut names: Vec<&str> = best_a.iter().map(|(n, _)| n.as_str()).collect();
        names.extend(
            best_b
                .iter()
                .map(|(n, _)| n.as_str())
                .filter(|n| !best_a.iter().any(|(a, _)| a == n)),
        );
        let value =
            |of: &[(String, f64)], name: &str| of.iter().find(|(n, _)| n == name).map(|(_, v)| *v);
        let top = |r: &RunRecord, key: &str| r.final_metrics.as_ref()?.get(key)?.as_f64();
        let mut metrics: Vec<(String, Option<f64>, Option<f64>)> = names
            .into_iter()
            .map(|n| (n.to_string(), value(&best_a, n), value(&best_b, n)))
            .collect();
        for key in ["best_step", "steps", "elapsed_s"] {
            metrics.push((key.to_string(), top(&ra, key), top(&rb, key)));
        }
        Ok(RunComparison {
            runs: [ra, rb],
            config_diff,
            metrics,
        })
    }

    /// Removes a finished run's checkpoints (its exported model stays). They are only needed
    /// to resume, and weigh three times the model.
    pub fn clean_checkpoints(&mut self, id: i64) -> Result<(), AppError> {
        let run = self.store.run(id)?;
        let dir = PathBuf::from(&run.run_dir).join("checkpoints");
        if dir.is_dir() {
            std::fs::remove_dir_all(&dir).map_err(|e| AppError::Io {
                path: dir,
                source: e,
            })?;
        }
        for kind in ["checkpoint_best", "checkpoint_last"] {
            self.store.remove_artifact(id, kind)?;
        }
        Ok(())
    }

    /// Deletes a run's records, and its folder when it is one Hone made (under `runs/`).
    pub fn delete_run(&mut self, id: i64) -> Result<(), AppError> {
        let run = self.store.run(id)?;
        if run.status == RunStatus::Running {
            return Err(AppError::Invalid(format!(
                "run {id} is running; cancel it before deleting it"
            )));
        }
        self.store.delete_run(id)?;
        let dir = PathBuf::from(&run.run_dir);
        if !run.run_dir.is_empty() && dir.starts_with(self.runs_dir()) && dir.is_dir() {
            std::fs::remove_dir_all(&dir).map_err(|e| AppError::Io {
                path: dir,
                source: e,
            })?;
        }
        Ok(())
    }
}

/// The run's exported model, loaded into `slot` the first time it is asked for.
fn exported_model<'a>(
    slot: &'a mut Option<FineTunedModel>,
    out: &Path,
    max_length: usize,
) -> Result<&'a FineTunedModel, AppError> {
    if slot.is_none() {
        *slot = Some(FineTunedModel::load(
            out,
            hone_engine::DeviceSpec::Cpu,
            Some(max_length),
        )?);
    }
    Ok(slot.as_ref().expect("loaded above"))
}

/// A text classifier's predictions on the validation examples (for the worst errors), when the
/// trainer kept no logits (a resumed run).
fn validation_predictions(
    model: &FineTunedModel,
    labels: &LabelSet,
    valid: &[Example],
    training: &hone_engine::TrainingConfig,
) -> Result<serde_json::Value, AppError> {
    let batch_size = training.batch_size;
    if valid.is_empty() {
        return Ok(serde_json::Value::Array(Vec::new()));
    }
    if let FineTunedModel::Answers(_) = model {
        return answer_predictions(model, valid, training.into(), batch_size);
    }
    let FineTunedModel::Classes(predictor) = model else {
        return Ok(serde_json::Value::Array(Vec::new()));
    };
    let inputs: Vec<(String, Option<String>)> = valid
        .iter()
        .map(|e| (e.text.clone(), e.text_pair.clone()))
        .collect();
    let logits: Vec<Vec<f32>> = predictor
        .predict(&inputs, batch_size)?
        .into_iter()
        .map(|p| p.logits)
        .collect();
    Ok(predictions_json(labels, valid, &logits))
}

/// The validation questions with the answer found in each passage and its SQuAD scores
/// against the gold answers (the run page's mistakes: predicted vs gold span).
fn answer_predictions(
    model: &FineTunedModel,
    valid: &[Example],
    settings: crate::predict::AnswerSettings,
    batch_size: usize,
) -> Result<serde_json::Value, AppError> {
    use hone_engine::metrics::answers::{exact_match, f1_score};
    let pairs: Vec<(String, String)> = valid
        .iter()
        .map(|e| (e.text.clone(), e.text_pair.clone().unwrap_or_default()))
        .collect();
    let crate::predict::Predictions::QuestionAnswering(found) =
        model.predict_answers(&pairs, settings, batch_size)?
    else {
        return Ok(serde_json::Value::Array(Vec::new()));
    };
    Ok(serde_json::Value::Array(
        valid
            .iter()
            .zip(found)
            .map(|(e, p)| {
                let best = |score: fn(&str, &str) -> f64| {
                    e.answers
                        .iter()
                        .map(|g| score(&p.answer, &g.text))
                        .fold(0.0, f64::max)
                };
                let gold = e.answers.first();
                serde_json::json!({
                    "text": e.text,
                    "text_pair": e.text_pair,
                    "label": gold.map(|g| g.text.clone()),
                    "gold_start": gold.map(|g| g.start),
                    "predicted": p.answer,
                    "start": p.start,
                    "end": p.end,
                    "score": p.score,
                    "exact_match": best(exact_match),
                    "f1": best(f1_score),
                })
            })
            .collect(),
    ))
}

/// The validation examples with their predicted class and probabilities (the rows the worst
/// misclassified examples are picked from).
fn predictions_json(
    labels: &LabelSet,
    valid: &[Example],
    logits: &[Vec<f32>],
) -> serde_json::Value {
    serde_json::Value::Array(
        valid
            .iter()
            .zip(logits)
            .map(|(e, row)| {
                let predicted = labels
                    .names()
                    .get(hone_engine::inference::argmax(row) as usize)
                    .cloned();
                // A multiple-choice answer is stored as the option's index: shown as its
                // letter, like the prediction, with the options beside it.
                let (label, label_id) = match e.choices.is_empty() {
                    true => (
                        e.label.clone(),
                        e.label.as_deref().and_then(|l| labels.id(l)),
                    ),
                    false => {
                        let id = e.label.as_deref().and_then(|l| l.parse::<u32>().ok());
                        (id.map(|i| hone_data::choice_letter(i as usize)), id)
                    }
                };
                let mut p = serde_json::json!({
                    "example_id": e.stored_id,
                    "text": e.text,
                    "text_pair": e.text_pair,
                    "label": label,
                    "label_id": label_id,
                    "predicted": predicted,
                    "probabilities": hone_engine::inference::probabilities(row),
                });
                if !e.choices.is_empty() {
                    p["options"] = serde_json::json!(e.choices);
                }
                p
            })
            .collect(),
    )
}

/// `dest/name` for a new folder: one name without slashes, not there yet.
/// `dest/name` for a new export (a folder, or a file), checked: a name without slashes, not
/// taken yet.
fn new_folder(dest: &Path, name: &str) -> Result<PathBuf, AppError> {
    let name = name.trim();
    if name.is_empty() || name.contains(['/', '\\']) || name == "." || name == ".." {
        return Err(AppError::Invalid(
            "the folder needs a name without slashes".into(),
        ));
    }
    let target = dest.join(name);
    if target.exists() {
        return Err(AppError::Invalid(format!(
            "{} already exists; choose another name",
            target.display()
        )));
    }
    Ok(target)
}

/// Exports the model folder `source` (a full model or a LoRA adapter) as ONNX into the new
/// folder `out`, written whole or not at all: `onnx/model.onnx` (and
/// `onnx/model_quantized.onnx`, int8, with `int8`), the config and tokenizer (`hone_engine::onnx::export_folder`). The models'
/// paths are those inside `out`.
pub fn export_onnx(
    source: &Path,
    out: &Path,
    int8: bool,
) -> Result<Vec<hone_engine::onnx::OnnxModel>, AppError> {
    if out.exists() {
        return Err(AppError::Invalid(format!(
            "{} already exists; choose another name",
            out.display()
        )));
    }
    let mut written = Vec::new();
    hone_engine::checkpoint::write_dir_atomic(out, |tmp| {
        written = hone_engine::onnx::export_folder(source, tmp, int8)?;
        Ok(())
    })?;
    for model in &mut written {
        if let Some(file) = model.path.file_name() {
            model.path = out.join(hone_engine::onnx::MODEL_FOLDER).join(file);
        }
    }
    Ok(written)
}

/// Exports the decoder folder `source` (a full model or a LoRA adapter, merged first) as the
/// GGUF file `out` (llama.cpp's format; `hone_engine::gguf`); an existing file is kept.
pub fn export_gguf(
    source: &Path,
    out: &Path,
    weights: hone_engine::gguf::GgufType,
) -> Result<hone_engine::gguf::GgufFile, AppError> {
    if out.exists() {
        return Err(AppError::Invalid(format!(
            "{} already exists; choose another file",
            out.display()
        )));
    }
    Ok(hone_engine::gguf::export_file(source, out, weights)?)
}

/// Merges the LoRA adapter folder `source` into its base model's weights and writes the
/// full model (which plain transformers loads) to `out`, all at once: `out` appears complete
/// or not at all.
pub fn merge_adapter(source: &Path, out: &Path) -> Result<(), AppError> {
    if out.exists() {
        return Err(AppError::Invalid(format!(
            "{} already exists; choose another folder",
            out.display()
        )));
    }
    hone_engine::checkpoint::write_dir_atomic(out, |tmp| {
        hone_engine::export::merge_adapter(source, tmp)
    })?;
    Ok(())
}

/// Copies the files of a model folder into `into` (exported folders are flat).
pub(crate) fn copy_files(source: &Path, into: &Path) -> Result<(), hone_engine::EngineError> {
    // An ensemble's members are folders beside its manifest: they travel with it.
    copy_level(
        source,
        into,
        source.join(crate::ensemble::MANIFEST).is_file(),
    )
}

/// Copies the files of `source` into `into`, and its folders too when `ensemble`.
fn copy_level(source: &Path, into: &Path, ensemble: bool) -> Result<(), hone_engine::EngineError> {
    let io = |path: &Path, e| hone_engine::EngineError::io(path, e);
    for entry in std::fs::read_dir(source).map_err(|e| io(source, e))? {
        let path = entry.map_err(|e| io(source, e))?.path();
        match (path.is_file(), path.file_name()) {
            (true, Some(file)) => {
                std::fs::copy(&path, into.join(file)).map_err(|e| io(&path, e))?;
            }
            (false, Some(folder)) if ensemble && path.is_dir() => {
                let target = into.join(folder);
                std::fs::create_dir_all(&target).map_err(|e| io(&target, e))?;
                copy_level(&path, &target, true)?;
            }
            _ => {}
        }
    }
    Ok(())
}

/// Checks that the adapter folder `adapter` is built on the model folder `base` (generating
/// with `--model BASE --adapter ADAPTER`): the folder its settings resolve to is `base`.
pub fn check_adapter_base(adapter: &Path, base: &Path) -> Result<(), AppError> {
    let found = hone_engine::lora::base_folder(adapter)?;
    if found == adapter {
        return Err(AppError::Invalid(format!(
            "{} is not an adapter folder (no adapter_config.json)",
            adapter.display()
        )));
    }
    let same = |a: &Path, b: &Path| match (a.canonicalize(), b.canonicalize()) {
        (Ok(a), Ok(b)) => a == b,
        _ => a == b,
    };
    if !same(&found, base) {
        return Err(AppError::Invalid(format!(
            "the adapter {} is built on {}, not {}; give that model, or the adapter alone as \
             --model",
            adapter.display(),
            found.display(),
            base.display()
        )));
    }
    Ok(())
}
