//! A look at a file before it is imported: its columns, a guess of which hold the text, the pair
//! and the label, the first rows as they would be stored, and the first error with its line.
//! Nothing is written.

use std::collections::BTreeMap;
use std::io::{BufRead, BufReader};
use std::path::Path;

use hone_data::{FileFormat, SourceReader, SourceSpec};
use serde::Serialize;

use crate::AppError;

const TEXT_NAMES: [&str; 9] = [
    "text",
    "sentence",
    "sentence1",
    "premise",
    "question",
    "question1",
    "review",
    "content",
    "document",
];
const PAIR_NAMES: [&str; 5] = [
    "text_pair",
    "sentence2",
    "hypothesis",
    "question2",
    "context",
];
const LABEL_NAMES: [&str; 7] = [
    "label",
    "labels",
    "class",
    "category",
    "sentiment",
    "target",
    "gold_label",
];

/// One row as it would be imported.
#[derive(Debug, Clone, Serialize)]
pub struct PreviewRow {
    pub line: u64,
    pub text: String,
    pub text_pair: Option<String>,
    pub label: Option<String>,
}

/// What the preview found.
#[derive(Debug, Clone, Serialize)]
pub struct FilePreview {
    pub format: FileFormat,
    /// Column names (empty for formats without columns: CoNLL, `LABEL text` lines, Parquet
    /// before a text column is named).
    pub columns: Vec<String>,
    /// The mapping used: the one given, else the guess.
    pub spec: SourceSpec,
    pub rows: Vec<PreviewRow>,
    /// Class labels among the rows counted (token-classification files: none).
    pub label_counts: BTreeMap<String, u64>,
    /// Rows counted: the whole file, or its first [`COUNT_AT_MOST`] rows.
    pub rows_counted: u64,
    /// Rows counted without a label (they import for labeling).
    pub unlabeled: u64,
    /// Whether `rows_counted` is the whole file.
    pub complete: bool,
    /// The first error, with its file and line; the import would stop there.
    pub error: Option<String>,
    pub warnings: Vec<String>,
}

/// The preview counts rows and labels up to this many rows (a few seconds at most).
pub const COUNT_AT_MOST: u64 = 200_000;

/// Reads the columns and up to `limit` rows of `path`, and counts rows, unlabeled rows and
/// labels over the whole file (up to [`COUNT_AT_MOST`] rows). Without a text column in
/// `spec`, the columns are guessed from their names. A binary file is refused before
/// anything of it is shown.
pub fn preview_file(path: &Path, spec: &SourceSpec, limit: usize) -> Result<FilePreview, AppError> {
    let format = match spec.format {
        Some(f) => f,
        None => FileFormat::from_path(path)?,
    };
    if format != FileFormat::Parquet {
        if let Err(e) = hone_data::refuse_binary_file(path, spec.encoding.is_some()) {
            return Ok(FilePreview {
                format,
                columns: Vec::new(),
                spec: spec.clone(),
                rows: Vec::new(),
                label_counts: BTreeMap::new(),
                rows_counted: 0,
                unlabeled: 0,
                complete: false,
                error: Some(e.to_string()),
                warnings: Vec::new(),
            });
        }
    }
    let columns = column_names(path, format, spec.no_header);
    // The preview shows its guess and lets the user change it, so a first-column guess is fine.
    let spec = guess_from(spec, format, &columns, true);
    let mut rows = Vec::new();
    let mut label_counts = BTreeMap::new();
    let (mut rows_counted, mut unlabeled, mut complete) = (0u64, 0u64, false);
    let mut error = None;
    let mut warnings = Vec::new();
    match SourceReader::open(path, &spec) {
        Err(e) => error = Some(e.to_string()),
        Ok(mut reader) => {
            warnings.extend(reader.warnings().iter().cloned());
            complete = true;
            for row in reader.by_ref() {
                if rows_counted == COUNT_AT_MOST {
                    complete = false;
                    break;
                }
                match row {
                    Ok(row) => {
                        rows_counted += 1;
                        let label = row
                            .label
                            .clone()
                            .or_else(|| row.tags.as_ref().map(|t| t.join(" ")));
                        if let Some(l) = &row.label {
                            *label_counts.entry(l.clone()).or_insert(0) += 1;
                        }
                        if label.is_none() {
                            unlabeled += 1;
                        }
                        if rows.len() == limit {
                            continue;
                        }
                        rows.push(PreviewRow {
                            line: row.line,
                            text: row.tokens.as_ref().map(|t| t.join(" ")).unwrap_or(row.text),
                            text_pair: row.text_pair,
                            label,
                        });
                    }
                    Err(e) => {
                        error = Some(e.to_string());
                        complete = false;
                        break;
                    }
                }
            }
        }
    }
    Ok(FilePreview {
        format,
        columns,
        spec,
        rows,
        label_counts,
        rows_counted,
        unlabeled,
        complete,
        error,
        warnings,
    })
}

/// `spec` with the format filled in and, when it names no text column, the text, pair and
/// label columns of a CSV, TSV, JSON Lines or JSON file guessed from its column names
/// ("sentence", "label", …). Only names are trusted: when no column has a text-like name the
/// text stays unnamed (the reader then asks for it, listing the columns). Other formats are
/// returned as they are.
pub fn guess_columns(path: &Path, spec: &SourceSpec) -> Result<SourceSpec, AppError> {
    let format = match spec.format {
        Some(f) => f,
        None => FileFormat::from_path(path)?,
    };
    let columns = column_names(path, format, spec.no_header);
    Ok(guess_from(spec, format, &columns, false))
}

/// The guess; with `first_column_fallback`, a text column is always picked: the first column
/// that is not the pair or the label.
fn guess_from(
    spec: &SourceSpec,
    format: FileFormat,
    columns: &[String],
    first_column_fallback: bool,
) -> SourceSpec {
    let mut spec = spec.clone();
    spec.format = Some(format);
    let has_columns = matches!(
        format,
        FileFormat::Csv | FileFormat::Tsv | FileFormat::Jsonl | FileFormat::Json
    );
    if has_columns && spec.text.is_none() {
        let pick = |names: &[&str]| {
            columns
                .iter()
                .find(|c| names.contains(&c.to_ascii_lowercase().as_str()))
                .cloned()
        };
        spec.text_pair = spec.text_pair.clone().or_else(|| pick(&PAIR_NAMES));
        spec.label = spec.label.clone().or_else(|| pick(&LABEL_NAMES));
        let taken = |c: &&String| {
            Some(c.as_str()) == spec.label.as_deref()
                || Some(c.as_str()) == spec.text_pair.as_deref()
        };
        spec.text = pick(&TEXT_NAMES).or_else(|| {
            first_column_fallback
                .then(|| columns.iter().find(|c| !taken(c)).cloned())
                .flatten()
        });
    }
    spec
}

/// The header of a CSV/TSV file, or the keys of the first JSON object.
fn column_names(path: &Path, format: FileFormat, no_header: bool) -> Vec<String> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    let mut reader = BufReader::new(file);
    match format {
        FileFormat::Csv | FileFormat::Tsv => {
            let delimiter = if format == FileFormat::Csv {
                b','
            } else {
                b'\t'
            };
            let mut csv = csv::ReaderBuilder::new()
                .delimiter(delimiter)
                .has_headers(false)
                .flexible(true)
                .quoting(format == FileFormat::Csv)
                .from_reader(reader);
            let Some(Ok(first)) = csv.records().next() else {
                return Vec::new();
            };
            if no_header {
                (1..=first.len()).map(|i| i.to_string()).collect()
            } else {
                first
                    .iter()
                    .map(|c| c.trim_start_matches('\u{feff}').to_string())
                    .collect()
            }
        }
        FileFormat::Jsonl | FileFormat::Json => {
            let mut line = String::new();
            let mut text = String::new();
            // The first object: its line (JSONL) or the start of the array (JSON, up to 64 KiB).
            while reader.read_line(&mut line).unwrap_or(0) > 0 && text.len() < 65536 {
                text.push_str(&line);
                line.clear();
                if format == FileFormat::Jsonl && !text.trim().is_empty() {
                    break;
                }
            }
            let body = text.trim_start_matches('\u{feff}').trim();
            let first = if format == FileFormat::Json {
                let inner = body.trim_start_matches('[');
                let mut stream =
                    serde_json::Deserializer::from_str(inner).into_iter::<serde_json::Value>();
                stream.next().and_then(Result::ok)
            } else {
                serde_json::from_str(body).ok()
            };
            first
                .and_then(|v| v.as_object().map(|o| o.keys().cloned().collect::<Vec<_>>()))
                .unwrap_or_default()
        }
        _ => Vec::new(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn guesses_columns_and_stops_at_the_first_bad_line() {
        let dir = tempfile::tempdir().expect("tmp");
        let tsv = dir.path().join("a.tsv");
        std::fs::write(
            &tsv,
            "id\tsentence\tlabel\n1\tgood film\t1\n2\tbad film\t0\n",
        )
        .expect("write");
        let p = preview_file(&tsv, &SourceSpec::default(), 10).expect("preview");
        assert_eq!(p.columns, ["id", "sentence", "label"]);
        assert_eq!(p.spec.text.as_deref(), Some("sentence"));
        assert_eq!(p.spec.label.as_deref(), Some("label"));
        assert_eq!(p.rows.len(), 2);
        assert_eq!(p.rows[1].line, 3);
        assert_eq!(p.label_counts.get("0"), Some(&1));
        assert!(p.error.is_none());

        let jsonl = dir.path().join("b.jsonl");
        std::fs::write(
            &jsonl,
            "{\"premise\": \"a\", \"hypothesis\": \"b\", \"gold_label\": \"x\"}\nnot json\n",
        )
        .expect("write");
        let p = preview_file(&jsonl, &SourceSpec::default(), 10).expect("preview");
        assert_eq!(p.spec.text_pair.as_deref(), Some("hypothesis"));
        assert_eq!(p.rows.len(), 1);
        let error = p.error.expect("an error");
        assert!(error.contains("line 2"), "{error}");
    }

    #[test]
    fn the_text_guess_never_takes_the_label_and_the_cli_guess_trusts_names_only() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("tweets.csv");
        std::fs::write(&file, "label,tweet\n1,so good\n0,meh\n").unwrap();
        let preview = preview_file(&file, &SourceSpec::default(), 10).unwrap();
        assert_eq!(preview.spec.label.as_deref(), Some("label"));
        assert_eq!(preview.spec.text.as_deref(), Some("tweet"));
        let strict = guess_columns(&file, &SourceSpec::default()).unwrap();
        assert_eq!(strict.label.as_deref(), Some("label"));
        assert_eq!(
            strict.text, None,
            "no text-like name: the CLI asks for --text-column"
        );
    }

    #[test]
    fn the_counts_cover_the_whole_file_not_just_the_rows_shown() {
        let dir = tempfile::tempdir().unwrap();
        let file = dir.path().join("reviews.tsv");
        let mut text = String::from("sentence\tlabel\n");
        for i in 0..300 {
            let label = match i % 3 {
                0 => "pos",
                1 => "neg",
                _ => "",
            };
            text.push_str(&format!("review {i}\t{label}\n"));
        }
        std::fs::write(&file, text).unwrap();
        let p = preview_file(&file, &SourceSpec::default(), 10).unwrap();
        assert_eq!(p.rows.len(), 10, "only the first rows are shown");
        assert_eq!((p.rows_counted, p.unlabeled, p.complete), (300, 100, true));
        assert_eq!(p.label_counts.get("pos"), Some(&100));
        assert_eq!(p.label_counts.get("neg"), Some(&100));
    }

    #[test]
    fn a_binary_file_is_refused_as_not_text_without_showing_its_bytes() {
        let dir = tempfile::tempdir().unwrap();
        // The start of a ZIP (an .xlsx saved as .csv): bytes, NULs among them.
        let file = dir.path().join("sheet.csv");
        let mut bytes = b"PK\x03\x04\x14\x00\x06\x00\x08\x00\x00\x00!\x00".to_vec();
        bytes.extend((0u8..=255).cycle().take(4000));
        std::fs::write(&file, &bytes).unwrap();
        let p = preview_file(&file, &SourceSpec::default(), 10).unwrap();
        assert!(p.columns.is_empty() && p.rows.is_empty(), "{:?}", p.columns);
        let error = p.error.expect("refused");
        assert!(error.contains("is not a text file"), "{error}");
        assert!(error.contains("CSV, TSV or JSON lines"), "{error}");
        let spec = SourceSpec {
            text: Some("text".into()),
            ..Default::default()
        };
        let read = hone_data::SourceReader::open(&file, &spec)
            .err()
            .expect("refused");
        assert!(read.to_string().contains("is not a text file"), "{read}");
        // UTF-16 with its byte-order mark has NULs too, and is text.
        let utf16 = dir.path().join("utf16.csv");
        let mut bytes = vec![0xFF, 0xFE];
        for unit in "text,label\nhello,1\n".encode_utf16() {
            bytes.extend(unit.to_le_bytes());
        }
        std::fs::write(&utf16, bytes).unwrap();
        assert!(hone_data::refuse_binary_file(&utf16, false).is_ok());
        let mut rows = hone_data::SourceReader::open(&utf16, &spec).expect("text");
        assert_eq!(rows.next().expect("a row").expect("read").text, "hello");
    }
}
