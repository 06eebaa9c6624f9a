//! Command-line parsing and dispatch. Each subcommand lives in its own module; errors are
//! printed once, here, with their causes.

mod behavior;
mod bench;
mod data;
mod ensemble;
mod eval;
mod export;
mod generate;
mod hints;
mod hub;
mod lr_find;
mod models;
mod predict;
mod render;
mod runs;
mod simulate;
mod suggest;
mod sweep;
mod target;
mod train;

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use hone_app::predict::FineTunedModel;
use hone_app::types::DeviceSpec;

/// Fine-tune transformer models on your own machine.
#[derive(Parser)]
#[command(name = "hone", version, about, propagate_version = true)]
struct Cli {
    /// The database of datasets and runs [default: $HONE_DB, else hone/hone.db in the
    /// platform's data folder].
    #[arg(long, global = true, value_name = "PATH")]
    db: Option<PathBuf>,
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Fine-tune a pretrained encoder as a text classifier and export the best checkpoint.
    Train(Box<train::TrainArgs>),
    /// Find a learning rate: a short run whose rate rises exponentially until the loss blows
    /// up (the LR range test), with the same flags as `train`.
    LrFind(Box<lr_find::LrFindArgs>),
    /// Score a fine-tuned classifier on a labeled file.
    Eval(eval::EvalArgs),
    /// Classify texts with a fine-tuned classifier.
    Predict(predict::PredictArgs),
    /// Behavioral tests of a text classifier: a suite of minimum-functionality, invariance
    /// and directional tests, a robustness score, accuracy per slice.
    Test(Box<behavior::TestArgs>),
    /// Write text with a causal LM (a fine-tuned decoder, a base one, or a LoRA adapter),
    /// streamed; --chat answers each prompt as a chat.
    Generate(Box<generate::GenerateArgs>),
    /// Copy a run's model to a folder, or merge a LoRA adapter into a full model (--merge).
    Export(export::ExportArgs),
    /// Time training steps and forward passes on a fixed batch.
    Bench(bench::BenchArgs),
    /// The devices this build can train on: the CPU, and each GPU with its memory.
    Devices {
        /// Print one JSON object.
        #[arg(long)]
        json: bool,
    },
    /// Combine finished runs into an ensemble that predicts and evaluates as one model.
    #[command(subcommand)]
    Ensemble(ensemble::EnsembleCommand),
    /// Import, inspect, split and export datasets kept in Hone's database.
    #[command(subcommand)]
    Data(data::DataCommand),
    /// List, inspect, compare, resume and delete runs.
    #[command(subcommand)]
    Runs(runs::RunsCommand),
    /// Hyperparameter sweeps: one run per combination of settings, ranked.
    #[command(subcommand)]
    Sweep(sweep::SweepCommand),
    /// Compute targets: Slurm clusters (here or over SSH) that runs and sweeps are submitted
    /// to with --target.
    #[command(subcommand)]
    Target(target::TargetCommand),
    /// Train the run staged in a folder (what a compute target's nodes run).
    #[command(hide = true)]
    RemoteExec {
        /// The run's folder on the cluster.
        dir: PathBuf,
    },
    /// Search, inspect and download models from the Hugging Face Hub.
    #[command(subcommand)]
    Hub(hub::HubCommand),
    /// Models available here: the Hub cache and imported folders.
    #[command(subcommand)]
    Models(models::ModelsCommand),
}

/// Which columns of a data file hold what (`hone train` and `hone data import`).
#[derive(Args, Clone, Default)]
pub struct ColumnArgs {
    /// File format when the extension does not tell: csv, tsv, jsonl, json, parquet, conll or
    /// lines.
    #[arg(long)]
    format: Option<hone_app::types::FileFormat>,
    /// Column holding the text (text-to-text: the source). Without it, the text, pair and
    /// label columns of a CSV, TSV or JSON file are guessed from their names (text, sentence,
    /// premise, … / sentence2, hypothesis, … / label, class, …).
    #[arg(long, value_name = "C", alias = "source-column")]
    text_column: Option<String>,
    /// Column holding the second text of sentence pairs.
    #[arg(long, value_name = "C2")]
    text_pair_column: Option<String>,
    /// Column holding the label (rows where it is empty are imported unlabeled); for
    /// multiple choice the answer: a letter (A, B, …), a 0-based index or the option's text;
    /// for text-to-text the target text (--target-column).
    #[arg(long, value_name = "L", aliases = ["answer-column", "target-column"])]
    label_column: Option<String>,
}

/// The columns of multiple-choice questions (`--task multiple-choice`).
#[derive(Args, Default)]
pub struct ChoiceArgs {
    /// The column with the question (or prompt).
    #[arg(long, value_name = "C", help_heading = "Multiple choice")]
    question_column: Option<String>,
    /// The column with a passage the question is about; it goes before the question.
    #[arg(long, value_name = "C", help_heading = "Multiple choice")]
    context_column: Option<String>,
    /// The columns with the options, in order.
    #[arg(
        long,
        value_name = "A,B,C,D",
        value_delimiter = ',',
        help_heading = "Multiple choice"
    )]
    choice_columns: Vec<String>,
    /// One column with the options as a JSON list (["a", "b", "c"]).
    #[arg(
        long,
        value_name = "C",
        conflicts_with = "choice_columns",
        help_heading = "Multiple choice"
    )]
    choices_column: Option<String>,
    /// Shuffle each question's options with this seed (for files that always put the right
    /// answer in the same column, as SciQ's correct_answer).
    #[arg(long, value_name = "SEED", help_heading = "Multiple choice")]
    shuffle_choices: Option<u64>,
}

impl ChoiceArgs {
    /// The option columns given, if any.
    pub fn choices(&self) -> Vec<String> {
        match &self.choices_column {
            Some(c) => vec![c.clone()],
            None => self.choice_columns.clone(),
        }
    }

    /// True when any multiple-choice column was named.
    pub fn any(&self) -> bool {
        self.question_column.is_some()
            || self.context_column.is_some()
            || !self.choices().is_empty()
            || self.shuffle_choices.is_some()
    }
}

/// `given` with the text, pair and label columns guessed from `file`'s header when no text
/// column is named (as the app's import preview does); says on stderr which were guessed
/// unless `quiet`.
pub fn guess_columns(
    file: &std::path::Path,
    given: &hone_app::types::SourceSpec,
    quiet: bool,
) -> anyhow::Result<hone_app::types::SourceSpec> {
    let spec = hone_app::preview::guess_columns(file, given)?;
    if given.text.is_none() && !quiet {
        if let Some(text) = &spec.text {
            let mut guessed = vec![format!("text '{text}'")];
            guessed.extend(spec.text_pair.as_ref().map(|c| format!("pair '{c}'")));
            guessed.extend(spec.label.as_ref().map(|c| format!("label '{c}'")));
            eprintln!(
                "columns: {} (guessed from the header; name others with --text-column, \
                 --text-pair-column, --label-column)",
                guessed.join(", ")
            );
        }
    }
    Ok(spec)
}

/// How question-answering models read passages (`hone eval`, `hone predict`).
#[derive(Args)]
pub struct AnswerArgs {
    /// Question answering: passage tokens a window shares with the one before when a
    /// passage is longer than the maximum length.
    #[arg(long, value_name = "N", default_value_t = 128)]
    doc_stride: usize,
    /// Question answering: the longest answer, in tokens.
    #[arg(long, value_name = "N", default_value_t = 30)]
    max_answer_length: usize,
}

impl AnswerArgs {
    /// The settings the app layer takes.
    pub fn settings(&self) -> hone_app::predict::AnswerSettings {
        hone_app::predict::AnswerSettings {
            doc_stride: self.doc_stride,
            max_answer_length: self.max_answer_length,
        }
    }
}

/// Options of the commands that run a fine-tuned model.
#[derive(Args)]
pub struct ModelArgs {
    /// Fine-tuned model folder (as `hone train --out` writes it).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// Longest input in tokens [default: the model's maximum].
    #[arg(long)]
    max_length: Option<usize>,
    /// Texts per forward pass.
    #[arg(long, default_value_t = 32)]
    batch_size: usize,
    /// Compute device: auto, cpu, cuda, cuda:N or metal.
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Run the linear layers in int8 (dynamic quantization on the CPU: weights per output
    /// feature, activations per token) to see what quantization does to the scores; on AVX2
    /// CPUs without VNNI it runs at about float32's speed.
    #[arg(long)]
    int8: bool,
}

impl ModelArgs {
    /// Opens the device and loads the model with the head its config names.
    pub fn load(&self) -> anyhow::Result<FineTunedModel> {
        self.load_from(&self.model)
    }

    /// [`ModelArgs::load`] from another folder with these settings (an adapter on --model).
    pub fn load_from(&self, dir: &std::path::Path) -> anyhow::Result<FineTunedModel> {
        let mut model = FineTunedModel::load(dir, self.device, self.max_length)?;
        if self.int8 {
            model.use_int8()?;
        }
        Ok(model)
    }
}

/// Exit status of a run stopped by Ctrl-C (128 + SIGINT).
pub const EXIT_INTERRUPTED: u8 = 130;

/// Raises `cancel` on the first Ctrl-C (printing `message`, if any) and exits on the second.
pub fn install_ctrl_c(
    cancel: std::sync::Arc<std::sync::atomic::AtomicBool>,
    message: Option<&'static str>,
) -> anyhow::Result<()> {
    use std::sync::atomic::{AtomicUsize, Ordering};
    use std::sync::{Mutex, OnceLock};
    type Target = (
        std::sync::Arc<std::sync::atomic::AtomicBool>,
        Option<&'static str>,
    );
    // One handler per process (the `ctrlc` crate takes one); each job (a sweep runs several)
    // points it at its own cancel flag.
    static TARGET: Mutex<Option<Target>> = Mutex::new(None);
    static PRESSES: AtomicUsize = AtomicUsize::new(0);
    static INSTALLED: OnceLock<Result<(), String>> = OnceLock::new();
    *TARGET.lock().unwrap_or_else(|e| e.into_inner()) = Some((cancel, message));
    PRESSES.store(0, Ordering::SeqCst);
    INSTALLED
        .get_or_init(|| {
            ctrlc::set_handler(|| {
                if PRESSES.fetch_add(1, Ordering::SeqCst) == 0 {
                    let target = TARGET.lock().unwrap_or_else(|e| e.into_inner());
                    if let Some((cancel, message)) = target.as_ref() {
                        cancel.store(true, Ordering::SeqCst);
                        if let Some(message) = message {
                            eprintln!("\n{message}");
                        }
                    }
                } else {
                    std::process::exit(EXIT_INTERRUPTED as i32);
                }
            })
            .map_err(|e| e.to_string())
        })
        .clone()
        .map_err(|e| anyhow::anyhow!("cannot install the Ctrl-C handler: {e}"))
}

/// Parses the command line and runs the subcommand.
pub fn run() -> ExitCode {
    let cli = Cli::parse();
    let db = cli.db.unwrap_or_else(hone_app::paths::default_db);
    let result = match cli.command {
        Command::Train(args) => train::run(*args, &db),
        Command::LrFind(args) => lr_find::run(*args, &db),
        Command::Data(cmd) => data::run(cmd, &db),
        Command::Runs(cmd) => runs::run(cmd, &db),
        Command::Sweep(cmd) => sweep::run(cmd, &db),
        Command::Target(cmd) => target::run(cmd, &db),
        Command::RemoteExec { dir } => target::remote_exec(&dir),
        Command::Eval(args) => eval::run(args),
        Command::Predict(args) => predict::run(args),
        Command::Test(args) => behavior::run(*args),
        Command::Generate(args) => generate::run(*args),
        Command::Export(args) => export::run(args, &db),
        Command::Bench(args) => bench::run(args),
        Command::Devices { json } => bench::devices(json),
        Command::Ensemble(cmd) => ensemble::run(cmd, &db),
        Command::Hub(cmd) => hub::run(cmd),
        Command::Models(cmd) => models::run(cmd, &db),
    };
    match result {
        Ok(code) => code,
        Err(error) => {
            eprintln!("error: {error}");
            for cause in error.chain().skip(1) {
                let text = cause.to_string();
                if !error.to_string().contains(&text) {
                    eprintln!("  caused by: {text}");
                }
            }
            if let Some(hint) = hints::hint(&error) {
                eprintln!("hint: {hint}");
            }
            ExitCode::FAILURE
        }
    }
}
