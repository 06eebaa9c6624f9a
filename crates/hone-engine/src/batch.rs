//! Encoded, labeled example sets and their batches.

use hone_data::{Batch, Batcher, EncodedExample};

use crate::graph::IGNORE_LABEL;

/// The words of a token-classification example and their gold tags, for scoring.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordTags {
    /// Per word, the token its prediction is read from (its first; `None` when truncation cut
    /// the word).
    pub first_tokens: Vec<Option<usize>>,
    pub words: Vec<String>,
    /// Per word, its gold IOB2 tag.
    pub tags: Vec<String>,
}

/// Examples after tokenization, with their labels: a class id per example for sequence
/// tasks, a class id per token (and the word map) for token tasks.
#[derive(Debug, Clone, Default)]
pub struct EncodedSet {
    pub examples: Vec<EncodedExample>,
    /// One class id per example (empty for unlabeled sets and token tasks).
    pub labels: Vec<u32>,
    /// Token tasks: per example, one class id per token ([`IGNORE_LABEL`] where no loss is
    /// taken).
    pub token_labels: Vec<Vec<u32>>,
    /// Token tasks: per example, its words and their tags.
    pub words: Vec<WordTags>,
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
        let mut batch = batcher.batch(&examples, &labels);
        if !self.token_labels.is_empty() {
            let s = batch.seq_len;
            let mut per_slot = vec![IGNORE_LABEL; batch.batch_size * s];
            for (row, &i) in indices.iter().enumerate() {
                // One label per token of the example, and the batch is as long as its longest.
                let labels = &self.token_labels[i];
                per_slot[row * s..][..labels.len()].copy_from_slice(labels);
            }
            batch.labels = per_slot;
        }
        batch
    }

    /// Indices sorted by length (longest first), so evaluation batches carry little padding.
    pub fn by_length(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.examples[i].input_ids.len()));
        order
    }
}
