//! `hone eval`: score a fine-tuned model on a labeled file: a text classifier on CSV, TSV or
//! JSONL rows, a token classifier (entity-level scores) on CoNLL or JSON lines tokens/tags,
//! a multiple-choice model on questions with options, a question-answering model (SQuAD exact
//! match and F1) on SQuAD JSON or JSON lines.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::Context;
use clap::Args;
use hone_app::evaluation::{evaluate_file, EvalFile};
use hone_app::types::Report;
use hone_app::types::{ChoiceColumns, ColumnSpec, FileFormat, TagColumns, Task};
use serde::Serialize;

use super::render::{entity_table, report_line, report_table};
use super::ModelArgs;

#[derive(Args)]
pub struct EvalArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Labeled data (CSV, TSV or JSONL; CoNLL or JSONL for token classifiers; SQuAD JSON or
    /// JSONL with question, context and answers for question answering).
    #[arg(long, value_name = "FILE")]
    data: PathBuf,
    /// File format when the extension does not tell.
    #[arg(long)]
    format: Option<FileFormat>,
    /// Text classifiers: the column with the text; text-to-text: the source.
    #[arg(long, value_name = "C", alias = "source-column")]
    text_column: Option<String>,
    #[arg(long, value_name = "C2")]
    text_pair_column: Option<String>,
    /// Text classifiers: the column with the label; multiple choice: the answer (a letter,
    /// a 0-based index or the option's text); text-to-text: the target.
    #[arg(long, value_name = "L", aliases = ["answer-column", "target-column"])]
    label_column: Option<String>,
    #[command(flatten)]
    choice: super::ChoiceArgs,
    /// Token classifiers, JSON lines: the field with the words array.
    #[arg(long, value_name = "F", default_value = "tokens")]
    tokens_column: String,
    /// Token classifiers, JSON lines: the field with the tags array.
    #[arg(long, value_name = "F", default_value = "tags")]
    tags_column: String,
    #[command(flatten)]
    answers: super::AnswerArgs,
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
    let model = args.model.load()?;
    let columns = match model.task() {
        Task::SequenceClassification => Some(ColumnSpec {
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
        }),
        Task::Text2Text => Some(ColumnSpec {
            text: args
                .text_column
                .clone()
                .context("say which column holds the source: --source-column")?,
            text_pair: None,
            label: Some(
                args.label_column
                    .clone()
                    .context("say which column holds the target: --target-column")?,
            ),
        }),
        _ => None,
    };
    let choice_columns = match model.task() {
        Task::MultipleChoice => Some(ChoiceColumns {
            question: args
                .choice
                .question_column
                .clone()
                .or(args.text_column.clone())
                .context("say which column holds the question: --question-column")?,
            context: args.choice.context_column.clone(),
            choices: match args.choice.choices() {
                c if c.is_empty() => {
                    anyhow::bail!("say which columns hold the options: --choice-columns A,B,C,D")
                }
                c => c,
            },
            answer: Some(
                args.label_column
                    .clone()
                    .context("say which column holds the answer: --label-column")?,
            ),
            shuffle_seed: args.choice.shuffle_choices,
        }),
        _ => None,
    };
    let file = EvalFile {
        path: &args.data,
        format: args.format,
        columns,
        tag_columns: TagColumns {
            tokens: args.tokens_column.clone(),
            tags: args.tags_column.clone(),
        },
        choice_columns,
        answers: args.answers.settings(),
    };
    let evaluation = evaluate_file(&model, &file, args.model.batch_size)?;
    for note in &evaluation.notes {
        eprintln!("note: {note}");
    }
    let report = &evaluation.report;
    if args.json {
        let out = EvalOutput {
            labels: model.labels(),
            truncated: evaluation.truncated,
            report,
        };
        println!("{}", serde_json::to_string(&out)?);
        return Ok(ExitCode::SUCCESS);
    }
    println!("{} · {}", evaluation.counted, report_line(report));
    if evaluation.truncated > 0 {
        println!(
            "note: {} {}",
            evaluation.truncated, evaluation.truncation_note
        );
    }
    println!();
    match report {
        Report::Classification(r) => print!("{}", report_table(model.labels(), r)),
        Report::Entities(r) => print!("{}", entity_table(r)),
        Report::Generation(r) => print!("{}", super::render::generation_samples(r)),
        Report::Choices(_) | Report::Answers(_) | Report::Tasks(_) | Report::Language(_) => {}
    }
    Ok(ExitCode::SUCCESS)
}
