//! Multiple-choice questions in a file, as the Train page shows them before a run: how many
//! questions and options, the first few as they will be read (options in order, the right one
//! marked), how the answers spread over the option letters, and — with the model chosen — how
//! long each (question, option) pair is in tokens and how many would be cut.

use std::path::Path;

use hone_data::{read_choice_examples, ChoiceColumns, FileFormat, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::AppError;

/// One question as it will be read.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceSample {
    pub line: u64,
    pub question: String,
    pub context: Option<String>,
    pub options: Vec<String>,
    /// The right option's index, when the file has answers.
    pub answer: Option<usize>,
    /// Tokens of each (prompt, option) pair after truncation (with the model chosen).
    pub lengths: Vec<usize>,
}

/// What a file of multiple-choice questions holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoicePreview {
    pub questions: usize,
    /// Options per question (the most any question has; fewer are padded).
    pub options: usize,
    /// Questions whose right option has each letter, in letter order.
    pub answers: Vec<(String, u64)>,
    pub samples: Vec<ChoiceSample>,
    /// With a model: the longest pair in tokens (before truncation is applied, capped at the
    /// maximum length) and how many questions have a pair cut to `max_length`.
    pub longest: usize,
    pub truncated: usize,
    pub max_length: usize,
    /// What the reader noticed (a guessed encoding).
    pub warnings: Vec<String>,
}

/// Reads the whole file with `columns` and describes it; `model` (a model folder) adds token
/// counts with its tokenizer at `max_length`. The first `limit` questions are returned whole.
pub fn preview_choices(
    path: &Path,
    format: Option<FileFormat>,
    columns: &ChoiceColumns,
    model: Option<&Path>,
    max_length: usize,
    limit: usize,
) -> Result<ChoicePreview, AppError> {
    let file = read_choice_examples(path, format, columns)?;
    let examples = file.examples;
    let options = examples.iter().map(|e| e.choices.len()).max().unwrap_or(0);
    let mut answers = vec![0u64; options];
    for e in &examples {
        if let Some(i) = e.label.as_deref().and_then(|l| l.parse::<usize>().ok()) {
            if let Some(n) = answers.get_mut(i) {
                *n += 1;
            }
        }
    }
    let mut samples: Vec<ChoiceSample> = examples
        .iter()
        .take(limit)
        .map(|e| ChoiceSample {
            line: e.line,
            question: e.text.clone(),
            context: e.text_pair.clone(),
            options: e.choices.clone(),
            answer: e.label.as_deref().and_then(|l| l.parse().ok()),
            lengths: Vec::new(),
        })
        .collect();
    let (mut longest, mut truncated) = (0, 0);
    if let Some(dir) = model {
        let tokenizer = TextTokenizer::from_model_dir(dir, max_length)?;
        let encoded = hone_engine::job::encode_choices(&tokenizer, &examples, options)?;
        for (i, e) in examples.iter().enumerate() {
            let pairs = &encoded.sequences(i)[..e.choices.len()];
            longest = longest.max(pairs.iter().map(|p| p.input_ids.len()).max().unwrap_or(0));
            truncated += usize::from(pairs.iter().any(|p| p.truncated));
            if let Some(sample) = samples.get_mut(i) {
                sample.lengths = pairs.iter().map(|p| p.input_ids.len()).collect();
            }
        }
    }
    Ok(ChoicePreview {
        questions: examples.len(),
        options,
        answers: answers
            .into_iter()
            .enumerate()
            .map(|(i, n)| (hone_data::choice_letter(i), n))
            .collect(),
        samples,
        longest,
        truncated,
        max_length,
        warnings: file.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn counts_questions_answers_and_token_lengths() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.csv");
        std::fs::write(
            &path,
            "q,a,b,c,ans\nIs the sky blue?,yes,no,maybe,A\nWhat is two and two?,three,four,five,four\nPick,x,y,z,2\n",
        )
        .unwrap();
        let columns = ChoiceColumns {
            question: "q".into(),
            context: None,
            choices: vec!["a".into(), "b".into(), "c".into()],
            answer: Some("ans".into()),
            shuffle_seed: None,
        };
        let model = Path::new(env!("CARGO_MANIFEST_DIR")).join("../../tests/fixtures/tiny-bert");
        let p = preview_choices(&path, None, &columns, Some(&model), 8, 2).unwrap();
        assert_eq!((p.questions, p.options), (3, 3));
        let counts: Vec<u64> = p.answers.iter().map(|(_, n)| *n).collect();
        assert_eq!(counts, [1, 1, 1]);
        assert_eq!(p.samples.len(), 2);
        assert_eq!(p.samples[1].answer, Some(1));
        assert_eq!(p.samples[0].lengths.len(), 3);
        assert!(p.longest <= 8 && p.truncated >= 1, "{p:?}");
        let none = preview_choices(&path, None, &columns, None, 8, 2).unwrap();
        assert!(none.samples[0].lengths.is_empty());
    }
}
