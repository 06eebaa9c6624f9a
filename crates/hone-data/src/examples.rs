//! Reading labeled examples for training and evaluation, on top of the streaming readers in
//! `source`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::source::{SourceReader, SourceSpec};
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

/// One example as read from a file: a text (and pair) with its class for sequence tasks, or
/// words with their tags for token classification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Example {
    /// Line of the file where the example starts (1-based, the header is line 1 for CSV/TSV).
    pub line: u64,
    pub text: String,
    pub text_pair: Option<String>,
    /// The label as written in the file, trimmed; `None` when no label column was asked for.
    pub label: Option<String>,
    /// Token classification: the words (`text` is them joined by spaces).
    pub tokens: Vec<String>,
    /// Token classification: one IOB2 tag per word.
    pub tags: Vec<String>,
}

impl From<crate::TaggedSentence> for Example {
    fn from(s: crate::TaggedSentence) -> Self {
        Example {
            line: s.line,
            text: s.tokens.join(" "),
            tokens: s.tokens,
            tags: s.tags,
            ..Default::default()
        }
    }
}

/// The examples of a file and what the reader noticed (a guessed encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFile {
    pub examples: Vec<Example>,
    pub warnings: Vec<String>,
}

/// Reads every example of `path` for training or evaluation: the text (and pair) must be there
/// and, when a label column is named, so must the label. The format comes from the extension
/// unless given.
pub fn read_examples(
    path: &Path,
    format: Option<FileFormat>,
    columns: &ColumnSpec,
) -> Result<ExampleFile, DataError> {
    let spec = SourceSpec {
        format,
        text: Some(columns.text.clone()),
        text_pair: columns.text_pair.clone(),
        label: columns.label.clone(),
        ..Default::default()
    };
    let reader = SourceReader::open(path, &spec)?;
    if reader.format() == FileFormat::Conll {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            line: 0,
            message: "CoNLL files hold token tags; Hone trains text classifiers from CSV, TSV, JSON(L), Parquet or lines files".into(),
        });
    }
    let warnings = reader.warnings().to_vec();
    let mut out = Vec::new();
    for row in reader {
        let row = row?;
        if let (Some(c), None) = (&columns.text_pair, &row.text_pair) {
            return Err(DataError::EmptyValue {
                path: path.to_path_buf(),
                line: row.line,
                column: c.clone(),
            });
        }
        if let (Some(c), None) = (&columns.label, &row.label) {
            return Err(DataError::EmptyValue {
                path: path.to_path_buf(),
                line: row.line,
                column: c.clone(),
            });
        }
        out.push(Example {
            line: row.line,
            text: row.text,
            text_pair: row.text_pair,
            label: row.label,
            ..Default::default()
        });
    }
    if out.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(ExampleFile {
        examples: out,
        warnings,
    })
}
