//! Hone's training engine: trainable transformer encoders on candle (BERT, DistilBERT,
//! RoBERTa / XLM-R) with sequence classification, token classification, multiple-choice and
//! question-answering heads, each written once over a
//! [`graph::Graph`] that runs on fused CPU kernels or on candle's autograd, loading and exporting Hugging Face
//! folders, AdamW with parameter groups, LR schedules, fine-tuning recipes, metrics and the
//! training loop. Knows nothing of SQLite, Tauri or HTTP.
//!
//! Every op used in a forward pass that is trained carries a gradient (candle's fused
//! `softmax_last_dim`, `layer_norm`, `rms_norm`, `rope` and `sdpa` do not; see `ops`).

pub mod answers;
pub mod batch;
pub mod bench;
pub mod bottleneck;
pub mod checkpoint;
pub mod config;
pub mod cpu;
pub mod curriculum;
pub mod device;
pub mod distill;
pub mod error;
pub mod events;
pub mod ewc;
pub mod export;
pub mod generate;
pub mod gguf;
pub mod graph;
pub mod inference;
pub mod job;
mod kernel_io;
pub mod lora;
pub mod lr_find;
pub mod memory;
pub mod metrics;
pub mod models;
pub mod multitask;
pub mod onnx;
pub mod ops;
pub mod optim;
pub mod packing;
pub mod params;
pub mod precision;
pub mod prefix;
pub mod presets;
#[cfg(feature = "cuda")]
mod ptx;
pub mod recipes;
pub mod rng;
pub mod schedule;
pub mod seq2seq;
pub mod sft;
pub mod speed;
pub mod step;
pub mod trainer;
pub mod weights;

pub use candle_core;
pub use config::TrainingConfig;
pub use device::DeviceSpec;
pub use error::EngineError;
pub use events::TrainEvent;
pub use job::FineTuneOutcome;
pub use metrics::{ClassificationReport, EntityReport, Report};
pub use models::{Family, Model, Task};

/// Result type of the engine.
pub type Result<T> = std::result::Result<T, EngineError>;
