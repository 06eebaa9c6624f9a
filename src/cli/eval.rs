//! `hone eval`: score a fine-tuned model on a labeled file: a text classifier on CSV, TSV or
//! JSONL rows, a token classifier (entity-level scores) on CoNLL or JSON lines tokens/tags.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hone_data::{
    read_examples, read_tagged, ColumnSpec, Example, FileFormat, LabelSet, TagColumns,
};
use hone_engine::batch::EncodedSet;
use hone_engine::inference::evaluate;
use hone_engine::{Report, Task};
use serde::Serialize;

use super::render::{entity_table, report_line, report_table};
use super::ModelArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labeled data (CSV, TSV or JSONL; CoNLL or JSONL for token classifiers).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// File format when the extension does not tell.
    #[arg(long)]
    format: Option<FileFormat>,
    /// Text classifiers: the column with the text.
    #[arg(long, value_name = "C")]
    text_column: Option<String>,
    #[arg(long, value_name = "C2")]
    text_pair_column: Option<String>,
    /// Text classifiers: the column with the label.
    #[arg(long, value_name = "L")]
    label_column: Option<String>,
    /// Token classifiers, JSON lines: the field with the words array.
    #[arg(long, value_name = "F", default_value = "tokens")]
    tokens_column: String,
    /// Token classifiers, JSON lines: the field with the tags array.
    #[arg(long, value_name = "F", default_value = "tags")]
    tags_column: String,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

#[derive(Serialize)]
struct EvalOutput<'a> {
    labels: &'a [String],
    truncated: u64,
    #[serde(flatten)]
    report: &'a Report,
}

pub fn run(args: EvalArgs) -> anyhow::Result<ExitCode> {
    if args.model.task()? == Some(Task::TokenClassification) {
        return run_tokens(args);
    }
    let predictor = args.model.load()?;
    let columns = ColumnSpec {
        text: args
            .text_column
            .clone()
            .context("say which column holds the text: --text-column")?,
        text_pair: args.text_pair_column.clone(),
        label: Some(
            args.label_column
                .clone()
                .context("say which column holds the label: --label-column")?,
        ),
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
        ..Default::default()
    };
    let report = evaluate(
        predictor.model(),
        &set,
        predictor.labels(),
        args.model.batch_size,
    )?;
    let shown = Shown {
        labels: predictor.labels(),
        counted: format!("{} examples", examples.len()),
        truncated: set.truncated() as u64,
        cut: format!(
            "texts were longer than {} tokens and were truncated",
            predictor.tokenizer().max_length()
        ),
    };
    shown.print(&report, args.json)
}

/// What both kinds of evaluation print around their report.
struct Shown<'a> {
    labels: &'a [String],
    /// "N examples" / "N sentences".
    counted: String,
    truncated: u64,
    /// What truncation did, after the count.
    cut: String,
}

impl Shown<'_> {
    fn print(&self, report: &Report, json: bool) -> anyhow::Result<ExitCode> {
        if json {
            let out = EvalOutput {
                labels: self.labels,
                truncated: self.truncated,
                report,
            };
            println!("{}", serde_json::to_string(&out)?);
            return Ok(ExitCode::SUCCESS);
        }
        println!("{} · {}", self.counted, report_line(report));
        if self.truncated > 0 {
            println!("note: {} {}", self.truncated, self.cut);
        }
        println!();
        match report {
            Report::Classification(r) => print!("{}", report_table(self.labels, r)),
            Report::Entities(r) => print!("{}", entity_table(r)),
        }
        Ok(ExitCode::SUCCESS)
    }
}

/// A token classifier on tagged sentences: entity-level scores (conlleval rules).
fn run_tokens(args: EvalArgs) -> anyhow::Result<ExitCode> {
    let predictor = args.model.load_tokens()?;
    let columns = TagColumns {
        tokens: args.tokens_column.clone(),
        tags: args.tags_column.clone(),
    };
    let file = read_tagged(&args.data, args.format, &columns)?;
    for warning in &file.warnings {
        eprintln!("note: {warning}");
    }
    let labels = LabelSet::from_names(predictor.labels().to_vec());
    let known: Vec<Example> = file.sentences.into_iter().map(Example::from).collect();
    // Tags the model never learned cannot be predicted; they take no loss and their entities
    // still count as missed.
    let mut unknown: std::collections::BTreeMap<&str, usize> = Default::default();
    for t in known.iter().flat_map(|e| &e.tags) {
        if labels.id(t).is_none() {
            *unknown.entry(t.as_str()).or_default() += 1;
        }
    }
    for (tag, n) in &unknown {
        eprintln!(
            "note: the tag '{tag}' ({n}×) is not one the model knows; its entities count as missed"
        );
    }
    let set =
        hone_engine::job::encode_tagged(predictor.tokenizer(), &labels, &known, false, false)?;
    let report = evaluate(
        predictor.model(),
        &set,
        predictor.labels(),
        args.model.batch_size,
    )?;
    let shown = Shown {
        labels: predictor.labels(),
        counted: format!("{} sentences", known.len()),
        truncated: set.truncated() as u64,
        cut: format!(
            "sentences were longer than {} tokens; words past the cut count as O",
            predictor.tokenizer().max_length()
        ),
    };
    shown.print(&report, args.json)
}
