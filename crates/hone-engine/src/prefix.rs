//! Prefix tuning (Li & Liang 2021) as PEFT's `PREFIX_TUNING` defines it for decoders: every
//! attention layer attends, before each sequence's own tokens, to `tokens` learned key and
//! value rows (its "virtual tokens"), and the sequence's tokens are numbered from `tokens` on
//! (their rotary positions), as transformers numbers the tokens that follow a cache of that
//! length. The prefix rows are used as they are (no rotation). The base model is frozen; the
//! prefix (and any saved module) trains.
//!
//! One parameter holds every layer's rows: `prompt_embeddings` `[tokens × layers·2·width]`
//! (`width` = key/value heads × head size), layer `l`'s keys in columns
//! `2l·width..(2l+1)·width` and its values in the next `width`: PEFT's own layout (its
//! `past_key_values.view(batch, tokens, layers·2, heads, head_dim)`), so the saved tensor is
//! PEFT's `prompt_embeddings` as it is. The attention runs through
//! [`crate::graph::Graph::prefix_attention`] on both graphs.
//!
//! Saved format: PEFT's — `adapter_config.json` (`peft_type: PREFIX_TUNING`,
//! `num_virtual_tokens`, `token_dim` = width, `num_attention_heads` = key/value heads,
//! `num_layers`, `num_transformer_submodules: 1`, `prefix_projection` and
//! `encoder_hidden_size` as trained) and `adapter_model.safetensors` with `prompt_embeddings`
//! (the table; for a projection the table its MLP makes, as PEFT saves it, which PEFT and Hone
//! load for inference or — Hone — to train the table further) and saved modules under
//! `base_model.model.` names.

use serde::{Deserialize, Serialize};
use serde_json::{json, Value};

use candle_core::Tensor;

use crate::graph::Graph;
use crate::lora::BaseModelRef;
use crate::models::nn::Linear;
use crate::models::Task;
use crate::ops::Activation;
use crate::params::{Param, ParamPosition};
use crate::weights::{Init, ParamBuilder};
use crate::EngineError;

/// The name of the prefix parameter (and of PEFT's saved tensor).
pub const PREFIX_PARAM: &str = "prompt_embeddings";

/// PEFT's `peft_type` for prefix tuning.
pub const PEFT_TYPE: &str = "PREFIX_TUNING";

/// The settings of a prefix-tuned model.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PrefixConfig {
    /// Virtual tokens: the learned rows every layer's attention starts with.
    pub tokens: usize,
    /// The reparameterisation (PEFT's `prefix_projection`): the table is a two-layer MLP
    /// (`tanh` between, this many hidden units) of a `[tokens × width]` embedding, which
    /// trains instead of the table itself; `None`: the table trains directly.
    #[serde(default)]
    pub projection: Option<usize>,
    /// Modules trained in full and saved with the prefix, matched as LoRA's.
    #[serde(default)]
    pub modules_to_save: Vec<String>,
}

impl PrefixConfig {
    /// Checks the settings.
    pub fn validate(&self) -> Result<(), EngineError> {
        if self.tokens == 0 || self.tokens > 512 {
            return Err(EngineError::InvalidConfig(format!(
                "prefix tuning needs 1 to 512 virtual tokens (10–30 is usual), got {}",
                self.tokens
            )));
        }
        if self.projection == Some(0) {
            return Err(EngineError::InvalidConfig(
                "the prefix projection needs at least one hidden unit (or none: 0 turns it off)"
                    .into(),
            ));
        }
        Ok(())
    }

    /// True for the parameters a prefix run trains: the prefix (or its MLP) and the saved
    /// modules.
    pub fn trains(&self, name: &str) -> bool {
        is_adapter_param(name) || crate::lora::module_saved(&self.modules_to_save, name)
    }

    /// The parameters of every layer's prefix rows, `[tokens × layers·2·width]`: the table,
    /// or (with a projection) its embedding and MLP. Read from the checkpoint when there (a
    /// PEFT prefix folder holds the table), else normal(0, initializer range), biases zero.
    /// Not PEFT's start, normal(0, 1): keys and values that large swamp a pretrained model's
    /// attention (SmolLM2-135M on Alpaca: loss 1.9 → 9.5 before the first step, 4.5 after 50
    /// steps), where small rows start it as it was (1.9, then 1.8).
    pub fn params(
        &self,
        b: &mut ParamBuilder,
        layers: usize,
        width: usize,
    ) -> Result<PrefixParams, EngineError> {
        self.validate()?;
        // Trained like a head: never frozen by a recipe, at the top's learning rate.
        let head = ParamPosition::Head;
        let out = layers * 2 * width;
        Ok(match self.projection {
            None => PrefixParams::Table(b.optional(
                PREFIX_PARAM,
                &[self.tokens, out],
                Init::Normal,
                head,
            )?),
            Some(hidden) => {
                let name = |n: &str| format!("{PROJECTION_PREFIX}{n}");
                PrefixParams::Projected {
                    embedding: b.optional(
                        &name("embedding.weight"),
                        &[self.tokens, width],
                        Init::Normal,
                        head,
                    )?,
                    first: Linear::optional(
                        b,
                        &name("transform.0"),
                        width,
                        hidden,
                        Init::Normal,
                        head,
                    )?,
                    second: Linear::optional(
                        b,
                        &name("transform.2"),
                        hidden,
                        out,
                        Init::Normal,
                        head,
                    )?,
                }
            }
        })
    }
}

/// What the prefix parameters' names start with when a projection makes the table (PEFT's
/// `prompt_encoder.embedding`, `….transform.0`, `….transform.2`).
pub const PROJECTION_PREFIX: &str = "prefix_encoder.";

/// The trained parameters behind a prefix table.
pub enum PrefixParams {
    /// The table itself, `[tokens × layers·2·width]`.
    Table(Param),
    /// `second(tanh(first(embedding)))`: PEFT's reparameterisation.
    Projected {
        embedding: Param,
        first: Linear,
        second: Linear,
    },
}

impl PrefixParams {
    /// The table as a value of graph `g`.
    pub fn table<G: Graph>(&self, g: &mut G) -> Result<G::Value, EngineError> {
        match self {
            PrefixParams::Table(p) => g.table(p),
            PrefixParams::Projected {
                embedding,
                first,
                second,
            } => {
                let e = g.table(embedding)?;
                let h = g.linear(&e, first)?;
                drop(e);
                let h = g.activation(&h, Activation::Tanh)?;
                g.linear(&h, second)
            }
        }
    }

    /// The table's values now, `[tokens × layers·2·width]`.
    pub fn value(&self) -> Result<Tensor, EngineError> {
        match self {
            PrefixParams::Table(p) => Ok(p.value()),
            PrefixParams::Projected {
                embedding,
                first,
                second,
            } => {
                let dense = |x: &Tensor, l: &Linear| {
                    crate::ops::linear(x, &l.weight().value(), l.bias().map(|b| b.value()).as_ref())
                };
                let h = dense(&embedding.value(), first)?.tanh()?;
                Ok(dense(&h, second)?)
            }
        }
    }
}

/// Every layer's prefix rows on the host: `(keys, values)`, each `[tokens × kv hidden]`.
pub type LayerRows = Vec<(Vec<f32>, Vec<f32>)>;

/// True for the prefix's parameters (the table, or its embedding and MLP).
pub fn is_adapter_param(name: &str) -> bool {
    name == PREFIX_PARAM || name.starts_with(PROJECTION_PREFIX)
}

/// Where one attention layer's prefix rows sit in the prefix table: its keys in columns
/// `key_column..+width`, its values in the next `width`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PrefixAt {
    pub tokens: usize,
    pub key_column: usize,
    pub width: usize,
}

impl PrefixAt {
    /// Layer `layer`'s place (`width` values per key or value row).
    pub fn of_layer(tokens: usize, layer: usize, width: usize) -> Self {
        PrefixAt {
            tokens,
            key_column: 2 * layer * width,
            width,
        }
    }

    /// Where the values start.
    pub fn value_column(&self) -> usize {
        self.key_column + self.width
    }
}

/// The sizes of a decoder a prefix applies to.
#[derive(Debug, Clone, Copy)]
pub struct PrefixShape {
    pub layers: usize,
    pub kv_heads: usize,
    pub head_dim: usize,
}

/// The `adapter_config.json` PEFT writes for a prefix on a `task` head over `base`.
pub fn peft_config(
    cfg: &PrefixConfig,
    shape: PrefixShape,
    task: Task,
    base: &BaseModelRef,
) -> Value {
    let width = shape.kv_heads * shape.head_dim;
    json!({
        "peft_type": PEFT_TYPE,
        "task_type": crate::lora::peft_task_type(task),
        "base_model_name_or_path": base.name,
        "revision": base.revision,
        "inference_mode": true,
        "num_virtual_tokens": cfg.tokens,
        "token_dim": width,
        "num_transformer_submodules": 1,
        "num_attention_heads": shape.kv_heads,
        "num_layers": shape.layers,
        "encoder_hidden_size": cfg.projection.unwrap_or(width),
        // The saved table is the MLP's output: PEFT reads it as the table (inference).
        "prefix_projection": cfg.projection.is_some(),
        "modules_to_save": (!cfg.modules_to_save.is_empty()).then(|| cfg.modules_to_save.clone()),
        "auto_mapping": null,
    })
}

/// The settings of a PEFT prefix adapter's `adapter_config.json`, or why Hone cannot use it.
pub fn from_peft(settings: &Value) -> Result<PrefixConfig, String> {
    let count = |key: &str| settings.get(key).and_then(Value::as_u64);
    let tokens = count("num_virtual_tokens").ok_or("num_virtual_tokens is missing")? as usize;
    if count("num_transformer_submodules").is_some_and(|n| n != 1) {
        return Err(
            "it is a prefix for an encoder–decoder model (two submodules); Hone's \
                    prefix tuning is for decoders"
                .into(),
        );
    }
    let modules_to_save = settings
        .get("modules_to_save")
        .and_then(Value::as_array)
        .map(|a| {
            a.iter()
                .filter_map(Value::as_str)
                .map(str::to_string)
                .collect()
        })
        .unwrap_or_default();
    // A projected prefix is saved as the MLP's output: it loads as a table.
    let cfg = PrefixConfig {
        tokens,
        projection: None,
        modules_to_save,
    };
    cfg.validate().map_err(|e| e.to_string())?;
    Ok(cfg)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn peft_settings_round_trip_and_bad_ones_are_named() {
        let cfg = PrefixConfig {
            tokens: 7,
            projection: None,
            modules_to_save: vec![],
        };
        let shape = PrefixShape {
            layers: 2,
            kv_heads: 2,
            head_dim: 8,
        };
        let base = BaseModelRef {
            name: "org/model".into(),
            revision: None,
        };
        let written = peft_config(&cfg, shape, Task::CausalLm, &base);
        assert_eq!(written["token_dim"], 16);
        assert_eq!(written["task_type"], "CAUSAL_LM");
        assert_eq!(written["num_layers"], 2);
        assert_eq!(from_peft(&written).unwrap(), cfg);
        let mut two = written.clone();
        two["num_transformer_submodules"] = json!(2);
        assert!(from_peft(&two).unwrap_err().contains("encoder–decoder"));
        let mut none = written;
        none["num_virtual_tokens"] = json!(0);
        assert!(from_peft(&none).unwrap_err().contains("1 to 512"));
    }
}
