//! DistilBERT: word + position embeddings (no token types), its own tensor names, and the
//! heads of `DistilBertFor*` (sequence classification: pre_classifier + ReLU + dropout +
//! classifier).

use super::heads::{Head, Task};
use super::layer::{EncoderLayer, LayerNames};
use super::nn::{Embedding, LayerNorm, Linear};
use super::spec::EncoderConfig;
use crate::graph::{Graph, TokenIds};
use crate::ops::Activation;
use crate::params::ParamPosition;
use crate::weights::ParamBuilder;
use crate::EngineError;

const DISTILBERT_LAYER: LayerNames = LayerNames {
    query: "attention.q_lin",
    key: "attention.k_lin",
    value: "attention.v_lin",
    attention_output: "attention.out_lin",
    attention_norm: "sa_layer_norm",
    ffn_in: "ffn.lin1",
    ffn_out: "ffn.lin2",
    output_norm: "output_layer_norm",
    attention_output_dropout: false,
};

/// `distilbert.embeddings.*` and `distilbert.transformer.layer.N.*`.
pub struct DistilBertEncoder {
    word: Embedding,
    position: Embedding,
    norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    dropout: f64,
}

impl DistilBertEncoder {
    pub fn build(b: &mut ParamBuilder, cfg: &EncoderConfig) -> Result<Self, EngineError> {
        let h = cfg.hidden_size;
        let word = Embedding::required(
            b,
            "distilbert.embeddings.word_embeddings",
            cfg.vocab_size,
            h,
            true,
        )?;
        let position = Embedding::required(
            b,
            "distilbert.embeddings.position_embeddings",
            cfg.max_position_embeddings,
            h,
            false,
        )?;
        let norm = LayerNorm::required(
            b,
            "distilbert.embeddings.LayerNorm",
            h,
            cfg.layer_norm_eps,
            ParamPosition::EmbeddingNorm,
        )?;
        let layers = (0..cfg.num_layers)
            .map(|i| {
                EncoderLayer::build(
                    b,
                    &format!("distilbert.transformer.layer.{i}"),
                    &DISTILBERT_LAYER,
                    cfg,
                    i,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(DistilBertEncoder {
            word,
            position,
            norm,
            layers,
            dropout: cfg.dropout.hidden,
        })
    }

    /// Hidden states `[tokens × hidden]` of the last layer.
    pub fn forward<G: Graph>(&self, g: &mut G) -> Result<G::Value, EngineError> {
        let x = g.embed(&[
            (self.word.param(), TokenIds::Words),
            (self.position.param(), TokenIds::Positions),
        ])?;
        let x = g.layer_norm(&x, &self.norm)?;
        let mut x = g.dropout(x, self.dropout)?;
        for layer in &self.layers {
            x = layer.forward(g, &x)?;
        }
        Ok(x)
    }
}

/// The head of `DistilBertFor{task}`.
pub fn head(
    b: &mut ParamBuilder,
    cfg: &EncoderConfig,
    task: Task,
    num_labels: usize,
) -> Result<Head, EngineError> {
    let h = cfg.hidden_size;
    Ok(match task {
        Task::SequenceClassification => Head::Pooled {
            dense: Linear::head(b, "pre_classifier", h, h)?,
            activation: Activation::Relu,
            classifier: Linear::head(b, "classifier", h, num_labels)?,
            dropout: cfg.dropout.classifier,
        },
        // DistilBertForTokenClassification uses the model's own `dropout`.
        Task::TokenClassification => Head::token_classifier(b, h, num_labels, cfg.dropout.hidden)?,
    })
}
