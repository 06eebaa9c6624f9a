//! Slurm as the scheduler of a compute target: the batch script that runs trials as a job
//! array (`sbatch`), their state (`squeue`, then `scontrol` once they left the queue) and
//! cancelling them (`scancel`).

use super::shell::{quote, Shell};
use super::TargetSettings;
use crate::AppError;

/// A job to submit: one array element per trial folder, each running `hone remote-exec` on it.
pub struct BatchJob<'a> {
    /// Shown in `squeue` as `hone-NAME`.
    pub name: &'a str,
    /// The trials' folders on the cluster, in array order.
    pub trials: &'a [String],
    /// The `hone` executable on the nodes.
    pub hone: &'a str,
    /// Where the scheduler writes each element's output.
    pub log_dir: &'a str,
}

/// The batch script of `job` with the target's resources.
pub fn script(job: &BatchJob, settings: &TargetSettings) -> String {
    let name: String = job
        .name
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '-'
            }
        })
        .collect();
    let mut s = String::from("#!/bin/bash\n");
    s += &format!("#SBATCH --job-name=hone-{name}\n");
    s += &format!("#SBATCH --array=0-{}\n", job.trials.len().saturating_sub(1));
    s += &format!("#SBATCH --output={}/slurm-%A_%a.out\n", job.log_dir);
    if let Some(p) = &settings.partition {
        s += &format!("#SBATCH --partition={p}\n");
    }
    if let Some(g) = &settings.gres {
        s += &format!("#SBATCH --gres={g}\n");
    }
    if let Some(c) = settings.cpus_per_task {
        s += &format!("#SBATCH --cpus-per-task={c}\n");
    }
    if let Some(t) = &settings.time {
        s += &format!("#SBATCH --time={t}\n");
    }
    for extra in &settings.sbatch_args {
        s += &format!("#SBATCH {extra}\n");
    }
    s += "# Written by Hone: each array element trains (or resumes) the run in its folder.\n";
    s += "trials=(";
    s += &job
        .trials
        .iter()
        .map(|t| quote(t))
        .collect::<Vec<_>>()
        .join(" ");
    s += ")\n";
    s += &format!(
        "exec {} remote-exec \"${{trials[$SLURM_ARRAY_TASK_ID]}}\"\n",
        quote(job.hone)
    );
    s
}

/// The job id `sbatch --parsable` printed (`123`, or `123;cluster`).
pub fn parse_job_id(output: &str) -> Result<String, AppError> {
    let id = output.trim().split(';').next().unwrap_or("").trim();
    if id.is_empty() || !id.chars().all(|c| c.is_ascii_digit()) {
        return Err(AppError::Invalid(format!(
            "sbatch did not print a job id (it printed '{}')",
            output.trim()
        )));
    }
    Ok(id.to_string())
}

/// Submits the batch script at `path`; the job's id.
pub fn submit(shell: &Shell, path: &str) -> Result<String, AppError> {
    parse_job_id(&shell.run("sbatch", &["--parsable", path])?)
}

/// Where an array element is: still in the queue (pending, running, …) or gone from it
/// (`scontrol`'s last word on it, when the controller still remembers the job).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum JobState {
    /// In the queue, with Slurm's state (PENDING, RUNNING, COMPLETING, …).
    Queued(String),
    /// Out of the queue, with the state it ended in (COMPLETED, CANCELLED, FAILED, …) when
    /// known.
    Ended(Option<String>),
}

/// The state of array element `job` (`123_0`).
pub fn state(shell: &Shell, job: &str) -> Result<JobState, AppError> {
    // squeue exits non-zero for ids the controller has already forgotten: that is "ended".
    let listed = shell
        .run(
            "squeue",
            &["--noheader", "--array", "--jobs", job, "--format=%i %T"],
        )
        .unwrap_or_default();
    for line in listed.lines() {
        let mut words = line.split_whitespace();
        if let (Some(id), Some(state)) = (words.next(), words.next()) {
            if id == job {
                return Ok(match state {
                    "COMPLETED" | "CANCELLED" | "FAILED" | "TIMEOUT" | "NODE_FAIL"
                    | "PREEMPTED" | "OUT_OF_MEMORY" | "BOOT_FAIL" | "DEADLINE" => {
                        JobState::Ended(Some(state.to_string()))
                    }
                    other => JobState::Queued(other.to_string()),
                });
            }
        }
    }
    let shown = shell
        .run("scontrol", &["show", "job", job])
        .unwrap_or_default();
    let ended = shown
        .split_whitespace()
        .find_map(|w| w.strip_prefix("JobState="))
        .map(str::to_string);
    match ended.as_deref() {
        Some("PENDING" | "RUNNING" | "COMPLETING" | "CONFIGURING" | "SUSPENDED" | "REQUEUED") => {
            Ok(JobState::Queued(ended.unwrap_or_default()))
        }
        _ => Ok(JobState::Ended(ended)),
    }
}

/// Asks Slurm to stop array element `job` (SIGTERM: the run saves where it is and ends
/// cancelled).
pub fn cancel(shell: &Shell, job: &str) -> Result<(), AppError> {
    shell.run("scancel", &[job]).map(|_| ())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_script_runs_one_trial_per_array_element_with_the_targets_resources() {
        let settings = TargetSettings {
            partition: Some("gpu".into()),
            gres: Some("gpu:1".into()),
            cpus_per_task: Some(8),
            time: Some("02:00:00".into()),
            sbatch_args: vec!["--mem=16G".into()],
            ..TargetSettings::new("/scratch/hone")
        };
        let trials = vec![
            "/scratch/hone/a".to_string(),
            "/scratch/hone/b c".to_string(),
        ];
        let text = script(
            &BatchJob {
                name: "lr sweep",
                trials: &trials,
                hone: "/opt/hone/bin/hone",
                log_dir: "/scratch/hone/logs",
            },
            &settings,
        );
        for line in [
            "#SBATCH --job-name=hone-lr-sweep",
            "#SBATCH --array=0-1",
            "#SBATCH --output=/scratch/hone/logs/slurm-%A_%a.out",
            "#SBATCH --partition=gpu",
            "#SBATCH --gres=gpu:1",
            "#SBATCH --cpus-per-task=8",
            "#SBATCH --time=02:00:00",
            "#SBATCH --mem=16G",
            "trials=(/scratch/hone/a '/scratch/hone/b c')",
            "exec /opt/hone/bin/hone remote-exec \"${trials[$SLURM_ARRAY_TASK_ID]}\"",
        ] {
            assert!(
                text.lines().any(|l| l == line),
                "{line} missing from\n{text}"
            );
        }
    }

    #[test]
    fn job_ids_are_read_from_sbatch_and_anything_else_is_refused() {
        assert_eq!(parse_job_id("4242\n").unwrap(), "4242");
        assert_eq!(parse_job_id("17;cluster-a\n").unwrap(), "17");
        assert!(parse_job_id("sbatch: error: Batch job submission failed").is_err());
        assert!(parse_job_id("").is_err());
    }
}
