//! Named sets of training options — the Train page's preset buttons and `hone train
//! --preset` — defined once here. A preset may tie the learning rate to the batch size
//! (`lr = base_lr / reference_batch × batch_size`), as recipes written for one batch size
//! are scaled to another.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use crate::config::TrainingConfig;
use crate::EngineError;

/// The learning rate of a batch size, scaled linearly from a reference.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct LrScaling {
    /// The rate at the reference batch size.
    pub base_lr: f64,
    pub reference_batch: usize,
}

impl LrScaling {
    /// `base_lr / reference_batch × batch_size`.
    pub fn lr(&self, batch_size: usize) -> f64 {
        self.base_lr / self.reference_batch.max(1) as f64 * batch_size as f64
    }
}

/// A named set of training options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Preset {
    pub key: String,
    pub label: String,
    /// One line: what it does and when to use it.
    pub help: String,
    /// The `[training]` options it sets; the others keep their values.
    pub values: Value,
    /// When set, the learning rate follows the batch size.
    pub lr_scaling: Option<LrScaling>,
}

impl Preset {
    /// `cfg` with the preset's options (and its scaled learning rate for `cfg`'s batch size).
    pub fn apply(&self, cfg: &TrainingConfig) -> Result<TrainingConfig, EngineError> {
        let mut merged = serde_json::to_value(cfg)
            .map_err(|e| EngineError::InvalidConfig(format!("preset {}: {e}", self.key)))?;
        if let (Some(target), Some(values)) = (merged.as_object_mut(), self.values.as_object()) {
            for (k, v) in values {
                target.insert(k.clone(), v.clone());
            }
        }
        let mut out: TrainingConfig = serde_json::from_value(merged)
            .map_err(|e| EngineError::InvalidConfig(format!("preset {}: {e}", self.key)))?;
        if let Some(scaling) = self.lr_scaling {
            out.lr = scaling.lr(out.batch_size);
        }
        Ok(out)
    }
}

/// Every preset, in the order the Train page shows them.
pub fn presets() -> Vec<Preset> {
    vec![
        Preset {
            key: "quick".into(),
            label: "Quick".into(),
            help: "2 epochs at the usual learning rate: a first model in minutes.".into(),
            values: json!({"epochs": 2, "lr": 5e-5, "freeze_embeddings": false, "layer_lr_decay": null,
                           "warmup_ratio": 0.1, "head_warmup_epochs": 0, "peft": "full"}),
            lr_scaling: None,
        },
        Preset {
            key: "careful".into(),
            label: "Careful".into(),
            help: "Frozen embeddings, layer-wise LR decay (0.9) and warmup: steadier on small datasets.".into(),
            values: json!({"epochs": 4, "lr": 3e-5, "freeze_embeddings": true, "layer_lr_decay": 0.9,
                           "warmup_ratio": 0.1, "head_warmup_epochs": 0, "early_stopping_patience": 2,
                           "peft": "full"}),
            lr_scaling: None,
        },
        Preset {
            key: "kaggle-mc".into(),
            label: "Kaggle multiple choice".into(),
            help: "The science-exam recipe: the new head trained alone first, frozen embeddings, cosine-shaped layer-wise LR decay (0.9), 10% warmup then cosine decay; the learning rate scaled from 2e-5 at batch 16.".into(),
            values: json!({"epochs": 2, "freeze_embeddings": true, "layer_lr_decay": 0.9,
                           "layer_lr_decay_shape": "cosine", "warmup_ratio": 0.1, "schedule": "cosine",
                           "head_warmup_steps": 50, "head_warmup_epochs": 0,
                           "early_stopping_metric": "map_at_3", "peft": "full"}),
            lr_scaling: Some(LrScaling {
                base_lr: 2e-5,
                reference_batch: 16,
            }),
        },
        Preset {
            key: "lora".into(),
            label: "LoRA".into(),
            help: "Low-rank adapters (rank 8, alpha 16) on the query and value projections and the head trained in full; the rest frozen: a small share of the parameters, far less optimizer memory, a PEFT adapter as the result. LoRA takes a higher learning rate (5e-4).".into(),
            values: json!({"peft": "lora", "lora_r": 8, "lora_alpha": 16.0, "lora_dropout": 0.1,
                           "epochs": 3, "lr": 5e-4, "warmup_ratio": 0.1, "freeze_embeddings": false,
                           "layer_lr_decay": null, "head_warmup_steps": 0, "head_warmup_epochs": 0}),
            lr_scaling: None,
        },
    ]
}

/// The preset named `key`.
pub fn preset(key: &str) -> Result<Preset, EngineError> {
    let all = presets();
    let names: Vec<String> = all.iter().map(|p| p.key.clone()).collect();
    all.into_iter().find(|p| p.key == key).ok_or_else(|| {
        EngineError::InvalidConfig(format!(
            "unknown preset '{key}' (one of: {})",
            names.join(", ")
        ))
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::DecayShape;
    use crate::metrics::Metric;
    use crate::schedule::Schedule;

    #[test]
    fn every_preset_applies_and_the_kaggle_one_scales_its_rate() {
        for p in presets() {
            let cfg = p.apply(&TrainingConfig::default()).unwrap();
            cfg.validate().unwrap();
        }
        let kaggle = preset("kaggle-mc").unwrap();
        let cfg = kaggle
            .apply(&TrainingConfig {
                batch_size: 8,
                ..TrainingConfig::default()
            })
            .unwrap();
        assert!((cfg.lr - 1e-5).abs() < 1e-18, "{}", cfg.lr);
        assert!(cfg.freeze_embeddings && cfg.head_warmup_steps == 50);
        assert_eq!(cfg.layer_lr_decay, Some(0.9));
        assert_eq!(cfg.layer_lr_decay_shape, DecayShape::Cosine);
        assert_eq!(cfg.schedule, Schedule::Cosine);
        assert_eq!(cfg.early_stopping_metric, Metric::MapAt3);
        // Options it does not name keep their values.
        assert_eq!(cfg.batch_size, 8);
        assert!(preset("nope")
            .unwrap_err()
            .to_string()
            .contains("kaggle-mc"));
    }
}
