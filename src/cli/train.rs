//! `hone train`: flags (or a TOML run file) → `RunConfig` → the engine's fine-tuning job.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use hone_app::types::DecayShape;
use hone_app::types::Metric;
use hone_app::types::RunStatus;
use hone_app::types::Schedule;
use hone_app::types::TrainEvent;
use hone_app::types::{CurriculumOrder, CyclicMode, ModelInit, OptimizerKind};
use hone_app::types::{DeviceSpec, Precision, Task};
use hone_app::{spawn, App, JobHandle};
use hone_app::{AlsoTask, DataConfig, FileData, PreviousTaskConfig, RunConfig, StoredData};

use super::render::TrainRenderer;
use super::EXIT_INTERRUPTED;

#[derive(Args)]
#[command(
    after_help = "Example:\n  hone train --model models-cache/minilm --train train.tsv \\\n    --text-column sentence --label-column label --out runs/sst2 --epochs 1"
)]
pub struct TrainArgs {
    /// Pretrained model: a folder (config.json, weights, tokenizer) or a Hub repo id
    /// downloaded with `hone hub download`.
    #[arg(long, value_name = "DIR|ORG/NAME")]
    model: Option<PathBuf>,
    /// What to train: sequence-classification (a class per text), token-classification
    /// (a tag per word: named entities), multiple-choice (the right option of a question),
    /// question-answering (the answer's span in a passage: SQuAD JSON or JSON lines with
    /// question, context and answers), causal-lm (a decoder on conversations) or text2text
    /// (an encoder–decoder, T5: a target text from a source text, --source-column and
    /// --target-column) [default: sequence-classification].
    #[arg(long, value_name = "TASK")]
    task: Option<Task>,
    /// Training data (CSV, TSV or JSONL; CoNLL or JSONL tokens/tags for token
    /// classification).
    #[arg(long, value_name = "FILE")]
    train: Option<PathBuf>,
    /// Token classification, JSON lines: the field holding each sentence's words.
    #[arg(
        long,
        value_name = "F",
        conflicts_with = "text_column",
        requires = "task"
    )]
    tokens_column: Option<String>,
    /// Token classification, JSON lines: the field holding each sentence's tags.
    #[arg(
        long,
        value_name = "F",
        conflicts_with = "label_column",
        requires = "task"
    )]
    tags_column: Option<String>,
    /// Token classification: put each word's tag on all its sub-tokens, not the first only.
    #[arg(long)]
    label_all_subtokens: bool,
    /// Validation data; without it a seeded, stratified share of --train is held out.
    #[arg(long, value_name = "FILE")]
    valid: Option<PathBuf>,
    #[command(flatten)]
    columns: super::ColumnArgs,
    #[command(flatten)]
    choice: super::ChoiceArgs,
    /// Train on a dataset stored with `hone data import` instead of files.
    #[arg(long, value_name = "NAME", conflicts_with_all = ["train", "valid", "text_column", "text_pair_column", "label_column", "format"])]
    dataset: Option<String>,
    /// The stored split to use (`hone data split`; `given` = the parts the source files set).
    #[arg(long, value_name = "SPLIT", requires = "dataset")]
    split: Option<String>,
    /// Folder receiving the exported model of the best checkpoint [default: the run's folder].
    #[arg(long, value_name = "DIR")]
    out: Option<PathBuf>,
    /// A name for the run (shown by `hone runs list`).
    #[arg(long)]
    name: Option<String>,
    /// Read the run configuration from a TOML file; flags override its values.
    #[arg(long, value_name = "run.toml")]
    config: Option<PathBuf>,
    /// Print one JSON object per event instead of a progress bar.
    #[arg(long)]
    json: bool,
    /// Keep the checkpoints folder inside --out after a successful run.
    #[arg(long)]
    keep_checkpoints: bool,
    /// Submit the run to compute target NAME (`hone target add`) instead of training here;
    /// `hone runs sync --wait` follows it.
    #[arg(long, value_name = "NAME", help_heading = "Compute target")]
    target: Option<String>,

    /// A named set of options applied before the flags: quick, careful or kaggle-mc (the
    /// multiple-choice recipe: head first, frozen embeddings, cosine layer-wise decay, its
    /// learning rate 2e-5 at batch 16 scaled to --batch-size).
    #[arg(long, value_name = "NAME", help_heading = "Training")]
    preset: Option<String>,
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
    /// Learning-rate schedule after warmup: constant, linear, cosine, cosine-restarts,
    /// polynomial, exponential, cyclic or one-cycle [default: linear].
    #[arg(long, help_heading = "Training")]
    schedule: Option<Schedule>,
    /// The lowest learning rate as a share of --lr: where polynomial (0) and exponential
    /// (0.01) decay end, a cyclic schedule's bottom (0.25), one-cycle's start (0.04).
    #[arg(long, value_name = "R", help_heading = "Training")]
    min_lr_ratio: Option<f64>,
    /// Exponential and exp-range cyclic: the factor per step [default: from the run length].
    #[arg(long, value_name = "G", help_heading = "Training")]
    lr_gamma: Option<f64>,
    /// Polynomial decay's power [default: 1].
    #[arg(long, value_name = "P", help_heading = "Training")]
    lr_power: Option<f64>,
    /// Cosine-restarts and cyclic: cycles over the steps after warmup [default: 2].
    #[arg(long, value_name = "N", help_heading = "Training")]
    lr_cycles: Option<u32>,
    /// Cyclic: triangular, triangular2 or exp-range [default: triangular].
    #[arg(long, help_heading = "Training")]
    cyclic_mode: Option<CyclicMode>,
    /// The update rule: adamw, sgd or lamb [default: adamw].
    #[arg(long, help_heading = "Training")]
    optimizer: Option<OptimizerKind>,
    /// SGD's momentum [default: 0.9].
    #[arg(long, help_heading = "Training")]
    momentum: Option<f64>,
    /// SGD with Nesterov momentum.
    #[arg(long, help_heading = "Training")]
    nesterov: bool,
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
    /// Take the training examples in the file's order every epoch instead of shuffling them.
    #[arg(long, help_heading = "Training")]
    no_shuffle: bool,
    /// Validate every N optimizer steps instead of every epoch.
    #[arg(long, value_name = "N", help_heading = "Training")]
    eval_every: Option<u64>,
    /// Also write the resumable checkpoint every N steps (it is written every epoch anyway).
    #[arg(long, value_name = "N", help_heading = "Training")]
    checkpoint_every: Option<u64>,
    /// Also write it every M minutes, so a crash costs at most that; 0 turns this off
    /// [default: 5].
    #[arg(long, value_name = "M", help_heading = "Training")]
    checkpoint_minutes: Option<f64>,
    /// Write no resumable checkpoint (a stopped run cannot be resumed; short runs save time
    /// and disk).
    #[arg(long, help_heading = "Training")]
    no_resume_checkpoint: bool,
    /// Share held out for validation when there is no --valid file or --split [default: 0.1].
    #[arg(long, help_heading = "Training")]
    valid_fraction: Option<f64>,
    /// Stop after this many validations without improvement.
    #[arg(long, value_name = "N", help_heading = "Training")]
    early_stopping_patience: Option<u32>,
    /// Metric choosing the best checkpoint: loss, accuracy, macro_f1, macro_precision,
    /// macro_recall, map_at_3 (multiple choice), exact_match (question answering,
    /// text-to-text) or rouge_l (text-to-text) [default: macro_f1; language models: loss].
    #[arg(long, help_heading = "Training")]
    early_stopping_metric: Option<Metric>,
    /// Smallest change of the metric that counts as improvement [default: 0].
    #[arg(long, help_heading = "Training")]
    early_stopping_min_delta: Option<f64>,
    /// Override every dropout probability of the model.
    #[arg(long, help_heading = "Training")]
    dropout: Option<f64>,
    /// Label smoothing ε: targets 1 − ε on the label, ε spread over every class (0.1 is
    /// usual; not for multiple choice or question answering) [default: 0].
    #[arg(long, value_name = "EPS", help_heading = "Training")]
    label_smoothing: Option<f64>,
    /// Compute device: auto, cpu, cuda, cuda:N or metal [default: cpu].
    #[arg(long, help_heading = "Training")]
    device: Option<DeviceSpec>,
    /// Matrix products in fp32, bf16 or fp16 (mixed precision: f32 weights and optimizer
    /// state; fp16 scales the loss dynamically; for GPUs) [default: fp32].
    #[arg(long, help_heading = "Training")]
    precision: Option<Precision>,
    /// fp16's initial loss scale, halved on each overflowing (skipped) step [default: 65536].
    #[arg(long, value_name = "S", help_heading = "Training")]
    loss_scale: Option<f64>,

    /// Question answering: passage tokens a window shares with the one before when a
    /// passage is longer than --max-length [default: 32].
    #[arg(long, value_name = "N", help_heading = "Question answering")]
    doc_stride: Option<usize>,
    /// Question answering: the longest answer, in tokens [default: 30].
    #[arg(long, value_name = "N", help_heading = "Question answering")]
    max_answer_length: Option<usize>,

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
    /// Gradual unfreezing: the head first, then one more layer from the top every N steps
    /// (`every=200`) or epochs (`every=1epoch`).
    #[arg(long, value_name = "every=N[epoch]", value_parser = parse_unfreeze, help_heading = "Recipes")]
    gradual_unfreeze: Option<Unfreeze>,
    /// Where the weights start: pretrained (fine-tuning) or random (training from scratch,
    /// from config.json alone) [default: pretrained].
    #[arg(long, help_heading = "Recipes")]
    init: Option<ModelInit>,
    /// Knowledge distillation: learn from this teacher's softened probabilities too (a
    /// finished run's id or a model folder with the same classes; any family).
    #[arg(long, value_name = "RUN|DIR", help_heading = "Recipes")]
    teacher: Option<String>,
    /// Distillation: the teacher's share of the loss [default: 0.5].
    #[arg(long, value_name = "A", help_heading = "Recipes")]
    distill_alpha: Option<f64>,
    /// Distillation: the softmax temperature [default: 2].
    #[arg(long, value_name = "T", help_heading = "Recipes")]
    distill_temperature: Option<f64>,
    /// Curriculum: order the first epoch(s) from easy to hard by length, or by loss (the
    /// teacher's loss on each example; needs --teacher) [default: off].
    #[arg(long, help_heading = "Recipes")]
    curriculum: Option<CurriculumOrder>,
    /// Curriculum: epochs that go from easy to hard [default: 1].
    #[arg(long, value_name = "N", help_heading = "Recipes")]
    curriculum_epochs: Option<u32>,
    /// Elastic weight consolidation: hold on to the task this model learnt before (a finished
    /// run's id, or a fine-tuned classifier's folder with --ewc-data).
    #[arg(long, value_name = "RUN|DIR", help_heading = "Recipes")]
    ewc_from: Option<String>,
    /// EWC: the previous task's data (columns guessed from the header) when --ewc-from is a
    /// folder.
    #[arg(
        long,
        value_name = "FILE",
        requires = "ewc_from",
        help_heading = "Recipes"
    )]
    ewc_data: Option<PathBuf>,
    /// EWC: how strongly the previous task's weights are held [default: 10000].
    #[arg(long, value_name = "L", help_heading = "Recipes")]
    ewc_lambda: Option<f64>,
    /// EWC: examples of the previous task the Fisher information is estimated on
    /// [default: 200].
    #[arg(long, value_name = "N", help_heading = "Recipes")]
    ewc_samples: Option<usize>,
    /// Multi-task learning: also train this task on the same encoder with its own head, as
    /// `[NAME=]TASK:FILE` (columns guessed from the header; token classification reads CoNLL
    /// or tokens/tags JSON lines) or `[NAME=]TASK:dataset:NAME` (a stored dataset).
    /// Repeatable; other columns go in `[[also]]` tables of a --config file.
    #[arg(long, value_name = "[NAME=]TASK:SOURCE", help_heading = "Recipes")]
    also: Vec<String>,
    /// Multi-task learning: the run's own task's name [default: its file's stem or dataset].
    #[arg(long, value_name = "NAME", help_heading = "Recipes")]
    task_name: Option<String>,
    /// Multi-task learning: sampling temperature; 1 draws each step's task in proportion to
    /// the tasks' sizes, higher values give small tasks more steps [default: 1].
    #[arg(long, value_name = "T", help_heading = "Recipes")]
    task_temperature: Option<f64>,
    /// What trains: full (every weight), lora (low-rank adapters on --lora-targets and the
    /// head, the rest frozen; --out receives a PEFT adapter folder), adapter (bottleneck
    /// adapters in every layer and the head) or prefix (decoders: --prefix-tokens learned
    /// keys and values in every attention layer, saved as PEFT's prefix tuning)
    /// [default: full].
    #[arg(long, value_name = "METHOD", help_heading = "LoRA")]
    peft: Option<hone_app::types::FineTuneMethod>,
    /// LoRA rank r [default: 8].
    #[arg(long, value_name = "R", help_heading = "LoRA")]
    lora_r: Option<usize>,
    /// LoRA alpha: adapters scaled by alpha / r [default: 16].
    #[arg(long, value_name = "A", help_heading = "LoRA")]
    lora_alpha: Option<f64>,
    /// Dropout on the adapters' input [default: 0.1].
    #[arg(long, value_name = "P", help_heading = "LoRA")]
    lora_dropout: Option<f64>,
    /// Linear layers that get adapters, comma-separated module names [default: the family's:
    /// query,value for BERT and RoBERTa, q_lin,v_lin for DistilBERT].
    #[arg(long, value_name = "M1,M2", help_heading = "LoRA")]
    lora_targets: Option<String>,
    /// Rank-stabilised LoRA: scale by alpha / √r.
    #[arg(long, help_heading = "LoRA")]
    lora_rslora: bool,
    /// Modules trained in full besides the head, comma-separated (LoRA and adapters).
    #[arg(long, value_name = "M1,M2", help_heading = "LoRA")]
    lora_modules_to_save: Option<String>,
    /// Bottleneck adapters (--peft adapter): their inner width [default: 64].
    #[arg(long, value_name = "N", help_heading = "LoRA")]
    adapter_size: Option<usize>,
    /// Bottleneck adapters: houlsby (after attention and feed-forward) or pfeiffer (after the
    /// feed-forward only) [default: houlsby].
    #[arg(long, value_name = "P", help_heading = "LoRA")]
    adapter_placement: Option<hone_app::types::AdapterPlacement>,
    /// Bottleneck adapters: relu, gelu, silu or tanh [default: relu].
    #[arg(long, value_name = "F", help_heading = "LoRA")]
    adapter_activation: Option<String>,
    /// Prefix tuning (--peft prefix): the virtual tokens every attention layer starts with
    /// [default: 20].
    #[arg(long, value_name = "N", help_heading = "LoRA")]
    prefix_tokens: Option<usize>,
    /// Prefix tuning: learn the rows through a two-layer MLP of N hidden units (PEFT's
    /// prefix_projection); 0 learns them directly [default: 0].
    #[arg(long, value_name = "N", help_heading = "LoRA")]
    prefix_projection: Option<usize>,
    /// Causal LM: how conversations are written: auto (the model's chat template, else the
    /// Alpaca prompt), none (the Alpaca prompt) or a Jinja template file [default: auto].
    #[arg(long, value_name = "auto|none|FILE", help_heading = "Causal LM")]
    chat_template: Option<String>,
    /// Text-to-text: written before every source text (T5's task prefix, e.g.
    /// "summarize: ").
    #[arg(long, value_name = "TEXT", help_heading = "Text to text")]
    source_prefix: Option<String>,
    /// Text-to-text: the longest target in tokens, its end token included [default: 128].
    #[arg(long, value_name = "N", help_heading = "Text to text")]
    max_target_length: Option<usize>,
    /// Causal LM: learn the assistant's tokens only, or every token [default: assistant].
    #[arg(long, value_name = "assistant|all", help_heading = "Causal LM")]
    loss_on: Option<hone_app::types::LossOn>,
    /// Causal LM: pack conversations into bins of --max-length tokens, a step taking
    /// --batch-size bins instead of --batch-size conversations.
    #[arg(long, help_heading = "Causal LM")]
    packing: bool,
    /// Causal LM: a prompt the model answers (greedily) at each evaluation, to watch what it
    /// says as it learns; repeat for several.
    #[arg(long, value_name = "TEXT", help_heading = "Causal LM")]
    sample_prompt: Vec<String>,
    /// Causal LM: the longest sample answer, in tokens [default: 48].
    #[arg(long, value_name = "N", help_heading = "Causal LM")]
    sample_tokens: Option<usize>,
}

/// Parses `--also [NAME=]TASK:SOURCE` into a task trained beside the run's own.
fn parse_also(text: &str, quiet: bool) -> anyhow::Result<AlsoTask> {
    let usage = || {
        anyhow::anyhow!(
            "--also '{text}': use [NAME=]TASK:FILE or [NAME=]TASK:dataset:NAME, e.g. \
             --also ner=token-classification:conll.txt"
        )
    };
    let (name, rest) = match text.split_once('=') {
        Some((name, rest)) if !name.contains(':') => (Some(name.to_string()), rest),
        _ => (None, text),
    };
    let (task, source) = rest.split_once(':').ok_or_else(usage)?;
    let task: Task = task
        .parse()
        .map_err(|e: String| anyhow::anyhow!("--also '{text}': {e}"))?;
    if source.is_empty() {
        return Err(usage());
    }
    if let Some(dataset) = source.strip_prefix("dataset:") {
        return Ok(AlsoTask {
            name,
            task,
            data: DataConfig::Stored(StoredData {
                dataset: dataset.to_string(),
                split: None,
                valid_fraction: 0.1,
            }),
        });
    }
    let file = PathBuf::from(source);
    let (text_column, text_pair_column, label_column, format) = match task {
        Task::MultipleChoice => bail!(
            "--also '{text}': a multiple-choice task needs its option columns; describe it in an \
             [[also]] table of a --config file"
        ),
        Task::CausalLm | Task::Text2Text => {
            bail!(
                "--also '{text}': a language model is trained on its own, not as one task of \
                 several"
            )
        }
        Task::TokenClassification => {
            // JSON lines with tokens/tags arrays, else CoNLL (eng.train has no extension).
            let json = file
                .extension()
                .is_some_and(|e| e.eq_ignore_ascii_case("jsonl") || e.eq_ignore_ascii_case("json"));
            let format = (!json).then_some(hone_app::types::FileFormat::Conll);
            ("tokens".to_string(), None, "tags".to_string(), format)
        }
        Task::QuestionAnswering => ("question".to_string(), None, "answers".to_string(), None),
        Task::SequenceClassification => {
            if !file.exists() {
                bail!("--also: cannot open {}: no such file", file.display());
            }
            let spec = super::guess_columns(&file, &Default::default(), quiet)?;
            let (Some(t), Some(l)) = (spec.text, spec.label) else {
                bail!(
                    "--also: {}: cannot tell its text and label columns from the header; name \
                     them in an [[also]] table of a --config file",
                    file.display()
                );
            };
            (t, spec.text_pair, l, spec.format)
        }
    };
    Ok(AlsoTask {
        name,
        task,
        data: DataConfig::Files(FileData {
            train: file,
            valid: None,
            format,
            text_column,
            text_pair_column,
            label_column,
            context_column: None,
            choice_columns: Vec::new(),
            shuffle_choices: None,
            valid_fraction: 0.1,
        }),
    })
}

/// How often gradual unfreezing makes one more layer trainable.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Unfreeze {
    Steps(u64),
    Epochs(u32),
}

/// Parses `every=N`, `every=Nsteps`, `every=Nepoch(s)` (the `every=` is optional).
fn parse_unfreeze(text: &str) -> Result<Unfreeze, String> {
    let value = text.trim();
    let value = value.strip_prefix("every=").unwrap_or(value);
    let bad = || format!("'{text}': use every=N (steps) or every=Nepoch, e.g. every=1epoch");
    let (number, unit) = value
        .find(|c: char| !c.is_ascii_digit())
        .map(|i| value.split_at(i))
        .unwrap_or((value, ""));
    let n: u64 = number.parse().map_err(|_| bad())?;
    if n == 0 {
        return Err(format!(
            "'{text}': unfreezing needs at least 1 step or epoch per layer"
        ));
    }
    match unit.trim() {
        "" | "step" | "steps" => Ok(Unfreeze::Steps(n)),
        "epoch" | "epochs" => Ok(Unfreeze::Epochs(u32::try_from(n).map_err(|_| bad())?)),
        _ => Err(bad()),
    }
}

fn set<T>(target: &mut T, value: Option<T>) {
    if let Some(v) = value {
        *target = v;
    }
}

impl TrainArgs {
    /// The previous task of --ewc-from, its --ewc-data file's columns guessed from its header.
    fn previous_task(&self) -> anyhow::Result<Option<PreviousTaskConfig>> {
        let Some(from) = &self.ewc_from else {
            return Ok(None);
        };
        let data = match &self.ewc_data {
            Some(file) => {
                let spec = super::guess_columns(file, &Default::default(), false)?;
                let (Some(text), Some(label)) = (spec.text, spec.label) else {
                    bail!(
                        "{}: cannot tell its text and label columns from the header; name them \
                         text and label",
                        file.display()
                    );
                };
                Some(DataConfig::Files(FileData {
                    train: file.clone(),
                    valid: None,
                    format: spec.format,
                    text_column: text,
                    text_pair_column: spec.text_pair,
                    label_column: label,
                    context_column: None,
                    choice_columns: Vec::new(),
                    shuffle_choices: None,
                    valid_fraction: 0.0,
                }))
            }
            None => None,
        };
        Ok(Some(PreviousTaskConfig {
            from: from.clone(),
            data,
        }))
    }

    /// The data source from the flags, over what a TOML file said.
    fn data_config(&self, from_file: Option<DataConfig>, task: Task) -> anyhow::Result<DataConfig> {
        if let (Some(_), Task::MultipleChoice) = (&self.dataset, task) {
            bail!("multiple choice trains from files: --train with --choice-columns (stored datasets hold texts or tagged sentences)");
        }
        if let (Some(_), Task::QuestionAnswering) = (&self.dataset, task) {
            bail!("question answering trains from files: --train with SQuAD JSON or JSON lines (stored datasets hold texts or tagged sentences)");
        }
        if let (Some(_), Task::CausalLm) = (&self.dataset, task) {
            bail!("a causal LM trains from files: --train with JSON or JSON lines of messages, instruction/input/output or text");
        }
        if let Some(dataset) = &self.dataset {
            return Ok(DataConfig::Stored(StoredData {
                dataset: dataset.clone(),
                split: self.split.clone(),
                valid_fraction: self.valid_fraction.unwrap_or(0.1),
            }));
        }
        let base = match from_file {
            Some(DataConfig::Files(f)) => Some(f),
            Some(DataConfig::Stored(mut s)) if self.train.is_none() => {
                if let Some(v) = self.valid_fraction {
                    s.valid_fraction = v;
                }
                return Ok(DataConfig::Stored(s));
            }
            Some(DataConfig::Stored(_)) | None => None,
        };
        let base = base.as_ref();
        let choices = task == Task::MultipleChoice;
        if self.choice.any() && !choices {
            bail!("--question-column, --context-column, --choice-columns and --shuffle-choices are for --task multiple-choice");
        }
        let train = self.train.clone().or(base.map(|b| b.train.clone()));
        let format = self.columns.format.or(base.and_then(|b| b.format));
        let tokens = task == Task::TokenClassification;
        // SQuAD files name their fields: question, context, answers.
        let answers = task == Task::QuestionAnswering;
        // Conversation files name their own fields (messages, instruction/output, text).
        let conversations = task == Task::CausalLm;
        let mut text = self
            .choice
            .question_column
            .clone()
            .or(self.columns.text_column.clone())
            .or(self.tokens_column.clone())
            .or(base.map(|b| b.text_column.clone()))
            .or(tokens.then(|| "tokens".to_string()))
            .or(answers.then(|| "question".to_string()))
            .or(conversations.then(|| "messages".to_string()));
        let mut text_pair = self
            .columns
            .text_pair_column
            .clone()
            .or(base.and_then(|b| b.text_pair_column.clone()));
        let mut label = self
            .columns
            .label_column
            .clone()
            .or(self.tags_column.clone())
            .or(base.map(|b| b.label_column.clone()))
            .or(tokens.then(|| "tags".to_string()))
            .or(answers.then(|| "answers".to_string()))
            .or(conversations.then(|| "output".to_string()));
        let choice_columns = match self.choice.choices() {
            given if !given.is_empty() => given,
            _ => base.map(|b| b.choice_columns.clone()).unwrap_or_default(),
        };
        if let (Some(file), None, false) = (&train, &text, choices) {
            if !file.exists() {
                bail!("cannot open {}: no such file", file.display());
            }
            let given = hone_app::types::SourceSpec {
                format,
                text_pair: text_pair.clone(),
                label: label.clone(),
                ..Default::default()
            };
            // An unreadable file is reported by the run itself, with its line.
            if let Ok(spec) = super::guess_columns(file, &given, self.json) {
                (text, text_pair, label) = (spec.text, spec.text_pair, spec.label);
            }
        }
        let text_flag = if choices {
            "--question-column"
        } else {
            "--text-column"
        };
        let missing: Vec<&str> = [
            ("--train (or --dataset)", train.is_none()),
            (text_flag, text.is_none()),
            ("--label-column", label.is_none()),
            ("--choice-columns", choices && choice_columns.is_empty()),
        ]
        .into_iter()
        .filter_map(|(flag, absent)| absent.then_some(flag))
        .collect();
        if !missing.is_empty() {
            bail!(
                "missing {}; give them as flags or in a --config run.toml (see `hone train --help`)",
                missing.join(", ")
            );
        }
        Ok(DataConfig::Files(FileData {
            train: train.unwrap_or_default(),
            valid: self.valid.clone().or(base.and_then(|b| b.valid.clone())),
            format,
            text_column: text.unwrap_or_default(),
            text_pair_column: text_pair,
            label_column: label.unwrap_or_default(),
            context_column: self
                .choice
                .context_column
                .clone()
                .or(base.and_then(|b| b.context_column.clone())),
            choice_columns,
            shuffle_choices: self
                .choice
                .shuffle_choices
                .or(base.and_then(|b| b.shuffle_choices)),
            valid_fraction: self
                .valid_fraction
                .or(base.map(|b| b.valid_fraction))
                .unwrap_or(0.1),
        }))
    }

    /// The run configuration: the TOML file (if any) with the flags applied on top.
    pub(crate) fn run_config(&self) -> anyhow::Result<RunConfig> {
        let preset = self
            .preset
            .as_deref()
            .map(hone_app::types::preset)
            .transpose()?;
        let file = match &self.config {
            Some(path) => Some(RunConfig::from_toml_file(path)?),
            None => None,
        };
        let model = self
            .model
            .clone()
            .or(file.as_ref().map(|f| f.model.clone()))
            .ok_or_else(|| {
                anyhow::anyhow!("missing --model; give it as a flag or in a --config run.toml")
            })?;
        let model =
            hone_app::models::resolve_model(&model, &hone_app::types::HubClient::from_env())?;
        let task = self
            .task
            .or(file.as_ref().map(|f| f.task))
            .unwrap_or_default();
        let mut training = file
            .as_ref()
            .map(|f| f.training.clone())
            .unwrap_or_default();
        let mut scaling = None;
        if let Some(preset) = &preset {
            training = preset.apply(&training)?;
            scaling = preset.lr_scaling;
        }
        let mut config = RunConfig {
            task,
            model,
            data: self.data_config(file.as_ref().map(|f| f.data.clone()), task)?,
            training,
            teacher: self
                .teacher
                .clone()
                .or(file.as_ref().and_then(|f| f.teacher.clone())),
            ewc: self
                .previous_task()?
                .or(file.as_ref().and_then(|f| f.ewc.clone())),
            name: self
                .task_name
                .clone()
                .or(file.as_ref().and_then(|f| f.name.clone())),
            also: if self.also.is_empty() {
                file.as_ref().map(|f| f.also.clone()).unwrap_or_default()
            } else {
                self.also
                    .iter()
                    .map(|a| parse_also(a, self.json))
                    .collect::<anyhow::Result<_>>()?
            },
            out: self.out.clone().or(file.and_then(|f| f.out)),
            ensemble: None,
        };
        let t = &mut config.training;
        set(&mut t.epochs, self.epochs);
        set(&mut t.batch_size, self.batch_size);
        set(&mut t.max_length, self.max_length);
        set(&mut t.lr, self.lr);
        set(&mut t.schedule, self.schedule);
        if self.min_lr_ratio.is_some() {
            t.min_lr_ratio = self.min_lr_ratio;
        }
        if self.lr_gamma.is_some() {
            t.lr_gamma = self.lr_gamma;
        }
        set(&mut t.lr_power, self.lr_power);
        set(&mut t.lr_cycles, self.lr_cycles);
        set(&mut t.cyclic_mode, self.cyclic_mode);
        set(&mut t.optimizer, self.optimizer);
        set(&mut t.momentum, self.momentum);
        t.nesterov |= self.nesterov;
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
        if self.no_shuffle {
            t.shuffle = false;
        }
        if self.eval_every.is_some() {
            t.eval_every = self.eval_every;
        }
        if self.checkpoint_every.is_some() {
            t.checkpoint_every = self.checkpoint_every;
        }
        if let Some(m) = self.checkpoint_minutes {
            t.checkpoint_minutes = (m != 0.0).then_some(m);
        }
        if self.no_resume_checkpoint {
            t.resumable = false;
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
        set(&mut t.label_smoothing, self.label_smoothing);
        set(&mut t.device, self.device);
        set(&mut t.precision, self.precision);
        set(&mut t.loss_scale, self.loss_scale);
        t.freeze_embeddings |= self.freeze_embeddings;
        set(&mut t.freeze_layers, self.freeze_layers);
        if self.layer_lr_decay.is_some() {
            t.layer_lr_decay = self.layer_lr_decay;
        }
        set(&mut t.layer_lr_decay_shape, self.layer_lr_decay_shape);
        set(&mut t.head_warmup_steps, self.head_warmup_steps);
        set(&mut t.head_warmup_epochs, self.head_warmup_epochs);
        match self.gradual_unfreeze {
            Some(Unfreeze::Steps(n)) => {
                t.unfreeze_every_steps = Some(n);
                t.unfreeze_every_epochs = None;
            }
            Some(Unfreeze::Epochs(n)) => {
                t.unfreeze_every_epochs = Some(n);
                t.unfreeze_every_steps = None;
            }
            None => {}
        }
        set(&mut t.init, self.init);
        set(&mut t.distill_alpha, self.distill_alpha);
        set(&mut t.distill_temperature, self.distill_temperature);
        set(&mut t.curriculum, self.curriculum);
        set(&mut t.curriculum_epochs, self.curriculum_epochs);
        set(&mut t.ewc_lambda, self.ewc_lambda);
        set(&mut t.ewc_samples, self.ewc_samples);
        set(&mut t.task_temperature, self.task_temperature);
        set(&mut t.peft, self.peft);
        set(&mut t.lora_r, self.lora_r);
        set(&mut t.lora_alpha, self.lora_alpha);
        set(&mut t.lora_dropout, self.lora_dropout);
        set(&mut t.lora_targets, self.lora_targets.clone());
        t.lora_rslora |= self.lora_rslora;
        set(
            &mut t.lora_modules_to_save,
            self.lora_modules_to_save.clone(),
        );
        set(&mut t.adapter_size, self.adapter_size);
        set(&mut t.prefix_tokens, self.prefix_tokens);
        set(&mut t.prefix_projection, self.prefix_projection);
        set(&mut t.adapter_placement, self.adapter_placement);
        set(&mut t.adapter_activation, self.adapter_activation.clone());
        set(&mut t.chat_template, self.chat_template.clone());
        set(&mut t.source_prefix, self.source_prefix.clone());
        set(&mut t.max_target_length, self.max_target_length);
        set(&mut t.loss_on, self.loss_on);
        set(&mut t.sample_tokens, self.sample_tokens);
        t.packing |= self.packing;
        if !self.sample_prompt.is_empty() {
            t.sample_prompts = self.sample_prompt.join("\n");
        }
        t.label_all_subtokens |= self.label_all_subtokens;
        if let (Some(scaling), None) = (scaling, self.lr) {
            // The preset's rate follows the batch size the flags settled on.
            t.lr = scaling.lr(t.batch_size);
        }
        set(&mut t.doc_stride, self.doc_stride);
        set(&mut t.max_answer_length, self.max_answer_length);
        if !(0.0..1.0).contains(&config.data.valid_fraction()) {
            bail!(
                "--valid-fraction must be in [0, 1), got {}",
                config.data.valid_fraction()
            );
        }
        Ok(config)
    }
}

impl TrainArgs {
    /// True with `--json`.
    pub(crate) fn json(&self) -> bool {
        self.json
    }

    /// The compute target asked for, if any.
    pub(crate) fn target(&self) -> Option<&str> {
        self.target.as_deref()
    }
}

pub fn run(args: TrainArgs, db: &Path) -> anyhow::Result<ExitCode> {
    let config = args.run_config()?;
    let mut app = App::open(db)?;
    let run_id = app.create_run(&config, args.name.clone())?;
    drop(app);
    if let Some(target) = &args.target {
        if config.out.is_some() {
            anyhow::bail!(
                "a run on a compute target exports into its run folder; leave out --out and copy \
                 it afterwards (hone export --run ID --out DIR)"
            );
        }
        let name = args.name.clone().unwrap_or_else(|| format!("run{run_id}"));
        super::target::submit(db, &[run_id], target, &name, args.json)?;
        return Ok(ExitCode::SUCCESS);
    }
    let job = spawn(db.to_path_buf(), run_id, false)?;
    follow(job, db, args.json, args.keep_checkpoints)
}

/// Renders a running job's events until it ends; Ctrl-C cancels it. The exit status says how
/// the run ended.
pub fn follow(
    job: JobHandle,
    db: &Path,
    json: bool,
    keep_checkpoints: bool,
) -> anyhow::Result<ExitCode> {
    follow_watching(job, db, json, keep_checkpoints, &mut |_| false)
}

/// [`follow`], with `stop` seeing every event: when it returns true the run is asked to stop
/// after its current step (as Ctrl-C asks).
pub fn follow_watching(
    job: JobHandle,
    db: &Path,
    json: bool,
    keep_checkpoints: bool,
    stop: &mut dyn FnMut(&TrainEvent) -> bool,
) -> anyhow::Result<ExitCode> {
    super::install_ctrl_c(
        job.cancel_flag(),
        (!json).then_some(
            "stopping after the current step and keeping the best checkpoint (Ctrl-C again to quit at once)",
        ),
    )?;
    let run_id = job.run_id;
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "run", "run_id": run_id, "db": db})
        );
    } else {
        eprintln!("run {run_id} (see `hone runs show {run_id}`)");
    }
    let mut renderer = TrainRenderer::new(json);
    for event in job.events() {
        renderer.show(&event);
        if stop(&event) {
            job.cancel();
        }
    }
    renderer.finish();
    let outcome = job.join()?;
    if outcome.status == RunStatus::Completed && !keep_checkpoints {
        App::open(db)?.clean_checkpoints(run_id)?;
    }
    Ok(match outcome.status {
        RunStatus::Cancelled => ExitCode::from(EXIT_INTERRUPTED),
        _ => ExitCode::SUCCESS,
    })
}
