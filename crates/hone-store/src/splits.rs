//! Train / validation / test splits stored per dataset, so a run can be reproduced exactly.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{Result, Store, StoreError};

/// A part of a split.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Part {
    Train,
    Validation,
    Test,
}

impl Part {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Part::Train => "train",
            Part::Validation => "validation",
            Part::Test => "test",
        }
    }

    /// Parses common spellings: train, validation / valid / val / dev, test.
    pub fn parse(s: &str) -> Option<Self> {
        match s.trim().to_ascii_lowercase().as_str() {
            "train" | "training" => Some(Part::Train),
            "validation" | "valid" | "val" | "dev" | "development" => Some(Part::Validation),
            "test" | "testing" => Some(Part::Test),
            _ => None,
        }
    }
}

/// A stored split.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SplitInfo {
    pub id: i64,
    pub dataset_id: i64,
    pub name: String,
    /// "stratified" (seeded) or "given" (from the source).
    pub method: String,
    pub seed: Option<i64>,
    pub settings: serde_json::Value,
    pub created_at: String,
    pub train: i64,
    pub validation: i64,
    pub test: i64,
}

impl Store {
    /// Stores a split (replacing one of the same name) in one transaction.
    pub fn save_split(
        &mut self,
        dataset_id: i64,
        name: &str,
        method: &str,
        seed: Option<i64>,
        settings: &serde_json::Value,
        members: &[(i64, Part)],
    ) -> Result<i64> {
        let tx = self.write_transaction()?;
        tx.execute(
            "DELETE FROM splits WHERE dataset_id = ?1 AND name = ?2",
            params![dataset_id, name],
        )?;
        tx.execute(
            "INSERT INTO splits (dataset_id, name, method, seed, settings_json) VALUES (?1, ?2, ?3, ?4, ?5)",
            params![dataset_id, name, method, seed, settings.to_string()],
        )?;
        let split_id = tx.last_insert_rowid();
        {
            let mut stmt = tx.prepare_cached(
                "INSERT INTO split_members (split_id, example_id, part) VALUES (?1, ?2, ?3)",
            )?;
            for (example, part) in members {
                stmt.execute(params![split_id, example, part.as_str()])?;
            }
        }
        tx.commit()?;
        Ok(split_id)
    }

    /// The split `name` of a dataset, with its part sizes.
    pub fn split(&self, dataset_id: i64, name: &str) -> Result<Option<SplitInfo>> {
        let row: Option<(i64, String, Option<i64>, String, String)> = self
            .conn
            .query_row(
                "SELECT id, method, seed, settings_json, created_at FROM splits WHERE dataset_id = ?1 AND name = ?2",
                params![dataset_id, name],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((id, method, seed, settings, created_at)) = row else {
            return Ok(None);
        };
        let count = |part: Part| -> Result<i64> {
            Ok(self.conn.query_row(
                "SELECT COUNT(*) FROM split_members WHERE split_id = ?1 AND part = ?2",
                params![id, part.as_str()],
                |r| r.get(0),
            )?)
        };
        Ok(Some(SplitInfo {
            id,
            dataset_id,
            name: name.to_string(),
            method,
            seed,
            settings: serde_json::from_str(&settings).map_err(StoreError::Json)?,
            created_at,
            train: count(Part::Train)?,
            validation: count(Part::Validation)?,
            test: count(Part::Test)?,
        }))
    }
}
