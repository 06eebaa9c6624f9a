//! T5, Flan-T5 and mT5: an encoder–decoder of pre-RMS-norm layers (T5's layer norm scales
//! and does not shift), attention with unscaled scores and a learned relative position bias
//! (made by each stack's first layer, shared by all its layers; bidirectional in the encoder,
//! looking back in the decoder), cross-attention from the decoder to the encoder's output,
//! a ReLU (v1.0) or gated-GELU (v1.1, Flan-T5, mT5) feed-forward, and the language-model head
//! on the decoder (the shared embeddings, or `lm_head`). Tensor names as
//! `T5ForConditionalGeneration` saves them. The encoder runs over the batch's source stream
//! ([`crate::graph::Stream::Source`]), the decoder over its own tokens.

use serde::Deserialize;
use serde_json::Value;

use super::family::{activation, DropoutKeys, Family, FamilyDescriptor, Positions};
use super::heads::{Head, Task};
use super::nn::{Embedding, Linear, RmsNorm};
use super::spec::{Dropouts, EncoderConfig};
use crate::graph::{BiasBuckets, BiasedAttention, Graph, PositionBias, Stream, TokenIds};
use crate::ops::Activation;
use crate::params::{Param, ParamPosition};
use crate::weights::{Init, ParamBuilder};
use crate::EngineError;

/// T5-layout encoder–decoders: `model_type` `t5`, `mt5`; tensors under their own names
/// (`shared`, `encoder.`, `decoder.`, `lm_head`).
pub const DESCRIPTOR: FamilyDescriptor = FamilyDescriptor {
    family: Family::T5,
    name: "T5",
    model_types: &["t5", "mt5"],
    class_prefixes: &[("t5", "T5"), ("mt5", "MT5")],
    tensor_prefix: "",
    tasks: &[Task::Text2Text],
    // PEFT's default for T5.
    lora_targets: &["q", "v"],
    tokenizer_loads_from: &["tokenizer.json"],
    tokenizer_files: &[
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "generation_config.json",
        "spiece.model",
    ],
    positions: Positions::FromZero,
    // One dropout rate for everything.
    dropout_keys: DropoutKeys {
        hidden: "dropout_rate",
        attention: "dropout_rate",
        classifier: "classifier_dropout",
        classifier_defaults_to_hidden: true,
    },
    encoder_config: read_config,
};

/// What an encoder–decoder adds to the shared dimensions of [`EncoderConfig`] (where
/// `num_layers` counts the encoder's and the decoder's layers together).
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct T5Config {
    /// Size of one attention head (`d_kv`).
    pub head_dim: usize,
    pub encoder_layers: usize,
    pub decoder_layers: usize,
    /// `relative_attention_num_buckets`.
    pub buckets: usize,
    /// `relative_attention_max_distance`.
    pub max_distance: usize,
    /// A gated feed-forward (`feed_forward_proj` `gated-…`: `wi_0`, `wi_1`).
    pub gated: bool,
    /// The decoder's output is scaled by `d_model^-0.5` before the head (T5 v1.0, whose
    /// head is the shared embedding table).
    pub scale_decoder_outputs: bool,
    /// The token the decoder starts from (`decoder_start_token_id`, the padding token).
    pub decoder_start_token_id: u32,
    /// The tokens that end a generation.
    pub eos_token_ids: Vec<u32>,
    /// `initializer_factor`: scales every initial weight of a model built from its config.
    #[serde(default = "unit")]
    pub init_factor: f64,
}

fn unit() -> f64 {
    1.0
}

/// The config.json keys of T5-layout models, with `transformers`' defaults.
#[derive(Debug, Deserialize)]
struct T5LayoutConfig {
    vocab_size: Option<usize>,
    d_model: Option<usize>,
    d_kv: Option<usize>,
    d_ff: Option<usize>,
    num_layers: Option<usize>,
    num_decoder_layers: Option<usize>,
    num_heads: Option<usize>,
    relative_attention_num_buckets: Option<usize>,
    relative_attention_max_distance: Option<usize>,
    dropout_rate: Option<f64>,
    layer_norm_epsilon: Option<f64>,
    initializer_factor: Option<f64>,
    feed_forward_proj: Option<String>,
    tie_word_embeddings: Option<bool>,
    /// transformers 5 writes this (and always `tie_word_embeddings: true`).
    scale_decoder_outputs: Option<bool>,
    pad_token_id: Option<u32>,
    eos_token_id: Option<Value>,
    decoder_start_token_id: Option<u32>,
    n_positions: Option<usize>,
}

fn read_config(raw: &Value) -> Result<EncoderConfig, serde_json::Error> {
    use serde::de::Error;
    let c = T5LayoutConfig::deserialize(raw)?;
    let d_model = c.d_model.unwrap_or(512);
    let heads = c.num_heads.unwrap_or(8);
    let encoder_layers = c.num_layers.unwrap_or(6);
    let proj = c.feed_forward_proj.as_deref().unwrap_or("relu");
    let (gated, act) = match proj.split('-').collect::<Vec<_>>()[..] {
        [act] => (false, act),
        ["gated", act] => (true, act),
        _ => {
            return Err(Error::custom(format!(
                "feed_forward_proj '{proj}' is not 'ACT' or 'gated-ACT'"
            )))
        }
    };
    // transformers reads gated-gelu as the tanh approximation.
    let act = if proj == "gated-gelu" {
        "gelu_new"
    } else {
        act
    };
    let pad = c.pad_token_id.unwrap_or(0);
    let eos_token_ids = match &c.eos_token_id {
        None => vec![1],
        Some(Value::Array(ids)) => ids
            .iter()
            .filter_map(|v| v.as_u64().map(|v| v as u32))
            .collect(),
        Some(v) => v.as_u64().map(|v| vec![v as u32]).unwrap_or_default(),
    };
    let dropout = c.dropout_rate.unwrap_or(0.1);
    let t5 = T5Config {
        head_dim: c.d_kv.unwrap_or(64),
        encoder_layers,
        decoder_layers: c.num_decoder_layers.unwrap_or(encoder_layers),
        buckets: c.relative_attention_num_buckets.unwrap_or(32),
        max_distance: c.relative_attention_max_distance.unwrap_or(128),
        gated,
        scale_decoder_outputs: c
            .scale_decoder_outputs
            .unwrap_or(c.tie_word_embeddings != Some(false)),
        decoder_start_token_id: c.decoder_start_token_id.unwrap_or(pad),
        eos_token_ids,
        init_factor: c.initializer_factor.unwrap_or(1.0),
    };
    if heads == 0 || t5.head_dim == 0 || t5.buckets < 4 {
        return Err(Error::custom(format!(
            "{heads} heads of {} features with {} position buckets cannot attend",
            t5.head_dim, t5.buckets
        )));
    }
    Ok(EncoderConfig {
        vocab_size: c.vocab_size.unwrap_or(32_128),
        hidden_size: d_model,
        num_layers: t5.encoder_layers + t5.decoder_layers,
        num_heads: heads,
        intermediate_size: c.d_ff.unwrap_or(2048),
        activation: activation(Some(act))?,
        layer_norm_eps: c.layer_norm_epsilon.unwrap_or(1e-6),
        max_position_embeddings: c.n_positions.unwrap_or(512),
        type_vocab_size: 1,
        pad_token_id: pad,
        // Unused: every T5 layer has its own (`T5Init`).
        initializer_range: c.initializer_factor.unwrap_or(1.0) / (d_model as f64).sqrt(),
        dropout: Dropouts {
            hidden: dropout,
            attention: dropout,
            classifier: 0.0,
            answer: 0.0,
        },
        sinusoidal_positions: false,
        decoder: None,
        deberta: None,
        t5: Some(t5),
    })
}

/// The four projections of one attention (no biases).
struct Attention {
    q: Linear,
    k: Linear,
    v: Linear,
    o: Linear,
}

impl Attention {
    fn build(
        b: &mut ParamBuilder,
        name: &str,
        init: &T5Init,
        pos: ParamPosition,
    ) -> Result<Self, EngineError> {
        let (hidden, inner) = (init.d_model, init.inner);
        let proj = |b: &mut ParamBuilder, n: &str, i, o, std| {
            Linear::projection_init(b, &format!("{name}.{n}"), i, o, pos, false, std)
        };
        Ok(Attention {
            q: proj(b, "q", hidden, inner, init.query())?,
            k: proj(b, "k", hidden, inner, init.of(hidden))?,
            v: proj(b, "v", hidden, inner, init.of(hidden))?,
            o: proj(b, "o", inner, hidden, init.of(inner))?,
        })
    }
}

/// transformers' T5 initialisation (`T5PreTrainedModel._init_weights`): normal with a
/// standard deviation of `factor · fan_in^-0.5` per layer (the queries' `(d_model · d_kv)^-0.5`,
/// the embeddings' `factor`), for a model built from its config.
struct T5Init {
    factor: f64,
    d_model: usize,
    d_kv: usize,
    inner: usize,
}

impl T5Init {
    /// `factor · n^-0.5`.
    fn of(&self, n: usize) -> Init {
        Init::NormalStd(self.factor / (n as f64).sqrt())
    }

    fn query(&self) -> Init {
        self.of(self.d_model * self.d_kv)
    }
}

/// `wo(act(wi(x)))`, or `wo(act(wi_0(x)) · wi_1(x))` when gated.
struct FeedForward {
    wi: Linear,
    /// The gated form's second input projection (`wi_1`; `wi` is then `wi_0`).
    wi_1: Option<Linear>,
    wo: Linear,
}

/// One layer: its sub-layers (self-attention, the decoder's cross-attention, feed-forward),
/// each a pre-norm residual block.
struct Block {
    self_norm: RmsNorm,
    self_attention: Attention,
    /// The decoder's cross-attention and its norm.
    cross: Option<(RmsNorm, Attention)>,
    ff_norm: RmsNorm,
    ff: FeedForward,
}

/// One stack: its layers, the position bias its first layer owns and the final norm.
struct Stack {
    blocks: Vec<Block>,
    bias: Param,
    buckets: BiasBuckets,
    norm: RmsNorm,
}

/// What a stack's cross-attention reads: nothing (the encoder), the encoder's output, or a
/// generation cache's keys and values of it.
#[derive(Clone, Copy)]
enum Source<'a, V> {
    Encoder,
    Encoded(&'a V),
    Cached,
}

/// The shared embeddings, the encoder and the decoder of a T5-layout model.
pub struct T5Model {
    shared: Embedding,
    encoder: Stack,
    decoder: Stack,
    heads: usize,
    activation: Activation,
    dropout: f64,
    /// `d_model^-0.5` when the decoder's output is scaled before the head.
    output_scale: Option<f64>,
}

impl T5Model {
    /// Builds `shared`, `encoder.*` and `decoder.*`.
    pub fn build(b: &mut ParamBuilder, cfg: &EncoderConfig) -> Result<Self, EngineError> {
        let t5 = cfg.t5.as_ref().ok_or_else(|| {
            EngineError::InvalidConfig(
                "a T5-layout model needs its encoder–decoder settings".into(),
            )
        })?;
        if b.bottleneck().is_some() || b.virtual_prefix().is_some() {
            return Err(EngineError::InvalidConfig(
                "bottleneck adapters and prefix tuning are not built for T5; use LoRA".into(),
            ));
        }
        let h = cfg.hidden_size;
        let shared = Embedding::required_init(
            b,
            "shared",
            cfg.vocab_size,
            h,
            ParamPosition::EmbeddingTable { word: true },
            Init::NormalStd(t5.init_factor),
        )?;
        let encoder = Self::stack(b, cfg, t5, false)?;
        let decoder = Self::stack(b, cfg, t5, true)?;
        Ok(T5Model {
            shared,
            encoder,
            decoder,
            heads: cfg.num_heads,
            activation: cfg.activation,
            dropout: cfg.dropout.hidden,
            output_scale: t5.scale_decoder_outputs.then(|| 1.0 / (h as f64).sqrt()),
        })
    }

    fn stack(
        b: &mut ParamBuilder,
        cfg: &EncoderConfig,
        t5: &T5Config,
        decoder: bool,
    ) -> Result<Stack, EngineError> {
        let (h, inner, f) = (
            cfg.hidden_size,
            cfg.num_heads * t5.head_dim,
            cfg.intermediate_size,
        );
        let init = T5Init {
            factor: t5.init_factor,
            d_model: h,
            d_kv: t5.head_dim,
            inner,
        };
        let (stack, layers, first) = if decoder {
            ("decoder", t5.decoder_layers, t5.encoder_layers)
        } else {
            ("encoder", t5.encoder_layers, 0)
        };
        let eps = cfg.layer_norm_eps;
        let mut blocks = Vec::with_capacity(layers);
        let mut bias = None;
        for i in 0..layers {
            // Depth counts the encoder's layers, then the decoder's.
            let pos = ParamPosition::Layer(first + i);
            let layer = |n: usize| format!("{stack}.block.{i}.layer.{n}");
            let norm = |b: &mut ParamBuilder, n: usize| {
                RmsNorm::required(b, &format!("{}.layer_norm", layer(n)), h, eps, pos)
            };
            let self_name = format!("{}.SelfAttention", layer(0));
            if i == 0 {
                bias = Some(b.required(
                    &format!("{self_name}.relative_attention_bias.weight"),
                    &[t5.buckets, cfg.num_heads],
                    init.of(h),
                    pos,
                )?);
            }
            let self_norm = norm(b, 0)?;
            let self_attention = Attention::build(b, &self_name, &init, pos)?;
            let cross = if decoder {
                Some((
                    norm(b, 1)?,
                    Attention::build(b, &format!("{}.EncDecAttention", layer(1)), &init, pos)?,
                ))
            } else {
                None
            };
            let ff_layer = layer(if decoder { 2 } else { 1 });
            let proj = |b: &mut ParamBuilder, n: &str, i, o| {
                let name = format!("{ff_layer}.DenseReluDense.{n}");
                Linear::projection_init(b, &name, i, o, pos, false, init.of(i))
            };
            let ff = if t5.gated {
                FeedForward {
                    wi: proj(b, "wi_0", h, f)?,
                    wi_1: Some(proj(b, "wi_1", h, f)?),
                    wo: proj(b, "wo", f, h)?,
                }
            } else {
                FeedForward {
                    wi: proj(b, "wi", h, f)?,
                    wi_1: None,
                    wo: proj(b, "wo", f, h)?,
                }
            };
            let ff_norm = norm(b, if decoder { 2 } else { 1 })?;
            blocks.push(Block {
                self_norm,
                self_attention,
                cross,
                ff_norm,
                ff,
            });
        }
        let bias = bias.ok_or_else(|| {
            EngineError::InvalidConfig(format!("a T5 {stack} needs at least one layer"))
        })?;
        let top = ParamPosition::Layer(first + layers - 1);
        Ok(Stack {
            blocks,
            bias,
            buckets: BiasBuckets {
                buckets: t5.buckets,
                max_distance: t5.max_distance,
                bidirectional: !decoder,
            },
            norm: RmsNorm::required(b, &format!("{stack}.final_layer_norm"), h, eps, top)?,
        })
    }

    /// The decoder's hidden states `[target tokens × hidden]` (scaled for the head when the
    /// model says so), the encoder run over the batch's source first.
    /// A generation pass that continues a decoder cache skips the encoder: the cache holds
    /// what the decoder's cross-attention reads of it.
    pub fn forward<G: Graph>(&self, g: &mut G) -> Result<G::Value, EngineError> {
        let encoded = if g.continues_cache() {
            None
        } else {
            g.select_stream(Stream::Source)?;
            Some(self.run_stack(g, &self.encoder, Source::Encoder)?)
        };
        g.select_stream(Stream::Main)?;
        let cross = match &encoded {
            Some(e) => Source::Encoded(e),
            None => Source::Cached,
        };
        let out = self.run_stack(g, &self.decoder, cross)?;
        drop(encoded);
        match self.output_scale {
            // out · s, as out + (s − 1)·out.
            Some(s) => g.add_scaled(out.clone(), &out, s - 1.0),
            None => Ok(out),
        }
    }

    /// One stack over the current stream: embeddings, its layers (cross-attending to
    /// `encoded` in the decoder), the final norm.
    fn run_stack<G: Graph>(
        &self,
        g: &mut G,
        stack: &Stack,
        source: Source<'_, G::Value>,
    ) -> Result<G::Value, EngineError> {
        let p = self.dropout;
        let x = g.embed(&[(self.shared.param(), TokenIds::Words)])?;
        let mut x = g.dropout(x, p)?;
        let table = g.table(&stack.bias)?;
        for block in &stack.blocks {
            let h = g.rms_norm(&x, &block.self_norm)?;
            let bias = PositionBias {
                table: &table,
                buckets: stack.buckets,
            };
            let a = self.attend(g, &h, &h, &block.self_attention, Some(bias), false)?;
            drop(h);
            x = g.dropout_add(a, p, &x)?;
            if let Some((norm, cross)) = &block.cross {
                let h = g.rms_norm(&x, norm)?;
                let a = match source {
                    Source::Encoded(encoded) => self.attend(g, &h, encoded, cross, None, true)?,
                    // The cache has the source's keys and values: these are not read.
                    Source::Cached => self.attend(g, &h, &h, cross, None, true)?,
                    Source::Encoder => {
                        return Err(EngineError::InvalidConfig(
                            "the encoder has no cross-attention".into(),
                        ))
                    }
                };
                drop(h);
                x = g.dropout_add(a, p, &x)?;
            }
            let h = g.rms_norm(&x, &block.ff_norm)?;
            let f = self.feed_forward(g, &h, &block.ff)?;
            drop(h);
            x = g.dropout_add(f, p, &x)?;
        }
        let x = g.rms_norm(&x, &stack.norm)?;
        g.dropout(x, p)
    }

    /// Attention of `queries` to `keys` (the same for self-attention), projected in and out.
    fn attend<G: Graph>(
        &self,
        g: &mut G,
        queries: &G::Value,
        keys: &G::Value,
        attention: &Attention,
        bias: Option<PositionBias<'_, G::Value>>,
        cross: bool,
    ) -> Result<G::Value, EngineError> {
        let q = g.linear(queries, &attention.q)?;
        let k = g.linear(keys, &attention.k)?;
        let v = g.linear(keys, &attention.v)?;
        let causal = bias.as_ref().is_some_and(|b| !b.buckets.bidirectional);
        let context = g.biased_attention(
            &q,
            &k,
            &v,
            BiasedAttention {
                heads: self.heads,
                causal,
                p: self.dropout,
                cross,
                bias,
            },
        )?;
        drop((q, k, v));
        g.linear(&context, &attention.o)
    }

    fn feed_forward<G: Graph>(
        &self,
        g: &mut G,
        x: &G::Value,
        ff: &FeedForward,
    ) -> Result<G::Value, EngineError> {
        let a = g.linear(x, &ff.wi)?;
        let inner = match &ff.wi_1 {
            Some(wi_1) => {
                let up = g.linear(x, wi_1)?;
                g.gated(&a, &up, self.activation)?
            }
            None => g.activation(&a, self.activation)?,
        };
        drop(a);
        let inner = g.dropout(inner, self.dropout)?;
        g.linear(&inner, &ff.wo)
    }

    /// The shared embedding table (the head, unless the checkpoint has its own `lm_head`).
    pub fn embeddings(&self) -> &Embedding {
        &self.shared
    }
}

/// The head of `T5ForConditionalGeneration`: `lm_head` when the checkpoint has one, else
/// the shared embeddings.
pub fn head(
    b: &mut ParamBuilder,
    cfg: &EncoderConfig,
    task: Task,
    model: &T5Model,
) -> Result<Head, EngineError> {
    if task != Task::Text2Text {
        return Err(super::heads::unsupported(&DESCRIPTOR, task));
    }
    // transformers 5 ties every T5 it builds; a checkpoint saved untied (Flan-T5, mT5) keeps
    // its own.
    let own = b.has_tensor("lm_head.weight");
    let weight = if own {
        b.head(
            "lm_head.weight",
            &[cfg.vocab_size, cfg.hidden_size],
            Init::Normal,
        )?
    } else {
        model.embeddings().param().clone()
    };
    Ok(Head::LanguageModel { weight, task })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn v1_0_and_v1_1_configs_read_as_transformers_reads_them() {
        let v10 = read_config(
            &json!({"vocab_size": 100, "d_model": 16, "d_kv": 4, "d_ff": 32,
            "num_layers": 2, "num_heads": 4}),
        )
        .unwrap();
        let t = v10.t5.clone().unwrap();
        assert_eq!(
            (t.encoder_layers, t.decoder_layers, v10.num_layers),
            (2, 2, 4)
        );
        assert!(!t.gated && t.scale_decoder_outputs);
        assert_eq!(v10.activation, Activation::Relu);
        assert_eq!(t.eos_token_ids, vec![1]);
        let v11 = read_config(
            &json!({"vocab_size": 100, "d_model": 16, "d_kv": 4, "d_ff": 32,
            "num_layers": 2, "num_decoder_layers": 3, "num_heads": 4,
            "feed_forward_proj": "gated-gelu", "tie_word_embeddings": false}),
        )
        .unwrap();
        let t = v11.t5.unwrap();
        assert!(t.gated && !t.scale_decoder_outputs);
        assert_eq!(v11.activation, Activation::GeluTanh);
        assert_eq!(t.decoder_layers, 3);
        // transformers 5's way of saying v1.1.
        let v5 = read_config(&json!({"feed_forward_proj": "gated-silu",
            "tie_word_embeddings": true, "scale_decoder_outputs": false}))
        .unwrap();
        assert!(!v5.t5.unwrap().scale_decoder_outputs);
        assert_eq!(v5.activation, Activation::Silu);
        assert!(read_config(&json!({"feed_forward_proj": "very-gated-gelu"})).is_err());
    }
}
