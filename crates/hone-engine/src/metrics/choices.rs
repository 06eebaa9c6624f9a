//! Multiple-choice scores: accuracy and MAP@k (Kaggle's mean average precision at k with one
//! right answer per question: 1, 1/2, …, 1/k for the right option ranked first, second, …,
//! k-th, else 0).

use serde::{Deserialize, Serialize};

/// An evaluation of a multiple-choice model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ChoiceReport {
    /// Mean cross-entropy over the options of each question.
    pub loss: f64,
    /// Share of questions whose right option scores highest.
    pub accuracy: f64,
    /// MAP@3.
    pub map_at_3: f64,
    /// Number of questions evaluated.
    pub examples: u64,
    /// Options per question.
    pub choices: u64,
}

/// The 1-based rank of option `right` among `scores`, highest first; ties go to the option
/// listed first (a stable sort of the scores, as a submission lists them).
pub fn rank_of(scores: &[f32], right: usize) -> usize {
    let Some(&mine) = scores.get(right) else {
        return scores.len() + 1;
    };
    1 + scores
        .iter()
        .enumerate()
        .filter(|&(j, &s)| s > mine || (s == mine && j < right))
        .count()
}

/// Average precision at `k` of one question whose right option has `rank`.
pub fn precision_at(rank: usize, k: usize) -> f64 {
    if rank >= 1 && rank <= k {
        1.0 / rank as f64
    } else {
        0.0
    }
}

/// MAP@k over questions with the right option at `ranks` (1-based); 0 for no questions.
pub fn map_at_k(ranks: &[usize], k: usize) -> f64 {
    if ranks.is_empty() {
        return 0.0;
    }
    ranks.iter().map(|&r| precision_at(r, k)).sum::<f64>() / ranks.len() as f64
}

impl ChoiceReport {
    /// Scores questions from the options' logits (one row per question) and the index of the
    /// right option; `loss` is the mean cross-entropy already computed.
    pub fn from_scores<R: AsRef<[f32]>>(rows: &[R], right: &[u32], loss: f64) -> Self {
        let ranks: Vec<usize> = rows
            .iter()
            .zip(right)
            .map(|(row, &y)| rank_of(row.as_ref(), y as usize))
            .collect();
        let correct = ranks.iter().filter(|&&r| r == 1).count();
        ChoiceReport {
            loss,
            accuracy: if ranks.is_empty() {
                0.0
            } else {
                correct as f64 / ranks.len() as f64
            },
            map_at_3: map_at_k(&ranks, 3),
            examples: ranks.len() as u64,
            choices: rows.first().map_or(0, |r| r.as_ref().len() as u64),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ranks_and_map_follow_the_kaggle_definition() {
        assert_eq!(rank_of(&[0.1, 0.9, 0.5], 1), 1);
        assert_eq!(rank_of(&[0.1, 0.9, 0.5], 2), 2);
        assert_eq!(rank_of(&[0.1, 0.9, 0.5], 0), 3);
        // A tie goes to the option listed first.
        assert_eq!(rank_of(&[0.5, 0.5], 0), 1);
        assert_eq!(rank_of(&[0.5, 0.5], 1), 2);
        assert_eq!(rank_of(&[0.5, 0.5], 7), 3);
        // Right option first, second, third, fourth: (1 + 1/2 + 1/3 + 0) / 4.
        let want = (1.0 + 0.5 + 1.0 / 3.0) / 4.0;
        assert!((map_at_k(&[1, 2, 3, 4], 3) - want).abs() < 1e-15);
        assert_eq!(map_at_k(&[], 3), 0.0);
        let r = ChoiceReport::from_scores(
            &[
                vec![3.0, 1.0, 0.0],
                vec![0.0, 1.0, 3.0],
                vec![0.0, 2.0, 1.0],
            ],
            &[0, 1, 0],
            0.7,
        );
        assert!((r.accuracy - 1.0 / 3.0).abs() < 1e-15);
        assert!((r.map_at_3 - (1.0 + 0.5 + 1.0 / 3.0) / 3.0).abs() < 1e-15);
        assert_eq!((r.examples, r.choices), (3, 3));
    }
}
