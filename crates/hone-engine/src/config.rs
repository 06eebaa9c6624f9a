//! The run configuration: one serde type used by the command line, the TOML file, the app's
//! form and (later) the database.

use std::path::{Path, PathBuf};

use hone_data::{ColumnSpec, FileFormat};
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
        if !(0.0..1.0).contains(&self.beta1) || !(0.0..1.0).contains(&self.beta2) {
            return bad("Adam betas must be in [0, 1)".into());
        }
        Ok(())
    }
}

/// Training examples from files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileData {
    /// Training file (CSV, TSV, JSON(L), Parquet or lines).
    pub train: PathBuf,
    /// Validation file; without one, a seeded stratified share of `train` is held out.
    pub valid: Option<PathBuf>,
    /// File format when the extension does not tell.
    pub format: Option<FileFormat>,
    /// Column with the text to classify (token classification: the field holding the words
    /// array of a JSON lines file; CoNLL files have their words in the first column).
    pub text_column: String,
    /// Column with the second text of sentence pairs.
    pub text_pair_column: Option<String>,
    /// Column with the class label (token classification: the field holding the tags array).
    pub label_column: String,
    /// Share of `train` held out for validation when there is no `valid` file.
    pub valid_fraction: f64,
}

impl FileData {
    /// The columns to read, labels included.
    pub fn columns(&self) -> ColumnSpec {
        ColumnSpec {
            text: self.text_column.clone(),
            text_pair: self.text_pair_column.clone(),
            label: Some(self.label_column.clone()),
        }
    }
}

/// Training examples from a dataset stored in Hone's database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredData {
    /// The dataset's name (`hone data list`).
    pub dataset: String,
    /// A stored split of it (its train and validation parts are used); without one, a seeded
    /// stratified share of the labeled examples is held out.
    pub split: Option<String>,
    /// Share held out for validation when there is no split.
    pub valid_fraction: f64,
}

/// Where a run's examples come from: files, or a stored dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawData", into = "RawData")]
pub enum DataConfig {
    Files(FileData),
    Stored(StoredData),
}

/// The `[data]` table as written: either `train` (+ columns) or `dataset`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    #[serde(skip_serializing_if = "Option::is_none")]
    train: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<FileFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_pair_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_fraction: Option<f64>,
}

impl TryFrom<RawData> for DataConfig {
    type Error = String;

    fn try_from(r: RawData) -> Result<Self, String> {
        let valid_fraction = r.valid_fraction.unwrap_or(0.1);
        match (r.train, r.dataset) {
            (Some(train), None) => {
                if r.split.is_some() {
                    return Err(
                        "`split` belongs to a stored `dataset`, not to `train` files".into(),
                    );
                }
                let missing = |what: &str| format!("data from files needs `{what}`");
                Ok(DataConfig::Files(FileData {
                    train,
                    valid: r.valid,
                    format: r.format,
                    text_column: r.text_column.ok_or_else(|| missing("text_column"))?,
                    text_pair_column: r.text_pair_column,
                    label_column: r.label_column.ok_or_else(|| missing("label_column"))?,
                    valid_fraction,
                }))
            }
            (None, Some(dataset)) => {
                if r.valid.is_some()
                    || r.text_column.is_some()
                    || r.label_column.is_some()
                    || r.format.is_some()
                {
                    return Err("a stored `dataset` already knows its columns; drop `valid`, `format` and the `*_column` keys".into());
                }
                Ok(DataConfig::Stored(StoredData {
                    dataset,
                    split: r.split,
                    valid_fraction,
                }))
            }
            (Some(_), Some(_)) => {
                Err("set either `train` (files) or `dataset` (stored), not both".into())
            }
            (None, None) => Err("set `train` (a file) or `dataset` (a stored dataset)".into()),
        }
    }
}

impl From<DataConfig> for RawData {
    fn from(d: DataConfig) -> Self {
        match d {
            DataConfig::Files(f) => RawData {
                train: Some(f.train),
                valid: f.valid,
                format: f.format,
                text_column: Some(f.text_column),
                text_pair_column: f.text_pair_column,
                label_column: Some(f.label_column),
                valid_fraction: Some(f.valid_fraction),
                ..Default::default()
            },
            DataConfig::Stored(s) => RawData {
                dataset: Some(s.dataset),
                split: s.split,
                valid_fraction: Some(s.valid_fraction),
                ..Default::default()
            },
        }
    }
}

impl DataConfig {
    /// Share held out for validation when there is no validation file or split.
    pub fn valid_fraction(&self) -> f64 {
        match self {
            DataConfig::Files(f) => f.valid_fraction,
            DataConfig::Stored(s) => s.valid_fraction,
        }
    }
}

/// A whole fine-tuning run: model, data, options and where the result goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// What the model learns to do (sequence classification unless set).
    #[serde(default)]
    pub task: crate::models::Task,
    /// The pretrained model folder.
    pub model: PathBuf,
    pub data: DataConfig,
    #[serde(default)]
    pub training: TrainingConfig,
    /// Folder receiving the exported model of the best checkpoint; runs recorded in Hone's
    /// database default to a `model` folder in the run's own folder.
    #[serde(default)]
    pub out: Option<PathBuf>,
}

impl RunConfig {
    /// Reads a run configuration from a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, EngineError> {
        let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
        toml::from_str(&text)
            .map_err(|e| EngineError::InvalidConfig(format!("{}: {}", path.display(), e.message())))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_with_defaults() {
        let text = r#"
            model = "models/minilm"
            out = "out"
            [data]
            train = "train.tsv"
            text_column = "sentence"
            label_column = "label"
            [training]
            epochs = 1
            lr = 3e-5
            layer_lr_decay = 0.9
            device = "cpu"
        "#;
        let cfg: RunConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.training.epochs, 1);
        assert_eq!(cfg.training.batch_size, 16);
        assert_eq!(cfg.training.layer_lr_decay, Some(0.9));
        let DataConfig::Files(files) = &cfg.data else {
            panic!("files expected")
        };
        assert_eq!(files.columns().text, "sentence");
        assert_eq!(cfg.data.valid_fraction(), 0.1);
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<RunConfig>(&json).unwrap(), cfg);
    }

    #[test]
    fn a_stored_dataset_and_clear_errors_for_mixed_sources() {
        let cfg: RunConfig = toml::from_str(
            "model = \"m\"\nout = \"o\"\n[data]\ndataset = \"sst2\"\nsplit = \"default\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.data,
            DataConfig::Stored(StoredData {
                dataset: "sst2".into(),
                split: Some("default".into()),
                valid_fraction: 0.1
            })
        );
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(serde_json::from_value::<RunConfig>(json).unwrap(), cfg);
        let err = toml::from_str::<RunConfig>(
            "model = \"m\"\nout = \"o\"\n[data]\ndataset = \"a\"\ntrain = \"t.tsv\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }

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
