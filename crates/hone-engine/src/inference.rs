//! Running a model without gradients: logits for many examples, evaluation reports and
//! predictions from an exported model folder.

use std::path::Path;

use candle_core::Device;
use hone_data::{Batch, Batcher, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::batch::EncodedSet;
use crate::metrics::{ChoiceReport, ClassificationReport, EntityReport, LanguageReport, Report};
use crate::models::{Model, ModelSpec, Task};
use crate::step::{Logits, Stepper};
use crate::EngineError;

/// Logits `[batch][label]` of one padded batch in evaluation mode (one row per sequence for
/// sequence heads, per real token for token heads), on `stepper`'s buffers.
pub fn batch_logits(
    model: &Model,
    stepper: &mut Stepper,
    batch: &Batch,
) -> Result<Vec<Vec<f32>>, EngineError> {
    Ok(stepper
        .logits(model, batch)?
        .rows()
        .map(<[f32]>::to_vec)
        .collect())
}

/// Logits of every example of `set` (in the set's order; multiple choice: one score per
/// option), computed in evaluation mode in length-sorted batches of `batch_size`.
pub fn logits(
    model: &Model,
    set: &EncodedSet,
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    logits_with(model, set, batch_size, &mut Stepper::new(model, true))
}

/// [`logits`] on the buffers of an existing stepper (a training run's own, so evaluation
/// needs no memory of its own when `batch_size` is at most the training batch).
pub fn logits_with(
    model: &Model,
    set: &EncodedSet,
    batch_size: usize,
    stepper: &mut Stepper,
) -> Result<Vec<Vec<f32>>, EngineError> {
    if matches!(
        model.task(),
        Task::TokenClassification | Task::QuestionAnswering
    ) {
        return Err(EngineError::InvalidConfig(format!(
            "per-example logits need a sequence or multiple-choice head, this model is for {}",
            model.task().name()
        )));
    }
    Ok(example_logits(model, set, batch_size, stepper)?
        .into_iter()
        .map(|l| l.values)
        .collect())
}

/// Logits of every example of `set`, in the set's order: one row for sequence heads, one per
/// token (special tokens included) for token heads, a row of start and a row of end scores
/// over its tokens for a question-answering window. Evaluation mode, length-sorted batches
/// of `batch_size`.
pub fn example_logits(
    model: &Model,
    set: &EncodedSet,
    batch_size: usize,
    stepper: &mut Stepper,
) -> Result<Vec<Logits>, EngineError> {
    let per_token = model.task() == Task::TokenClassification;
    let batcher = Batcher::new(model.spec().encoder.pad_token_id);
    let order = set.by_length();
    let mut out = vec![Logits::default(); set.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let mut batch = set.batch(&batcher, chunk);
        batch.labels.clear();
        let logits = stepper.logits(model, &batch)?;
        if model.task() == Task::QuestionAnswering {
            // Two rows per window, each as long as the batch's longest.
            for (row, &i) in chunk.iter().enumerate() {
                let n = set.examples[i].input_ids.len();
                let width = logits.classes;
                let starts = &logits.values[2 * row * width..][..n];
                let ends = &logits.values[(2 * row + 1) * width..][..n];
                out[i] = Logits {
                    values: [starts, ends].concat(),
                    classes: n,
                };
            }
            continue;
        }
        let mut at = 0;
        for &i in chunk {
            let rows = if per_token {
                set.examples[i].input_ids.len()
            } else {
                1
            };
            let n = rows * logits.classes;
            out[i] = Logits {
                values: logits.values[at..at + n].to_vec(),
                classes: logits.classes,
            };
            at += n;
        }
    }
    Ok(out)
}

/// The cross-entropy of one row of logits against class `y` (log-sum-exp, in f64); `None`
/// for a class the row does not have.
pub fn row_loss(row: &[f32], y: u32) -> Option<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let log_sum = row
        .iter()
        .map(|&v| (v as f64 - max).exp())
        .sum::<f64>()
        .ln()
        + max;
    row.get(y as usize).map(|&v| log_sum - v as f64)
}

/// Softmax of one row of logits, in f64.
pub fn probabilities(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The index of the largest logit.
pub fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0 as u32
}

/// One row of logits per example.
pub type ExampleLogits = Vec<Vec<f32>>;

/// Evaluates `model` on a labeled set: mean cross-entropy and the task's scores.
pub fn evaluate(
    model: &Model,
    set: &EncodedSet,
    labels: &[String],
    batch_size: usize,
) -> Result<Report, EngineError> {
    evaluate_with(
        model,
        set,
        labels,
        batch_size,
        &mut Stepper::new(model, true),
    )
    .map(|(report, _)| report)
}

/// [`evaluate`] on the buffers of an existing stepper (see [`logits_with`]); for sequence
/// tasks also gives the logits of every example, in the set's order.
pub fn evaluate_with(
    model: &Model,
    set: &EncodedSet,
    labels: &[String],
    batch_size: usize,
    stepper: &mut Stepper,
) -> Result<(Report, Option<ExampleLogits>), EngineError> {
    match model.task() {
        Task::TokenClassification => {
            let report = evaluate_tokens(model, set, labels, batch_size, stepper)?;
            return Ok((Report::Entities(report), None));
        }
        Task::QuestionAnswering => {
            let logits = example_logits(model, set, batch_size, stepper)?;
            let (report, _) = crate::answers::answer_report(set, &logits)?;
            return Ok((Report::Answers(report), None));
        }
        Task::CausalLm | Task::Text2Text => {
            let report = evaluate_language(model, set, batch_size, stepper)?;
            return Ok((Report::Language(report), None));
        }
        _ => {}
    }
    let rows = logits_with(model, set, batch_size, stepper)?;
    let report = report_from_rows(model.task(), &rows, &set.labels, labels);
    Ok((report, Some(rows)))
}

/// The report of one row of logits per example (classes, or options for multiple choice)
/// against the true ids: mean cross-entropy and the task's scores.
pub fn report_from_rows(task: Task, rows: &[Vec<f32>], truth: &[u32], labels: &[String]) -> Report {
    let mut loss = 0f64;
    let mut predicted = Vec::with_capacity(rows.len());
    for (row, &y) in rows.iter().zip(truth) {
        loss += row_loss(row, y).unwrap_or(f64::INFINITY);
        predicted.push(argmax(row));
    }
    let loss = loss / rows.len().max(1) as f64;
    match task {
        Task::MultipleChoice => Report::Choices(ChoiceReport::from_scores(rows, truth, loss)),
        _ => Report::Classification(ClassificationReport::from_predictions(
            labels, truth, &predicted, loss,
        )),
    }
}

/// Loss, perplexity and next-token accuracy of a causal LM over the learned tokens of `set`,
/// batch by batch (a batch's vocabulary-wide scores are dropped before the next).
pub fn evaluate_language(
    model: &Model,
    set: &EncodedSet,
    batch_size: usize,
    stepper: &mut Stepper,
) -> Result<LanguageReport, EngineError> {
    let batcher = Batcher::new(model.spec().encoder.pad_token_id);
    let (mut loss, mut right, mut counted) = (0f64, 0u64, 0u64);
    for chunk in set.by_length().chunks(batch_size.max(1)) {
        let batch = set.batch(&batcher, chunk);
        let tokens = model.tokens(&batch)?;
        let labels = tokens.labels().unwrap_or_default().to_vec();
        let logits = stepper.logits(model, &batch)?;
        for (row, &y) in logits.rows().zip(&labels) {
            if y == crate::graph::IGNORE_LABEL {
                continue;
            }
            loss += row_loss(row, y).unwrap_or(f64::INFINITY);
            right += u64::from(argmax(row) == y);
            counted += 1;
        }
    }
    Ok(LanguageReport::from_sums(loss, right, counted))
}

/// Entity-level scores of a token classifier: each word's tag is the prediction at its first
/// sub-token (words cut by truncation count as O), the loss is the mean over labeled tokens.
pub fn evaluate_tokens(
    model: &Model,
    set: &EncodedSet,
    labels: &[String],
    batch_size: usize,
    stepper: &mut Stepper,
) -> Result<EntityReport, EngineError> {
    let logits = example_logits(model, set, batch_size, stepper)?;
    let (mut loss, mut counted) = (0f64, 0u64);
    let mut predicted = Vec::with_capacity(set.len());
    for ((l, token_labels), w) in logits.iter().zip(&set.token_labels).zip(&set.words) {
        for (row, &y) in l.rows().zip(token_labels) {
            if let Some(value) = row_loss(row, y).filter(|_| y != crate::graph::IGNORE_LABEL) {
                loss += value;
                counted += 1;
            }
        }
        let rows: Vec<&[f32]> = l.rows().collect();
        predicted.push(
            w.first_tokens
                .iter()
                .map(|t| match t.and_then(|t| rows.get(t)) {
                    Some(row) => labels
                        .get(argmax(row) as usize)
                        .cloned()
                        .unwrap_or_else(|| "O".into()),
                    None => "O".to_string(),
                })
                .collect::<Vec<_>>(),
        );
    }
    let loss = loss / counted.max(1) as f64;
    let words: Vec<&[String]> = set.words.iter().map(|w| &w.words[..]).collect();
    let gold: Vec<&[String]> = set.words.iter().map(|w| &w.tags[..]).collect();
    Ok(EntityReport::from_tags(&words, &gold, &predicted, loss))
}

/// The prediction for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_pair: Option<String>,
    /// The most probable class.
    pub label: String,
    pub label_id: u32,
    /// Class probabilities, in the order of `labels`.
    pub probabilities: Vec<f64>,
    /// Raw logits, in the order of `labels`.
    pub logits: Vec<f32>,
    pub labels: Vec<String>,
    pub truncated: bool,
}

/// A fine-tuned classifier loaded from a model folder (as `hone train` exports it).
pub struct Predictor {
    loaded: Finetuned,
}

/// A fine-tuned model folder loaded for a task: the model, its tokenizer and class names.
/// Every predictor dereferences to it.
pub struct Finetuned {
    model: Model,
    tokenizer: TextTokenizer,
    labels: Vec<String>,
}

impl Finetuned {
    /// Class names (tags, option letters), id = index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The loaded model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The tokenizer, truncating to the predictor's maximum length.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Runs the model's linear layers in int8 from now on ([`Model::use_int8`]); the model
    /// must be on the CPU in f32, where the int8 kernels are.
    pub fn use_int8(&mut self) -> Result<(), EngineError> {
        if !crate::graph::host::supports(self.model.params()) {
            return Err(EngineError::InvalidConfig(
                "int8 inference runs on the CPU with an f32 model; load it on the CPU".into(),
            ));
        }
        self.model.use_int8();
        Ok(())
    }
}

/// The predictors share the loaded folder's accessors.
macro_rules! derefs_to_finetuned {
    ($($predictor:ty),*) => {$(
        impl std::ops::Deref for $predictor {
            type Target = Finetuned;
            fn deref(&self) -> &Finetuned {
                &self.loaded
            }
        }
        impl std::ops::DerefMut for $predictor {
            fn deref_mut(&mut self) -> &mut Finetuned {
                &mut self.loaded
            }
        }
    )*};
}
derefs_to_finetuned!(Predictor, TokenPredictor, ChoicePredictor, AnswerPredictor);

impl Finetuned {
    /// Loads `dir` as a `task` model; a folder fine-tuned for another task, or without a head
    /// (no `id2label`, head weights missing), is refused. `max_length` defaults to the
    /// model's maximum.
    fn load(
        dir: &Path,
        task: Task,
        device: &Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        let spec = ModelSpec::from_dir(dir)?;
        let found = spec.task();
        let fits = match task {
            // Folders from before `architectures` carried the task are sequence classifiers.
            Task::SequenceClassification => found.is_none_or(|t| t == task),
            _ => found == Some(task),
        };
        if !fits {
            return Err(match found {
                Some(found) => EngineError::WrongTask {
                    path: dir.to_path_buf(),
                    found: found.name(),
                    wanted: task.name(),
                },
                None => EngineError::NoClassificationHead {
                    path: dir.to_path_buf(),
                },
            });
        }
        let no_head = || EngineError::NoClassificationHead {
            path: dir.to_path_buf(),
        };
        let labels = spec.labels.clone().ok_or_else(no_head)?;
        let model_max = spec.max_sequence_length();
        let max_length = max_length.unwrap_or(model_max).min(model_max);
        let model = Model::load(dir, task, labels.len(), None, device, 0)?;
        if !model.newly_initialized().is_empty() {
            return Err(no_head());
        }
        let tokenizer =
            TextTokenizer::from_model_dir(&crate::lora::tokenizer_folder(dir)?, max_length)?;
        Ok(Finetuned {
            model,
            tokenizer,
            labels,
        })
    }
}

impl Predictor {
    /// Loads a classification model folder. `max_length` defaults to the model's maximum.
    pub fn load(
        dir: &Path,
        device: &Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        Ok(Predictor {
            loaded: Finetuned::load(dir, Task::SequenceClassification, device, max_length)?,
        })
    }

    /// Predicts the class of each text (with its optional pair).
    pub fn predict(
        &self,
        texts: &[(String, Option<String>)],
        batch_size: usize,
    ) -> Result<Vec<Prediction>, EngineError> {
        let examples = self.loaded.tokenizer.encode(texts)?;
        let set = EncodedSet {
            examples,
            ..Default::default()
        };
        let rows = logits(&self.loaded.model, &set, batch_size)?;
        Ok(texts
            .iter()
            .zip(rows)
            .zip(&set.examples)
            .map(|(((text, pair), row), encoded)| {
                let id = argmax(&row);
                Prediction {
                    text: text.clone(),
                    text_pair: pair.clone(),
                    label: self.loaded.labels[id as usize].clone(),
                    label_id: id,
                    probabilities: probabilities(&row),
                    logits: row,
                    labels: self.loaded.labels.clone(),
                    truncated: encoded.truncated,
                }
            })
            .collect())
    }
}

/// An entity found in a text, as `pipeline("token-classification",
/// aggregation_strategy="first")` groups them.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityPrediction {
    /// The entity's text.
    pub text: String,
    /// The entity type (PER, ORG, …).
    #[serde(rename = "type")]
    pub kind: String,
    /// Character offsets into the text: `start..end`.
    pub start: usize,
    pub end: usize,
    /// Mean probability of the entity's tokens' tags.
    pub score: f64,
}

/// One token of a text with its predicted tag.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggedToken {
    pub text: String,
    pub tag: String,
    pub score: f64,
    /// Character offsets into the text.
    pub start: usize,
    pub end: usize,
    /// Raw logits, in the order of the model's tags.
    pub logits: Vec<f32>,
}

/// The entities of one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TokenPrediction {
    pub text: String,
    pub entities: Vec<EntityPrediction>,
    pub tokens: Vec<TaggedToken>,
    pub truncated: bool,
}

/// A fine-tuned token classifier loaded from a model folder.
pub struct TokenPredictor {
    loaded: Finetuned,
}

/// For every byte offset of `text` (and its end), the character offset.
fn char_offsets(text: &str) -> Vec<usize> {
    let mut at = vec![0; text.len() + 1];
    let mut chars = 0;
    for (byte, c) in text.char_indices() {
        at[byte..byte + c.len_utf8()].fill(chars);
        chars += 1;
    }
    at[text.len()] = chars;
    at
}

impl TokenPredictor {
    /// Loads a token-classification model folder (`*ForTokenClassification` with `id2label`).
    /// `max_length` defaults to the model's maximum.
    pub fn load(
        dir: &Path,
        device: &Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        Ok(TokenPredictor {
            loaded: Finetuned::load(dir, Task::TokenClassification, device, max_length)?,
        })
    }

    /// Tags every token of each text and groups the words into entities (see
    /// [`group_entities`]).
    pub fn predict(
        &self,
        texts: &[String],
        batch_size: usize,
    ) -> Result<Vec<TokenPrediction>, EngineError> {
        let mut set = EncodedSet::default();
        let mut encoded = Vec::with_capacity(texts.len());
        for text in texts {
            let e = self.loaded.tokenizer.encode_with_offsets(text)?;
            set.examples.push(e.example);
            encoded.push((e.offsets, e.subword));
        }
        let model = &self.loaded.model;
        let logits = example_logits(model, &set, batch_size, &mut Stepper::new(model, true))?;
        let mut out = Vec::with_capacity(texts.len());
        for (((text, (offsets, subwords)), l), example) in
            texts.iter().zip(&encoded).zip(&logits).zip(&set.examples)
        {
            let chars = char_offsets(text);
            let mut tokens = Vec::new();
            let mut subword = Vec::new();
            for ((row, span), &sub) in l.rows().zip(offsets).zip(subwords) {
                let Some((a, b)) = *span else { continue };
                subword.push(sub);
                let id = argmax(row);
                tokens.push(TaggedToken {
                    text: text.get(a..b).unwrap_or_default().to_string(),
                    tag: self
                        .loaded
                        .labels
                        .get(id as usize)
                        .cloned()
                        .unwrap_or_else(|| "O".into()),
                    score: row_loss(row, id).map_or(0.0, |l| (-l).exp()),
                    start: chars[a.min(text.len())],
                    end: chars[b.min(text.len())],
                    logits: row.to_vec(),
                });
            }
            out.push(TokenPrediction {
                text: text.clone(),
                entities: group_entities(text, &tokens, &subword),
                tokens,
                truncated: example.truncated,
            });
        }
        Ok(out)
    }
}

/// A tag per word of a sentence given as words, with the probabilities it was read from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WordPrediction {
    /// Per word, the predicted tag ("O" for words truncation cut).
    pub tags: Vec<String>,
    /// Per word, the softmax over the tags at its first sub-token (empty for a cut word).
    pub probabilities: Vec<Vec<f64>>,
}

impl TokenPredictor {
    /// Tags sentences given as words (a stored CoNLL sentence): each word takes the tag of
    /// its first sub-token, as the model was trained and is scored.
    pub fn tag_words<W: AsRef<[String]>>(
        &self,
        sentences: &[W],
        batch_size: usize,
    ) -> Result<Vec<WordPrediction>, EngineError> {
        let encoded = self.loaded.tokenizer.encode_words(sentences)?;
        let mut set = EncodedSet::default();
        let mut firsts = Vec::with_capacity(encoded.len());
        for (words, enc) in sentences.iter().zip(encoded) {
            firsts.push(enc.first_tokens(words.as_ref().len()));
            set.examples.push(enc.example);
        }
        let model = &self.loaded.model;
        let logits = example_logits(model, &set, batch_size, &mut Stepper::new(model, true))?;
        Ok(logits
            .iter()
            .zip(&firsts)
            .map(|(l, first)| {
                let rows: Vec<&[f32]> = l.rows().collect();
                let (mut tags, mut probs) = (Vec::new(), Vec::new());
                for t in first {
                    match t.and_then(|t| rows.get(t)) {
                        Some(row) => {
                            let id = argmax(row) as usize;
                            tags.push(
                                self.loaded
                                    .labels
                                    .get(id)
                                    .cloned()
                                    .unwrap_or_else(|| "O".into()),
                            );
                            probs.push(probabilities(row));
                        }
                        None => {
                            tags.push("O".to_string());
                            probs.push(Vec::new());
                        }
                    }
                }
                WordPrediction {
                    tags,
                    probabilities: probs,
                }
            })
            .collect())
    }
}

/// Entities as `pipeline("token-classification", aggregation_strategy="first")` finds them:
/// tokens join into words (`subword`: the token continues the word before it), each word
/// takes its first token's tag and score (the token it was trained on), and the words' tags
/// form entities by conlleval's reading (`hone_data::entities`, as transformers groups them).
fn group_entities(text: &str, tokens: &[TaggedToken], subword: &[bool]) -> Vec<EntityPrediction> {
    // (first token, character end of the word)
    let mut words: Vec<(&TaggedToken, usize)> = Vec::new();
    for (t, &sub) in tokens.iter().zip(subword) {
        match words.last_mut() {
            Some((_, end)) if sub => *end = t.end,
            _ => words.push((t, t.end)),
        }
    }
    let tags: Vec<&str> = words.iter().map(|(t, _)| t.tag.as_str()).collect();
    let chars: Vec<char> = text.chars().collect();
    hone_data::entities(&tags)
        .into_iter()
        .map(|e| {
            let members = &words[e.start..e.end];
            let (start, end) = (members[0].0.start, members[members.len() - 1].1);
            EntityPrediction {
                text: chars
                    .get(start..end)
                    .map(|c| c.iter().collect())
                    .unwrap_or_default(),
                kind: e.kind,
                start,
                end,
                score: members.iter().map(|(t, _)| t.score).sum::<f64>() / members.len() as f64,
            }
        })
        .collect()
}

/// A multiple-choice question and how a model ranks its options.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoicePrediction {
    pub question: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    pub options: Vec<String>,
    /// The index of the most probable option.
    pub answer: usize,
    /// Its letter (A, B, …).
    pub letter: String,
    /// Softmax over the options, in their order.
    pub probabilities: Vec<f64>,
    /// Each option's score.
    pub logits: Vec<f32>,
    /// Option indices, most probable first.
    pub ranking: Vec<usize>,
    /// True when a (prompt, option) pair was cut to the maximum length.
    pub truncated: bool,
}

/// A fine-tuned multiple-choice model loaded from a model folder. It scores each option on
/// its own, so questions may have any number of options (2 or more), whatever it trained on.
pub struct ChoicePredictor {
    loaded: Finetuned,
}

impl ChoicePredictor {
    /// Loads a multiple-choice model folder. `max_length` defaults to the model's maximum.
    pub fn load(
        dir: &Path,
        device: &Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        Ok(ChoicePredictor {
            loaded: Finetuned::load(dir, Task::MultipleChoice, device, max_length)?,
        })
    }

    /// Ranks the options of each question (`text` the question, `text_pair` its context,
    /// `choices` the options), `batch_size` questions per forward pass.
    pub fn predict(
        &self,
        questions: &[hone_data::Example],
        batch_size: usize,
    ) -> Result<Vec<ChoicePrediction>, EngineError> {
        if let Some(q) = questions.iter().find(|q| q.choices.len() < 2) {
            return Err(EngineError::InvalidConfig(format!(
                "the question '{}' needs at least 2 options",
                q.text
            )));
        }
        let model = &self.loaded.model;
        let batcher = Batcher::new(model.spec().encoder.pad_token_id);
        let mut stepper = Stepper::new(model, true);
        let mut out = Vec::with_capacity(questions.len());
        for chunk in questions.chunks(batch_size.max(1)) {
            let pairs: Vec<(String, String)> = chunk
                .iter()
                .flat_map(|q| {
                    let prompt = crate::job::choice_prompt(q);
                    q.choices.iter().map(move |c| (prompt.clone(), c.clone()))
                })
                .collect();
            let encoded = self.loaded.tokenizer.encode_keeping_second(&pairs)?;
            let refs: Vec<&hone_data::EncodedExample> = encoded.iter().collect();
            let scores = stepper.logits(model, &batcher.batch(&refs, &[]))?.values;
            let mut at = 0;
            for q in chunk {
                let n = q.choices.len();
                let logits = scores[at..at + n].to_vec();
                let truncated = encoded[at..at + n].iter().any(|e| e.truncated);
                at += n;
                let mut ranking: Vec<usize> = (0..n).collect();
                ranking.sort_by_key(|&i| crate::metrics::choices::rank_of(&logits, i));
                let answer = ranking[0];
                out.push(ChoicePrediction {
                    question: q.text.clone(),
                    context: q.text_pair.clone(),
                    options: q.choices.clone(),
                    answer,
                    letter: hone_data::choice_letter(answer),
                    probabilities: probabilities(&logits),
                    logits,
                    ranking,
                    truncated,
                });
            }
        }
        Ok(out)
    }
}

/// A question, its passage and the answer a model reads from it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerPrediction {
    pub question: String,
    pub context: String,
    /// The answer's text (empty when the passage has no token to answer with).
    pub answer: String,
    /// Its probability (start × end, in its window).
    pub score: f64,
    /// Character offsets of the answer in the passage: `start..end`.
    pub start: usize,
    pub end: usize,
    /// Windows the passage was read in.
    pub windows: usize,
}

/// A fine-tuned extractive question-answering model loaded from a model folder.
pub struct AnswerPredictor {
    loaded: Finetuned,
}

impl AnswerPredictor {
    /// Loads a question-answering model folder (`*ForQuestionAnswering`). `max_length`
    /// defaults to the model's maximum, and 384 at most (the pipeline's).
    pub fn load(
        dir: &Path,
        device: &Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        Ok(AnswerPredictor {
            loaded: Finetuned::load(
                dir,
                Task::QuestionAnswering,
                device,
                Some(max_length.unwrap_or(384)),
            )?,
        })
    }

    /// Answers each (question, passage), reading long passages in windows that share
    /// `stride` tokens; answers are at most `max_answer_length` tokens.
    pub fn predict(
        &self,
        questions: &[(String, String)],
        stride: usize,
        max_answer_length: usize,
        batch_size: usize,
    ) -> Result<Vec<AnswerPrediction>, EngineError> {
        let examples: Vec<hone_data::Example> = questions
            .iter()
            .map(|(q, c)| hone_data::Example {
                text: q.clone(),
                text_pair: Some(c.clone()),
                ..Default::default()
            })
            .collect();
        let stride = stride.min(self.loaded.tokenizer.max_length() / 2);
        let set = crate::answers::encode_answers(
            &self.loaded.tokenizer,
            &examples,
            stride,
            max_answer_length,
        )?;
        let model = &self.loaded.model;
        let logits = example_logits(model, &set, batch_size, &mut Stepper::new(model, true))?;
        let (answers, _) = crate::answers::read_answers(&set, &logits)?;
        let windows = set
            .passages
            .as_ref()
            .map(|p| p.windows_by_question())
            .unwrap_or_default();
        Ok(questions
            .iter()
            .zip(answers)
            .zip(windows)
            .map(|(((question, context), found), range)| {
                let found = found.unwrap_or(crate::answers::FoundAnswer {
                    answer: String::new(),
                    score: 0.0,
                    start: 0,
                    end: 0,
                });
                AnswerPrediction {
                    question: question.clone(),
                    context: context.clone(),
                    answer: found.answer,
                    score: found.score,
                    start: found.start,
                    end: found.end,
                    windows: range.len(),
                }
            })
            .collect())
    }
}
