//! Extractive question answering data: SQuAD v1.1 JSON (articles → paragraphs → questions with
//! answers and their character offsets) and JSON lines or JSON arrays of flat records as the
//! Hugging Face `squad` dataset writes them (`context`, `question`, `answers: {text,
//! answer_start}`; a list of `{text, answer_start}` is read too).

use std::io::Read;
use std::path::Path;
use std::sync::atomic::AtomicU64;
use std::sync::Arc;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::examples::{Example, ExampleFile};
use crate::DataError;

/// A gold answer: its text and where it starts in the context, in characters.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerSpan {
    pub text: String,
    /// Character offset of the answer in the context (as SQuAD's `answer_start`).
    pub start: usize,
}

impl AnswerSpan {
    /// The character offset just past the answer.
    pub fn end(&self) -> usize {
        self.start + self.text.chars().count()
    }
}

/// Reads every question of a SQuAD-style file (see the module). Questions without answers are
/// read as unlabeled; an answer that is not where its offset says in the context is an error
/// that names the question.
pub fn read_qa_examples(path: &Path) -> Result<ExampleFile, DataError> {
    let (records, warnings) = read_json_records(path)?;
    let mut examples = Vec::new();
    for (line, record) in &records {
        match record.get("data") {
            Some(data) if *line == 0 => read_nested(data, path, &mut examples)?,
            _ => examples.push(flat_record(record, (*line).max(1), path)?),
        }
    }
    if examples.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(ExampleFile { examples, warnings })
}

/// A JSON file's records by line, and the warnings of reading it.
pub(crate) type JsonRecords = (Vec<(u64, Value)>, Vec<String>);

/// The records of a JSON file: one object (line 0), a JSON array of objects (numbered from
/// 1) or JSON lines (numbered by line); and the warnings of reading it (a guessed encoding).
pub(crate) fn read_json_records(path: &Path) -> Result<JsonRecords, DataError> {
    let (mut stream, warning) =
        crate::source::decode::open_text(path, None, Arc::new(AtomicU64::new(0)))?;
    let mut text = String::new();
    stream
        .read_to_string(&mut text)
        .map_err(|e| DataError::io(path, e))?;
    let malformed = |line: u64, message: String| DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let trimmed = text.trim_start();
    let mut records = Vec::new();
    if trimmed.starts_with('{') && serde_json::from_str::<Value>(trimmed).is_ok() {
        let doc: Value = serde_json::from_str(trimmed).map_err(|e| malformed(1, e.to_string()))?;
        records.push((0, doc));
    } else if trimmed.starts_with('[') {
        let doc: Value = serde_json::from_str(trimmed)
            .map_err(|e| malformed(e.line() as u64, format!("not valid JSON: {e}")))?;
        let Value::Array(items) = doc else {
            return Err(malformed(1, "not a JSON array".into()));
        };
        records.extend(
            items
                .into_iter()
                .enumerate()
                .map(|(i, r)| (i as u64 + 1, r)),
        );
    } else {
        for (i, line) in text.lines().enumerate() {
            if line.trim().is_empty() {
                continue;
            }
            let line_no = i as u64 + 1;
            let record: Value = serde_json::from_str(line)
                .map_err(|e| malformed(line_no, format!("not a JSON object: {e}")))?;
            records.push((line_no, record));
        }
    }
    Ok((records, warning.into_iter().collect()))
}

fn string_field<'v>(v: &'v Value, key: &str) -> Option<&'v str> {
    v.get(key).and_then(Value::as_str)
}

/// SQuAD's nesting: `data[].paragraphs[].qas[]`; `line` counts questions (1-based), since the
/// official files are one line.
fn read_nested(data: &Value, path: &Path, out: &mut Vec<Example>) -> Result<(), DataError> {
    let malformed = |line: u64, message: String| DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let articles = data
        .as_array()
        .ok_or_else(|| malformed(1, "'data' is not a list of articles".into()))?;
    for article in articles {
        let paragraphs = article
            .get("paragraphs")
            .and_then(Value::as_array)
            .ok_or_else(|| {
                malformed(
                    1,
                    "an article has no 'paragraphs' list (is this SQuAD JSON?)".into(),
                )
            })?;
        for paragraph in paragraphs {
            let context = string_field(paragraph, "context")
                .ok_or_else(|| malformed(1, "a paragraph has no 'context' text".into()))?;
            for qa in paragraph
                .get("qas")
                .and_then(Value::as_array)
                .into_iter()
                .flatten()
            {
                let line = out.len() as u64 + 1;
                let answers = match qa.get("answers") {
                    Some(a) => answer_list(a),
                    None => Ok(Vec::new()),
                }
                .map_err(|m| malformed(line, m))?;
                out.push(question(qa, context, answers, line, path)?);
            }
        }
    }
    Ok(())
}

/// One flat record: `question`, `context`, `answers` (and `id`).
fn flat_record(record: &Value, line: u64, path: &Path) -> Result<Example, DataError> {
    let context = string_field(record, "context").ok_or_else(|| DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message: "no 'context' text (question answering reads 'question', 'context' and 'answers')"
            .into(),
    })?;
    let answers = match record.get("answers") {
        Some(a) => answer_list(a),
        None => Ok(Vec::new()),
    }
    .map_err(|message| DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    })?;
    question(record, context, answers, line, path)
}

/// Answers as `{text: [...], answer_start: [...]}` or `[{text, answer_start}, ...]`.
fn answer_list(v: &Value) -> Result<Vec<AnswerSpan>, String> {
    let start_of = |s: &Value| -> Result<usize, String> {
        s.as_u64()
            .map(|s| s as usize)
            .ok_or_else(|| format!("answer_start {s} is not a character offset"))
    };
    match v {
        Value::Array(items) => items
            .iter()
            .map(|a| {
                let text = string_field(a, "text").ok_or("an answer has no 'text'")?;
                let start = a
                    .get("answer_start")
                    .ok_or("an answer has no 'answer_start'")?;
                Ok(AnswerSpan {
                    text: text.to_string(),
                    start: start_of(start)?,
                })
            })
            .collect(),
        Value::Object(_) => {
            let texts = v.get("text").and_then(Value::as_array);
            let starts = v.get("answer_start").and_then(Value::as_array);
            let (Some(texts), Some(starts)) = (texts, starts) else {
                return Err("'answers' needs the lists 'text' and 'answer_start'".into());
            };
            if texts.len() != starts.len() {
                return Err(format!(
                    "'answers' has {} texts and {} starts",
                    texts.len(),
                    starts.len()
                ));
            }
            texts
                .iter()
                .zip(starts)
                .map(|(t, s)| {
                    Ok(AnswerSpan {
                        text: t
                            .as_str()
                            .ok_or("an answer text is not a string")?
                            .to_string(),
                        start: start_of(s)?,
                    })
                })
                .collect()
        }
        Value::Null => Ok(Vec::new()),
        _ => Err("'answers' is neither a list nor {text, answer_start}".into()),
    }
}

fn question(
    qa: &Value,
    context: &str,
    answers: Vec<AnswerSpan>,
    line: u64,
    path: &Path,
) -> Result<Example, DataError> {
    let id = qa.get("id").map(|v| match v {
        Value::String(s) => s.clone(),
        other => other.to_string(),
    });
    let named = || id.as_deref().map(|i| format!(" ({i})")).unwrap_or_default();
    let text = string_field(qa, "question")
        .map(|q| q.trim_start().to_string())
        .filter(|q| !q.trim().is_empty())
        .ok_or_else(|| DataError::Malformed {
            path: path.to_path_buf(),
            line,
            message: format!("question {line}{} has no 'question' text", named()),
        })?;
    for a in &answers {
        let found: String = context
            .chars()
            .skip(a.start)
            .take(a.text.chars().count())
            .collect();
        if found != a.text {
            return Err(DataError::Malformed {
                path: path.to_path_buf(),
                line,
                message: format!(
                    "question {line}{}: the answer '{}' is not at character {} of its context (found '{found}'); fix answer_start",
                    named(),
                    a.text,
                    a.start
                ),
            });
        }
    }
    Ok(Example {
        line,
        text,
        text_pair: Some(context.to_string()),
        answers,
        qa_id: id,
        ..Default::default()
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn write(name: &str, body: &str) -> (tempfile::TempDir, std::path::PathBuf) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join(name);
        std::fs::write(&path, body).unwrap();
        (dir, path)
    }

    #[test]
    fn reads_squad_json_and_flat_records() {
        let squad = r#"{"data":[{"title":"T","paragraphs":[{"context":"Café au lait in Paris.","qas":[
            {"answers":[{"answer_start":16,"text":"Paris"}],"question":"  Where?","id":"q1"},
            {"answers":[],"question":"What?","id":"q2"}]}]}],"version":"1.1"}"#;
        let (_d, path) = write("s.json", squad);
        let file = read_qa_examples(&path).unwrap();
        assert_eq!(file.examples.len(), 2);
        let q = &file.examples[0];
        assert_eq!(q.text, "Where?");
        assert_eq!(q.qa_id.as_deref(), Some("q1"));
        assert_eq!(
            q.answers,
            [AnswerSpan {
                text: "Paris".into(),
                start: 16
            }]
        );
        assert!(file.examples[1].answers.is_empty());

        let jsonl = "{\"id\":\"a\",\"question\":\"Who?\",\"context\":\"Ann ran.\",\"answers\":{\"text\":[\"Ann\"],\"answer_start\":[0]}}\n\n{\"question\":\"Did?\",\"context\":\"Ann ran.\",\"answers\":[{\"text\":\"ran\",\"answer_start\":4}]}\n";
        let (_d, path) = write("s.jsonl", jsonl);
        let file = read_qa_examples(&path).unwrap();
        assert_eq!(file.examples.len(), 2);
        assert_eq!(file.examples[1].line, 3);
        assert_eq!(file.examples[1].answers[0].end(), 7);
    }

    #[test]
    fn a_misplaced_answer_or_a_missing_field_names_the_question() {
        let (_d, path) = write(
            "bad.jsonl",
            "{\"question\":\"Who?\",\"context\":\"Ann ran.\",\"answers\":{\"text\":[\"Bob\"],\"answer_start\":[0]}}\n",
        );
        let err = read_qa_examples(&path).unwrap_err().to_string();
        assert!(
            err.contains("line 1") && err.contains("'Bob'") && err.contains("found 'Ann'"),
            "{err}"
        );
        let (_d, path) = write("bad2.jsonl", "{\"question\":\"Who?\"}\n");
        let err = read_qa_examples(&path).unwrap_err().to_string();
        assert!(err.contains("no 'context'"), "{err}");
        let (_d, path) = write("bad3.json", "{\"data\":[{\"title\":\"x\"}]}");
        let err = read_qa_examples(&path).unwrap_err().to_string();
        assert!(err.contains("paragraphs"), "{err}");
    }
}
