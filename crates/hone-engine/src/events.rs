//! What a training run reports while it runs. Front ends render these; nothing in the engine
//! prints.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::metrics::{Metric, Report};

/// How a run ended.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum RunStatus {
    /// All epochs ran.
    Completed,
    /// The validation metric stopped improving.
    EarlyStopped,
    /// The cancel flag was raised (Ctrl-C); the best checkpoint was kept.
    Cancelled,
}

/// Which checkpoint was written.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum CheckpointKind {
    /// The weights with the best validation metric so far.
    Best,
    /// Weights, optimizer and position of the run, to resume from.
    Last,
}

/// One event of a training run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "event", rename_all = "snake_case")]
pub enum TrainEvent {
    /// Data and model are ready; training starts.
    Started {
        device: String,
        model_type: String,
        labels: Vec<String>,
        train_examples: u64,
        valid_examples: u64,
        /// Examples cut to `max_length` tokens.
        truncated_train: u64,
        truncated_valid: u64,
        max_length: usize,
        epochs: u32,
        steps_per_epoch: u64,
        total_steps: u64,
        warmup_steps: u64,
        params_total: u64,
        params_trainable: u64,
        /// Head tensors the checkpoint did not have, initialised anew.
        newly_initialized: Vec<String>,
    },
    /// Something the user should know that does not stop the run.
    Notice { message: String },
    /// The run continues from its last checkpoint.
    Resumed { step: u64, epoch: u32 },
    /// One optimizer step finished.
    Step {
        step: u64,
        total_steps: u64,
        /// Fractional epoch (1.5 = half way through the second epoch).
        epoch: f64,
        loss: f64,
        lr: f64,
        /// Global gradient norm before clipping.
        grad_norm: f64,
        samples_per_s: f64,
        tokens_per_s: f64,
        elapsed_s: f64,
        eta_s: f64,
        /// Multi-task learning: the task this step trained (its loss is that task's).
        #[serde(default, skip_serializing_if = "Option::is_none")]
        task: Option<String>,
    },
    /// The set of trained parameters changed (end of the head-only warm start, or one more
    /// layer unfrozen); `phase` says what trains now.
    PhaseChanged {
        step: u64,
        /// Fractional epoch where the new phase starts.
        epoch: f64,
        phase: String,
        params_trainable: u64,
    },
    /// A validation pass finished.
    Evaluated {
        step: u64,
        epoch: f64,
        metric: Metric,
        value: f64,
        is_best: bool,
        report: Report,
    },
    /// A causal-LM run's greedy answers to its fixed prompts (`sample_prompts`) at an
    /// evaluation.
    Samples {
        step: u64,
        samples: Vec<crate::sft::Sample>,
    },
    CheckpointSaved {
        step: u64,
        kind: CheckpointKind,
        path: PathBuf,
    },
    EarlyStopped {
        step: u64,
        metric: Metric,
        best: f64,
        patience: u32,
    },
    /// The run ended and the model was exported.
    Finished {
        status: RunStatus,
        steps: u64,
        elapsed_s: f64,
        best_step: Option<u64>,
        best: Option<Report>,
        export_dir: PathBuf,
    },
}
