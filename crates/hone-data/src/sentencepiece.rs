//! A DeBERTa-v2/v3 tokenizer from `spm.model` alone (the Hub's microsoft/deberta-v3-* have no
//! tokenizer.json): the SentencePiece model's pieces and scores as a Unigram model, with the
//! normaliser, pre-tokeniser and template `transformers`' `DebertaV2Tokenizer` builds around
//! them (transformers 5; it ignores the model's own normalisation rules).

use std::path::Path;

use prost::Message;
use tokenizers::decoders::metaspace::PrependScheme;
use tokenizers::models::unigram::Unigram;
use tokenizers::normalizers::{Lowercase, Replace, Strip, NFC};
use tokenizers::pre_tokenizers::metaspace::Metaspace;
use tokenizers::pre_tokenizers::punctuation::Punctuation;
use tokenizers::processors::template::TemplateProcessing;
use tokenizers::{
    AddedToken, NormalizerWrapper, PreTokenizerWrapper, SplitDelimiterBehavior, Tokenizer,
};

use crate::tokenize::{read_json, special_token};
use crate::DataError;

/// The parts of SentencePiece's `ModelProto` a Unigram tokenizer needs.
#[derive(Clone, PartialEq, Message)]
struct ModelProto {
    #[prost(message, repeated, tag = "1")]
    pieces: Vec<SentencePiece>,
    #[prost(message, optional, tag = "2")]
    trainer_spec: Option<TrainerSpec>,
}

#[derive(Clone, PartialEq, Message)]
struct SentencePiece {
    #[prost(string, optional, tag = "1")]
    piece: Option<String>,
    #[prost(float, optional, tag = "2")]
    score: Option<f32>,
    /// NORMAL 1, UNKNOWN 2, CONTROL 3, USER_DEFINED 4, UNUSED 5, BYTE 6.
    #[prost(int32, optional, tag = "3")]
    kind: Option<i32>,
}

#[derive(Clone, PartialEq, Message)]
struct TrainerSpec {
    /// UNIGRAM 1, BPE 2, WORD 3, CHAR 4.
    #[prost(int32, optional, tag = "3")]
    model_type: Option<i32>,
    #[prost(int32, optional, tag = "40")]
    unk_id: Option<i32>,
}

const CONTROL: i32 = 3;
const USER_DEFINED: i32 = 4;

/// True when the folder's tokenizer is DeBERTa-v2/v3's (by `tokenizer_class` or the model's
/// `model_type`), the one recipe Hone builds from `spm.model`.
pub(crate) fn is_deberta(dir: &Path) -> bool {
    let class = read_json(&dir.join("tokenizer_config.json"))
        .and_then(|c| c.get("tokenizer_class")?.as_str().map(str::to_string));
    let model_type = read_json(&dir.join("config.json"))
        .and_then(|c| c.get("model_type")?.as_str().map(str::to_string));
    class.is_some_and(|c| c.starts_with("DebertaV2")) || model_type.as_deref() == Some("deberta-v2")
}

/// `DebertaV2Tokenizer` built from `spm` and the folder's `tokenizer_config.json`.
pub(crate) fn deberta_from_spm(dir: &Path, spm: &Path) -> Result<Tokenizer, DataError> {
    let error = |message: String| DataError::Tokenizer {
        path: spm.to_path_buf(),
        message,
    };
    let bytes = std::fs::read(spm).map_err(|e| DataError::io(spm, e))?;
    let proto = ModelProto::decode(&bytes[..])
        .map_err(|e| error(format!("not a SentencePiece model: {e}")))?;
    let trainer = proto.trainer_spec.clone().unwrap_or_default();
    if trainer.model_type.unwrap_or(1) != 1 {
        return Err(error(
            "only SentencePiece Unigram models are read (DeBERTa's); save the tokenizer with \
             transformers to get a tokenizer.json"
                .into(),
        ));
    }
    if proto.pieces.is_empty() {
        return Err(error("the SentencePiece model has no pieces".into()));
    }
    let config = read_json(&dir.join("tokenizer_config.json")).unwrap_or_default();
    let flag =
        |key: &str, default: bool| config.get(key).and_then(|v| v.as_bool()).unwrap_or(default);
    let [cls, sep, pad, unk, mask] = [
        ("cls_token", "[CLS]"),
        ("sep_token", "[SEP]"),
        ("pad_token", "[PAD]"),
        ("unk_token", "[UNK]"),
        ("mask_token", "[MASK]"),
    ]
    .map(|(key, default)| special_token(&config, key, default));
    let vocab: Vec<(String, f64)> = proto
        .pieces
        .iter()
        .map(|p| {
            (
                p.piece.clone().unwrap_or_default(),
                f64::from(p.score.unwrap_or(0.0)),
            )
        })
        .collect();
    // transformers: the unknown piece by name (with score 0), else the trainer's.
    let unk_id = vocab
        .iter()
        .position(|(p, s)| *p == unk && *s == 0.0)
        .or(trainer.unk_id.and_then(|i| usize::try_from(i).ok()))
        .unwrap_or(1);
    let model = Unigram::from(vocab, Some(unk_id), false).map_err(|e| error(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);

    let mut normalizers: Vec<NormalizerWrapper> = Vec::new();
    if flag("do_lower_case", false) {
        normalizers.push(Lowercase.into());
    }
    let spaces = Replace::new(
        tokenizers::normalizers::replace::ReplacePattern::Regex(r"\s{2,}|[\n\r\t]".into()),
        " ",
    )
    .map_err(|e| error(e.to_string()))?;
    normalizers.extend([spaces.into(), NFC.into(), Strip::new(false, true).into()]);
    tokenizer
        .with_normalizer(Some(tokenizers::normalizers::Sequence::new(normalizers)))
        .map_err(|e| error(e.to_string()))?;

    let prepend = if flag("add_prefix_space", true) {
        PrependScheme::Always
    } else {
        PrependScheme::First
    };
    let metaspace = Metaspace::new('\u{2581}', prepend, true);
    let mut pre: Vec<PreTokenizerWrapper> = Vec::new();
    if flag("split_by_punct", false) {
        pre.push(Punctuation::new(SplitDelimiterBehavior::Isolated).into());
    }
    pre.push(metaspace.clone().into());
    tokenizer.with_pre_tokenizer(Some(tokenizers::pre_tokenizers::sequence::Sequence::new(
        pre,
    )));
    tokenizer.with_decoder(Some(metaspace));

    // SentencePiece's control pieces are special tokens, its user-defined pieces plain added
    // ones; then the tokenizer's own special tokens ([MASK] comes after the vocabulary).
    let pieces = |kind: i32| -> Vec<AddedToken> {
        proto
            .pieces
            .iter()
            .filter(|p| p.kind == Some(kind))
            .filter_map(|p| p.piece.clone())
            .map(|p| AddedToken::from(p, kind == CONTROL).normalized(false))
            .collect()
    };
    tokenizer
        .add_special_tokens(pieces(CONTROL))
        .map_err(|e| error(e.to_string()))?;
    tokenizer
        .add_tokens(pieces(USER_DEFINED))
        .map_err(|e| error(e.to_string()))?;
    let specials: Vec<AddedToken> = [&pad, &cls, &sep, &unk, &mask]
        .into_iter()
        .map(|t| AddedToken::from(t.clone(), true).normalized(false))
        .collect();
    tokenizer
        .add_special_tokens(specials)
        .map_err(|e| error(e.to_string()))?;

    let id = |token: &str| {
        tokenizer
            .token_to_id(token)
            .ok_or_else(|| error(format!("the vocabulary has no '{token}' token")))
    };
    let (cls_id, sep_id) = (id(&cls)?, id(&sep)?);
    let template = TemplateProcessing::builder()
        .try_single(format!("{cls}:0 $A:0 {sep}:0"))
        .and_then(|b| b.try_pair(format!("{cls}:0 $A:0 {sep}:0 $B:1 {sep}:1")))
        .map_err(|e| error(e.to_string()))?
        .special_tokens(vec![(cls.clone(), cls_id), (sep.clone(), sep_id)])
        .build()
        .map_err(|e| error(e.to_string()))?;
    tokenizer.with_post_processor(Some(template));
    Ok(tokenizer)
}
