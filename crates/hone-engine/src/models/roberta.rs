//! RoBERTa, XLM-RoBERTa and CamemBERT: the BERT encoder under the `roberta.` prefix, position
//! ids counted from the padding index, and `RobertaClassificationHead`.

use candle_core::Tensor;

use super::bert::{first_token, BertEncoder};
use super::nn::Linear;
use super::spec::EncoderConfig;
use super::structure::{HeadBlock, Structure};
use super::ModelInputs;
use crate::ops::ForwardCtx;
use crate::weights::ParamBuilder;
use crate::EngineError;

/// `RobertaForSequenceClassification`: encoder → `<s>` → dropout → dense → tanh → dropout →
/// out_proj.
pub struct RobertaClassifier {
    encoder: BertEncoder,
    dense: Linear,
    out_proj: Linear,
    dropout: f64,
}

impl RobertaClassifier {
    pub fn build(
        b: &mut ParamBuilder,
        cfg: &EncoderConfig,
        num_labels: usize,
    ) -> Result<Self, EngineError> {
        let h = cfg.hidden_size;
        Ok(RobertaClassifier {
            encoder: BertEncoder::build(b, "roberta", cfg)?,
            dense: Linear::head(b, "classifier.dense", h, h)?,
            out_proj: Linear::head(b, "classifier.out_proj", h, num_labels)?,
            dropout: cfg.dropout.classifier,
        })
    }

    /// The network's blocks.
    pub fn structure(&self) -> Structure {
        Structure {
            embeddings: self.encoder.embedding_block(true),
            layers: self.encoder.layer_blocks(),
            head: HeadBlock::ClassificationHead {
                dense: self.dense.block(),
                out_proj: self.out_proj.block(),
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
        let x = ctx.dropout(&first_token(&hidden)?, self.dropout)?;
        let x = self.dense.forward(&x, ctx)?.tanh()?;
        let x = ctx.dropout(&x, self.dropout)?;
        self.out_proj.forward(&x, ctx)
    }
}

/// RoBERTa position ids: padding tokens get `pad`, real tokens `pad + 1, pad + 2, ...`
/// (`create_position_ids_from_input_ids` in transformers).
pub fn position_ids(input_ids: &[u32], seq_len: usize, pad: u32) -> Vec<u32> {
    let mut out = Vec::with_capacity(input_ids.len());
    for row in input_ids.chunks(seq_len.max(1)) {
        let mut count = 0;
        for &id in row {
            if id == pad {
                out.push(pad);
            } else {
                count += 1;
                out.push(pad + count);
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    #[test]
    fn positions_skip_padding() {
        assert_eq!(
            super::position_ids(&[0, 5, 2, 1, 0, 2, 1, 1], 4, 1),
            [2, 3, 4, 1, 2, 3, 1, 1]
        );
    }
}
