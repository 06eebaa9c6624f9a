//! The post-LayerNorm transformer encoder layer shared by BERT, RoBERTa and DistilBERT. Only
//! the tensor names differ between the families; [`LayerNames`] carries them.

use candle_core::Tensor;

use super::nn::{LayerNorm, Linear};
use super::spec::EncoderConfig;
use super::structure::LayerBlock;
use crate::ops::{softmax_last_dim, Activation, ForwardCtx};
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
        })
    }

    /// The parameters and settings of the layer.
    pub fn block(&self) -> LayerBlock {
        LayerBlock {
            query: self.query.block(),
            key: self.key.block(),
            value: self.value.block(),
            attention_output: self.attention_output.block(),
            attention_norm: self.attention_norm.block(),
            ffn_in: self.ffn_in.block(),
            ffn_out: self.ffn_out.block(),
            output_norm: self.output_norm.block(),
            num_heads: self.num_heads,
            activation: self.activation,
            hidden_dropout: self.hidden_dropout,
            attention_dropout: self.attention_dropout,
            attention_output_dropout: self.attention_output_dropout,
        }
    }

    /// `x` `[batch, seq, hidden]`; `mask_bias` `[batch, 1, 1, seq]` (0 for tokens, a large
    /// negative number for padding).
    pub fn forward(
        &self,
        x: &Tensor,
        mask_bias: &Tensor,
        ctx: &mut ForwardCtx,
    ) -> candle_core::Result<Tensor> {
        let (batch, seq, hidden) = x.dims3()?;
        let head_dim = hidden / self.num_heads;
        let heads = |t: Tensor| -> candle_core::Result<Tensor> {
            t.reshape((batch, seq, self.num_heads, head_dim))?
                .transpose(1, 2)?
                .contiguous()
        };
        let q = heads(self.query.forward(x, ctx)?)?;
        let k = heads(self.key.forward(x, ctx)?)?;
        let v = heads(self.value.forward(x, ctx)?)?;
        let scores = (q.matmul(&k.t()?)? * (1.0 / (head_dim as f64).sqrt()))?;
        let probs = softmax_last_dim(&scores.broadcast_add(mask_bias)?)?;
        let probs = ctx.dropout(&probs, self.attention_dropout)?;
        let context = probs
            .matmul(&v)?
            .transpose(1, 2)?
            .reshape((batch, seq, hidden))?;
        let attended = self.attention_output.forward(&context, ctx)?;
        let attended = if self.attention_output_dropout {
            ctx.dropout(&attended, self.hidden_dropout)?
        } else {
            attended
        };
        let x = self.attention_norm.forward(&(attended + x)?, ctx)?;
        let inner = self.activation.apply(&self.ffn_in.forward(&x, ctx)?)?;
        let out = ctx.dropout(&self.ffn_out.forward(&inner, ctx)?, self.hidden_dropout)?;
        self.output_norm.forward(&(out + x)?, ctx)
    }
}
