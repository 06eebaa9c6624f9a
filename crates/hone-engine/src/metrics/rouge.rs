//! ROUGE-1, ROUGE-2, ROUGE-L and ROUGE-Lsum as Google's `rouge_score` computes them (the
//! scores the Hugging Face guides and `evaluate` report): its tokenizer (lower case, every run
//! of characters outside `[a-z0-9]` a separator, optionally NLTK's Porter stemmer on words of
//! more than 3 characters), clipped n-gram overlap, the longest common subsequence, and the
//! summary-level LCS over newline-separated sentences with its double-counting guard. Checked
//! against `rouge_score` on fixed pairs (tests/reference/make_rouge_fixture.py).

use std::collections::HashMap;

use serde::{Deserialize, Serialize};

/// Precision, recall and their harmonic mean.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct RougeScore {
    pub precision: f64,
    pub recall: f64,
    pub fmeasure: f64,
}

impl RougeScore {
    fn new(precision: f64, recall: f64) -> Self {
        let fmeasure = if precision + recall > 0.0 {
            2.0 * precision * recall / (precision + recall)
        } else {
            0.0
        };
        RougeScore {
            precision,
            recall,
            fmeasure,
        }
    }
}

/// The four scores of one prediction against its reference.
#[derive(Debug, Clone, Copy, PartialEq, Default, Serialize, Deserialize)]
pub struct Rouge {
    pub rouge1: RougeScore,
    pub rouge2: RougeScore,
    #[serde(rename = "rougeL")]
    pub rouge_l: RougeScore,
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: RougeScore,
}

/// `rouge_score`'s tokens of a text: lower case, split at every run of characters outside
/// `[a-z0-9]`, words longer than 3 characters stemmed when `stem`.
pub fn tokenize(text: &str, stem: bool) -> Vec<String> {
    let lower = text.to_lowercase();
    lower
        .split(|c: char| !(c.is_ascii_lowercase() || c.is_ascii_digit()))
        .filter(|t| !t.is_empty())
        .map(|t| {
            if stem && t.len() > 3 {
                super::porter::stem(t)
            } else {
                t.to_string()
            }
        })
        .filter(|t| {
            !t.is_empty()
                && t.bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit())
        })
        .collect()
}

/// Scores `prediction` against `reference` (`rouge_scorer.RougeScorer.score(reference,
/// prediction)`); `stem` is its `use_stemmer`.
pub fn score(reference: &str, prediction: &str, stem: bool) -> Rouge {
    let (target, predicted) = (tokenize(reference, stem), tokenize(prediction, stem));
    let sentences = |text: &str| -> Vec<Vec<String>> {
        text.split('\n')
            .filter(|s| !s.is_empty())
            .map(|s| tokenize(s, stem))
            .collect()
    };
    Rouge {
        rouge1: ngram_score(&target, &predicted, 1),
        rouge2: ngram_score(&target, &predicted, 2),
        rouge_l: lcs_score(&target, &predicted),
        rouge_lsum: summary_lcs_score(&sentences(reference), &sentences(prediction)),
    }
}

/// A text-to-text model's evaluation: the teacher-forced loss per target token, and its
/// greedy generations against the references — the mean ROUGE F-measures (`rouge_score`'s,
/// as `evaluate` reports them), exact match after ROUGE's tokenization, and the mean
/// generated length in tokens.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationReport {
    pub loss: f64,
    pub rouge1: f64,
    pub rouge2: f64,
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
    #[serde(rename = "rougeLsum")]
    pub rouge_lsum: f64,
    pub exact_match: f64,
    pub gen_len: f64,
    /// Examples generated.
    pub examples: u64,
    /// ROUGE with the Porter stemmer.
    pub stemmed: bool,
    /// A few generations next to their references: the best and the worst by ROUGE-L.
    #[serde(default)]
    pub samples: Vec<GenerationSample>,
}

/// One generation next to its reference.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct GenerationSample {
    pub source: String,
    pub reference: String,
    pub generated: String,
    #[serde(rename = "rougeL")]
    pub rouge_l: f64,
}

impl GenerationReport {
    /// The report of `(source, reference, generated, generated tokens)` and the mean
    /// teacher-forced `loss`; `samples` of the best and as many of the worst kept.
    pub fn new(
        generations: &[(String, String, String, usize)],
        loss: f64,
        stem: bool,
        samples: usize,
    ) -> Self {
        let scores: Vec<Rouge> = generations
            .iter()
            .map(|(_, reference, generated, _)| score(reference, generated, stem))
            .collect();
        let m = mean(&scores);
        let n = generations.len().max(1) as f64;
        let exact = generations
            .iter()
            .filter(|(_, r, g, _)| tokenize(r, false) == tokenize(g, false))
            .count();
        let mut order: Vec<usize> = (0..generations.len()).collect();
        order.sort_by(|&a, &b| {
            scores[b]
                .rouge_l
                .fmeasure
                .total_cmp(&scores[a].rouge_l.fmeasure)
        });
        let mut picked: Vec<usize> = order.iter().take(samples).copied().collect();
        for &i in order.iter().rev().take(samples) {
            if !picked.contains(&i) {
                picked.push(i);
            }
        }
        GenerationReport {
            loss,
            rouge1: m.rouge1.fmeasure,
            rouge2: m.rouge2.fmeasure,
            rouge_l: m.rouge_l.fmeasure,
            rouge_lsum: m.rouge_lsum.fmeasure,
            exact_match: exact as f64 / n,
            gen_len: generations.iter().map(|g| g.3).sum::<usize>() as f64 / n,
            examples: generations.len() as u64,
            stemmed: stem,
            samples: picked
                .into_iter()
                .map(|i| GenerationSample {
                    source: generations[i].0.clone(),
                    reference: generations[i].1.clone(),
                    generated: generations[i].2.clone(),
                    rouge_l: scores[i].rouge_l.fmeasure,
                })
                .collect(),
        }
    }
}

/// The mean of each score over pairs (what `evaluate`'s `rouge` reports with its default
/// aggregation off).
pub fn mean(scores: &[Rouge]) -> Rouge {
    let n = scores.len().max(1) as f64;
    let avg = |pick: fn(&Rouge) -> RougeScore| {
        let sum = scores
            .iter()
            .map(pick)
            .fold(RougeScore::default(), |a, s| RougeScore {
                precision: a.precision + s.precision,
                recall: a.recall + s.recall,
                fmeasure: a.fmeasure + s.fmeasure,
            });
        RougeScore {
            precision: sum.precision / n,
            recall: sum.recall / n,
            fmeasure: sum.fmeasure / n,
        }
    };
    Rouge {
        rouge1: avg(|r| r.rouge1),
        rouge2: avg(|r| r.rouge2),
        rouge_l: avg(|r| r.rouge_l),
        rouge_lsum: avg(|r| r.rouge_lsum),
    }
}

fn ngrams(tokens: &[String], n: usize) -> HashMap<&[String], usize> {
    let mut counts = HashMap::new();
    if tokens.len() >= n {
        for gram in tokens.windows(n) {
            *counts.entry(gram).or_insert(0) += 1;
        }
    }
    counts
}

fn ngram_score(target: &[String], predicted: &[String], n: usize) -> RougeScore {
    let (t, p) = (ngrams(target, n), ngrams(predicted, n));
    let overlap: usize = t
        .iter()
        .map(|(gram, &c)| c.min(p.get(gram).copied().unwrap_or(0)))
        .sum();
    let (t_total, p_total) = (t.values().sum::<usize>(), p.values().sum::<usize>());
    RougeScore::new(
        overlap as f64 / p_total.max(1) as f64,
        overlap as f64 / t_total.max(1) as f64,
    )
}

/// The LCS length table of `a` (rows) and `b` (columns), `(rows + 1) × (cols + 1)`.
fn lcs_table(a: &[String], b: &[String]) -> Vec<Vec<usize>> {
    let mut t = vec![vec![0usize; b.len() + 1]; a.len() + 1];
    for i in 1..=a.len() {
        for j in 1..=b.len() {
            t[i][j] = if a[i - 1] == b[j - 1] {
                t[i - 1][j - 1] + 1
            } else {
                t[i - 1][j].max(t[i][j - 1])
            };
        }
    }
    t
}

fn lcs_score(target: &[String], predicted: &[String]) -> RougeScore {
    if target.is_empty() || predicted.is_empty() {
        return RougeScore::default();
    }
    let lcs = lcs_table(target, predicted)[target.len()][predicted.len()] as f64;
    RougeScore::new(lcs / predicted.len() as f64, lcs / target.len() as f64)
}

/// The indices into `reference` of one longest common subsequence with `candidate`
/// (`_backtrack_norec`: the same one `rouge_score` reads out).
fn lcs_indices(reference: &[String], candidate: &[String]) -> Vec<usize> {
    let t = lcs_table(reference, candidate);
    let (mut i, mut j) = (reference.len(), candidate.len());
    let mut out = Vec::new();
    while i > 0 && j > 0 {
        if reference[i - 1] == candidate[j - 1] {
            out.push(i - 1);
            i -= 1;
            j -= 1;
        } else if t[i][j - 1] > t[i - 1][j] {
            j -= 1;
        } else {
            i -= 1;
        }
    }
    out.reverse();
    out
}

/// How often each token occurs in `sentences`.
fn token_counts(sentences: &[Vec<String>]) -> HashMap<&str, usize> {
    let mut counts = HashMap::new();
    for t in sentences.iter().flatten() {
        *counts.entry(t.as_str()).or_insert(0) += 1;
    }
    counts
}

/// Summary-level LCS (the ROUGE paper's section 3.2): per reference sentence, the union of
/// its LCS with every candidate sentence, each token counted at most as often as it occurs on
/// both sides.
fn summary_lcs_score(reference: &[Vec<String>], candidate: &[Vec<String>]) -> RougeScore {
    let m: usize = reference.iter().map(Vec::len).sum();
    let n: usize = candidate.iter().map(Vec::len).sum();
    if m == 0 || n == 0 {
        return RougeScore::default();
    }
    let (mut left_r, mut left_c) = (token_counts(reference), token_counts(candidate));
    let mut hits = 0usize;
    for r in reference {
        let mut union: Vec<usize> = candidate.iter().flat_map(|c| lcs_indices(r, c)).collect();
        union.sort_unstable();
        union.dedup();
        for i in union {
            let t = r[i].as_str();
            let (Some(c), Some(rr)) = (left_c.get_mut(t), left_r.get_mut(t)) else {
                continue;
            };
            if *c > 0 && *rr > 0 {
                hits += 1;
                *c -= 1;
                *rr -= 1;
            }
        }
    }
    RougeScore::new(hits as f64 / n as f64, hits as f64 / m as f64)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn fixture() -> serde_json::Value {
        let path = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
            .join("../../tests/fixtures/golden/rouge.json");
        serde_json::from_str(&std::fs::read_to_string(path).expect("rouge fixture"))
            .expect("rouge fixture parses")
    }

    #[test]
    fn tokens_and_scores_equal_rouge_score_on_every_fixture_pair() {
        let fixture = fixture();
        for pair in fixture["pairs"].as_array().expect("pairs") {
            let name = pair["name"].as_str().unwrap_or("?");
            let (pred, reference) = (
                pair["prediction"].as_str().unwrap_or_default(),
                pair["reference"].as_str().unwrap_or_default(),
            );
            for (stem, tokens_key, scores_key) in [
                (false, "tokens_plain", "plain"),
                (true, "tokens_stemmed", "stemmed"),
            ] {
                for (text, side) in [(pred, "prediction"), (reference, "reference")] {
                    let want: Vec<String> =
                        serde_json::from_value(pair[tokens_key][side].clone()).expect("tokens");
                    assert_eq!(
                        tokenize(text, stem),
                        want,
                        "{name}: {side} tokens (stem {stem})"
                    );
                }
                let got = score(reference, pred, stem);
                for (kind, s) in [
                    ("rouge1", got.rouge1),
                    ("rouge2", got.rouge2),
                    ("rougeL", got.rouge_l),
                    ("rougeLsum", got.rouge_lsum),
                ] {
                    let want: Vec<f64> =
                        serde_json::from_value(pair[scores_key][kind].clone()).expect("scores");
                    for (g, w) in [s.precision, s.recall, s.fmeasure].iter().zip(&want) {
                        assert!(
                            (g - w).abs() < 1e-6,
                            "{name}: {kind} (stem {stem}) {:?} vs {want:?}",
                            [s.precision, s.recall, s.fmeasure]
                        );
                    }
                }
            }
        }
    }
}
