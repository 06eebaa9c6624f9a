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
    #[error("{device} ran out of memory on a batch of {batch_size} × {length} tokens; {hint}")]
    OutOfMemory {
        device: String,
        batch_size: usize,
        length: usize,
        hint: String,
    },
}

impl EngineError {
    /// True for a GPU's out-of-memory error (CUDA's `CUDA_ERROR_OUT_OF_MEMORY`, Metal's
    /// failed allocations).
    pub fn is_out_of_memory(&self) -> bool {
        match self {
            EngineError::OutOfMemory { .. } => true,
            EngineError::Candle(e) => {
                let text = e.to_string();
                text.contains("OUT_OF_MEMORY")
                    || text.to_ascii_lowercase().contains("out of memory")
            }
            _ => false,
        }
    }

    /// This error as [`EngineError::OutOfMemory`] when it is one, saying what would fit: a
    /// batch of `sequences` sequences of up to `length` tokens on `device`.
    pub fn on_batch(self, device: &str, sequences: usize, length: usize) -> Self {
        if !self.is_out_of_memory() || matches!(self, EngineError::OutOfMemory { .. }) {
            return self;
        }
        let half = (sequences / 2).max(1);
        let hint = if sequences > 1 {
            format!(
                "try batch size {half} with gradient accumulation 2 (the same effective batch), \
                 a maximum length of {} tokens, or LoRA; `hone hub info` and the Train form's \
                 fit check estimate what fits",
                (length / 2).max(1)
            )
        } else {
            format!(
                "one sequence of {length} tokens does not fit: lower the maximum length or train \
                 LoRA adapters"
            )
        };
        EngineError::OutOfMemory {
            device: device.to_string(),
            batch_size: sequences,
            length,
            hint,
        }
    }

    /// An I/O error on `path`.
    pub fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        EngineError::Io {
            path: path.into(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// What cudarc's driver error prints when `cuMemAlloc` fails.
    #[derive(Debug)]
    struct DriverOom;
    impl std::fmt::Display for DriverOom {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("DriverError(CUDA_ERROR_OUT_OF_MEMORY, \"out of memory\")")
        }
    }
    impl std::error::Error for DriverOom {}

    #[test]
    fn a_cuda_out_of_memory_error_says_what_batch_to_try() {
        let oom = EngineError::Candle(candle_core::Error::Cuda(Box::new(DriverOom)));
        assert!(oom.is_out_of_memory());
        let err = oom.on_batch("cuda:0", 64, 512);
        assert!(matches!(
            err,
            EngineError::OutOfMemory {
                batch_size: 64,
                length: 512,
                ..
            }
        ));
        let text = err.to_string();
        assert!(
            text.contains("cuda:0 ran out of memory on a batch of 64 × 512"),
            "{text}"
        );
        assert!(
            text.contains("batch size 32 with gradient accumulation 2"),
            "{text}"
        );
        let one = EngineError::Candle(candle_core::Error::Cuda(Box::new(DriverOom)))
            .on_batch("cuda:1", 1, 4096)
            .to_string();
        assert!(one.contains("lower the maximum length"), "{one}");
        // Other errors pass through unchanged.
        let other = EngineError::InvalidConfig("x".into()).on_batch("cuda:0", 8, 8);
        assert!(matches!(other, EngineError::InvalidConfig(_)));
    }
}
