//! Reading labeled examples for training and evaluation, on top of the streaming readers in
//! `source`.

use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::source::{SourceReader, SourceSpec};
use crate::{DataError, FileFormat};

/// Which columns of a file hold the text, the optional second text and the label.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ColumnSpec {
    /// Column with the text to classify.
    pub text: String,
    /// Column with the second text of a sentence pair, if the task has pairs.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub text_pair: Option<String>,
    /// Column with the label; `None` reads unlabeled text.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub label: Option<String>,
}

/// One example as read from a file: a text (and pair) with its class for sequence tasks, or
/// words with their tags for token classification.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Example {
    /// Line of the file where the example starts (1-based, the header is line 1 for CSV/TSV).
    pub line: u64,
    pub text: String,
    pub text_pair: Option<String>,
    /// The label as written in the file, trimmed; `None` when no label column was asked for.
    pub label: Option<String>,
    /// Token classification: the words (`text` is them joined by spaces).
    pub tokens: Vec<String>,
    /// Token classification: one IOB2 tag per word.
    pub tags: Vec<String>,
    /// Multiple choice: the options (`text` is the question, `text_pair` its context); the
    /// label is the right option's index.
    pub choices: Vec<String>,
    /// Question answering: the gold answers in the context (`text` is the question,
    /// `text_pair` the context); empty for an unanswered question.
    pub answers: Vec<crate::AnswerSpan>,
    /// Question answering: the question's id in its file, when it has one.
    pub qa_id: Option<String>,
    /// Its id in Hone's database, when it was read from there (so a view can relabel it).
    pub stored_id: Option<i64>,
    /// Causal LM: the conversation's turns (`text` is their contents joined); empty for plain
    /// text, learned whole.
    pub messages: Vec<crate::ChatMessage>,
}

impl From<crate::TaggedSentence> for Example {
    fn from(s: crate::TaggedSentence) -> Self {
        Example {
            line: s.line,
            text: s.tokens.join(" "),
            tokens: s.tokens,
            tags: s.tags,
            ..Default::default()
        }
    }
}

/// The examples of a file and what the reader noticed (a guessed encoding).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExampleFile {
    pub examples: Vec<Example>,
    pub warnings: Vec<String>,
}

/// Reads every example of `path` for training or evaluation: the text (and pair) must be there
/// and, when a label column is named, so must the label. The format comes from the extension
/// unless given.
pub fn read_examples(
    path: &Path,
    format: Option<FileFormat>,
    columns: &ColumnSpec,
) -> Result<ExampleFile, DataError> {
    let spec = SourceSpec {
        format,
        text: Some(columns.text.clone()),
        text_pair: columns.text_pair.clone(),
        label: columns.label.clone(),
        ..Default::default()
    };
    let reader = SourceReader::open(path, &spec)?;
    if reader.format() == FileFormat::Conll {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            line: 0,
            message: "CoNLL files hold token tags; Hone trains text classifiers from CSV, TSV, JSON(L), Parquet or lines files".into(),
        });
    }
    let warnings = reader.warnings().to_vec();
    let mut out = Vec::new();
    for row in reader {
        let row = row?;
        if let (Some(c), None) = (&columns.text_pair, &row.text_pair) {
            return Err(DataError::EmptyValue {
                path: path.to_path_buf(),
                line: row.line,
                column: c.clone(),
            });
        }
        if let (Some(c), None) = (&columns.label, &row.label) {
            return Err(DataError::EmptyValue {
                path: path.to_path_buf(),
                line: row.line,
                column: c.clone(),
            });
        }
        out.push(Example {
            line: row.line,
            text: row.text,
            text_pair: row.text_pair,
            label: row.label,
            ..Default::default()
        });
    }
    if out.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(ExampleFile {
        examples: out,
        warnings,
    })
}

/// Which columns of a file hold a multiple-choice question, its options and the answer.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChoiceColumns {
    /// Column with the question (or the prompt).
    pub question: String,
    /// Column with a passage the question is about, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub context: Option<String>,
    /// Columns with the options in order (`A,B,C,D`), or one column with a JSON list.
    pub choices: Vec<String>,
    /// Column with the answer: the right option's letter (A, B, …), its 0-based index or its
    /// text; `None` reads unlabeled questions.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub answer: Option<String>,
    /// Shuffle each question's options with this seed (for files that always list the right
    /// answer in the same place, as SciQ's `correct_answer`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub shuffle_seed: Option<u64>,
}

/// The most options a question may have.
pub const MAX_CHOICES: usize = 10;

/// The index of the right option from an answer as written: an option's exact text, else a
/// letter (`A` = 0, case-insensitive), else a 0-based index.
pub fn answer_index(answer: &str, options: &[String]) -> Option<usize> {
    let answer = answer.trim();
    if let Some(i) = options.iter().position(|o| o.trim() == answer) {
        return Some(i);
    }
    let mut chars = answer.chars();
    if let (Some(c), None) = (chars.next(), chars.next()) {
        if c.is_ascii_alphabetic() {
            let i = (c.to_ascii_uppercase() as u8 - b'A') as usize;
            return (i < options.len()).then_some(i);
        }
    }
    answer.parse::<usize>().ok().filter(|&i| i < options.len())
}

/// The letter of option `i` (`A`, `B`, …).
pub fn choice_letter(i: usize) -> String {
    char::from(b'A' + (i % 26) as u8).to_string()
}

/// A seeded permutation of `n` options for the question on `line` (SplitMix64 of seed and
/// line, Fisher–Yates), the same on every machine and run.
fn option_order(n: usize, seed: u64, line: u64) -> Vec<usize> {
    let mut state = seed ^ line.wrapping_mul(0x9E37_79B9_7F4A_7C15);
    let mut next = || {
        state = state.wrapping_add(0x9E37_79B9_7F4A_7C15);
        let mut z = state;
        z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
        z ^ (z >> 31)
    };
    let mut order: Vec<usize> = (0..n).collect();
    for i in (1..n).rev() {
        order.swap(i, (next() % (i as u64 + 1)) as usize);
    }
    order
}

/// Reads multiple-choice questions: `text` is the question, `text_pair` the context,
/// `choices` the options and `label` the right option's index (`0`, `1`, …). Every question
/// needs 2 to [`MAX_CHOICES`] options (they may differ: a list column can hold 3 for one and
/// 5 for another) and, when an answer column is named, an answer that is one of them.
pub fn read_choice_examples(
    path: &Path,
    format: Option<FileFormat>,
    columns: &ChoiceColumns,
) -> Result<ExampleFile, DataError> {
    if columns.choices.is_empty() {
        return Err(DataError::Malformed {
            path: path.to_path_buf(),
            line: 0,
            message: "name the columns that hold the options (A,B,C,D), or one column with a JSON list of them".into(),
        });
    }
    let spec = SourceSpec {
        format,
        text: Some(columns.question.clone()),
        text_pair: columns.context.clone(),
        label: columns.answer.clone(),
        choices: columns.choices.clone(),
        ..Default::default()
    };
    let reader = SourceReader::open(path, &spec)?;
    let warnings = reader.warnings().to_vec();
    let malformed = |line: u64, message: String| DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let mut out: Vec<Example> = Vec::new();
    for row in reader {
        let row = row?;
        let n = row.choices.len();
        if !(2..=MAX_CHOICES).contains(&n) {
            return Err(malformed(
                row.line,
                format!("the question has {n} options; Hone takes 2 to {MAX_CHOICES}"),
            ));
        }
        let right = match (&columns.answer, &row.label) {
            (Some(column), None) => {
                return Err(DataError::EmptyValue {
                    path: path.to_path_buf(),
                    line: row.line,
                    column: column.clone(),
                })
            }
            (_, Some(answer)) => Some(answer_index(answer, &row.choices).ok_or_else(|| {
                malformed(
                    row.line,
                    format!(
                        "the answer '{answer}' is not one of the options, a letter A–{} or an index 0–{}",
                        choice_letter(n - 1),
                        n - 1
                    ),
                )
            })?),
            (None, None) => None,
        };
        let (choices, right) = match columns.shuffle_seed {
            Some(seed) => {
                let order = option_order(n, seed, row.line);
                let shuffled = order.iter().map(|&i| row.choices[i].clone()).collect();
                (
                    shuffled,
                    right.and_then(|r| order.iter().position(|&i| i == r)),
                )
            }
            None => (row.choices, right),
        };
        out.push(Example {
            line: row.line,
            text: row.text,
            text_pair: row.text_pair,
            label: right.map(|r| r.to_string()),
            choices,
            ..Default::default()
        });
    }
    if out.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(ExampleFile {
        examples: out,
        warnings,
    })
}

#[cfg(test)]
mod choice_tests {
    use super::*;

    fn columns(choices: &[&str], answer: &str) -> ChoiceColumns {
        ChoiceColumns {
            question: "question".into(),
            context: None,
            choices: choices.iter().map(|c| c.to_string()).collect(),
            answer: Some(answer.into()),
            shuffle_seed: None,
        }
    }

    #[test]
    fn answers_as_letters_indices_or_text() {
        let options: Vec<String> = ["red", "green", "B"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        assert_eq!(answer_index("green", &options), Some(1));
        assert_eq!(answer_index("a", &options), Some(0));
        // An option's own text wins over the letter it looks like.
        assert_eq!(answer_index("B", &options), Some(2));
        assert_eq!(answer_index("2", &options), Some(2));
        assert_eq!(answer_index("D", &options), None);
        assert_eq!(answer_index("7", &options), None);
        assert_eq!(choice_letter(3), "D");
    }

    #[test]
    fn reads_csv_columns_and_json_lists_and_shuffles_with_a_seed() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("q.csv");
        std::fs::write(
            &csv,
            "question,A,B,C,answer\nSky?,blue,red,green,A\nGrass?,blue,red,green,green\n",
        )
        .unwrap();
        let file = read_choice_examples(&csv, None, &columns(&["A", "B", "C"], "answer")).unwrap();
        let e = &file.examples;
        assert_eq!(e[0].choices, ["blue", "red", "green"]);
        assert_eq!(e[0].label.as_deref(), Some("0"));
        assert_eq!(e[1].label.as_deref(), Some("2"));

        let jsonl = dir.path().join("q.jsonl");
        std::fs::write(
            &jsonl,
            "{\"question\": \"Sky?\", \"options\": [\"blue\", \"red\", \"green\", \"pink\"], \"answer\": 0}\n",
        )
        .unwrap();
        let mut cols = columns(&["options"], "answer");
        let file = read_choice_examples(&jsonl, None, &cols).unwrap();
        assert_eq!(file.examples[0].choices.len(), 4);
        assert_eq!(file.examples[0].label.as_deref(), Some("0"));
        // Shuffled with a seed: the same permutation every time, the answer follows its option.
        cols.shuffle_seed = Some(7);
        let a = read_choice_examples(&jsonl, None, &cols).unwrap().examples;
        let b = read_choice_examples(&jsonl, None, &cols).unwrap().examples;
        assert_eq!(a, b);
        let right: usize = a[0].label.as_deref().unwrap().parse().unwrap();
        assert_eq!(a[0].choices[right], "blue");
        let mut sorted = a[0].choices.clone();
        sorted.sort();
        assert_eq!(sorted, ["blue", "green", "pink", "red"]);
    }

    #[test]
    fn clear_errors_for_odd_questions() {
        let dir = tempfile::tempdir().unwrap();
        let csv = dir.path().join("q.csv");
        let read = |text: &str, cols: &ChoiceColumns| {
            std::fs::write(&csv, text).unwrap();
            read_choice_examples(&csv, None, cols)
                .unwrap_err()
                .to_string()
        };
        let cols = columns(&["A", "B"], "answer");
        let err = read("question,A,B,answer\nSky?,blue,red,C\n", &cols);
        assert!(
            err.contains("the answer 'C' is not one of the options"),
            "{err}"
        );
        let err = read("question,A,B,answer\nSky?,blue,,A\n", &cols);
        assert!(err.contains("'B'"), "{err}");
        let err = read(
            "question,A,B,answer\nSky?,blue,red,A\n",
            &columns(&["A", "X"], "answer"),
        );
        assert!(err.contains("X"), "{err}");
        let one = columns(&["A"], "answer");
        let err = read("question,A,answer\nSky?,blue,A\n", &one);
        assert!(err.contains("JSON list"), "{err}");
        std::fs::write(
            &csv,
            "question,opts,answer\nSky?,\"[\"\"a\"\",\"\"b\"\"]\",a\nSea?,\"[\"\"a\"\",\"\"b\"\",\"\"c\"\"]\",a\n",
        )
        .unwrap();
        // Questions with different numbers of options read as they are (padded when encoded).
        let mixed = read_choice_examples(&csv, None, &columns(&["opts"], "answer")).unwrap();
        let counts: Vec<usize> = mixed.examples.iter().map(|e| e.choices.len()).collect();
        assert_eq!(counts, [2, 3]);
        let err = read(
            "question,opts,answer\nSky?,\"[\"\"a\"\"]\",a\n",
            &columns(&["opts"], "answer"),
        );
        assert!(err.contains("1 options; Hone takes 2 to 10"), "{err}");
    }
}
