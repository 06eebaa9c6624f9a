//! How uncertain a model is about one example: the scores the labeling queue is ordered by.
//! Every score is in [0, 1], higher = the model is less sure (label this first).

use serde::{Deserialize, Serialize};

/// How the labeling queue picks what to label next.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Strategy {
    /// `1 − p(top class)`.
    LeastConfidence,
    /// `1 − (p(top) − p(second))`: the two likeliest classes are close.
    #[default]
    Margin,
    /// The entropy of the class distribution over `ln(classes)`.
    Entropy,
    /// A seeded shuffle: the control that uncertainty sampling has to beat.
    Random,
}

impl Strategy {
    /// Every strategy, in the order the app lists them.
    pub const ALL: [Strategy; 4] = [
        Strategy::Margin,
        Strategy::LeastConfidence,
        Strategy::Entropy,
        Strategy::Random,
    ];

    /// The name used on the command line and in JSON.
    pub fn as_str(self) -> &'static str {
        match self {
            Strategy::LeastConfidence => "least-confidence",
            Strategy::Margin => "margin",
            Strategy::Entropy => "entropy",
            Strategy::Random => "random",
        }
    }
}

impl std::str::FromStr for Strategy {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        Strategy::ALL
            .into_iter()
            .find(|k| k.as_str() == s.to_ascii_lowercase())
            .ok_or_else(|| {
                format!("unknown strategy '{s}': use margin, least-confidence, entropy or random")
            })
    }
}

/// The uncertainty of one class distribution under `strategy` (`Random` is not a property of
/// the distribution: see [`random_score`]).
pub fn uncertainty(probabilities: &[f64], strategy: Strategy) -> f64 {
    let (mut top, mut second) = (0f64, 0f64);
    for &p in probabilities {
        if p > top {
            second = top;
            top = p;
        } else if p > second {
            second = p;
        }
    }
    match strategy {
        Strategy::LeastConfidence => 1.0 - top,
        Strategy::Margin => 1.0 - (top - second),
        Strategy::Entropy => {
            let k = probabilities.len();
            if k < 2 {
                return 0.0;
            }
            let h: f64 = probabilities
                .iter()
                .filter(|&&p| p > 0.0)
                .map(|&p| -p * p.ln())
                .sum();
            h / (k as f64).ln()
        }
        Strategy::Random => 0.0,
    }
}

/// The uncertainty of a tagged sentence: that of its least certain word (one wrong tag is
/// what makes the sentence worth a look). Words without probabilities (cut by truncation)
/// are skipped.
pub fn sentence_uncertainty(words: &[Vec<f64>], strategy: Strategy) -> f64 {
    words
        .iter()
        .filter(|p| !p.is_empty())
        .map(|p| uncertainty(p, strategy))
        .fold(0.0, f64::max)
}

/// A stable pseudo-random score in [0, 1) for `key` under `seed` (SplitMix64), so the random
/// control orders the same examples the same way every time it is asked.
pub fn random_score(seed: u64, key: u64) -> f64 {
    let mut z = seed
        .wrapping_mul(0x9E37_79B9_7F4A_7C15)
        .wrapping_add(key)
        .wrapping_add(0x9E37_79B9_7F4A_7C15);
    z = (z ^ (z >> 30)).wrapping_mul(0xBF58_476D_1CE4_E5B9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94D0_49BB_1331_11EB);
    z ^= z >> 31;
    (z >> 11) as f64 / (1u64 << 53) as f64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_sure_prediction_scores_low_and_a_tie_scores_high_under_every_strategy() {
        for s in [
            Strategy::LeastConfidence,
            Strategy::Margin,
            Strategy::Entropy,
        ] {
            let sure = uncertainty(&[0.98, 0.01, 0.01], s);
            let torn = uncertainty(&[0.49, 0.48, 0.03], s);
            assert!(sure < 0.15, "{s:?}: {sure}");
            assert!(torn > 0.5, "{s:?}: {torn}");
        }
        assert_eq!(uncertainty(&[0.5, 0.5], Strategy::Entropy), 1.0);
        assert!((uncertainty(&[0.7, 0.2, 0.1], Strategy::Margin) - 0.5).abs() < 1e-12);
        assert!((uncertainty(&[0.7, 0.2, 0.1], Strategy::LeastConfidence) - 0.3).abs() < 1e-12);
    }

    #[test]
    fn the_strategies_disagree_where_they_should() {
        // Least confidence prefers the flat three-way split; margin the close two-way race.
        let flat = [0.4, 0.3, 0.3];
        let race = [0.45, 0.44, 0.11];
        assert!(
            uncertainty(&flat, Strategy::LeastConfidence)
                > uncertainty(&race, Strategy::LeastConfidence)
        );
        assert!(uncertainty(&race, Strategy::Margin) > uncertainty(&flat, Strategy::Margin));
    }

    #[test]
    fn a_sentence_is_as_uncertain_as_its_least_certain_word() {
        let words = vec![vec![0.99, 0.01], vec![0.6, 0.4], vec![]];
        assert!((sentence_uncertainty(&words, Strategy::LeastConfidence) - 0.4).abs() < 1e-12);
        assert_eq!(sentence_uncertainty(&[], Strategy::Margin), 0.0);
    }

    #[test]
    fn random_scores_are_stable_spread_and_seeded() {
        let a: Vec<f64> = (0..1000).map(|k| random_score(7, k)).collect();
        let b: Vec<f64> = (0..1000).map(|k| random_score(7, k)).collect();
        let c: Vec<f64> = (0..1000).map(|k| random_score(8, k)).collect();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(a.iter().all(|x| (0.0..1.0).contains(x)));
        let mean = a.iter().sum::<f64>() / a.len() as f64;
        assert!((mean - 0.5).abs() < 0.05, "{mean}");
    }

    #[test]
    fn strategy_names_round_trip() {
        for s in Strategy::ALL {
            assert_eq!(s.as_str().parse::<Strategy>(), Ok(s));
            assert_eq!(
                serde_json::to_string(&s).unwrap(),
                format!("\"{}\"", s.as_str())
            );
        }
        assert!("confidence".parse::<Strategy>().is_err());
    }
}
