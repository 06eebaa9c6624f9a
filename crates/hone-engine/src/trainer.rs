//! The training loop: seeded epochs of shuffled batches, gradient accumulation, clipping,
//! AdamW with the recipe's parameter groups, the LR schedule, periodic validation, best and
//! last checkpoints, early stopping and cancellation. Runs on the caller's thread and reports
//! through a callback.

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hone_data::{epoch_order, Batcher};

use crate::batch::EncodedSet;
use crate::checkpoint::{save_best, save_last, ResumePoint, TrainerState};
use crate::config::TrainingConfig;
use crate::curriculum::{curriculum_order, difficulty};
use crate::distill::Distill;
use crate::events::{CheckpointKind, RunStatus, TrainEvent};
use crate::ewc::Ewc;
use crate::inference::evaluate_with;
use crate::metrics::Report;
use crate::models::{Model, Task};
use crate::multitask::{combined, epoch_chunks, union_params, TaskChunk, TaskSet};
use crate::optim::Optimizer;
use crate::params::ParamStore;
use crate::precision::LossScaler;
use crate::recipes::{apply_freezing, describe_depth, optimizer_for};
use crate::rng::HoneRng;
use crate::schedule::{warmup_steps, LrSchedule};
use crate::step::Stepper;
use crate::EngineError;

/// Stream of the generator that draws dropout masks (mixed with the step number).
const DROPOUT_STREAM: u64 = 0xD20F;

/// Step counts of a run, derived from the config and the training set size.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct TrainPlan {
    pub steps_per_epoch: u64,
    pub total_steps: u64,
    pub warmup_steps: u64,
    /// Optimizer steps during which only the head trains.
    pub head_only_steps: u64,
    /// Gradual unfreezing: optimizer steps between one more layer becoming trainable.
    pub unfreeze_every: Option<u64>,
    /// Encoder layers (gradual unfreezing ends with the embeddings, one group below them).
    pub num_layers: usize,
}

impl TrainPlan {
    /// The plan of a run of `cfg` on `train_examples` examples for a model of `num_layers`
    /// layers.
    pub fn new(cfg: &TrainingConfig, train_examples: usize, num_layers: usize) -> Self {
        let per_step = cfg.batch_size * cfg.grad_accum as usize;
        let steps_per_epoch = train_examples.div_ceil(per_step.max(1)) as u64;
        let total_steps = steps_per_epoch * cfg.epochs as u64;
        let unfreeze_every = cfg
            .unfreeze_every_steps
            .or(cfg
                .unfreeze_every_epochs
                .map(|e| e as u64 * steps_per_epoch))
            .map(|n| n.max(1));
        TrainPlan {
            steps_per_epoch,
            total_steps,
            warmup_steps: warmup_steps(total_steps, cfg.warmup_ratio, cfg.warmup_steps),
            head_only_steps: cfg.head_warmup_steps
                + cfg.head_warmup_epochs as u64 * steps_per_epoch,
            unfreeze_every,
            num_layers,
        }
    }

    /// How deep from the top parameters train at optimizer step `step` (0 = the head alone;
    /// `None` = everything the recipe does not freeze): the head-only warm start, then one
    /// more layer every `unfreeze_every` steps, the embeddings last.
    pub fn trainable_depth(&self, step: u64) -> Option<usize> {
        if step < self.head_only_steps {
            return Some(0);
        }
        let every = self.unfreeze_every?;
        let depth = ((step - self.head_only_steps) / every) as usize;
        (depth <= self.num_layers).then_some(depth)
    }
}

/// What a finished (or stopped) training loop leaves behind.
#[derive(Debug, Clone)]
pub struct TrainSummary {
    pub status: RunStatus,
    pub steps: u64,
    pub elapsed_s: f64,
    /// Step and evaluation of the best checkpoint, if any validation ran.
    pub best: Option<(u64, Report)>,
    /// Folder of the best checkpoint's weights.
    pub best_dir: PathBuf,
    /// The best checkpoint's logits on the validation examples (in their order), when that
    /// validation ran in this process (not before a resume).
    pub best_logits: Option<Vec<Vec<f32>>>,
}

/// Everything the loop needs.
pub struct Trainer<'a> {
    pub model: &'a Model,
    pub cfg: &'a TrainingConfig,
    pub train: &'a EncodedSet,
    pub valid: &'a EncodedSet,
    pub labels: &'a [String],
    /// Folder for the `best` and `last` checkpoints.
    pub work_dir: &'a Path,
    /// Continue from this checkpoint instead of the model's current weights.
    pub resume: Option<ResumePoint>,
    /// Elastic weight consolidation: the previous task's penalty.
    pub ewc: Option<Arc<Ewc>>,
    /// Multi-task learning: the main task's name and the other tasks trained on the same
    /// encoder (heads sharing `model`'s encoder); empty for a run of one task.
    pub also: &'a [TaskSet<'a>],
    /// The main task's name in a multi-task run.
    pub name: &'a str,
    /// A causal-LM run's fixed prompts, answered after each evaluation.
    pub samples: Option<&'a crate::sft::SamplePrompts>,
    /// A text-to-text run's generations at each validation (ROUGE in its report).
    pub generations: Option<&'a crate::seq2seq::ValidationGenerations>,
}

struct Progress {
    step: u64,
    best: Option<(u64, Report)>,
    best_value: Option<f64>,
    evals_without_improvement: u32,
    last_eval_step: Option<u64>,
    best_logits: Option<Vec<Vec<f32>>>,
    /// Training seconds before this process took over (a resumed run's earlier sessions).
    elapsed_before: f64,
    /// When this process started training.
    started: Instant,
    /// fp16's dynamic loss scale after the last step (saved with the resumable checkpoint).
    loss_scaler: Option<LossScaler>,
}

impl Progress {
    /// Seconds spent training this run, earlier sessions included.
    fn elapsed_s(&self) -> f64 {
        self.elapsed_before + self.started.elapsed().as_secs_f64()
    }
}

/// Hands a GPU's cached memory back when dropped ([`crate::device::release_cached`]).
struct ReleaseOnEnd<'a>(&'a candle_core::Device);

impl Drop for ReleaseOnEnd<'_> {
    fn drop(&mut self) {
        // The run has ended (its result already made); a failure here has nowhere to go, and
        // the driver reclaims the pool when the process ends.
        let _ = crate::device::release_cached(self.0);
    }
}

impl Trainer<'_> {
    /// Runs the loop. Checks `cancel` before every optimizer step.
    pub fn run(
        &self,
        sink: &mut dyn FnMut(TrainEvent),
        cancel: &AtomicBool,
    ) -> Result<TrainSummary, EngineError> {
        let cfg = self.cfg;
        let model = self.model;
        // However the run ends, a GPU's pool hands back what it kept.
        let _release = ReleaseOnEnd(model.device());
        let tasks = self.tasks();
        let models: Vec<&Model> = tasks.iter().map(|t| t.model).collect();
        let params = union_params(&models);
        // What checkpoints hold (and resuming reads back): an adapter model's frozen base
        // stays out.
        let saved = crate::recipes::checkpointed(&models, &params, cfg);
        // Packing: the steps take bins of examples (`crate::packing`).
        let bins = crate::packing::run_bins(cfg, self.train, model);
        let train_units = match &bins {
            Some(b) => b.len(),
            None => tasks.iter().map(|t| t.train.len()).sum(),
        };
        let plan = TrainPlan::new(cfg, train_units, model.num_layers());
        let schedule = LrSchedule::from_config(cfg, plan.warmup_steps, plan.total_steps);
        let mut optimizer = optimizer_for(&models, cfg);
        let batcher = Batcher::new(model.spec().encoder.pad_token_id);
        let per_step = cfg.batch_size * cfg.grad_accum as usize;
        let started = Instant::now();
        // When the resumable checkpoint was last written (time-based checkpoints count from it).
        let mut last_saved = Instant::now();
        let mut progress = Progress {
            step: 0,
            best: None,
            best_value: None,
            evals_without_improvement: 0,
            last_eval_step: None,
            best_logits: None,
            elapsed_before: 0.0,
            started,
            loss_scaler: None,
        };
        let (mut start_epoch, mut skip_chunks) = (0, 0);
        if let Some(point) = &self.resume {
            // Streamed from disk a tensor at a time: resuming needs no more memory than
            // training does.
            crate::checkpoint::load_into(&saved, &point.weights_file(), model.family().name())?;
            optimizer.restore_from_file(&point.optimizer_file(), &point.state.optimizer_steps)?;
            let s = &point.state;
            progress = Progress {
                step: s.step,
                best: s.best_step.zip(point.best_report.clone()),
                best_value: s.best_value,
                evals_without_improvement: s.evals_without_improvement,
                last_eval_step: s.last_eval_step,
                best_logits: None,
                elapsed_before: s.elapsed_s,
                started,
                loss_scaler: s.loss_scaler.clone(),
            };
            start_epoch = s.epoch;
            skip_chunks = s.examples_in_epoch as usize / per_step;
            sink(TrainEvent::Resumed {
                step: s.step,
                epoch: s.epoch,
            });
        }
        let mut depth = plan.trainable_depth(progress.step);
        freeze_all(&models, cfg, depth);
        let first_step = progress.step;
        let distilling = !self.train.teacher.is_empty() && cfg.distill_alpha > 0.0;
        let run_tasks: Vec<Task> = models.iter().map(|m| m.task()).collect();
        check_label_smoothing(cfg.label_smoothing, &run_tasks, distilling)?;
        if cfg.early_stopping_metric.for_task(model.task()) == crate::metrics::Metric::RougeL
            && cfg.generate_examples == 0
        {
            return Err(EngineError::InvalidConfig(
                "the best checkpoint by ROUGE-L needs validation generations: set \
                 generate_examples above 0, or pick another metric"
                    .into(),
            ));
        }
        let mut stepper = Stepper::new(model, true)
            .with_distillation(distilling.then(|| Distill::from_config(cfg)))
            .with_label_smoothing(cfg.label_smoothing)
            .with_penalty(self.ewc.clone())
            .with_precision(cfg.precision)
            .with_initial_loss_scale(cfg.loss_scale)
            .with_loss_scaler(progress.loss_scaler.clone());
        let mut status = RunStatus::Completed;

        'epochs: for epoch in start_epoch..cfg.epochs {
            let chunks = self.epoch_chunks(&tasks, epoch, bins.as_ref().map(Vec::len));
            let skip = if epoch == start_epoch { skip_chunks } else { 0 };
            for (chunk_index, chunk) in chunks.iter().enumerate().skip(skip) {
                if cancel.load(Ordering::SeqCst) {
                    status = RunStatus::Cancelled;
                    self.save_last(
                        &saved,
                        &optimizer,
                        &progress,
                        epoch,
                        (chunk_index * per_step) as u64,
                        sink,
                    )?;
                    break 'epochs;
                }
                let step = progress.step;
                let now = plan.trainable_depth(step);
                if now != depth {
                    depth = now;
                    freeze_all(&models, cfg, depth);
                    sink(TrainEvent::PhaseChanged {
                        step,
                        epoch: epoch as f64 + chunk_index as f64 / plan.steps_per_epoch as f64,
                        phase: describe_depth(depth, plan.num_layers),
                        params_trainable: params.count_trainable() as u64,
                    });
                }
                let step_start = Instant::now();
                let rng = HoneRng::new(cfg.seed, DROPOUT_STREAM ^ (step << 16));
                let task = &tasks[chunk.task];
                let batches = match &bins {
                    // The chunk lists bins: a micro-batch is `batch_size` of them.
                    Some(bins) => chunk
                        .examples
                        .chunks(cfg.batch_size.max(1))
                        .map(|group| {
                            let members: Vec<usize> =
                                group.iter().flat_map(|&b| bins[b].clone()).collect();
                            task.train.batch(&batcher, &members)
                        })
                        .collect(),
                    None => task
                        .train
                        .batches(&batcher, &chunk.examples, cfg.batch_size),
                };
                let lr = cfg.lr * schedule.multiplier(step);
                let done = stepper.step(
                    task.model,
                    &mut optimizer,
                    &batches,
                    cfg.clip_norm,
                    lr,
                    rng,
                    step + 1,
                )?;
                if done.skipped_overflow {
                    sink(TrainEvent::Notice {
                        message: format!(
                            "step {}: fp16 overflowed (in the gradients or the forward pass), so \
                             the step was skipped (the weights are unchanged) and the loss scale \
                             halved to {}",
                            step + 1,
                            stepper.loss_scale().unwrap_or(1.0)
                        ),
                    });
                }
                progress.step += 1;
                progress.loss_scaler = stepper.loss_scaler().cloned();
                let step_s = step_start.elapsed().as_secs_f64().max(1e-9);
                // The ETA from this session's pace; the elapsed time over all sessions.
                let elapsed = started.elapsed().as_secs_f64();
                // A skipped fp16 step has no finite loss or norm to chart: its notice says it.
                if !done.skipped_overflow {
                    sink(TrainEvent::Step {
                        step: progress.step,
                        total_steps: plan.total_steps,
                        epoch: epoch as f64
                            + ((chunk_index + 1) as f64 / plan.steps_per_epoch as f64).min(1.0),
                        loss: done.loss,
                        lr,
                        grad_norm: done.grad_norm,
                        samples_per_s: done.examples as f64 / step_s,
                        tokens_per_s: done.tokens as f64 / step_s,
                        elapsed_s: progress.elapsed_s(),
                        eta_s: elapsed / (progress.step - first_step).max(1) as f64
                            * plan.total_steps.saturating_sub(progress.step) as f64,
                        task: (tasks.len() > 1).then(|| task.name.to_string()),
                    });
                }
                if cfg
                    .eval_every
                    .is_some_and(|n| progress.step.is_multiple_of(n))
                    && self.validate(&tasks, &saved, &plan, &mut progress, &mut stepper, sink)?
                {
                    status = RunStatus::EarlyStopped;
                    break 'epochs;
                }
                let by_steps = cfg
                    .checkpoint_every
                    .is_some_and(|n| progress.step.is_multiple_of(n));
                let by_time = cfg
                    .checkpoint_minutes
                    .is_some_and(|m| last_saved.elapsed().as_secs_f64() >= m * 60.0);
                if by_steps || by_time {
                    let consumed = ((chunk_index + 1) * per_step) as u64;
                    self.save_last(&saved, &optimizer, &progress, epoch, consumed, sink)?;
                    last_saved = Instant::now();
                }
            }
            if progress.last_eval_step != Some(progress.step)
                && (cfg.eval_every.is_none() || epoch + 1 == cfg.epochs)
                && self.validate(&tasks, &saved, &plan, &mut progress, &mut stepper, sink)?
            {
                status = RunStatus::EarlyStopped;
                break 'epochs;
            }
            self.save_last(&saved, &optimizer, &progress, epoch + 1, 0, sink)?;
            last_saved = Instant::now();
        }
        freeze_all(&models, cfg, None);
        Ok(TrainSummary {
            status,
            steps: progress.step,
            elapsed_s: progress.elapsed_s(),
            best: progress.best,
            best_dir: crate::checkpoint::best_dir(self.work_dir)
                .unwrap_or_else(|| self.work_dir.join("best")),
            best_logits: progress.best_logits,
        })
    }

    /// Every task of the run, the main one first.
    fn tasks(&self) -> Vec<TaskSet<'_>> {
        let main = TaskSet {
            name: self.name,
            model: self.model,
            train: self.train,
            valid: self.valid,
            labels: self.labels,
        };
        std::iter::once(main)
            .chain(self.also.iter().copied())
            .collect()
    }

    /// The optimizer steps of epoch `epoch`: the main task's examples in
    /// [`Trainer::epoch_order`] (or, packing, its `bins` bins: the chunks list bins); with
    /// several tasks, each step on a task drawn by [`crate::multitask::epoch_chunks`].
    fn epoch_chunks(&self, tasks: &[TaskSet], epoch: u32, bins: Option<usize>) -> Vec<TaskChunk> {
        let per_step = self.cfg.batch_size * self.cfg.grad_accum as usize;
        if let Some(n) = bins {
            let order = if self.cfg.shuffle {
                epoch_order(n, self.cfg.seed, epoch as u64)
            } else {
                (0..n).collect()
            };
            return order
                .chunks(per_step.max(1))
                .map(|c| TaskChunk {
                    task: 0,
                    examples: c.to_vec(),
                })
                .collect();
        }
        if tasks.len() == 1 {
            return self
                .epoch_order(epoch)
                .chunks(per_step.max(1))
                .map(|c| TaskChunk {
                    task: 0,
                    examples: c.to_vec(),
                })
                .collect();
        }
        let sizes: Vec<usize> = tasks.iter().map(|t| t.train.len()).collect();
        epoch_chunks(
            &sizes,
            per_step,
            self.cfg.task_temperature,
            self.cfg.seed,
            epoch as u64,
        )
    }

    /// The order of epoch `epoch`: from easy to hard while a curriculum lasts, shuffled after
    /// (or the file's order when shuffling is off).
    pub fn epoch_order(&self, epoch: u32) -> Vec<usize> {
        let cfg = self.cfg;
        let difficulty = (epoch < cfg.curriculum_epochs)
            .then(|| difficulty(self.train, cfg.curriculum))
            .flatten();
        match difficulty {
            Some(d) => curriculum_order(&d, cfg.seed, epoch as u64),
            None if !cfg.shuffle => (0..self.train.len()).collect(),
            None => epoch_order(self.train.len(), cfg.seed, epoch as u64),
        }
    }

    /// Evaluates, keeps the best checkpoint, and says whether to stop early.
    fn validate(
        &self,
        tasks: &[TaskSet],
        params: &ParamStore,
        plan: &TrainPlan,
        progress: &mut Progress,
        stepper: &mut Stepper,
        sink: &mut dyn FnMut(TrainEvent),
    ) -> Result<bool, EngineError> {
        // Evaluation's buffers and kernels are not the step's: the memory the steps kept is
        // handed back first (a failure of the last step's queued work surfaces here).
        crate::device::release_cached(self.model.device())?;
        // A task without validation examples is not scored (the run said so when it started);
        // the others still pick the best checkpoint.
        let scored: Vec<&TaskSet> = tasks.iter().filter(|t| !t.valid.is_empty()).collect();
        if scored.is_empty() {
            return Ok(false);
        }
        let cfg = self.cfg;
        let metric = cfg.early_stopping_metric.for_task(self.model.task());
        let step = progress.step;
        progress.last_eval_step = Some(step);
        // On the training step's own buffers, batch for batch: evaluation adds no memory.
        let (report, logits) = if tasks.len() == 1 {
            let (report, logits) =
                evaluate_with(self.model, self.valid, self.labels, cfg.batch_size, stepper)?;
            match (report, self.generations) {
                (Report::Language(r), Some(g)) => (
                    Report::Generation(g.report(self.model, self.valid, stepper, r.loss)?),
                    logits,
                ),
                (report, _) => (report, logits),
            }
        } else {
            let mut reports = Vec::with_capacity(scored.len());
            for t in scored {
                let (report, _) =
                    evaluate_with(t.model, t.valid, t.labels, cfg.batch_size, stepper)?;
                reports.push((t.name.to_string(), t.model.task(), report));
            }
            (combined(reports), None)
        };
        let value = report.get(metric);
        let is_best = metric.improves(value, progress.best_value, cfg.early_stopping_min_delta);
        sink(TrainEvent::Evaluated {
            step,
            epoch: step as f64 / plan.steps_per_epoch.max(1) as f64,
            metric,
            value,
            is_best,
            report: report.clone(),
        });
        if let Some(prompts) = self.samples {
            sink(TrainEvent::Samples {
                step,
                samples: prompts.generate(self.model)?,
            });
        }
        if is_best {
            progress.best_value = Some(value);
            progress.evals_without_improvement = 0;
            let dir = self.work_dir.join("best");
            save_best(&dir, params, &report, step)?;
            progress.best = Some((step, report));
            progress.best_logits = logits;
            sink(TrainEvent::CheckpointSaved {
                step,
                kind: CheckpointKind::Best,
                path: dir,
            });
            return Ok(false);
        }
        progress.evals_without_improvement += 1;
        match cfg.early_stopping_patience {
            Some(patience) if progress.evals_without_improvement >= patience => {
                sink(TrainEvent::EarlyStopped {
                    step,
                    metric,
                    best: progress.best_value.unwrap_or(value),
                    patience,
                });
                Ok(true)
            }
            _ => Ok(false),
        }
    }

    fn save_last(
        &self,
        params: &ParamStore,
        optimizer: &Optimizer,
        progress: &Progress,
        epoch: u32,
        examples_in_epoch: u64,
        sink: &mut dyn FnMut(TrainEvent),
    ) -> Result<(), EngineError> {
        if !self.cfg.resumable {
            return Ok(());
        }
        let dir = self.work_dir.join("last");
        let state = TrainerState {
            step: progress.step,
            epoch,
            examples_in_epoch,
            best_step: progress.best.as_ref().map(|(s, _)| *s),
            best_value: progress.best_value,
            evals_without_improvement: progress.evals_without_improvement,
            last_eval_step: progress.last_eval_step,
            optimizer_steps: optimizer.steps(),
            elapsed_s: progress.elapsed_s(),
            loss_scaler: progress.loss_scaler.clone(),
        };
        save_last(&dir, params, optimizer, &state)?;
        sink(TrainEvent::CheckpointSaved {
            step: progress.step,
            kind: CheckpointKind::Last,
            path: dir,
        });
        Ok(())
    }
}

/// Sets the frozen flags of every head (and the shared encoder) for `depth`.
fn freeze_all(models: &[&Model], cfg: &TrainingConfig, depth: Option<usize>) {
    for m in models {
        apply_freezing(m, cfg, depth);
    }
}

/// Refuses label smoothing where it has no meaning here, before the first step: with a
/// teacher (distillation replaces the labels' loss) or for a task whose rows of classes are
/// padded (multiple choice, answer spans).
fn check_label_smoothing(
    smoothing: f64,
    tasks: &[Task],
    distilling: bool,
) -> Result<(), EngineError> {
    if smoothing == 0.0 {
        return Ok(());
    }
    if distilling {
        return Err(EngineError::InvalidConfig(
            "label smoothing and distillation both soften the targets: set one of them \
             (label smoothing to 0, or no teacher)"
                .into(),
        ));
    }
    if let Some(task) = tasks
        .iter()
        .find(|t| matches!(t, Task::MultipleChoice | Task::QuestionAnswering))
    {
        return Err(EngineError::InvalidConfig(format!(
            "label smoothing covers classification, token classification, text-to-text and \
             causal LM, not {}: set it to 0",
            task.display_name()
        )));
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unfreezing_by_epochs_starts_after_the_head_warm_up_and_ends_with_everything() {
        let cfg = TrainingConfig {
            batch_size: 8,
            head_warmup_steps: 3,
            unfreeze_every_epochs: Some(1),
            ..Default::default()
        };
        // 40 examples in batches of 8: 5 steps an epoch.
        let plan = TrainPlan::new(&cfg, 40, 6);
        assert_eq!(plan.unfreeze_every, Some(5));
        let depth: Vec<Option<usize>> = [0, 2, 3, 7, 8, 12, 13, 32, 33, 37, 38, 100]
            .iter()
            .map(|&s| plan.trainable_depth(s))
            .collect();
        let want = [0, 0, 0, 0, 1, 1, 2, 5, 6, 6]
            .into_iter()
            .map(Some)
            .chain([None, None])
            .collect::<Vec<_>>();
        assert_eq!(depth, want);
        let plain = TrainPlan::new(&TrainingConfig::default(), 40, 6);
        assert_eq!(plain.trainable_depth(0), None);
    }

    #[test]
    fn label_smoothing_is_refused_with_a_teacher_and_for_padded_classes() {
        let ok = [Task::Text2Text, Task::SequenceClassification];
        assert!(check_label_smoothing(0.1, &ok, false).is_ok());
        assert!(check_label_smoothing(0.0, &[Task::MultipleChoice], true).is_ok());
        let teacher = check_label_smoothing(0.1, &ok, true)
            .unwrap_err()
            .to_string();
        assert!(teacher.contains("distillation"), "{teacher}");
        for task in [Task::MultipleChoice, Task::QuestionAnswering] {
            let err = check_label_smoothing(0.1, &[task], false)
                .unwrap_err()
                .to_string();
            assert!(err.contains(task.display_name()), "{err}");
        }
    }
}
