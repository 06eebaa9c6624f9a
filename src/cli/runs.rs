//! `hone runs`: every run Hone has made, from the database.

use std::path::Path;
use std::process::ExitCode;

use clap::Subcommand;
use hone_app::types::Metric;
use hone_app::types::Report;
use hone_app::types::RunRecord;
use hone_app::{spawn, App};

use super::render::{entity_table, report_line, report_table, sample_answer};
use super::train::follow;

#[derive(Subcommand)]
pub enum RunsCommand {
    /// List runs, newest first.
    List {
        /// Only runs with this status (queued, running, completed, failed, cancelled,
        /// interrupted).
        #[arg(long)]
        status: Option<String>,
        #[arg(long)]
        json: bool,
    },
    /// Show a run: configuration, status, final metrics, evaluations, artifacts.
    Show {
        id: i64,
        #[arg(long)]
        json: bool,
    },
    /// Two runs side by side: configuration differences and final metrics.
    Compare {
        a: i64,
        b: i64,
        #[arg(long)]
        json: bool,
    },
    /// Continue an interrupted, cancelled or failed run from its last checkpoint.
    Resume {
        id: i64,
        #[arg(long)]
        json: bool,
        /// Keep the checkpoints after the run completes.
        #[arg(long)]
        keep_checkpoints: bool,
    },
    /// Delete a run's records and its folder.
    Delete { id: i64 },
    /// Add tags to a run (and remove others with --remove); prints the run's tags.
    Tag {
        id: i64,
        /// Tags to add (a tag may hold spaces: quote it).
        tags: Vec<String>,
        /// A tag to take off (repeatable).
        #[arg(long, value_name = "TAG")]
        remove: Vec<String>,
    },
    /// Set a run's notes (an empty text clears them; `-` reads them from standard input).
    Note { id: i64, text: String },
    /// Ask a running run to stop after its current step, whichever process trains it (the
    /// window, or `hone train` in another terminal; on a compute target, through its
    /// scheduler); it stops as Ctrl-C does: resumable.
    Cancel { id: i64 },
    /// Bring runs on compute targets up to date: their curves so far, and the outcome of
    /// those whose jobs ended.
    Sync {
        /// Keep syncing until none of them is queued or running.
        #[arg(long)]
        wait: bool,
        /// Seconds between syncs with --wait.
        #[arg(long, value_name = "S", default_value_t = 5.0)]
        interval: f64,
        /// One JSON object per run and sync.
        #[arg(long)]
        json: bool,
    },
}

/// The best evaluation of a run, whichever the task (its `get` reads F1 and accuracy as
/// entity F1 and token accuracy for token classifiers).
fn best(run: &RunRecord) -> Option<Report> {
    serde_json::from_value(run.final_metrics.as_ref()?.get("best")?.clone()).ok()
}

/// A run's score: on the split's test part when it has one (scored once, after training),
/// else the best validation; and which of the two it is.
fn score(run: &RunRecord) -> Option<(Report, &'static str)> {
    let tested = run
        .final_metrics
        .as_ref()?
        .get("test")
        .and_then(|t| serde_json::from_value(t.clone()).ok());
    match tested {
        Some(report) => Some((report, "test")),
        None => best(run).map(|b| (b, "valid")),
    }
}

fn model_name(run: &RunRecord) -> String {
    run.config
        .get("model")
        .and_then(|m| m.as_str())
        .and_then(|m| {
            Path::new(m)
                .file_name()
                .and_then(|n| n.to_str())
                .map(str::to_string)
        })
        .unwrap_or_default()
}

fn data_name(run: &RunRecord) -> String {
    let data = &run.config["data"];
    data.get("dataset")
        .and_then(|d| d.as_str())
        .map(str::to_string)
        .or_else(|| {
            data.get("train").and_then(|t| t.as_str()).and_then(|t| {
                Path::new(t)
                    .file_name()
                    .and_then(|n| n.to_str())
                    .map(str::to_string)
            })
        })
        .unwrap_or_default()
}

/// Notes indented under their heading.
fn textwrap_indent(text: &str) -> String {
    text.lines()
        .map(|l| format!("  {l}"))
        .collect::<Vec<_>>()
        .join("\n")
}

fn fmt(v: Option<f64>) -> String {
    v.map(|v| format!("{v:.4}")).unwrap_or_else(|| "—".into())
}

pub fn run(cmd: RunsCommand, db: &Path) -> anyhow::Result<ExitCode> {
    match cmd {
        RunsCommand::List { status, json } => {
            let app = App::open(db)?;
            let runs: Vec<RunRecord> = app
                .store()
                .runs()?
                .into_iter()
                .filter(|r| status.as_deref().is_none_or(|s| r.status.as_str() == s))
                .collect();
            if json {
                println!("{}", serde_json::to_string(&runs)?);
            } else if runs.is_empty() {
                println!("no runs yet; start one with `hone train`");
            } else {
                println!(
                    "{:>5}  {:<11} {:<22} {:<22} {:>9} {:>9} {:<5} {:>11}  {:<24}  tags",
                    "id", "status", "model", "data", "accuracy", "F1", "on", "steps", "created"
                );
                for r in runs {
                    let score = score(&r);
                    println!(
                        "{:>5}  {:<11} {:<22} {:<22} {:>9} {:>9} {:<5} {:>11}  {:<24}  {}",
                        r.id,
                        r.status.as_str(),
                        model_name(&r),
                        data_name(&r),
                        fmt(score.as_ref().map(|(b, _)| b.get(Metric::Accuracy))),
                        fmt(score.as_ref().map(|(b, _)| b.get(Metric::MacroF1))),
                        score.as_ref().map_or("", |(_, on)| on),
                        format!("{}/{}", r.step, r.total_steps.unwrap_or(0)),
                        r.created_at,
                        r.tags.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Show { id, json } => {
            let app = App::open(db)?;
            let store = app.store();
            let run = store.run(id)?;
            let evaluations = store.evaluations(id)?;
            let artifacts = store.artifacts(id)?;
            let samples = store.samples(id)?;
            if json {
                let metrics = store.metrics(id)?;
                println!(
                    "{}",
                    serde_json::to_string(&serde_json::json!({
                        "id": run.id, "status": run.status, "created_at": run.created_at,
                        "config": run.config, "final_metrics": run.final_metrics, "run": run,
                        "metrics": metrics, "evaluations": evaluations, "artifacts": artifacts,
                        "samples": samples,
                    }))?
                );
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "run {} · {} · model {} · data {}",
                run.id,
                run.status.as_str(),
                model_name(&run),
                data_name(&run)
            );
            println!(
                "created {} · started {} · finished {}",
                run.created_at,
                run.started_at.as_deref().unwrap_or("—"),
                run.finished_at.as_deref().unwrap_or("—")
            );
            println!(
                "steps {}/{} · folder {}",
                run.step,
                run.total_steps.unwrap_or(0),
                run.run_dir
            );
            if let Some(name) = &run.name {
                println!("name {name}");
            }
            if !run.tags.is_empty() {
                println!("tags {}", run.tags.join(", "));
            }
            if let Some(notes) = &run.notes {
                println!("notes:\n{}", textwrap_indent(notes));
            }
            if run.cancel_requested {
                println!("asked to stop: it stops after its current step");
            }
            if let Some(e) = &run.error {
                println!("error: {e}");
            }
            // An ensemble's record: its members' scores beside its own.
            if let Some(members) = run
                .final_metrics
                .as_ref()
                .and_then(|m| m.get("ensemble"))
                .and_then(|e| e.get("members"))
                .and_then(|m| m.as_array())
            {
                println!(
                    "
ensemble members, on the validation examples they all held out:"
                );
                for m in members {
                    if let Ok(report) = serde_json::from_value::<Report>(m["report"].clone()) {
                        println!("  run {:<5} {}", m["run"], report_line(&report));
                    }
                }
            }
            if let Some(test) = evaluations.iter().rev().find(|e| e.part == "test") {
                if let Ok(report) = serde_json::from_value::<Report>(test.report.clone()) {
                    let n = run
                        .final_metrics
                        .as_ref()
                        .and_then(|m| m.get("test_examples"))
                        .and_then(|v| v.as_u64())
                        .unwrap_or(0);
                    println!(
                        "\ntest, the run's score ({n} examples the best checkpoint never saw): {}",
                        report_line(&report)
                    );
                }
            }
            if let Some(last) = samples.last().map(|s| s.step) {
                println!("\nsample answers at step {last}:");
                for s in samples.iter().filter(|s| s.step == last) {
                    let answer = sample_answer(&s.answer);
                    println!("  > {}\n{}", s.prompt, textwrap_indent(answer));
                }
            }
            if let Some(last) = evaluations.iter().rev().find(|e| e.part != "test") {
                match serde_json::from_value::<Report>(last.report.clone()) {
                    Ok(report) => {
                        println!(
                            "\nbest validation (step {}): {}",
                            last.step,
                            report_line(&report)
                        );
                        match &report {
                            Report::Classification(r) => {
                                let labels: Vec<String> =
                                    r.per_class.iter().map(|c| c.label.clone()).collect();
                                print!("{}", report_table(&labels, r));
                            }
                            Report::Entities(r) => print!("{}", entity_table(r)),
                            Report::Choices(_)
                            | Report::Answers(_)
                            | Report::Tasks(_)
                            | Report::Language(_)
                            | Report::Generation(_) => {}
                        }
                    }
                    Err(e) => eprintln!("note: the stored evaluation cannot be read ({e})"),
                }
                if let Some(serde_json::Value::Array(preds)) = &last.predictions {
                    let mut wrong: Vec<&serde_json::Value> = preds
                        .iter()
                        .filter(|p| p["label"] != p["predicted"])
                        .collect();
                    let confidence = |p: &serde_json::Value| {
                        p["probabilities"]
                            .as_array()
                            .and_then(|a| a.iter().filter_map(|v| v.as_f64()).reduce(f64::max))
                            .unwrap_or(0.0)
                    };
                    wrong.sort_by(|a, b| confidence(b).total_cmp(&confidence(a)));
                    if !wrong.is_empty() {
                        println!("\nmost confident mistakes:");
                        for p in wrong.iter().take(5) {
                            let text: String =
                                p["text"].as_str().unwrap_or("").chars().take(80).collect();
                            println!(
                                "  true {:<10} predicted {:<10} {:.3}  {text}",
                                p["label"].as_str().unwrap_or(""),
                                p["predicted"].as_str().unwrap_or(""),
                                confidence(p)
                            );
                        }
                    }
                }
            }
            for a in artifacts {
                println!("{:<16} {}", a.kind, a.path);
            }
            println!(
                "\nconfiguration:\n{}",
                serde_json::to_string_pretty(&run.config)?
            );
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Compare { a, b, json } => {
            let app = App::open(db)?;
            let cmp = app.compare_runs(a, b)?;
            if json {
                println!("{}", serde_json::to_string(&cmp)?);
                return Ok(ExitCode::SUCCESS);
            }
            println!(
                "{:<28} {:>18} {:>18}",
                "",
                format!("run {a}"),
                format!("run {b}")
            );
            println!(
                "{:<28} {:>18} {:>18}",
                "status",
                cmp.runs[0].status.as_str(),
                cmp.runs[1].status.as_str()
            );
            for (name, x, y) in &cmp.metrics {
                println!("{name:<28} {:>18} {:>18}", fmt(*x), fmt(*y));
            }
            if cmp.config_diff.is_empty() {
                println!("\nsame configuration");
            } else {
                println!("\nconfiguration differences:");
                for (key, x, y) in &cmp.config_diff {
                    println!("{key:<28} {:>18} {:>18}", x.to_string(), y.to_string());
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Resume {
            id,
            json,
            keep_checkpoints,
        } => {
            // Opening the database marks a run whose process died as interrupted.
            let mut app = App::open(db)?;
            if app.store().run(id)?.remote.is_some() {
                let job = app.resubmit_run(id)?;
                println!("submitted run {id} again as Slurm job {job}: it continues from its last checkpoint (`hone runs sync --wait` follows it)");
                return Ok(ExitCode::SUCCESS);
            }
            drop(app);
            let job = spawn(db.to_path_buf(), id, true)?;
            follow(job, db, json, keep_checkpoints)
        }
        RunsCommand::Delete { id } => {
            let mut app = App::open(db)?;
            app.delete_run(id)?;
            println!("deleted run {id}");
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Tag { id, tags, remove } => {
            let mut app = App::open(db)?;
            let now = app.edit_run_tags(id, &tags, &remove)?;
            if now.is_empty() {
                println!("run {id} has no tags");
            } else {
                println!("run {id}: {}", now.join(", "));
            }
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Note { id, text } => {
            let mut app = App::open(db)?;
            let text = if text == "-" {
                std::io::read_to_string(std::io::stdin())?
            } else {
                text
            };
            app.set_run_notes(id, &text)?;
            println!(
                "run {id}: {}",
                if text.trim().is_empty() {
                    "notes cleared"
                } else {
                    "notes saved"
                }
            );
            Ok(ExitCode::SUCCESS)
        }
        RunsCommand::Sync {
            wait,
            interval,
            json,
        } => super::target::sync(db, wait, interval, json),
        RunsCommand::Cancel { id } => {
            let mut app = App::open(db)?;
            app.request_cancel(id)?;
            println!("asked run {id} to stop; it stops after its current step (resume it later with `hone runs resume {id}`)");
            Ok(ExitCode::SUCCESS)
        }
    }
}
