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
/// tasks, a class id per token (and the word map) for token tasks, the right option's index
/// for multiple choice (whose examples are `choices` encoded sequences each, back to back).
#[derive(Debug, Clone, Default)]
pub struct EncodedSet {
    /// The encoded sequences: one per example, or `choices` per example.
    pub examples: Vec<EncodedExample>,
    /// Multiple choice: sequences per example (one per option); 0 or 1 otherwise.
    pub choices: usize,
    /// Multiple choice: per sequence, true when it pads a question with fewer options (empty
    /// when none does).
    pub padded: Vec<bool>,
    /// One class id per example (empty for unlabeled sets and token tasks).
    pub labels: Vec<u32>,
    /// Token tasks: per example, one class id per token ([`IGNORE_LABEL`] where no loss is
    /// taken).
    pub token_labels: Vec<Vec<u32>>,
    /// Token tasks: per example, its words and their tags.
    pub words: Vec<WordTags>,
    /// Question answering: per window (the examples are windows), the answer's start and end
    /// token (`[0, 0]` when the window does not hold it); empty when unlabeled.
    pub span_labels: Vec<[u32; 2]>,
    /// Question answering: the questions and passages behind the windows.
    pub passages: Option<crate::answers::Passages>,
    /// Knowledge distillation: per example, the teacher's scores (classes, or options); empty
    /// without a teacher.
    pub teacher: Vec<Vec<f32>>,
    /// Text-to-text: per example, the encoder's input (the examples are then the decoder's
    /// inputs: the start token and the target shifted right); empty for other tasks.
    pub sources: Vec<EncodedExample>,
}

impl EncodedSet {
    /// Sequences per example.
    pub fn group(&self) -> usize {
        self.choices.max(1)
    }

    /// Number of examples.
    pub fn len(&self) -> usize {
        self.examples.len() / self.group()
    }

    pub fn is_empty(&self) -> bool {
        self.examples.is_empty()
    }

    /// The encoded sequences of example `i` (its options, for multiple choice).
    pub fn sequences(&self, i: usize) -> &[EncodedExample] {
        let g = self.group();
        &self.examples[i * g..(i + 1) * g]
    }

    /// Number of examples that were truncated (any of their sequences).
    pub fn truncated(&self) -> usize {
        (0..self.len())
            .filter(|&i| self.sequences(i).iter().any(|e| e.truncated))
            .count()
    }

    /// The batch of the examples at `indices` (all their options, in order, for multiple
    /// choice).
    pub fn batch(&self, batcher: &Batcher, indices: &[usize]) -> Batch {
        let examples: Vec<&EncodedExample> =
            indices.iter().flat_map(|&i| self.sequences(i)).collect();
        let labels: Vec<u32> = if !self.span_labels.is_empty() {
            indices.iter().flat_map(|&i| self.span_labels[i]).collect()
        } else if self.labels.is_empty() {
            Vec::new()
        } else {
            indices.iter().map(|&i| self.labels[i]).collect()
        };
        let mut batch = batcher.batch(&examples, &labels);
        if !self.sources.is_empty() {
            let sources: Vec<&EncodedExample> = indices.iter().map(|&i| &self.sources[i]).collect();
            batch.source = Some(Box::new(batcher.batch(&sources, &[])));
        }
        if !self.padded.is_empty() {
            let g = self.group();
            batch.padded_options = indices
                .iter()
                .flat_map(|&i| &self.padded[i * g..(i + 1) * g])
                .copied()
                .collect();
        }
        if !self.teacher.is_empty() {
            batch.soft_targets = indices
                .iter()
                .flat_map(|&i| self.teacher[i].iter().copied())
                .collect();
        }
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

    /// The micro-batches of an optimizer step over examples `chunk`, `batch_size` each.
    pub fn batches(&self, batcher: &Batcher, chunk: &[usize], batch_size: usize) -> Vec<Batch> {
        chunk
            .chunks(batch_size.max(1))
            .map(|micro| self.batch(batcher, micro))
            .collect()
    }

    /// Each example's length in tokens (its longest sequence, for multiple choice).
    pub fn lengths(&self) -> Vec<usize> {
        (0..self.len())
            .map(|i| {
                self.sequences(i)
                    .iter()
                    .map(|e| e.input_ids.len())
                    .max()
                    .unwrap_or(0)
            })
            .collect()
    }

    /// Indices sorted by length (longest first), so evaluation batches carry little padding.
    pub fn by_length(&self) -> Vec<usize> {
        let mut order: Vec<usize> = (0..self.len()).collect();
        order.sort_by_key(|&i| {
            let longest = self.sequences(i).iter().map(|e| e.input_ids.len()).max();
            std::cmp::Reverse(longest.unwrap_or(0))
        });
        order
    }
}
