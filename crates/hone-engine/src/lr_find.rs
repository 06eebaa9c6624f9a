//! The learning-rate range test (Smith 2017; fastai's `lr_find`): a short run whose learning
//! rate rises exponentially from very small to very large, one optimizer step each, with the
//! run's own optimizer, recipe and batches. The loss falls while the rate is useful and blows
//! up once it is too high; the suggestion is a tenth of the rate where the smoothed loss was
//! lowest (fastai's "minimum / 10" rule), with the rate of steepest descent alongside.

use std::sync::atomic::{AtomicBool, Ordering};

use hone_data::{epoch_order, Batcher};
use serde::{Deserialize, Serialize};

use crate::batch::EncodedSet;
use crate::config::TrainingConfig;
use crate::models::Model;
use crate::recipes::{apply_freezing, optimizer};
use crate::rng::HoneRng;
use crate::step::Stepper;
use crate::EngineError;

/// Stream of the generator that draws the range test's dropout masks.
const DROPOUT_STREAM: u64 = 0x1F1D;

/// How the range test sweeps.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(default)]
pub struct LrFindSettings {
    /// The first learning rate.
    pub start_lr: f64,
    /// The last learning rate (reached at the last step).
    pub end_lr: f64,
    /// Optimizer steps (one learning rate each).
    pub steps: u64,
    /// Stop once the smoothed loss exceeds this many times its lowest value.
    pub divergence: f64,
    /// Weight of the past in the loss's exponential moving average.
    pub smoothing: f64,
}

impl Default for LrFindSettings {
    fn default() -> Self {
        LrFindSettings {
            start_lr: 1e-7,
            end_lr: 1.0,
            steps: 100,
            divergence: 4.0,
            smoothing: 0.9,
        }
    }
}

impl LrFindSettings {
    /// Checks ranges; the message names the setting.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: &str| Err(EngineError::InvalidConfig(m.into()));
        if !(self.start_lr > 0.0 && self.start_lr.is_finite()) {
            return bad("the range test's start rate must be a positive number");
        }
        if !(self.end_lr > self.start_lr && self.end_lr.is_finite()) {
            return bad("the range test's end rate must be above its start rate");
        }
        if self.steps < 5 {
            return bad("the range test needs at least 5 steps");
        }
        if self.divergence.is_nan() || self.divergence <= 1.0 {
            return bad("the range test's divergence factor must be above 1");
        }
        if !(0.0..1.0).contains(&self.smoothing) {
            return bad("the range test's smoothing must be in [0, 1)");
        }
        Ok(())
    }

    /// The learning rate of step `i` (0-based): exponential from start to end.
    pub fn lr_at(&self, i: u64) -> f64 {
        let t = i as f64 / (self.steps - 1).max(1) as f64;
        self.start_lr * (self.end_lr / self.start_lr).powf(t)
    }
}

/// One step of the range test.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrFindPoint {
    pub step: u64,
    pub lr: f64,
    pub loss: f64,
    /// The bias-corrected exponential moving average of the loss.
    pub smoothed: f64,
}

/// The outcome of a range test.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LrFindResult {
    pub points: Vec<LrFindPoint>,
    /// A tenth of the rate at the lowest smoothed loss.
    pub suggested_lr: Option<f64>,
    /// The rate at the lowest smoothed loss.
    pub min_loss_lr: Option<f64>,
    /// The rate where the smoothed loss fell fastest (per unit of log rate).
    pub steepest_lr: Option<f64>,
    /// True when the loss diverged (or became NaN) before the last step.
    pub diverged: bool,
    /// True when the test was cancelled.
    pub cancelled: bool,
}

/// Runs the range test on `model` with the optimizer and freezing `cfg` describes (its
/// schedule is replaced by the sweep). The model's weights are changed: reload it to train.
pub fn lr_find(
    model: &Model,
    cfg: &TrainingConfig,
    train: &EncodedSet,
    settings: &LrFindSettings,
    on_point: &mut dyn FnMut(&LrFindPoint),
    cancel: &AtomicBool,
) -> Result<LrFindResult, EngineError> {
    settings.validate()?;
    if train.is_empty() {
        return Err(EngineError::InvalidConfig(
            "the range test needs training examples".into(),
        ));
    }
    apply_freezing(model, cfg, None);
    let mut optimizer = optimizer(model, cfg);
    // In the run's precision (resolved for the device by the caller): a rate found in f32
    // need not suit a bf16 or fp16 run.
    let mut stepper = Stepper::new(model, true)
        .with_precision(cfg.precision)
        .with_initial_loss_scale(cfg.loss_scale);
    let batcher = Batcher::new(model.spec().encoder.pad_token_id);
    let per_step = cfg.batch_size * cfg.grad_accum as usize;
    let mut chunks = (0u64..).flat_map(|epoch| {
        let order = epoch_order(train.len(), cfg.seed, epoch);
        order
            .chunks(per_step)
            .map(<[usize]>::to_vec)
            .collect::<Vec<_>>()
    });
    let mut points = Vec::new();
    let (mut average, mut best) = (0.0f64, f64::INFINITY);
    let (mut diverged, mut cancelled) = (false, false);
    for i in 0..settings.steps {
        if cancel.load(Ordering::SeqCst) {
            cancelled = true;
            break;
        }
        let Some(chunk) = chunks.next() else { break };
        let batches = train.batches(&batcher, &chunk, cfg.batch_size);
        let lr = settings.lr_at(i);
        let rng = HoneRng::new(cfg.seed, DROPOUT_STREAM ^ (i << 16));
        let done = match stepper.step(
            model,
            &mut optimizer,
            &batches,
            cfg.clip_norm,
            lr,
            rng,
            i + 1,
        ) {
            Ok(done) => done,
            // A rate so high the loss overflows ends the sweep; it is the point of the test.
            Err(EngineError::NonFiniteLoss { .. } | EngineError::NonFiniteGradient { .. }) => {
                diverged = true;
                break;
            }
            Err(e) => return Err(e),
        };
        if done.skipped_overflow {
            // fp16 overflowed at this loss scale, not at this rate: the scale was halved and
            // the sweep goes on (a scale that cannot come down further is an error above).
            continue;
        }
        if !done.loss.is_finite() {
            diverged = true;
            break;
        }
        average = settings.smoothing * average + (1.0 - settings.smoothing) * done.loss;
        let smoothed = average / (1.0 - settings.smoothing.powi(i as i32 + 1));
        let point = LrFindPoint {
            step: i,
            lr,
            loss: done.loss,
            smoothed,
        };
        on_point(&point);
        points.push(point);
        best = best.min(smoothed);
        if smoothed > settings.divergence * best {
            diverged = true;
            break;
        }
    }
    let (min_loss_lr, steepest_lr) = suggestions(&points);
    Ok(LrFindResult {
        suggested_lr: min_loss_lr.map(|lr| lr / 10.0),
        min_loss_lr,
        steepest_lr,
        points,
        diverged,
        cancelled,
    })
}

/// The rate at the lowest smoothed loss and the rate of steepest descent before it (the
/// first few points, where the average has not settled, are skipped for the slope).
fn suggestions(points: &[LrFindPoint]) -> (Option<f64>, Option<f64>) {
    let lowest = points
        .iter()
        .enumerate()
        .min_by(|a, b| a.1.smoothed.total_cmp(&b.1.smoothed));
    let Some((lowest_index, lowest)) = lowest else {
        return (None, None);
    };
    let skip = (points.len() / 10).max(1);
    let steepest = points[..=lowest_index]
        .windows(2)
        .skip(skip)
        .map(|w| {
            let slope = (w[1].smoothed - w[0].smoothed) / (w[1].lr.ln() - w[0].lr.ln());
            (slope, w[1].lr)
        })
        .min_by(|a, b| a.0.total_cmp(&b.0))
        .map(|(_, lr)| lr);
    (Some(lowest.lr), steepest)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn point(step: u64, lr: f64, smoothed: f64) -> LrFindPoint {
        LrFindPoint {
            step,
            lr,
            loss: smoothed,
            smoothed,
        }
    }

    #[test]
    fn the_sweep_is_exponential_from_start_to_end() {
        let s = LrFindSettings {
            start_lr: 1e-6,
            end_lr: 1e-2,
            steps: 5,
            ..Default::default()
        };
        let lrs: Vec<f64> = (0..5).map(|i| s.lr_at(i)).collect();
        for (got, want) in lrs.iter().zip([1e-6, 1e-5, 1e-4, 1e-3, 1e-2]) {
            assert!((got / want - 1.0).abs() < 1e-9, "{lrs:?}");
        }
    }

    #[test]
    fn suggestions_come_from_the_valley_not_the_blow_up() {
        // A loss that falls fastest around 1e-4, bottoms out at 1e-3 and then explodes.
        let losses = [1.0, 1.0, 0.99, 0.9, 0.6, 0.4, 0.35, 0.34, 0.5, 3.0];
        let points: Vec<LrFindPoint> = losses
            .iter()
            .enumerate()
            .map(|(i, &l)| point(i as u64, 1e-7 * 10f64.powf(i as f64 / 2.0), l))
            .collect();
        let (min, steep) = suggestions(&points);
        assert!((min.unwrap() / points[7].lr - 1.0).abs() < 1e-12);
        assert!((steep.unwrap() / points[4].lr - 1.0).abs() < 1e-12);
    }
}
