//! `hone sweep`: hyperparameter sweeps run here, one trial after another (each an ordinary
//! run tagged `sweep:NAME`), and a sweep's trials ranked by the metric that picks their best
//! checkpoints.

use std::path::Path;
use std::process::ExitCode;

use clap::{Args, Subcommand};
use hone_app::sweep::{self, SweepAxis};
use hone_app::{spawn, App};

use hone_app::types::TrainEvent;

use super::train::{follow_watching, TrainArgs};

#[derive(Subcommand)]
pub enum SweepCommand {
    /// Run a sweep here: `hone train`'s options as the base, one run for each combination of
    /// the --grid axes (or --random N of them), one after another.
    Create(Box<SweepArgs>),
    /// A sweep's trials, best first: the settings that differ and each one's score.
    Show {
        /// The sweep's name.
        name: String,
        /// One JSON object.
        #[arg(long)]
        json: bool,
    },
}

#[derive(Args)]
#[command(
    after_help = "Example:\n  hone sweep create --sweep lr-seeds --model models-cache/minilm --train train.tsv \\\n    --grid lr=2e-5,5e-5,1e-4 --grid seed=1,2\n  hone sweep show lr-seeds"
)]
pub struct SweepArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// An axis: a training setting (a key of a run configuration's [training] table) and
    /// its values, e.g. lr=2e-5,5e-5; repeat for more axes.
    #[arg(
        long = "grid",
        value_name = "SETTING=V1,V2",
        required = true,
        help_heading = "Sweep"
    )]
    grid: Vec<SweepAxis>,
    /// Run N of the grid's combinations, drawn at random, instead of all of them.
    #[arg(long, value_name = "N", help_heading = "Sweep")]
    random: Option<usize>,
    /// The seed of --random's draw.
    #[arg(long, value_name = "S", default_value_t = 0, help_heading = "Sweep")]
    sweep_seed: u64,
    /// The sweep's name: its runs are tagged sweep:NAME.
    #[arg(long, value_name = "NAME", help_heading = "Sweep")]
    sweep: String,
    /// The median stopping rule: stop a trial at a validation where its best score so far is
    /// worse than the median of the earlier trials' at the same step (it stays, cancelled and
    /// resumable, with a note saying why).
    #[arg(long, help_heading = "Sweep")]
    median_stop: bool,
}

pub fn run(cmd: SweepCommand, db: &Path) -> anyhow::Result<ExitCode> {
    match cmd {
        SweepCommand::Create(args) => create(*args, db),
        SweepCommand::Show { name, json } => show(&name, json, db),
    }
}

fn create(args: SweepArgs, db: &Path) -> anyhow::Result<ExitCode> {
    let base = args.train.run_config()?;
    if base.out.is_some() {
        anyhow::bail!(
            "a sweep's trials export into their own run folders; leave out --out and copy the \
             best one afterwards (hone export --run ID --out DIR)"
        );
    }
    let trials = sweep::trials(&args.grid, args.random, args.sweep_seed);
    // Every trial's configuration is checked before the first one runs.
    let configs = trials
        .iter()
        .map(|t| sweep::apply(&base, t))
        .collect::<Result<Vec<_>, _>>()?;
    let tag = sweep::tag(&args.sweep);
    hone_app::run_notes::normalise_tags(std::slice::from_ref(&tag))?;
    let app = App::open(db)?;
    if app.store().runs()?.iter().any(|r| r.tags.contains(&tag)) {
        anyhow::bail!(
            "a sweep named '{}' has runs already; give this one another --sweep name",
            args.sweep
        );
    }
    drop(app);
    let json = args.train.json();
    if let Some(target) = args.train.target() {
        if args.median_stop {
            anyhow::bail!(
                "--median-stop compares trials as they finish one after another; on a compute \
                 target they run at once: leave it out"
            );
        }
        // Every trial is created first, then all go as one job array.
        let mut app = App::open(db)?;
        let mut ids = Vec::with_capacity(configs.len());
        for (trial, config) in trials.iter().zip(&configs) {
            let what = sweep::describe(trial);
            let id = app.create_run(config, Some(format!("{} · {what}", args.sweep)))?;
            app.set_run_tags(id, std::slice::from_ref(&tag))?;
            ids.push(id);
        }
        drop(app);
        super::target::submit(db, &ids, target, &args.sweep, json)?;
        return Ok(ExitCode::SUCCESS);
    }
    // Each finished trial's validation curve, for the median rule.
    let mut curves: Vec<Vec<(u64, f64)>> = Vec::new();
    for (i, (trial, config)) in trials.iter().zip(&configs).enumerate() {
        let what = sweep::describe(trial);
        if json {
            println!(
                "{}",
                serde_json::json!({"event": "trial", "sweep": args.sweep, "trial": i + 1,
                    "trials": trials.len(), "settings": what})
            );
        } else {
            eprintln!(
                "sweep {}: trial {} of {}: {what}",
                args.sweep,
                i + 1,
                trials.len()
            );
        }
        let mut app = App::open(db)?;
        let run_id = app.create_run(config, Some(format!("{} · {what}", args.sweep)))?;
        app.set_run_tags(run_id, std::slice::from_ref(&tag))?;
        drop(app);
        let mut curve: Vec<(u64, f64)> = Vec::new();
        let mut stopped: Option<String> = None;
        let mut watch = |event: &TrainEvent| {
            let TrainEvent::Evaluated {
                step,
                metric,
                value,
                ..
            } = event
            else {
                return false;
            };
            curve.push((*step, *value));
            let higher = metric.higher_is_better();
            let best = curve
                .iter()
                .map(|(_, v)| *v)
                .reduce(|a, b| if higher { a.max(b) } else { a.min(b) })
                .unwrap_or(*value);
            let stop = args.median_stop
                && stopped.is_none()
                && sweep::median_rule_stops(best, *step, &curves, higher);
            if stop {
                stopped = Some(format!(
                    "stopped by the sweep's median rule at step {step}: its best {metric} so far, \
                     {best:.4}, is worse than the median of the earlier trials' at that step"
                ));
            }
            stop
        };
        let code = follow_watching(
            spawn(db.to_path_buf(), run_id, false)?,
            db,
            json,
            false,
            &mut watch,
        )?;
        curves.push(curve);
        if let Some(why) = stopped {
            if !json {
                eprintln!("sweep {}: trial {}: {why}", args.sweep, i + 1);
            }
            App::open(db)?.set_run_notes(run_id, &why)?;
            continue;
        }
        if code != ExitCode::SUCCESS {
            eprintln!(
                "sweep {}: stopped after trial {}; its finished trials are kept",
                args.sweep,
                i + 1
            );
            return Ok(code);
        }
    }
    if !json {
        show(&args.sweep, false, db)?;
    }
    Ok(ExitCode::SUCCESS)
}

fn show(name: &str, json: bool, db: &Path) -> anyhow::Result<ExitCode> {
    let app = App::open(db)?;
    let trials = sweep::sweep_trials(&app.store().runs()?, name);
    if trials.is_empty() {
        anyhow::bail!("no sweep named '{name}' (its runs would be tagged sweep:{name})");
    }
    if json {
        println!(
            "{}",
            serde_json::to_string(&serde_json::json!({"sweep": name, "trials": trials}))?
        );
        return Ok(ExitCode::SUCCESS);
    }
    let metric = &trials[0].metric;
    println!("sweep {name}: {} trials, best {metric} first", trials.len());
    for (i, t) in trials.iter().enumerate() {
        let settings: Vec<String> = t.settings.iter().map(|(k, v)| format!("{k}={v}")).collect();
        let value = t
            .value
            .map_or_else(|| "—".to_string(), |v| format!("{v:.4}"));
        println!(
            "{}{:>3}. run {:<5} {metric} {value:<8} {}  ({})",
            if i == 0 { "★" } else { " " },
            i + 1,
            t.run_id,
            settings.join("  "),
            t.status.as_str()
        );
    }
    Ok(ExitCode::SUCCESS)
}
