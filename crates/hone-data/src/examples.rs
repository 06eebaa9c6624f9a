//! Reading labeled text examples from CSV, TSV and JSONL files with column selection.

use std::fs::File;
use std::io::{BufRead, BufReader};
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{DataError, FileFormat};

/// Which columns of a file hold the text, the optional second text and the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Column with the text to classify.
    pub text: String,
    /// Column with the second text of a sentence pair, if the task has pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_pair: Option<String>,
    /// Column with the label; `None` reads unlabeled text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// One example as read from a file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Example {
    /// Line of the file where the example starts (1-based, the header is line 1 for CSV/TSV).
    pub line: u64,
    pub text: String,
    pub text_pair: Option<String>,
    /// The label as written in the file, trimmed; `None` when no label column was asked for.
    pub label: Option<String>,
}

/// Reads every example of `path`. The format comes from the extension unless given.
///
/// Every selected column must exist; a text or label that is empty is an error naming the line,
/// as is a row with the wrong number of fields.
pub fn read_examples(
    path: &Path,
    format: Option<FileFormat>,
    columns: &ColumnSpec,
) -> Result<Vec<Example>, DataError> {
    let format = match format {
        Some(f) => f,
        None => FileFormat::from_path(path)?,
    };
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    if file.metadata().map(|m| m.len() == 0).unwrap_or(false) {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let examples = match format {
        FileFormat::Csv => read_delimited(path, file, b',', true, columns)?,
        FileFormat::Tsv => read_delimited(path, file, b'\t', false, columns)?,
        FileFormat::Jsonl => read_jsonl(path, file, columns)?,
    };
    if examples.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(examples)
}

/// Positions of the selected columns in a header.
struct ColumnIndex {
    text: usize,
    text_pair: Option<usize>,
    label: Option<usize>,
}

fn find_column(
    path: &Path,
    header: &[String],
    column: &str,
    flag: &'static str,
) -> Result<usize, DataError> {
    header
        .iter()
        .position(|h| h == column)
        .ok_or_else(|| DataError::UnknownColumn {
            path: path.to_path_buf(),
            column: column.to_string(),
            available: header.join(", "),
            flag,
        })
}

fn index_columns(
    path: &Path,
    header: &[String],
    columns: &ColumnSpec,
) -> Result<ColumnIndex, DataError> {
    Ok(ColumnIndex {
        text: find_column(path, header, &columns.text, "--text-column")?,
        text_pair: columns
            .text_pair
            .as_deref()
            .map(|c| find_column(path, header, c, "--text-pair-column"))
            .transpose()?,
        label: columns
            .label
            .as_deref()
            .map(|c| find_column(path, header, c, "--label-column"))
            .transpose()?,
    })
}

/// Checks that a value is present and not blank, returning it.
fn required(
    path: &Path,
    line: u64,
    column: &str,
    value: Option<&str>,
) -> Result<String, DataError> {
    match value {
        Some(v) if !v.trim().is_empty() => Ok(v.to_string()),
        _ => Err(DataError::EmptyValue {
            path: path.to_path_buf(),
            line,
            column: column.to_string(),
        }),
    }
}

fn build_example(
    path: &Path,
    line: u64,
    columns: &ColumnSpec,
    text: Option<&str>,
    text_pair: Option<&str>,
    label: Option<&str>,
) -> Result<Example, DataError> {
    let text = required(path, line, &columns.text, text)?;
    let text_pair = match &columns.text_pair {
        Some(c) => Some(required(path, line, c, text_pair)?),
        None => None,
    };
    let label = match &columns.label {
        Some(c) => Some(required(path, line, c, label)?.trim().to_string()),
        None => None,
    };
    Ok(Example {
        line,
        text,
        text_pair,
        label,
    })
}

fn read_delimited(
    path: &Path,
    file: File,
    delimiter: u8,
    quoting: bool,
    columns: &ColumnSpec,
) -> Result<Vec<Example>, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(quoting)
        .has_headers(true)
        .flexible(false)
        .from_reader(BufReader::new(file));
    let header: Vec<String> = reader
        .headers()
        .map_err(|e| csv_error(path, e))?
        .iter()
        .enumerate()
        .map(|(i, h)| {
            let h = if i == 0 {
                h.trim_start_matches('\u{feff}')
            } else {
                h
            };
            h.trim().to_string()
        })
        .collect();
    if header.iter().all(|h| h.is_empty()) {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let index = index_columns(path, &header, columns)?;
    let mut out = Vec::new();
    let mut record = csv::StringRecord::new();
    loop {
        match reader.read_record(&mut record) {
            Ok(false) => break,
            Ok(true) => {
                let line = record.position().map(|p| p.line()).unwrap_or(0);
                if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
                    continue; // a blank line
                }
                out.push(build_example(
                    path,
                    line,
                    columns,
                    record.get(index.text),
                    index.text_pair.and_then(|i| record.get(i)),
                    index.label.and_then(|i| record.get(i)),
                )?);
            }
            Err(e) => return Err(csv_error(path, e)),
        }
    }
    Ok(out)
}

fn csv_error(path: &Path, error: csv::Error) -> DataError {
    let line = error.position().map(|p| p.line()).unwrap_or(1);
    let message = match error.kind() {
        csv::ErrorKind::UnequalLengths {
            expected_len, len, ..
        } => format!(
            "the row has {len} fields but the header has {expected_len}; check for a missing or extra separator"
        ),
        csv::ErrorKind::Utf8 { .. } => {
            "the text is not valid UTF-8; save the file as UTF-8".to_string()
        }
        csv::ErrorKind::Io(e) => return DataError::io(path, std::io::Error::new(e.kind(), e.to_string())),
        _ => error.to_string(),
    };
    DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// A JSON value as label or text: strings as they are, numbers and booleans printed.
fn json_field(value: Option<&serde_json::Value>) -> Option<String> {
    match value? {
        serde_json::Value::String(s) => Some(s.clone()),
        serde_json::Value::Number(n) => Some(n.to_string()),
        serde_json::Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn read_jsonl(path: &Path, file: File, columns: &ColumnSpec) -> Result<Vec<Example>, DataError> {
    let reader = BufReader::new(file);
    let mut out = Vec::new();
    for (i, line) in reader.split(b'\n').enumerate() {
        let line_no = i as u64 + 1;
        let bytes = line.map_err(|e| DataError::io(path, e))?;
        let text = std::str::from_utf8(&bytes).map_err(|_| DataError::Malformed {
            path: path.to_path_buf(),
            line: line_no,
            message: "the text is not valid UTF-8; save the file as UTF-8".into(),
        })?;
        let text = text.trim_start_matches('\u{feff}').trim();
        if text.is_empty() {
            continue;
        }
        let value: serde_json::Value =
            serde_json::from_str(text).map_err(|e| DataError::Malformed {
                path: path.to_path_buf(),
                line: line_no,
                message: format!(
                    "not a JSON object ({e}); the file needs one JSON object per line"
                ),
            })?;
        let object = value.as_object().ok_or_else(|| DataError::Malformed {
            path: path.to_path_buf(),
            line: line_no,
            message: "expected one JSON object per line".into(),
        })?;
        let keys = || object.keys().cloned().collect::<Vec<_>>();
        let check = |column: &str, flag: &'static str| -> Result<(), DataError> {
            if object.contains_key(column) {
                Ok(())
            } else if out.is_empty() {
                Err(DataError::UnknownColumn {
                    path: path.to_path_buf(),
                    column: column.to_string(),
                    available: keys().join(", "),
                    flag,
                })
            } else {
                Err(DataError::EmptyValue {
                    path: path.to_path_buf(),
                    line: line_no,
                    column: column.to_string(),
                })
            }
        };
        check(&columns.text, "--text-column")?;
        if let Some(c) = &columns.text_pair {
            check(c, "--text-pair-column")?;
        }
        if let Some(c) = &columns.label {
            check(c, "--label-column")?;
        }
        let field = |c: &Option<String>| c.as_ref().and_then(|c| json_field(object.get(c)));
        out.push(build_example(
            path,
            line_no,
            columns,
            json_field(object.get(&columns.text)).as_deref(),
            field(&columns.text_pair).as_deref(),
            field(&columns.label).as_deref(),
        )?);
    }
    Ok(out)
}
