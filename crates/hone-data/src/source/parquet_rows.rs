//! Parquet files, read one record batch at a time; every selected column is cast to text
//! (integers and booleans become their decimal / true-false spelling).

use std::fs::File;
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use arrow_array::{Array, RecordBatch, StringArray};
use arrow_schema::DataType;
use parquet::arrow::arrow_reader::{ParquetRecordBatchReader, ParquetRecordBatchReaderBuilder};

use super::{make_row, owned, unknown_column, RawValues, Rows, SourceRow, SourceSpec};
use crate::DataError;

fn parquet_error(path: &Path, e: impl std::fmt::Display) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        line: 0,
        message: format!("not a readable Parquet file: {e}"),
    }
}

/// The column as text, or `None` when the batch does not have it.
fn text_column(path: &Path, batch: &RecordBatch, name: &str) -> Result<StringArray, DataError> {
    let column = batch
        .column_by_name(name)
        .ok_or_else(|| parquet_error(path, format!("column '{name}' missing in a batch")))?;
    let cast = arrow_cast::cast(column, &DataType::Utf8).map_err(|e| DataError::Malformed {
        path: path.to_path_buf(),
        line: 0,
        message: format!("column '{name}' cannot be read as text: {e}"),
    })?;
    Ok(cast
        .as_any()
        .downcast_ref::<StringArray>()
        .cloned()
        .expect("a cast to Utf8 gives a StringArray"))
}

/// Rows of a Parquet file; "line" is the 1-based row number.
pub fn rows(path: &Path, spec: &SourceSpec, read: Arc<AtomicU64>) -> Result<Rows, DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let size = file.metadata().map(|m| m.len()).unwrap_or(0);
    let builder =
        ParquetRecordBatchReaderBuilder::try_new(file).map_err(|e| parquet_error(path, e))?;
    let total_rows = builder.metadata().file_metadata().num_rows().max(1) as u64;
    let schema = builder.schema().clone();
    let names: Vec<String> = schema.fields().iter().map(|f| f.name().clone()).collect();
    let text_name = spec.text.clone().ok_or_else(|| DataError::Malformed {
        path: path.to_path_buf(),
        line: 0,
        message: format!(
            "choose the column that holds the text (the file has: {})",
            names.join(", ")
        ),
    })?;
    for (column, flag) in [
        (Some(&text_name), "--text-column"),
        (spec.text_pair.as_ref(), "--text-pair-column"),
        (spec.label.as_ref(), "--label-column"),
        (spec.split.as_ref(), "--split-column"),
    ] {
        if let Some(c) = column {
            if !names.contains(c) {
                return Err(unknown_column(path, c, &names, flag));
            }
        }
    }
    if let Some(c) = spec.choices.iter().find(|c| !names.contains(c)) {
        return Err(unknown_column(path, c, &names, "--choice-columns"));
    }
    let reader: ParquetRecordBatchReader = builder
        .with_batch_size(4096)
        .build()
        .map_err(|e| parquet_error(path, e))?;
    let path = owned(path);
    let spec = spec.clone();
    let mut batches = reader;
    let mut pending: std::vec::IntoIter<Result<SourceRow, DataError>> = Vec::new().into_iter();
    let mut row_number = 0u64;
    Ok(Box::new(std::iter::from_fn(move || loop {
        if let Some(row) = pending.next() {
            return Some(row);
        }
        let batch = match batches.next()? {
            Ok(b) => b,
            Err(e) => return Some(Err(parquet_error(&path, e))),
        };
        let columns = (|| -> Result<_, DataError> {
            let get = |c: &Option<String>| {
                c.as_ref()
                    .map(|c| text_column(&path, &batch, c))
                    .transpose()
            };
            let choices = spec
                .choices
                .iter()
                .map(|c| text_column(&path, &batch, c))
                .collect::<Result<Vec<_>, _>>()?;
            Ok((
                text_column(&path, &batch, &text_name)?,
                get(&spec.text_pair)?,
                get(&spec.label)?,
                get(&spec.split)?,
                choices,
            ))
        })();
        let (text, pair, label, split, choices) = match columns {
            Ok(c) => c,
            Err(e) => return Some(Err(e)),
        };
        let value = |a: &Option<StringArray>, i: usize| {
            a.as_ref()
                .and_then(|a| (!a.is_null(i)).then(|| a.value(i).to_string()))
        };
        let mut rows = Vec::with_capacity(batch.num_rows());
        for i in 0..batch.num_rows() {
            row_number += 1;
            rows.push(make_row(
                &path,
                row_number,
                &spec,
                RawValues {
                    text: (!text.is_null(i)).then(|| text.value(i).to_string()),
                    text_pair: value(&pair, i),
                    label: value(&label, i),
                    split: value(&split, i),
                    choices: choices
                        .iter()
                        .map(|a| (!a.is_null(i)).then(|| a.value(i).to_string()))
                        .collect(),
                },
            ));
        }
        read.store(size * row_number / total_rows, Ordering::Relaxed);
        pending = rows.into_iter();
    })))
}
