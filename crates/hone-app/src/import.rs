//! Importing a file into the database: one streaming pass, one transaction.

use std::path::PathBuf;

use hone_data::{fingerprint_file, FileFormat, SourceReader, SourceRow, SourceSpec};
use hone_store::{DatasetInfo, Label, NewDataset, NewExample, Part, Task};
use serde::Serialize;

use crate::{App, AppError};

/// What to import and how.
#[derive(Debug, Clone)]
pub struct ImportRequest {
    pub path: PathBuf,
    /// The dataset's name (defaults to the file's stem at the command line).
    pub name: String,
    /// Columns and format.
    pub spec: SourceSpec,
    /// Class names in their order (from a label-names file); new labels are then an error.
    /// Integer labels are read as ids into this list (0 → the first name).
    pub label_names: Option<Vec<String>>,
    /// Renames labels as they are read (`0` → `negative`).
    pub label_map: Option<std::collections::HashMap<String, String>>,
    /// The split part every row of this file belongs to (train, validation or test files).
    pub part: Option<Part>,
    /// Add the rows to an existing dataset of that name.
    pub append: bool,
}

/// What an import did.
#[derive(Debug, Clone, Serialize)]
pub struct ImportSummary {
    pub dataset: DatasetInfo,
    /// Rows added by this import.
    pub imported: u64,
    pub labeled: u64,
    pub warnings: Vec<String>,
}

/// The stored name of a label as read: mapped, or an integer id into the label names.
fn label_name(req: &ImportRequest, label: String) -> String {
    if let Some(mapped) = req.label_map.as_ref().and_then(|m| m.get(&label)) {
        return mapped.clone();
    }
    if let Some(names) = &req.label_names {
        if !names.contains(&label) {
            if let Some(name) = label.parse::<usize>().ok().and_then(|i| names.get(i)) {
                return name.clone();
            }
        }
    }
    label
}

fn to_example(
    path: &std::path::Path,
    row: SourceRow,
    part: Option<Part>,
) -> Result<NewExample, AppError> {
    let given_part = match (&row.split, part) {
        (Some(s), _) => Some(Part::parse(s).ok_or_else(|| {
            AppError::Invalid(format!(
                "{}, line {}: split value '{s}' is not train, validation (valid, dev) or test",
                path.display(),
                row.line
            ))
        })?),
        (None, p) => p,
    };
    let label = match (row.tags, row.label) {
        (Some(tags), _) => Some(Label::Tags(tags)),
        (None, Some(l)) => Some(Label::Class(l)),
        (None, None) => None,
    };
    Ok(NewExample {
        source_line: Some(row.line),
        text: row.text,
        text_pair: row.text_pair,
        tokens: row.tokens,
        label,
        given_part,
    })
}

impl App {
    /// Imports `req.path` into the database, calling `progress(bytes read, file size)` as it
    /// goes. All rows are committed together, or none.
    pub fn import(
        &mut self,
        req: &ImportRequest,
        progress: &mut dyn FnMut(u64, u64),
    ) -> Result<ImportSummary, AppError> {
        let reader = SourceReader::open(&req.path, &req.spec)?;
        let format = reader.format();
        let task = if format == FileFormat::Conll {
            Task::TokenClassification
        } else {
            Task::Classification
        };
        let new = NewDataset {
            name: req.name.clone(),
            task,
            source: req.path.display().to_string(),
            format: format.name().to_string(),
            columns: serde_json::to_value(&req.spec)
                .map_err(|e| AppError::Invalid(e.to_string()))?,
            label_names: req.label_names.clone(),
        };
        let warnings = reader.warnings().to_vec();
        let fingerprint = fingerprint_file(&req.path)?;
        let mut import = self.store.begin_import(&new, req.append)?;
        let (mut imported, mut labeled) = (0u64, 0u64);
        let mut reader = reader;
        while let Some(row) = reader.next() {
            let mut row = row?;
            row.label = row.label.map(|l| label_name(req, l));
            let example = to_example(&req.path, row, req.part)?;
            labeled += u64::from(example.label.is_some());
            import.add(&example)?;
            imported += 1;
            if imported % 4096 == 0 {
                let (done, total) = reader.progress();
                progress(done, total);
            }
        }
        let (_, total) = reader.progress();
        progress(total, total);
        import.finish(&fingerprint, &warnings)?;
        Ok(ImportSummary {
            dataset: self.store.dataset(&req.name)?,
            imported,
            labeled,
            warnings,
        })
    }
}
