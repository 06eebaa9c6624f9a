//! The active-learning loop measured with an oracle (`hone bench active-learning`): a pool of
//! labeled examples whose labels are hidden, revealed a round at a time in the order a
//! strategy picks; after each round a fresh fine-tune from the base model, scored on examples
//! no round ever sees. Uncertainty sampling against the random control, several seeds.

use std::path::{Path, PathBuf};
use std::sync::atomic::AtomicBool;
use std::time::Instant;

use hone_data::{read_examples, ColumnSpec, Example, LabelSet};
use hone_engine::job::{fine_tune_data, RunPaths, TrainingData};
use hone_engine::metrics::Metric;
use hone_engine::models::Task;
use hone_engine::{DeviceSpec, TrainingConfig};
use serde::{Deserialize, Serialize};

use super::scoring::{random_score, uncertainty, Strategy};
use crate::evaluation::evaluate_examples;
use crate::predict::FineTunedModel;
use crate::AppError;

/// What to simulate.
#[derive(Debug, Clone)]
pub struct SimulationRequest {
    /// The pretrained model every round starts from.
    pub model: PathBuf,
    /// A labeled CSV/TSV/JSONL file: the pool is its first `pool` rows, then `valid` rows
    /// pick each round's best epoch (none: the last epoch's model is scored), and its last
    /// `test` rows score the rounds.
    pub data: PathBuf,
    pub columns: ColumnSpec,
    pub pool: usize,
    pub valid: usize,
    pub test: usize,
    /// Labels revealed per round (the first round is random for every strategy).
    pub round: usize,
    /// Label counts whose scores are reported (the largest ends the loop).
    pub report_at: Vec<usize>,
    pub strategies: Vec<Strategy>,
    pub seeds: Vec<u64>,
    /// Every round's fine-tuning recipe (its seed is replaced by the simulation's).
    pub training: TrainingConfig,
    /// Small rounds train more epochs, up to at least this many optimizer steps (a few
    /// dozen labels learn nothing in three epochs).
    pub min_steps: u64,
    /// Scratch folder for the rounds' checkpoints and models.
    pub work_dir: PathBuf,
}

/// One round's result.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RoundResult {
    pub strategy: Strategy,
    pub seed: u64,
    pub labels: usize,
    /// Accuracy on the test rows.
    pub accuracy: f64,
    pub macro_f1: f64,
    /// Fine-tuning plus scoring the pool, in seconds.
    pub seconds: f64,
}

/// Mean and spread of one strategy at one label count over the seeds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SummaryRow {
    pub strategy: Strategy,
    pub labels: usize,
    pub mean_accuracy: f64,
    pub std_accuracy: f64,
    pub runs: usize,
}

/// Mean accuracy per strategy and reported label count.
pub fn summarize(results: &[RoundResult], report_at: &[usize]) -> Vec<SummaryRow> {
    let mut strategies: Vec<Strategy> = Vec::new();
    for r in results {
        if !strategies.contains(&r.strategy) {
            strategies.push(r.strategy);
        }
    }
    let mut rows = Vec::new();
    for s in strategies {
        for &n in report_at {
            let values: Vec<f64> = results
                .iter()
                .filter(|r| r.strategy == s && r.labels == n)
                .map(|r| r.accuracy)
                .collect();
            if values.is_empty() {
                continue;
            }
            let mean = values.iter().sum::<f64>() / values.len() as f64;
            let var = values.iter().map(|v| (v - mean).powi(2)).sum::<f64>()
                / (values.len().max(2) - 1) as f64;
            rows.push(SummaryRow {
                strategy: s,
                labels: n,
                mean_accuracy: mean,
                std_accuracy: var.sqrt(),
                runs: values.len(),
            });
        }
    }
    rows
}

/// Runs every (strategy, seed) loop, telling `on_round` each result as it comes.
pub fn simulate(
    request: &SimulationRequest,
    on_round: &mut dyn FnMut(&RoundResult),
) -> Result<Vec<RoundResult>, AppError> {
    let mut rows = read_examples(&request.data, None, &request.columns)?.examples;
    let needed = request.pool + request.valid + request.test;
    if rows.len() < needed {
        return Err(AppError::Invalid(format!(
            "{} has {} rows; the simulation needs {needed} (pool + validation + test)",
            request.data.display(),
            rows.len()
        )));
    }
    let test = rows.split_off(rows.len() - request.test);
    rows.truncate(request.pool + request.valid);
    let valid = rows.split_off(request.pool);
    let pool = rows;
    let labels = LabelSet::from_examples(&pool)?;
    let last = request.report_at.iter().copied().max().unwrap_or(0);
    if last > pool.len() || request.round == 0 {
        return Err(AppError::Invalid(format!(
            "cannot reveal {last} labels from a pool of {} in rounds of {}",
            pool.len(),
            request.round
        )));
    }
    let mut results = Vec::new();
    for &seed in &request.seeds {
        for &strategy in &request.strategies {
            let mut run = Loop {
                request,
                pool: &pool,
                valid: &valid,
                test: &test,
                labels: &labels,
                seed,
                strategy,
            };
            results.extend(run.run(last, on_round)?);
        }
    }
    Ok(results)
}

struct Loop<'a> {
    request: &'a SimulationRequest,
    pool: &'a [Example],
    valid: &'a [Example],
    test: &'a [Example],
    labels: &'a LabelSet,
    seed: u64,
    strategy: Strategy,
}

impl Loop<'_> {
    fn run(
        &mut self,
        last: usize,
        on_round: &mut dyn FnMut(&RoundResult),
    ) -> Result<Vec<RoundResult>, AppError> {
        // Pool positions in the seed's random order: the first round for every strategy, and
        // the whole order for the random control.
        let mut order: Vec<usize> = (0..self.pool.len()).collect();
        order.sort_by(|&a, &b| {
            random_score(self.seed, a as u64).total_cmp(&random_score(self.seed, b as u64))
        });
        let mut revealed: Vec<usize> = order[..self.request.round].to_vec();
        let mut results = Vec::new();
        loop {
            let n = revealed.len();
            // The random control's label sets do not depend on its models: train only where
            // a score is reported.
            let train_now =
                self.strategy != Strategy::Random || self.request.report_at.contains(&n);
            if train_now {
                let started = Instant::now();
                let model = self.fine_tune(&revealed)?;
                let report = evaluate_examples(
                    &model,
                    self.test,
                    Path::new("the test rows"),
                    self.request.training.batch_size.max(32),
                )?
                .report;
                let next = if n < last && self.strategy != Strategy::Random {
                    self.most_uncertain(&model, &revealed)?
                } else {
                    Vec::new()
                };
                let result = RoundResult {
                    strategy: self.strategy,
                    seed: self.seed,
                    labels: n,
                    accuracy: report.get(Metric::Accuracy),
                    macro_f1: report.get(Metric::MacroF1),
                    seconds: started.elapsed().as_secs_f64(),
                };
                on_round(&result);
                if self.request.report_at.contains(&n) {
                    results.push(result);
                }
                revealed.extend(next);
            }
            if n >= last {
                break;
            }
            if self.strategy == Strategy::Random {
                let to = (n + self.request.round).min(order.len());
                revealed = order[..to].to_vec();
            }
        }
        Ok(results)
    }

    /// A fresh fine-tune from the base model on the revealed examples.
    fn fine_tune(&self, revealed: &[usize]) -> Result<FineTunedModel, AppError> {
        let dir = self.request.work_dir.join(format!(
            "{}-{}-{}",
            self.strategy.as_str(),
            self.seed,
            revealed.len()
        ));
        let _ = std::fs::remove_dir_all(&dir);
        let (out, work) = (dir.join("model"), dir.join("checkpoints"));
        let data = TrainingData {
            task: Task::SequenceClassification,
            labels: self.labels.clone(),
            train: revealed.iter().map(|&i| self.pool[i].clone()).collect(),
            valid: self.valid.to_vec(),
            notices: Vec::new(),
        };
        let per_epoch = revealed
            .len()
            .div_ceil(self.request.training.batch_size.max(1)) as u64;
        let epochs = self
            .request
            .training
            .epochs
            .max(self.request.min_steps.div_ceil(per_epoch.max(1)) as u32);
        let cfg = TrainingConfig {
            seed: self.seed,
            epochs,
            checkpoint_minutes: None,
            resumable: false,
            ..self.request.training.clone()
        };
        let base = self.request.model.display().to_string();
        let paths = RunPaths {
            model: &self.request.model,
            base_model: &base,
            out: &out,
            work_dir: &work,
            teacher: None,
            previous: None,
            multitask: None,
        };
        fine_tune_data(
            &paths,
            data,
            &cfg,
            "",
            false,
            &mut |_| {},
            &AtomicBool::new(false),
        )?;
        let model = FineTunedModel::load(&out, DeviceSpec::Cpu, Some(cfg.max_length))?;
        let _ = std::fs::remove_dir_all(&work);
        Ok(model)
    }

    /// The next round: the unrevealed pool examples the model is least sure about.
    fn most_uncertain(
        &self,
        model: &FineTunedModel,
        revealed: &[usize],
    ) -> Result<Vec<usize>, AppError> {
        let FineTunedModel::Classes(predictor) = model else {
            return Err(AppError::Invalid(
                "the simulation runs text classification".into(),
            ));
        };
        let taken: std::collections::HashSet<usize> = revealed.iter().copied().collect();
        let rest: Vec<usize> = (0..self.pool.len())
            .filter(|i| !taken.contains(i))
            .collect();
        let inputs: Vec<(String, Option<String>)> = rest
            .iter()
            .map(|&i| (self.pool[i].text.clone(), self.pool[i].text_pair.clone()))
            .collect();
        let predictions = predictor.predict(&inputs, 64)?;
        let mut scored: Vec<(f64, usize)> = predictions
            .iter()
            .zip(&rest)
            .map(|(p, &i)| (uncertainty(&p.probabilities, self.strategy), i))
            .collect();
        scored.sort_by(|a, b| b.0.total_cmp(&a.0).then(a.1.cmp(&b.1)));
        Ok(scored
            .into_iter()
            .take(self.request.round)
            .map(|(_, i)| i)
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_summary_averages_each_strategy_at_each_reported_count() {
        let r = |strategy, seed, labels, accuracy| RoundResult {
            strategy,
            seed,
            labels,
            accuracy,
            macro_f1: accuracy,
            seconds: 1.0,
        };
        let results = vec![
            r(Strategy::Margin, 1, 200, 0.80),
            r(Strategy::Margin, 2, 200, 0.84),
            r(Strategy::Random, 1, 200, 0.70),
            r(Strategy::Random, 2, 200, 0.72),
            r(Strategy::Margin, 1, 300, 0.9),
        ];
        let rows = summarize(&results, &[200]);
        assert_eq!(rows.len(), 2);
        assert_eq!(rows[0].strategy, Strategy::Margin);
        assert!((rows[0].mean_accuracy - 0.82).abs() < 1e-12);
        // The sample standard deviation of 0.80 and 0.84.
        assert!((rows[0].std_accuracy - 0.02 * 2f64.sqrt()).abs() < 1e-9);
        assert_eq!(rows[1].runs, 2);
        assert!((rows[1].mean_accuracy - 0.71).abs() < 1e-12);
    }
}
