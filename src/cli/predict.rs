//! `hone predict`: classify texts given on the command line (or `-` for one per stdin line),
//! rank the options of a question for multiple-choice models, or answer a question from a
//! passage for question-answering models.

use std::io::BufRead;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;
use hone_app::predict::Predictions;

use super::ModelArgs;

#[derive(Args)]
pub struct PredictArgs {
    #[command(flatten)]
    model: ModelArgs,
    /// Second text of a sentence pair, the same for every TEXT.
    #[arg(long)]
    pair: Option<String>,
    /// Print a JSON list, one object per text (label, probabilities, logits; for token
    /// classifiers entities with character offsets, and every token's tag; for multiple
    /// choice the options ranked).
    #[arg(long)]
    json: bool,
    /// Multiple choice: the question whose --choices to rank; question answering: the
    /// question to answer from --context.
    #[arg(long, conflicts_with = "texts")]
    question: Option<String>,
    /// Multiple choice: the options, separated by `|` ("red|green|blue").
    #[arg(long, requires = "question")]
    choices: Option<String>,
    /// The passage the question is about (question answering: where the answer is).
    #[arg(long, requires = "question")]
    context: Option<String>,
    #[command(flatten)]
    answers: super::AnswerArgs,
    /// Texts to classify; `-` reads one text per line from standard input.
    #[arg(value_name = "TEXT", required_unless_present = "question")]
    texts: Vec<String>,
}

/// Ranks the options of `--question`.
fn predict_choices(args: &PredictArgs, question: &str) -> anyhow::Result<ExitCode> {
    let options: Vec<String> = args
        .choices
        .as_deref()
        .unwrap_or_default()
        .split('|')
        .map(|o| o.trim().to_string())
        .filter(|o| !o.is_empty())
        .collect();
    if options.len() < 2 {
        bail!("give at least two options: --choices \"first|second\"");
    }
    let model = args.model.load()?;
    let example = hone_app::types::Example {
        text: question.to_string(),
        text_pair: args.context.clone(),
        choices: options,
        ..Default::default()
    };
    let Predictions::MultipleChoice(items) = model.predict_choices(&[example], 1)? else {
        bail!("the model did not rank the options");
    };
    if args.json {
        println!("{}", serde_json::to_string(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    for p in &items {
        println!("{}", p.question);
        for (rank, &i) in p.ranking.iter().enumerate() {
            let mark = if rank == 0 { "→" } else { " " };
            println!(
                "{mark} {} {:.3}  {}",
                hone_app::types::choice_letter(i),
                p.probabilities[i],
                p.options[i]
            );
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Answers `--question` from `--context`.
fn predict_answer(args: &PredictArgs, question: &str, context: &str) -> anyhow::Result<ExitCode> {
    let model = args.model.load()?;
    let pair = [(question.to_string(), context.to_string())];
    let Predictions::QuestionAnswering(items) =
        model.predict_answers(&pair, args.answers.settings(), 1)?
    else {
        bail!("the model did not answer");
    };
    if args.json {
        println!("{}", serde_json::to_string(&items)?);
        return Ok(ExitCode::SUCCESS);
    }
    for p in &items {
        println!("{}", p.question);
        println!(
            "→ {} ({:.3}; characters {}..{}, {} window{})",
            p.answer,
            p.score,
            p.start,
            p.end,
            p.windows,
            if p.windows == 1 { "" } else { "s" }
        );
    }
    Ok(ExitCode::SUCCESS)
}

pub fn run(args: PredictArgs) -> anyhow::Result<ExitCode> {
    if let Some(question) = &args.question {
        return match (&args.choices, &args.context) {
            (Some(_), _) => predict_choices(&args, question),
            (None, Some(context)) => predict_answer(&args, question, context),
            (None, None) => bail!(
                "give the options to rank (--choices \"a|b\") or the passage that holds the answer (--context \"…\")"
            ),
        };
    }
    let mut texts = Vec::new();
    for t in &args.texts {
        if t == "-" {
            for line in std::io::stdin().lock().lines() {
                let line = line.context("cannot read standard input")?;
                if !line.trim().is_empty() {
                    texts.push(line);
                }
            }
        } else {
            texts.push(t.clone());
        }
    }
    if texts.is_empty() {
        bail!("no text to classify; pass texts as arguments or `-` to read lines from stdin");
    }
    let model = args.model.load()?;
    let predictions = model.predict(&texts, args.pair.as_deref(), args.model.batch_size)?;
    match &predictions {
        Predictions::TokenClassification(items) if args.json => {
            println!("{}", serde_json::to_string(items)?)
        }
        Predictions::SequenceClassification(items) if args.json => {
            println!("{}", serde_json::to_string(items)?)
        }
        Predictions::TokenClassification(items) => {
            for p in items {
                println!("{}", p.text);
                for e in &p.entities {
                    println!(
                        "  {:<6} {:.3}  {} ({}..{})",
                        e.kind, e.score, e.text, e.start, e.end
                    );
                }
            }
        }
        // Texts never reach a multiple-choice or question-answering model (`predict`
        // refuses them).
        Predictions::MultipleChoice(items) => println!("{}", serde_json::to_string(items)?),
        Predictions::QuestionAnswering(items) => println!("{}", serde_json::to_string(items)?),
        Predictions::SequenceClassification(items) => {
            for p in items {
                let confidence = p.probabilities[p.label_id as usize];
                println!("{:<12} {:.3}  {}", p.label, confidence, p.text);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
