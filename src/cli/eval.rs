//! `hone eval`: score a fine-tuned classifier on a labeled file.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::Args;
use hone_data::{read_examples, ColumnSpec, FileFormat, LabelSet};
use hone_engine::batch::EncodedSet;
use hone_engine::inference::evaluate;
use serde::Serialize;

use super::render::{report_line, report_table};
use super::ModelArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labeled data (CSV, TSV or JSONL).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// File format when the extension does not tell.
    #[arg(long)]
    format: Option<FileFormat>,
    #[arg(long, value_name = "C")]
    text_column: String,
    #[arg(long, value_name = "C2")]
    text_pair_column: Option<String>,
    #[arg(long, value_name = "L")]
    label_column: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EvalOutput<'a> {
    labels: &'a [String],
    truncated: u64,
    #[serde(flatten)]
    report: &'a hone_engine::ClassificationReport,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let predictor = args.model.load()?;
    let columns = ColumnSpec {
        text: args.text_column.clone(),
        text_pair: args.text_pair_column.clone(),
        label: Some(args.label_column.clone()),
    };
    let file = read_examples(&args.data, args.format, &columns)?;
    for warning in &file.warnings {
        eprintln!("note: {warning}");
    }
    let examples = file.examples;
    let labels = LabelSet::from_names(predictor.labels().to_vec());
    let ids = labels.ids_for(&args.data, &examples)?;
    let texts: Vec<(&str, Option<&str>)> = examples
        .iter()
        .map(|e| (e.text.as_str(), e.text_pair.as_deref()))
        .collect();
    let set = EncodedSet {
        examples: predictor.tokenizer().encode(&texts)?,
        labels: ids,
    };
    let report = evaluate(
        predictor.model(),
        &set,
        predictor.labels(),
        args.model.batch_size,
    )?;
    let truncated = set.truncated() as u64;
    if args.json {
        let out = EvalOutput {
            labels: predictor.labels(),
            truncated,
            report: &report,
        };
        println!("{}", serde_json::to_string(&out)?);
    } else {
        println!("{} examples · {}", report.examples, report_line(&report));
        if truncated > 0 {
            println!(
                "note: {truncated} texts were longer than {} tokens and were truncated",
                predictor.tokenizer().max_length()
            );
        }
        println!();
        print!("{}", report_table(predictor.labels(), &report));
    }
    Ok(ExitCode::SUCCESS)
}
