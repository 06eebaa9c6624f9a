//! Hone's database: one SQLite file (WAL, foreign keys on) holding datasets, their examples and
//! labels (with history), splits, models, runs, metrics, evaluations and artifacts. Schema
//! changes are migrations (`migrations/`), applied on open.
//!
//! Every write that belongs together is one transaction: an import commits all its rows or
//! none, a training step's metrics land together.

mod datasets;
mod error;
mod models;
mod runs;
mod snapshot;
mod splits;
mod targets;

use std::path::{Path, PathBuf};

use rusqlite::{Connection, Transaction, TransactionBehavior};
use rusqlite_migration::{Migrations, M};

pub use datasets::{
    order_labels, DatasetInfo, ExampleFilter, Import, Label, LabelChange, NewDataset, NewExample,
    StoredExample, Task,
};
pub use error::StoreError;
pub use models::{ModelRecord, NewModel};
pub use runs::{
    ArtifactRecord, EvaluationRecord, MetricRow, NewRun, RunRecord, RunStatus, SampleRecord,
};
pub use splits::{Part, SplitInfo};
pub use targets::TargetRecord;

/// Result type of the store.
pub type Result<T> = std::result::Result<T, StoreError>;

fn migrations() -> Migrations<'static> {
    Migrations::new(vec![
        M::up(include_str!("../migrations/001_initial.sql")),
        M::up(include_str!("../migrations/002_run_notes.sql")),
        M::up(include_str!("../migrations/003_samples.sql")),
        M::up(include_str!("../migrations/004_compute_targets.sql")),
    ])
}

/// An open Hone database.
pub struct Store {
    conn: Connection,
    path: Option<PathBuf>,
}

impl Store {
    /// Opens (creating it and its folder if needed) the database at `path` and brings its
    /// schema up to date.
    pub fn open(path: &Path) -> Result<Self> {
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(|e| StoreError::Io {
                path: dir.to_path_buf(),
                source: e,
            })?;
        }
        let conn = Connection::open(path).map_err(|e| StoreError::Open {
            path: path.to_path_buf(),
            source: e,
        })?;
        Self::prepare(conn, Some(path.to_path_buf()))
    }

    /// A database in memory (tests).
    pub fn open_in_memory() -> Result<Self> {
        Self::prepare(Connection::open_in_memory()?, None)
    }

    fn prepare(mut conn: Connection, path: Option<PathBuf>) -> Result<Self> {
        conn.busy_timeout(std::time::Duration::from_secs(10))?;
        // WAL: readers never block the writer, and a killed process loses nothing it committed.
        // NORMAL sync is durable against a crash of the process (not of the OS).
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        migrations()
            .to_latest(&mut conn)
            .map_err(|e| StoreError::Migration(e.to_string()))?;
        Ok(Store { conn, path })
    }

    /// A transaction that takes the write lock when it begins (IMMEDIATE). Every write goes
    /// through one: a deferred transaction that reads first and writes later cannot wait for
    /// another writer — once that writer commits, its read snapshot is stale and SQLite fails
    /// at once with "database is locked" whatever the busy timeout (seen with the desktop app
    /// and a training run writing side by side).
    pub(crate) fn write_transaction(&mut self) -> Result<Transaction<'_>> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    /// The database file (None in memory).
    pub fn path(&self) -> Option<&Path> {
        self.path.as_deref()
    }

    /// `PRAGMA integrity_check`: "ok" when the file is sound.
    pub fn integrity_check(&self) -> Result<String> {
        Ok(self
            .conn
            .query_row("PRAGMA integrity_check", [], |r| r.get::<_, String>(0))?)
    }

    /// The schema version (number of migrations applied).
    pub fn schema_version(&self) -> Result<i64> {
        Ok(self
            .conn
            .query_row("PRAGMA user_version", [], |r| r.get::<_, i64>(0))?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn migrations_are_valid() {
        migrations().validate().unwrap();
    }

    #[test]
    fn opening_creates_the_file_in_wal_mode_with_foreign_keys() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("nested/hone.db");
        let store = Store::open(&path).unwrap();
        assert!(path.is_file());
        assert_eq!(store.integrity_check().unwrap(), "ok");
        assert_eq!(store.schema_version().unwrap(), 4);
        let mode: String = store
            .conn
            .query_row("PRAGMA journal_mode", [], |r| r.get(0))
            .unwrap();
        assert_eq!(mode, "wal");
        let fk: i64 = store
            .conn
            .query_row("PRAGMA foreign_keys", [], |r| r.get(0))
            .unwrap();
        assert_eq!(fk, 1);
        drop(store);
        // Reopening applies nothing twice.
        assert_eq!(Store::open(&path).unwrap().schema_version().unwrap(), 4);
    }
}
