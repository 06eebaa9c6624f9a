//! Scoring a fine-tuned model on a labeled file, whichever its task: a text classifier on
//! CSV, TSV or JSON lines rows, a token classifier (entity-level scores, conlleval rules) on
//! CoNLL or JSON lines tokens/tags.

use std::path::Path;

use hone_data::{
    read_choice_examples, read_examples, read_tagged, ChoiceColumns, ColumnSpec, Example,
    FileFormat, LabelSet, TagColumns,
};
use hone_engine::batch::EncodedSet;
use hone_engine::inference::evaluate;
use hone_engine::inference::{logits, report_from_rows};
use hone_engine::job::{encode_choices, encode_tagged};
use hone_engine::models::Task;
use hone_engine::Report;

use crate::predict::FineTunedModel;
use crate::AppError;

/// Where the labeled examples are in the file.
#[derive(Debug, Clone)]
pub struct EvalFile<'a> {
    pub path: &'a Path,
    /// When the extension does not tell.
    pub format: Option<FileFormat>,
    /// Text classifiers: the text, pair and label columns.
    pub columns: Option<ColumnSpec>,
    /// Token classifiers: the JSON lines fields with the words and the tags.
    pub tag_columns: TagColumns,
    /// Multiple-choice models: the question, context, option and answer columns.
    pub choice_columns: Option<ChoiceColumns>,
    /// Question-answering models: how passages are read.
    pub answers: crate::predict::AnswerSettings,
}

/// A model's scores on a file, with what the user should know about how they were counted.
#[derive(Debug, Clone)]
pub struct Evaluation {
    pub report: Report,
    /// `N examples` or `N sentences`.
    pub counted: String,
    /// Inputs longer than the model's length (cut).
    pub truncated: u64,
    /// What truncation did to the scores.
    pub truncation_note: String,
    /// Things to tell the user (a guessed encoding, tags the model does not know).
    pub notes: Vec<String>,
}

/// The longest target a text-to-text model writes when it is scored.
const TARGET_TOKENS: usize = 128;

/// Scores `model` on `file` with `batch_size` inputs per forward pass.
pub fn evaluate_file(
    model: &FineTunedModel,
    file: &EvalFile,
    batch_size: usize,
) -> Result<Evaluation, AppError> {
    let (examples, notes) = match model.task() {
        Task::SequenceClassification => {
            let columns = file.columns.clone().ok_or_else(|| {
                AppError::Invalid("name the text and label columns of the file".into())
            })?;
            let read = read_examples(file.path, file.format, &columns)?;
            (read.examples, read.warnings)
        }
        Task::TokenClassification => {
            let read = read_tagged(file.path, file.format, &file.tag_columns)?;
            let sentences = read.sentences.into_iter().map(Example::from).collect();
            (sentences, read.warnings)
        }
        Task::MultipleChoice => {
            let columns = file.choice_columns.clone().ok_or_else(|| {
                AppError::Invalid("name the question, option and answer columns of the file".into())
            })?;
            if columns.answer.is_none() {
                return Err(AppError::Invalid(
                    "name the column with the right answers".into(),
                ));
            }
            let read = read_choice_examples(file.path, file.format, &columns)?;
            (read.examples, read.warnings)
        }
        Task::CausalLm => {
            let read = hone_data::read_conversations(file.path)?;
            (read.examples, read.warnings)
        }
        Task::Text2Text => {
            let columns = file.columns.clone().ok_or_else(|| {
                AppError::Invalid("name the source and target columns of the file".into())
            })?;
            let read = read_examples(file.path, file.format, &columns)?;
            (read.examples, read.warnings)
        }
        Task::QuestionAnswering => {
            let read = hone_data::read_qa_examples(file.path)?;
            return evaluate_answers(model, &read.examples, file.answers, batch_size).map(
                |mut evaluation| {
                    evaluation.notes.splice(0..0, read.warnings);
                    evaluation
                },
            );
        }
    };
    let mut evaluation = evaluate_examples(model, &examples, file.path, batch_size)?;
    evaluation.notes.splice(0..0, notes);
    Ok(evaluation)
}

/// Scores `model` on labeled `examples` (texts with labels, or tagged sentences, by the
/// model's task); `source` names them in messages.
pub fn evaluate_examples(
    model: &FineTunedModel,
    examples: &[Example],
    source: &Path,
    batch_size: usize,
) -> Result<Evaluation, AppError> {
    match model {
        FineTunedModel::Language(m) => {
            let report = m.evaluate(examples, batch_size)?;
            Ok(Evaluation {
                counted: format!(
                    "{} conversations · {} learned tokens",
                    examples.len(),
                    report.tokens
                ),
                report: hone_engine::Report::Language(report),
                truncated: 0,
                truncation_note: String::new(),
                notes: Vec::new(),
            })
        }
        FineTunedModel::TextToText(m) => {
            let decoding = hone_engine::seq2seq::Decoding::greedy(TARGET_TOKENS);
            let report = m.evaluate(examples, false, batch_size, decoding)?;
            Ok(Evaluation {
                counted: format!("{} examples generated", report.examples),
                report: hone_engine::Report::Generation(report),
                truncated: 0,
                truncation_note: String::new(),
                notes: Vec::new(),
            })
        }
        FineTunedModel::Answers(_) => evaluate_answers(
            model,
            examples,
            crate::predict::AnswerSettings::default(),
            batch_size,
        ),
        FineTunedModel::Classes(_) | FineTunedModel::Choices(_) => {
            let scored = score_rows(model, examples, source, batch_size)?;
            Ok(Evaluation {
                report: report_from_rows(model.task(), &scored.rows, &scored.truth, model.labels()),
                counted: scored.counted,
                truncated: scored.truncated,
                truncation_note: scored.truncation_note,
                notes: Vec::new(),
            })
        }
        FineTunedModel::Ensemble(e) => {
            let members = e
                .members
                .iter()
                .map(|m| score_rows(m, examples, source, batch_size))
                .collect::<Result<Vec<_>, _>>()?;
            let first = &members[0];
            let rows: Vec<Vec<f32>> = (0..first.rows.len())
                .map(|i| {
                    let each: Vec<&[f32]> = members.iter().map(|m| &m.rows[i][..]).collect();
                    crate::ensemble::combine(&each, e.manifest.mean)
                })
                .collect();
            Ok(Evaluation {
                report: report_from_rows(model.task(), &rows, &first.truth, model.labels()),
                counted: format!("{} · {} members", first.counted, members.len()),
                truncated: members.iter().map(|m| m.truncated).max().unwrap_or(0),
                truncation_note: first.truncation_note.clone(),
                notes: Vec::new(),
            })
        }
        FineTunedModel::Tokens(p) => {
            let labels = LabelSet::from_names(p.labels().to_vec());
            // Tags the model never learned cannot be predicted; they take no loss and their
            // entities still count as missed.
            let mut unknown: std::collections::BTreeMap<&str, usize> = Default::default();
            for t in examples.iter().flat_map(|e| &e.tags) {
                if labels.id(t).is_none() {
                    *unknown.entry(t.as_str()).or_default() += 1;
                }
            }
            let notes = unknown
                .iter()
                .map(|(tag, n)| {
                    format!("the tag '{tag}' ({n}×) is not one the model knows; its entities count as missed")
                })
                .collect();
            let set = encode_tagged(p.tokenizer(), &labels, examples, false, false)?;
            Ok(Evaluation {
                report: evaluate(p.model(), &set, p.labels(), batch_size)?,
                counted: format!("{} sentences", examples.len()),
                truncated: set.truncated() as u64,
                truncation_note: format!(
                    "sentences were longer than {} tokens; words past the cut count as O",
                    p.tokenizer().max_length()
                ),
                notes,
            })
        }
    }
}

/// SQuAD exact match and F1 of a question-answering model on questions with gold answers.
pub fn evaluate_answers(
    model: &FineTunedModel,
    examples: &[Example],
    settings: crate::predict::AnswerSettings,
    batch_size: usize,
) -> Result<Evaluation, AppError> {
    let FineTunedModel::Answers(p) = model else {
        return Err(AppError::Invalid(format!(
            "questions with passages are for question-answering models; this one is for {}",
            model.task().display_name()
        )));
    };
    let unanswered = examples.iter().filter(|e| e.answers.is_empty()).count();
    if unanswered == examples.len() {
        return Err(AppError::Invalid(
            "none of the questions has a gold answer to score against".into(),
        ));
    }
    let stride = settings.doc_stride.min(p.tokenizer().max_length() / 2);
    let set = hone_engine::answers::encode_answers(
        p.tokenizer(),
        examples,
        stride,
        settings.max_answer_length,
    )?;
    let windows = set.len();
    let notes = if unanswered > 0 {
        vec![format!(
            "{unanswered} questions have no gold answer and are not scored"
        )]
    } else {
        Vec::new()
    };
    Ok(Evaluation {
        report: evaluate(p.model(), &set, p.labels(), batch_size)?,
        counted: format!("{} questions", examples.len() - unanswered),
        truncated: (windows - examples.len()) as u64,
        truncation_note: format!(
            "passages were longer than {} tokens and were read in windows that share {stride} tokens (the count is the extra windows)",
            p.tokenizer().max_length()
        ),
        notes,
    })
}

/// One row of logits per example from a text classifier or a multiple-choice model, with
/// the true ids and what truncation did.
struct Scored {
    rows: Vec<Vec<f32>>,
    truth: Vec<u32>,
    counted: String,
    truncated: u64,
    truncation_note: String,
}

fn score_rows(
    model: &FineTunedModel,
    examples: &[Example],
    source: &Path,
    batch_size: usize,
) -> Result<Scored, AppError> {
    match model {
        FineTunedModel::Classes(p) => {
            let labels = LabelSet::from_names(p.labels().to_vec());
            let ids = labels.ids_for(source, examples)?;
            let texts: Vec<(&str, Option<&str>)> = examples
                .iter()
                .map(|e| (e.text.as_str(), e.text_pair.as_deref()))
                .collect();
            let set = EncodedSet {
                examples: p.tokenizer().encode(&texts)?,
                labels: ids,
                ..Default::default()
            };
            Ok(Scored {
                rows: logits(p.model(), &set, batch_size)?,
                truth: set.labels.clone(),
                counted: format!("{} examples", examples.len()),
                truncated: set.truncated() as u64,
                truncation_note: format!(
                    "texts were longer than {} tokens and were truncated",
                    p.tokenizer().max_length()
                ),
            })
        }
        FineTunedModel::Choices(p) => {
            // Questions with fewer options than the model trained on are padded; more is
            // an error (the model is loaded for that many).
            let options = p.labels().len();
            if let Some(q) = examples.iter().find(|q| q.choices.len() > options) {
                return Err(AppError::Invalid(format!(
                    "{} line {}: the question has {} options; this model is scored on questions with up to {options}, as it trained",
                    source.display(),
                    q.line,
                    q.choices.len()
                )));
            }
            let set = encode_choices(p.tokenizer(), examples, options)?;
            Ok(Scored {
                rows: logits(p.model(), &set, batch_size)?,
                truth: set.labels.clone(),
                counted: format!("{} questions", examples.len()),
                truncated: set.truncated() as u64,
                truncation_note: format!(
                    "questions had a (prompt, option) pair longer than {} tokens, cut longest text first",
                    p.tokenizer().max_length()
                ),
            })
        }
        other => Err(AppError::Invalid(format!(
            "an ensemble's members are text classifiers or multiple-choice models, not {}",
            other.task().display_name()
        ))),
    }
}
