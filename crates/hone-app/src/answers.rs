//! Question-answering files (SQuAD JSON or JSON lines) as the Train page shows them before a
//! run: how many questions and passages, the first questions with their answers, and — with
//! the model chosen — how many windows the passages make at the maximum length and stride.

use std::path::Path;

use hone_data::{read_qa_examples, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::AppError;

/// One question as it will be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerSample {
    pub line: u64,
    pub question: String,
    pub context: String,
    /// The first gold answer and where it starts in the passage (characters).
    pub answer: Option<(String, usize)>,
    /// Windows its passage makes (with the model chosen).
    pub windows: usize,
}

/// What a question-answering file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerPreview {
    pub questions: usize,
    /// Questions with a gold answer.
    pub answered: usize,
    /// Distinct passages.
    pub passages: usize,
    pub samples: Vec<AnswerSample>,
    /// With a model: windows all questions make, and the most one question makes.
    pub windows: usize,
    pub most_windows: usize,
    pub max_length: usize,
    pub stride: usize,
    pub warnings: Vec<String>,
}

/// Reads the whole file and describes it; `model` (a model folder) adds window counts with
/// its tokenizer at `max_length` and `stride`. The first `limit` questions come back whole.
pub fn preview_answers(
    path: &Path,
    model: Option<&Path>,
    max_length: usize,
    stride: usize,
    limit: usize,
) -> Result<AnswerPreview, AppError> {
    let file = read_qa_examples(path)?;
    let examples = file.examples;
    let mut contexts: Vec<&str> = examples
        .iter()
        .filter_map(|e| e.text_pair.as_deref())
        .collect();
    contexts.sort_unstable();
    contexts.dedup();
    let per_question: Vec<usize> = match model {
        Some(dir) => {
            let tokenizer = TextTokenizer::from_model_dir(dir, max_length)?;
            let stride = stride.min(max_length.saturating_sub(1));
            let pairs: Vec<(&str, &str)> = examples
                .iter()
                .map(|e| (e.text.as_str(), e.text_pair.as_deref().unwrap_or_default()))
                .collect();
            tokenizer
                .encode_windows(&pairs, stride)?
                .iter()
                .map(Vec::len)
                .collect()
        }
        None => vec![0; examples.len()],
    };
    let samples = examples
        .iter()
        .zip(&per_question)
        .take(limit)
        .map(|(e, &windows)| AnswerSample {
            line: e.line,
            question: e.text.clone(),
            context: e.text_pair.clone().unwrap_or_default(),
            answer: e.answers.first().map(|a| (a.text.clone(), a.start)),
            windows,
        })
        .collect();
    Ok(AnswerPreview {
        questions: examples.len(),
        answered: examples.iter().filter(|e| !e.answers.is_empty()).count(),
        passages: contexts.len(),
        samples,
        windows: per_question.iter().sum(),
        most_windows: per_question.iter().copied().max().unwrap_or(0),
        max_length,
        stride,
        warnings: file.warnings,
    })
}
