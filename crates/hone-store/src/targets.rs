//! Compute targets (where runs execute besides this machine) and the runs handed to them.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{Result, RunRecord, Store, StoreError};

/// A configured compute target: its name and its settings (their shape is the app's).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TargetRecord {
    pub name: String,
    pub settings: serde_json::Value,
    pub created_at: String,
}

impl Store {
    /// Adds compute target `name`; an error when one by that name exists.
    pub fn add_target(&mut self, name: &str, settings: &serde_json::Value) -> Result<()> {
        let added = self.conn.execute(
            "INSERT OR IGNORE INTO compute_targets (name, settings_json) VALUES (?1, ?2)",
            params![name, settings.to_string()],
        )?;
        if added == 0 {
            return Err(StoreError::Invalid(format!(
                "a compute target named '{name}' already exists; remove it first or choose another name"
            )));
        }
        Ok(())
    }

    /// Compute target `name`, if there is one.
    pub fn target(&self, name: &str) -> Result<Option<TargetRecord>> {
        self.conn
            .query_row(
                "SELECT name, settings_json, created_at FROM compute_targets WHERE name = ?1",
                [name],
                |r| Ok((r.get(0)?, r.get::<_, String>(1)?, r.get(2)?)),
            )
            .optional()?
            .map(|(name, settings, created_at)| {
                Ok::<_, StoreError>(TargetRecord {
                    name,
                    settings: serde_json::from_str(&settings)?,
                    created_at,
                })
            })
            .transpose()
    }

    /// Every compute target, by name.
    pub fn targets(&self) -> Result<Vec<TargetRecord>> {
        let rows: Vec<(String, String, String)> = self
            .conn
            .prepare("SELECT name, settings_json, created_at FROM compute_targets ORDER BY name")?
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
            .collect::<rusqlite::Result<_>>()?;
        rows.into_iter()
            .map(|(name, settings, created_at)| {
                Ok(TargetRecord {
                    name,
                    settings: serde_json::from_str(&settings)?,
                    created_at,
                })
            })
            .collect()
    }

    /// Removes compute target `name`. Returns whether there was one.
    pub fn remove_target(&mut self, name: &str) -> Result<bool> {
        Ok(self
            .conn
            .execute("DELETE FROM compute_targets WHERE name = ?1", [name])?
            == 1)
    }

    /// Records where run `id` was handed to (or clears it with `None`).
    pub fn set_run_remote(&mut self, id: i64, remote: Option<&serde_json::Value>) -> Result<()> {
        let n = self.conn.execute(
            "UPDATE runs SET remote_json = ?2 WHERE id = ?1",
            params![id, remote.map(|r| r.to_string())],
        )?;
        if n == 0 {
            return Err(StoreError::NoRun(id));
        }
        Ok(())
    }

    /// A run handed to a compute target started there: running, `total_steps` long, with no
    /// process on this machine.
    pub fn start_remote_run(&mut self, id: i64, total_steps: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = 'running', pid = NULL, pid_started = NULL, total_steps = ?2,
                 error = NULL, finished_at = NULL,
                 started_at = COALESCE(started_at, strftime('%Y-%m-%dT%H:%M:%fZ', 'now'))
             WHERE id = ?1",
            params![id, total_steps],
        )?;
        Ok(())
    }

    /// A run handed (again) to a compute target waits there: queued, with no error.
    pub fn requeue_run(&mut self, id: i64) -> Result<()> {
        self.conn.execute(
            "UPDATE runs SET status = 'queued', pid = NULL, error = NULL, finished_at = NULL,
                 cancel_requested = 0
             WHERE id = ?1",
            [id],
        )?;
        Ok(())
    }

    /// Runs handed to a compute target that have not finished (queued or running there): one
    /// indexed query, cheap enough for the window's periodic sync.
    pub fn active_remote_runs(&self) -> Result<Vec<RunRecord>> {
        self.runs_where("remote_json IS NOT NULL AND status IN ('queued', 'running')")
    }
}
