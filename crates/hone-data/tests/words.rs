//! Word-level sentences (CoNLL tokens) through real tokenizers (the tiny WordPiece and
//! byte-level BPE reference tokenizers): every word gets its sub-tokens, in order, and labels
//! land on each word's first sub-token.

use std::path::PathBuf;

use hone_data::TextTokenizer;

fn tokenizer(family: &str) -> TextTokenizer {
    let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR"))
        .join(format!("../../tests/fixtures/tiny-{family}"));
    TextTokenizer::from_model_dir(&dir, 64).unwrap()
}

fn words(s: &str) -> Vec<String> {
    s.split_whitespace().map(str::to_string).collect()
}

#[test]
fn every_word_gets_its_sub_tokens_in_order() {
    let sentences = vec![
        words("EU rejects German call to boycott British lamb ."),
        words("Peter Blackburn"),
        words("unbelievably , it 's 1996-08-22"),
    ];
    for family in ["bert", "roberta"] {
        let tok = tokenizer(family);
        for (enc, sentence) in tok.encode_words(&sentences).unwrap().iter().zip(&sentences) {
            assert_eq!(enc.word_ids.len(), enc.example.input_ids.len());
            assert_eq!(
                enc.word_ids.first(),
                Some(&None),
                "{family}: a special token first"
            );
            assert_eq!(
                enc.word_ids.last(),
                Some(&None),
                "{family}: a special token last"
            );
            let seen: Vec<u32> = enc.word_ids.iter().flatten().copied().collect();
            assert!(seen.windows(2).all(|w| w[0] <= w[1]), "{family}: {seen:?}");
            let mut distinct = seen.clone();
            distinct.dedup();
            let n = sentence.len() as u32;
            assert_eq!(
                distinct,
                (0..n).collect::<Vec<_>>(),
                "{family} {sentence:?}: every word"
            );
            let first = enc.first_tokens(sentence.len());
            assert!(first.iter().all(Option::is_some), "{family}: {first:?}");
        }
    }
}

#[test]
fn labels_sit_on_first_sub_tokens_unless_all_are_asked_for() {
    let tok = tokenizer("bert");
    let enc = tok
        .encode_words(&[words("unbelievably good")])
        .unwrap()
        .remove(0);
    let pieces = enc.word_ids.iter().filter(|w| **w == Some(0)).count();
    assert!(pieces > 1, "the test word should split: {:?}", enc.word_ids);
    const X: u32 = u32::MAX;
    let first = enc.token_labels(&[1, 0], false, |y| y + 1, X);
    let all = enc.token_labels(&[1, 0], true, |y| y + 1, X);
    assert_eq!(first.first(), Some(&X));
    assert_eq!(first.iter().filter(|&&y| y == 1).count(), 1);
    assert_eq!(first.iter().filter(|&&y| y != X).count(), 2);
    // Every sub-token labeled; continuation pieces of word 0 take the "inside" label 2.
    assert_eq!(all.iter().filter(|&&y| y == 2).count(), pieces - 1);
    assert_eq!(
        all.iter().filter(|&&y| y != X).count(),
        enc.word_ids.iter().flatten().count()
    );
}

#[test]
fn offsets_point_into_the_raw_text_and_words_are_found() {
    let text = "Peter Blackburn visited Brussels";
    for family in ["bert", "roberta"] {
        let tok = tokenizer(family);
        let enc = tok.encode_with_offsets(text).unwrap();
        assert_eq!(enc.offsets.len(), enc.example.input_ids.len());
        let spans: Vec<String> = enc
            .offsets
            .iter()
            .flatten()
            .map(|&(a, b)| text[a..b].trim().to_lowercase())
            .collect();
        assert_eq!(
            spans.concat(),
            text.replace(' ', "").to_lowercase(),
            "{family}"
        );
        // A token starts a word exactly when it starts at a word of the text. WordPiece marks
        // its sub-words: four words. The tiny byte-level BPE splits a lone space token off
        // some words, and transformers' spacing rule (which Hone follows) counts it as a word
        // of its own.
        let word_starts = [0, 6, 16, 24];
        for (o, &sub) in enc.offsets.iter().zip(&enc.subword) {
            if let (Some((start, end)), false) = (o, sub) {
                assert!(
                    word_starts.contains(start) || start == end,
                    "{family}: a word starts inside one at {start}"
                );
            }
        }
        let starts = enc
            .offsets
            .iter()
            .zip(&enc.subword)
            .filter(|(o, &s)| o.is_some() && !s)
            .count();
        if family == "bert" {
            assert_eq!(starts, 4, "{family}: {:?}", enc.subword);
        } else {
            assert!(starts >= 4, "{family}: {:?}", enc.subword);
        }
    }
}

/// A (prompt, option) pair too long for the maximum length loses the end of its prompt and
/// keeps its option whole; short pairs encode exactly as `encode` does; an option too long
/// to fit is cut longest first as `encode` cuts it.
#[test]
fn multiple_choice_pairs_keep_their_option() {
    for family in ["bert", "roberta"] {
        let mut tok = tokenizer(family);
        tok.set_max_length(16).unwrap();
        let prompt =
            "the film was long and the acting was dull but the ending was a delight to watch";
        let option = "a quiet film";
        let short = [("a film", "a quiet film")];
        assert_eq!(
            tok.encode_keeping_second(&short).unwrap(),
            tok.encode(&[("a film", Some("a quiet film"))]).unwrap(),
            "{family}"
        );
        let kept = &tok.encode_keeping_second(&[(prompt, option)]).unwrap()[0];
        assert!(
            kept.truncated && kept.input_ids.len() == 16,
            "{family}: {kept:?}"
        );
        let mut whole = tok.clone();
        whole.set_max_length(64).unwrap();
        // The option alone after an empty prompt: [CLS] [SEP] option [SEP] (BERT) or
        // <s> </s> </s> option </s> (RoBERTa).
        let alone = &whole.encode_keeping_second(&[("", option)]).unwrap()[0].input_ids;
        let before = if family == "roberta" { 3 } else { 2 };
        let option_tokens = &alone[before..alone.len() - 1];
        assert!(
            kept.input_ids[..15].ends_with(option_tokens),
            "{family}: {kept:?} does not end with {option_tokens:?}"
        );
        let too_long = "word ".repeat(40);
        let cut = &tok
            .encode_keeping_second(&[("a film", too_long.as_str())])
            .unwrap()[0];
        assert_eq!(
            cut,
            &tok.encode(&[("a film", Some(too_long.as_str()))]).unwrap()[0],
            "{family}"
        );
    }
}
