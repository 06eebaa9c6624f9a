//! The post-LayerNorm transformer encoder layer shared by BERT, RoBERTa, DistilBERT and
//! DeBERTa. The tensor names differ between the families ([`LayerNames`] carries them), and
//! DeBERTa's attention adds position terms ([`LayerPositions`]).

use super::deberta::LayerPositions;

use super::nn::{LayerNorm, Linear};
use super::spec::EncoderConfig;
use crate::bottleneck::Bottleneck;
use crate::graph::{Graph, Heads};
use crate::ops::Activation;
use crate::params::ParamPosition;
use crate::weights::ParamBuilder;
use crate::EngineError;

/// Tensor names of one layer's blocks, relative to the layer's prefix.
pub struct LayerNames {
    pub query: &'static str,
    pub key: &'static str,
    pub value: &'static str,
    pub attention_output: &'static str,
    pub attention_norm: &'static str,
    pub ffn_in: &'static str,
    pub ffn_out: &'static str,
    pub output_norm: &'static str,
    /// BERT and RoBERTa apply dropout to the attention output; DistilBERT does not.
    pub attention_output_dropout: bool,
}

/// One encoder layer: self-attention → add & norm → feed-forward → add & norm.
pub struct EncoderLayer {
    query: Linear,
    key: Linear,
    value: Linear,
    attention_output: Linear,
    attention_norm: LayerNorm,
    ffn_in: Linear,
    ffn_out: Linear,
    output_norm: LayerNorm,
    num_heads: usize,
    activation: Activation,
    hidden_dropout: f64,
    attention_dropout: f64,
    attention_output_dropout: bool,
    /// Bottleneck adapters after the attention output (Houlsby) and the feed-forward output.
    attention_adapter: Option<Bottleneck>,
    output_adapter: Option<Bottleneck>,
    /// DeBERTa's disentangled attention.
    positions: Option<LayerPositions>,
}

impl EncoderLayer {
    /// Builds layer `index` whose tensors start with `prefix` (e.g. `bert.encoder.layer.3`).
    pub fn build(
        b: &mut ParamBuilder,
        prefix: &str,
        names: &LayerNames,
        cfg: &EncoderConfig,
        index: usize,
    ) -> Result<Self, EngineError> {
        let h = cfg.hidden_size;
        let pos = ParamPosition::Layer(index);
        let name = |n: &str| format!("{prefix}.{n}");
        let adapters = b.bottleneck().cloned();
        let adapter = |b: &mut ParamBuilder, module: &str, wanted: bool| match (&adapters, wanted) {
            (Some(cfg), true) => Bottleneck::build(b, &name(module), h, cfg, pos).map(Some),
            _ => Ok(None),
        };
        let attention_adapter = adapter(
            b,
            names.attention_output,
            adapters.as_ref().is_some_and(|a| a.after_attention()),
        )?;
        let output_adapter = adapter(b, names.ffn_out, true)?;
        Ok(EncoderLayer {
            query: Linear::required(b, &name(names.query), h, h, pos)?,
            key: Linear::required(b, &name(names.key), h, h, pos)?,
            value: Linear::required(b, &name(names.value), h, h, pos)?,
            attention_output: Linear::required(b, &name(names.attention_output), h, h, pos)?,
            attention_norm: LayerNorm::required(
                b,
                &name(names.attention_norm),
                h,
                cfg.layer_norm_eps,
                pos,
            )?,
            ffn_in: Linear::required(b, &name(names.ffn_in), h, cfg.intermediate_size, pos)?,
            ffn_out: Linear::required(b, &name(names.ffn_out), cfg.intermediate_size, h, pos)?,
            output_norm: LayerNorm::required(
                b,
                &name(names.output_norm),
                h,
                cfg.layer_norm_eps,
                pos,
            )?,
            num_heads: cfg.num_heads,
            activation: cfg.activation,
            hidden_dropout: cfg.dropout.hidden,
            attention_dropout: cfg.dropout.attention,
            attention_output_dropout: names.attention_output_dropout,
            attention_adapter,
            output_adapter,
            positions: None,
        })
    }

    /// The layer with DeBERTa's disentangled attention.
    pub fn with_positions(mut self, positions: LayerPositions) -> Self {
        self.positions = Some(positions);
        self
    }

    /// `x` `[tokens × hidden]` → the layer's output, same shape. A DeBERTa layer takes the
    /// encoder's relative embeddings `relative`.
    pub fn forward<G: Graph>(
        &self,
        g: &mut G,
        x: &G::Value,
        relative: Option<&G::Value>,
    ) -> Result<G::Value, EngineError> {
        let q = g.linear(x, &self.query)?;
        let k = g.linear(x, &self.key)?;
        let v = g.linear(x, &self.value)?;
        let context = match (&self.positions, relative) {
            (Some(positions), Some(relative)) => positions.attend(
                g,
                [&q, &k, &v],
                &self.key,
                &self.query,
                relative,
                self.num_heads,
                self.attention_dropout,
            )?,
            (None, None) => g.attention(
                &q,
                &k,
                &v,
                Heads::full(self.num_heads),
                self.attention_dropout,
            )?,
            _ => {
                return Err(EngineError::InvalidConfig(
                    "relative embeddings are for DeBERTa's layers only, and they need them".into(),
                ))
            }
        };
        drop((q, k, v));
        self.after_attention(g, context, x)
    }

    /// [`EncoderLayer::forward`] for the first token of each sequence only (a sequence
    /// classifier's last layer: its head reads nothing else): every token's keys and values,
    /// the first tokens' queries, attention, feed-forward and norms → `[sequences ×
    /// hidden]`. Layers with DeBERTa's positions run every token (`None`).
    pub fn forward_first_tokens<G: Graph>(
        &self,
        g: &mut G,
        x: &G::Value,
    ) -> Result<Option<G::Value>, EngineError> {
        if self.positions.is_some() {
            return Ok(None);
        }
        let k = g.linear(x, &self.key)?;
        let v = g.linear(x, &self.value)?;
        let first = g.first_tokens(x)?;
        let q = g.linear(&first, &self.query)?;
        let context =
            g.first_token_attention(&q, &k, &v, self.num_heads, self.attention_dropout)?;
        drop((q, k, v));
        self.after_attention(g, context, &first).map(Some)
    }

    /// The attention output projection, residual and norm, then the feed-forward, residual
    /// and norm, over the rows of `x` (the layer's input) that `context` attended for.
    fn after_attention<G: Graph>(
        &self,
        g: &mut G,
        context: G::Value,
        x: &G::Value,
    ) -> Result<G::Value, EngineError> {
        let attended = g.linear(&context, &self.attention_output)?;
        drop(context);
        let p = if self.attention_output_dropout {
            self.hidden_dropout
        } else {
            0.0
        };
        let sum = residual(g, attended, p, x, self.attention_adapter.as_ref())?;
        let h = g.layer_norm(&sum, &self.attention_norm)?;
        drop(sum);
        let inner = g.linear(&h, &self.ffn_in)?;
        let inner = g.activation(&inner, self.activation)?;
        let out = g.linear(&inner, &self.ffn_out)?;
        drop(inner);
        let out = residual(
            g,
            out,
            self.hidden_dropout,
            &h,
            self.output_adapter.as_ref(),
        )?;
        g.layer_norm(&out, &self.output_norm)
    }
}

/// Runs `layers` over `x`. With `first_only` the last layer runs for each sequence's first
/// token alone when it can ([`EncoderLayer::forward_first_tokens`]). Returns the output and
/// whether it holds the first tokens only (`[sequences × hidden]`) rather than every token.
pub fn run_layers<G: Graph>(
    g: &mut G,
    layers: &[EncoderLayer],
    mut x: G::Value,
    first_only: bool,
) -> Result<(G::Value, bool), EngineError> {
    let Some((last, before)) = layers.split_last() else {
        return Ok((x, false));
    };
    for layer in before {
        x = layer.forward(g, &x, None)?;
    }
    if first_only {
        if let Some(first) = last.forward_first_tokens(g, &x)? {
            return Ok((first, true));
        }
    }
    Ok((last.forward(g, &x, None)?, false))
}

/// `dropout(x, p) + skip`, with a bottleneck adapter on the dropped `x` when there is one.
fn residual<G: Graph>(
    g: &mut G,
    x: G::Value,
    p: f64,
    skip: &G::Value,
    adapter: Option<&Bottleneck>,
) -> Result<G::Value, EngineError> {
    match adapter {
        None => g.dropout_add(x, p, skip),
        Some(adapter) => {
            let dropped = g.dropout(x, p)?;
            let adapted = adapter.forward(g, dropped)?;
            g.add_scaled(adapted, skip, 1.0)
        }
    }
}
