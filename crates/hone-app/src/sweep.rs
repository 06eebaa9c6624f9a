//! Hyperparameter sweeps run on this machine: a base run configuration, axes of training
//! settings (`lr=1e-5,3e-5`), every combination of them (a grid) or a seeded random `budget` of
//! them; each trial is an ordinary run, tagged `sweep:NAME`, so the runs list, compare, resume
//! and export treat it like any other. A sweep is read back from its runs' tags and configs:
//! the settings that differ between its trials, and each trial's score on the metric that
//! picks its best checkpoint.

use serde::Serialize;
use serde_json::Value;

use crate::error::AppError;
use crate::run_config::RunConfig;
use crate::types::{RunRecord, RunStatus};

/// What a sweep's runs are tagged with, before its name.
pub const SWEEP_TAG: &str = "sweep:";

/// One axis: a training setting and the values it takes.
#[derive(Debug, Clone, PartialEq)]
pub struct SweepAxis {
    pub key: String,
    pub values: Vec<Value>,
}

impl std::str::FromStr for SweepAxis {
    type Err = AppError;

    /// `key=v1,v2,…`: numbers and `true`/`false` as such, anything else as text.
    fn from_str(text: &str) -> Result<Self, AppError> {
        let bad = |why: &str| {
            AppError::Invalid(format!(
                "sweep axis '{text}': {why} (write it as setting=value,value, e.g. lr=1e-5,3e-5)"
            ))
        };
        let (key, values) = text.split_once('=').ok_or_else(|| bad("no '='"))?;
        let key = key.trim();
        if key.is_empty() {
            return Err(bad("no setting named"));
        }
        let values: Vec<Value> = values
            .split(',')
            .map(str::trim)
            .filter(|v| !v.is_empty())
            .map(|v| serde_json::from_str::<Value>(v).unwrap_or_else(|_| Value::from(v)))
            .collect();
        if values.is_empty() {
            return Err(bad("no values"));
        }
        Ok(SweepAxis {
            key: key.to_string(),
            values,
        })
    }
}

/// One trial's settings: a value for every axis, in the axes' order.
pub type Trial = Vec<(String, Value)>;

/// The trials of `axes`: every combination (the first axis varying slowest), or with a
/// `budget`, that many of them drawn at random with `seed` (all of them when the grid is
/// smaller).
pub fn trials(axes: &[SweepAxis], budget: Option<usize>, seed: u64) -> Vec<Trial> {
    let mut all: Vec<Trial> = vec![Vec::new()];
    for axis in axes {
        all = all
            .into_iter()
            .flat_map(|t| {
                axis.values.iter().map(move |v| {
                    let mut next = t.clone();
                    next.push((axis.key.clone(), v.clone()));
                    next
                })
            })
            .collect();
    }
    match budget {
        Some(n) => hone_data::epoch_order(all.len(), seed, 0)
            .into_iter()
            .take(n)
            .map(|i| all[i].clone())
            .collect(),
        None => all,
    }
}

/// `base` with a trial's settings in its training options; an unknown setting or a value of
/// the wrong kind is refused, naming it.
pub fn apply(base: &RunConfig, trial: &Trial) -> Result<RunConfig, AppError> {
    let mut training = serde_json::to_value(&base.training)
        .map_err(|e| AppError::Invalid(format!("the base configuration: {e}")))?;
    let Some(fields) = training.as_object_mut() else {
        return Err(AppError::Invalid(
            "the base configuration has no training options".into(),
        ));
    };
    for (key, value) in trial {
        if !fields.contains_key(key) {
            return Err(AppError::Invalid(format!(
                "sweep axis '{key}' is not a training setting (they are the keys of a run \
                 configuration's [training] table, e.g. lr, batch_size, epochs, seed, lora_r)"
            )));
        }
        fields.insert(key.clone(), value.clone());
    }
    let mut config = base.clone();
    config.training = serde_json::from_value(training)
        .map_err(|e| AppError::Invalid(format!("sweep trial {}: {e}", describe(trial))))?;
    config.training.validate()?;
    Ok(config)
}

/// `lr=3e-5, seed=2`.
pub fn describe(trial: &Trial) -> String {
    trial
        .iter()
        .map(|(k, v)| match v {
            Value::String(s) => format!("{k}={s}"),
            other => format!("{k}={other}"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// The tag of sweep `name`'s runs.
pub fn tag(name: &str) -> String {
    format!("{SWEEP_TAG}{name}")
}

/// The median stopping rule (Golovin et al. 2017, Google Vizier's): a trial whose best value
/// up to `step` is worse than the median of the earlier trials' best values up to the same
/// step is stopped there. `earlier` holds each earlier trial's validation curve (`(step,
/// value)`); with fewer than two earlier trials that reached `step`, nothing is stopped.
pub fn median_rule_stops(
    best_so_far: f64,
    step: u64,
    earlier: &[Vec<(u64, f64)>],
    higher_is_better: bool,
) -> bool {
    let best = |a: f64, b: f64| if higher_is_better { a.max(b) } else { a.min(b) };
    let mut bests: Vec<f64> = earlier
        .iter()
        .filter_map(|curve| {
            curve
                .iter()
                .filter(|(s, v)| *s <= step && v.is_finite())
                .map(|(_, v)| *v)
                .reduce(best)
        })
        .collect();
    if bests.len() < 2 || !best_so_far.is_finite() {
        return false;
    }
    bests.sort_by(|a, b| a.total_cmp(b));
    let n = bests.len();
    let median = if n % 2 == 1 {
        bests[n / 2]
    } else {
        (bests[n / 2 - 1] + bests[n / 2]) / 2.0
    };
    if higher_is_better {
        best_so_far < median
    } else {
        best_so_far > median
    }
}

/// One run of a sweep, as `hone sweep show` and the app show it.
#[derive(Debug, Clone, Serialize)]
pub struct SweepTrial {
    pub run_id: i64,
    pub status: RunStatus,
    /// The settings that differ between the sweep's trials, with this trial's values.
    pub settings: Vec<(String, Value)>,
    /// The metric that picked the best checkpoint (e.g. `accuracy`, `loss`).
    pub metric: String,
    /// The best checkpoint's value of it (`None` before the run has one).
    pub value: Option<f64>,
}

/// The runs of sweep `name` among `runs`, best first (higher or lower as the metric wants);
/// runs without a score last, in run order.
pub fn sweep_trials(runs: &[RunRecord], name: &str) -> Vec<SweepTrial> {
    let tag = tag(name);
    let members: Vec<&RunRecord> = runs.iter().filter(|r| r.tags.contains(&tag)).collect();
    let trainings: Vec<serde_json::Map<String, Value>> = members
        .iter()
        .map(|r| {
            r.config
                .get("training")
                .and_then(Value::as_object)
                .cloned()
                .unwrap_or_default()
        })
        .collect();
    // The settings that vary across the trials.
    let mut keys: Vec<String> = trainings.iter().flat_map(|t| t.keys().cloned()).collect();
    keys.sort();
    keys.dedup();
    keys.retain(|k| {
        let first = trainings.first().and_then(|t| t.get(k));
        trainings.iter().any(|t| t.get(k) != first)
    });
    let mut trials: Vec<(SweepTrial, bool)> = members
        .iter()
        .zip(&trainings)
        .map(|(run, training)| {
            let (metric, value, higher) = score(run);
            (
                SweepTrial {
                    run_id: run.id,
                    status: run.status,
                    settings: keys
                        .iter()
                        .map(|k| (k.clone(), training.get(k).cloned().unwrap_or(Value::Null)))
                        .collect(),
                    metric,
                    value,
                },
                higher,
            )
        })
        .collect();
    trials.sort_by(|(a, higher), (b, _)| match (a.value, b.value) {
        (Some(x), Some(y)) => {
            let order = x.partial_cmp(&y).unwrap_or(std::cmp::Ordering::Equal);
            if *higher { order.reverse() } else { order }.then(a.run_id.cmp(&b.run_id))
        }
        (Some(_), None) => std::cmp::Ordering::Less,
        (None, Some(_)) => std::cmp::Ordering::Greater,
        (None, None) => a.run_id.cmp(&b.run_id),
    });
    trials.into_iter().map(|(t, _)| t).collect()
}

/// A run's metric (the one its config picks checkpoints by), its best value, and whether
/// higher is better.
fn score(run: &RunRecord) -> (String, Option<f64>, bool) {
    let config: Option<RunConfig> = serde_json::from_value(run.config.clone()).ok();
    let task = config.as_ref().map(|c| c.task).unwrap_or_default();
    let metric = config
        .as_ref()
        .map(|c| c.training.early_stopping_metric)
        .unwrap_or_default()
        .for_task(task);
    let value = run
        .final_metrics
        .as_ref()
        .and_then(|m| m.get("best"))
        .and_then(|b| serde_json::from_value::<hone_engine::Report>(b.clone()).ok())
        .map(|report| report.get(metric))
        .filter(|v| v.is_finite());
    (metric.to_string(), value, metric.higher_is_better())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn axes_parse_and_make_a_grid_or_a_seeded_budget() {
        let lr: SweepAxis = "lr=1e-5, 3e-5".parse().unwrap();
        assert_eq!(lr.values, [Value::from(1e-5), Value::from(3e-5)]);
        let seed: SweepAxis = "seed=1,2,3".parse().unwrap();
        let schedule: SweepAxis = "schedule=linear,cosine".parse().unwrap();
        assert_eq!(schedule.values[1], Value::from("cosine"));
        assert!("lr".parse::<SweepAxis>().is_err());
        assert!("lr=".parse::<SweepAxis>().is_err());
        let grid = trials(&[lr.clone(), seed.clone()], None, 0);
        assert_eq!(grid.len(), 6);
        assert_eq!(
            describe(&grid[1]),
            format!("lr={}, seed=2", Value::from(1e-5))
        );
        let some = trials(&[lr.clone(), seed.clone(), schedule], Some(4), 7);
        assert_eq!(some.len(), 4);
        assert_eq!(
            some,
            trials(
                &[lr, seed, "schedule=linear,cosine".parse().unwrap()],
                Some(4),
                7
            )
        );
        let mut distinct = some.clone();
        distinct.dedup();
        assert_eq!(distinct.len(), 4, "no combination twice");
    }

    #[test]
    fn the_median_rule_stops_a_trial_below_the_median_of_the_earlier_ones_at_its_step() {
        let earlier = vec![
            vec![(10, 0.6), (20, 0.8)],
            vec![(10, 0.7), (20, 0.75)],
            vec![(10, 0.5), (20, 0.9)],
        ];
        // At step 10 the earlier bests are 0.6, 0.7, 0.5: median 0.6.
        assert!(median_rule_stops(0.55, 10, &earlier, true));
        assert!(!median_rule_stops(0.65, 10, &earlier, true));
        // At step 20: 0.8, 0.75, 0.9 → 0.8.
        assert!(median_rule_stops(0.7, 20, &earlier, true));
        // A loss (lower is better): the median of 0.6, 0.7, 0.5 is 0.6.
        assert!(median_rule_stops(0.65, 10, &earlier, false));
        assert!(!median_rule_stops(0.55, 10, &earlier, false));
        // Before any earlier trial reached the step, or with one earlier trial: no rule.
        assert!(!median_rule_stops(0.0, 5, &earlier, true));
        assert!(!median_rule_stops(0.0, 10, &earlier[..1], true));
    }
}
