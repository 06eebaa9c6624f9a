//! `hone test`: behavioral tests of a text classifier from a suite file (minimum functionality,
//! invariance under typos, names, places, punctuation and neutral sentences, directional
//! expectations), a robustness score, and accuracy per slice of a labeled file.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hone_app::behavior::{run_file, SliceRule, Suite, SuiteReport, TestData};
use hone_app::types::FileFormat;

use super::ModelArgs;

#[derive(Args)]
#[command(
    after_help = "Example:\n  hone test --model runs/sst2 --starter > suite.toml\n  hone test --model runs/sst2 --suite suite.toml --data test.tsv --text-column sentence \\\n    --label-column label --slice 'short=^\\S+( \\S+){0,5}$'"
)]
pub struct TestArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// The suite (TOML): [[test]] tables of kind mft (texts that must get a class),
    /// invariance (a perturbation must not change the prediction) or directional.
    #[arg(long, value_name = "FILE", required_unless_present = "starter")]
    suite: Option<PathBuf>,
    /// Print a starter suite for the model's classes instead (save it, edit it, run it).
    #[arg(long, conflicts_with = "suite")]
    starter: bool,
    /// Texts for the tests that list none, and labels for slices: CSV, TSV, JSON(L), Parquet.
    #[arg(long, value_name = "FILE")]
    data: Option<PathBuf>,
    /// File format when the extension does not tell.
    #[arg(long)]
    format: Option<FileFormat>,
    /// The column with the text.
    #[arg(long, value_name = "C", default_value = "text")]
    text_column: String,
    /// The column with the label (for slices).
    #[arg(long, value_name = "L")]
    label_column: Option<String>,
    /// A slice: NAME=REGEX over the texts; accuracy is reported for each. Repeat for more.
    #[arg(long = "slice", value_name = "NAME=REGEX")]
    slices: Vec<SliceRule>,
    /// A column whose values slice the data, one slice per value.
    #[arg(long, value_name = "C")]
    slice_column: Option<String>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
    /// Exit with status 1 when a test fails on more than this share of its examples.
    #[arg(long, value_name = "RATE")]
    fail_above: Option<f64>,
}

pub fn run(args: TestArgs) -> anyhow::Result<ExitCode> {
    let model = args.model.load()?;
    if args.starter {
        print!("{}", Suite::starter(model.labels()));
        return Ok(ExitCode::SUCCESS);
    }
    let suite = args
        .suite
        .as_deref()
        .context("give the suite: --suite FILE")?;
    let data = args.data.as_ref().map(|path| TestData {
        path: path.clone(),
        format: args.format,
        text_column: args.text_column.clone(),
        label_column: args.label_column.clone(),
        slice_column: args.slice_column.clone(),
    });
    let report = run_file(&model, suite, data.as_ref(), &args.slices)?;
    if args.json {
        println!("{}", serde_json::to_string(&report)?);
    } else {
        print_report(&report);
    }
    let worst = report
        .tests
        .iter()
        .map(|t| t.failure_rate)
        .fold(0.0, f64::max);
    Ok(match args.fail_above {
        Some(rate) if worst > rate => ExitCode::from(1),
        _ => ExitCode::SUCCESS,
    })
}

fn print_report(report: &SuiteReport) {
    if let Some(name) = &report.suite {
        println!("suite {name}");
    }
    println!(
        "{:<48} {:<12} {:>8} {:>9}",
        "test", "kind", "examples", "failures"
    );
    for t in &report.tests {
        println!(
            "{:<48} {:<12} {:>8} {:>8.1}%",
            t.name,
            t.kind,
            t.examples,
            100.0 * t.failure_rate
        );
    }
    if let Some(r) = report.robustness {
        println!(
            "\nrobustness (predictions unchanged under perturbation): {:.1}%",
            100.0 * r
        );
    }
    for t in report.tests.iter().filter(|t| !t.failing.is_empty()) {
        println!("\n{} — failing examples:", t.name);
        for f in &t.failing {
            match &f.changed {
                Some(c) => println!(
                    "  {:?} → {:?}: expected {}, got {}",
                    f.text, c, f.expected, f.got
                ),
                None => println!("  {:?}: expected {}, got {}", f.text, f.expected, f.got),
            }
        }
    }
    if !report.slices.is_empty() {
        println!("\n{:<32} {:>8} {:>9}", "slice", "examples", "accuracy");
        for s in &report.slices {
            let acc = s.accuracy.map_or("–".to_string(), |a| format!("{:.3}", a));
            println!("{:<32} {:>8} {:>9}", s.name, s.examples, acc);
        }
    }
}
