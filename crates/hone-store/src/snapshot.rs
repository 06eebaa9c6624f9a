//! A one-dataset copy of the database: what a run on another machine reads its data from.

use std::path::Path;

use rusqlite::Connection;

use crate::{Result, Store, StoreError};

impl Store {
    /// Writes a new database at `out` holding dataset `dataset_id` alone (its examples, labels,
    /// label history and splits) and no runs, models or compute targets.
    pub fn snapshot_dataset(&self, dataset_id: i64, out: &Path) -> Result<()> {
        let path = out
            .to_str()
            .ok_or_else(|| StoreError::Invalid(format!("{} is not a UTF-8 path", out.display())))?;
        if out.exists() {
            return Err(StoreError::Invalid(format!(
                "{} exists already",
                out.display()
            )));
        }
        self.conn.execute("VACUUM INTO ?1", [path])?;
        let snap = Connection::open(out).map_err(|e| StoreError::Open {
            path: out.to_path_buf(),
            source: e,
        })?;
        snap.execute_batch("PRAGMA foreign_keys = ON;")?;
        snap.execute("DELETE FROM runs", [])?;
        snap.execute("DELETE FROM datasets WHERE id != ?1", [dataset_id])?;
        snap.execute("DELETE FROM models", [])?;
        snap.execute("DELETE FROM compute_targets", [])?;
        snap.execute_batch("VACUUM;")?;
        Ok(())
    }
}
