//! Models known to Hone: local folders and cached Hub models, with their fingerprint.

use rusqlite::{params, OptionalExtension};
use serde::{Deserialize, Serialize};

use crate::{Result, Store};

/// A model to record.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NewModel {
    pub name: String,
    /// "local" or "hub".
    pub source: String,
    pub path: String,
    pub repo_id: Option<String>,
    pub revision: Option<String>,
    pub model_type: Option<String>,
    pub fingerprint: String,
    pub size_bytes: i64,
}

/// A recorded model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ModelRecord {
    pub id: i64,
    #[serde(flatten)]
    pub model: NewModel,
    pub added_at: String,
}

impl Store {
    /// Records a model (updating the record of the same path). Returns its id.
    pub fn upsert_model(&mut self, m: &NewModel) -> Result<i64> {
        self.conn.execute(
            "INSERT INTO models (name, source, path, repo_id, revision, model_type, fingerprint, size_bytes)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)
             ON CONFLICT (path) DO UPDATE SET name = excluded.name, source = excluded.source,
               repo_id = excluded.repo_id, revision = excluded.revision, model_type = excluded.model_type,
               fingerprint = excluded.fingerprint, size_bytes = excluded.size_bytes",
            params![m.name, m.source, m.path, m.repo_id, m.revision, m.model_type, m.fingerprint, m.size_bytes],
        )?;
        Ok(self
            .conn
            .query_row("SELECT id FROM models WHERE path = ?1", [&m.path], |r| {
                r.get(0)
            })?)
    }

    /// All recorded models, newest first.
    pub fn models(&self) -> Result<Vec<ModelRecord>> {
        Ok(self
            .conn
            .prepare(
                "SELECT id, name, source, path, repo_id, revision, model_type, fingerprint, size_bytes, added_at
                 FROM models ORDER BY id DESC",
            )?
            .query_map([], |r| {
                Ok(ModelRecord {
                    id: r.get(0)?,
                    model: NewModel {
                        name: r.get(1)?,
                        source: r.get(2)?,
                        path: r.get(3)?,
                        repo_id: r.get(4)?,
                        revision: r.get(5)?,
                        model_type: r.get(6)?,
                        fingerprint: r.get(7)?,
                        size_bytes: r.get(8)?,
                    },
                    added_at: r.get(9)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Forgets a model (its files are not touched). Returns whether it was known.
    pub fn remove_model(&mut self, path: &str) -> Result<bool> {
        let id: Option<i64> = self
            .conn
            .query_row("SELECT id FROM models WHERE path = ?1", [path], |r| {
                r.get(0)
            })
            .optional()?;
        if let Some(id) = id {
            self.conn
                .execute("DELETE FROM models WHERE id = ?1", [id])?;
        }
        Ok(id.is_some())
    }
}
