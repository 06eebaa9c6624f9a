//! RoBERTa, XLM-RoBERTa and CamemBERT: the BERT encoder under the `roberta.` prefix, position
//! ids counted from the padding index, and the heads of `RobertaFor*`.

use super::bert::BERT_DROPOUT_KEYS;
use super::family::{BertLayoutConfig, Family, FamilyDescriptor, Positions};
use super::heads::{Head, Task};
use super::nn::Linear;
use super::spec::EncoderConfig;
use crate::ops::Activation;
use crate::weights::ParamBuilder;
use crate::EngineError;

/// RoBERTa and the checkpoints with its layout (XLM-RoBERTa, CamemBERT): the BERT config keys
/// (padding id 1 by default), tensors under `roberta.`, byte-level BPE or SentencePiece
/// tokenizers that Hone reads from `tokenizer.json`.
pub const DESCRIPTOR: FamilyDescriptor = FamilyDescriptor {
    family: Family::Roberta,
    name: "RoBERTa",
    model_types: &["roberta", "xlm-roberta", "camembert"],
    class_prefixes: &[
        ("roberta", "Roberta"),
        ("xlm-roberta", "XLMRoberta"),
        ("camembert", "Camembert"),
    ],
    tensor_prefix: "roberta",
    tasks: &Task::ENCODER,
    lora_targets: &["query", "value"],
    tokenizer_loads_from: &["tokenizer.json"],
    tokenizer_files: &[
        "tokenizer.json",
        "tokenizer_config.json",
        "special_tokens_map.json",
        "added_tokens.json",
        "vocab.json",
        "merges.txt",
        "sentencepiece.bpe.model",
    ],
    positions: Positions::AfterPadding,
    dropout_keys: BERT_DROPOUT_KEYS,
    encoder_config: |raw| BertLayoutConfig::read(raw, 1),
};

/// The head of `RobertaFor{task}`.
pub fn head(
    b: &mut ParamBuilder,
    cfg: &EncoderConfig,
    task: Task,
    num_labels: usize,
) -> Result<Head, EngineError> {
    let h = cfg.hidden_size;
    Ok(match task {
        // `RobertaClassificationHead`: <s> → dropout → dense → tanh → dropout → out_proj.
        Task::SequenceClassification => Head::ClassificationHead {
            dense: Linear::head(b, "classifier.dense", h, h)?,
            activation: Activation::Tanh,
            out_proj: Linear::head(b, "classifier.out_proj", h, num_labels)?,
            dropouts: [cfg.dropout.classifier; 2],
            task,
        },
        Task::TokenClassification => {
            Head::token_classifier(b, h, num_labels, cfg.dropout.classifier)?
        }
        // `RobertaForMultipleChoice` scores the pooler's output, dropout `hidden_dropout_prob`.
        Task::MultipleChoice => Head::choice_scorer(
            b,
            "roberta.pooler.dense",
            Activation::Tanh,
            h,
            cfg.dropout.hidden,
        )?,
        Task::QuestionAnswering => Head::span_scorer(b, h, cfg.dropout.answer)?,
        Task::CausalLm | Task::Text2Text => {
            return Err(super::heads::unsupported(&DESCRIPTOR, task))
        }
    })
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
