//! Fuzzes every source reader: arbitrary bytes as a CSV, TSV, JSONL, JSON, CoNLL, lines or
//! Parquet file must give rows or an error, never a panic or a hang.
#![no_main]

use hone_data::{FileFormat, SourceReader, SourceSpec};
use libfuzzer_sys::fuzz_target;

const FORMATS: [(FileFormat, &str); 7] = [
    (FileFormat::Csv, "csv"),
    (FileFormat::Tsv, "tsv"),
    (FileFormat::Jsonl, "jsonl"),
    (FileFormat::Json, "json"),
    (FileFormat::Conll, "conll"),
    (FileFormat::Lines, "txt"),
    (FileFormat::Parquet, "parquet"),
];

fuzz_target!(|data: &[u8]| {
    let Some((&selector, body)) = data.split_first() else {
        return;
    };
    let (format, ext) = FORMATS[selector as usize % FORMATS.len()];
    let dir = tempfile::tempdir().expect("a temporary folder");
    let path = dir.path().join(format!("input.{ext}"));
    std::fs::write(&path, body).expect("writing the input");
    let spec = SourceSpec {
        format: Some(format),
        text: Some(if selector & 0x80 == 0 {
            "text".into()
        } else {
            "1".into()
        }),
        label: Some("label".into()),
        no_header: selector & 0x80 != 0,
        tag_column: (selector & 0x40 != 0).then_some(2),
        ..Default::default()
    };
    if let Ok(reader) = SourceReader::open(&path, &spec) {
        for row in reader.take(10_000) {
            if row.is_err() {
                break;
            }
        }
    }
});
