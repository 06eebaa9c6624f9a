//! Writing a stored dataset back to a file.

use std::io::Write;
use std::path::Path;

use hone_store::{ExampleFilter, Label, Part};

use crate::{App, AppError};

fn csv_io(e: csv::Error) -> AppError {
    AppError::Invalid(format!("cannot write the CSV: {e}"))
}

fn label_text(label: &Option<Label>) -> String {
    match label {
        None => String::new(),
        Some(Label::Class(c)) => c.clone(),
        Some(Label::Tags(t)) => t.join(" "),
    }
}

impl App {
    /// Writes a dataset (or one part of a split) to `out`: CSV, TSV or JSONL by extension, or
    /// CoNLL for token tags. Returns the number of examples written.
    pub fn export_dataset(
        &self,
        dataset: &str,
        out: &Path,
        split: Option<(String, Part)>,
    ) -> Result<u64, AppError> {
        let app = self;
        let info = app.store().dataset(dataset)?;
        let part = match &split {
            Some((name, part)) => {
                let s = app.store().split(info.id, name)?.ok_or_else(|| {
                    AppError::Invalid(format!("dataset '{dataset}' has no split '{name}'"))
                })?;
                Some((s.id, *part))
            }
            None => None,
        };
        let examples = app.store().examples(
            info.id,
            &ExampleFilter {
                part,
                ..Default::default()
            },
        )?;
        let format = out
            .extension()
            .and_then(|e| e.to_str())
            .unwrap_or("")
            .to_ascii_lowercase();
        let io = |e: std::io::Error| AppError::Io {
            path: out.to_path_buf(),
            source: e,
        };
        let file = std::fs::File::create(out).map_err(io)?;
        let mut w = std::io::BufWriter::new(file);
        match format.as_str() {
            "csv" | "tsv" => {
                let mut csv = csv::WriterBuilder::new()
                    .delimiter(if format == "tsv" { b'\t' } else { b',' })
                    .quote_style(if format == "tsv" {
                        csv::QuoteStyle::Never
                    } else {
                        csv::QuoteStyle::Necessary
                    })
                    .from_writer(&mut w);
                csv.write_record(["text", "text_pair", "label", "part"])
                    .map_err(csv_io)?;
                for e in &examples {
                    let fields = [
                        e.text.clone(),
                        e.text_pair.clone().unwrap_or_default(),
                        e.label
                            .as_ref()
                            .map(|_| label_text(&e.label))
                            .unwrap_or_default(),
                        e.given_part
                            .map(|p| p.as_str().to_string())
                            .unwrap_or_default(),
                    ];
                    if format == "tsv"
                        && fields.iter().any(|f| f.contains('\t') || f.contains('\n'))
                    {
                        return Err(AppError::Invalid(format!("example {} contains a tab or a line break, which TSV cannot hold; export to .csv or .jsonl", e.position)));
                    }
                    csv.write_record(&fields).map_err(csv_io)?;
                }
                csv.flush().map_err(io)?;
            }
            "jsonl" => {
                for e in &examples {
                    serde_json::to_writer(
                        &mut w,
                        &serde_json::json!({
                            "text": e.text, "text_pair": e.text_pair, "tokens": e.tokens,
                            "label": e.label, "part": e.given_part,
                        }),
                    )
                    .map_err(|e| io(e.into()))?;
                    w.write_all(b"\n").map_err(io)?;
                }
            }
            "conll" => {
                for e in &examples {
                    let (Some(tokens), Some(Label::Tags(tags))) = (&e.tokens, &e.label) else {
                        return Err(AppError::Invalid(
                            "only labeled token-classification datasets export to CoNLL".into(),
                        ));
                    };
                    for (t, g) in tokens.iter().zip(tags) {
                        writeln!(w, "{t}\t{g}").map_err(io)?;
                    }
                    writeln!(w).map_err(io)?;
                }
            }
            _ => {
                return Err(AppError::Invalid(format!(
                    "unknown export format for {}: use .csv, .tsv, .jsonl or .conll",
                    out.display()
                )))
            }
        }
        w.flush().map_err(io)?;
        Ok(examples.len() as u64)
    }
}
