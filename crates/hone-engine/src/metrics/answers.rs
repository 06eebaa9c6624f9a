//! Extractive question-answering scores: the official SQuAD v1.1 exact match and F1 (answers
//! normalised — lower case, ASCII punctuation and the articles a/an/the removed, whitespace
//! collapsed —, the best over a question's gold answers), as fractions.

use std::collections::HashMap;
use std::sync::OnceLock;

use serde::{Deserialize, Serialize};

/// An evaluation of a question-answering model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AnswerReport {
    /// Mean of the start and end cross-entropies over the windows.
    pub loss: f64,
    /// Share of questions whose answer equals a gold answer after normalisation.
    pub exact_match: f64,
    /// Mean over questions of the best token-overlap F1 with a gold answer.
    pub f1: f64,
    /// Questions scored (those with a gold answer).
    pub examples: u64,
    /// Windows the questions' passages made.
    pub windows: u64,
}

impl AnswerReport {
    /// Scores `predictions` against each question's gold answers; questions without gold
    /// answers are left out. `loss` is the mean cross-entropy already computed.
    pub fn from_answers<S: AsRef<str>>(
        predictions: &[S],
        gold: &[Vec<String>],
        loss: f64,
        windows: u64,
    ) -> Self {
        let (mut em, mut f1, mut n) = (0f64, 0f64, 0u64);
        for (p, answers) in predictions.iter().zip(gold) {
            if answers.is_empty() {
                continue;
            }
            em += best_over(answers, |g| exact_match(p.as_ref(), g));
            f1 += best_over(answers, |g| f1_score(p.as_ref(), g));
            n += 1;
        }
        let mean = |x: f64| if n == 0 { 0.0 } else { x / n as f64 };
        AnswerReport {
            loss,
            exact_match: mean(em),
            f1: mean(f1),
            examples: n,
            windows,
        }
    }
}

fn best_over(answers: &[String], score: impl Fn(&str) -> f64) -> f64 {
    answers.iter().map(|a| score(a)).fold(0.0, f64::max)
}

/// SQuAD's `normalize_answer`: lower case, no ASCII punctuation, no articles, single spaces.
pub fn normalize_answer(s: &str) -> String {
    static ARTICLES: OnceLock<regex::Regex> = OnceLock::new();
    let articles = ARTICLES.get_or_init(|| {
        regex::Regex::new(r"\b(a|an|the)\b").unwrap_or_else(|e| unreachable!("fixed regex: {e}"))
    });
    let lowered = s.to_lowercase();
    let unpunctuated: String = lowered
        .chars()
        .filter(|c| !c.is_ascii_punctuation())
        .collect();
    let no_articles = articles.replace_all(&unpunctuated, " ");
    no_articles.split_whitespace().collect::<Vec<_>>().join(" ")
}

/// 1 when the normalised texts are equal, else 0.
pub fn exact_match(prediction: &str, gold: &str) -> f64 {
    f64::from(normalize_answer(prediction) == normalize_answer(gold))
}

/// The F1 of the normalised texts' tokens (counted with repeats).
pub fn f1_score(prediction: &str, gold: &str) -> f64 {
    let (p, g) = (normalize_answer(prediction), normalize_answer(gold));
    let (p, g): (Vec<&str>, Vec<&str>) = (
        p.split_whitespace().collect(),
        g.split_whitespace().collect(),
    );
    let mut counts: HashMap<&str, i64> = HashMap::new();
    for t in &g {
        *counts.entry(t).or_default() += 1;
    }
    let mut same = 0;
    for t in &p {
        if let Some(c) = counts.get_mut(t).filter(|c| **c > 0) {
            *c -= 1;
            same += 1;
        }
    }
    if same == 0 {
        return 0.0;
    }
    let precision = same as f64 / p.len() as f64;
    let recall = same as f64 / g.len() as f64;
    2.0 * precision * recall / (precision + recall)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn normalisation_and_scores_follow_the_official_script() {
        assert_eq!(normalize_answer("The  Eiffel-Tower!"), "eiffeltower");
        assert_eq!(normalize_answer("an apple, a pear"), "apple pear");
        assert_eq!(exact_match("the Denver Broncos", "Denver Broncos"), 1.0);
        assert!((f1_score("Denver Broncos won", "Denver Broncos") - 0.8).abs() < 1e-12);
        assert_eq!(f1_score("", "x"), 0.0);
        let r = AnswerReport::from_answers(
            &["Paris", "blue sky"],
            &[
                vec!["paris".into()],
                vec!["sky".into(), "a blue sky".into()],
                vec![],
            ],
            0.5,
            4,
        );
        assert_eq!((r.examples, r.windows), (2, 4));
        assert_eq!(r.exact_match, 1.0);
        assert_eq!(r.f1, 1.0);
    }
}
