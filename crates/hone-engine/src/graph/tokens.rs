//! A batch with the padding removed: the real tokens of every sequence back to back, with
//! their ids, positions, segments and labels.

use hone_data::Batch;

pub use crate::models::heads::LabelsPer;
use crate::EngineError;

/// The label of a token that takes no loss (transformers' `-100`): padding, special tokens
/// and, by default, every sub-token but a word's first.
pub const IGNORE_LABEL: u32 = u32::MAX;

/// The score a padding option gets: its softmax share is exactly 0 in f32, and no gradient
/// reaches it, while arithmetic on it stays finite.
pub const PADDED_OPTION_SCORE: f32 = -1e9;

/// A sequence inside a packed batch: its first token and its length.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Span {
    pub start: usize,
    pub len: usize,
}

/// Which per-token ids an embedding lookup reads.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TokenIds {
    Words,
    Positions,
    Types,
}

/// The largest id each embedding table accepts (its rows), checked when a batch is packed so
/// neither graph reads past a table (candle on a GPU would not say so).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct IdLimits {
    pub words: usize,
    pub positions: usize,
    pub types: usize,
}

/// A packed batch. Only [`Tokens::pack`] builds one, so its spans always tile its tokens and
/// its ids fit the model's tables.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Tokens {
    spans: Vec<Span>,
    input_ids: Vec<u32>,
    type_ids: Vec<u32>,
    position_ids: Vec<u32>,
    /// One class id per row of the loss (per sequence, per token or per group of options,
    /// by the task; [`IGNORE_LABEL`] where no loss is taken), or `None` when unlabeled.
    labels: Option<Vec<u32>>,
    /// What the labels are attached to.
    per: LabelsPer,
    /// Per sequence, true when it pads a question with fewer options (no part in its
    /// softmax); empty when none does.
    padded: Vec<bool>,
    /// An encoder–decoder batch: the encoder's input, one sequence per sequence of these
    /// (the decoder's) tokens; `None` for other models.
    source: Option<Box<Tokens>>,
}

/// Which of a batch's token streams an op runs over.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum Stream {
    /// The batch's own tokens: the decoder's, in an encoder–decoder model.
    #[default]
    Main,
    /// An encoder–decoder batch's encoder input ([`Tokens::source`]).
    Source,
}

impl Tokens {
    /// Packs the real tokens (mask 1) of a padded batch, in order; `positions` and `types`
    /// are the model's ids for every slot of the batch. A labeled batch has one label per row,
    /// per slot (token tasks) or per group of rows (multiple choice), as `per` says.
    pub fn pack(
        batch: &Batch,
        positions: &[u32],
        types: &[u32],
        per: LabelsPer,
        limits: IdLimits,
    ) -> Result<Self, EngineError> {
        let (b, s) = (batch.batch_size, batch.seq_len);
        let slots = b * s;
        let bad = |m: String| Err(EngineError::InvalidConfig(m));
        if [
            batch.input_ids.len(),
            batch.attention_mask.len(),
            positions.len(),
            types.len(),
        ]
        .iter()
        .any(|&n| n != slots)
        {
            return bad(format!(
                "a batch of {b} × {s} needs {slots} ids, mask values, positions and types"
            ));
        }
        let per_token = per == LabelsPer::Token;
        let group = match per {
            LabelsPer::Group(0) => return bad("a group of options cannot be empty".into()),
            // Unlabeled options are scored one by one: any number of them will do.
            LabelsPer::Group(n) if b % n != 0 && !batch.labels.is_empty() => {
                return bad(format!(
                    "a batch of {b} sequences is not whole groups of {n} options"
                ))
            }
            LabelsPer::Group(n) => n,
            _ => 1,
        };
        let (want, unit) = match per {
            LabelsPer::Sequence => (b, "sequence"),
            LabelsPer::Span => (2 * b, "sequence's answer start and end: twice"),
            LabelsPer::Token => (slots, "token slot"),
            LabelsPer::Group(n) => (b / n, "group of options"),
        };
        if !batch.labels.is_empty() && batch.labels.len() != want {
            return bad(format!(
                "a batch of {b} × {s} has {} labels; this task takes one per {unit}",
                batch.labels.len(),
            ));
        }
        let mut tokens = Tokens {
            spans: Vec::with_capacity(b),
            input_ids: Vec::new(),
            type_ids: Vec::new(),
            position_ids: Vec::new(),
            labels: None,
            per,
            padded: Vec::new(),
            source: None,
        };
        let mut token_labels = Vec::new();
        for row in 0..b {
            let start = tokens.input_ids.len();
            for slot in row * s..(row + 1) * s {
                if batch.attention_mask[slot] == 0 {
                    continue;
                }
                for (what, id, limit) in [
                    ("token", batch.input_ids[slot], limits.words),
                    ("position", positions[slot], limits.positions),
                    ("segment", types[slot], limits.types),
                ] {
                    if id as usize >= limit {
                        return bad(format!(
                            "{what} id {id} is past the model's {limit} {what} embeddings \
                             (a tokenizer or a max length that does not belong to this model?)"
                        ));
                    }
                }
                tokens.input_ids.push(batch.input_ids[slot]);
                tokens.type_ids.push(types[slot]);
                tokens.position_ids.push(positions[slot]);
                if per_token && !batch.labels.is_empty() {
                    token_labels.push(batch.labels[slot]);
                }
            }
            let len = tokens.input_ids.len() - start;
            if len == 0 {
                return bad(format!("row {row} of the batch has no tokens"));
            }
            tokens.spans.push(Span { start, len });
        }
        if batch.padded_options.iter().any(|&p| p) {
            if batch.padded_options.len() != b || group == 1 {
                return bad(format!(
                    "{} padded-option flags for a batch of {b} sequences in groups of {group}",
                    batch.padded_options.len()
                ));
            }
            if let Some(q) = batch
                .padded_options
                .chunks(group)
                .position(|g| g.iter().filter(|&&p| !p).count() < 2)
            {
                return bad(format!(
                    "question {q} of the batch has fewer than 2 options"
                ));
            }
            tokens.padded = batch.padded_options.clone();
        }
        if per == LabelsPer::Span && !batch.labels.is_empty() {
            for (row, (span, ends)) in tokens.spans.iter().zip(batch.labels.chunks(2)).enumerate() {
                if let Some(&past) = ends.iter().find(|&&y| y as usize >= span.len) {
                    return bad(format!(
                        "row {row} of the batch has {} tokens; its answer cannot be at token {past}",
                        span.len
                    ));
                }
            }
        }
        tokens.labels = match (batch.labels.is_empty(), per_token) {
            (true, _) => None,
            (false, true) => Some(token_labels),
            (false, false) => Some(batch.labels.clone()),
        };
        Ok(tokens)
    }

    /// Gives these (decoder) tokens their encoder input, one source sequence per sequence.
    pub fn with_source(mut self, source: Tokens) -> Result<Self, EngineError> {
        if source.sequences() != self.sequences() {
            return Err(EngineError::InvalidConfig(format!(
                "{} source sequences for {} target sequences",
                source.sequences(),
                self.sequences()
            )));
        }
        self.source = Some(Box::new(source));
        Ok(self)
    }

    /// An encoder–decoder batch's encoder input.
    pub fn source(&self) -> Option<&Tokens> {
        self.source.as_deref()
    }

    /// The tokens of `stream`: these, or their source (an error when there is none).
    pub fn stream(&self, stream: Stream) -> Result<&Tokens, EngineError> {
        match stream {
            Stream::Main => Ok(self),
            Stream::Source => self.source().ok_or_else(|| {
                EngineError::InvalidConfig(
                    "this batch has no source tokens (an encoder–decoder model's input)".into(),
                )
            }),
        }
    }

    /// Number of real tokens.
    pub fn len(&self) -> usize {
        self.input_ids.len()
    }

    /// True when the batch has no tokens (never, for a packed batch).
    pub fn is_empty(&self) -> bool {
        self.input_ids.is_empty()
    }

    /// Number of sequences.
    pub fn sequences(&self) -> usize {
        self.spans.len()
    }

    /// Number of examples: sequences, or groups of options for multiple choice.
    pub fn examples(&self) -> usize {
        self.spans.len() / self.group()
    }

    /// Consecutive sequences per example (the options of a question), else 1.
    pub fn group(&self) -> usize {
        match self.per {
            LabelsPer::Group(n) => n.max(1),
            _ => 1,
        }
    }

    /// Per sequence, true when it pads a question with fewer options; empty when none does.
    pub fn padded_options(&self) -> &[bool] {
        &self.padded
    }

    /// Takes the padding options out of their questions' softmax: their scores become
    /// [`PADDED_OPTION_SCORE`] (one score per sequence in `scores`).
    pub fn mask_padded_options(&self, scores: &mut [f32]) {
        for (s, &p) in scores.iter_mut().zip(&self.padded) {
            if p {
                *s = PADDED_OPTION_SCORE;
            }
        }
    }

    /// What the labels are attached to.
    pub fn labels_per(&self) -> LabelsPer {
        self.per
    }

    /// Span tasks: the `[tokens × 2]` start and end scores laid out as two rows per sequence
    /// (its start scores, then its end scores), each as long as the longest sequence, the
    /// slots past a sequence's end at [`PADDED_OPTION_SCORE`] (no part in its softmax).
    pub fn span_rows(&self, scores: &[f32]) -> Vec<f32> {
        let width = self.max_len();
        let mut rows = vec![PADDED_OPTION_SCORE; self.spans.len() * 2 * width];
        for (span, out) in self.spans.iter().zip(rows.chunks_exact_mut(2 * width)) {
            let (starts, ends) = out.split_at_mut(width);
            for j in 0..span.len {
                starts[j] = scores[(span.start + j) * 2];
                ends[j] = scores[(span.start + j) * 2 + 1];
            }
        }
        rows
    }

    /// The gradient of [`Tokens::span_rows`]: `d_rows` back onto `[tokens × 2]`.
    pub fn span_rows_backward(&self, d_rows: &[f32], d_scores: &mut [f32]) {
        let width = self.max_len();
        for (span, rows) in self.spans.iter().zip(d_rows.chunks_exact(2 * width)) {
            for j in 0..span.len {
                d_scores[(span.start + j) * 2] = rows[j];
                d_scores[(span.start + j) * 2 + 1] = rows[width + j];
            }
        }
    }

    /// Where each sequence sits.
    pub fn spans(&self) -> &[Span] {
        &self.spans
    }

    /// The ids an embedding lookup reads.
    pub fn ids(&self, which: TokenIds) -> &[u32] {
        match which {
            TokenIds::Words => &self.input_ids,
            TokenIds::Positions => &self.position_ids,
            TokenIds::Types => &self.type_ids,
        }
    }

    /// One class id per row of the loss, when labeled.
    pub fn labels(&self) -> Option<&[u32]> {
        self.labels.as_deref()
    }

    /// The number of rows that take a loss.
    pub fn labeled_rows(&self) -> usize {
        self.labels()
            .map_or(0, |ids| ids.iter().filter(|&&y| y != IGNORE_LABEL).count())
    }

    /// The longest sequence.
    pub fn max_len(&self) -> usize {
        self.spans.iter().map(|s| s.len).max().unwrap_or(0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const LIMITS: IdLimits = IdLimits {
        words: 100,
        positions: 32,
        types: 2,
    };

    fn batch(mask: Vec<u32>, labels: Vec<u32>) -> Batch {
        let n = mask.len();
        Batch {
            input_ids: (10..10 + n as u32).collect(),
            token_type_ids: vec![0; n],
            attention_mask: mask,
            labels,
            batch_size: 2,
            seq_len: n / 2,
            padded_options: Vec::new(),
            soft_targets: Vec::new(),
            source: None,
        }
    }

    #[test]
    fn packs_real_tokens_with_either_padding_side() {
        let b = batch(vec![1, 1, 0, 0, 1, 1], vec![1, 0]);
        let positions: Vec<u32> = (0..6).collect();
        let t = Tokens::pack(&b, &positions, &[0; 6], LabelsPer::Sequence, LIMITS).unwrap();
        assert_eq!(t.ids(TokenIds::Words), &[10, 11, 14, 15]);
        assert_eq!(t.ids(TokenIds::Positions), &[0, 1, 4, 5]);
        assert_eq!(
            t.spans(),
            &[Span { start: 0, len: 2 }, Span { start: 2, len: 2 }]
        );
        assert_eq!(t.labels(), Some(&[1, 0][..]));
    }

    #[test]
    fn per_token_labels_follow_their_tokens() {
        let x = IGNORE_LABEL;
        let b = batch(vec![1, 1, 0, 1, 1, 1], vec![x, 2, x, x, 1, 0]);
        let t = Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Token, LIMITS).unwrap();
        assert_eq!(t.labels(), Some(&[x, 2, x, 1, 0][..]));
        assert_eq!(t.labeled_rows(), 3);
    }

    #[test]
    fn options_of_a_question_share_one_label() {
        let b = batch(vec![1, 1, 0, 1, 1, 1], vec![1]);
        let t = Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Group(2), LIMITS).unwrap();
        assert_eq!(t.labels(), Some(&[1][..]));
        assert_eq!((t.sequences(), t.examples(), t.group()), (2, 1, 2));
        assert_eq!(t.labeled_rows(), 1);
        // Two labels for one question, or a batch that is not whole questions.
        let b = batch(vec![1; 6], vec![0, 1]);
        assert!(Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Group(2), LIMITS).is_err());
        let b = batch(vec![1; 6], vec![1]);
        assert!(Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Group(3), LIMITS).is_err());
    }

    #[test]
    fn answer_spans_are_two_labels_per_sequence_within_it() {
        let b = batch(vec![1, 1, 0, 1, 1, 1], vec![1, 1, 0, 2]);
        let t = Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Span, LIMITS).unwrap();
        assert_eq!(t.labeled_rows(), 4);
        // Scores [tokens × 2] as rows: each sequence's starts, then its ends, padded to 3.
        let scores = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0, 7.0, 8.0, 9.0, 10.0];
        let p = PADDED_OPTION_SCORE;
        let rows = t.span_rows(&scores);
        assert_eq!(
            rows,
            [1.0, 3.0, p, 2.0, 4.0, p, 5.0, 7.0, 9.0, 6.0, 8.0, 10.0]
        );
        let mut back = [0.0; 10];
        t.span_rows_backward(&rows, &mut back);
        assert_eq!(back, scores);
        // An end past the second sequence's three tokens.
        let b = batch(vec![1, 1, 0, 1, 1, 1], vec![1, 1, 0, 3]);
        assert!(Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Span, LIMITS).is_err());
    }

    #[test]
    fn an_empty_row_odd_labels_or_ids_past_a_table_are_refused() {
        let b = batch(vec![1, 1, 1, 0, 0, 0], vec![]);
        assert!(Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Sequence, LIMITS).is_err());
        let b = batch(vec![1, 1, 1, 1, 0, 0], vec![1, 2, 3]);
        assert!(Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Sequence, LIMITS).is_err());
        // Per-slot labels for a sequence task, and the other way round.
        let b = batch(vec![1, 1, 1, 1, 1, 1], vec![0; 6]);
        assert!(Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Sequence, LIMITS).is_err());
        let b = batch(vec![1, 1, 1, 1, 1, 1], vec![0; 2]);
        assert!(Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Token, LIMITS).is_err());
        let b = batch(vec![1, 1, 1, 1, 1, 1], vec![]);
        let small = IdLimits {
            words: 12,
            ..LIMITS
        };
        let err = Tokens::pack(&b, &[0; 6], &[0; 6], LabelsPer::Sequence, small).unwrap_err();
        assert!(err.to_string().contains("token id 12"), "{err}");
        assert!(Tokens::pack(
            &b,
            &[0, 1, 2, 0, 1, 40],
            &[0; 6],
            LabelsPer::Sequence,
            LIMITS
        )
        .is_err());
    }
}
