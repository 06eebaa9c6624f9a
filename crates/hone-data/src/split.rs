//! Seeded splits and orderings of examples.

use std::collections::BTreeMap;

use rand::seq::SliceRandom;
use rand::SeedableRng;
use rand_xoshiro::Xoshiro256PlusPlus;

/// Splits example indices into (train, held-out) so that each class keeps its share.
///
/// Per class, `round(n × fraction)` examples are held out (never all of a class), chosen by a
/// generator seeded with `seed`. Both lists come back in file order.
pub fn stratified_holdout(labels: &[u32], fraction: f64, seed: u64) -> (Vec<usize>, Vec<usize>) {
    let mut by_class: BTreeMap<u32, Vec<usize>> = BTreeMap::new();
    for (i, &label) in labels.iter().enumerate() {
        by_class.entry(label).or_default().push(i);
    }
    let mut rng = Xoshiro256PlusPlus::seed_from_u64(seed);
    let mut train = Vec::with_capacity(labels.len());
    let mut held = Vec::new();
    for (_, mut indices) in by_class {
        indices.shuffle(&mut rng);
        let n = indices.len();
        let take = ((n as f64) * fraction).round() as usize;
        let take = take.min(n.saturating_sub(1));
        held.extend_from_slice(&indices[..take]);
        train.extend_from_slice(&indices[take..]);
    }
    train.sort_unstable();
    held.sort_unstable();
    (train, held)
}

/// Splits example indices into (train, validation, test) so that each class keeps its share:
/// per class, `round(n × valid)` go to validation and `round(n × test)` to test (never the
/// whole class), chosen by a generator seeded with `seed`. All three lists are in file order.
pub fn stratified_three_way(
    labels: &[u32],
    valid: f64,
    test: f64,
    seed: u64,
) -> (Vec<usize>, Vec<usize>, Vec<usize>) {
    let (rest, test_idx) = stratified_holdout(labels, test, seed);
    let rest_labels: Vec<u32> = rest.iter().map(|&i| labels[i]).collect();
    // The validation share is of the whole set, so of the rest it is valid / (1 − test).
    let share = if test < 1.0 {
        valid / (1.0 - test)
    } else {
        0.0
    };
    let (train, valid_idx) = stratified_holdout(&rest_labels, share, seed.wrapping_add(1));
    let map = |idx: Vec<usize>| idx.into_iter().map(|i| rest[i]).collect::<Vec<_>>();
    (map(train), map(valid_idx), test_idx)
}

/// A seeded permutation of `0..n`, different for each epoch.
pub fn epoch_order(n: usize, seed: u64, epoch: u64) -> Vec<usize> {
    let mut order: Vec<usize> = (0..n).collect();
    let mut rng =
        Xoshiro256PlusPlus::seed_from_u64(seed ^ epoch.wrapping_mul(0x9E37_79B9_7F4A_7C15));
    order.shuffle(&mut rng);
    order
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn holdout_is_stratified_seeded_and_complete() {
        let labels: Vec<u32> = (0..200).map(|i| if i % 4 == 0 { 1 } else { 0 }).collect();
        let (train, held) = stratified_holdout(&labels, 0.1, 7);
        assert_eq!(train.len() + held.len(), 200);
        assert_eq!(held.iter().filter(|&&i| labels[i] == 1).count(), 5);
        assert_eq!(held.iter().filter(|&&i| labels[i] == 0).count(), 15);
        assert_eq!(stratified_holdout(&labels, 0.1, 7).1, held);
        assert_ne!(stratified_holdout(&labels, 0.1, 8).1, held);
    }

    #[test]
    fn a_single_example_class_stays_in_train() {
        let (train, held) = stratified_holdout(&[0, 1, 1, 1, 1, 1, 1, 1, 1, 1], 0.5, 1);
        assert!(train.contains(&0));
        assert!(!held.contains(&0));
    }

    #[test]
    fn three_way_split_keeps_shares_per_class() {
        let labels: Vec<u32> = (0..1000).map(|i| (i % 4 == 0) as u32).collect();
        let (train, valid, test) = stratified_three_way(&labels, 0.1, 0.2, 3);
        assert_eq!(train.len() + valid.len() + test.len(), 1000);
        assert_eq!(test.len(), 200);
        assert_eq!(valid.len(), 100);
        assert_eq!(test.iter().filter(|&&i| labels[i] == 1).count(), 50);
        let mut all: Vec<usize> = train.iter().chain(&valid).chain(&test).copied().collect();
        all.sort_unstable();
        all.dedup();
        assert_eq!(all.len(), 1000);
    }

    #[test]
    fn epoch_orders_are_permutations_that_differ() {
        let a = epoch_order(50, 3, 0);
        let mut sorted = a.clone();
        sorted.sort_unstable();
        assert_eq!(sorted, (0..50).collect::<Vec<_>>());
        assert_ne!(a, epoch_order(50, 3, 1));
        assert_eq!(a, epoch_order(50, 3, 0));
    }
}
