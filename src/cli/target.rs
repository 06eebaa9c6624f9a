//! `hone target`: compute targets (a Slurm cluster on this host or over SSH) that runs and
//! sweeps are submitted to; `hone runs sync` and the hidden `hone remote-exec`, which the
//! cluster's nodes run.

use std::path::Path;
use std::process::ExitCode;
use std::time::Duration;

use clap::{Args, Subcommand};
use hone_app::remote::{self, TargetSettings};
use hone_app::types::RunStatus;
use hone_app::App;

#[derive(Subcommand)]
pub enum TargetCommand {
    /// Add a Slurm cluster as a compute target (its sinfo must answer).
    Add(AddArgs),
    /// The compute targets.
    List {
        /// One JSON array.
        #[arg(long)]
        json: bool,
    },
    /// Remove a compute target (refused while runs on it have not finished).
    Remove { name: String },
}

#[derive(Args)]
#[command(
    after_help = "Examples:\n  hone target add cluster --ssh me@login.example.org --dir /scratch/me/hone --partition gpu --gres gpu:1\n  hone target add here --dir /srv/hone-jobs        (Slurm on this machine)\n  hone train --target cluster --model ... --train train.csv\n  hone runs sync --wait"
)]
pub struct AddArgs {
    /// The target's name.
    name: String,
    /// A folder on the cluster that its nodes share; runs are staged there.
    #[arg(long, value_name = "DIR")]
    dir: String,
    /// The login node, as ssh reaches it (user@host or a Host of ~/.ssh/config); without it,
    /// Slurm runs on this machine.
    #[arg(long, value_name = "HOST")]
    ssh: Option<String>,
    /// An ssh configuration file to read instead of ~/.ssh/config (ssh -F).
    #[arg(long, value_name = "FILE", requires = "ssh")]
    ssh_config: Option<String>,
    /// The hone executable on the nodes [default: this one on this machine, hone over SSH].
    #[arg(long, value_name = "PATH")]
    hone: Option<String>,
    /// Slurm partition (--partition).
    #[arg(long)]
    partition: Option<String>,
    /// Generic resources per job (--gres), e.g. gpu:1.
    #[arg(long)]
    gres: Option<String>,
    /// CPU cores per job (--cpus-per-task).
    #[arg(long, value_name = "N")]
    cpus_per_task: Option<u32>,
    /// Time limit per job (--time), e.g. 02:00:00.
    #[arg(long, value_name = "T")]
    time: Option<String>,
    /// Another sbatch option, e.g. --sbatch-arg=--mem=16G (repeatable).
    #[arg(long = "sbatch-arg", value_name = "OPTION", allow_hyphen_values = true)]
    sbatch_args: Vec<String>,
}

pub fn run(cmd: TargetCommand, db: &Path) -> anyhow::Result<ExitCode> {
    match cmd {
        TargetCommand::Add(a) => {
            let settings = TargetSettings {
                ssh: a.ssh,
                ssh_config: a.ssh_config,
                hone: a.hone,
                partition: a.partition,
                gres: a.gres,
                cpus_per_task: a.cpus_per_task,
                time: a.time,
                sbatch_args: a.sbatch_args,
                ..TargetSettings::new(&a.dir)
            };
            App::open(db)?.add_target(&a.name, &settings)?;
            println!(
                "target {}: Slurm on {}, runs staged in {}",
                a.name,
                settings.shell().describe(),
                settings.dir
            );
        }
        TargetCommand::List { json } => {
            let targets = App::open(db)?.targets()?;
            if json {
                println!("{}", serde_json::to_string(&targets)?);
            } else if targets.is_empty() {
                println!("no compute targets; add one with `hone target add NAME --dir DIR [--ssh HOST]`");
            } else {
                for t in &targets {
                    println!(
                        "{:<12} slurm on {:<24} {}",
                        t.name,
                        t.settings.shell().describe(),
                        t.settings.dir
                    );
                }
            }
        }
        TargetCommand::Remove { name } => {
            App::open(db)?.remove_target(&name)?;
            println!("removed target {name}");
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// Submits queued run `id` to `target` and says how to follow it.
pub fn submit(db: &Path, ids: &[i64], target: &str, name: &str, json: bool) -> anyhow::Result<()> {
    let mut app = App::open(db)?;
    let job = app.submit_runs(ids, target, name)?;
    if json {
        println!(
            "{}",
            serde_json::json!({"event": "submitted", "target": target, "job": job, "run_ids": ids})
        );
    } else {
        let runs: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        eprintln!(
            "submitted run{} {} to target {target} as Slurm job {job}; follow with `hone runs sync --wait`",
            if ids.len() == 1 { "" } else { "s" },
            runs.join(", ")
        );
    }
    Ok(())
}

/// `hone runs sync`: brings runs on compute targets up to date; with `wait`, until none is
/// queued or running. Exit status 1 when a run failed.
pub fn sync(db: &Path, wait: bool, interval: f64, json: bool) -> anyhow::Result<ExitCode> {
    let mut failed = false;
    let mut last: std::collections::HashMap<i64, (RunStatus, String)> = Default::default();
    // Syncs in a row in which every run failed to sync (a target out of reach): --wait gives
    // up after this many rather than waiting for ever.
    const GIVE_UP_AFTER: usize = 12;
    let mut failing = 0;
    loop {
        let mut app = App::open(db)?;
        let changes = app.sync_remote_runs()?;
        drop(app);
        for c in &changes {
            failed |= c.status == RunStatus::Failed;
            if json {
                println!("{}", serde_json::to_string(c)?);
                continue;
            }
            let now = (c.status, c.job_state.clone());
            if last.get(&c.run_id) != Some(&now) || c.error.is_some() {
                match &c.error {
                    Some(e) => eprintln!("run {}: cannot sync: {e}", c.run_id),
                    None => eprintln!(
                        "run {}: {} (Slurm: {})",
                        c.run_id,
                        c.status.as_str(),
                        c.job_state.to_lowercase()
                    ),
                }
                last.insert(c.run_id, now);
            }
        }
        let active = changes
            .iter()
            .any(|c| matches!(c.status, RunStatus::Queued | RunStatus::Running));
        failing = if !changes.is_empty() && changes.iter().all(|c| c.error.is_some()) {
            failing + 1
        } else {
            0
        };
        if wait && failing >= GIVE_UP_AFTER {
            anyhow::bail!(
                "no run on a compute target could be synced in the last {GIVE_UP_AFTER} tries \
                 (the errors are above); fix the cause and run `hone runs sync --wait` again"
            );
        }
        if !wait || !active {
            if !json && changes.is_empty() {
                eprintln!("no runs on compute targets are queued or running");
            }
            return Ok(if failed {
                ExitCode::FAILURE
            } else {
                ExitCode::SUCCESS
            });
        }
        std::thread::sleep(Duration::from_secs_f64(interval.max(0.2)));
    }
}

/// `hone remote-exec DIR`, run by a cluster node: trains the run staged in DIR.
pub fn remote_exec(dir: &Path) -> anyhow::Result<ExitCode> {
    let cancel = std::sync::Arc::new(std::sync::atomic::AtomicBool::new(false));
    // scancel sends SIGTERM: the run stops after its step, saving where it is.
    super::install_ctrl_c(cancel.clone(), Some("stopping after the current step"))?;
    let status = remote::remote_exec(dir, &cancel)?;
    eprintln!("run in {}: {}", dir.display(), status.as_str());
    Ok(match status {
        RunStatus::Completed => ExitCode::SUCCESS,
        _ => ExitCode::FAILURE,
    })
}
