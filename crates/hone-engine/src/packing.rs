//! Sequence packing (`packing`, causal LM): the examples are put into bins of at most the
//! run's maximum length in tokens (first-fit decreasing), and a step takes `batch_size` bins
//! instead of `batch_size` examples, so every step sees about the same number of tokens
//! however short the conversations are (what TRL's padding-free packing does, with first-fit
//! rather than best-fit bins).
//!
//! Hone's batches carry no padding and each sequence attends only to itself (packed spans,
//! `crate::graph::Tokens`), so a bin needs no separator or position reset: packing changes
//! which examples share a step, never what a sequence sees. What it saves is steps: fewer
//! optimizer updates and per-step costs for the same tokens, with larger products.

/// Bins of example indices, each bin's lengths summing to at most `capacity` (an example
/// longer than `capacity` gets a bin of its own). First-fit decreasing, ties by index:
/// the same lengths always give the same bins. Each bin lists its examples in index order.
pub fn bins(lengths: &[usize], capacity: usize) -> Vec<Vec<usize>> {
    let mut order: Vec<usize> = (0..lengths.len()).collect();
    order.sort_by(|&a, &b| lengths[b].cmp(&lengths[a]).then(a.cmp(&b)));
    let mut bins: Vec<(usize, Vec<usize>)> = Vec::new();
    for i in order {
        let len = lengths[i];
        match bins
            .iter_mut()
            .find(|(used, _)| *used + len <= capacity.max(1))
        {
            Some((used, members)) => {
                *used += len;
                members.push(i);
            }
            None => bins.push((len, vec![i])),
        }
    }
    bins.into_iter()
        .map(|(_, mut members)| {
            members.sort_unstable();
            members
        })
        .collect()
}

/// The bins of a run's training set when it packs (`None` otherwise): at most the run's
/// maximum length (within the model's) per bin.
pub fn run_bins(
    cfg: &crate::config::TrainingConfig,
    train: &crate::batch::EncodedSet,
    model: &crate::models::Model,
) -> Option<Vec<Vec<usize>>> {
    cfg.packing.then(|| {
        let capacity = cfg.max_length.min(model.spec().max_sequence_length());
        bins(&train.lengths(), capacity)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_example_lands_in_one_bin_within_the_capacity() {
        let lengths = [5, 9, 2, 7, 3, 3, 10, 1, 4, 12];
        let packed = bins(&lengths, 10);
        let mut seen: Vec<usize> = packed.iter().flatten().copied().collect();
        seen.sort_unstable();
        assert_eq!(seen, (0..lengths.len()).collect::<Vec<_>>());
        for bin in &packed {
            let used: usize = bin.iter().map(|&i| lengths[i]).sum();
            // Only a too-long example sits alone over the capacity.
            assert!(used <= 10 || bin.len() == 1, "{bin:?} holds {used}");
        }
        // The 12 alone, and 44 tokens in 5 bins of 10: as few as there can be.
        assert_eq!(packed.len(), 6, "{packed:?}");
        assert_eq!(
            packed,
            bins(&lengths, 10),
            "the same lengths, the same bins"
        );
        assert!(bins(&[], 10).is_empty());
    }
}
