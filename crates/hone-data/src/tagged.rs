//! Reading token-tagged sentences for token classification: CoNLL files (token and tag
//! columns, `-DOCSTART-` skipped) and JSON lines with a tokens array and a tags array. Tags in
//! IOB1, IOB2 or BIOES are normalised to IOB2 ([`normalise_tags`], per sentence); a tag
//! sequence that breaks its scheme is an error naming its line.

use std::io::BufRead;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::source::{SourceReader, SourceSpec};
use crate::tags::{detect_scheme, normalise_tags, TagScheme};
use crate::{DataError, FileFormat};

/// Which fields of a JSON lines file hold the words and their tags (CoNLL files use columns
/// by position: the first and the last).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TagColumns {
    pub tokens: String,
    pub tags: String,
}

impl Default for TagColumns {
    fn default() -> Self {
        TagColumns {
            tokens: "tokens".into(),
            tags: "tags".into(),
        }
    }
}

/// One sentence: its words and their IOB2 tags.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedSentence {
    /// Line of the file where the sentence starts (1-based).
    pub line: u64,
    pub tokens: Vec<String>,
    pub tags: Vec<String>,
}

/// The sentences of a file, the scheme its tags were written in, and what the reader noticed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TaggedFile {
    pub sentences: Vec<TaggedSentence>,
    pub scheme: TagScheme,
    pub warnings: Vec<String>,
}

fn malformed(path: &Path, line: u64, message: String) -> DataError {
    DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    }
}

/// Reads every tagged sentence of a CoNLL or JSON lines file (the format from the extension
/// unless given: `.conll`, `.txt` with token lines → CoNLL; `.jsonl` → JSON lines).
pub fn read_tagged(
    path: &Path,
    format: Option<FileFormat>,
    columns: &TagColumns,
) -> Result<TaggedFile, DataError> {
    let format = match format {
        Some(f) => f,
        None => FileFormat::from_path(path)?,
    };
    let (raw, warnings, per_token_lines) = match format {
        FileFormat::Conll => {
            let spec = SourceSpec {
                format: Some(FileFormat::Conll),
                ..Default::default()
            };
            let reader = SourceReader::open(path, &spec)?;
            let warnings = reader.warnings().to_vec();
            let mut out = Vec::new();
            for row in reader {
                let row = row?;
                out.push(TaggedSentence {
                    line: row.line,
                    tokens: row.tokens.unwrap_or_default(),
                    tags: row.tags.unwrap_or_default(),
                });
            }
            (out, warnings, true)
        }
        FileFormat::Jsonl => (read_jsonl(path, columns)?, Vec::new(), false),
        other => {
            return Err(malformed(
                path,
                0,
                format!(
                    "{other:?} files hold texts; token classification reads CoNLL files or JSON lines with '{}' and '{}' arrays",
                    columns.tokens, columns.tags
                ),
            ))
        }
    };
    if raw.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    let scheme = detect_scheme(raw.iter().map(|s| &s.tags[..]));
    let mut sentences = Vec::with_capacity(raw.len());
    for s in raw {
        let tags = normalise_tags(&s.tags).map_err(|e| {
            let line = if per_token_lines {
                s.line + e.token as u64
            } else {
                s.line
            };
            let word = s.tokens.get(e.token).map(String::as_str).unwrap_or("");
            malformed(
                path,
                line,
                format!("token {} ('{word}'): {}", e.token + 1, e.message),
            )
        })?;
        sentences.push(TaggedSentence { tags, ..s });
    }
    Ok(TaggedFile {
        sentences,
        scheme,
        warnings,
    })
}

fn read_jsonl(path: &Path, columns: &TagColumns) -> Result<Vec<TaggedSentence>, DataError> {
    let file = std::fs::File::open(path).map_err(|e| DataError::Io {
        path: path.to_path_buf(),
        source: e,
    })?;
    let mut out = Vec::new();
    for (i, line) in std::io::BufReader::new(file).lines().enumerate() {
        let line_no = i as u64 + 1;
        let line = line.map_err(|e| DataError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        if line.trim().is_empty() {
            continue;
        }
        let value: serde_json::Value = serde_json::from_str(&line)
            .map_err(|e| malformed(path, line_no, format!("not a JSON object: {e}")))?;
        let strings = |field: &str| -> Result<Vec<String>, DataError> {
            let array = value
                .get(field)
                .and_then(|v| v.as_array())
                .ok_or_else(|| malformed(path, line_no, format!("no '{field}' array")))?;
            array
                .iter()
                .map(|v| match v {
                    serde_json::Value::String(s) => Ok(s.clone()),
                    serde_json::Value::Number(n) => Err(malformed(
                        path,
                        line_no,
                        format!("'{field}' holds the number {n}: give tag names (B-PER, O, …)"),
                    )),
                    other => Err(malformed(
                        path,
                        line_no,
                        format!("'{field}' holds {other}, not a string"),
                    )),
                })
                .collect()
        };
        let tokens = strings(&columns.tokens)?;
        let tags = strings(&columns.tags)?;
        if tokens.len() != tags.len() {
            return Err(malformed(
                path,
                line_no,
                format!("{} tokens but {} tags", tokens.len(), tags.len()),
            ));
        }
        if tokens.is_empty() {
            continue;
        }
        out.push(TaggedSentence {
            line: line_no,
            tokens,
            tags,
        });
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, text: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, text).unwrap();
        (dir, path)
    }

    #[test]
    fn conll_and_jsonl_read_the_same_sentences() {
        let (_d1, conll) = write(
            "a.conll",
            "-DOCSTART- -X- O O\n\nEU NNP B-NP I-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP I-PER\nBlackburn NNP I-NP I-PER\n",
        );
        let (_d2, jsonl) = write(
            "a.jsonl",
            "{\"tokens\": [\"EU\", \"rejects\"], \"tags\": [\"S-ORG\", \"O\"]}\n{\"tokens\": [\"Peter\", \"Blackburn\"], \"tags\": [\"B-PER\", \"E-PER\"]}\n",
        );
        let a = read_tagged(&conll, None, &TagColumns::default()).unwrap();
        let b = read_tagged(&jsonl, None, &TagColumns::default()).unwrap();
        assert_eq!(a.scheme, TagScheme::Iob1);
        assert_eq!(b.scheme, TagScheme::Bioes);
        for file in [&a, &b] {
            assert_eq!(file.sentences.len(), 2);
            assert_eq!(file.sentences[0].tags, ["B-ORG", "O"]);
            assert_eq!(file.sentences[1].tokens, ["Peter", "Blackburn"]);
            assert_eq!(file.sentences[1].tags, ["B-PER", "I-PER"]);
        }
    }

    #[test]
    fn a_broken_tag_is_reported_with_its_line() {
        let (_d, path) = write(
            "b.conll",
            "EU B-ORG\nrejects O\n\nPeter B-PER\nBlackburn X-PER\n",
        );
        let err = read_tagged(&path, None, &TagColumns::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("line 5") && err.contains("Blackburn"), "{err}");
        let (_d, path) = write("c.jsonl", "{\"tokens\": [\"a\"], \"tags\": [1]}\n");
        let err = read_tagged(&path, None, &TagColumns::default())
            .unwrap_err()
            .to_string();
        assert!(err.contains("tag names"), "{err}");
    }
}
