//! Padded batches of encoded examples.

use crate::EncodedExample;

/// A batch padded to its longest example ("dynamic padding"), row-major `[batch, seq]`.
#[derive(Debug, Clone, PartialEq)]
pub struct Batch {
    pub input_ids: Vec<u32>,
    pub token_type_ids: Vec<u32>,
    /// 1 for real tokens, 0 for padding.
    pub attention_mask: Vec<u32>,
    /// Class id per example (empty for unlabeled batches).
    pub labels: Vec<u32>,
    pub batch_size: usize,
    pub seq_len: usize,
    /// Multiple choice: per row, true when it stands for no option (it pads a question with
    /// fewer options than the others) and takes no part in its question's softmax; empty
    /// when no row does.
    pub padded_options: Vec<bool>,
    /// Knowledge distillation: the teacher's scores, one row per label (classes, or a
    /// question's options); empty without a teacher.
    pub soft_targets: Vec<f32>,
    /// An encoder–decoder batch: the encoder's input, one row per row of this (the
    /// decoder's) batch; `None` for other models.
    pub source: Option<Box<Batch>>,
}

impl Batch {
    /// One unpadded, unlabeled sequence (a generation pass, a prompt).
    pub fn one_sequence(input_ids: Vec<u32>) -> Self {
        let n = input_ids.len();
        Batch {
            input_ids,
            token_type_ids: vec![0; n],
            attention_mask: vec![1; n],
            labels: Vec::new(),
            batch_size: 1,
            seq_len: n,
            padded_options: Vec::new(),
            soft_targets: Vec::new(),
            source: None,
        }
    }

    /// Number of real (non-padding) tokens.
    pub fn real_tokens(&self) -> usize {
        self.attention_mask.iter().filter(|&&m| m == 1).count()
    }
}

/// Builds batches, padding with the model's pad token id.
#[derive(Debug, Clone, Copy)]
pub struct Batcher {
    pad_id: u32,
    min_length: usize,
}

impl Batcher {
    /// A batcher padding with `pad_id` (the model config's `pad_token_id`) to the longest
    /// example of each batch.
    pub fn new(pad_id: u32) -> Self {
        Batcher {
            pad_id,
            min_length: 0,
        }
    }

    /// Pads every batch to at least `length` tokens (fixed-shape batches for benchmarks).
    pub fn padding_to(self, length: usize) -> Self {
        Batcher {
            min_length: length,
            ..self
        }
    }

    /// Pads `examples` to the longest among them. `labels` is empty or one per example.
    pub fn batch(&self, examples: &[&EncodedExample], labels: &[u32]) -> Batch {
        let batch_size = examples.len();
        let seq_len = examples
            .iter()
            .map(|e| e.input_ids.len())
            .max()
            .unwrap_or(0)
            .max(self.min_length);
        let mut input_ids = vec![self.pad_id; batch_size * seq_len];
        let mut token_type_ids = vec![0; batch_size * seq_len];
        let mut attention_mask = vec![0; batch_size * seq_len];
        for (row, example) in examples.iter().enumerate() {
            let start = row * seq_len;
            let n = example.input_ids.len();
            input_ids[start..start + n].copy_from_slice(&example.input_ids);
            token_type_ids[start..start + n].copy_from_slice(&example.type_ids);
            attention_mask[start..start + n].fill(1);
        }
        Batch {
            input_ids,
            token_type_ids,
            attention_mask,
            labels: labels.to_vec(),
            batch_size,
            seq_len,
            padded_options: Vec::new(),
            soft_targets: Vec::new(),
            source: None,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pads_to_the_longest_example() {
        let a = EncodedExample {
            input_ids: vec![5, 6, 7],
            type_ids: vec![0, 0, 1],
            truncated: false,
        };
        let b = EncodedExample {
            input_ids: vec![5],
            type_ids: vec![0],
            truncated: false,
        };
        let batch = Batcher::new(1).batch(&[&a, &b], &[0, 1]);
        assert_eq!(batch.seq_len, 3);
        assert_eq!(batch.input_ids, [5, 6, 7, 5, 1, 1]);
        assert_eq!(batch.token_type_ids, [0, 0, 1, 0, 0, 0]);
        assert_eq!(batch.attention_mask, [1, 1, 1, 1, 0, 0]);
        assert_eq!(batch.real_tokens(), 4);
        let fixed = Batcher::new(1).padding_to(5).batch(&[&a, &b], &[]);
        assert_eq!(fixed.seq_len, 5);
        assert_eq!(fixed.attention_mask, [1, 1, 1, 0, 0, 1, 0, 0, 0, 0]);
    }
}
