//! The streaming source readers on every format, on hostile files, and on the real datasets in
//! `../shared/datasets` (row counts and label sets as their READMEs state).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::sync::Arc;

use arrow_array::{ArrayRef, Int64Array, RecordBatch, StringArray};
use hone_data::{DataError, FileFormat, SourceReader, SourceRow, SourceSpec};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn spec(text: &str, label: Option<&str>) -> SourceSpec {
    SourceSpec {
        text: Some(text.into()),
        label: label.map(str::to_string),
        ..Default::default()
    }
}

fn read(path: &Path, spec: &SourceSpec) -> Result<Vec<SourceRow>, DataError> {
    SourceReader::open(path, spec)?.collect()
}

#[test]
fn unlabeled_rows_are_kept_and_a_split_column_is_read() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.csv",
        b"text,label,part\na,pos,train\nb,,dev\nc,neg,test\n",
    );
    let mut s = spec("text", Some("label"));
    s.split = Some("part".into());
    let rows = read(&path, &s).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(rows[1].label, None);
    assert_eq!(rows[1].split.as_deref(), Some("dev"));
}

#[test]
fn csv_without_a_header_names_columns_by_position() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.csv",
        b"\"3\",\"Title\",\"A \\\"quoted\\\" body\"\n\"1\",\"T2\",\"body two\"\n",
    );
    let mut s = spec("3", Some("1"));
    s.no_header = true;
    s.text_pair = Some("2".into());
    let rows = read(&path, &s).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].label.as_deref(), Some("3"));
    assert_eq!(rows[0].text_pair.as_deref(), Some("Title"));
}

#[test]
fn json_arrays_stream_their_objects() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.json",
        br#"[{"q": "one", "y": 1}, {"q": "two", "y": true}, {"q": "three"}]"#,
    );
    let rows = read(&path, &spec("q", Some("y"))).unwrap();
    assert_eq!(
        rows.iter().map(|r| r.label.clone()).collect::<Vec<_>>(),
        [Some("1".into()), Some("true".into()), None]
    );
    assert_eq!(FileFormat::from_path(&path).unwrap(), FileFormat::Json);
    let bad = write(dir.path(), "bad.json", br#"[{"q": "one"}, {"q": "#);
    let err = read(&bad, &spec("q", None)).unwrap_err().to_string();
    assert!(
        err.contains("bad.json") && err.contains("JSON array"),
        "{err}"
    );
    let not_objects = write(dir.path(), "n.json", b"[1, 2]");
    assert!(read(&not_objects, &spec("q", None))
        .unwrap_err()
        .to_string()
        .contains("not a JSON object"));
}

#[test]
fn conll_sentences_with_docstart_and_a_missing_tag_column() {
    let dir = tempfile::tempdir().unwrap();
    let text =
        "-DOCSTART- -X- -X- O\n\nEU NNP B-NP B-ORG\nrejects VBZ B-VP O\n\nPeter NNP B-NP B-PER\n";
    let path = write(dir.path(), "d.conll", text.as_bytes());
    let rows = read(&path, &SourceSpec::default()).unwrap();
    assert_eq!(rows.len(), 2);
    assert_eq!(rows[0].tokens.as_ref().unwrap(), &["EU", "rejects"]);
    assert_eq!(rows[0].tags.as_ref().unwrap(), &["B-ORG", "O"]);
    assert_eq!((rows[0].line, rows[1].line), (3, 6));
    assert_eq!(rows[0].text, "EU rejects");
    let broken = write(dir.path(), "b.conll", b"EU NNP B-NP B-ORG\nrejects\n");
    let s = SourceSpec {
        tag_column: Some(4),
        ..Default::default()
    };
    let err = read(&broken, &s).unwrap_err().to_string();
    assert!(err.contains("line 2") && err.contains("1 column"), "{err}");
}

#[test]
fn labeled_lines_and_fasttext_prefixes() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.txt",
        b"NUM:date When was it ?\n__label__pos great film\n\nbad\n",
    );
    let s = SourceSpec {
        format: Some(FileFormat::Lines),
        ..Default::default()
    };
    let rows: Vec<_> = SourceReader::open(&path, &s).unwrap().collect();
    assert_eq!(rows[0].as_ref().unwrap().label.as_deref(), Some("NUM:date"));
    assert_eq!(rows[1].as_ref().unwrap().label.as_deref(), Some("pos"));
    let err = rows[2].as_ref().unwrap_err().to_string();
    assert!(
        err.contains("line 4") && err.contains("LABEL text"),
        "{err}"
    );
}

fn parquet_file(dir: &Path, rows: usize) -> PathBuf {
    let texts: Vec<String> = (0..rows).map(|i| format!("text number {i}")).collect();
    let labels: Vec<i64> = (0..rows as i64).map(|i| i % 3).collect();
    let batch = RecordBatch::try_from_iter(vec![
        ("sentence", Arc::new(StringArray::from(texts)) as ArrayRef),
        ("label", Arc::new(Int64Array::from(labels)) as ArrayRef),
    ])
    .unwrap();
    let path = dir.join("d.parquet");
    let file = std::fs::File::create(&path).unwrap();
    let mut writer = parquet::arrow::ArrowWriter::try_new(file, batch.schema(), None).unwrap();
    writer.write(&batch).unwrap();
    writer.close().unwrap();
    path
}

#[test]
fn parquet_columns_by_name_in_batches() {
    let dir = tempfile::tempdir().unwrap();
    let path = parquet_file(dir.path(), 10_000);
    let mut reader = SourceReader::open(&path, &spec("sentence", Some("label"))).unwrap();
    let first = reader.next().unwrap().unwrap();
    assert_eq!(
        (first.line, first.text.as_str(), first.label.as_deref()),
        (1, "text number 0", Some("0"))
    );
    let rest: Vec<_> = reader.by_ref().collect::<Result<_, _>>().unwrap();
    assert_eq!(rest.len(), 9_999);
    assert_eq!(rest.last().unwrap().label.as_deref(), Some("0"));
    assert_eq!(reader.progress().0, reader.progress().1);
    let err = read(&path, &spec("text", None)).unwrap_err().to_string();
    assert!(
        err.contains("'text'") && err.contains("sentence, label"),
        "{err}"
    );
    let garbage = write(dir.path(), "g.parquet", b"not parquet at all");
    assert!(read(&garbage, &spec("t", None))
        .unwrap_err()
        .to_string()
        .contains("Parquet"));
}

#[test]
fn a_ten_megabyte_single_line_is_read_as_one_example() {
    let dir = tempfile::tempdir().unwrap();
    let mut bytes = b"text\tlabel\n".to_vec();
    bytes.extend(std::iter::repeat_n(b'a', 10 * 1024 * 1024));
    bytes.extend_from_slice(b"\t1\n");
    let path = write(dir.path(), "long.tsv", &bytes);
    let rows = read(&path, &spec("text", Some("label"))).unwrap();
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0].text.len(), 10 * 1024 * 1024);
}

#[test]
fn utf16_files_with_a_bom_are_transcoded() {
    let dir = tempfile::tempdir().unwrap();
    let text = "text\tlabel\nnaïve café\t1\n";
    let mut bytes = vec![0xFF, 0xFE];
    bytes.extend(text.encode_utf16().flat_map(u16::to_le_bytes));
    let path = write(dir.path(), "u16.tsv", &bytes);
    let rows = read(&path, &spec("text", Some("label"))).unwrap();
    assert_eq!(rows[0].text, "naïve café");
}

// ---- The real datasets -------------------------------------------------------------------

fn shared(rel: &str) -> Option<PathBuf> {
    let path = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join("../../../shared/datasets")
        .join(rel);
    if path.exists() {
        Some(path)
    } else {
        eprintln!("skipped: {} is not on this machine", path.display());
        None
    }
}

fn label_counts(rows: &[SourceRow]) -> BTreeMap<String, usize> {
    let mut counts = BTreeMap::new();
    for r in rows {
        if let Some(l) = &r.label {
            *counts.entry(l.clone()).or_insert(0) += 1;
        }
        for t in r.tags.iter().flatten() {
            *counts.entry(t.clone()).or_insert(0) += 1;
        }
    }
    counts
}

fn counts(pairs: &[(&str, usize)]) -> BTreeMap<String, usize> {
    pairs.iter().map(|(k, v)| (k.to_string(), *v)).collect()
}

#[test]
fn every_shared_dataset_imports_with_the_counts_its_readme_states() {
    let Some(_) = shared("") else { return };
    let sst2 = read(
        &shared("sst2/train.tsv").unwrap(),
        &spec("sentence", Some("label")),
    )
    .unwrap();
    assert_eq!(sst2.len(), 67_349);
    assert_eq!(label_counts(&sst2), counts(&[("0", 29_780), ("1", 37_569)]));

    let mut trec = spec("text", Some("label_coarse"));
    trec.text_pair = None;
    let train = read(&shared("trec/train.tsv").unwrap(), &trec).unwrap();
    assert_eq!(train.len(), 5_452);
    assert_eq!(
        label_counts(&train),
        counts(&[
            ("ABBR", 86),
            ("DESC", 1162),
            ("ENTY", 1250),
            ("HUM", 1223),
            ("LOC", 835),
            ("NUM", 896)
        ])
    );
    let test = read(&shared("trec/test.tsv").unwrap(), &trec).unwrap();
    assert_eq!(
        label_counts(&test),
        counts(&[
            ("ABBR", 9),
            ("DESC", 138),
            ("ENTY", 94),
            ("HUM", 65),
            ("LOC", 81),
            ("NUM", 113)
        ])
    );
    let lines = SourceSpec {
        format: Some(FileFormat::Lines),
        ..Default::default()
    };
    let reader = SourceReader::open(&shared("trec/train_5500.label").unwrap(), &lines).unwrap();
    let warnings = reader.warnings().to_vec();
    let fine: Vec<SourceRow> = reader.collect::<Result<_, _>>().unwrap();
    assert_eq!(fine.len(), 5_452);
    assert_eq!(label_counts(&fine).len(), 50, "50 fine labels in train");
    assert!(
        warnings[0].contains("line 66"),
        "the one non-UTF-8 byte: {warnings:?}"
    );
    let fine_test = read(&shared("trec/TREC_10.label").unwrap(), &lines).unwrap();
    assert_eq!((fine_test.len(), label_counts(&fine_test).len()), (500, 42));

    let emotion_counts = [
        ("train", 16_000, [4666, 5362, 1304, 2159, 1937, 572]),
        ("validation", 2_000, [550, 704, 178, 275, 212, 81]),
        ("test", 2_000, [581, 695, 159, 275, 224, 66]),
    ];
    for (split, n, per_class) in emotion_counts {
        let rows = read(
            &shared(&format!("emotion/{split}.jsonl")).unwrap(),
            &spec("text", Some("label")),
        )
        .unwrap();
        assert_eq!(rows.len(), n, "emotion {split}");
        let names = ["sadness", "joy", "love", "anger", "fear", "surprise"];
        let want: Vec<(&str, usize)> = names.iter().copied().zip(per_class).collect();
        assert_eq!(label_counts(&rows), counts(&want), "emotion {split}");
    }

    let mut ag = spec("3", Some("1"));
    ag.no_header = true;
    ag.text_pair = Some("2".into());
    let ag_test = read(&shared("ag_news/test.csv").unwrap(), &ag).unwrap();
    assert_eq!(ag_test.len(), 7_600);
    assert_eq!(
        label_counts(&ag_test),
        counts(&[("1", 1900), ("2", 1900), ("3", 1900), ("4", 1900)])
    );
    // The README promises a `sentence<TAB>label` header; the file has none: its first line is a
    // Sci/Tech example, hence 10,001 rows and one Sci/Tech more than the README counts.
    let mut ag10k = spec("1", Some("2"));
    ag10k.no_header = true;
    let ag_train = read(&shared("ag_news/train_subset_10k.tsv").unwrap(), &ag10k).unwrap();
    assert_eq!(ag_train.len(), 10_001);
    assert_eq!(
        label_counts(&ag_train),
        counts(&[
            ("World", 2509),
            ("Sports", 2458),
            ("Business", 2496),
            ("Sci/Tech", 2538)
        ])
    );

    let conll = SourceSpec {
        format: Some(FileFormat::Conll),
        tag_column: Some(4),
        ..Default::default()
    };
    let train = read(&shared("conll2003/eng.train").unwrap(), &conll).unwrap();
    assert_eq!(train.len(), 14_041);
    assert_eq!(
        train
            .iter()
            .map(|r| r.tokens.as_ref().unwrap().len())
            .sum::<usize>(),
        203_621
    );
    assert_eq!(
        label_counts(&train),
        counts(&[
            ("B-PER", 6600),
            ("B-LOC", 7140),
            ("B-ORG", 6321),
            ("B-MISC", 3438),
            ("I-PER", 4528),
            ("I-LOC", 1157),
            ("I-ORG", 3704),
            ("I-MISC", 1155),
            ("O", 169_578)
        ])
    );
    let valid = read(&shared("conll2003/eng.testa").unwrap(), &conll).unwrap();
    assert_eq!(valid.len(), 3_250);
    assert_eq!(
        valid
            .iter()
            .map(|r| r.tokens.as_ref().unwrap().len())
            .sum::<usize>(),
        51_362
    );
    let valid_counts = label_counts(&valid);
    for (tag, n) in [
        ("B-PER", 1842),
        ("B-LOC", 1837),
        ("B-ORG", 1341),
        ("B-MISC", 922),
    ] {
        assert_eq!(valid_counts[tag], n, "{tag}");
    }

    let mut samsum = spec("context", None);
    samsum.text_pair = Some("response".into());
    for (split, n) in [("validation", 818), ("test", 819)] {
        let rows = read(&shared(&format!("samsum/{split}.jsonl")).unwrap(), &samsum).unwrap();
        assert_eq!(rows.len(), n);
        assert!(rows
            .iter()
            .all(|r| r.label.is_none() && r.text_pair.is_some()));
    }

    let mut alpaca = spec("instruction", None);
    alpaca.text_pair = Some("input".into());
    let rows = read(
        &shared("alpaca_5k/alpaca_data_first5000.json").unwrap(),
        &alpaca,
    )
    .unwrap();
    assert_eq!(rows.len(), 5_000);
    assert_eq!(rows.iter().filter(|r| r.text_pair.is_some()).count(), 2_166);
}
