//! Parameterised blocks (linear, layer norm, embedding) over [`Param`]s, named as on the Hub.

use candle_core::Tensor;

use super::structure::{LinearBlock, NormBlock};
use crate::ops::{self, ForwardCtx};
use crate::params::{Param, ParamPosition};
use crate::weights::{Init, ParamBuilder};
use crate::EngineError;

/// A dense layer `name.weight` `[out, in]` and `name.bias` `[out]`.
pub struct Linear {
    weight: Param,
    bias: Param,
}

impl Linear {
    /// A pretrained dense layer the checkpoint must have.
    pub fn required(
        b: &mut ParamBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        position: ParamPosition,
    ) -> Result<Self, EngineError> {
        Ok(Linear {
            weight: b.required(
                &format!("{name}.weight"),
                &[out_features, in_features],
                Init::Normal,
                position,
            )?,
            bias: b.required(
                &format!("{name}.bias"),
                &[out_features],
                Init::Zeros,
                position,
            )?,
        })
    }

    /// A head layer: from the checkpoint when present with this shape, else new.
    pub fn head(
        b: &mut ParamBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
    ) -> Result<Self, EngineError> {
        Ok(Linear {
            weight: b.head(
                &format!("{name}.weight"),
                &[out_features, in_features],
                Init::Normal,
            )?,
            bias: b.head(&format!("{name}.bias"), &[out_features], Init::Zeros)?,
        })
    }

    pub fn forward(&self, x: &Tensor, ctx: &ForwardCtx) -> candle_core::Result<Tensor> {
        ops::linear(x, &self.weight.t(ctx), Some(&self.bias.t(ctx)))
    }

    /// The parameters.
    pub fn block(&self) -> LinearBlock {
        LinearBlock {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
        }
    }
}

/// Layer normalisation `name.weight` / `name.bias`.
pub struct LayerNorm {
    weight: Param,
    bias: Param,
    eps: f64,
}

impl LayerNorm {
    pub fn required(
        b: &mut ParamBuilder,
        name: &str,
        size: usize,
        eps: f64,
        position: ParamPosition,
    ) -> Result<Self, EngineError> {
        Ok(LayerNorm {
            weight: b.required(&format!("{name}.weight"), &[size], Init::Ones, position)?,
            bias: b.required(&format!("{name}.bias"), &[size], Init::Zeros, position)?,
            eps,
        })
    }

    pub fn forward(&self, x: &Tensor, ctx: &ForwardCtx) -> candle_core::Result<Tensor> {
        ops::layer_norm(x, &self.weight.t(ctx), &self.bias.t(ctx), self.eps)
    }

    /// The parameters.
    pub fn block(&self) -> NormBlock {
        NormBlock {
            weight: self.weight.clone(),
            bias: self.bias.clone(),
            eps: self.eps,
        }
    }
}

/// An embedding table `name.weight` `[rows, dim]`.
pub struct Embedding {
    table: Param,
    dim: usize,
}

impl Embedding {
    pub fn required(
        b: &mut ParamBuilder,
        name: &str,
        rows: usize,
        dim: usize,
        word: bool,
    ) -> Result<Self, EngineError> {
        Ok(Embedding {
            table: b.required(
                &format!("{name}.weight"),
                &[rows, dim],
                Init::Normal,
                ParamPosition::EmbeddingTable { word },
            )?,
            dim,
        })
    }

    /// The parameter holding the table.
    pub fn param(&self) -> &Param {
        &self.table
    }

    /// Looks up `ids` `[batch, seq]` (u32) → `[batch, seq, dim]`.
    pub fn forward(&self, ids: &Tensor, ctx: &ForwardCtx) -> candle_core::Result<Tensor> {
        let (batch, seq) = ids.dims2()?;
        self.table
            .t(ctx)
            .index_select(&ids.flatten_all()?, 0)?
            .reshape((batch, seq, self.dim))
    }
}
