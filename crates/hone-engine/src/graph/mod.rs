//! The one language every family, head and adapter is written in: a [`Graph`] of the ops a
//! transformer needs, over a packed batch ([`Tokens`]: the real tokens of every sequence back
//! to back, no padding). Model code is generic over the graph and is written once; two graphs
//! run it:
//!
//! - [`host::HostGraph`] (f32 on the CPU): each op is a fused kernel with a hand-derived
//!   backward (`crate::cpu`); the graph records a tape of the ops that lead to a trained
//!   parameter and runs it backwards, with buffers pooled across steps.
//! - [`autograd::AutogradGraph`] (any device, any dtype): each op is composed from candle ops
//!   that carry a gradient, and candle's autograd runs the backward (the GPU path).
//!
//! Both draw dropout masks from the same generator in the same order and layout, so with the
//! same seed they compute the same function, mask for mask (`tests/cross_path.rs`).

pub mod autograd;
pub mod bias;
pub mod constant;
pub mod cross_entropy;
pub mod dropout;
pub mod fused;
pub mod gated;
pub mod gather;
pub mod gelu;
pub mod host;
pub mod lookup;
pub mod rotary;
pub mod scores;
pub mod tokens;

pub use tokens::{
    IdLimits, LabelsPer, Span, Stream, TokenIds, Tokens, IGNORE_LABEL, PADDED_OPTION_SCORE,
};

use crate::models::nn::{LayerNorm, Linear, RmsNorm, Rotary};
use crate::ops::Activation;
use crate::params::Param;
use crate::prefix::PrefixAt;
use crate::EngineError;

/// The heads of an attention call.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Heads {
    /// Query heads.
    pub query: usize,
    /// Key/value heads: `query` for multi-head attention, fewer (dividing it) for grouped
    /// queries.
    pub key_value: usize,
    /// Each token attends to itself and the tokens before it only (decoders).
    pub causal: bool,
}

impl Heads {
    /// Multi-head attention over the whole sequence (encoders).
    pub fn full(n: usize) -> Self {
        Heads {
            query: n,
            key_value: n,
            causal: false,
        }
    }

    /// Checks the heads against the features of the queries and keys; the head size.
    pub fn head_dim(&self, q_cols: usize, kv_cols: usize) -> Result<usize, EngineError> {
        let ok = self.query > 0
            && self.key_value > 0
            && self.query.is_multiple_of(self.key_value)
            && q_cols.is_multiple_of(self.query)
            && kv_cols * self.query == q_cols * self.key_value;
        if !ok {
            return Err(EngineError::InvalidConfig(format!(
                "attention over {q_cols} query and {kv_cols} key features cannot have {} query \
                 and {} key/value heads",
                self.query, self.key_value
            )));
        }
        Ok(q_cols / self.query)
    }
}

/// How DeBERTa maps the distance between a query and a key to a row of its relative
/// embeddings: `make_log_bucket_position` (distances beyond half the buckets share
/// log-spaced buckets up to `max_distance`), shifted by `span` and clamped to the `2·span`
/// rows (`disentangled_attention_bias` in transformers).
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct RelativeBuckets {
    /// `att_span`: the relative embeddings have `2·span` rows.
    pub span: usize,
    /// `position_buckets` (0: distances are not bucketed).
    pub buckets: usize,
    /// `max_relative_positions`.
    pub max_distance: usize,
}

impl RelativeBuckets {
    /// The bucket of `query − key` (`make_log_bucket_position`, in f32 as PyTorch computes it).
    pub fn bucket(&self, distance: i64) -> i64 {
        if self.buckets == 0 || self.max_distance == 0 {
            return distance;
        }
        let mid = (self.buckets / 2) as i64;
        let abs = if distance < mid && distance > -mid {
            mid - 1
        } else {
            distance.abs()
        };
        if abs <= mid {
            return distance;
        }
        let ratio = ((self.max_distance - 1) as f32 / mid as f32).ln();
        let log = ((abs as f32 / mid as f32).ln() / ratio * (mid - 1) as f32).ceil() + mid as f32;
        log as i64 * distance.signum()
    }

    /// The relative-embedding row a query attends to a key `distance = query − key` away
    /// with.
    pub fn row(&self, distance: i64) -> usize {
        let top = 2 * self.span as i64 - 1;
        (self.bucket(distance) + self.span as i64).clamp(0, top.max(0)) as usize
    }

    /// The rows of every distance within sequences of up to `longest` tokens: entry
    /// `distance + longest − 1`.
    pub fn rows(&self, longest: usize) -> Vec<usize> {
        let n = longest as i64;
        (-(n - 1)..n).map(|d| self.row(d)).collect()
    }
}

/// The position terms of a disentangled attention call (DeBERTa): the relative embeddings
/// projected by the layer's keys and queries, `[2·span × hidden]` each.
pub struct Disentangled<'a, V> {
    /// Content → position: each query against the key projection of its distance's row.
    pub position_keys: Option<&'a V>,
    /// Position → content: each key against the query projection of its distance's row.
    pub position_queries: Option<&'a V>,
    pub buckets: RelativeBuckets,
}

impl<V> Disentangled<'_, V> {
    /// The scores' scale: `1 / √(d · (1 + position terms))`.
    pub fn scale(&self, head_dim: usize) -> f64 {
        let terms = 1
            + usize::from(self.position_keys.is_some())
            + usize::from(self.position_queries.is_some());
        1.0 / ((head_dim * terms) as f64).sqrt()
    }
}

/// How T5 maps a key's distance from its query (`key − query`) to a bucket of its learned
/// position bias (`T5Attention._relative_position_bucket`): exact buckets for small
/// distances, log-spaced ones up to `max_distance`; a bidirectional (encoder) bias gives
/// each side half the buckets, a causal (decoder) one only looks back.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct BiasBuckets {
    /// `relative_attention_num_buckets`.
    pub buckets: usize,
    /// `relative_attention_max_distance`.
    pub max_distance: usize,
    /// Encoder self-attention (true) or decoder self-attention (false).
    pub bidirectional: bool,
}

impl BiasBuckets {
    /// The bucket of a key `relative = key − query` tokens from its query.
    pub fn bucket(&self, relative: i64) -> usize {
        let mut buckets = self.buckets as i64;
        let mut out = 0;
        let distance = if self.bidirectional {
            buckets /= 2;
            if relative > 0 {
                out += buckets;
            }
            relative.abs()
        } else {
            (-relative).max(0)
        };
        let exact = buckets / 2;
        if distance < exact {
            return (out + distance) as usize;
        }
        // In f32, as PyTorch computes it, truncated toward zero.
        let log = ((distance as f32 / exact as f32).ln()
            / (self.max_distance as f32 / exact as f32).ln()
            * (buckets - exact) as f32) as i64;
        (out + (exact + log).min(buckets - 1)) as usize
    }

    /// The bucket of every distance within sequences of up to `longest` tokens: entry
    /// `key − query + longest − 1`.
    pub fn all(&self, longest: usize) -> Vec<usize> {
        let n = longest as i64;
        (-(n - 1)..n).map(|d| self.bucket(d)).collect()
    }
}

/// A learned position bias on attention scores (T5): `table` is `[buckets × heads]`, each
/// score adds its head's column at the bucket of its distance.
pub struct PositionBias<'a, V> {
    pub table: &'a V,
    pub buckets: BiasBuckets,
}

/// The settings of [`Graph::biased_attention`].
pub struct BiasedAttention<'a, V> {
    /// Multi-head attention with this many heads (queries, keys and values alike).
    pub heads: usize,
    /// Each query looks at itself and earlier keys only (self-attention of a decoder).
    pub causal: bool,
    /// Dropout on the probabilities.
    pub p: f64,
    /// Cross-attention: the keys and values are the [`Stream::Source`] stream's tokens
    /// (sequence `i` of the queries attends to source sequence `i`), not the queries' own.
    pub cross: bool,
    pub bias: Option<PositionBias<'a, V>>,
}

/// The ops a model is written in. Values are `[tokens × features]` (or `[sequences ×
/// features]` after [`Graph::first_tokens`]) in the batch's packed order.
pub trait Graph {
    /// A value of the graph (a host buffer or a candle tensor).
    type Value: Clone;

    /// The batch the graph runs on.
    fn tokens(&self) -> &Tokens;

    /// True in training mode (dropout on).
    fn is_train(&self) -> bool;

    /// True when the pass continues a key/value cache (generation): the attention calls read
    /// the cache, where a prefix's rows already are.
    fn continues_cache(&self) -> bool {
        false
    }

    /// `Σ table[ids[t]]` over `lookups`, per token: word + position (+ token-type) embeddings.
    fn embed(&mut self, lookups: &[(&Param, TokenIds)]) -> Result<Self::Value, EngineError>;

    /// `x · wᵀ (+ b)` with `nn.Linear`'s `[out × in]` weight.
    fn dense(
        &mut self,
        x: &Self::Value,
        weight: &Param,
        bias: Option<&Param>,
    ) -> Result<Self::Value, EngineError>;

    /// `x + scale · y`. Takes `x` by value so a graph may work in place.
    fn add_scaled(
        &mut self,
        x: Self::Value,
        y: &Self::Value,
        scale: f64,
    ) -> Result<Self::Value, EngineError>;

    /// A linear layer: `x · wᵀ + b`, plus its LoRA branch `scale · dropout(x)·Aᵀ·Bᵀ` when it
    /// has one (`crate::lora`).
    fn linear(&mut self, x: &Self::Value, layer: &Linear) -> Result<Self::Value, EngineError> {
        let out = self.dense(x, layer.weight(), layer.bias())?;
        let Some(lora) = layer.lora() else {
            return Ok(out);
        };
        let dropped = self.dropout(x.clone(), lora.dropout)?;
        let down = self.dense(&dropped, &lora.a, None)?;
        drop(dropped);
        let up = self.dense(&down, &lora.b, None)?;
        drop(down);
        self.add_scaled(out, &up, lora.scale)
    }

    /// Layer normalisation over the features (biased variance, as PyTorch).
    fn layer_norm(&mut self, x: &Self::Value, norm: &LayerNorm)
        -> Result<Self::Value, EngineError>;

    /// An elementwise activation.
    fn activation(&mut self, x: &Self::Value, act: Activation) -> Result<Self::Value, EngineError>;

    /// Inverted dropout with probability `p` in training, the identity otherwise. Takes `x`
    /// by value so a graph may work in place.
    fn dropout(&mut self, x: Self::Value, p: f64) -> Result<Self::Value, EngineError>;

    /// `dropout(x, p) + residual`, fused.
    fn dropout_add(
        &mut self,
        x: Self::Value,
        p: f64,
        residual: &Self::Value,
    ) -> Result<Self::Value, EngineError>;

    /// Multi-head self-attention of every sequence with itself: `softmax(q·kᵀ/√d)·v` per
    /// sequence and head, dropout `p` on the probabilities. `k` and `v` have
    /// `heads.key_value` heads (grouped-query attention when fewer than the queries'); a
    /// causal attention gives no weight to later tokens.
    fn attention(
        &mut self,
        q: &Self::Value,
        k: &Self::Value,
        v: &Self::Value,
        heads: Heads,
        p: f64,
    ) -> Result<Self::Value, EngineError>;

    /// [`Graph::attention`] with a layer's learned prefix (prefix tuning, `crate::prefix`):
    /// every sequence's keys and values start with `at.tokens` rows of `table` (`[tokens ×
    /// layers·2·width]`, this layer's columns at `at`), which each token attends to as well
    /// (a causal attention too).
    #[allow(clippy::too_many_arguments)]
    fn prefix_attention(
        &mut self,
        q: &Self::Value,
        k: &Self::Value,
        v: &Self::Value,
        heads: Heads,
        p: f64,
        table: &Self::Value,
        at: PrefixAt,
    ) -> Result<Self::Value, EngineError>;

    /// DeBERTa's disentangled self-attention (multi-head, whole sequences): the scores
    /// `q·kᵀ + q·Kᵣ[row(i−j)]ᵀ + k·Qᵣ[row(i−j)]ᵀ`, scaled by [`Disentangled::scale`], then
    /// softmax, dropout `p` and the values, as [`Graph::attention`].
    fn disentangled_attention(
        &mut self,
        q: &Self::Value,
        k: &Self::Value,
        v: &Self::Value,
        heads: usize,
        p: f64,
        positions: Disentangled<'_, Self::Value>,
    ) -> Result<Self::Value, EngineError>;

    /// A whole parameter as a value (`[rows × columns]`, e.g. a prefix table), its gradient
    /// going to the parameter.
    fn table(&mut self, param: &Param) -> Result<Self::Value, EngineError>;

    /// RMS normalisation over the features.
    fn rms_norm(&mut self, x: &Self::Value, norm: &RmsNorm) -> Result<Self::Value, EngineError>;

    /// Rotary position embeddings on every head of `x` (`[tokens × heads·d]`), at each
    /// token's position.
    fn rotary(
        &mut self,
        x: Self::Value,
        heads: usize,
        rope: &Rotary,
    ) -> Result<Self::Value, EngineError>;

    /// `act(gate) · up`, elementwise (a gated feed-forward: SwiGLU with SiLU).
    fn gated(
        &mut self,
        gate: &Self::Value,
        up: &Self::Value,
        act: Activation,
    ) -> Result<Self::Value, EngineError>;

    /// The first token's row of every sequence (`[CLS]` / `<s>`): `[sequences × features]`.
    fn first_tokens(&mut self, x: &Self::Value) -> Result<Self::Value, EngineError>;

    /// Whether a sequence classifier may run its last layer for the first tokens alone
    /// ([`Graph::first_token_attention`]: the head reads nothing else). An exported graph
    /// (ONNX) runs every token.
    fn prunes_to_first_tokens(&self) -> bool {
        true
    }

    /// Attention of each sequence's first token only: `q` `[sequences × hidden]` (the first
    /// tokens' queries), `k`, `v` every token's; per sequence and head
    /// `softmax(q·kᵀ/√d)·v` over the sequence's tokens, dropout `p` on the probabilities.
    /// Returns `[sequences × hidden]`: what full attention gives at the first tokens.
    fn first_token_attention(
        &mut self,
        q: &Self::Value,
        k: &Self::Value,
        v: &Self::Value,
        heads: usize,
        p: f64,
    ) -> Result<Self::Value, EngineError>;

    /// The token stream the ops run over now ([`Graph::tokens`] is its tokens).
    fn stream(&self) -> Stream;

    /// Runs the next ops over `stream`'s tokens (an encoder–decoder model runs its encoder
    /// over [`Stream::Source`], its decoder over [`Stream::Main`]).
    fn select_stream(&mut self, stream: Stream) -> Result<(), EngineError>;

    /// T5's attention: `softmax(q·kᵀ + bias)·v` per sequence and head — the scores are not
    /// scaled (T5 folds `1/√d` into its initialisation) —, the bias a learned
    /// [`PositionBias`] when given, dropout `p` on the probabilities. Self-attention over the
    /// current stream (causal when asked), or cross-attention from it to the source stream.
    fn biased_attention(
        &mut self,
        q: &Self::Value,
        k: &Self::Value,
        v: &Self::Value,
        attention: BiasedAttention<'_, Self::Value>,
    ) -> Result<Self::Value, EngineError>;
}
