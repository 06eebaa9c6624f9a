//! `hone ensemble create`: two or more finished runs (or model folders) of one task and set of
//! classes combined into an ensemble folder that `hone predict` and `hone eval` read.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hone_app::ensemble::{create, Mean};
use hone_app::App;

#[derive(Subcommand)]
pub enum EnsembleCommand {
    /// Combine runs (ids from `hone runs list`) or model folders into an ensemble folder.
    Create(CreateArgs),
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  hone ensemble create 3 4 5 --out runs/sciq-ensemble\n  hone eval --model runs/sciq-ensemble --data test.jsonl …"
)]
pub struct CreateArgs {
    /// The members: run ids or exported model folders (at least two).
    #[arg(value_name = "RUN|DIR", required = true, num_args = 2..)]
    members: Vec<String>,
    /// The folder to create (the members are copied into it).
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
    /// What is averaged: the members' probabilities or their logits.
    #[arg(long, default_value = "probs", value_name = "probs|logits")]
    mean: Mean,
    /// The name of the ensemble's run (when every member is a run) [default: "ensemble of
    /// runs …"].
    #[arg(long)]
    name: Option<String>,
}

pub fn run(cmd: EnsembleCommand, db: &std::path::Path) -> anyhow::Result<ExitCode> {
    let EnsembleCommand::Create(args) = cmd;
    let mut app = None;
    let mut members = Vec::with_capacity(args.members.len());
    let mut run_ids = Vec::new();
    for m in &args.members {
        let dir = PathBuf::from(m);
        if let (Ok(id), false) = (m.parse::<i64>(), dir.is_dir()) {
            let app = match &mut app {
                Some(app) => app,
                none => none.insert(App::open(db)?),
            };
            let (model, _) = app.run_model(id)?;
            members.push((model, format!("run {id}")));
            run_ids.push(id);
        } else {
            members.push((dir, m.clone()));
        }
    }
    let manifest = create(&members, &args.out, args.mean)?;
    println!(
        "ensemble of {} {} models ({}: {}) → {}",
        manifest.members.len(),
        manifest.task.display_name(),
        match manifest.mean {
            Mean::Probs => "mean of probabilities",
            Mean::Logits => "mean of logits",
        },
        manifest
            .members
            .iter()
            .map(|m| m.source.as_str())
            .collect::<Vec<_>>()
            .join(", "),
        args.out.display()
    );
    // Runs only: the ensemble becomes a run of its own, scored beside its members.
    if let (Some(app), true) = (&mut app, run_ids.len() == members.len()) {
        let record = app.record_ensemble(&run_ids, &args.out, &manifest, args.name.as_deref())?;
        println!("recorded as run {}", record.run_id);
        match &record.report {
            Some(report) => {
                println!(
                    "on the {} validation examples every member held out:",
                    record.examples
                );
                for (id, r) in &record.members {
                    println!("  run {id:<5} {}", super::render::report_line(r));
                }
                println!("  ensemble  {}", super::render::report_line(report));
            }
            None => println!(
                "note: the members share no validation examples (different files or seeds), so the ensemble is not scored; use `hone eval`"
            ),
        }
    }
    Ok(ExitCode::SUCCESS)
}
