//! The training options of a run (`[training]` of a run configuration): one serde type used by
//! the command line, the TOML file, the app's form and the database.

use serde::{Deserialize, Serialize};

use crate::device::DeviceSpec;
use crate::metrics::Metric;
use crate::schedule::Schedule;
use crate::EngineError;

/// How layer-wise learning-rate decay falls from the head to the embeddings.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum DecayShape {
    /// Each layer gets `base × factor^depth` (depth 0 = head, 1 = top layer, …,
    /// L + 1 = embeddings).
    #[default]
    Exponential,
    /// Same end points (1 at the head, `factor^(L+1)` at the embeddings) joined by half a
    /// cosine: the upper layers keep more of the base rate, the lowest ones a little less.
    Cosine,
}

impl std::str::FromStr for DecayShape {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "exponential" | "exp" => Ok(DecayShape::Exponential),
            "cosine" => Ok(DecayShape::Cosine),
            other => Err(format!(
                "unknown decay shape '{other}': use exponential or cosine"
            )),
        }
    }
}

/// Every option of a fine-tuning run, with safe defaults.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TrainingConfig {
    /// Passes over the training data.
    pub epochs: u32,
    /// Examples per forward pass.
    pub batch_size: usize,
    /// Longest input in tokens (special tokens included); longer texts are truncated.
    pub max_length: usize,
    /// Peak learning rate.
    pub lr: f64,
    pub schedule: Schedule,
    /// Share of the optimizer steps spent warming up linearly from 0.
    pub warmup_ratio: f64,
    /// Warmup steps; overrides `warmup_ratio` when set.
    pub warmup_steps: Option<u64>,
    /// Decoupled weight decay (never applied to biases and LayerNorm weights).
    pub weight_decay: f64,
    /// Clip gradients to this global L2 norm; `None` disables clipping.
    pub clip_norm: Option<f64>,
    /// Batches whose gradients are summed before each optimizer step.
    pub grad_accum: u32,
    pub seed: u64,
    /// Evaluate every N optimizer steps; `None` evaluates at the end of each epoch.
    pub eval_every: Option<u64>,
    /// Also write the resumable `last` checkpoint every N optimizer steps (it is always written
    /// at the end of each epoch and on cancel).
    pub checkpoint_every: Option<u64>,
    /// Also write it when this many minutes passed since the last one (default 5), so a crash
    /// inside a long epoch costs at most that; `None` writes it only by steps and epochs.
    pub checkpoint_minutes: Option<f64>,
    /// Write the resumable checkpoint at all; off, a stopped run cannot be resumed, but short
    /// runs (the labeling loop's rounds) save the time and disk of weights + optimizer state.
    pub resumable: bool,
    /// Stop after this many evaluations without improvement; `None` never stops early.
    pub early_stopping_patience: Option<u32>,
    /// The metric that picks the best checkpoint and drives early stopping.
    pub early_stopping_metric: Metric,
    /// Smallest change of the metric that counts as an improvement.
    pub early_stopping_min_delta: f64,
    /// Keep the embedding tables (word, position, token type) fixed.
    pub freeze_embeddings: bool,
    /// Keep the bottom N encoder layers fixed.
    pub freeze_layers: usize,
    /// Layer-wise learning-rate decay factor (e.g. 0.9); `None` gives every layer the base rate.
    pub layer_lr_decay: Option<f64>,
    pub layer_lr_decay_shape: DecayShape,
    /// Train only the new head for this many optimizer steps first.
    pub head_warmup_steps: u64,
    /// Train only the new head for this many epochs first (added to `head_warmup_steps`).
    pub head_warmup_epochs: u32,
    /// Override every dropout probability of the model config.
    pub dropout: Option<f64>,
    /// Token classification: put each word's tag on every sub-token (B- turned into I- after
    /// the first) instead of the first sub-token only.
    pub label_all_subtokens: bool,
    pub beta1: f64,
    pub beta2: f64,
    pub adam_eps: f64,
    pub device: DeviceSpec,
}

impl Default for TrainingConfig {
    fn default() -> Self {
        TrainingConfig {
            epochs: 3,
            batch_size: 16,
            max_length: 128,
            lr: 5e-5,
            schedule: Schedule::Linear,
            warmup_ratio: 0.1,
            warmup_steps: None,
            weight_decay: 0.01,
            clip_norm: Some(1.0),
            grad_accum: 1,
            seed: 42,
            eval_every: None,
            checkpoint_every: None,
            checkpoint_minutes: Some(5.0),
            resumable: true,
            early_stopping_patience: None,
            early_stopping_metric: Metric::MacroF1,
            early_stopping_min_delta: 0.0,
            freeze_embeddings: false,
            freeze_layers: 0,
            layer_lr_decay: None,
            layer_lr_decay_shape: DecayShape::Exponential,
            head_warmup_steps: 0,
            head_warmup_epochs: 0,
            dropout: None,
            label_all_subtokens: false,
            beta1: 0.9,
            beta2: 0.999,
            adam_eps: 1e-8,
            device: DeviceSpec::Cpu,
        }
    }
}

impl TrainingConfig {
    /// Checks ranges; the message names the option and a valid value.
    pub fn validate(&self) -> Result<(), EngineError> {
        let bad = |m: String| Err(EngineError::InvalidConfig(m));
        if self.epochs == 0 {
            return bad("epochs must be at least 1".into());
        }
        if self.batch_size == 0 {
            return bad("batch size must be at least 1".into());
        }
        if self.grad_accum == 0 {
            return bad("grad-accum must be at least 1".into());
        }
        if !(self.lr.is_finite() && self.lr > 0.0) {
            return bad(format!(
                "learning rate must be a positive number, got {}",
                self.lr
            ));
        }
        if !(0.0..1.0).contains(&self.warmup_ratio) {
            return bad(format!(
                "warmup ratio must be in [0, 1), got {}",
                self.warmup_ratio
            ));
        }
        if !(self.weight_decay >= 0.0 && self.weight_decay.is_finite()) {
            return bad(format!(
                "weight decay must be ≥ 0, got {}",
                self.weight_decay
            ));
        }
        if let Some(c) = self.clip_norm {
            if !(c > 0.0 && c.is_finite()) {
                return bad(format!("clip norm must be positive, got {c}"));
            }
        }
        if let Some(f) = self.layer_lr_decay {
            if !(f > 0.0 && f <= 1.0) {
                return bad(format!("layer LR decay must be in (0, 1], got {f}"));
            }
        }
        if let Some(p) = self.dropout {
            if !(0.0..1.0).contains(&p) {
                return bad(format!("dropout must be in [0, 1), got {p}"));
            }
        }
        if self.eval_every == Some(0) {
            return bad("eval-every must be at least 1 step".into());
        }
        if self.checkpoint_every == Some(0) {
            return bad("checkpoint-every must be at least 1 step".into());
        }
        if let Some(m) = self.checkpoint_minutes {
            if !(m.is_finite() && m > 0.0) {
                return bad(format!(
                    "checkpoint minutes must be a positive number (or off), got {m}"
                ));
            }
        }
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("Adam betas must be in [0, 1)".into());
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        assert!(toml::from_str::<TrainingConfig>("epoch = 3").is_err());
        let cfg = TrainingConfig {
            lr: -1.0,
            ..Default::default()
        };
        assert!(cfg
            .validate()
            .unwrap_err()
            .to_string()
            .contains("learning rate"));
    }
}
