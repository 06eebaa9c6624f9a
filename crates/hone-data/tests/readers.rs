//! Reading CSV, TSV and JSONL files: the shapes real files come in, and the broken ones, each
//! with an error that names the file, the line and what to do.

use std::path::{Path, PathBuf};

use hone_data::{read_examples, ColumnSpec, DataError, FileFormat};

fn write(dir: &Path, name: &str, bytes: &[u8]) -> PathBuf {
    let path = dir.join(name);
    std::fs::write(&path, bytes).unwrap();
    path
}

fn columns(text: &str, label: &str) -> ColumnSpec {
    ColumnSpec {
        text: text.into(),
        text_pair: None,
        label: Some(label.into()),
    }
}

#[test]
fn csv_with_quotes_spanning_lines_bom_and_line_numbers() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.csv",
        "\u{feff}id,text,label\n1,\"hello, world\",pos\n2,\"two\nlines\",neg\n3,plain,pos\n"
            .as_bytes(),
    );
    let ex = read_examples(&path, None, &columns("text", "label"))
        .unwrap()
        .examples;
    assert_eq!(ex.len(), 3);
    assert_eq!(ex[0].text, "hello, world");
    assert_eq!(ex[1].text, "two\nlines");
    assert_eq!(ex[1].line, 3);
    assert_eq!(ex[2].line, 5);
    assert_eq!(ex[2].label.as_deref(), Some("pos"));
}

#[test]
fn tsv_keeps_quote_characters_as_text() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.tsv",
        b"sentence\tlabel\n\"quoted start\tand more\t1\n",
    );
    let err = read_examples(&path, None, &columns("sentence", "label")).unwrap_err();
    assert!(matches!(err, DataError::Malformed { line: 2, .. }), "{err}");
    let path = write(
        dir.path(),
        "e.tsv",
        b"sentence\tlabel\n\" a film \" , he said \t1\n",
    );
    let ex = read_examples(&path, None, &columns("sentence", "label"))
        .unwrap()
        .examples;
    assert_eq!(ex[0].text, "\" a film \" , he said ");
}

#[test]
fn jsonl_with_numeric_labels_pairs_and_blank_lines() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(
        dir.path(),
        "d.jsonl",
        b"{\"a\": \"x\", \"b\": \"y\", \"label\": 3}\n\n{\"a\": \"z\", \"b\": \"w\", \"label\": 0}\n",
    );
    let spec = ColumnSpec {
        text: "a".into(),
        text_pair: Some("b".into()),
        label: Some("label".into()),
    };
    let ex = read_examples(&path, None, &spec).unwrap().examples;
    assert_eq!(ex.len(), 2);
    assert_eq!(ex[0].text_pair.as_deref(), Some("y"));
    assert_eq!(ex[0].label.as_deref(), Some("3"));
    assert_eq!(ex[1].line, 3);
}

#[test]
fn the_real_sst2_sample_reads_completely() {
    let path =
        PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/data/sst2_sample.tsv");
    let ex = read_examples(&path, Some(FileFormat::Tsv), &columns("sentence", "label"))
        .unwrap()
        .examples;
    assert_eq!(ex.len(), 48);
    assert_eq!(ex[0].text, "hide new secretions from the parental units ");
}

fn error_of(name: &str, bytes: &[u8], spec: ColumnSpec) -> String {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), name, bytes);
    let err = read_examples(&path, None, &spec).unwrap_err().to_string();
    assert!(err.contains(name), "the error names the file: {err}");
    err
}

#[test]
fn hostile_inputs_give_errors_with_lines_and_fixes() {
    let c = || columns("text", "label");
    assert!(error_of("empty.csv", b"", c()).contains("empty"));
    assert!(error_of("header.csv", b"text,label\n", c()).contains("no examples"));
    let e = error_of("ragged.csv", b"text,label\na,1\nb,2,3\n", c());
    assert!(e.contains("line 3") && e.contains("3 fields"), "{e}");
    let e = error_of("col.csv", b"sentence,label\na,1\n", c());
    assert!(
        e.contains("'text'") && e.contains("sentence, label") && e.contains("as the text column"),
        "{e}"
    );
    let e = error_of("lab.csv", b"text,label\na,1\nb,\n", c());
    assert!(e.contains("line 3") && e.contains("'label'"), "{e}");
    // Invalid UTF-8 far into a file (after the part read to guess the encoding) is an error.
    let mut late = b"text,label\n".to_vec();
    for _ in 0..20_000 {
        late.extend_from_slice(b"fine text,1\n");
    }
    late.extend_from_slice(b"caf\xe9,1\n");
    let e = error_of("utf.csv", &late, c());
    assert!(e.contains("line 20002") && e.contains("UTF-8"), "{e}");
    let e = error_of("obj.jsonl", b"[1, 2]\n", c());
    assert!(e.contains("line 1") && e.contains("JSON object"), "{e}");
    let e = error_of(
        "bad.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \n",
        c(),
    );
    assert!(e.contains("line 2"), "{e}");
    let e = error_of(
        "miss.jsonl",
        b"{\"text\": \"a\", \"label\": 1}\n{\"text\": \"b\"}\n",
        c(),
    );
    assert!(e.contains("line 2") && e.contains("'label'"), "{e}");
    // NUL bytes at the start: a binary file, refused as a whole.
    let e = error_of("nul.csv", b"text,label\na\0b,1\nc,\n", c());
    assert!(e.contains("is not a text file"), "{e}");
    // One far into a text file: a broken row, reported with its line.
    let mut late = b"text,label\n".to_vec();
    for _ in 0..8000 {
        late.extend(b"some text,1\n");
    }
    late.extend(b"a\0b,1\n");
    let e = error_of("late-nul.csv", &late, c());
    assert!(e.contains("line 8002") && e.contains("NUL"), "{e}");
    let e = error_of("what.txt", b"text,label\n", c());
    assert!(e.contains("choose it (csv"), "{e}");
}

#[test]
fn a_file_that_is_not_utf8_from_the_start_is_read_as_latin1_with_a_warning() {
    let dir = tempfile::tempdir().unwrap();
    let path = write(dir.path(), "latin.csv", b"text,label\ncaf\xe9 cr\xe8me,1\n");
    let file = read_examples(&path, None, &columns("text", "label")).unwrap();
    assert_eq!(file.examples[0].text, "café crème");
    assert!(file.warnings[0].contains("Latin-1"), "{:?}", file.warnings);
}

#[test]
fn a_missing_file_is_an_io_error_naming_it() {
    let err = read_examples(Path::new("/no/such/file.csv"), None, &columns("t", "l")).unwrap_err();
    assert!(err.to_string().contains("/no/such/file.csv"));
}
