//! Runs and what they record: status, metrics over time, evaluations, artifacts.

use rusqlite::{params, OptionalExtension, Row};
use serde::{Deserialize, Serialize};

use crate::{Result, Store, StoreError};

/// Where a run is in its life: queued → running → completed | failed | cancelled |
/// interrupted (the process died; resumable).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum RunStatus {
    Queued,
    Running,
    Completed,
    Failed,
    Cancelled,
    Interrupted,
}

impl RunStatus {
    pub fn as_str(self) -> &'static str {
        match self {
            RunStatus::Queued => "queued",
            RunStatus::Running => "running",
            RunStatus::Completed => "completed",
            RunStatus::Failed => "failed",
            RunStatus::Cancelled => "cancelled",
            RunStatus::Interrupted => "interrupted",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        Ok(match s {
            "queued" => RunStatus::Queued,
            "running" => RunStatus::Running,
            "completed" => RunStatus::Completed,
            "failed" => RunStatus::Failed,
            "cancelled" => RunStatus::Cancelled,
            "interrupted" => RunStatus::Interrupted,
            other => return Err(StoreError::Invalid(format!("unknown run status '{other}'"))),
        })
    }
}

/// A run to create.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewRun {
    pub name: Option<String>,
    pub config: serde_json::Value,
    pub dataset_id: Option<i64>,
    pub split_id: Option<i64>,
    pub model_fingerprint: Option<String>,
    pub dataset_fingerprint: Option<String>,
    pub hardware: serde_json::Value,
    /// Folder of the run's checkpoints.
    pub run_dir: String,
}

/// A stored run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunRecord {
    pub id: i64,
    pub name: Option<String>,
    pub status: RunStatus,
    pub config: serde_json::Value,
    pub dataset_id: Option<i64>,
    pub split_id: Option<i64>,
    pub model_fingerprint: Option<String>,
    pub dataset_fingerprint: Option<String>,
    pub hardware: serde_json::Value,
    pub run_dir: String,
    pub error: Option<String>,
    pub pid: Option<i64>,
    /// Optimizer steps recorded so far.
    pub step: i64,
    pub total_steps: Option<i64>,
    pub final_metrics: Option<serde_json::Value>,
    pub created_at: String,
    pub started_at: Option<String>,
    pub finished_at: Option<String>,
    /// The person's tags (to find and group runs).
    #[serde(default)]
    pub tags: Vec<String>,
    /// The person's notes.
    #[serde(default)]
    pub notes: Option<String>,
    /// Another process asked the run to stop (it stops after its current step).
    #[serde(default)]
    pub cancel_requested: bool,
    /// Where a run handed to a compute target went (see `hone_app::remote`); `None` for runs
    /// executed by a process on this machine.
    #[serde(default)]
    pub remote: Option<serde_json::Value>,
}

/// One metric value at one step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MetricRow {
    pub step: i64,
    pub epoch: Option<f64>,
    pub name: String,
    pub value: f64,
    pub recorded_at: String,
}

/// An evaluation of a run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EvaluationRecord {
    pub step: i64,
    pub epoch: Option<f64>,
    pub part: String,
    pub report: serde_json::Value,
    pub predictions: Option<serde_json::Value>,
    pub created_at: String,
}

/// A causal-LM run's answer to one of its fixed prompts at one evaluation.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SampleRecord {
    pub step: i64,
    pub prompt: String,
    pub answer: String,
    pub tokens: i64,
}

/// A file a run produced.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ArtifactRecord {
    pub kind: String,
    pub path: String,
    pub step: Option<i64>,
    pub created_at: String,
}

const RUN_COLUMNS: &str = "id, name, status, config_json, dataset_id, split_id, model_fingerprint,
    dataset_fingerprint, hardware_json, run_dir, error, pid, step, total_steps, final_metrics_json,
    created_at, started_at, finished_at, tags_json, notes, cancel_requested, remote_json";

fn json(text: Option<String>) -> rusqlite::Result<Option<serde_json::Value>> {
    text.map(|t| {
        serde_json::from_str(&t).map_err(|e| {
            rusqlite::Error::FromSqlConversionFailure(0, rusqlite::types::Type::Text, Box::new(e))
        })
    })
    .transpose()
}

fn run_from_row(r: &Row) -> rusqlite::Result<(RunRecord, String)> {
    Ok((
        RunRecord {
            id: r.get(0)?,
            name: r.get(1)?,
            status: RunStatus::Queued,
            config: json(r.get(3)?)?.unwrap_or_default(),
            dataset_id: r.get(4)?,
            split_id: r.get(5)?,
            model_fingerprint: r.get(6)?,
            dataset_fingerprint: r.get(7)?,
            hardware: json(r.get(8)?)?.unwrap_or_default(),
            run_dir: r.get(9)?,
            error: r.get(10)?,
            pid: r.get(11)?,
            step: r.get(12)?,
            total_steps: r.get(13)?,
            final_metrics: json(r.get(14)?)?,
            created_at: r.get(15)?,
            started_at: r.get(16)?,
            finished_at: r.get(17)?,
            tags: json(r.get(18)?)?
                .and_then(|v| serde_json::from_value(v).ok())
                .unwrap_or_default(),
            notes: r.get(19)?,
            cancel_requested: r.get::<_, i64>(20)? != 0,
            remote: json(r.get(21)?)?,
        },
        r.get(2)?,
    ))
}

/// Inserts (or replaces, for a step run again after a resume) metric values; non-finite values
/// are skipped.
fn insert_metrics(
    tx: &rusqlite::Transaction,
    id: i64,
    step: i64,
    epoch: f64,
    metrics: &[(&str, f64)],
) -> Result<()> {
    let mut stmt = tx.prepare_cached(
        "INSERT OR REPLACE INTO metrics (run_id, step, epoch, name, value) VALUES (?1, ?2, ?3, ?4, ?5)",
    )?;
    for (name, value) in metrics {
        if value.is_finite() {
            stmt.execute(params![id, step, epoch, name, value])?;
        }
    }
    Ok(())
}

impl Store {
    /// Creates a queued run. Returns its id.
    pub fn create_run(&mut self, run: &NewRun) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO runs (name, status, config_json, dataset_id, split_id, model_fingerprint,
                               dataset_fingerprint, hardware_json, run_dir)
             VALUES (?1, 'queued', ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                run.name,
                run.config.to_string(),
                run.dataset_id,
                run.split_id,
                run.model_fingerprint,
                run.dataset_fingerprint,
                run.hardware.to_string(),
                run.run_dir
            ],
        )?;
        Ok(self.conn.last_insert_rowid())
    }

    /// Sets where a run keeps its files.
    pub fn set_run_dir(&mut self, id: i64, dir: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET run_dir = ?2 WHERE id = ?1",
            params![id, dir],
        )?;
        Ok(())
    }

    /// Records the fingerprints of the model and data a run trains on.
    pub fn set_run_fingerprints(&mut self, id: i64, model: &str, data: &str) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET model_fingerprint = ?2, dataset_fingerprint = ?3 WHERE id = ?1",
            params![id, model, data],
        )?;
        Ok(())
    }

    /// Marks a run as running in process `pid` (started at `pid_started`, to tell it from a
    /// later process with the same id).
    pub fn start_run(
        &mut self,
        id: i64,
        pid: i64,
        pid_started: Option<i64>,
        total_steps: i64,
    ) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE runs SET status = 'running', pid = ?2, pid_started = ?3, total_steps = ?4, error = NULL,
                 finished_at = NULL,
                 started_at = COALESCE(started_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             WHERE id = ?1",
            params![id, pid, pid_started, total_steps],
        )?;
        if n == 0 {
            return Err(StoreError::NoRun(id));
        }
        Ok(())
    }

    /// Sets a run's tags (as given: the caller checks and orders them).
    pub fn set_run_tags(&mut self, id: i64, tags: &[String]) -> Result<()> {
        let text = serde_json::to_string(tags).map_err(|e| StoreError::Invalid(e.to_string()))?;
        self.update_run(id, "UPDATE runs SET tags_json = ?2 WHERE id = ?1", &text)
    }

    /// Sets a run's notes (`None` clears them).
    pub fn set_run_notes(&mut self, id: i64, notes: Option<&str>) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE runs SET notes = ?2 WHERE id = ?1",
            params![id, notes],
        )?;
        if n == 0 {
            return Err(StoreError::NoRun(id));
        }
        Ok(())
    }

    /// Asks a running run to stop; false when it is not running.
    pub fn request_cancel(&mut self, id: i64) -> Result<bool> {
        let n = self.conn.execute(
            "UPDATE runs SET cancel_requested = 1 WHERE id = ?1 AND status IN ('running', 'queued')",
            params![id],
        )?;
        if n == 0 {
            self.run(id)?;
        }
        Ok(n > 0)
    }

    /// Whether another process asked run `id` to stop (one indexed read: cheap per step).
    pub fn cancel_requested(&self, id: i64) -> Result<bool> {
        Ok(self
            .conn
            .query_row(
                "SELECT cancel_requested FROM runs WHERE id = ?1",
                params![id],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .ok_or(StoreError::NoRun(id))?
            != 0)
    }

    fn update_run(&mut self, id: i64, sql: &str, value: &str) -> Result<()> {
        if self.conn.execute(sql, params![id, value])? == 0 {
            return Err(StoreError::NoRun(id));
        }
        Ok(())
    }

    /// Records the metrics of one training step (one transaction).
    pub fn record_step(
        &mut self,
        id: i64,
        step: i64,
        epoch: f64,
        metrics: &[(&str, f64)],
    ) -> Result<()> {
        let tx = self.write_transaction()?;
        insert_metrics(&tx, id, step, epoch, metrics)?;
        tx.execute("UPDATE runs SET step = ?2 WHERE id = ?1", params![id, step])?;
        tx.commit()?;
        Ok(())
    }

    /// Records an evaluation and its headline metrics (one transaction).
    #[allow(clippy::too_many_arguments)]
    pub fn record_evaluation(
        &mut self,
        id: i64,
        step: i64,
        epoch: f64,
        part: &str,
        report: &serde_json::Value,
        predictions: Option<&serde_json::Value>,
        metrics: &[(&str, f64)],
    ) -> Result<()> {
        let tx = self.write_transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO evaluations (run_id, step, epoch, part, report_json, predictions_json)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
            params![id, step, epoch, part, report.to_string(), predictions.map(|p| p.to_string())],
        )?;
        insert_metrics(&tx, id, step, epoch, metrics)?;
        tx.commit()?;
        Ok(())
    }

    /// Records a run's answers to its fixed prompts at `step` (`(prompt, answer, tokens)` in
    /// the prompts' order), replacing any recorded for that step (one transaction).
    pub fn record_samples(
        &mut self,
        id: i64,
        step: i64,
        samples: &[(&str, &str, i64)],
    ) -> Result<()> {
        let tx = self.write_transaction()?;
        tx.execute(
            "DELETE FROM samples WHERE run_id = ?1 AND step = ?2",
            params![id, step],
        )?;
        for (position, (prompt, answer, tokens)) in samples.iter().enumerate() {
            tx.execute(
                "INSERT INTO samples (run_id, step, position, prompt, answer, tokens)
                 VALUES (?1, ?2, ?3, ?4, ?5, ?6)",
                params![id, step, position as i64, prompt, answer, tokens],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// A run's sample answers, by step and then in the prompts' order.
    pub fn samples(&self, id: i64) -> Result<Vec<SampleRecord>> {
        Ok(self
            .conn
            .prepare(
                "SELECT step, prompt, answer, tokens FROM samples WHERE run_id = ?1
                 ORDER BY step, position",
            )?
            .query_map([id], |r| {
                Ok(SampleRecord {
                    step: r.get(0)?,
                    prompt: r.get(1)?,
                    answer: r.get(2)?,
                    tokens: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Records (or updates) a run's artifact of a kind ("checkpoint_best", "checkpoint_last",
    /// "export").
    pub fn record_artifact(
        &mut self,
        id: i64,
        kind: &str,
        path: &str,
        step: Option<i64>,
    ) -> Result<()> {
        self.conn.execute(
            "INSERT INTO artifacts (run_id, kind, path, step) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_id, kind) DO UPDATE SET path = excluded.path, step = excluded.step,
               created_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now')",
            params![id, kind, path, step],
        )?;
        Ok(())
    }

    /// Forgets a run's artifact of a kind (its files were removed).
    pub fn remove_artifact(&mut self, id: i64, kind: &str) -> Result<()> {
        self.conn.execute(
            "DELETE FROM artifacts WHERE run_id = ?1 AND kind = ?2",
            params![id, kind],
        )?;
        Ok(())
    }

    /// Ends a run with `status`, an error message for failures, and its final metrics.
    pub fn finish_run(
        &mut self,
        id: i64,
        status: RunStatus,
        error: Option<&str>,
        final_metrics: Option<&serde_json::Value>,
    ) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = ?2, error = ?3,
                 final_metrics_json = COALESCE(?4, final_metrics_json),
                 finished_at = strftime('%Y-%m-%dT%H:%M:%fZ', 'now'), pid = NULL,
                 cancel_requested = 0
             WHERE id = ?1",
            params![
                id,
                status.as_str(),
                error,
                final_metrics.map(|m| m.to_string())
            ],
        )?;
        Ok(())
    }

    /// One run.
    pub fn run(&self, id: i64) -> Result<RunRecord> {
        let row = self
            .conn
            .query_row(
                &format!("SELECT {RUN_COLUMNS} FROM runs WHERE id = ?1"),
                [id],
                run_from_row,
            )
            .optional()?;
        let (mut run, status) = row.ok_or(StoreError::NoRun(id))?;
        run.status = RunStatus::parse(&status)?;
        Ok(run)
    }

    /// All runs, newest first.
    pub fn runs(&self) -> Result<Vec<RunRecord>> {
        self.runs_where("1")
    }

    /// The runs matching SQL condition `filter` (a constant of this crate, never user text),
    /// newest first.
    pub(crate) fn runs_where(&self, filter: &str) -> Result<Vec<RunRecord>> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {RUN_COLUMNS} FROM runs WHERE {filter} ORDER BY id DESC"
        ))?;
        let rows = stmt.query_map([], run_from_row)?;
        let mut out = Vec::new();
        for row in rows {
            let (mut run, status) = row?;
            run.status = RunStatus::parse(&status)?;
            out.push(run);
        }
        Ok(out)
    }

    /// A run's metrics, by name then step.
    pub fn metrics(&self, id: i64) -> Result<Vec<MetricRow>> {
        Ok(self
            .conn
            .prepare(
                "SELECT step, epoch, name, value, recorded_at FROM metrics WHERE run_id = ?1 ORDER BY name, step",
            )?
            .query_map([id], |r| {
                Ok(MetricRow {
                    step: r.get(0)?,
                    epoch: r.get(1)?,
                    name: r.get(2)?,
                    value: r.get(3)?,
                    recorded_at: r.get(4)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// A run's evaluations, by step.
    pub fn evaluations(&self, id: i64) -> Result<Vec<EvaluationRecord>> {
        Ok(self
            .conn
            .prepare(
                "SELECT step, epoch, part, report_json, predictions_json, created_at FROM evaluations
                 WHERE run_id = ?1 ORDER BY step, part",
            )?
            .query_map([id], |r| {
                Ok(EvaluationRecord {
                    step: r.get(0)?,
                    epoch: r.get(1)?,
                    part: r.get(2)?,
                    report: json(r.get(3)?)?.unwrap_or_default(),
                    predictions: json(r.get(4)?)?,
                    created_at: r.get(5)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// A run's artifacts.
    pub fn artifacts(&self, id: i64) -> Result<Vec<ArtifactRecord>> {
        Ok(self
            .conn
            .prepare("SELECT kind, path, step, created_at FROM artifacts WHERE run_id = ?1 ORDER BY kind")?
            .query_map([id], |r| {
                Ok(ArtifactRecord {
                    kind: r.get(0)?,
                    path: r.get(1)?,
                    step: r.get(2)?,
                    created_at: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// How many runs have an artifact of `kind` (one query, whatever the number of runs).
    pub fn runs_with_artifact(&self, kind: &str) -> Result<usize> {
        let n: i64 = self.conn.query_row(
            "SELECT COUNT(DISTINCT run_id) FROM artifacts WHERE kind = ?1",
            [kind],
            |r| r.get(0),
        )?;
        Ok(n as usize)
    }

    /// Deletes a run and everything it recorded (its files are the caller's to remove).
    pub fn delete_run(&mut self, id: i64) -> Result<()> {
        if self.conn.execute("DELETE FROM runs WHERE id = ?1", [id])? == 0 {
            return Err(StoreError::NoRun(id));
        }
        Ok(())
    }

    /// Marks every `running` run whose process is gone as `interrupted`. `alive(pid,
    /// pid_started)` tells whether the process that ran it still runs. Returns the run ids.
    pub fn mark_interrupted(
        &mut self,
        alive: impl Fn(i64, Option<i64>) -> bool,
    ) -> Result<Vec<i64>> {
        let running: Vec<(i64, Option<i64>, Option<i64>)> = self
            .conn
            // A run on a compute target has no process here: its scheduler says whether it runs.
            .prepare(
                "SELECT id, pid, pid_started FROM runs WHERE status = 'running' AND remote_json IS NULL",
            )?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        let mut out = Vec::new();
        for (id, pid, started) in running {
            let gone = match pid {
                Some(pid) => !alive(pid, started),
                None => true,
            };
            if gone {
                let changed = self.conn.execute(
                    "UPDATE runs SET status = 'interrupted', pid = NULL, cancel_requested = 0,
                         error = 'the process running it stopped before it finished; resume it to continue from its last checkpoint'
                     WHERE id = ?1 AND status = 'running'",
                    [id],
                )?;
                // Another connection may have marked it between the SELECT and here.
                if changed == 1 {
                    out.push(id);
                }
            }
        }
        Ok(out)
    }
}
