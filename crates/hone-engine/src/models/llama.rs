//! Llama and the decoders with its layout (SmolLM/SmolLM2, Mistral, Qwen2/Qwen2.5):
//! pre-RMSNorm layers of grouped-query causal attention with rotary positions and a SwiGLU
//! feed-forward, a final RMSNorm and the language-model head (`lm_head`, or the word
//! embeddings when tied). Tensor names as `LlamaForCausalLM` saves them.

use serde::Deserialize;
use serde_json::Value;

use super::family::{activation, DropoutKeys, Family, FamilyDescriptor, Positions};
use super::heads::{Head, Task};
use super::nn::{Embedding, Linear, RmsNorm, Rotary};
use super::spec::{Dropouts, EncoderConfig};
use crate::graph::{Graph, Heads, TokenIds};
use crate::ops::Activation;
use crate::params::ParamPosition;
use crate::prefix::{PrefixAt, PrefixParams};
use crate::weights::{Init, ParamBuilder};
use crate::EngineError;

/// Llama-layout decoders: `model_type` `llama`, `mistral`, `qwen2`; tensors under `model.`.
pub const DESCRIPTOR: FamilyDescriptor = FamilyDescriptor {
    family: Family::Llama,
    name: "Llama",
    model_types: &["llama", "mistral", "qwen2"],
    class_prefixes: &[
        ("llama", "Llama"),
        ("mistral", "Mistral"),
        ("qwen2", "Qwen2"),
    ],
    tensor_prefix: "model",
    tasks: &[Task::CausalLm],
    // PEFT's defaults for these families.
    lora_targets: &["q_proj", "v_proj"],
    tokenizer_loads_from: &["tokenizer.json"],
    tokenizer_files: &[
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "chat_template.jinja",
        "generation_config.json",
        "vocab.json",
        "merges.txt",
        "tokenizer.model",
    ],
    positions: Positions::FromZero,
    // Only attention dropout is configurable in these configs.
    dropout_keys: DropoutKeys {
        hidden: "hidden_dropout",
        attention: "attention_dropout",
        classifier: "classifier_dropout",
        classifier_defaults_to_hidden: true,
    },
    encoder_config: read_config,
};

/// What a decoder adds to the shared dimensions of [`EncoderConfig`].
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct DecoderConfig {
    /// Key/value heads (grouped-query attention when fewer than the query heads).
    pub kv_heads: usize,
    pub head_dim: usize,
    pub rope: RopeConfig,
    /// The language-model head is the word embedding table.
    pub tie_word_embeddings: bool,
    /// Biases on the query, key and value projections (Qwen2).
    pub attention_bias: bool,
    /// A bias on the attention's output projection too (Llama's `attention_bias` puts one
    /// there; Qwen2's biases stop at the values).
    #[serde(default)]
    pub output_bias: bool,
    /// Biases on the feed-forward projections.
    pub mlp_bias: bool,
    pub bos_token_id: Option<u32>,
    /// The tokens that end a generation.
    pub eos_token_ids: Vec<u32>,
}

/// Rotary embedding settings: base and the scaling rule.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct RopeConfig {
    pub theta: f64,
    pub scaling: RopeScaling,
}

/// How the rotary frequencies are scaled for longer contexts (`rope_type`).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub enum RopeScaling {
    /// `default`: none.
    None,
    /// `linear`: positions divided by `factor`.
    Linear { factor: f64 },
    /// `llama3`: low frequencies divided by `factor`, high ones kept, a smooth band between.
    Llama3 {
        factor: f64,
        low_freq_factor: f64,
        high_freq_factor: f64,
        original_max_position_embeddings: f64,
    },
}

impl DecoderConfig {
    /// The rotary inverse frequencies of one head (`transformers`' `rope_init_fn`).
    pub fn rotary(&self) -> Rotary {
        let d = self.head_dim;
        let base: Vec<f64> = (0..d / 2)
            .map(|i| 1.0 / self.rope.theta.powf((2 * i) as f64 / d as f64))
            .collect();
        let inv_freq = match &self.rope.scaling {
            RopeScaling::None => base,
            RopeScaling::Linear { factor } => base.iter().map(|f| f / factor).collect(),
            RopeScaling::Llama3 {
                factor,
                low_freq_factor,
                high_freq_factor,
                original_max_position_embeddings: old,
            } => {
                let low_wavelen = old / low_freq_factor;
                let high_wavelen = old / high_freq_factor;
                base.iter()
                    .map(|&f| {
                        let wavelen = 2.0 * std::f64::consts::PI / f;
                        if wavelen > low_wavelen {
                            f / factor
                        } else if wavelen < high_wavelen {
                            f
                        } else {
                            let smooth = (old / wavelen - low_freq_factor)
                                / (high_freq_factor - low_freq_factor);
                            (1.0 - smooth) * f / factor + smooth * f
                        }
                    })
                    .collect()
            }
        };
        Rotary {
            inv_freq: inv_freq.into_iter().map(|f| f as f32).collect(),
            attention_scaling: 1.0,
        }
    }
}

/// The config.json keys of Llama-layout decoders, with `transformers`' defaults.
#[derive(Debug, Deserialize)]
struct LlamaLayoutConfig {
    model_type: String,
    vocab_size: Option<usize>,
    hidden_size: usize,
    intermediate_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    num_key_value_heads: Option<usize>,
    head_dim: Option<usize>,
    hidden_act: Option<String>,
    max_position_embeddings: Option<usize>,
    initializer_range: Option<f64>,
    rms_norm_eps: Option<f64>,
    pad_token_id: Option<u32>,
    bos_token_id: Option<u32>,
    eos_token_id: Option<Value>,
    tie_word_embeddings: Option<bool>,
    rope_theta: Option<f64>,
    /// transformers 4's scaling dict.
    rope_scaling: Option<Value>,
    /// transformers 5's: `rope_type`, `rope_theta` and the scaling keys in one dict.
    rope_parameters: Option<Value>,
    attention_bias: Option<bool>,
    attention_dropout: Option<f64>,
    mlp_bias: Option<bool>,
    use_sliding_window: Option<bool>,
}

fn read_config(raw: &Value) -> Result<EncoderConfig, serde_json::Error> {
    use serde::de::Error;
    let c = LlamaLayoutConfig::deserialize(raw)?;
    let heads = c.num_attention_heads;
    let kv_heads = c.num_key_value_heads.unwrap_or(heads);
    if heads == 0 || kv_heads == 0 || !heads.is_multiple_of(kv_heads) {
        return Err(Error::custom(format!(
            "{heads} attention heads cannot share {kv_heads} key/value heads"
        )));
    }
    if c.use_sliding_window == Some(true) {
        return Err(Error::custom(
            "sliding-window attention is not supported (set use_sliding_window false)",
        ));
    }
    let head_dim = c.head_dim.unwrap_or(c.hidden_size / heads.max(1));
    if head_dim == 0 || !head_dim.is_multiple_of(2) {
        return Err(Error::custom(format!(
            "rotary embeddings need an even head size, not {head_dim}"
        )));
    }
    let eos_token_ids = match &c.eos_token_id {
        None | Some(Value::Null) => Vec::new(),
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as u32))
            .collect(),
        Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
    };
    let rope = rope_config(&c)?;
    Ok(EncoderConfig {
        vocab_size: c.vocab_size.unwrap_or(32_000),
        hidden_size: c.hidden_size,
        num_layers: c.num_hidden_layers,
        num_heads: heads,
        intermediate_size: c.intermediate_size,
        activation: activation(Some(c.hidden_act.as_deref().unwrap_or("silu")))?,
        layer_norm_eps: c.rms_norm_eps.unwrap_or(1e-6),
        max_position_embeddings: c.max_position_embeddings.unwrap_or(2048),
        type_vocab_size: 1,
        pad_token_id: c
            .pad_token_id
            .or(eos_token_ids.first().copied())
            .unwrap_or(0),
        initializer_range: c.initializer_range.unwrap_or(0.02),
        dropout: Dropouts {
            hidden: 0.0,
            attention: c.attention_dropout.unwrap_or(0.0),
            classifier: 0.0,
            answer: 0.0,
        },
        sinusoidal_positions: false,
        deberta: None,
        t5: None,
        decoder: Some(DecoderConfig {
            kv_heads,
            head_dim,
            rope,
            tie_word_embeddings: c.tie_word_embeddings.unwrap_or(false),
            // Qwen2 always has query/key/value biases and no key for them.
            attention_bias: c.attention_bias.unwrap_or(c.model_type == "qwen2"),
            output_bias: c.model_type == "llama" && c.attention_bias == Some(true),
            mlp_bias: c.mlp_bias.unwrap_or(false),
            bos_token_id: c.bos_token_id,
            eos_token_ids,
        }),
    })
}

fn rope_config(c: &LlamaLayoutConfig) -> Result<RopeConfig, serde_json::Error> {
    use serde::de::Error;
    let params = c.rope_parameters.as_ref().or(c.rope_scaling.as_ref());
    let number = |key: &str| params.and_then(|p| p.get(key)).and_then(|v| v.as_f64());
    let theta = number("rope_theta").or(c.rope_theta).unwrap_or(10_000.0);
    let kind = params
        .and_then(|p| p.get("rope_type").or_else(|| p.get("type")))
        .and_then(|v| v.as_str())
        .unwrap_or("default");
    let need = |key: &str| {
        number(key).ok_or_else(|| Error::custom(format!("rope type '{kind}' needs '{key}'")))
    };
    let scaling = match kind {
        "default" => RopeScaling::None,
        "linear" => RopeScaling::Linear {
            factor: need("factor")?,
        },
        "llama3" => RopeScaling::Llama3 {
            factor: need("factor")?,
            low_freq_factor: need("low_freq_factor")?,
            high_freq_factor: need("high_freq_factor")?,
            original_max_position_embeddings: need("original_max_position_embeddings")?,
        },
        other => {
            return Err(Error::custom(format!(
                "rope type '{other}' is not supported (default, linear and llama3 are)"
            )))
        }
    };
    Ok(RopeConfig { theta, scaling })
}

/// One decoder layer: `x + attn(norm(x))`, then `x + mlp(norm(x))`.
struct DecoderLayer {
    input_norm: RmsNorm,
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
    post_attention_norm: RmsNorm,
    gate: Linear,
    up: Linear,
    down: Linear,
}

/// Word embeddings, the layers and the final norm of a Llama-layout decoder.
pub struct LlamaDecoder {
    embed: Embedding,
    layers: Vec<DecoderLayer>,
    norm: RmsNorm,
    heads: Heads,
    head_dim: usize,
    rotary: Rotary,
    activation: Activation,
    attention_dropout: f64,
    /// Prefix tuning: what makes every layer's learned key/value rows, and how many
    /// (`crate::prefix`).
    prefix: Option<(PrefixParams, usize)>,
}

impl LlamaDecoder {
    /// Builds `model.embed_tokens`, `model.layers.N.*` and `model.norm`.
    pub fn build(b: &mut ParamBuilder, cfg: &EncoderConfig) -> Result<Self, EngineError> {
        let dec = cfg.decoder.as_ref().ok_or_else(|| {
            EngineError::InvalidConfig("a Llama-layout model needs its decoder settings".into())
        })?;
        if b.bottleneck().is_some() {
            return Err(EngineError::InvalidConfig(
                "bottleneck adapters are built for encoders; use LoRA on a decoder".into(),
            ));
        }
        let h = cfg.hidden_size;
        let (q_out, kv_out) = (cfg.num_heads * dec.head_dim, dec.kv_heads * dec.head_dim);
        let embed = Embedding::required(b, "model.embed_tokens", cfg.vocab_size, h, true)?;
        let mut layers = Vec::with_capacity(cfg.num_layers);
        for i in 0..cfg.num_layers {
            let pos = ParamPosition::Layer(i);
            let name = |n: &str| format!("model.layers.{i}.{n}");
            let proj = |b: &mut ParamBuilder, n: &str, inp, out, bias| {
                Linear::projection(b, &name(n), inp, out, pos, bias)
            };
            let norm = |b: &mut ParamBuilder, n: &str| {
                RmsNorm::required(b, &name(n), h, cfg.layer_norm_eps, pos)
            };
            let (ab, mb, f) = (dec.attention_bias, dec.mlp_bias, cfg.intermediate_size);
            layers.push(DecoderLayer {
                input_norm: norm(b, "input_layernorm")?,
                q: proj(b, "self_attn.q_proj", h, q_out, ab)?,
                k: proj(b, "self_attn.k_proj", h, kv_out, ab)?,
                v: proj(b, "self_attn.v_proj", h, kv_out, ab)?,
                o: proj(b, "self_attn.o_proj", q_out, h, dec.output_bias)?,
                post_attention_norm: norm(b, "post_attention_layernorm")?,
                gate: proj(b, "mlp.gate_proj", h, f, mb)?,
                up: proj(b, "mlp.up_proj", h, f, mb)?,
                down: proj(b, "mlp.down_proj", f, h, mb)?,
            });
        }
        let top = ParamPosition::Layer(cfg.num_layers.saturating_sub(1));
        let norm = RmsNorm::required(b, "model.norm", h, cfg.layer_norm_eps, top)?;
        let prefix = match b.virtual_prefix().cloned() {
            Some(p) => Some((p.params(b, cfg.num_layers, kv_out)?, p.tokens)),
            None => None,
        };
        Ok(LlamaDecoder {
            embed,
            layers,
            norm,
            heads: Heads {
                query: cfg.num_heads,
                key_value: dec.kv_heads,
                causal: true,
            },
            head_dim: dec.head_dim,
            rotary: dec.rotary(),
            activation: cfg.activation,
            attention_dropout: cfg.dropout.attention,
            prefix,
        })
    }

    /// Normalised hidden states `[tokens × hidden]` of the last layer.
    pub fn forward<G: Graph>(&self, g: &mut G) -> Result<G::Value, EngineError> {
        let mut x = g.embed(&[(self.embed.param(), TokenIds::Words)])?;
        let width = self.heads.key_value * self.head_dim;
        // Every layer's prefix rows, made once a pass (a cached pass has them in its cache).
        let prefix = match &self.prefix {
            Some((params, tokens)) if !g.continues_cache() => Some((params.table(g)?, *tokens)),
            _ => None,
        };
        for (i, layer) in self.layers.iter().enumerate() {
            let h = g.rms_norm(&x, &layer.input_norm)?;
            let q = g.linear(&h, &layer.q)?;
            let k = g.linear(&h, &layer.k)?;
            let v = g.linear(&h, &layer.v)?;
            drop(h);
            let q = g.rotary(q, self.heads.query, &self.rotary)?;
            let k = g.rotary(k, self.heads.key_value, &self.rotary)?;
            let (heads, p) = (self.heads, self.attention_dropout);
            let context = match &prefix {
                Some((table, tokens)) => {
                    let at = PrefixAt::of_layer(*tokens, i, width);
                    g.prefix_attention(&q, &k, &v, heads, p, table, at)?
                }
                None => g.attention(&q, &k, &v, heads, p)?,
            };
            drop((q, k, v));
            let attended = g.linear(&context, &layer.o)?;
            drop(context);
            x = g.dropout_add(attended, 0.0, &x)?;
            let h = g.rms_norm(&x, &layer.post_attention_norm)?;
            let gate = g.linear(&h, &layer.gate)?;
            let up = g.linear(&h, &layer.up)?;
            drop(h);
            let inner = g.gated(&gate, &up, self.activation)?;
            drop((gate, up));
            let out = g.linear(&inner, &layer.down)?;
            drop(inner);
            x = g.dropout_add(out, 0.0, &x)?;
        }
        g.rms_norm(&x, &self.norm)
    }

    /// The word embedding table.
    pub fn embeddings(&self) -> &Embedding {
        &self.embed
    }

    /// Size of one attention head.
    pub fn head_dim(&self) -> usize {
        self.head_dim
    }

    /// The prefix table now (`[tokens × layers·2·kv hidden]`, the MLP's output for a
    /// projected prefix); `None` without a prefix.
    pub fn prefix_table(&self) -> Result<Option<candle_core::Tensor>, EngineError> {
        self.prefix.as_ref().map(|(p, _)| p.value()).transpose()
    }

    /// Prefix tuning's rows of every layer (a generation's first cached tokens); `None`
    /// without a prefix.
    pub fn prefix_rows(&self) -> Result<Option<crate::prefix::LayerRows>, EngineError> {
        let Some(table) = self.prefix_table()? else {
            return Ok(None);
        };
        let width = self.heads.key_value * self.head_dim;
        let values: Vec<Vec<f32>> = table.to_dtype(candle_core::DType::F32)?.to_vec2()?;
        let rows = |column: usize| -> Vec<f32> {
            values
                .iter()
                .flat_map(|row| row[column..column + width].iter().copied())
                .collect()
        };
        Ok(Some(
            (0..self.layers.len())
                .map(|i| {
                    let at = PrefixAt::of_layer(values.len(), i, width);
                    (rows(at.key_column), rows(at.value_column()))
                })
                .collect(),
        ))
    }

    /// The virtual tokens of a prefix (0 without one): the sequence's own tokens are
    /// numbered after them.
    pub fn prefix_tokens(&self) -> usize {
        self.prefix.as_ref().map_or(0, |(_, n)| *n)
    }
}

/// The head of `LlamaForCausalLM` (and its relatives): `lm_head`, or the word embeddings
/// when the config ties them.
pub fn head(
    b: &mut ParamBuilder,
    cfg: &EncoderConfig,
    task: Task,
    decoder: &LlamaDecoder,
) -> Result<Head, EngineError> {
    if task != Task::CausalLm {
        return Err(super::heads::unsupported(&DESCRIPTOR, task));
    }
    let tied = cfg.decoder.as_ref().is_some_and(|d| d.tie_word_embeddings);
    let weight = if tied {
        decoder.embeddings().param().clone()
    } else {
        b.head(
            "lm_head.weight",
            &[cfg.vocab_size, cfg.hidden_size],
            Init::Normal,
        )?
    };
    Ok(Head::LanguageModel {
        weight,
        task: Task::CausalLm,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(extra: Value) -> EncoderConfig {
        let mut raw = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
            "num_key_value_heads": 2});
        for (k, v) in extra.as_object().into_iter().flatten() {
            raw[k] = v.clone();
        }
        read_config(&raw).unwrap()
    }

    #[test]
    fn rope_settings_read_from_either_transformers_layout() {
        let old = config(json!({"rope_theta": 500000.0}));
        let new =
            config(json!({"rope_parameters": {"rope_type": "default", "rope_theta": 500000.0}}));
        assert_eq!(old.decoder, new.decoder);
        let d = old.decoder.unwrap();
        assert_eq!((d.kv_heads, d.head_dim), (2, 2));
        assert_eq!(d.rotary().inv_freq, vec![1.0]);
        let scaled = config(json!({"rope_scaling": {"rope_type": "linear", "factor": 2.0}}));
        assert_eq!(scaled.decoder.unwrap().rotary().inv_freq, vec![0.5]);
        let err = read_config(&json!({"model_type": "llama", "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
            "rope_scaling": {"rope_type": "yarn", "factor": 2.0}}))
        .unwrap_err()
        .to_string();
        assert!(err.contains("yarn"), "{err}");
    }

    #[test]
    fn qwen2_has_attention_biases_and_eos_lists_are_read() {
        let mut raw = json!({"model_type": "qwen2", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
            "eos_token_id": [3, 4]});
        let d = read_config(&raw).unwrap().decoder.unwrap();
        assert!(d.attention_bias && !d.output_bias);
        assert_eq!(d.eos_token_ids, vec![3, 4]);
        // Llama's attention_bias covers the output projection too.
        let llama = json!({"model_type": "llama", "vocab_size": 10, "hidden_size": 8,
            "intermediate_size": 16, "num_hidden_layers": 1, "num_attention_heads": 4,
            "attention_bias": true});
        let d = read_config(&llama).unwrap().decoder.unwrap();
        assert!(d.attention_bias && d.output_bias);
        raw["num_key_value_heads"] = json!(3);
        assert!(read_config(&raw).is_err());
    }
}
