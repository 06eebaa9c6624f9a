//! CoNLL files: one token per line with whitespace-separated columns, a blank line between
//! sentences, `-DOCSTART-` lines skipped. Each sentence becomes one row with its tokens and tags.

use std::io::BufRead;
use std::path::Path;

use super::{check_text, owned, utf8_lines, Rows, SourceRow, SourceSpec};
use crate::DataError;

/// Rows (sentences) of a CoNLL file.
pub fn rows(
    path: &Path,
    text: Box<dyn BufRead + Send>,
    spec: &SourceSpec,
) -> Result<Rows, DataError> {
    let token_col = spec.token_column.unwrap_or(1);
    if token_col == 0 || spec.tag_column == Some(0) {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            line: 0,
            message: "CoNLL columns are numbered from 1".into(),
        });
    }
    let tag_col = spec.tag_column;
    let path = owned(path);
    let mut lines = utf8_lines(&path, text);
    let mut done = false;
    Ok(Box::new(std::iter::from_fn(move || {
        if done {
            return None;
        }
        let mut tokens = Vec::new();
        let mut tags = Vec::new();
        let mut start = 0u64;
        loop {
            let Some(next) = lines.next() else {
                done = true;
                break;
            };
            let (line_no, line) = match next {
                Ok(l) => l,
                Err(e) => return Some(Err(e)),
            };
            let line = line.trim();
            if line.is_empty() {
                if tokens.is_empty() {
                    continue;
                }
                break;
            }
            let fields: Vec<&str> = line.split_whitespace().collect();
            if fields[0] == "-DOCSTART-" {
                continue;
            }
            let tag_index = tag_col.unwrap_or(fields.len());
            let needed = token_col.max(tag_index);
            if fields.len() < needed || (tag_col.is_none() && fields.len() < 2) {
                return Some(Err(DataError::Malformed {
                    path: path.clone(),
                    line: line_no,
                    message: format!(
                        "the line has {} column(s); the token is column {token_col} and the tag column {}",
                        fields.len(),
                        tag_col.map(|c| c.to_string()).unwrap_or_else(|| "the last (at least 2 columns)".into())
                    ),
                }));
            }
            if let Err(e) = check_text(&path, line_no, "token", line) {
                return Some(Err(e));
            }
            if tokens.is_empty() {
                start = line_no;
            }
            tokens.push(fields[token_col - 1].to_string());
            tags.push(fields[tag_index - 1].to_string());
        }
        if tokens.is_empty() {
            return None;
        }
        Some(Ok(SourceRow {
            line: start,
            text: tokens.join(" "),
            text_pair: None,
            label: None,
            tokens: Some(tokens),
            tags: Some(tags),
            ..Default::default()
        }))
    })))
}
