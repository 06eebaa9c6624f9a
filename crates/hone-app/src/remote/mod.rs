//! Compute targets: runs handed to a cluster scheduler (Slurm) on this host or on a login host
//! reached over SSH, while they stay ordinary runs in this database.
//!
//! Submitting a run stages it in a folder of its own on the cluster (`run.json`, its data: the
//! files it names or a one-dataset snapshot of this database, and the model folder when the
//! cluster cannot see this machine's) and submits a batch job (a job array for a sweep) whose
//! elements run `hone remote-exec FOLDER` — the same `hone` binary, training into a database in
//! that folder and appending every event to `events.jsonl`. [`App::sync_remote_runs`] reads
//! those lines into this database as they come (the live curves), asks the scheduler whether
//! the job still runs, and when it ended imports the run's evaluations, status and exported
//! model. Cancel is `scancel` (the run saves where it is); resume submits the same folder again,
//! which continues from its last checkpoint.

mod node;
pub mod shell;
pub mod slurm;
mod stage;
mod sync;

use serde::{Deserialize, Serialize};

use crate::{App, AppError};

pub use node::remote_exec;
pub use shell::Shell;
pub use sync::RemoteChange;

/// How a compute target is reached and what its jobs ask for.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TargetSettings {
    /// The scheduler: `slurm` (the only one so far).
    #[serde(default = "slurm")]
    pub scheduler: String,
    /// `user@host` (or a `Host` of `~/.ssh/config`) of the login node; none: this machine.
    #[serde(default)]
    pub ssh: Option<String>,
    /// An ssh configuration file to read instead of `~/.ssh/config` (`ssh -F`).
    #[serde(default)]
    pub ssh_config: Option<String>,
    /// A folder on the cluster that its nodes share: runs are staged there.
    pub dir: String,
    /// The `hone` executable on the nodes; default: this one on this machine, `hone` over SSH.
    #[serde(default)]
    pub hone: Option<String>,
    /// Slurm partition (`--partition`).
    #[serde(default)]
    pub partition: Option<String>,
    /// Generic resources per job (`--gres`, e.g. `gpu:1`).
    #[serde(default)]
    pub gres: Option<String>,
    /// CPU cores per job (`--cpus-per-task`).
    #[serde(default)]
    pub cpus_per_task: Option<u32>,
    /// Time limit per job (`--time`, e.g. `02:00:00`).
    #[serde(default)]
    pub time: Option<String>,
    /// Other `sbatch` options, one per entry (e.g. `--mem=16G`, `--account=lab`).
    #[serde(default)]
    pub sbatch_args: Vec<String>,
}

fn slurm() -> String {
    "slurm".into()
}

impl TargetSettings {
    /// A Slurm target on this host staging runs in `dir`.
    pub fn new(dir: &str) -> Self {
        TargetSettings {
            scheduler: slurm(),
            ssh: None,
            ssh_config: None,
            dir: dir.to_string(),
            hone: None,
            partition: None,
            gres: None,
            cpus_per_task: None,
            time: None,
            sbatch_args: Vec::new(),
        }
    }

    /// Where its commands run.
    pub fn shell(&self) -> Shell {
        Shell::new(self.ssh.as_deref(), self.ssh_config.as_deref())
    }

    /// The `hone` the nodes run: the one configured; over SSH, `hone` on the nodes' PATH; on
    /// this machine, the `hone` command line beside this executable (the desktop app's
    /// binary is not it), else `hone` on PATH.
    pub fn hone_on_nodes(&self) -> Result<String, AppError> {
        if let Some(h) = &self.hone {
            return Ok(h.clone());
        }
        if let Shell::Ssh { .. } = self.shell() {
            return Ok("hone".into());
        }
        let exe = std::env::current_exe()
            .map_err(|e| AppError::Invalid(format!("cannot tell where hone is: {e}")))?;
        let beside = exe.with_file_name(format!("hone{}", std::env::consts::EXE_SUFFIX));
        Ok(if beside.is_file() {
            beside.display().to_string()
        } else {
            "hone".into()
        })
    }

    fn check(&self) -> Result<(), AppError> {
        if self.scheduler != "slurm" {
            return Err(AppError::Invalid(format!(
                "unknown scheduler '{}': Hone submits to slurm",
                self.scheduler
            )));
        }
        if !self.dir.starts_with('/') {
            return Err(AppError::Invalid(format!(
                "the target's folder '{}' must be an absolute path on the cluster",
                self.dir
            )));
        }
        Ok(())
    }
}

/// A configured target.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Target {
    pub name: String,
    pub settings: TargetSettings,
}

/// Where a run handed to a target is (kept with the run).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RemoteRun {
    /// The target's name.
    pub target: String,
    /// The scheduler's id of the job element running it (`123_0`).
    pub job: String,
    /// Its folder on the cluster.
    pub dir: String,
    /// How many bytes of its `events.jsonl` are already in this database.
    #[serde(default)]
    pub events_read: u64,
    /// How many times it was submitted (resumes submit it again).
    #[serde(default = "one")]
    pub submissions: u32,
    /// `events_read` when it was last submitted: a job that ends with none read since never
    /// started the run.
    #[serde(default)]
    pub events_at_submission: u64,
}

fn one() -> u32 {
    1
}

/// Milliseconds since the epoch: names a submission's folders and batch script uniquely.
fn stamp() -> u128 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or_default()
}

impl RemoteRun {
    /// The placement kept with run `run`, if it was handed to a target.
    pub fn of(run: &hone_store::RunRecord) -> Result<Option<RemoteRun>, AppError> {
        run.remote
            .clone()
            .map(serde_json::from_value)
            .transpose()
            .map_err(|e| AppError::Invalid(format!("run {}: its remote placement: {e}", run.id)))
    }
}

impl App {
    /// Adds compute target `name`, checking that its scheduler answers.
    pub fn add_target(&mut self, name: &str, settings: &TargetSettings) -> Result<(), AppError> {
        if name.trim().is_empty() || name.contains(char::is_whitespace) {
            return Err(AppError::Invalid(format!(
                "'{name}' cannot name a target: use a word without spaces, e.g. cluster"
            )));
        }
        settings.check()?;
        // Which hone the nodes run is settled now, by the process that adds the target.
        let settings = &TargetSettings {
            hone: Some(settings.hone_on_nodes()?),
            ..settings.clone()
        };
        let shell = settings.shell();
        shell.run("sinfo", &["--version"]).map_err(|e| {
            AppError::Invalid(format!(
                "{e}; a Slurm target needs sinfo, sbatch, squeue and scancel on {}",
                shell.describe()
            ))
        })?;
        let value = serde_json::to_value(settings).map_err(|e| AppError::Invalid(e.to_string()))?;
        self.store.add_target(name, &value)?;
        Ok(())
    }

    /// Compute target `name`.
    pub fn target(&self, name: &str) -> Result<Target, AppError> {
        let record = self.store.target(name)?.ok_or_else(|| {
            AppError::Invalid(format!(
                "no compute target named '{name}'; add one with `hone target add`"
            ))
        })?;
        Ok(Target {
            name: record.name,
            settings: serde_json::from_value(record.settings)
                .map_err(|e| AppError::Invalid(format!("target '{name}': {e}")))?,
        })
    }

    /// Every compute target.
    pub fn targets(&self) -> Result<Vec<Target>, AppError> {
        self.store
            .targets()?
            .into_iter()
            .map(|r| self.target(&r.name))
            .collect()
    }

    /// Removes compute target `name`; refused while runs on it have not finished.
    pub fn remove_target(&mut self, name: &str) -> Result<(), AppError> {
        let busy: Vec<i64> = self
            .store
            .active_remote_runs()?
            .iter()
            .filter(|r| {
                RemoteRun::of(r)
                    .ok()
                    .flatten()
                    .is_some_and(|p| p.target == name)
            })
            .map(|r| r.id)
            .collect();
        if !busy.is_empty() {
            return Err(AppError::Invalid(format!(
                "runs {busy:?} are still on target '{name}'; cancel them or wait for them first"
            )));
        }
        if !self.store.remove_target(name)? {
            return Err(AppError::Invalid(format!(
                "no compute target named '{name}'"
            )));
        }
        Ok(())
    }

    /// Hands queued runs `ids` to target `target` as one job (an array, one element per run):
    /// each is staged in a folder of its own there. Returns the scheduler's job id.
    pub fn submit_runs(
        &mut self,
        ids: &[i64],
        target: &str,
        name: &str,
    ) -> Result<String, AppError> {
        let target = self.target(target)?;
        let shell = target.settings.shell();
        let stamp = stamp();
        let mut trials = Vec::with_capacity(ids.len());
        for &id in ids {
            let run = self.store.run(id)?;
            if run.status != hone_store::RunStatus::Queued {
                return Err(AppError::NotQueued {
                    id,
                    status: run.status.as_str().to_string(),
                });
            }
            let dir = format!(
                "{}/hone-{stamp}-run{id}",
                target.settings.dir.trim_end_matches('/')
            );
            self.stage_run(&run, &target.settings, &shell, &dir)?;
            trials.push(dir);
        }
        let job = self.submit_job(&target, &shell, &trials, name, stamp)?;
        for (i, (&id, dir)) in ids.iter().zip(&trials).enumerate() {
            let placement = RemoteRun {
                target: target.name.clone(),
                job: format!("{job}_{i}"),
                dir: dir.clone(),
                events_read: 0,
                submissions: 1,
                events_at_submission: 0,
            };
            self.set_remote(id, &placement)?;
        }
        Ok(job)
    }

    /// Submits an interrupted, cancelled or failed run on a target again: the same folder, so
    /// it continues from its last checkpoint. Returns the new job id.
    pub fn resubmit_run(&mut self, id: i64) -> Result<String, AppError> {
        let run = self.store.run(id)?;
        let Some(mut placement) = RemoteRun::of(&run)? else {
            return Err(AppError::Invalid(format!(
                "run {id} did not run on a compute target"
            )));
        };
        if !matches!(
            run.status,
            hone_store::RunStatus::Interrupted
                | hone_store::RunStatus::Cancelled
                | hone_store::RunStatus::Failed
        ) {
            return Err(AppError::Invalid(format!(
                "run {id} is {}; only interrupted, cancelled or failed runs can be resumed",
                run.status.as_str()
            )));
        }
        let target = self.target(&placement.target)?;
        let shell = target.settings.shell();
        let stamp = stamp();
        let job = self.submit_job(
            &target,
            &shell,
            std::slice::from_ref(&placement.dir),
            &format!("run{id}"),
            stamp,
        )?;
        placement.job = format!("{job}_0");
        placement.submissions += 1;
        placement.events_at_submission = placement.events_read;
        self.set_remote(id, &placement)?;
        self.store.requeue_run(id)?;
        Ok(job)
    }

    /// Asks the scheduler to stop run `id` (it saves where it is and ends cancelled; the next
    /// [`App::sync_remote_runs`] records that).
    pub fn cancel_remote_run(&mut self, id: i64) -> Result<(), AppError> {
        let run = self.store.run(id)?;
        let Some(placement) = RemoteRun::of(&run)? else {
            return Err(AppError::Invalid(format!(
                "run {id} did not run on a compute target"
            )));
        };
        let target = self.target(&placement.target)?;
        slurm::cancel(&target.settings.shell(), &placement.job)
    }

    fn submit_job(
        &self,
        target: &Target,
        shell: &Shell,
        trials: &[String],
        name: &str,
        stamp: u128,
    ) -> Result<String, AppError> {
        let base = target.settings.dir.trim_end_matches('/');
        let log_dir = format!("{base}/logs");
        shell.run("mkdir", &["-p", &log_dir])?;
        let hone = target.settings.hone_on_nodes()?;
        let text = slurm::script(
            &slurm::BatchJob {
                name,
                trials,
                hone: &hone,
                log_dir: &log_dir,
            },
            &target.settings,
        );
        let path = format!("{base}/job-{stamp}.sbatch");
        shell.write(&path, text.as_bytes())?;
        slurm::submit(shell, &path)
    }

    fn set_remote(&mut self, id: i64, placement: &RemoteRun) -> Result<(), AppError> {
        let value =
            serde_json::to_value(placement).map_err(|e| AppError::Invalid(e.to_string()))?;
        self.store.set_run_remote(id, Some(&value))?;
        Ok(())
    }
}
