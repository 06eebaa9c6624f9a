//! `hone train`: flags (or a TOML run file) → `RunConfig` → the engine's fine-tuning job.

use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use anyhow::{bail, Context};
use clap::Args;
use hone_data::FileFormat;
use hone_engine::config::DecayShape;
use hone_engine::events::RunStatus;
use hone_engine::metrics::Metric;
use hone_engine::schedule::Schedule;
use hone_engine::{fine_tune, DataConfig, DeviceSpec, RunConfig, TrainEvent, TrainingConfig};

use super::render::TrainRenderer;
use super::EXIT_INTERRUPTED;

#[derive(Args)]
#[command(
    after_help = "Example:\n  hone train --model models-cache/minilm --train train.tsv \\\n    --text-column sentence --label-column label --out runs/sst2 --epochs 1"
)]
pub struct TrainArgs {
    /// Pretrained model folder (config.json, weights, tokenizer).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Training data (CSV, TSV or JSONL).
    #[arg(long, value_name = "FILE")]
    train: Option<PathBuf>,
    /// Validation data; without it a seeded, stratified share of --train is held out.
    #[arg(long, value_name = "FILE")]
    valid: Option<PathBuf>,
    /// File format when the extension does not tell (csv, tsv, jsonl).
    #[arg(long)]
    format: Option<FileFormat>,
    /// Column holding the text.
    #[arg(long, value_name = "C")]
    text_column: Option<String>,
    /// Column holding the second text of sentence pairs.
    #[arg(long, value_name = "C2")]
    text_pair_column: Option<String>,
    /// Column holding the label.
    #[arg(long, value_name = "L")]
    label_column: Option<String>,
    /// Folder receiving the exported model of the best checkpoint.
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// Read the run configuration from a TOML file; flags override its values.
    #[arg(long, value_name = "run.toml")]
    config: Option<PathBuf>,
    /// Print one JSON object per event instead of a progress bar.
    #[arg(long)]
    json: bool,
    /// Keep the checkpoints folder inside --out after a successful run.
    #[arg(long)]
    keep_checkpoints: bool,

    /// Passes over the training data [default: 3].
    #[arg(long, help_heading = "Training")]
    epochs: Option<u32>,
    /// Examples per batch [default: 16].
    #[arg(long, help_heading = "Training")]
    batch_size: Option<usize>,
    /// Longest input in tokens; longer texts are truncated [default: 128].
    #[arg(long, help_heading = "Training")]
    max_length: Option<usize>,
    /// Peak learning rate [default: 5e-5].
    #[arg(long, help_heading = "Training")]
    lr: Option<f64>,
    /// Learning-rate schedule after warmup: constant, linear or cosine [default: linear].
    #[arg(long, help_heading = "Training")]
    schedule: Option<Schedule>,
    /// Share of steps spent warming the learning rate up from 0 [default: 0.1].
    #[arg(long, help_heading = "Training")]
    warmup_ratio: Option<f64>,
    /// Warmup steps (overrides --warmup-ratio).
    #[arg(long, help_heading = "Training")]
    warmup_steps: Option<u64>,
    /// Decoupled weight decay, never on biases and LayerNorm weights [default: 0.01].
    #[arg(long, help_heading = "Training")]
    weight_decay: Option<f64>,
    /// Clip gradients to this global norm; 0 turns clipping off [default: 1.0].
    #[arg(long, help_heading = "Training")]
    clip_norm: Option<f64>,
    /// Batches accumulated per optimizer step [default: 1].
    #[arg(long, help_heading = "Training")]
    grad_accum: Option<u32>,
    /// Seed of shuffling, dropout, head initialisation and the validation split [default: 42].
    #[arg(long, help_heading = "Training")]
    seed: Option<u64>,
    /// Validate every N optimizer steps instead of every epoch.
    #[arg(long, value_name = "N", help_heading = "Training")]
    eval_every: Option<u64>,
    /// Share of --train held out for validation when there is no --valid [default: 0.1].
    #[arg(long, help_heading = "Training")]
    valid_fraction: Option<f64>,
    /// Stop after this many validations without improvement.
    #[arg(long, value_name = "N", help_heading = "Training")]
    early_stopping_patience: Option<u32>,
    /// Metric choosing the best checkpoint: loss, accuracy, macro_f1, macro_precision,
    /// macro_recall [default: macro_f1].
    #[arg(long, help_heading = "Training")]
    early_stopping_metric: Option<Metric>,
    /// Smallest change of the metric that counts as improvement [default: 0].
    #[arg(long, help_heading = "Training")]
    early_stopping_min_delta: Option<f64>,
    /// Override every dropout probability of the model.
    #[arg(long, help_heading = "Training")]
    dropout: Option<f64>,
    /// Compute device: auto, cpu, cuda, cuda:N or metal [default: cpu].
    #[arg(long, help_heading = "Training")]
    device: Option<DeviceSpec>,

    /// Keep the embedding tables fixed.
    #[arg(long, help_heading = "Recipes")]
    freeze_embeddings: bool,
    /// Keep the bottom N encoder layers fixed.
    #[arg(long, value_name = "N", help_heading = "Recipes")]
    freeze_layers: Option<usize>,
    /// Layer-wise LR decay: layer LR = lr × F^(depth from the top).
    #[arg(long, value_name = "F", help_heading = "Recipes")]
    layer_lr_decay: Option<f64>,
    /// Shape of the layer-wise decay: exponential or cosine [default: exponential].
    #[arg(long, help_heading = "Recipes")]
    layer_lr_decay_shape: Option<DecayShape>,
    /// Train only the classification head for the first K steps.
    #[arg(long, value_name = "K", help_heading = "Recipes")]
    head_warmup_steps: Option<u64>,
    /// Train only the classification head for the first K epochs.
    #[arg(long, value_name = "K", help_heading = "Recipes")]
    head_warmup_epochs: Option<u32>,
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

impl TrainArgs {
    /// The run configuration: the TOML file (if any) with the flags applied on top.
    fn run_config(&self) -> anyhow::Result<RunConfig> {
        let mut config = match &self.config {
            Some(path) => RunConfig::from_toml_file(path)?,
            None => {
                let mut missing = Vec::new();
                for (flag, present) in [
                    ("--model", self.model.is_some()),
                    ("--train", self.train.is_some()),
                    ("--text-column", self.text_column.is_some()),
                    ("--label-column", self.label_column.is_some()),
                    ("--out", self.out.is_some()),
                ] {
                    if !present {
                        missing.push(flag);
                    }
                }
                if !missing.is_empty() {
                    bail!(
                        "missing {}; give them as flags or in a --config run.toml (see `hone train --help`)",
                        missing.join(", ")
                    );
                }
                RunConfig {
                    model: PathBuf::new(),
                    data: DataConfig {
                        train: PathBuf::new(),
                        valid: None,
                        format: None,
                        text_column: String::new(),
                        text_pair_column: None,
                        label_column: String::new(),
                        valid_fraction: 0.1,
                    },
                    training: TrainingConfig::default(),
                    out: PathBuf::new(),
                }
            }
        };
        set(&mut config.model, self.model.clone());
        set(&mut config.out, self.out.clone());
        let d = &mut config.data;
        set(&mut d.train, self.train.clone());
        if self.valid.is_some() {
            d.valid = self.valid.clone();
        }
        if self.format.is_some() {
            d.format = self.format;
        }
        set(&mut d.text_column, self.text_column.clone());
        if self.text_pair_column.is_some() {
            d.text_pair_column = self.text_pair_column.clone();
        }
        set(&mut d.label_column, self.label_column.clone());
        set(&mut d.valid_fraction, self.valid_fraction);
        let t = &mut config.training;
        set(&mut t.epochs, self.epochs);
        set(&mut t.batch_size, self.batch_size);
        set(&mut t.max_length, self.max_length);
        set(&mut t.lr, self.lr);
        set(&mut t.schedule, self.schedule);
        set(&mut t.warmup_ratio, self.warmup_ratio);
        if self.warmup_steps.is_some() {
            t.warmup_steps = self.warmup_steps;
        }
        set(&mut t.weight_decay, self.weight_decay);
        if let Some(c) = self.clip_norm {
            t.clip_norm = (c > 0.0).then_some(c);
        }
        set(&mut t.grad_accum, self.grad_accum);
        set(&mut t.seed, self.seed);
        if self.eval_every.is_some() {
            t.eval_every = self.eval_every;
        }
        if self.early_stopping_patience.is_some() {
            t.early_stopping_patience = self.early_stopping_patience;
        }
        set(&mut t.early_stopping_metric, self.early_stopping_metric);
        set(
            &mut t.early_stopping_min_delta,
            self.early_stopping_min_delta,
        );
        if self.dropout.is_some() {
            t.dropout = self.dropout;
        }
        set(&mut t.device, self.device);
        t.freeze_embeddings |= self.freeze_embeddings;
        set(&mut t.freeze_layers, self.freeze_layers);
        if self.layer_lr_decay.is_some() {
            t.layer_lr_decay = self.layer_lr_decay;
        }
        set(&mut t.layer_lr_decay_shape, self.layer_lr_decay_shape);
        set(&mut t.head_warmup_steps, self.head_warmup_steps);
        set(&mut t.head_warmup_epochs, self.head_warmup_epochs);
        if !(0.0..1.0).contains(&config.data.valid_fraction) {
            bail!(
                "--valid-fraction must be in [0, 1), got {}",
                config.data.valid_fraction
            );
        }
        Ok(config)
    }
}

/// Raises `cancel` on the first Ctrl-C and exits on the second.
fn install_ctrl_c(cancel: Arc<AtomicBool>, quiet: bool) -> anyhow::Result<()> {
    let presses = AtomicUsize::new(0);
    ctrlc::set_handler(move || {
        if presses.fetch_add(1, Ordering::SeqCst) == 0 {
            cancel.store(true, Ordering::SeqCst);
            if !quiet {
                eprintln!("\nstopping after the current step and keeping the best checkpoint (Ctrl-C again to quit at once)");
            }
        } else {
            std::process::exit(EXIT_INTERRUPTED as i32);
        }
    })
    .context("cannot install the Ctrl-C handler")
}

pub fn run(args: TrainArgs) -> anyhow::Result<ExitCode> {
    let config = args.run_config()?;
    let cancel = Arc::new(AtomicBool::new(false));
    install_ctrl_c(cancel.clone(), args.json)?;
    let mut renderer = TrainRenderer::new(args.json);
    let outcome = fine_tune(&config, &mut |e: TrainEvent| renderer.show(&e), &cancel);
    renderer.finish();
    let outcome = outcome?;
    if !args.keep_checkpoints && outcome.summary.status != RunStatus::Cancelled {
        let _ = std::fs::remove_dir_all(config.out.join("checkpoints"));
    }
    Ok(match outcome.summary.status {
        RunStatus::Cancelled => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::SUCCESS,
    })
}
