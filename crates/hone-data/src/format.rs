//! File formats Hone reads examples from.

use std::io::Read;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::DataError;

/// A source file format.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FileFormat {
    /// Comma-separated values with RFC 4180 quoting (a header row unless told otherwise).
    Csv,
    /// Tab-separated values without quoting (as GLUE ships them).
    Tsv,
    /// One JSON object per line; columns are the object's keys.
    Jsonl,
    /// A JSON array of objects (read element by element).
    Json,
    /// Apache Parquet; columns by name.
    Parquet,
    /// CoNLL: one token per line with its tag in a column, blank lines between sentences.
    Conll,
    /// One example per line: the label, whitespace, the text (`LABEL text`, as TREC and
    /// fastText files; a `__label__` prefix is removed).
    Lines,
}

impl FileFormat {
    /// The format a file's extension implies; `.json` is sniffed (array or one object per
    /// line). Files without a telling extension (CoNLL's `eng.train`) need `--format`.
    pub fn from_path(path: &Path) -> Result<Self, DataError> {
        let ext = path
            .extension()
            .and_then(|e| e.to_str())
            .map(|e| e.to_ascii_lowercase());
        match ext.as_deref() {
            Some("csv") => Ok(FileFormat::Csv),
            Some("tsv") | Some("tab") => Ok(FileFormat::Tsv),
            Some("jsonl") | Some("ndjson") => Ok(FileFormat::Jsonl),
            Some("json") => Ok(sniff_json(path)),
            Some("parquet") | Some("pq") => Ok(FileFormat::Parquet),
            Some("conll") | Some("conllu") | Some("iob") | Some("bio") => Ok(FileFormat::Conll),
            _ => Err(DataError::UnknownFormat {
                path: path.to_path_buf(),
            }),
        }
    }

    /// The name used on the command line and in the database.
    pub fn name(self) -> &'static str {
        match self {
            FileFormat::Csv => "csv",
            FileFormat::Tsv => "tsv",
            FileFormat::Jsonl => "jsonl",
            FileFormat::Json => "json",
            FileFormat::Parquet => "parquet",
            FileFormat::Conll => "conll",
            FileFormat::Lines => "lines",
        }
    }
}

/// `.json` files: an array when the first non-blank byte is `[`, else one object per line.
fn sniff_json(path: &Path) -> FileFormat {
    let mut head = [0u8; 512];
    let n = std::fs::File::open(path)
        .and_then(|mut f| f.read(&mut head))
        .unwrap_or(0);
    let first = head[..n]
        .iter()
        .find(|b| !(b.is_ascii_whitespace() || **b == 0xEF || **b == 0xBB || **b == 0xBF));
    if first == Some(&b'[') {
        FileFormat::Json
    } else {
        FileFormat::Jsonl
    }
}

impl std::str::FromStr for FileFormat {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "csv" => Ok(FileFormat::Csv),
            "tsv" => Ok(FileFormat::Tsv),
            "jsonl" | "ndjson" => Ok(FileFormat::Jsonl),
            "json" => Ok(FileFormat::Json),
            "parquet" => Ok(FileFormat::Parquet),
            "conll" => Ok(FileFormat::Conll),
            "lines" => Ok(FileFormat::Lines),
            other => Err(format!(
                "unknown format '{other}': use csv, tsv, jsonl, json, parquet, conll or lines"
            )),
        }
    }
}
