//! `hone predict`: classify texts given on the command line (or `-` for one per stdin line).

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
    /// classifiers entities with character offsets, and every token's tag).
    #[arg(long)]
    json: bool,
    /// Texts to classify; `-` reads one text per line from standard input.
    #[arg(value_name = "TEXT", required = true)]
    texts: Vec<String>,
}

pub fn run(args: PredictArgs) -> anyhow::Result<ExitCode> {
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
        Predictions::SequenceClassification(items) => {
            for p in items {
                let confidence = p.probabilities[p.label_id as usize];
                println!("{:<12} {:.3}  {}", p.label, confidence, p.text);
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
