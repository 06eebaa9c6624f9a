//! DeBERTa-v2 and v3 (`model_type` `deberta-v2`): the BERT-shaped encoder layer with
//! disentangled attention (each score adds content→position and position→content terms read
//! from shared relative embeddings, `crate::graph::Disentangled`), optional absolute
//! positions and segments, an embedding projection when the embeddings are narrower than the
//! layers, and the `ContextPooler` heads of `DebertaV2For*`.

use serde::Deserialize;
use serde_json::Value;

use super::family::{activation, Family, FamilyDescriptor, Positions};
use super::heads::{Head, Task};
use super::layer::{EncoderLayer, LayerNames};
use super::nn::{Embedding, LayerNorm, Linear};
use super::spec::{Dropouts, EncoderConfig};
use crate::graph::{Graph, RelativeBuckets, TokenIds};
use crate::ops::Activation;
use crate::params::ParamPosition;
use crate::weights::ParamBuilder;
use crate::EngineError;

/// DeBERTa-v2/v3: tensors under `deberta.`, `DebertaV2For*` classes, a SentencePiece
/// tokenizer Hone reads from `tokenizer.json` or, as the Hub's checkpoints ship it, from
/// `spm.model` alone.
pub const DESCRIPTOR: FamilyDescriptor = FamilyDescriptor {
    family: Family::Deberta,
    name: "DeBERTa-v2",
    model_types: &["deberta-v2"],
    class_prefixes: &[("deberta-v2", "DebertaV2")],
    tensor_prefix: "deberta",
    tasks: &Task::ENCODER,
    // PEFT's defaults for deberta-v2.
    lora_targets: &["query_proj", "value_proj"],
    tokenizer_loads_from: &["tokenizer.json", "spm.model"],
    tokenizer_files: &[
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "spm.model",
    ],
    positions: Positions::FromZero,
    dropout_keys: super::family::DropoutKeys {
        hidden: "hidden_dropout_prob",
        attention: "attention_probs_dropout_prob",
        classifier: "cls_dropout",
        classifier_defaults_to_hidden: true,
    },
    encoder_config: DebertaConfig::read,
};

const DEBERTA_LAYER: LayerNames = LayerNames {
    query: "attention.self.query_proj",
    key: "attention.self.key_proj",
    value: "attention.self.value_proj",
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    output_norm: "output.LayerNorm",
    attention_output_dropout: true,
};

/// What DeBERTa adds to the shared encoder settings.
#[derive(Debug, Clone, PartialEq, serde::Serialize, Deserialize)]
pub struct DebertaConfig {
    /// The width of the embedding tables (`embedding_size`; projected to the hidden size
    /// when narrower).
    pub embedding_size: usize,
    /// Absolute position embeddings added to the words (`position_biased_input`; v3: no).
    pub position_biased_input: bool,
    /// How distances map to relative-embedding rows.
    pub buckets: RelativeBuckets,
    /// Content → position scores (`c2p` in `pos_att_type`).
    pub c2p: bool,
    /// Position → content scores (`p2c`).
    pub p2c: bool,
    /// The positions are projected by the layer's own query and key projections
    /// (`share_att_key`), not by `pos_query_proj` / `pos_key_proj`.
    pub share_att_key: bool,
    /// The relative embeddings go through the encoder's LayerNorm (`norm_rel_ebd`).
    pub norm_rel_ebd: bool,
    /// The `ContextPooler`'s width, activation and dropout.
    pub pooler_hidden_size: usize,
    pub pooler_activation: Activation,
    pub pooler_dropout: f64,
}

/// config.json of a `deberta-v2` model, with `transformers`' defaults.
#[derive(Debug, Deserialize)]
struct RawConfig {
    vocab_size: usize,
    hidden_size: usize,
    num_hidden_layers: usize,
    num_attention_heads: usize,
    intermediate_size: usize,
    hidden_act: Option<String>,
    layer_norm_eps: Option<f64>,
    max_position_embeddings: Option<usize>,
    type_vocab_size: Option<usize>,
    pad_token_id: Option<u32>,
    initializer_range: Option<f64>,
    hidden_dropout_prob: Option<f64>,
    attention_probs_dropout_prob: Option<f64>,
    cls_dropout: Option<f64>,
    relative_attention: Option<bool>,
    max_relative_positions: Option<i64>,
    position_buckets: Option<i64>,
    pos_att_type: Option<Value>,
    share_att_key: Option<bool>,
    norm_rel_ebd: Option<String>,
    position_biased_input: Option<bool>,
    embedding_size: Option<usize>,
    conv_kernel_size: Option<usize>,
    pooler_hidden_size: Option<usize>,
    pooler_hidden_act: Option<String>,
    pooler_dropout: Option<f64>,
}

impl DebertaConfig {
    /// The encoder settings of a `deberta-v2` config.json.
    fn read(raw: &Value) -> Result<EncoderConfig, serde_json::Error> {
        use serde::de::Error;
        let c = RawConfig::deserialize(raw)?;
        if !c.relative_attention.unwrap_or(false) {
            return Err(Error::custom(
                "DeBERTa without relative attention (relative_attention: false) is not supported; \
                 DeBERTa-v2 and v3 checkpoints have it",
            ));
        }
        if c.conv_kernel_size.unwrap_or(0) > 0 {
            return Err(Error::custom(
                "DeBERTa's convolution layer (conv_kernel_size > 0, deberta-v2-xlarge/xxlarge) is \
                 not supported yet",
            ));
        }
        let types = match &c.pos_att_type {
            None | Some(Value::Null) => Vec::new(),
            Some(Value::String(s)) => s
                .to_lowercase()
                .split('|')
                .map(|t| t.trim().to_string())
                .collect(),
            Some(Value::Array(items)) => items
                .iter()
                .filter_map(|t| t.as_str().map(str::to_lowercase))
                .collect(),
            Some(other) => {
                return Err(Error::custom(format!(
                    "pos_att_type {other} is neither a list nor a string"
                )))
            }
        };
        if let Some(bad) = types.iter().find(|t| !["c2p", "p2c"].contains(&t.as_str())) {
            return Err(Error::custom(format!(
                "pos_att_type '{bad}' is not supported (c2p, p2c)"
            )));
        }
        let max_positions = c.max_position_embeddings.unwrap_or(512);
        let max_distance = match c.max_relative_positions.unwrap_or(-1) {
            m if m < 1 => max_positions,
            m => m as usize,
        };
        let position_buckets = c.position_buckets.unwrap_or(-1).max(0) as usize;
        let span = if position_buckets > 0 {
            position_buckets
        } else {
            max_distance
        };
        let norm_rel_ebd = c
            .norm_rel_ebd
            .as_deref()
            .unwrap_or("none")
            .to_lowercase()
            .split('|')
            .any(|x| x.trim() == "layer_norm");
        let hidden = c.hidden_dropout_prob.unwrap_or(0.1);
        Ok(EncoderConfig {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_layers: c.num_hidden_layers,
            num_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            activation: activation(c.hidden_act.as_deref())?,
            layer_norm_eps: c.layer_norm_eps.unwrap_or(1e-7),
            max_position_embeddings: max_positions,
            type_vocab_size: c.type_vocab_size.unwrap_or(0),
            pad_token_id: c.pad_token_id.unwrap_or(0),
            initializer_range: c.initializer_range.unwrap_or(0.02),
            dropout: Dropouts {
                hidden,
                attention: c.attention_probs_dropout_prob.unwrap_or(0.1),
                classifier: c.cls_dropout.unwrap_or(hidden),
                answer: 0.0,
            },
            sinusoidal_positions: false,
            decoder: None,
            deberta: Some(DebertaConfig {
                embedding_size: c.embedding_size.unwrap_or(c.hidden_size),
                position_biased_input: c.position_biased_input.unwrap_or(true),
                buckets: RelativeBuckets {
                    span,
                    buckets: position_buckets,
                    max_distance,
                },
                c2p: types.iter().any(|t| t == "c2p"),
                p2c: types.iter().any(|t| t == "p2c"),
                share_att_key: c.share_att_key.unwrap_or(false),
                norm_rel_ebd,
                pooler_hidden_size: c.pooler_hidden_size.unwrap_or(c.hidden_size),
                pooler_activation: activation(c.pooler_hidden_act.as_deref())?,
                pooler_dropout: c.pooler_dropout.unwrap_or(0.0),
            }),
            t5: None,
        })
    }

    /// The settings of a DeBERTa encoder config.
    pub fn of(cfg: &EncoderConfig) -> Result<&DebertaConfig, EngineError> {
        cfg.deberta
            .as_ref()
            .ok_or_else(|| EngineError::InvalidConfig("a DeBERTa model needs its settings".into()))
    }
}

/// A layer's position projections: its own (`pos_key_proj`, `pos_query_proj`) when the model
/// does not share the attention's.
pub struct LayerPositions {
    own_keys: Option<Linear>,
    own_queries: Option<Linear>,
    c2p: bool,
    p2c: bool,
    buckets: RelativeBuckets,
    /// `pos_dropout` on the relative embeddings (the hidden dropout).
    dropout: f64,
}

impl LayerPositions {
    /// Builds layer `prefix`'s position projections (none of its own with shared keys).
    pub fn build(
        b: &mut ParamBuilder,
        prefix: &str,
        cfg: &EncoderConfig,
        index: usize,
    ) -> Result<Self, EngineError> {
        let d = DebertaConfig::of(cfg)?;
        let h = cfg.hidden_size;
        let pos = ParamPosition::Layer(index);
        let own = |b: &mut ParamBuilder, wanted: bool, name: &str| {
            (wanted && !d.share_att_key)
                .then(|| Linear::required(b, &format!("{prefix}.attention.self.{name}"), h, h, pos))
                .transpose()
        };
        Ok(LayerPositions {
            own_keys: own(b, d.c2p, "pos_key_proj")?,
            own_queries: own(b, d.p2c, "pos_query_proj")?,
            c2p: d.c2p,
            p2c: d.p2c,
            buckets: d.buckets,
            dropout: cfg.dropout.hidden,
        })
    }

    /// Layer attention with the position terms: the relative embeddings `relative` (`[2·span
    /// × hidden]`) through dropout and the key / query projections (the layer's `key` and
    /// `query` when shared), then [`Graph::disentangled_attention`].
    #[allow(clippy::too_many_arguments)]
    pub fn attend<G: Graph>(
        &self,
        g: &mut G,
        qkv: [&G::Value; 3],
        key: &Linear,
        query: &Linear,
        relative: &G::Value,
        heads: usize,
        p: f64,
    ) -> Result<G::Value, EngineError> {
        let relative = g.dropout(relative.clone(), self.dropout)?;
        let keys = self
            .c2p
            .then(|| g.linear(&relative, self.own_keys.as_ref().unwrap_or(key)))
            .transpose()?;
        let queries = self
            .p2c
            .then(|| g.linear(&relative, self.own_queries.as_ref().unwrap_or(query)))
            .transpose()?;
        drop(relative);
        let [q, k, v] = qkv;
        g.disentangled_attention(
            q,
            k,
            v,
            heads,
            p,
            crate::graph::Disentangled {
                position_keys: keys.as_ref(),
                position_queries: queries.as_ref(),
                buckets: self.buckets,
            },
        )
    }
}

/// Embeddings (words, with absolute positions and segments when the config has them),
/// projection, LayerNorm and dropout; the layers; the relative embeddings they share.
pub struct DebertaEncoder {
    word: Embedding,
    position: Option<Embedding>,
    token_type: Option<Embedding>,
    embed_proj: Option<Linear>,
    norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    relative: Embedding,
    relative_norm: Option<LayerNorm>,
    dropout: f64,
}

impl DebertaEncoder {
    /// Builds `deberta.embeddings.*`, `deberta.encoder.layer.N.*` and the encoder's relative
    /// embeddings.
    pub fn build(b: &mut ParamBuilder, cfg: &EncoderConfig) -> Result<Self, EngineError> {
        let d = DebertaConfig::of(cfg)?.clone();
        let (h, e) = (cfg.hidden_size, d.embedding_size);
        let emb = "deberta.embeddings";
        let word = Embedding::required(
            b,
            &format!("{emb}.word_embeddings"),
            cfg.vocab_size,
            e,
            true,
        )?;
        let position = d
            .position_biased_input
            .then(|| {
                Embedding::required(
                    b,
                    &format!("{emb}.position_embeddings"),
                    cfg.max_position_embeddings,
                    e,
                    false,
                )
            })
            .transpose()?;
        let token_type = (cfg.type_vocab_size > 0)
            .then(|| {
                Embedding::required(
                    b,
                    &format!("{emb}.token_type_embeddings"),
                    cfg.type_vocab_size,
                    e,
                    false,
                )
            })
            .transpose()?;
        let embed_proj = (e != h)
            .then(|| {
                Linear::projection(
                    b,
                    &format!("{emb}.embed_proj"),
                    e,
                    h,
                    ParamPosition::EmbeddingNorm,
                    false,
                )
            })
            .transpose()?;
        let norm = LayerNorm::required(
            b,
            &format!("{emb}.LayerNorm"),
            h,
            cfg.layer_norm_eps,
            ParamPosition::EmbeddingNorm,
        )?;
        let layers = (0..cfg.num_layers)
            .map(|i| {
                let prefix = format!("deberta.encoder.layer.{i}");
                let positions = LayerPositions::build(b, &prefix, cfg, i)?;
                EncoderLayer::build(b, &prefix, &DEBERTA_LAYER, cfg, i)
                    .map(|l| l.with_positions(positions))
            })
            .collect::<Result<Vec<_>, _>>()?;
        // The relative embeddings serve every layer; they train with the bottom one (the
        // embeddings' group would freeze them with the word table).
        let bottom = ParamPosition::Layer(0);
        let relative = Embedding::required_at(
            b,
            "deberta.encoder.rel_embeddings",
            2 * d.buckets.span,
            h,
            bottom,
        )?;
        let relative_norm = d
            .norm_rel_ebd
            .then(|| {
                LayerNorm::required(
                    b,
                    "deberta.encoder.LayerNorm",
                    h,
                    cfg.layer_norm_eps,
                    bottom,
                )
            })
            .transpose()?;
        Ok(DebertaEncoder {
            word,
            position,
            token_type,
            embed_proj,
            norm,
            layers,
            relative,
            relative_norm,
            dropout: cfg.dropout.hidden,
        })
    }

    /// Hidden states `[tokens × hidden]` of the last layer.
    pub fn forward<G: Graph>(&self, g: &mut G) -> Result<G::Value, EngineError> {
        let mut lookups = vec![(self.word.param(), TokenIds::Words)];
        if let Some(p) = &self.position {
            lookups.push((p.param(), TokenIds::Positions));
        }
        if let Some(t) = &self.token_type {
            lookups.push((t.param(), TokenIds::Types));
        }
        let x = g.embed(&lookups)?;
        let x = match &self.embed_proj {
            Some(proj) => g.linear(&x, proj)?,
            None => x,
        };
        let x = g.layer_norm(&x, &self.norm)?;
        let mut x = g.dropout(x, self.dropout)?;
        let relative = g.table(self.relative.param())?;
        let relative = match &self.relative_norm {
            Some(norm) => g.layer_norm(&relative, norm)?,
            None => relative,
        };
        for layer in &self.layers {
            x = layer.forward(g, &x, Some(&relative))?;
        }
        Ok(x)
    }
}

/// The head of `DebertaV2For{task}`: sequence classification and multiple choice through
/// the `ContextPooler` (first token → dropout → dense → activation) and dropout.
pub fn head(
    b: &mut ParamBuilder,
    cfg: &EncoderConfig,
    task: Task,
    num_labels: usize,
) -> Result<Head, EngineError> {
    let d = DebertaConfig::of(cfg)?;
    let (h, pooled) = (cfg.hidden_size, d.pooler_hidden_size);
    let pooler = |b: &mut ParamBuilder, outputs: usize| -> Result<Head, EngineError> {
        Ok(Head::ClassificationHead {
            dense: Linear::head(b, "pooler.dense", h, pooled)?,
            activation: d.pooler_activation,
            out_proj: Linear::head(b, "classifier", pooled, outputs)?,
            dropouts: [d.pooler_dropout, cfg.dropout.classifier],
            task,
        })
    };
    Ok(match task {
        Task::SequenceClassification => pooler(b, num_labels)?,
        Task::MultipleChoice => pooler(b, 1)?,
        // `DebertaV2ForTokenClassification` drops with the hidden dropout.
        Task::TokenClassification => Head::token_classifier(b, h, num_labels, cfg.dropout.hidden)?,
        Task::QuestionAnswering => Head::span_scorer(b, h, cfg.dropout.answer)?,
        Task::CausalLm | Task::Text2Text => {
            return Err(super::heads::unsupported(&DESCRIPTOR, task))
        }
    })
}
