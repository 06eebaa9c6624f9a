//! A DeBERTa-v3 folder with only `spm.model` (as the Hub's microsoft/deberta-v3-*) tokenizes as
//! transformers' `DebertaV2Tokenizer` does (tests/reference/make_spm_fixture.py): the same ids
//! and segment ids for texts and pairs with runs of spaces, tabs, new lines, accents in both
//! Unicode forms, unknown characters and a [MASK].

use std::path::PathBuf;

use hone_data::TextTokenizer;

fn fixtures() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures")
}

fn ids(values: &serde_json::Value) -> Vec<u32> {
    values
        .as_array()
        .unwrap()
        .iter()
        .map(|v| v.as_u64().unwrap() as u32)
        .collect()
}

#[test]
fn a_deberta_spm_model_tokenizes_as_transformers() {
    let golden: serde_json::Value = serde_json::from_str(
        &std::fs::read_to_string(fixtures().join("golden/spm-deberta.json")).unwrap(),
    )
    .unwrap();
    let tokenizer = TextTokenizer::from_model_dir(&fixtures().join("spm-deberta"), 128).unwrap();
    for case in golden["cases"].as_array().unwrap() {
        let texts: Vec<String> = case["texts"]
            .as_array()
            .unwrap()
            .iter()
            .map(|t| t.as_str().unwrap().to_string())
            .collect();
        let input = vec![(texts[0].clone(), texts.get(1).cloned())];
        let encoded = tokenizer.encode(&input).unwrap();
        assert_eq!(encoded[0].input_ids, ids(&case["input_ids"]), "{texts:?}");
        assert_eq!(
            encoded[0].type_ids,
            ids(&case["token_type_ids"]),
            "{texts:?}"
        );
    }
}

#[test]
fn an_spm_model_of_another_family_asks_for_a_tokenizer_json() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::copy(
        fixtures().join("spm-deberta/spm.model"),
        dir.path().join("spm.model"),
    )
    .unwrap();
    std::fs::write(dir.path().join("config.json"), r#"{"model_type": "t5"}"#).unwrap();
    let err = TextTokenizer::from_model_dir(dir.path(), 128)
        .err()
        .unwrap()
        .to_string();
    assert!(
        err.contains("DeBERTa-v2/v3 only") && err.contains("tokenizer.json"),
        "{err}"
    );
    std::fs::write(
        dir.path().join("config.json"),
        r#"{"model_type": "deberta-v2"}"#,
    )
    .unwrap();
    std::fs::write(dir.path().join("spm.model"), b"not a protobuf \xff\xff").unwrap();
    let err = TextTokenizer::from_model_dir(dir.path(), 128)
        .err()
        .unwrap()
        .to_string();
    assert!(err.contains("spm.model"), "{err}");
}
