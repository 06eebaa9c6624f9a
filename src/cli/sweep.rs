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
    /// Run N trials at a time on this machine (they share its cores: worth it when one run
    /// leaves cores idle or waits on data; with --target, Slurm decides).
    #[arg(long, value_name = "N", default_value_t = 1, help_heading = "Sweep")]
    parallel: usize,
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
    if args.parallel > 1 && args.train.target().is_none() {
        if args.median_stop {
            anyhow::bail!(
                "--median-stop compares trials as they finish one after another; leave out \
                 --parallel or --median-stop"
            );
        }
        return run_parallel(&args, db, &trials, &configs, &tag, json);
    }
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

/// Runs the trials `args.parallel` at a time in this process, each an ordinary run; a line per
/// trial as it starts and ends. Every trial runs even when one fails; the exit status says
/// whether all completed. Ctrl-C stops the running trials after their current step
/// (resumable) and starts no more.
fn run_parallel(
    args: &SweepArgs,
    db: &Path,
    trials: &[sweep::Trial],
    configs: &[hone_app::RunConfig],
    tag: &str,
    json: bool,
) -> anyhow::Result<ExitCode> {
    use std::sync::atomic::{AtomicBool, Ordering};
    use std::sync::mpsc::TryRecvError;
    let mut app = App::open(db)?;
    let mut queue = std::collections::VecDeque::new();
    for (i, (trial, config)) in trials.iter().zip(configs).enumerate() {
        let what = sweep::describe(trial);
        let id = app.create_run(config, Some(format!("{} · {what}", args.sweep)))?;
        app.set_run_tags(id, &[tag.to_string()])?;
        queue.push_back((i + 1, id, what));
    }
    drop(app);
    let stop = std::sync::Arc::new(AtomicBool::new(false));
    super::install_ctrl_c(
        stop.clone(),
        (!json).then_some("stopping the running trials after their current step"),
    )?;
    let total = trials.len();
    let say = |line: serde_json::Value, text: String| {
        if json {
            println!("{line}");
        } else {
            eprintln!("{text}");
        }
    };
    let mut running: Vec<(usize, hone_app::JobHandle)> = Vec::new();
    let mut all_completed = true;
    while !queue.is_empty() || !running.is_empty() {
        while running.len() < args.parallel && !stop.load(Ordering::SeqCst) {
            let Some((n, id, what)) = queue.pop_front() else {
                break;
            };
            say(
                serde_json::json!({"event": "trial", "sweep": args.sweep, "trial": n,
                    "trials": total, "run_id": id, "settings": what}),
                format!(
                    "sweep {}: trial {n} of {total} started (run {id}): {what}",
                    args.sweep
                ),
            );
            running.push((n, spawn(db.to_path_buf(), id, false)?));
        }
        if stop.load(Ordering::SeqCst) {
            queue.clear();
            running.iter().for_each(|(_, job)| job.cancel());
        }
        let mut i = 0;
        while i < running.len() {
            let ended = loop {
                match running[i].1.events().try_recv() {
                    Ok(_) => continue,
                    Err(TryRecvError::Empty) => break false,
                    Err(TryRecvError::Disconnected) => break true,
                }
            };
            if !ended {
                i += 1;
                continue;
            }
            let (n, job) = running.swap_remove(i);
            let id = job.run_id;
            let (status, error) = match job.join() {
                Ok(outcome) => (outcome.status.as_str().to_string(), None),
                Err(e) => ("failed".to_string(), Some(e.to_string())),
            };
            all_completed &= status == "completed";
            say(
                serde_json::json!({"event": "trial_ended", "sweep": args.sweep, "trial": n,
                    "run_id": id, "status": status, "error": error}),
                format!(
                    "sweep {}: trial {n} of {total} {status} (run {id}){}",
                    args.sweep,
                    error.map(|e| format!(": {e}")).unwrap_or_default()
                ),
            );
        }
        std::thread::sleep(std::time::Duration::from_millis(50));
    }
    if !json {
        show(&args.sweep, false, db)?;
    }
    Ok(if all_completed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
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
