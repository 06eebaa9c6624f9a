//! Entity-level scores of token classification with conlleval's rules: an entity counts as
//! found only when its type and both ends match; precision, recall and F1 are micro averages
//! over entities, with the same scores per entity type; token accuracy is over words.

use std::collections::{BTreeMap, BTreeSet};

use hone_data::{entities, Entity};
use serde::{Deserialize, Serialize};

use super::{f1, ratio};

/// Scores of one entity type.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityScores {
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Entities of this type in the gold tags.
    pub support: u64,
}

/// A sentence the model tagged wrongly: its words with the gold and the predicted tags and
/// entities (word spans, conlleval's reading), so front ends draw them without re-deriving.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaggingError {
    /// The sentence's position in the evaluated set.
    pub index: usize,
    pub tokens: Vec<String>,
    pub gold: Vec<String>,
    pub predicted: Vec<String>,
    #[serde(default)]
    pub gold_entities: Vec<Entity>,
    #[serde(default)]
    pub predicted_entities: Vec<Entity>,
    /// Gold entities missed plus predicted entities that are not gold.
    pub mistakes: u64,
}

/// An evaluation of a token classifier.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EntityReport {
    /// Mean cross-entropy over labeled tokens.
    pub loss: f64,
    pub entity_f1: f64,
    pub precision: f64,
    pub recall: f64,
    /// Share of words whose tag is right (O included, as conlleval).
    pub token_accuracy: f64,
    pub per_type: BTreeMap<String, EntityScores>,
    /// The sentences with the most entity mistakes (at most 20), worst first.
    pub worst: Vec<TaggingError>,
    /// Sentences evaluated.
    pub sentences: u64,
}

impl EntityReport {
    /// Scores predicted IOB2 tags against gold ones, sentence by sentence (`tokens` for the
    /// error list).
    pub fn from_tags<W, G, P>(tokens: &[W], gold: &[G], predicted: &[P], loss: f64) -> Self
    where
        W: AsRef<[String]>,
        G: AsRef<[String]>,
        P: AsRef<[String]>,
    {
        // (correct, predicted, gold) per type.
        let mut counts: BTreeMap<String, (u64, u64, u64)> = BTreeMap::new();
        let (mut right_words, mut words) = (0u64, 0u64);
        // (mistakes, sentence, gold entities, predicted entities) of the wrong sentences.
        let mut wrong = Vec::new();
        for (i, (g, p)) in gold.iter().zip(predicted).enumerate() {
            let (g, p) = (g.as_ref(), p.as_ref());
            words += g.len() as u64;
            right_words += g.iter().zip(p).filter(|(a, b)| a == b).count() as u64;
            let ge: BTreeSet<Entity> = entities(g).into_iter().collect();
            let pe: BTreeSet<Entity> = entities(p).into_iter().collect();
            for e in &ge {
                counts.entry(e.kind.clone()).or_default().2 += 1;
            }
            for e in &pe {
                let c = counts.entry(e.kind.clone()).or_default();
                c.1 += 1;
                if ge.contains(e) {
                    c.0 += 1;
                }
            }
            let mistakes = ge.symmetric_difference(&pe).count() as u64;
            if mistakes > 0 {
                wrong.push((mistakes, i, ge, pe));
            }
        }
        // Worst first; only the kept ones are copied.
        wrong.sort_by(|a, b| b.0.cmp(&a.0).then(a.1.cmp(&b.1)));
        let errors: Vec<TaggingError> = wrong
            .into_iter()
            .take(20)
            .map(|(mistakes, i, ge, pe)| TaggingError {
                index: i,
                tokens: tokens
                    .get(i)
                    .map(|t| t.as_ref().to_vec())
                    .unwrap_or_default(),
                gold: gold[i].as_ref().to_vec(),
                predicted: predicted[i].as_ref().to_vec(),
                gold_entities: ge.into_iter().collect(),
                predicted_entities: pe.into_iter().collect(),
                mistakes,
            })
            .collect();
        let (mut c, mut pr, mut go) = (0, 0, 0);
        let per_type = counts
            .into_iter()
            .map(|(kind, (correct, predicted, gold))| {
                c += correct;
                pr += predicted;
                go += gold;
                let (p, r) = (ratio(correct, predicted), ratio(correct, gold));
                let scores = EntityScores {
                    precision: p,
                    recall: r,
                    f1: f1(p, r),
                    support: gold,
                };
                (kind, scores)
            })
            .collect();
        let (precision, recall) = (ratio(c, pr), ratio(c, go));
        EntityReport {
            loss,
            entity_f1: f1(precision, recall),
            precision,
            recall,
            token_accuracy: ratio(right_words, words),
            per_type,
            worst: errors,
            sentences: gold.len() as u64,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tags(s: &str) -> Vec<String> {
        s.split_whitespace().map(str::to_string).collect()
    }

    #[test]
    fn scores_match_conlleval_on_a_hand_counted_example() {
        // Gold: PER(0-2), LOC(3), ORG(5). Predicted: PER(0-2) right, LOC(3-5) wrong end,
        // ORG(5) right, MISC(6) spurious.
        let gold = vec![tags("B-PER I-PER O B-LOC O B-ORG O")];
        let pred = vec![tags("B-PER I-PER O B-LOC I-LOC B-ORG B-MISC")];
        let words = vec![tags("a b c d e f g")];
        let r = EntityReport::from_tags(&words, &gold, &pred, 0.1);
        assert!((r.precision - 2.0 / 4.0).abs() < 1e-12);
        assert!((r.recall - 2.0 / 3.0).abs() < 1e-12);
        assert!((r.entity_f1 - f1(0.5, 2.0 / 3.0)).abs() < 1e-12);
        assert!((r.token_accuracy - 5.0 / 7.0).abs() < 1e-12);
        assert_eq!(r.per_type["LOC"].f1, 0.0);
        assert_eq!(r.per_type["PER"].f1, 1.0);
        assert_eq!(r.per_type["MISC"].support, 0);
        assert_eq!(r.worst.len(), 1);
        assert_eq!(r.worst[0].mistakes, 3);
    }
}
