//! `hone data suggest`: the active-learning queue of a dataset on the command line.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;

use clap::Args;
use hone_app::active::{Strategy, SuggestRequest};
use hone_app::types::Label;
use hone_app::App;
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Args)]
pub struct SuggestArgs {
    /// The dataset whose unlabeled examples to rank.
    dataset: String,
    /// The finished run whose model pre-labels them (`hone runs list`).
    #[arg(long, value_name = "ID")]
    run: i64,
    /// The order: margin, least-confidence, entropy (least sure first) or random (the
    /// control).
    #[arg(long, default_value = "margin")]
    strategy: Strategy,
    /// Show the first N of the queue.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    /// Score at most this many unlabeled examples (a seeded sample) [default: all].
    #[arg(long, value_name = "N")]
    pool: Option<usize>,
    /// Seeds the random order and the pool's sample.
    #[arg(long, default_value_t = 42)]
    seed: u64,
    /// Print one JSON object (the whole queue, up to --limit).
    #[arg(long)]
    json: bool,
}

pub fn run(args: SuggestArgs, db: &Path) -> anyhow::Result<ExitCode> {
    let app = App::open(db)?;
    let request = SuggestRequest {
        dataset: args.dataset,
        run_id: args.run,
        strategy: args.strategy,
        limit: Some(args.limit),
        pool: args.pool,
        seed: args.seed,
    };
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        ProgressBar::new(0).with_style(
            ProgressStyle::with_template("scoring {pos}/{len} unlabeled examples {bar:30} {eta}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        )
    };
    let queue = app.suggest_labels(
        &request,
        &mut |done, total| {
            bar.set_length(total as u64);
            bar.set_position(done as u64);
        },
        &AtomicBool::new(false),
    )?;
    bar.finish_and_clear();
    if args.json {
        println!("{}", serde_json::to_string(&queue)?);
        return Ok(ExitCode::SUCCESS);
    }
    if queue.unlabeled == 0 {
        println!("every example of '{}' is labeled", queue.dataset);
        return Ok(ExitCode::SUCCESS);
    }
    println!(
        "{} unlabeled, {} scored by run {}, ordered by {}:",
        queue.unlabeled,
        queue.scored,
        queue.run_id,
        queue.strategy.as_str()
    );
    println!(
        "{:>8} {:>11} {:>10}  {:<16} text",
        "example", "uncertainty", "confidence", "suggestion"
    );
    for s in &queue.suggestions {
        let label = match &s.label {
            Label::Class(c) => c.clone(),
            Label::Tags(t) => t.join(" "),
        };
        let text: String = s.text.chars().take(70).collect();
        println!(
            "{:>8} {:>11.3} {:>10.3}  {:<16} {text}",
            s.example_id, s.uncertainty, s.confidence, label
        );
    }
    Ok(ExitCode::SUCCESS)
}
