//! Learning-rate schedules with linear warmup, as `transformers` defines them
//! (`get_{constant,linear,cosine}_schedule_with_warmup`).

use serde::{Deserialize, Serialize};

/// The shape of the learning rate after warmup.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Schedule {
    /// Stays at the base rate.
    Constant,
    /// Decays linearly to 0 at the last step.
    #[default]
    Linear,
    /// Follows half a cosine down to 0 at the last step.
    Cosine,
}

impl std::str::FromStr for Schedule {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "constant" => Ok(Schedule::Constant),
            "linear" => Ok(Schedule::Linear),
            "cosine" => Ok(Schedule::Cosine),
            other => Err(format!(
                "unknown schedule '{other}': use constant, linear or cosine"
            )),
        }
    }
}

impl Schedule {
    /// The factor applied to the base learning rate at optimizer step `step` (0-based) of
    /// `total`, after `warmup` steps rising linearly from 0.
    pub fn multiplier(self, step: u64, warmup: u64, total: u64) -> f64 {
        if step < warmup {
            return step as f64 / warmup.max(1) as f64;
        }
        let after = (step - warmup) as f64;
        let span = total.saturating_sub(warmup).max(1) as f64;
        match self {
            Schedule::Constant => 1.0,
            Schedule::Linear => ((total as f64 - step as f64) / span).max(0.0),
            Schedule::Cosine => {
                let progress = after / span;
                (0.5 * (1.0 + (std::f64::consts::PI * progress).cos())).max(0.0)
            }
        }
    }
}

/// Warmup steps from an explicit count, else `ceil(total × ratio)` (as the HF Trainer does).
pub fn warmup_steps(total: u64, ratio: f64, steps: Option<u64>) -> u64 {
    steps.unwrap_or_else(|| (total as f64 * ratio).ceil() as u64)
}
