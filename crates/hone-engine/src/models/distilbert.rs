//! DistilBERT: word + position embeddings (no token types), its own tensor names, and the
//! `DistilBertForSequenceClassification` head (pre_classifier + ReLU + dropout + classifier).

use candle_core::Tensor;

use super::bert::first_token;
use super::layer::{EncoderLayer, LayerNames};
use super::nn::{Embedding, LayerNorm, Linear};
use super::spec::EncoderConfig;
use super::structure::{EmbeddingBlock, HeadBlock, Structure};
use super::ModelInputs;
use crate::ops::ForwardCtx;
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

/// `DistilBertForSequenceClassification`.
pub struct DistilBertClassifier {
    word: Embedding,
    position: Embedding,
    norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    pre_classifier: Linear,
    classifier: Linear,
    hidden_dropout: f64,
    classifier_dropout: f64,
}

impl DistilBertClassifier {
    pub fn build(
        b: &mut ParamBuilder,
        cfg: &EncoderConfig,
        num_labels: usize,
    ) -> Result<Self, EngineError> {
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
        Ok(DistilBertClassifier {
            word,
            position,
            norm,
            layers,
            pre_classifier: Linear::head(b, "pre_classifier", h, h)?,
            classifier: Linear::head(b, "classifier", h, num_labels)?,
            hidden_dropout: cfg.dropout.hidden,
            classifier_dropout: cfg.dropout.classifier,
        })
    }

    /// The network's blocks.
    pub fn structure(&self) -> Structure {
        Structure {
            embeddings: EmbeddingBlock {
                word: self.word.param().clone(),
                position: self.position.param().clone(),
                token_type: None,
                norm: self.norm.block(),
                dropout: self.hidden_dropout,
            },
            layers: self.layers.iter().map(EncoderLayer::block).collect(),
            head: HeadBlock::PreClassifier {
                dense: self.pre_classifier.block(),
                classifier: self.classifier.block(),
                dropout: self.classifier_dropout,
            },
        }
    }

    /// Logits `[batch, num_labels]`.
    pub fn forward(
        &self,
        inputs: &ModelInputs,
        ctx: &mut ForwardCtx,
    ) -> candle_core::Result<Tensor> {
        let x = self.word.forward(&inputs.input_ids, ctx)?;
        let x = (x + self.position.forward(&inputs.position_ids, ctx)?)?;
        let mut x = ctx.dropout(&self.norm.forward(&x, ctx)?, self.hidden_dropout)?;
        for layer in &self.layers {
            x = layer.forward(&x, &inputs.mask_bias, ctx)?;
        }
        let pooled = self
            .pre_classifier
            .forward(&first_token(&x)?, ctx)?
            .relu()?;
        let pooled = ctx.dropout(&pooled, self.classifier_dropout)?;
        self.classifier.forward(&pooled, ctx)
    }
}
