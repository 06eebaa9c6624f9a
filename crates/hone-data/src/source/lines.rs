//! `LABEL text` lines (TREC's `.label` files, fastText's `__label__X text`).

use std::io::BufRead;
use std::path::Path;

use super::{check_text, owned, utf8_lines, Rows, SourceRow};
use crate::DataError;

/// Rows of a labeled-lines file.
pub fn rows(path: &Path, text: Box<dyn BufRead + Send>) -> Result<Rows, DataError> {
    let path = owned(path);
    let mut lines = utf8_lines(&path, text);
    Ok(Box::new(std::iter::from_fn(move || loop {
        let (line_no, line) = match lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        let line = line.trim();
        if line.is_empty() {
            continue;
        }
        let Some((label, text)) = line.split_once(char::is_whitespace) else {
            return Some(Err(DataError::Malformed {
                path: path.clone(),
                line: line_no,
                message: "expected `LABEL text` (a label, a space, the text)".into(),
            }));
        };
        if let Err(e) = check_text(&path, line_no, "text", line) {
            return Some(Err(e));
        }
        let label = label.strip_prefix("__label__").unwrap_or(label);
        return Some(Ok(SourceRow {
            line: line_no,
            text: text.trim().to_string(),
            label: Some(label.to_string()),
            ..Default::default()
        }));
    })))
}
