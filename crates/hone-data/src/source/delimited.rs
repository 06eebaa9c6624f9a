//! CSV (RFC 4180 quoting) and TSV (no quoting) with a header row, or columns 1, 2, 3, … without.

use std::io::BufRead;
use std::path::Path;

use super::{make_row, owned, unknown_column, RawValues, Rows, SourceSpec};
use crate::DataError;

struct Columns {
    text: usize,
    text_pair: Option<usize>,
    label: Option<usize>,
    split: Option<usize>,
    choices: Vec<usize>,
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
            "the text is not valid UTF-8; save the file as UTF-8 or choose its encoding".to_string()
        }
        csv::ErrorKind::Io(e) => {
            return DataError::io(path, std::io::Error::new(e.kind(), e.to_string()))
        }
        _ => error.to_string(),
    };
    DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Rows of a delimited file.
pub fn rows(
    path: &Path,
    text: Box<dyn BufRead + Send>,
    spec: &SourceSpec,
    delimiter: u8,
    quoting: bool,
) -> Result<Rows, DataError> {
    let mut reader = csv::ReaderBuilder::new()
        .delimiter(delimiter)
        .quoting(quoting)
        .has_headers(!spec.no_header)
        .flexible(false)
        .from_reader(text);
    let header: Vec<String> = if spec.no_header {
        let first = reader.headers().map_err(|e| csv_error(path, e))?;
        (1..=first.len()).map(|i| i.to_string()).collect()
    } else {
        reader
            .headers()
            .map_err(|e| csv_error(path, e))?
            .iter()
            .map(|h| h.trim().to_string())
            .collect()
    };
    if header.iter().all(|h| h.is_empty()) {
        return Err(DataError::EmptyFile {
            path: path.to_path_buf(),
        });
    }
    let find = |name: &str, flag: &'static str| {
        header
            .iter()
            .position(|h| h == name)
            .ok_or_else(|| unknown_column(path, name, &header, flag))
    };
    let text_name = spec.text.as_deref().ok_or_else(|| DataError::Malformed {
        path: path.to_path_buf(),
        line: 1,
        message: format!(
            "choose the column that holds the text (the file has: {})",
            header.join(", ")
        ),
    })?;
    let columns = Columns {
        text: find(text_name, "--text-column")?,
        text_pair: spec
            .text_pair
            .as_deref()
            .map(|c| find(c, "--text-pair-column"))
            .transpose()?,
        label: spec
            .label
            .as_deref()
            .map(|c| find(c, "--label-column"))
            .transpose()?,
        split: spec
            .split
            .as_deref()
            .map(|c| find(c, "--split-column"))
            .transpose()?,
        choices: spec
            .choices
            .iter()
            .map(|c| find(c, "--choice-columns"))
            .collect::<Result<_, _>>()?,
    };
    let path = owned(path);
    let spec = spec.clone();
    let mut records = reader.into_records();
    Ok(Box::new(std::iter::from_fn(move || loop {
        let record = match records.next()? {
            Ok(r) => r,
            Err(e) => return Some(Err(csv_error(&path, e))),
        };
        if record.len() == 1 && record.get(0).is_some_and(|f| f.trim().is_empty()) {
            continue; // a blank line
        }
        let line = record.position().map(|p| p.line()).unwrap_or(0);
        let get = |i: Option<usize>| i.and_then(|i| record.get(i)).map(str::to_string);
        return Some(make_row(
            &path,
            line,
            &spec,
            RawValues {
                text: get(Some(columns.text)),
                text_pair: get(columns.text_pair),
                label: get(columns.label),
                split: get(columns.split),
                choices: columns.choices.iter().map(|&i| get(Some(i))).collect(),
            },
        ));
    })))
}
