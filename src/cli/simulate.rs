//! `hone bench active-learning`: the labeling loop simulated with an oracle.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hone_app::active::simulate::{simulate, summarize, SimulationRequest};
use hone_app::active::Strategy;
use hone_app::types::{ColumnSpec, TrainingConfig};

#[derive(Args)]
pub struct SimulateArgs {
    /// The pretrained model every round starts from.
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    /// A labeled CSV/TSV/JSONL file: the pool is its first rows, then the validation rows;
    /// its last rows score the rounds.
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    #[arg(long, value_name = "C", default_value = "text")]
    text_column: String,
    #[arg(long, value_name = "L", default_value = "label")]
    label_column: String,
    /// Rows whose labels the oracle reveals.
    #[arg(long, default_value_t = 4000)]
    pool: usize,
    /// Rows that pick each round's best epoch [default: none; the last epoch is scored].
    #[arg(long, default_value_t = 0)]
    valid: usize,
    /// Rows (the file's last) that score each round.
    #[arg(long, default_value_t = 2000)]
    test: usize,
    /// Labels revealed per round.
    #[arg(long, default_value_t = 100)]
    round: usize,
    /// Label counts to report; the largest ends each loop.
    #[arg(long, value_delimiter = ',', default_value = "200,400,800,1600")]
    report_at: Vec<usize>,
    #[arg(long, value_delimiter = ',', default_value = "margin,random")]
    strategies: Vec<Strategy>,
    #[arg(long, value_delimiter = ',', default_value = "1,2,3,4,5")]
    seeds: Vec<u64>,
    /// Epochs per round (at least; see --min-steps).
    #[arg(long, default_value_t = 3)]
    epochs: u32,
    /// Small rounds train more epochs, up to at least this many optimizer steps.
    #[arg(long, default_value_t = 100)]
    min_steps: u64,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    max_length: usize,
    #[arg(long, default_value_t = 1e-4)]
    lr: f64,
    /// Append every round's result to this JSON lines file as it comes.
    #[arg(long, value_name = "FILE")]
    out: Option<PathBuf>,
    /// Scratch folder for the rounds' models [default: a temporary folder].
    #[arg(long, value_name = "DIR")]
    work_dir: Option<PathBuf>,
    /// Print the summary as one JSON object.
    #[arg(long)]
    json: bool,
}

pub fn run(args: SimulateArgs) -> anyhow::Result<ExitCode> {
    let own_scratch = args.work_dir.is_none();
    let work_dir = args.work_dir.clone().unwrap_or_else(|| {
        std::env::temp_dir().join(format!("hone-active-learning-{}", std::process::id()))
    });
    let request = SimulationRequest {
        model: args.model,
        data: args.data,
        columns: ColumnSpec {
            text: args.text_column,
            text_pair: None,
            label: Some(args.label_column),
        },
        pool: args.pool,
        valid: args.valid,
        test: args.test,
        round: args.round,
        report_at: args.report_at.clone(),
        strategies: args.strategies,
        seeds: args.seeds,
        training: TrainingConfig {
            epochs: args.epochs,
            batch_size: args.batch_size,
            max_length: args.max_length,
            lr: args.lr,
            ..Default::default()
        },
        min_steps: args.min_steps,
        work_dir,
    };
    let mut log = match &args.out {
        Some(path) => Some(
            std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .with_context(|| format!("cannot write {}", path.display()))?,
        ),
        None => None,
    };
    let mut write_error = None;
    let results = simulate(&request, &mut |r| {
        eprintln!(
            "{:<16} seed {:<3} {:>5} labels  accuracy {:.4}  ({:.0} s)",
            r.strategy.as_str(),
            r.seed,
            r.labels,
            r.accuracy,
            r.seconds
        );
        if let Some(file) = log.as_mut() {
            let line = serde_json::to_string(r).unwrap_or_default();
            if let Err(e) = writeln!(file, "{line}") {
                write_error.get_or_insert(e);
            }
        }
    })?;
    if own_scratch {
        let _ = std::fs::remove_dir_all(&request.work_dir);
    }
    if let Some(e) = write_error {
        return Err(e).context("cannot write the results file");
    }
    let summary = summarize(&results, &args.report_at);
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        println!(
            "{:<16} {:>7} {:>9} {:>7} {:>5}",
            "strategy", "labels", "accuracy", "std", "runs"
        );
        for row in summary {
            println!(
                "{:<16} {:>7} {:>9.4} {:>7.4} {:>5}",
                row.strategy.as_str(),
                row.labels,
                row.mean_accuracy,
                row.std_accuracy,
                row.runs
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}
