//! Encoded, labeled example sets and their batches.

use hone_data::{Batch, Batcher, EncodedExample};

use crate::graph::IGNORE_LABEL;

/// The words of a token-classification example: which word each token belongs to, and the
/// gold tag id of every word.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct WordTags {
    /// Per token, its word (`None` for special tokens).
    pub word_ids: Vec<Option<u32>>,
    pub words: Vec<String>,
    /// Per word, its tag id (empty when unlabeled).
    pub tags: Vec<u32>,
}

impl WordTags {
    /// The index of each word's first token (`None` for words cut by truncation).
    pub fn first_tokens(&self) -> Vec<Option<usize>> {
        let mut first = vec![None; self.words.len()];
        for (t, w) in self.word_ids.iter().enumerate() {
            if let Some(w) = w {
                let slot = &mut first[*w as usize];
                if slot.is_none() {
                    *slot = Some(t);
                }
            }
        }
        first
    }
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
                let labels = &self.token_labels[i];
                per_slot[row * s..row * s + labels.len()].copy_from_slice(labels);
            }
            batch.labels = per_slot;
        }
        batch
    }

    /// True when the set is labeled per token.
    pub fn is_token_set(&self) -> bool {
        !self.words.is_empty()
    }

    /// Indices sorted by length (longest first), so evaluation batches carry little padding.
    pub fn by_length(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| std::cmp::Reverse(self.examples[i].input_ids.len()));
        order
    }
}
