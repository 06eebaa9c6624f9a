//! Multi-task learning: one encoder, several heads, each optimizer step on a batch of one task.
//! Which task a step trains is drawn with probability proportional to the task's size raised
//! to `1/T` (T = 1: proportional to the examples; larger T evens the tasks out, T → ∞ is
//! uniform — the mixing of the T5 and MT-DNN papers). Each task walks through its own
//! shuffled examples, starting a fresh shuffle when it runs out, so a small task is seen
//! more than once an epoch when the temperature favours it. Everything is seeded by (seed,
//! epoch): a resumed run replays the same steps.

use hone_data::epoch_order;

use crate::batch::EncodedSet;
use crate::metrics::{Metric, Report, TaskReport};
use crate::models::Model;
use crate::params::ParamStore;
use crate::rng::HoneRng;

/// Stream of the generator that draws each step's task.
const TASK_STREAM: u64 = 0x7A5C;

/// One task of a multi-task run: its head (a [`Model`] sharing the encoder with the
/// others), its examples and its class names.
#[derive(Clone, Copy)]
pub struct TaskSet<'a> {
    /// The task's name (its results and its exported folder are named after it).
    pub name: &'a str,
    pub model: &'a Model,
    pub train: &'a EncodedSet,
    pub valid: &'a EncodedSet,
    pub labels: &'a [String],
}

/// The parameters of several heads on one encoder, each once (the encoder's are shared).
pub fn union_params(models: &[&Model]) -> ParamStore {
    let mut all = ParamStore::default();
    for m in models {
        for p in m.params().all() {
            if all.index_of(p.name()).is_none() {
                all.push(p.clone());
            }
        }
    }
    all
}

/// One optimizer step's share of an epoch: the task and its examples.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaskChunk {
    pub task: usize,
    pub examples: Vec<usize>,
}

/// The probability of drawing each task for a step: `size^(1/T)`, normalised.
pub fn task_weights(sizes: &[usize], temperature: f64) -> Vec<f64> {
    let raw: Vec<f64> = sizes
        .iter()
        .map(|&n| (n as f64).powf(1.0 / temperature.max(1e-6)))
        .collect();
    let total: f64 = raw.iter().sum();
    if total <= 0.0 {
        return vec![0.0; sizes.len()];
    }
    raw.into_iter().map(|w| w / total).collect()
}

/// The steps of epoch `epoch`: as many as the tasks' examples fill (`per_step` each), each on
/// a task drawn by [`task_weights`] and its next `per_step` examples.
pub fn epoch_chunks(
    sizes: &[usize],
    per_step: usize,
    temperature: f64,
    seed: u64,
    epoch: u64,
) -> Vec<TaskChunk> {
    let per_step = per_step.max(1);
    let total: usize = sizes.iter().sum();
    let steps = total.div_ceil(per_step);
    let weights = task_weights(sizes, temperature);
    let mut rng = HoneRng::new(seed, TASK_STREAM ^ (epoch << 20));
    // Per task: its current shuffle, how far into it, and how many shuffles it used.
    let mut cursors: Vec<(Vec<usize>, usize, u64)> = vec![(Vec::new(), 0, 0); sizes.len()];
    let mut chunks = Vec::with_capacity(steps);
    for _ in 0..steps {
        let draw = (rng.next_u64() >> 11) as f64 / (1u64 << 53) as f64;
        let mut task = weights.len().saturating_sub(1);
        let mut acc = 0.0;
        for (i, w) in weights.iter().enumerate() {
            acc += w;
            if draw < acc {
                task = i;
                break;
            }
        }
        let n = sizes[task];
        let mut examples = Vec::with_capacity(per_step.min(n));
        let (order, at, shuffles) = &mut cursors[task];
        while examples.len() < per_step.min(n) {
            if *at >= order.len() {
                // Each task's shuffles are distinct per epoch, per task and per pass.
                let stream = epoch * 1_000_003 + (task as u64) * 10_007 + *shuffles;
                *order = epoch_order(n, seed ^ 0x6D75_6C74, stream);
                *at = 0;
                *shuffles += 1;
            }
            examples.push(order[*at]);
            *at += 1;
        }
        chunks.push(TaskChunk { task, examples });
    }
    chunks
}

/// The evaluation of a multi-task run: each task's report, and the selection value of
/// `metric` averaged over them.
pub fn combined(reports: Vec<(String, crate::models::Task, Report)>) -> Report {
    Report::Tasks(crate::metrics::TaskReports {
        tasks: reports
            .into_iter()
            .map(|(name, task, report)| TaskReport { name, task, report })
            .collect(),
    })
}

/// The mean of `metric` over the tasks of a report (the report's own value otherwise).
pub fn mean_metric(tasks: &[TaskReport], metric: Metric) -> f64 {
    if tasks.is_empty() {
        return f64::NAN;
    }
    tasks.iter().map(|t| t.report.get(metric)).sum::<f64>() / tasks.len() as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn weights_follow_size_and_temperature() {
        let p = task_weights(&[900, 100], 1.0);
        assert!((p[0] - 0.9).abs() < 1e-12 && (p[1] - 0.1).abs() < 1e-12);
        let t2 = task_weights(&[900, 100], 2.0);
        assert!((t2[0] - 0.75).abs() < 1e-12, "{t2:?}");
        let flat = task_weights(&[900, 100], 1e9);
        assert!((flat[0] - 0.5).abs() < 1e-6);
    }

    #[test]
    fn an_epoch_draws_tasks_in_proportion_and_walks_each_task_through_its_examples() {
        let sizes = [300, 100];
        let chunks = epoch_chunks(&sizes, 4, 1.0, 7, 0);
        assert_eq!(chunks.len(), 100);
        let small = chunks.iter().filter(|c| c.task == 1).count();
        assert!(
            (10..=40).contains(&small),
            "{small} steps of the small task"
        );
        // Within one pass, a task never repeats an example.
        let mut seen = std::collections::HashSet::new();
        for c in chunks.iter().filter(|c| c.task == 0).take(300 / 4) {
            for &i in &c.examples {
                assert!(i < 300 && seen.insert(i), "example {i} twice in one pass");
            }
        }
        assert_eq!(chunks, epoch_chunks(&sizes, 4, 1.0, 7, 0), "seeded");
        assert_ne!(
            chunks,
            epoch_chunks(&sizes, 4, 1.0, 7, 1),
            "a new epoch reshuffles"
        );
        // A high temperature trains the small task about as often as the large one.
        let even = epoch_chunks(&sizes, 4, 100.0, 7, 0);
        let small = even.iter().filter(|c| c.task == 1).count();
        assert!((35..=65).contains(&small), "{small}");
    }
}
