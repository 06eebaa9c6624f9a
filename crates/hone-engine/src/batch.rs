//! Encoded, labeled example sets and their batches.

use hone_data::{Batch, Batcher, EncodedExample};

/// Examples after tokenization, with their class ids.
#[derive(Debug, Clone, Default)]
pub struct EncodedSet {
    pub examples: Vec<EncodedExample>,
    /// One class id per example (empty for unlabeled sets).
    pub labels: Vec<u32>,
}

impl EncodedSet {
    pub fn len(&self) -> usize {
        self.examples.len()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// Number of examples that were truncated.
    pub fn truncated(&self) -> usize {
        self.examples.iter().filter(|e| e.truncated).count()
    }

    /// The batch of the examples at `indices`.
    pub fn batch(&self, batcher: &Batcher, indices: &[usize]) -> Batch {
        let examples: Vec<&EncodedExample> = indices.iter().map(|&i| &self.examples[i]).collect();
        let labels: Vec<u32> = if self.labels.is_empty() {
            Vec::new()
        } else {
            indices.iter().map(|&i| self.labels[i]).collect()
        };
        batcher.batch(&examples, &labels)
    }

    /// Indices sorted by length (longest first), so evaluation batches carry little padding.
    pub fn by_length(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.examples[i].input_ids.len()));
        order
    }
}
