//! Extractive question answering around the span head: questions and passages encoded as
//! windows with their start/end labels (transformers' `run_qa.py`), the best answer read back
//! from the windows' scores (transformers' question-answering pipeline), and SQuAD scores.

use hone_data::{EncodedWindow, Example, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::batch::EncodedSet;
use crate::metrics::AnswerReport;
use crate::step::Logits;
use crate::EngineError;

/// The passages behind an encoded set's windows, to read answers back.
#[derive(Debug, Clone, Default)]
pub struct Passages {
    /// Per window, the question it belongs to (windows of a question are consecutive).
    pub question_of: Vec<usize>,
    /// Per window, each token's character range in the passage (`None` off the passage).
    pub offsets: Vec<Vec<Option<(usize, usize)>>>,
    /// Per question, its passage.
    pub contexts: Vec<String>,
    /// Per question, its gold answers' texts (empty when it has none).
    pub gold: Vec<Vec<String>>,
    /// The longest answer inference picks, in tokens.
    pub max_answer_length: usize,
}

impl Passages {
    /// The windows of each question, as ranges of window indices.
    pub fn windows_by_question(&self) -> Vec<std::ops::Range<usize>> {
        let mut ranges = vec![0..0; self.contexts.len()];
        for (w, &q) in self.question_of.iter().enumerate() {
            let r = &mut ranges[q];
            if r.start == r.end {
                *r = w..w + 1;
            } else {
                r.end = w + 1;
            }
        }
        ranges
    }
}

/// The start and end token of `answer` in one window (`[0, 0]`, the first token, when the
/// window does not hold all of it), as `run_qa.py`'s `prepare_train_features` labels them.
pub fn window_label(
    offsets: &[Option<(usize, usize)>],
    answer: &hone_data::AnswerSpan,
) -> [u32; 2] {
    let context: Vec<(usize, (usize, usize))> = offsets
        .iter()
        .enumerate()
        .filter_map(|(t, o)| o.map(|o| (t, o)))
        .collect();
    let (start_char, end_char) = (answer.start, answer.end());
    let (Some(first), Some(last)) = (context.first(), context.last()) else {
        return [0, 0];
    };
    if !(first.1 .0 <= start_char && last.1 .1 >= end_char) {
        return [0, 0];
    }
    let start = context
        .iter()
        .rev()
        .find(|(_, o)| o.0 <= start_char)
        .map_or(first.0, |(t, _)| *t);
    let end = context
        .iter()
        .find(|(_, o)| o.1 >= end_char)
        .map_or(last.0, |(t, _)| *t);
    [start as u32, end as u32]
}

/// Encodes questions (`text`) with their passages (`text_pair`) as windows of the tokenizer's
/// maximum length overlapping by `stride` passage tokens; labeled questions (a gold answer)
/// label each window with where the first answer is in it.
pub fn encode_answers(
    tokenizer: &TextTokenizer,
    examples: &[Example],
    stride: usize,
    max_answer_length: usize,
) -> Result<EncodedSet, EngineError> {
    if stride >= tokenizer.max_length() {
        return Err(EngineError::InvalidConfig(format!(
            "the document stride ({stride}) must be shorter than the maximum length ({})",
            tokenizer.max_length()
        )));
    }
    let pairs: Vec<(&str, &str)> = examples
        .iter()
        .map(|e| {
            let context = e.text_pair.as_deref().ok_or_else(|| {
                EngineError::InvalidConfig(format!("line {}: the question has no passage", e.line))
            })?;
            Ok((e.text.trim_start(), context))
        })
        .collect::<Result<_, EngineError>>()?;
    let windows = tokenizer.encode_windows(&pairs, stride)?;
    let labeled = examples.iter().any(|e| !e.answers.is_empty());
    let mut set = EncodedSet::default();
    let mut passages = Passages {
        max_answer_length,
        ..Passages::default()
    };
    for (q, (e, question_windows)) in examples.iter().zip(windows).enumerate() {
        for EncodedWindow {
            example,
            context_offsets,
        } in question_windows
        {
            if labeled {
                set.span_labels.push(match e.answers.first() {
                    Some(answer) => window_label(&context_offsets, answer),
                    None => [0, 0],
                });
            }
            set.examples.push(example);
            passages.question_of.push(q);
            passages.offsets.push(context_offsets);
        }
        passages
            .contexts
            .push(e.text_pair.clone().unwrap_or_default());
        passages
            .gold
            .push(e.answers.iter().map(|a| a.text.clone()).collect());
    }
    set.passages = Some(passages);
    Ok(set)
}

/// Each token's character range in the passage (`None` off the passage).
pub type PassageOffsets = [Option<(usize, usize)>];

/// One window's scores (a start row and an end row) with its tokens' passage offsets.
pub type ScoredWindow<'a> = (&'a Logits, &'a PassageOffsets);

/// An answer read from a passage.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FoundAnswer {
    /// The answer's text.
    pub answer: String,
    /// Its probability: the start token's times the end token's, in its window.
    pub score: f64,
    /// Character offsets into the passage: `start..end`.
    pub start: usize,
    pub end: usize,
}

/// Softmax over the window's first token and its passage tokens (the pipeline gives every
/// other token −10000), then the first token's share set to 0.
fn window_probabilities(scores: &[f32], offsets: &[Option<(usize, usize)>]) -> Vec<f64> {
    let kept = |t: usize| t == 0 || offsets.get(t).is_some_and(Option::is_some);
    let max = scores
        .iter()
        .enumerate()
        .filter(|(t, _)| kept(*t))
        .fold(f64::NEG_INFINITY, |m, (_, &v)| m.max(v as f64));
    let mut p: Vec<f64> = scores
        .iter()
        .enumerate()
        .map(|(t, &v)| if kept(t) { (v as f64 - max).exp() } else { 0.0 })
        .collect();
    let sum: f64 = p.iter().sum();
    p.iter_mut().for_each(|x| *x /= sum);
    if let Some(first) = p.first_mut() {
        *first = 0.0;
    }
    p
}

/// The best span of a question's windows (each a [start row, end row] of scores and its
/// tokens' passage offsets), as transformers' question-answering pipeline reads it
/// (`align_to_words=False`, top 1): in each window the passage span `s ≤ e < s + max_len`
/// with the largest `p_start[s]·p_end[e]`; windows whose best spans read the same (ignoring
/// case) are one answer whose score is their sum, at its first window's place; the highest
/// score wins (ties: the earlier). `None` when no window has a passage token.
pub fn best_answer(windows: &[ScoredWindow], context: &str, max_len: usize) -> Option<FoundAnswer> {
    let text_of = |start: usize, end: usize| -> String {
        context
            .chars()
            .skip(start)
            .take(end.saturating_sub(start))
            .collect()
    };
    let mut merged: Vec<(String, FoundAnswer)> = Vec::new();
    for (score, start, end) in windows
        .iter()
        .filter_map(|(logits, offsets)| best_in_window(logits, offsets, max_len))
    {
        let answer = text_of(start, end);
        let key = answer.to_lowercase();
        match merged.iter_mut().find(|(k, _)| *k == key) {
            Some((_, found)) => found.score += score,
            None => merged.push((
                key,
                FoundAnswer {
                    answer,
                    score,
                    start,
                    end,
                },
            )),
        }
    }
    merged
        .into_iter()
        .map(|(_, found)| found)
        .reduce(|best, next| if next.score > best.score { next } else { best })
}

/// The best span of one window: its score and character range.
fn best_in_window(
    logits: &Logits,
    offsets: &[Option<(usize, usize)>],
    max_len: usize,
) -> Option<(f64, usize, usize)> {
    {
        let mut rows = logits.rows();
        let (Some(starts), Some(ends)) = (rows.next(), rows.next()) else {
            return None;
        };
        let (ps, pe) = (
            window_probabilities(starts, offsets),
            window_probabilities(ends, offsets),
        );
        let n = ps.len().min(offsets.len());
        let mut local: Option<(f64, usize, usize)> = None;
        for s in 0..n {
            let Some((start_char, _)) = offsets[s] else {
                continue;
            };
            for e in s..n.min(s + max_len.max(1)) {
                let Some((_, end_char)) = offsets[e] else {
                    continue;
                };
                let score = ps[s] * pe[e];
                if local.is_none_or(|(b, _, _)| score > b) {
                    local = Some((score, start_char, end_char));
                }
            }
        }
        local
    }
}

/// The answers of every question of `set` from its windows' logits (in the set's order), and
/// the mean of the start and end cross-entropies over labeled windows.
pub fn read_answers(
    set: &EncodedSet,
    logits: &[Logits],
) -> Result<(Vec<Option<FoundAnswer>>, f64), EngineError> {
    let passages = set.passages.as_ref().ok_or_else(|| {
        EngineError::InvalidConfig("these examples were not encoded for question answering".into())
    })?;
    let mut loss = 0f64;
    for (l, label) in logits.iter().zip(&set.span_labels) {
        let mut rows = l.rows();
        for (row, &y) in rows.by_ref().zip(label) {
            loss += crate::inference::row_loss(row, y).unwrap_or(f64::INFINITY) / 2.0;
        }
    }
    let loss = loss / set.span_labels.len().max(1) as f64;
    let answers = passages
        .windows_by_question()
        .into_iter()
        .zip(&passages.contexts)
        .map(|(range, context)| {
            let windows: Vec<ScoredWindow> = range
                .map(|w| (&logits[w], &passages.offsets[w][..]))
                .collect();
            best_answer(&windows, context, passages.max_answer_length)
        })
        .collect();
    Ok((answers, loss))
}

/// SQuAD exact match and F1 of a model's answers to `set`'s questions.
pub fn answer_report(
    set: &EncodedSet,
    logits: &[Logits],
) -> Result<(AnswerReport, Vec<Option<FoundAnswer>>), EngineError> {
    let (answers, loss) = read_answers(set, logits)?;
    let passages = set.passages.as_ref().map(|p| &p.gold[..]).unwrap_or(&[]);
    let texts: Vec<&str> = answers
        .iter()
        .map(|a| a.as_ref().map_or("", |a| a.answer.as_str()))
        .collect();
    let report = AnswerReport::from_answers(&texts, passages, loss, set.examples.len() as u64);
    Ok((report, answers))
}

#[cfg(test)]
mod tests {
    use super::*;
    use hone_data::AnswerSpan;

    #[test]
    fn labels_mark_the_answer_tokens_or_the_first_token() {
        // [CLS] q [SEP] "ab" "cd" "ef" [SEP] over "ab cd ef".
        let offsets = [
            None,
            None,
            None,
            Some((0, 2)),
            Some((3, 5)),
            Some((6, 8)),
            None,
        ];
        let answer = |text: &str, start| AnswerSpan {
            text: text.into(),
            start,
        };
        assert_eq!(window_label(&offsets, &answer("cd", 3)), [4, 4]);
        assert_eq!(window_label(&offsets, &answer("ab cd", 0)), [3, 4]);
        // Inside a token: the token holding it.
        assert_eq!(window_label(&offsets, &answer("d e", 4)), [4, 5]);
        // Past the window.
        assert_eq!(window_label(&offsets, &answer("gh", 9)), [0, 0]);
    }

    #[test]
    fn the_best_span_is_the_pipelines() {
        let offsets = [None, None, Some((0, 2)), Some((3, 5)), Some((6, 8)), None];
        // Starts favour token 3, ends token 2 (before it) and 4.
        let logits = Logits {
            values: vec![
                5.0, 9.0, 1.0, 4.5, 0.0, 0.0, // starts (the question's 9 takes no part)
                5.0, 9.0, 3.0, 0.0, 2.5, 0.0, // ends
            ],
            classes: 6,
        };
        let found = best_answer(&[(&logits, &offsets[..])], "ab cd ef", 30).unwrap();
        assert_eq!(
            (found.answer.as_str(), found.start, found.end),
            ("cd ef", 3, 8)
        );
        // With answers of one token at most: "cd" (e^4.5) beats "ab" (e^4).
        let one = best_answer(&[(&logits, &offsets[..])], "ab cd ef", 1).unwrap();
        assert_eq!(one.answer, "cd");
        let ps = window_probabilities(&logits.values[..6], &offsets);
        let pe = window_probabilities(&logits.values[6..], &offsets);
        assert!((found.score - ps[3] * pe[4]).abs() < 1e-15);
        assert_eq!(ps[0], 0.0);
        assert_eq!(ps[1], 0.0);
    }
}
