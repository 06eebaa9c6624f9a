//! Loading a model's tokenizer (tokenizer.json, or vocab.txt for WordPiece models) and encoding
//! examples with truncation.

use std::path::{Path, PathBuf};

use tokenizers::decoders::wordpiece::WordPiece as WordPieceDecoder;
use tokenizers::models::wordpiece::WordPiece;
use tokenizers::normalizers::BertNormalizer;
use tokenizers::pre_tokenizers::bert::BertPreTokenizer;
use tokenizers::processors::bert::BertProcessing;
use tokenizers::{Tokenizer, TruncationDirection, TruncationParams, TruncationStrategy};

use crate::DataError;

/// The token ids of one example, after special tokens and truncation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedExample {
    pub input_ids: Vec<u32>,
    /// Segment ids: 0 for the first text, 1 for the second of a pair.
    pub type_ids: Vec<u32>,
    /// True when the text was longer than the maximum length and was cut.
    pub truncated: bool,
}

/// A tokenizer for a model folder, truncating to a maximum length (longest text first for pairs,
/// as `transformers` does with `truncation=True`).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    source: PathBuf,
    max_length: usize,
}

/// Reads a special token's text from tokenizer_config.json (a string or `{"content": ...}`).
fn special_token(config: &serde_json::Value, key: &str, default: &str) -> String {
    match config.get(key) {
        Some(serde_json::Value::String(s)) => s.clone(),
        Some(serde_json::Value::Object(o)) => o
            .get("content")
            .and_then(|c| c.as_str())
            .unwrap_or(default)
            .to_string(),
        _ => default.to_string(),
    }
}

fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

impl TextTokenizer {
    /// Loads the tokenizer of a model folder: `tokenizer.json` when present, otherwise a
    /// BERT WordPiece tokenizer built from `vocab.txt` and `tokenizer_config.json`.
    pub fn from_model_dir(dir: &Path, max_length: usize) -> Result<Self, DataError> {
        let json = dir.join("tokenizer.json");
        let vocab = dir.join("vocab.txt");
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| DataError::Tokenizer {
                path: json.clone(),
                message: e.to_string(),
            })?
        } else if vocab.is_file() {
            wordpiece_from_vocab(dir, &vocab)?
        } else {
            return Err(DataError::Tokenizer {
                path: dir.to_path_buf(),
                message: "no tokenizer.json or vocab.txt in the model folder; copy the model's tokenizer files next to config.json".into(),
            });
        };
        inner.with_padding(None);
        let mut tokenizer = TextTokenizer {
            inner,
            source: dir.to_path_buf(),
            max_length,
        };
        tokenizer.set_max_length(max_length)?;
        Ok(tokenizer)
    }

    /// Changes the length texts are truncated to (special tokens included).
    pub fn set_max_length(&mut self, max_length: usize) -> Result<(), DataError> {
        if max_length < 4 {
            return Err(DataError::Tokenizer {
                path: self.source.clone(),
                message: format!("maximum length {max_length} is too short; use at least 8 tokens"),
            });
        }
        self.inner
            .with_truncation(Some(TruncationParams {
                direction: TruncationDirection::Right,
                max_length,
                strategy: TruncationStrategy::LongestFirst,
                stride: 0,
            }))
            .map_err(|e| DataError::Tokenizer {
                path: self.source.clone(),
                message: e.to_string(),
            })?;
        self.max_length = max_length;
        Ok(())
    }

    /// The length texts are truncated to.
    pub fn max_length(&self) -> usize {
        self.max_length
    }

    /// Number of tokens in the vocabulary, added tokens included.
    pub fn vocab_size(&self) -> usize {
        self.inner.get_vocab_size(true)
    }

    /// The id of a token, if the vocabulary has it.
    pub fn token_id(&self, token: &str) -> Option<u32> {
        self.inner.token_to_id(token)
    }

    /// Encodes texts (with their optional pair) in parallel, with special tokens.
    pub fn encode<S: AsRef<str> + Sync>(
        &self,
        texts: &[(S, Option<S>)],
    ) -> Result<Vec<EncodedExample>, DataError> {
        let inputs: Vec<tokenizers::EncodeInput> = texts
            .iter()
            .map(|(a, b)| match b {
                Some(b) => (a.as_ref(), b.as_ref()).into(),
                None => a.as_ref().into(),
            })
            .collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| DataError::Encode(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .map(|e| EncodedExample {
                truncated: !e.get_overflowing().is_empty(),
                input_ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
            })
            .collect())
    }

    /// Writes `tokenizer.json` (without truncation or padding) into `dir`.
    pub fn save_json(&self, dir: &Path) -> Result<(), DataError> {
        let mut plain = self.inner.clone();
        plain.with_padding(None);
        let path = dir.join("tokenizer.json");
        plain
            .with_truncation(None)
            .and_then(|t| t.save(&path, false))
            .map_err(|e| DataError::Tokenizer {
                path,
                message: e.to_string(),
            })
    }
}

/// A BERT WordPiece tokenizer from vocab.txt, honouring `do_lower_case` and the special tokens
/// named in tokenizer_config.json.
fn wordpiece_from_vocab(dir: &Path, vocab: &Path) -> Result<Tokenizer, DataError> {
    let config = read_json(&dir.join("tokenizer_config.json")).unwrap_or_default();
    let lowercase = config
        .get("do_lower_case")
        .and_then(|v| v.as_bool())
        .unwrap_or(true);
    let unk = special_token(&config, "unk_token", "[UNK]");
    let cls = special_token(&config, "cls_token", "[CLS]");
    let sep = special_token(&config, "sep_token", "[SEP]");
    let vocab_str = vocab.to_string_lossy().to_string();
    let error = |message: String| DataError::Tokenizer {
        path: vocab.to_path_buf(),
        message,
    };
    let model = WordPiece::from_file(&vocab_str)
        .unk_token(unk)
        .build()
        .map_err(|e| error(e.to_string()))?;
    let mut tokenizer = Tokenizer::new(model);
    let cls_id = tokenizer
        .token_to_id(&cls)
        .ok_or_else(|| error(format!("the vocabulary has no '{cls}' token")))?;
    let sep_id = tokenizer
        .token_to_id(&sep)
        .ok_or_else(|| error(format!("the vocabulary has no '{sep}' token")))?;
    tokenizer
        .with_normalizer(Some(BertNormalizer::new(true, true, None, lowercase)))
        .map_err(|e| error(e.to_string()))?;
    tokenizer.with_pre_tokenizer(Some(BertPreTokenizer));
    tokenizer.with_post_processor(Some(BertProcessing::new((sep, sep_id), (cls, cls_id))));
    tokenizer.with_decoder(Some(WordPieceDecoder::default()));
    Ok(tokenizer)
}
