//! Streaming readers of example files: CSV, TSV, JSONL, JSON arrays, Parquet, CoNLL and
//! `LABEL text` lines, with column mapping, encoding detection and progress. Rows come one at a
//! time (never the whole file in memory); every error names the file and the line (or row).

mod conll;
pub(crate) mod decode;
mod delimited;
mod json;
mod lines;
mod parquet_rows;

use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use serde::{Deserialize, Serialize};

use crate::{DataError, FileFormat};

pub use decode::{encoding_by_name, refuse_binary_file};

/// Which columns hold what, and how to read the file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SourceSpec {
    /// The format; from the file name when `None`.
    pub format: Option<FileFormat>,
    /// Column with the text (CSV, TSV, JSON, Parquet).
    pub text: Option<String>,
    /// Column with the second text of a pair.
    pub text_pair: Option<String>,
    /// Column with the label; rows where it is empty or missing come back unlabeled.
    pub label: Option<String>,
    /// Column naming each row's split part (train / validation / test).
    pub split: Option<String>,
    /// Multiple choice: the columns holding the options, in order (`A,B,C,D`), or one column
    /// holding them as a JSON list.
    #[serde(default)]
    pub choices: Vec<String>,
    /// CSV/TSV without a header row: columns are then named 1, 2, 3, …
    #[serde(default)]
    pub no_header: bool,
    /// CoNLL: 1-based column of the token (default 1).
    pub token_column: Option<usize>,
    /// CoNLL: 1-based column of the tag (default: the last).
    pub tag_column: Option<usize>,
    /// Force an encoding (utf-8, utf-16le, utf-16be, latin1).
    pub encoding: Option<String>,
}

/// One row of a source file.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SourceRow {
    /// Line of the file where the row starts (1-based; the row number for Parquet).
    pub line: u64,
    pub text: String,
    pub text_pair: Option<String>,
    /// The label as written (trimmed); `None` when the row has none.
    pub label: Option<String>,
    /// CoNLL: the sentence's tokens and their tags.
    pub tokens: Option<Vec<String>>,
    pub tags: Option<Vec<String>>,
    /// The split part as written.
    pub split: Option<String>,
    /// Multiple choice: the options, in order (empty when no choice columns were asked for).
    pub choices: Vec<String>,
}

type Rows = Box<dyn Iterator<Item = Result<SourceRow, DataError>> + Send>;

/// An open source file yielding rows.
pub struct SourceReader {
    rows: Rows,
    format: FileFormat,
    read: Arc<AtomicU64>,
    total: u64,
    warnings: Vec<String>,
}

impl SourceReader {
    /// Opens `path` as `spec` says. Fails early on an unknown column or format.
    pub fn open(path: &Path, spec: &SourceSpec) -> Result<Self, DataError> {
        let format = match spec.format {
            Some(f) => f,
            None => FileFormat::from_path(path)?,
        };
        let meta = std::fs::metadata(path).map_err(|e| DataError::io(path, e))?;
        if meta.is_dir() {
            return Err(DataError::io(
                path,
                std::io::Error::other("this is a folder, not a file"),
            ));
        }
        if meta.len() == 0 {
            return Err(DataError::EmptyFile {
                path: path.to_path_buf(),
            });
        }
        let forced = match &spec.encoding {
            Some(name) => Some(encoding_by_name(name).ok_or_else(|| DataError::Malformed {
                path: path.to_path_buf(),
                line: 0,
                message: format!(
                    "unknown encoding '{name}'; use utf-8, utf-16le, utf-16be or latin1"
                ),
            })?),
            None => None,
        };
        let read = Arc::new(AtomicU64::new(0));
        let mut warnings = Vec::new();
        let rows: Rows = match format {
            FileFormat::Parquet => parquet_rows::rows(path, spec, read.clone())?,
            _ => {
                let (text, warning) = decode::open_text(path, forced, read.clone())?;
                warnings.extend(warning);
                match format {
                    FileFormat::Csv => delimited::rows(path, text, spec, b',', true)?,
                    FileFormat::Tsv => delimited::rows(path, text, spec, b'\t', false)?,
                    FileFormat::Jsonl => json::lines(path, text, spec)?,
                    FileFormat::Json => json::array(path, text, spec)?,
                    FileFormat::Conll => conll::rows(path, text, spec)?,
                    FileFormat::Lines => lines::rows(path, text)?,
                    FileFormat::Parquet => unreachable!("handled above"),
                }
            }
        };
        Ok(SourceReader {
            rows,
            format,
            read,
            total: meta.len(),
            warnings,
        })
    }

    /// The format being read.
    pub fn format(&self) -> FileFormat {
        self.format
    }

    /// Bytes of the file read so far and its size, for a progress bar.
    pub fn progress(&self) -> (u64, u64) {
        (
            self.read.load(Ordering::Relaxed).min(self.total),
            self.total,
        )
    }

    /// Things the user should know that did not stop the read (a guessed encoding).
    pub fn warnings(&self) -> &[String] {
        &self.warnings
    }
}

impl Iterator for SourceReader {
    type Item = Result<SourceRow, DataError>;

    fn next(&mut self) -> Option<Self::Item> {
        self.rows.next()
    }
}

/// A content fingerprint of a file: BLAKE3 of its bytes, hex.
pub fn fingerprint_file(path: &Path) -> Result<String, DataError> {
    let mut hasher = blake3::Hasher::new();
    let file = std::fs::File::open(path).map_err(|e| DataError::io(path, e))?;
    hasher
        .update_reader(file)
        .map_err(|e| DataError::io(path, e))?;
    Ok(hasher.finalize().to_hex().to_string())
}

/// The lines of a decoded text stream as `(1-based line number, text)`, each checked to be
/// UTF-8 (an invalid byte is an error naming its line).
pub(crate) fn utf8_lines(
    path: &Path,
    text: Box<dyn std::io::BufRead + Send>,
) -> impl Iterator<Item = Result<(u64, String), DataError>> + Send {
    let path = owned(path);
    std::io::BufRead::split(text, b'\n')
        .enumerate()
        .map(move |(i, bytes)| {
            let line = i as u64 + 1;
            let bytes = bytes.map_err(|e| DataError::io(&path, e))?;
            String::from_utf8(bytes)
                .map(|s| (line, s))
                .map_err(|_| DataError::Malformed {
                    path: path.clone(),
                    line,
                    message:
                        "the text is not valid UTF-8; save the file as UTF-8 or choose its encoding"
                            .into(),
                })
        })
}

/// Rejects text with NUL characters (a binary file, or a broken export).
pub(crate) fn check_text(
    path: &Path,
    line: u64,
    column: &str,
    text: &str,
) -> Result<(), DataError> {
    if text.contains('\0') {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            line,
            message: format!(
                "the '{column}' value contains a NUL character; is this a binary file?"
            ),
        });
    }
    Ok(())
}

/// The values of one row's columns, before checking.
pub(crate) struct RawValues {
    pub text: Option<String>,
    pub text_pair: Option<String>,
    pub label: Option<String>,
    pub split: Option<String>,
    /// One value per choice column of the spec.
    pub choices: Vec<Option<String>>,
}

/// The options of a row: one per choice column, or the JSON list in the only one. Every
/// option must be there and not blank.
fn row_choices(
    path: &Path,
    line: u64,
    spec: &SourceSpec,
    values: Vec<Option<String>>,
) -> Result<Vec<String>, DataError> {
    let missing = |column: &str| DataError::EmptyValue {
        path: path.to_path_buf(),
        line,
        column: column.to_string(),
    };
    let options: Vec<String> = match (&spec.choices[..], &values[..]) {
        ([column], [value]) => {
            let value = value.as_deref().ok_or_else(|| missing(column))?;
            let list: Vec<serde_json::Value> =
                serde_json::from_str(value).map_err(|_| DataError::Malformed {
                    path: path.to_path_buf(),
                    line,
                    message: format!(
                        "the '{column}' value is not a JSON list of options; name one column per option instead (A,B,C,D) or write the options as [\"a\", \"b\"]"
                    ),
                })?;
            list.into_iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => s,
                    other => other.to_string(),
                })
                .collect()
        }
        _ => spec
            .choices
            .iter()
            .zip(values)
            .map(|(column, v)| v.ok_or_else(|| missing(column)))
            .collect::<Result<_, _>>()?,
    };
    for (i, option) in options.iter().enumerate() {
        let column = spec.choices.get(i).unwrap_or(&spec.choices[0]);
        if option.trim().is_empty() {
            return Err(missing(column));
        }
        check_text(path, line, column, option)?;
    }
    Ok(options)
}

/// Builds a row from optional column values: the text must be there and not blank; an empty
/// pair, label or split counts as absent; asked-for options must all be there.
pub(crate) fn make_row(
    path: &Path,
    line: u64,
    spec: &SourceSpec,
    values: RawValues,
) -> Result<SourceRow, DataError> {
    let RawValues {
        text,
        text_pair,
        label,
        split,
        choices,
    } = values;
    let text_column = spec.text.as_deref().unwrap_or("text");
    let text = match text {
        Some(t) if !t.trim().is_empty() => t,
        _ => {
            return Err(DataError::EmptyValue {
                path: path.to_path_buf(),
                line,
                column: text_column.to_string(),
            })
        }
    };
    check_text(path, line, text_column, &text)?;
    let present = |v: Option<String>| v.filter(|v| !v.trim().is_empty());
    let text_pair = present(text_pair);
    if let (Some(p), Some(c)) = (&text_pair, &spec.text_pair) {
        check_text(path, line, c, p)?;
    }
    let label = present(label).map(|l| l.trim().to_string());
    if let (Some(l), Some(c)) = (&label, &spec.label) {
        check_text(path, line, c, l)?;
    }
    let choices = if spec.choices.is_empty() {
        Vec::new()
    } else {
        row_choices(path, line, spec, choices)?
    };
    Ok(SourceRow {
        line,
        text,
        text_pair,
        label,
        tokens: None,
        tags: None,
        split: present(split).map(|s| s.trim().to_string()),
        choices,
    })
}

/// The error for a column that is not in the file.
pub(crate) fn unknown_column(
    path: &Path,
    column: &str,
    available: &[String],
    flag: &'static str,
) -> DataError {
    DataError::UnknownColumn {
        path: path.to_path_buf(),
        column: column.to_string(),
        available: available.join(", "),
        flag,
    }
}

/// The path of the file, owned, for closures.
pub(crate) fn owned(path: &Path) -> PathBuf {
    path.to_path_buf()
}
