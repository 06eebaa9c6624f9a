//! Bottleneck adapters (Houlsby et al. 2019; Pfeiffer et al. 2021, as AdapterHub's `adapters`
//! library places them): after a layer's output projection, `h + up(act(down(h)))` with
//! `down` `[size × hidden]` and `up` `[hidden × size]` (starting at zero, so a new adapter is
//! the identity), applied to the projection's output after its dropout and before the residual
//! sum and LayerNorm. Houlsby places one after the attention output and one after the
//! feed-forward output of every layer, Pfeiffer only the second. The base model is frozen; the
//! adapters and the head train.
//!
//! Saved format (Hone's, documented in docs/ADAPTERS.md): a folder with `hone_adapter.json`
//! ([`AdapterFile`]: the settings, the head's PEFT-style `task_type`, the base model) and
//! `adapter_model.safetensors` (the adapters and the saved modules, each named
//! `base_model.model.` and its parameter name, as PEFT names tensors), plus
//! `head_config.json`, the tokenizer and a model card, like a LoRA adapter folder.

use serde::{Deserialize, Serialize};

use crate::graph::Graph;
use crate::models::nn::Linear;
use crate::ops::Activation;
use crate::params::ParamPosition;
use crate::weights::{Init, ParamBuilder};
use crate::EngineError;

/// The settings file of a bottleneck adapter folder.
pub const ADAPTER_FILE: &str = "hone_adapter.json";

/// Where a layer's adapters sit.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Placement {
    /// After the attention output and after the feed-forward output (two per layer).
    #[default]
    Houlsby,
    /// After the feed-forward output only (one per layer).
    Pfeiffer,
}

impl std::str::FromStr for Placement {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().as_str() {
            "houlsby" => Ok(Placement::Houlsby),
            "pfeiffer" => Ok(Placement::Pfeiffer),
            other => Err(format!(
                "unknown adapter placement '{other}': use houlsby or pfeiffer"
            )),
        }
    }
}

/// The settings of a model with bottleneck adapters.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BottleneckConfig {
    /// The adapters' inner width.
    pub size: usize,
    pub placement: Placement,
    /// `relu`, `gelu`, `silu` (swish) or `tanh`.
    pub activation: String,
    /// Modules trained in full and saved with the adapters (the head), matched as LoRA's.
    pub modules_to_save: Vec<String>,
}

impl BottleneckConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<Activation, EngineError> {
        if self.size == 0 {
            return Err(EngineError::InvalidConfig(
                "the adapter size must be at least 1".into(),
            ));
        }
        Activation::from_config(&self.activation)
            .filter(|a| !matches!(a, Activation::GeluTanh))
            .or(match self.activation.as_str() {
                "swish" => Some(Activation::Silu),
                "gelu_new" => Some(Activation::GeluTanh),
                _ => None,
            })
            .ok_or_else(|| {
                EngineError::InvalidConfig(format!(
                    "unknown adapter activation '{}': use relu, gelu, silu or tanh",
                    self.activation
                ))
            })
    }

    /// True for the parameters an adapter run trains: the adapters and the saved modules.
    pub fn trains(&self, name: &str) -> bool {
        is_adapter_param(name) || crate::lora::module_saved(&self.modules_to_save, name)
    }

    /// True when an adapter follows the attention output projection.
    pub fn after_attention(&self) -> bool {
        self.placement == Placement::Houlsby
    }
}

/// True for a bottleneck adapter's tensor (`….adapter.down.weight` and the like).
pub fn is_adapter_param(name: &str) -> bool {
    name.contains(".adapter.down.") || name.contains(".adapter.up.")
}

/// One bottleneck adapter: `h + up(act(down(h)))`.
pub struct Bottleneck {
    down: Linear,
    up: Linear,
    activation: Activation,
}

impl Bottleneck {
    /// The adapter after the linear layer `module` (`module.adapter.down`, `….up`): read from
    /// the checkpoint (an adapter folder) when there, else `down` normal(0, initializer range)
    /// and `up` zero.
    pub fn build(
        b: &mut ParamBuilder,
        module: &str,
        hidden: usize,
        cfg: &BottleneckConfig,
        position: ParamPosition,
    ) -> Result<Self, EngineError> {
        let activation = cfg.validate()?;
        let name = |part: &str| format!("{module}.adapter.{part}");
        Ok(Bottleneck {
            down: Linear::optional(b, &name("down"), hidden, cfg.size, Init::Normal, position)?,
            up: Linear::optional(b, &name("up"), cfg.size, hidden, Init::Zeros, position)?,
            activation,
        })
    }

    /// `h + up(act(down(h)))`.
    pub fn forward<G: Graph>(&self, g: &mut G, h: G::Value) -> Result<G::Value, EngineError> {
        let down = g.linear(&h, &self.down)?;
        let act = g.activation(&down, self.activation)?;
        drop(down);
        let up = g.linear(&act, &self.up)?;
        drop(act);
        g.add_scaled(h, &up, 1.0)
    }
}

/// `hone_adapter.json`: what a bottleneck adapter folder holds and applies to.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct AdapterFile {
    /// Always `bottleneck`.
    pub method: String,
    #[serde(flatten)]
    pub config: BottleneckConfig,
    /// The head, as PEFT's `task_type` names it (`SEQ_CLS`, `TOKEN_CLS`, `QUESTION_ANS`;
    /// none for multiple choice).
    pub task_type: Option<String>,
    pub base_model_name_or_path: String,
    pub revision: Option<String>,
}
