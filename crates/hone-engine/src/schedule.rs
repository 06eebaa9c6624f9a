//! Learning-rate schedules with warmup, as `transformers` and PyTorch define them:
//! `get_{constant,linear,cosine,cosine_with_hard_restarts,polynomial_decay}_schedule_with_warmup`,
//! `torch.optim.lr_scheduler.{ExponentialLR,CyclicLR,OneCycleLR}` (the last three run over the
//! steps after warmup). A schedule gives the factor applied to the base learning rate `lr`.

use serde::{Deserialize, Serialize};

use crate::config::TrainingConfig;

/// The shape of the learning rate after warmup.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Schedule {
    /// Stays at the base rate.
    Constant,
    /// Decays linearly to 0 at the last step.
    #[default]
    Linear,
    /// Follows half a cosine down to 0 at the last step.
    Cosine,
    /// Half a cosine down to 0, restarted from the top `lr_cycles` times.
    CosineRestarts,
    /// `(1 − progress)^lr_power` from the base rate down to `lr × min_lr_ratio`.
    Polynomial,
    /// Multiplied by `lr_gamma` every step.
    Exponential,
    /// Triangles between `lr × min_lr_ratio` and `lr` (PyTorch's `CyclicLR`).
    Cyclic,
    /// Rises from `lr × min_lr_ratio` to `lr` over the warmup steps and anneals to 10⁴ times
    /// below the start (PyTorch's `OneCycleLR`, cosine annealing).
    OneCycle,
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "constant" => Ok(Schedule::Constant),
            "linear" => Ok(Schedule::Linear),
            "cosine" => Ok(Schedule::Cosine),
            "cosine_restarts" | "cosine_with_restarts" => Ok(Schedule::CosineRestarts),
            "polynomial" => Ok(Schedule::Polynomial),
            "exponential" => Ok(Schedule::Exponential),
            "cyclic" => Ok(Schedule::Cyclic),
            "one_cycle" | "onecycle" => Ok(Schedule::OneCycle),
            other => Err(format!(
                "unknown schedule '{other}': use constant, linear, cosine, cosine-restarts, \
                 polynomial, exponential, cyclic or one-cycle"
            )),
        }
    }
}

/// How a cyclic schedule's peaks change from cycle to cycle (`CyclicLR`'s `mode`).
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum CyclicMode {
    /// Every peak reaches the base rate.
    #[default]
    Triangular,
    /// Each cycle's peak is half the one before.
    Triangular2,
    /// The distance above the bottom shrinks by `lr_gamma` every step.
    ExpRange,
}

impl std::str::FromStr for CyclicMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "triangular" => Ok(CyclicMode::Triangular),
            "triangular2" => Ok(CyclicMode::Triangular2),
            "exp_range" => Ok(CyclicMode::ExpRange),
            other => Err(format!(
                "unknown cyclic mode '{other}': use triangular, triangular2 or exp-range"
            )),
        }
    }
}

/// The shape parameters of the schedules that have any.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct ScheduleParams {
    /// The lowest rate as a share of the base; `None` takes the schedule's default.
    pub min_ratio: Option<f64>,
    /// Exponential and exp_range's factor per step; `None` derives it from the run length.
    pub gamma: Option<f64>,
    pub power: f64,
    pub cycles: u32,
    pub cyclic_mode: CyclicMode,
}

impl Default for ScheduleParams {
    fn default() -> Self {
        ScheduleParams {
            min_ratio: None,
            gamma: None,
            power: 1.0,
            cycles: 2,
            cyclic_mode: CyclicMode::Triangular,
        }
    }
}

/// A run's learning-rate schedule: shape, parameters, warmup and length.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct LrSchedule {
    pub shape: Schedule,
    pub params: ScheduleParams,
    pub warmup: u64,
    pub total: u64,
}

/// `OneCycleLR`'s `final_div_factor`: where it ends, relative to where it starts.
const ONE_CYCLE_FINAL_DIV: f64 = 1e4;

impl LrSchedule {
    /// The schedule a run's options describe over `total` optimizer steps, `warmup` of them
    /// warming up.
    pub fn from_config(cfg: &TrainingConfig, warmup: u64, total: u64) -> Self {
        LrSchedule {
            shape: cfg.schedule,
            params: ScheduleParams {
                min_ratio: cfg.min_lr_ratio,
                gamma: cfg.lr_gamma,
                power: cfg.lr_power,
                cycles: cfg.lr_cycles,
                cyclic_mode: cfg.cyclic_mode,
            },
            warmup,
            total,
        }
    }

    /// The lowest rate as a share of the base, with each schedule's default.
    pub fn min_ratio(&self) -> f64 {
        self.params.min_ratio.unwrap_or(match self.shape {
            Schedule::Exponential => 0.01,
            Schedule::Cyclic => 0.25,
            Schedule::OneCycle => 0.04,
            _ => 0.0,
        })
    }

    /// Steps after warmup (at least 1).
    fn span(&self) -> f64 {
        self.total.saturating_sub(self.warmup).max(1) as f64
    }

    /// The factor applied to the base learning rate at optimizer step `step` (0-based).
    /// Warmup rises linearly from 0 to where the schedule starts (the base rate, or a cyclic
    /// schedule's bottom); one-cycle's own rise is its warmup.
    pub fn multiplier(&self, step: u64) -> f64 {
        if self.shape == Schedule::OneCycle {
            return self.one_cycle(step as f64);
        }
        if step < self.warmup {
            let start = if self.shape == Schedule::Cyclic {
                self.min_ratio()
            } else {
                1.0
            };
            return start * step as f64 / self.warmup.max(1) as f64;
        }
        let after = (step - self.warmup) as f64;
        let span = self.span();
        let progress = after / span;
        match self.shape {
            Schedule::Constant => 1.0,
            Schedule::Linear => ((self.total as f64 - step as f64) / span).max(0.0),
            Schedule::Cosine => (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0),
            Schedule::CosineRestarts => {
                if progress >= 1.0 {
                    return 0.0;
                }
                let within = (self.params.cycles as f64 * progress) % 1.0;
                (0.5 * (1.0 + (std::f64::consts::PI * within).cos())).max(0.0)
            }
            Schedule::Polynomial => {
                let end = self.min_ratio();
                if step > self.total {
                    return end;
                }
                (1.0 - end) * (1.0 - progress).powf(self.params.power) + end
            }
            Schedule::Exponential => self.exponential_gamma().powf(after),
            Schedule::Cyclic => self.cyclic(after),
            Schedule::OneCycle => unreachable!("handled above"),
        }
    }

    /// The exponential schedule's factor per step.
    pub fn exponential_gamma(&self) -> f64 {
        self.params
            .gamma
            .unwrap_or_else(|| self.min_ratio().max(1e-12).powf(1.0 / self.span()))
    }

    /// `CyclicLR` at iteration `x` after warmup, `step_size_up = step_size_down` = the span
    /// over `2 × cycles`.
    fn cyclic(&self, x: f64) -> f64 {
        let base = self.min_ratio();
        let half = self.span() / (2.0 * self.params.cycles.max(1) as f64);
        let total_size = 2.0 * half;
        let step_ratio = half / total_size;
        let cycle = (1.0 + x / total_size).floor();
        let position = 1.0 + x / total_size - cycle;
        let scale_factor = if position <= step_ratio {
            position / step_ratio
        } else {
            (position - 1.0) / (step_ratio - 1.0)
        };
        let height = (1.0 - base) * scale_factor;
        let scale = match self.params.cyclic_mode {
            CyclicMode::Triangular => 1.0,
            CyclicMode::Triangular2 => 1.0 / 2f64.powf(cycle - 1.0),
            CyclicMode::ExpRange => {
                let gamma = self
                    .params
                    .gamma
                    .unwrap_or_else(|| 0.01f64.powf(1.0 / self.span()));
                gamma.powf(x)
            }
        };
        base + height * scale
    }

    /// `OneCycleLR` (two phases, cosine annealing) with `max_lr` the base rate, `div_factor`
    /// `1 / min_ratio` and `pct_start` the warmup share.
    fn one_cycle(&self, step: f64) -> f64 {
        let initial = self.min_ratio();
        let last = initial / ONE_CYCLE_FINAL_DIV;
        let total = self.total.max(1) as f64;
        let pct_start = self.warmup as f64 / total;
        let rise_end = pct_start * total - 1.0;
        let phases = [(rise_end, initial, 1.0), (total - 1.0, 1.0, last)];
        let mut start_step = 0.0;
        for (i, &(end_step, from, to)) in phases.iter().enumerate() {
            if step <= end_step || i == phases.len() - 1 {
                let length = end_step - start_step;
                let pct = if length > 0.0 {
                    ((step - start_step) / length).min(1.0)
                } else {
                    1.0
                };
                return to + (from - to) / 2.0 * ((std::f64::consts::PI * pct).cos() + 1.0);
            }
            start_step = end_step;
        }
        last
    }
}

impl Schedule {
    /// The factor at step `step` of `total` after `warmup` steps, with default parameters.
    pub fn multiplier(self, step: u64, warmup: u64, total: u64) -> f64 {
        LrSchedule {
            shape: self,
            params: ScheduleParams::default(),
            warmup,
            total,
        }
        .multiplier(step)
    }
}

/// Warmup steps from an explicit count, else `ceil(total × ratio)` (as the HF Trainer does).
pub fn warmup_steps(total: u64, ratio: f64, steps: Option<u64>) -> u64 {
    steps.unwrap_or_else(|| (total as f64 * ratio).ceil() as u64)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_parse_with_dashes_or_underscores() {
        assert_eq!("one-cycle".parse::<Schedule>(), Ok(Schedule::OneCycle));
        assert_eq!(
            "cosine_restarts".parse::<Schedule>(),
            Ok(Schedule::CosineRestarts)
        );
        assert_eq!("exp-range".parse::<CyclicMode>(), Ok(CyclicMode::ExpRange));
        assert!("zigzag".parse::<Schedule>().is_err());
    }

    #[test]
    fn derived_exponential_gamma_lands_on_the_floor() {
        let s = LrSchedule {
            shape: Schedule::Exponential,
            params: ScheduleParams::default(),
            warmup: 10,
            total: 110,
        };
        assert!((s.multiplier(10) - 1.0).abs() < 1e-12);
        assert!((s.multiplier(110) - 0.01).abs() < 1e-9);
    }
}
