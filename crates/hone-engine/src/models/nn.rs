//! Parameterised blocks (linear, layer norm, embedding) over [`Param`]s, named as on the Hub.
//! They hold parameters only; a [`crate::graph::Graph`] runs them.

use crate::params::{Param, ParamPosition};
use crate::weights::{Init, ParamBuilder};
use crate::EngineError;

/// A dense layer `name.weight` `[out, in]` and `name.bias` `[out]` (when it has one), with a
/// LoRA branch when the model's LoRA settings target it.
pub struct Linear {
    weight: Param,
    bias: Option<Param>,
    lora: Option<LoraBranch>,
}

/// The LoRA branch of a layer (`crate::lora`): `scale · dropout(x)·Aᵀ·Bᵀ` added to its output.
pub struct LoraBranch {
    /// `name.lora_A.weight` `[r, in]`.
    pub a: Param,
    /// `name.lora_B.weight` `[out, r]`.
    pub b: Param,
    pub scale: f64,
    pub dropout: f64,
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
        Self::projection(b, name, in_features, out_features, position, true)
    }

    /// A pretrained dense layer with or without a bias (decoders' projections mostly have
    /// none).
    pub fn projection(
        b: &mut ParamBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        position: ParamPosition,
        with_bias: bool,
    ) -> Result<Self, EngineError> {
        Self::projection_init(
            b,
            name,
            in_features,
            out_features,
            position,
            with_bias,
            Init::Normal,
        )
    }

    /// [`Linear::projection`] with its weight initialised by `init` in a model built from its
    /// config alone.
    pub fn projection_init(
        b: &mut ParamBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        position: ParamPosition,
        with_bias: bool,
        init: Init,
    ) -> Result<Self, EngineError> {
        let bias = with_bias
            .then(|| {
                b.required(
                    &format!("{name}.bias"),
                    &[out_features],
                    Init::Zeros,
                    position,
                )
            })
            .transpose()?;
        Ok(Linear {
            weight: b.required(
                &format!("{name}.weight"),
                &[out_features, in_features],
                init,
                position,
            )?,
            bias,
            lora: b.lora_branch(name, in_features, out_features, position)?,
        })
    }

    /// A layer the checkpoint may have (an adapter's): read when there, else `weight_init`
    /// and zero bias. Never adapted by LoRA.
    pub fn optional(
        b: &mut ParamBuilder,
        name: &str,
        in_features: usize,
        out_features: usize,
        weight_init: Init,
        position: ParamPosition,
    ) -> Result<Self, EngineError> {
        Ok(Linear {
            weight: b.optional(
                &format!("{name}.weight"),
                &[out_features, in_features],
                weight_init,
                position,
            )?,
            bias: Some(b.optional(
                &format!("{name}.bias"),
                &[out_features],
                Init::Zeros,
                position,
            )?),
            lora: None,
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
            bias: Some(b.head(&format!("{name}.bias"), &[out_features], Init::Zeros)?),
            lora: b.lora_branch(name, in_features, out_features, ParamPosition::Head)?,
        })
    }

    /// `[out × in]`.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// `[out]`, when the layer has a bias.
    pub fn bias(&self) -> Option<&Param> {
        self.bias.as_ref()
    }

    /// The LoRA branch, when the layer has one.
    pub fn lora(&self) -> Option<&LoraBranch> {
        self.lora.as_ref()
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

    /// The scale (γ).
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The shift (β).
    pub fn bias(&self) -> &Param {
        &self.bias
    }

    /// The ε under the square root.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

/// RMS normalisation `name.weight` (decoders): `x / √(mean(x²) + eps) · weight`.
pub struct RmsNorm {
    weight: Param,
    eps: f64,
}

impl RmsNorm {
    pub fn required(
        b: &mut ParamBuilder,
        name: &str,
        size: usize,
        eps: f64,
        position: ParamPosition,
    ) -> Result<Self, EngineError> {
        Ok(RmsNorm {
            weight: b.required(&format!("{name}.weight"), &[size], Init::Ones, position)?,
            eps,
        })
    }

    /// The scale.
    pub fn weight(&self) -> &Param {
        &self.weight
    }

    /// The ε under the square root.
    pub fn eps(&self) -> f64 {
        self.eps
    }
}

/// Rotary position embeddings: the inverse frequency of each feature pair of a head, and the
/// factor some rope types scale cos and sin by. No parameters.
#[derive(Debug, Clone, PartialEq)]
pub struct Rotary {
    pub inv_freq: Vec<f32>,
    pub attention_scaling: f32,
}

/// An embedding table `name.weight` `[rows, dim]`.
pub struct Embedding {
    table: Param,
}

impl Embedding {
    /// An input embedding table (`word`: the token embeddings, tied to some LM heads).
    pub fn required(
        b: &mut ParamBuilder,
        name: &str,
        rows: usize,
        dim: usize,
        word: bool,
    ) -> Result<Self, EngineError> {
        Self::required_at(b, name, rows, dim, ParamPosition::EmbeddingTable { word })
    }

    /// A table trained with the parameters at `position` (DeBERTa's relative embeddings sit
    /// with the first layer).
    pub fn required_at(
        b: &mut ParamBuilder,
        name: &str,
        rows: usize,
        dim: usize,
        position: ParamPosition,
    ) -> Result<Self, EngineError> {
        Self::required_init(b, name, rows, dim, position, Init::Normal)
    }

    /// [`Embedding::required_at`] initialised by `init` in a model built from its config.
    pub fn required_init(
        b: &mut ParamBuilder,
        name: &str,
        rows: usize,
        dim: usize,
        position: ParamPosition,
        init: Init,
    ) -> Result<Self, EngineError> {
        Ok(Embedding {
            table: b.required(&format!("{name}.weight"), &[rows, dim], init, position)?,
        })
    }

    /// The parameter holding the table.
    pub fn param(&self) -> &Param {
        &self.table
    }
}
