//! Loading a model's tokenizer (tokenizer.json, or vocab.txt for WordPiece models, or
//! DeBERTa's spm.model) and encoding examples with truncation.

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

impl From<&tokenizers::Encoding> for EncodedExample {
    fn from(e: &tokenizers::Encoding) -> Self {
        EncodedExample {
            truncated: !e.get_overflowing().is_empty(),
            input_ids: e.get_ids().to_vec(),
            type_ids: e.get_type_ids().to_vec(),
        }
    }
}

/// A sentence given as words (CoNLL tokens), encoded: each sub-token knows its word.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedWords {
    pub example: EncodedExample,
    /// For each token, the index of the word it belongs to (`None` for special tokens).
    pub word_ids: Vec<Option<u32>>,
}

impl EncodedWords {
    /// For each of `words` words, its first token (`None` when truncation cut it).
    pub fn first_tokens(&self, words: usize) -> Vec<Option<usize>> {
        let mut first = vec![None; words];
        for (t, w) in self.word_ids.iter().enumerate() {
            if let Some(slot) = w.and_then(|w| first.get_mut(w as usize)) {
                slot.get_or_insert(t);
            }
        }
        first
    }

    /// Per-token labels from per-word label ids: the label on a word's first sub-token and
    /// `ignore` on the others (or the word's label on every sub-token with
    /// `label_all_subtokens`, `inside` turning a B- label into its I- label there), and
    /// `ignore` on special tokens — `transformers`' `tokenize_and_align_labels`.
    pub fn token_labels(
        &self,
        word_labels: &[u32],
        label_all_subtokens: bool,
        inside: impl Fn(u32) -> u32,
        ignore: u32,
    ) -> Vec<u32> {
        let mut previous = None;
        self.word_ids
            .iter()
            .map(|&w| {
                let label = match w {
                    None => ignore,
                    Some(w) if previous == Some(w) => match word_labels.get(w as usize) {
                        Some(&y) if label_all_subtokens => inside(y),
                        _ => ignore,
                    },
                    Some(w) => word_labels.get(w as usize).copied().unwrap_or(ignore),
                };
                previous = w;
                label
            })
            .collect()
    }
}

/// A raw text, encoded, with where each token sits in it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedText {
    pub example: EncodedExample,
    /// Byte range of each token in the text (`None` for special tokens).
    pub offsets: Vec<Option<(usize, usize)>>,
    /// Per token, true when it continues the word before it.
    pub subword: Vec<bool>,
}

/// One window of a (question, context) pair: its tokens, and each token's character range in
/// the context (`None` for the question's tokens and special tokens).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedWindow {
    pub example: EncodedExample,
    pub context_offsets: Vec<Option<(usize, usize)>>,
}

/// A tokenizer for a model folder, truncating to a maximum length (longest text first for pairs,
/// as `transformers` does with `truncation=True`).
#[derive(Clone)]
pub struct TextTokenizer {
    inner: Tokenizer,
    source: PathBuf,
    max_length: usize,
    /// The unknown token's id (transformers' `unk_token_id`), when the tokenizer has one.
    unknown: Option<u32>,
}

/// The unknown token's id: the one tokenizer_config.json names, else the model's own
/// (WordPiece's and BPE's token, Unigram's id).
fn unknown_token_id(dir: &Path, tokenizer: &Tokenizer) -> Option<u32> {
    let config = read_json(&dir.join("tokenizer_config.json")).unwrap_or_default();
    let named = special_token(&config, "unk_token", "");
    if let Some(id) = tokenizer.token_to_id(&named) {
        return Some(id);
    }
    let model = serde_json::to_value(tokenizer.get_model()).ok()?;
    match (model.get("unk_token"), model.get("unk_id")) {
        (Some(serde_json::Value::String(t)), _) => tokenizer.token_to_id(t),
        (_, Some(id)) => id.as_u64().and_then(|i| u32::try_from(i).ok()),
        _ => None,
    }
}

/// Reads a special token's text from tokenizer_config.json (a string or `{"content": ...}`).
pub(crate) fn special_token(config: &serde_json::Value, key: &str, default: &str) -> String {
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

pub(crate) fn read_json(path: &Path) -> Option<serde_json::Value> {
    let text = std::fs::read_to_string(path).ok()?;
    serde_json::from_str(&text).ok()
}

/// The files [`TextTokenizer::from_model_dir`] builds a tokenizer from, in order of preference
/// (any one is enough).
pub const TOKENIZER_SOURCES: [&str; 3] = ["tokenizer.json", "vocab.txt", "spm.model"];

impl TextTokenizer {
    /// Loads the tokenizer of a model folder: `tokenizer.json` when present, otherwise a
    /// BERT WordPiece tokenizer built from `vocab.txt` and `tokenizer_config.json`, or
    /// DeBERTa-v2/v3's from `spm.model`.
    pub fn from_model_dir(dir: &Path, max_length: usize) -> Result<Self, DataError> {
        let [json, vocab, spm] = TOKENIZER_SOURCES.map(|name| dir.join(name));
        let mut inner = if json.is_file() {
            Tokenizer::from_file(&json).map_err(|e| DataError::Tokenizer {
                path: json.clone(),
                message: e.to_string(),
            })?
        } else if vocab.is_file() {
            wordpiece_from_vocab(dir, &vocab)?
        } else if spm.is_file() {
            if !crate::sentencepiece::is_deberta(dir) {
                return Err(DataError::Tokenizer {
                    path: spm,
                    message: "Hone builds a tokenizer from spm.model for DeBERTa-v2/v3 only; save this one \
                              with transformers (AutoTokenizer.from_pretrained(folder)\
                              .save_pretrained(folder)) to get a tokenizer.json"
                        .into(),
                });
            }
            crate::sentencepiece::deberta_from_spm(dir, &spm)?
        } else {
            return Err(DataError::Tokenizer {
                path: dir.to_path_buf(),
                message: "no tokenizer.json, vocab.txt or spm.model in the model folder; copy the model's tokenizer files next to config.json".into(),
            });
        };
        inner.with_padding(None);
        let mut tokenizer = TextTokenizer {
            unknown: unknown_token_id(dir, &inner),
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

    /// The `tokenizers` tokenizer inside.
    pub(crate) fn inner(&self) -> &Tokenizer {
        &self.inner
    }

    /// Encodes one text as it is, with the tokenizer's special tokens or without (a chat
    /// template writes its own).
    pub fn encode_plain(&self, text: &str, special: bool) -> Result<EncodedExample, DataError> {
        let e = self
            .inner
            .encode(text, special)
            .map_err(|e| DataError::Encode(e.to_string()))?;
        Ok(EncodedExample::from(&e))
    }

    /// Decodes token ids to text, special tokens dropped.
    pub fn decode(&self, ids: &[u32]) -> Result<String, DataError> {
        self.inner
            .decode(ids, true)
            .map_err(|e| DataError::Encode(e.to_string()))
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
        Ok(encodings.iter().map(EncodedExample::from).collect())
    }

    /// Encodes (prompt, option) pairs so the option survives truncation: a pair too long for
    /// the maximum length loses the end of its prompt (transformers' `truncation="only_first"`);
    /// only an option that cannot fit beside a token of prompt is cut too (longest first).
    pub fn encode_keeping_second<S: AsRef<str> + Sync>(
        &self,
        pairs: &[(S, S)],
    ) -> Result<Vec<EncodedExample>, DataError> {
        let (raw, assemble) = self.raw_and_assembler()?;
        let specials = self
            .inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        let encode = |texts: Vec<&str>| {
            let inputs: Vec<tokenizers::EncodeInput> = texts.into_iter().map(Into::into).collect();
            raw.encode_batch(inputs, false)
                .map_err(|e| DataError::Encode(e.to_string()))
        };
        let firsts = encode(pairs.iter().map(|(a, _)| a.as_ref()).collect())?;
        let seconds = encode(pairs.iter().map(|(_, b)| b.as_ref()).collect())?;
        let mut out = Vec::with_capacity(pairs.len());
        for ((mut first, second), (a, b)) in firsts.into_iter().zip(seconds).zip(pairs) {
            let total = first.len() + second.len() + specials;
            if total > self.max_length && second.len() + specials + 1 > self.max_length {
                // The option alone does not fit: longest first, as `encode` does.
                let mut e = self.encode(&[(a.as_ref(), Some(b.as_ref()))])?;
                out.append(&mut e);
                continue;
            }
            let cut = total > self.max_length;
            if cut {
                first.truncate(
                    self.max_length - specials - second.len(),
                    0,
                    TruncationDirection::Right,
                );
                first.take_overflowing();
            }
            let e = assemble
                .post_process(first, Some(second), true)
                .map_err(|e| DataError::Encode(e.to_string()))?;
            out.push(EncodedExample {
                input_ids: e.get_ids().to_vec(),
                type_ids: e.get_type_ids().to_vec(),
                truncated: cut,
            });
        }
        Ok(out)
    }

    /// Two copies of the tokenizer without truncation: one that only tokenizes (no
    /// post-processor, which may trim offsets and must run once) and one that assembles
    /// sequences with the model's special tokens.
    fn raw_and_assembler(&self) -> Result<(Tokenizer, Tokenizer), DataError> {
        let mut assemble = self.inner.clone();
        assemble
            .with_truncation(None)
            .map_err(|e| DataError::Tokenizer {
                path: self.source.clone(),
                message: e.to_string(),
            })?;
        let mut raw = assemble.clone();
        raw.with_post_processor(None::<tokenizers::PostProcessorWrapper>);
        Ok((raw, assemble))
    }

    /// Encodes sentences given as words: the words are joined by single spaces (so training
    /// on CoNLL words tokenizes as predicting on the same raw text does) and each sub-token is
    /// mapped to the word its characters come from.
    pub fn encode_words<W: AsRef<[String]>>(
        &self,
        sentences: &[W],
    ) -> Result<Vec<EncodedWords>, DataError> {
        let joined: Vec<(String, Vec<(usize, usize)>)> = sentences
            .iter()
            .map(|words| {
                let mut text = String::new();
                let mut spans = Vec::with_capacity(words.as_ref().len());
                for w in words.as_ref() {
                    if !text.is_empty() {
                        text.push(' ');
                    }
                    spans.push((text.len(), text.len() + w.len()));
                    text.push_str(w);
                }
                (text, spans)
            })
            .collect();
        let inputs: Vec<tokenizers::EncodeInput> =
            joined.iter().map(|(t, _)| t.as_str().into()).collect();
        let encodings = self
            .inner
            .encode_batch(inputs, true)
            .map_err(|e| DataError::Encode(e.to_string()))?;
        Ok(encodings
            .into_iter()
            .zip(joined)
            .map(|(e, (text, word_spans))| {
                let word_ids = e
                    .get_offsets()
                    .iter()
                    .zip(e.get_special_tokens_mask())
                    .map(|(&(start, end), &special)| {
                        if special == 1 {
                            return None;
                        }
                        // The word holding the token's first character; a token of no
                        // characters (a byte-level BPE's lone space) or one starting at the
                        // space before its word belongs to the word that follows.
                        let piece = text.get(start..end).unwrap_or("");
                        let at = start + piece.len() - piece.trim_start().len();
                        word_spans
                            .iter()
                            .position(|&(a, b)| at < b.max(a + 1) && (a <= at || end <= start))
                            .map(|w| w as u32)
                    })
                    .collect();
                EncodedWords {
                    example: EncodedExample::from(&e),
                    word_ids,
                }
            })
            .collect())
    }

    /// Encodes one raw text with the byte range of each token in it (`None` for special
    /// tokens) and whether each token continues the word before it, decided exactly as
    /// `transformers`' token-classification pipeline does: by the tokenizer's words when its
    /// model marks sub-words (WordPiece's `##`), else when no space is just before the token or
    /// at its start; an unknown token always starts a word.
    pub fn encode_with_offsets(&self, text: &str) -> Result<EncodedText, DataError> {
        let e = self
            .inner
            .encode(text, true)
            .map_err(|e| DataError::Encode(e.to_string()))?;
        let offsets: Vec<Option<(usize, usize)>> = e
            .get_offsets()
            .iter()
            .zip(e.get_special_tokens_mask())
            .map(|(&(a, b), &special)| (special == 0).then_some((a, b)))
            .collect();
        let marks_subwords = match self.inner.get_model() {
            tokenizers::ModelWrapper::WordPiece(wp) => !wp.continuing_subword_prefix.is_empty(),
            tokenizers::ModelWrapper::BPE(bpe) => bpe.continuing_subword_prefix.is_some(),
            _ => false,
        };
        let words = e.get_word_ids();
        let bytes = text.as_bytes();
        let ids = e.get_ids();
        let subword = (0..offsets.len())
            .map(|t| {
                let Some((start, _)) = offsets[t] else {
                    return false;
                };
                if self.unknown.is_some_and(|unk| ids[t] == unk) {
                    false
                } else if marks_subwords {
                    t > 0
                        && offsets[t - 1].is_some()
                        && words[t].is_some()
                        && words[t] == words[t - 1]
                } else {
                    // transformers' rule: no space just before the token nor at its start.
                    start > 0
                        && bytes.get(start - 1) != Some(&b' ')
                        && bytes.get(start) != Some(&b' ')
                }
            })
            .collect();
        Ok(EncodedText {
            example: EncodedExample::from(&e),
            offsets,
            subword,
        })
    }

    /// Encodes (question, context) pairs as windows of at most the maximum length that share
    /// `stride` context tokens with the window before, the question whole in each: transformers'
    /// `truncation="only_second", return_overflowing_tokens=True, stride=…` (the windows slide
    /// over the passage's tokens, each assembled with the model's special tokens). Per pair,
    /// its windows in order; offsets in characters of the context. A question so long that
    /// the stride leaves no room for the passage is read with a smaller stride (half the
    /// room), and one that fills half the window or more is cut to half of it first.
    pub fn encode_windows<S: AsRef<str> + Sync>(
        &self,
        pairs: &[(S, S)],
        stride: usize,
    ) -> Result<Vec<Vec<EncodedWindow>>, DataError> {
        let specials = self
            .inner
            .get_post_processor()
            .map_or(0, |p| tokenizers::PostProcessor::added_tokens(p, true));
        let usable = self.max_length.saturating_sub(specials);
        // Questions and passages are tokenized alone with no post-processing (which trims
        // byte-level offsets and must run once, on the assembled window).
        let (raw, assemble) = self.raw_and_assembler()?;
        let encode = |texts: Vec<&str>| {
            let inputs: Vec<tokenizers::EncodeInput> = texts.into_iter().map(Into::into).collect();
            raw.encode_batch_char_offsets(inputs, false)
                .map_err(|e| DataError::Encode(e.to_string()))
        };
        let questions = encode(pairs.iter().map(|(q, _)| q.as_ref()).collect())?;
        let contexts = encode(pairs.iter().map(|(_, c)| c.as_ref()).collect())?;
        let mut out = Vec::with_capacity(pairs.len());
        for ((q, (question_text, _)), mut context) in questions.into_iter().zip(pairs).zip(contexts)
        {
            let mut question = q;
            if question.len() >= usable / 2 && question.len() + stride + 1 > usable {
                // Too long a question: keep its first half-window of tokens.
                let keep = (usable / 2).max(1);
                let end = question.get_offsets().get(keep - 1).map_or(0, |o| o.1);
                let cut: String = question_text.as_ref().chars().take(end).collect();
                question = encode(vec![cut.as_str()])?.pop().unwrap_or_default();
            }
            let room = usable.saturating_sub(question.len()).max(1);
            let stride = if stride < room { stride } else { room / 2 };
            context.truncate(room, stride, TruncationDirection::Right);
            let rest = context.take_overflowing();
            let mut windows = Vec::with_capacity(1 + rest.len());
            for part in std::iter::once(context).chain(rest) {
                let e = assemble
                    .post_process(question.clone(), Some(part), true)
                    .map_err(|e| DataError::Encode(e.to_string()))?;
                windows.push(EncodedWindow {
                    context_offsets: e
                        .get_offsets()
                        .iter()
                        .zip(e.get_sequence_ids())
                        .map(|(&span, seq)| (seq == Some(1)).then_some(span))
                        .collect(),
                    example: EncodedExample {
                        input_ids: e.get_ids().to_vec(),
                        type_ids: e.get_type_ids().to_vec(),
                        truncated: false,
                    },
                });
            }
            out.push(windows);
        }
        Ok(out)
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
