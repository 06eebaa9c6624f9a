//! Errors of the data layer. Each names the file (and line and column where it applies) and
//! says what to do.

use std::path::PathBuf;

/// Everything that can go wrong while reading, labeling or tokenizing data.
#[derive(Debug, thiserror::Error)]
pub enum DataError {
    #[error("cannot read {path}: {source}")]
    Io {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("{path}: cannot tell the format from the name; choose it (csv, tsv, jsonl, json, parquet, conll or lines)")]
    UnknownFormat { path: PathBuf },
    #[error("{path} is not a text file: it has NUL bytes, as spreadsheets, archives and images do. Save it as CSV, TSV or JSON lines; if it is UTF-16 text without a byte-order mark, choose its encoding (utf-16le or utf-16be)")]
    NotText { path: PathBuf },
    #[error("{path}: the file is empty; it needs a header row and at least one example")]
    EmptyFile { path: PathBuf },
    #[error("{path}: no examples after the header; add rows to the file")]
    NoRows { path: PathBuf },
    #[error("{path}: no column named '{column}' (the file has: {available}); choose one of these as the {} column", role_of(flag))]
    UnknownColumn {
        path: PathBuf,
        column: String,
        available: String,
        flag: &'static str,
    },
    #[error("{path}, line {line}: {message}")]
    Malformed {
        path: PathBuf,
        line: u64,
        message: String,
    },
    #[error("{path}, line {line}: the '{column}' value is empty; fill it in or remove the row")]
    EmptyValue {
        path: PathBuf,
        line: u64,
        column: String,
    },
    #[error("{path}, line {line}: label '{label}' does not occur in the training data (known labels: {known}); fix the label or add training examples for it")]
    UnseenLabel {
        path: PathBuf,
        line: u64,
        label: String,
        known: String,
    },
    #[error("the training data has only one label ('{label}'); a classifier needs at least two")]
    SingleLabel { label: String },
    #[error("cannot load the tokenizer from {path}: {message}")]
    Tokenizer { path: PathBuf, message: String },
    #[error("tokenizing failed: {0}")]
    Encode(String),
}

impl DataError {
    pub(crate) fn io(path: impl Into<PathBuf>, source: std::io::Error) -> Self {
        DataError::Io {
            path: path.into(),
            source,
        }
    }
}

/// What a column flag names, in words for any front end: `--text-pair-column` → "second text".
pub fn role_of(flag: &str) -> &str {
    match flag {
        "--text-column" => "text",
        "--text-pair-column" => "second text",
        "--label-column" => "label",
        "--split-column" => "split",
        other => other.trim_start_matches("--").trim_end_matches("-column"),
    }
}
