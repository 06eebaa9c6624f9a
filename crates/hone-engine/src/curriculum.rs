//! Curriculum learning (Bengio et al. 2009): the first epoch(s) go from easy examples to hard
//! ones, later epochs are shuffled as usual.
//!
//! Difficulty is an example's length in tokens, or the loss a reference model (the run's
//! teacher: a finished run or any model with the same classes) gives it. The pacing is linear
//! and bucketed: the examples, sorted from easy to hard, are cut into [`BUCKETS`] equal buckets
//! taken in order, each shuffled with the run's seed — so the batch at fraction `f` of a
//! curriculum epoch comes from the `f`-th tenth of the difficulty ranking, every example is
//! still seen once per epoch, and the order is a pure function of seed and epoch (a resumed run
//! continues it exactly).

use crate::batch::EncodedSet;
use crate::inference::row_loss;
use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;
use serde::{Deserialize, Serialize};

/// What makes an example hard.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum CurriculumOrder {
    /// No curriculum: every epoch shuffled.
    #[default]
    Off,
    /// Shorter texts first.
    Length,
    /// Examples the reference model (the teacher) gets right with confidence first.
    Loss,
}

impl std::str::FromStr for CurriculumOrder {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "off" | "none" => Ok(CurriculumOrder::Off),
            "length" => Ok(CurriculumOrder::Length),
            "loss" => Ok(CurriculumOrder::Loss),
            other => Err(format!(
                "unknown curriculum '{other}': use off, length or loss"
            )),
        }
    }
}

/// Buckets of a curriculum epoch.
pub const BUCKETS: usize = 10;

/// The order of a curriculum epoch: indices sorted by `difficulty` (ties by index), cut into
/// [`BUCKETS`] buckets, each shuffled with `seed` and `epoch`.
pub fn curriculum_order(difficulty: &[f32], seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..difficulty.len()).collect();
    order.sort_by(|&a, &b| difficulty[a].total_cmp(&difficulty[b]).then(a.cmp(&b)));
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(
        seed ^ 0xC0_44_1C ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15),
    );
    let size = difficulty.len().div_ceil(BUCKETS).max(1);
    for bucket in order.chunks_mut(size) {
        bucket.shuffle(&mut rng);
    }
    order
}

/// Per-example cross-entropy of rows of logits against the true ids: the difficulty a
/// reference model gives each example.
pub fn losses(rows: &[Vec<f32>], truth: &[u32]) -> Vec<f32> {
    rows.iter()
        .zip(truth)
        .map(|(row, &y)| row_loss(row, y).unwrap_or(f64::INFINITY) as f32)
        .collect()
}

/// How hard each example of `set` is by `order`: its length, or its teacher loss (`None` when
/// there is no curriculum, or no teacher scores to order by).
pub fn difficulty(set: &EncodedSet, order: CurriculumOrder) -> Option<Vec<f32>> {
    match order {
        CurriculumOrder::Off => None,
        CurriculumOrder::Length => Some(set.lengths().into_iter().map(|n| n as f32).collect()),
        CurriculumOrder::Loss if set.teacher.is_empty() => None,
        CurriculumOrder::Loss => Some(losses(&set.teacher, &set.labels)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn buckets_go_from_easy_to_hard_and_keep_every_example() {
        let difficulty: Vec<f32> = (0..100).map(|i| ((i * 37) % 100) as f32).collect();
        let order = curriculum_order(&difficulty, 42, 0);
        let mut sorted = order.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..100).collect::<Vec<_>>());
        for (b, bucket) in order.chunks(10).enumerate() {
            for &i in bucket {
                let d = difficulty[i] as usize;
                assert!(d / 10 == b, "example {i} (difficulty {d}) in bucket {b}");
            }
        }
        // Shuffled inside the buckets, differently each epoch, the same for the same seed.
        assert_ne!(order[..10], {
            let mut first: Vec<usize> = order[..10].to_vec();
            first.sort_by(|&a, &b| difficulty[a].total_cmp(&difficulty[b]));
            first
        });
        assert_eq!(order, curriculum_order(&difficulty, 42, 0));
        assert_ne!(order, curriculum_order(&difficulty, 42, 1));
    }

    #[test]
    fn a_confident_right_answer_is_easy() {
        let rows = vec![vec![5.0, 0.0], vec![0.0, 0.0], vec![0.0, 5.0]];
        let l = losses(&rows, &[0, 0, 0]);
        assert!(l[0] < l[1] && l[1] < l[2], "{l:?}");
    }
}
