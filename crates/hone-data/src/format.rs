//! File formats Hone reads labeled text from.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::DataError;

/// A tabular text format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated values with RFC 4180 quoting and a header row.
    Csv,
    /// Tab-separated values with a header row and no quoting (as GLUE ships them).
    Tsv,
    /// One JSON object per line; columns are the object's keys.
    Jsonl,
}

impl FileFormat {
    /// The format a file's extension implies (`.csv`, `.tsv`/`.tab`, `.jsonl`/`.ndjson`/`.json`).
    pub fn from_path(path: &Path) -> Result<Self, DataError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") => Ok(FileFormat::Csv),
            Some("tsv") | Some("tab") => Ok(FileFormat::Tsv),
            Some("jsonl") | Some("ndjson") | Some("json") => Ok(FileFormat::Jsonl),
            _ => Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(FileFormat::Csv),
            "tsv" => Ok(FileFormat::Tsv),
            "jsonl" | "ndjson" => Ok(FileFormat::Jsonl),
            other => Err(format!("unknown format '{other}': use csv, tsv or jsonl")),
        }
    }
}
