//! The engine's error type. Messages say what went wrong and what to do about it.

use std::path::PathBuf;

/// Everything that can stop loading, training, evaluating or exporting a model.
#[derive(Debug, thiserror::Error)]
pub enum EngineError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path} is not a usable model config: {message}")]
    BadModelConfig { path: PathBuf, message: String },
    #[error("{dir} is not a model folder: there is no config.json; choose a folder with config.json and the weights (model.safetensors or pytorch_model.bin)")]
    NotAModelFolder { dir: PathBuf },
    #[error("model type '{model_type}' cannot be trained by Hone yet; supported: {supported}")]
    UnsupportedArchitecture {
        model_type: String,
        supported: String,
    },
    #[error("{dir} has no weights: expected model.safetensors, model.safetensors.index.json, pytorch_model.bin or pytorch_model.bin.index.json")]
    NoWeights { dir: PathBuf },
    #[error("the weights in {dir} have no tensor '{name}'; the checkpoint does not match its config.json (is it a complete {family} model?)")]
    MissingTensor {
        dir: PathBuf,
        name: String,
        family: String,
    },
    #[error(
        "tensor '{name}' has shape {found:?} in the checkpoint but the config implies {expected:?}"
    )]
    ShapeMismatch {
        name: String,
        expected: Vec<usize>,
        found: Vec<usize>,
    },
    #[error("cannot read the weights in {path}: {message}")]
    BadWeights { path: PathBuf, message: String },
    #[error("{path} is not a LoRA adapter Hone can use: {message}")]
    BadAdapter { path: PathBuf, message: String },
    #[error(
        "{path} has no classification head (no id2label/classifier weights); fine-tune it first"
    )]
    NoClassificationHead { path: PathBuf },
    #[error("{path} is a {found} model; this needs a {wanted} model")]
    WrongTask {
        path: PathBuf,
        found: &'static str,
        wanted: &'static str,
    },
    #[error("device '{device}' is not available: {reason}")]
    DeviceUnavailable { device: String, reason: String },
    #[error("invalid setting: {0}")]
    InvalidConfig(String),
    #[error("the loss became {value} at step {step}; training stopped. Lower the learning rate (e.g. 2e-5) or keep gradient clipping on (clip norm 1.0)")]
    NonFiniteLoss { step: u64, value: f64 },
    #[error("the gradient norm became {value} at step {step}; training stopped. Lower the learning rate or keep gradient clipping on (clip norm 1.0)")]
    NonFiniteGradient { step: u64, value: f64 },
    #[error(transparent)]
    Data(#[from] hone_data::DataError),
    #[error("tensor computation failed: {0}")]
    Candle(#[from] candle_core::Error),
    #[error("cannot write {path}: {message}")]
    Export { path: PathBuf, message: String },
}

impl EngineError {
    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }
}
