//! BERT (and MiniLM and other BERT-layout checkpoints): embeddings, encoder, pooler and the
//! `BertForSequenceClassification` head. Also the encoder RoBERTa reuses.

use candle_core::Tensor;

use super::layer::{EncoderLayer, LayerNames};
use super::nn::{Embedding, LayerNorm, Linear};
use super::spec::EncoderConfig;
use super::structure::{EmbeddingBlock, HeadBlock, LayerBlock, Structure};
use super::ModelInputs;
use crate::ops::ForwardCtx;
use crate::params::ParamPosition;
use crate::weights::ParamBuilder;
use crate::EngineError;

const BERT_LAYER: LayerNames = LayerNames {
    query: "attention.self.query",
    key: "attention.self.key",
    value: "attention.self.value",
    attention_output: "attention.output.dense",
    attention_norm: "attention.output.LayerNorm",
    ffn_in: "intermediate.dense",
    ffn_out: "output.dense",
    output_norm: "output.LayerNorm",
    attention_output_dropout: true,
};

/// Word + position + token-type embeddings, LayerNorm and dropout, then the layers.
pub struct BertEncoder {
    word: Embedding,
    position: Embedding,
    token_type: Embedding,
    norm: LayerNorm,
    layers: Vec<EncoderLayer>,
    dropout: f64,
}

impl BertEncoder {
    /// Builds `{prefix}.embeddings.*` and `{prefix}.encoder.layer.N.*`.
    pub fn build(
        b: &mut ParamBuilder,
        prefix: &str,
        cfg: &EncoderConfig,
    ) -> Result<Self, EngineError> {
        let h = cfg.hidden_size;
        let emb = format!("{prefix}.embeddings");
        let word = Embedding::required(
            b,
            &format!("{emb}.word_embeddings"),
            cfg.vocab_size,
            h,
            true,
        )?;
        let position = Embedding::required(
            b,
            &format!("{emb}.position_embeddings"),
            cfg.max_position_embeddings,
            h,
            false,
        )?;
        let token_type = Embedding::required(
            b,
            &format!("{emb}.token_type_embeddings"),
            cfg.type_vocab_size.max(1),
            h,
            false,
        )?;
        let norm = LayerNorm::required(
            b,
            &format!("{emb}.LayerNorm"),
            h,
            cfg.layer_norm_eps,
            ParamPosition::EmbeddingNorm,
        )?;
        let layers = (0..cfg.num_layers)
            .map(|i| {
                EncoderLayer::build(
                    b,
                    &format!("{prefix}.encoder.layer.{i}"),
                    &BERT_LAYER,
                    cfg,
                    i,
                )
            })
            .collect::<Result<Vec<_>, _>>()?;
        Ok(BertEncoder {
            word,
            position,
            token_type,
            norm,
            layers,
            dropout: cfg.dropout.hidden,
        })
    }

    /// The embeddings' parameters (`with_token_type`: whether the family uses segments).
    pub fn embedding_block(&self, with_token_type: bool) -> EmbeddingBlock {
        EmbeddingBlock {
            word: self.word.param().clone(),
            position: self.position.param().clone(),
            token_type: with_token_type.then(|| self.token_type.param().clone()),
            norm: self.norm.block(),
            dropout: self.dropout,
        }
    }

    /// The layers' parameters.
    pub fn layer_blocks(&self) -> Vec<LayerBlock> {
        self.layers.iter().map(EncoderLayer::block).collect()
    }

    /// Hidden states `[batch, seq, hidden]` of the last layer.
    pub fn forward(
        &self,
        inputs: &ModelInputs,
        ctx: &mut ForwardCtx,
    ) -> candle_core::Result<Tensor> {
        let x = self.word.forward(&inputs.input_ids, ctx)?;
        let x = (x + self.position.forward(&inputs.position_ids, ctx)?)?;
        let x = (x + self.token_type.forward(&inputs.token_type_ids, ctx)?)?;
        let mut x = ctx.dropout(&self.norm.forward(&x, ctx)?, self.dropout)?;
        for layer in &self.layers {
            x = layer.forward(&x, &inputs.mask_bias, ctx)?;
        }
        Ok(x)
    }
}

/// The hidden state of the first token (`[CLS]` / `<s>`): `[batch, hidden]`.
pub fn first_token(hidden: &Tensor) -> candle_core::Result<Tensor> {
    hidden.narrow(1, 0, 1)?.squeeze(1)
}

/// `BertForSequenceClassification`: encoder → pooler (dense + tanh on `[CLS]`) → dropout →
/// classifier.
pub struct BertClassifier {
    encoder: BertEncoder,
    pooler: Linear,
    classifier: Linear,
    dropout: f64,
}

impl BertClassifier {
    pub fn build(
        b: &mut ParamBuilder,
        cfg: &EncoderConfig,
        num_labels: usize,
    ) -> Result<Self, EngineError> {
        let h = cfg.hidden_size;
        Ok(BertClassifier {
            encoder: BertEncoder::build(b, "bert", cfg)?,
            pooler: Linear::head(b, "bert.pooler.dense", h, h)?,
            classifier: Linear::head(b, "classifier", h, num_labels)?,
            dropout: cfg.dropout.classifier,
        })
    }

    /// The network's blocks.
    pub fn structure(&self) -> Structure {
        Structure {
            embeddings: self.encoder.embedding_block(true),
            layers: self.encoder.layer_blocks(),
            head: HeadBlock::Pooler {
                dense: self.pooler.block(),
                classifier: self.classifier.block(),
                dropout: self.dropout,
            },
        }
    }

    /// Logits `[batch, num_labels]`.
    pub fn forward(
        &self,
        inputs: &ModelInputs,
        ctx: &mut ForwardCtx,
    ) -> candle_core::Result<Tensor> {
        let hidden = self.encoder.forward(inputs, ctx)?;
        let pooled = self.pooler.forward(&first_token(&hidden)?, ctx)?.tanh()?;
        let pooled = ctx.dropout(&pooled, self.dropout)?;
        self.classifier.forward(&pooled, ctx)
    }
}
