//! What Hone knows about a model family, in one value per family ([`FamilyDescriptor`], defined
//! in the family's own file next to its backbone and heads). Engine, Hub client and app read
//! their lists from here — the `model_type` names, tensor prefix, `transformers` class names,
//! tokenizer files, tasks, position limits — or check theirs against it in a test.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::heads::Task;
use super::spec::{Dropouts, EncoderConfig};
use super::{bert, deberta, distilbert, llama, roberta, t5};
use crate::ops::Activation;
use crate::EngineError;

/// Model families Hone can fine-tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// BERT and its relatives with the same layout (MiniLM, ...).
    Bert,
    DistilBert,
    /// RoBERTa, XLM-RoBERTa and CamemBERT.
    Roberta,
    /// DeBERTa-v2 and v3 (disentangled attention).
    Deberta,
    /// Llama-layout decoders (SmolLM2, Mistral, Qwen2).
    Llama,
    /// T5-layout encoder–decoders (T5, Flan-T5, mT5).
    T5,
}

/// Every family's descriptor, in the order lists show them.
pub const FAMILIES: [&FamilyDescriptor; 6] = [
    &bert::DESCRIPTOR,
    &distilbert::DESCRIPTOR,
    &roberta::DESCRIPTOR,
    &deberta::DESCRIPTOR,
    &llama::DESCRIPTOR,
    &t5::DESCRIPTOR,
];

/// How a family numbers positions.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Positions {
    /// `0, 1, 2, …` for every row.
    FromZero,
    /// RoBERTa's: real tokens count from `pad + 1`, padding gets `pad`
    /// (`create_position_ids_from_input_ids` in transformers).
    AfterPadding,
}

/// The config.json keys a family keeps its dropout probabilities under (written back on export).
#[derive(Debug, Clone, Copy)]
pub struct DropoutKeys {
    pub hidden: &'static str,
    pub attention: &'static str,
    pub classifier: &'static str,
    /// The classifier key is optional and falls back to the hidden dropout (BERT's
    /// `classifier_dropout: null`), so it is written only when it differs.
    pub classifier_defaults_to_hidden: bool,
}

/// One model family: how its config.json reads, what `transformers` calls its classes, what
/// its tensors and tokenizer are named.
#[derive(Debug)]
pub struct FamilyDescriptor {
    pub family: Family,
    /// A display name (`RoBERTa`).
    pub name: &'static str,
    /// The config.json `model_type` values this family loads; the Hub tags every model with
    /// its `model_type`, so these are also the tags search results are recognised by.
    pub model_types: &'static [&'static str],
    /// Per `model_type`, the prefix of its `transformers` classes (`XLMRoberta` →
    /// `XLMRobertaForTokenClassification`); the first entry is the default.
    pub class_prefixes: &'static [(&'static str, &'static str)],
    /// The attribute holding the base model in `*For{Task}` (the tensor prefix, `roberta.`).
    pub tensor_prefix: &'static str,
    /// The tasks Hone has heads for on this family.
    pub tasks: &'static [Task],
    /// The linear layers LoRA adapts unless told otherwise (PEFT's defaults for the family).
    pub lora_targets: &'static [&'static str],
    /// Files Hone can build the tokenizer from (any one is enough).
    pub tokenizer_loads_from: &'static [&'static str],
    /// Every file of the family's tokenizers, downloaded with the model and copied on export.
    pub tokenizer_files: &'static [&'static str],
    pub positions: Positions,
    pub dropout_keys: DropoutKeys,
    /// Reads the encoder settings of a config.json (the family's serde `Config`).
    pub encoder_config: fn(&Value) -> Result<EncoderConfig, serde_json::Error>,
}

impl FamilyDescriptor {
    /// The `transformers` class for a `task` head on a model of `model_type`.
    pub fn architecture(&self, model_type: &str, task: Task) -> String {
        let prefix = self
            .class_prefixes
            .iter()
            .find(|(t, _)| *t == model_type)
            .or(self.class_prefixes.first())
            .map_or(self.name, |(_, p)| p);
        format!("{prefix}{}", task.architecture_suffix())
    }

    /// The longest input (special tokens included) the position table allows.
    pub fn max_sequence_length(&self, cfg: &EncoderConfig) -> usize {
        match self.positions {
            Positions::FromZero => cfg.max_position_embeddings,
            Positions::AfterPadding => cfg
                .max_position_embeddings
                .saturating_sub(cfg.pad_token_id as usize + 1),
        }
    }
}

impl Family {
    /// True for decoder-only language models.
    pub fn is_decoder(self) -> bool {
        self == Family::Llama
    }

    /// Everything Hone knows about the family.
    pub fn descriptor(self) -> &'static FamilyDescriptor {
        match self {
            Family::Bert => &bert::DESCRIPTOR,
            Family::DistilBert => &distilbert::DESCRIPTOR,
            Family::Roberta => &roberta::DESCRIPTOR,
            Family::Deberta => &deberta::DESCRIPTOR,
            Family::Llama => &llama::DESCRIPTOR,
            Family::T5 => &t5::DESCRIPTOR,
        }
    }

    /// The family of a config.json `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        FAMILIES
            .iter()
            .find(|d| d.model_types.contains(&model_type))
            .map(|d| d.family)
    }

    /// The tensor prefix of the base model (`bert`).
    pub fn prefix(self) -> &'static str {
        self.descriptor().tensor_prefix
    }

    /// A display name.
    pub fn name(self) -> &'static str {
        self.descriptor().name
    }
}

/// The `model_type` values Hone trains, for messages (`bert, distilbert, roberta, …`).
pub fn supported_model_types() -> String {
    FAMILIES
        .iter()
        .flat_map(|d| d.model_types.iter().copied())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every tokenizer file of every family (union, first-seen order).
pub fn all_tokenizer_files() -> Vec<&'static str> {
    let mut out: Vec<&'static str> = Vec::new();
    for name in FAMILIES.iter().flat_map(|d| d.tokenizer_files.iter()) {
        if !out.contains(name) {
            out.push(name);
        }
    }
    out
}

/// The BERT-layout settings of a config.json (BERT and RoBERTa), with `transformers`' defaults.
#[derive(Debug, Deserialize)]
pub(super) struct BertLayoutConfig {
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
    classifier_dropout: Option<f64>,
    position_embedding_type: Option<String>,
}

impl BertLayoutConfig {
    /// The encoder settings, with `default_pad` when the config names no padding id.
    pub(super) fn read(raw: &Value, default_pad: u32) -> Result<EncoderConfig, serde_json::Error> {
        use serde::de::Error;
        let c = Self::deserialize(raw)?;
        if let Some(kind) = c.position_embedding_type.as_deref() {
            if kind != "absolute" {
                return Err(Error::custom(format!(
                    "{kind} position embeddings are not supported (only absolute)"
                )));
            }
        }
        let hidden = c.hidden_dropout_prob.unwrap_or(0.1);
        Ok(EncoderConfig {
            vocab_size: c.vocab_size,
            hidden_size: c.hidden_size,
            num_layers: c.num_hidden_layers,
            num_heads: c.num_attention_heads,
            intermediate_size: c.intermediate_size,
            activation: activation(c.hidden_act.as_deref())?,
            layer_norm_eps: c.layer_norm_eps.unwrap_or(1e-12),
            max_position_embeddings: c.max_position_embeddings.unwrap_or(512),
            type_vocab_size: c.type_vocab_size.unwrap_or(2),
            pad_token_id: c.pad_token_id.unwrap_or(default_pad),
            initializer_range: c.initializer_range.unwrap_or(0.02),
            dropout: Dropouts {
                hidden,
                attention: c.attention_probs_dropout_prob.unwrap_or(0.1),
                classifier: c.classifier_dropout.unwrap_or(hidden),
                answer: 0.0,
            },
            sinusoidal_positions: false,
            decoder: None,
            deberta: None,
            t5: None,
        })
    }
}

/// An activation named in a config (`gelu` when absent).
pub(super) fn activation(name: Option<&str>) -> Result<Activation, serde_json::Error> {
    use serde::de::Error;
    let name = name.unwrap_or("gelu");
    Activation::from_config(name).ok_or_else(|| {
        Error::custom(format!(
            "activation '{name}' is not supported (use gelu, gelu_new, relu, silu or tanh)"
        ))
    })
}

/// A config.json read error with the file named.
pub(super) fn bad_config(path: &Path, e: serde_json::Error) -> EngineError {
    EngineError::BadModelConfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_family_is_listed_once_and_model_types_do_not_overlap() {
        for (i, d) in FAMILIES.iter().enumerate() {
            assert_eq!(d.family.descriptor().name, d.name);
            for t in d.model_types {
                assert_eq!(Family::from_model_type(t), Some(d.family), "{t}");
                assert!(FAMILIES[i + 1..].iter().all(|o| !o.model_types.contains(t)));
            }
            for (t, _) in d.class_prefixes {
                assert!(
                    d.model_types.contains(t),
                    "{t} is not a model_type of {}",
                    d.name
                );
            }
            for f in d.tokenizer_loads_from {
                assert!(d.tokenizer_files.contains(f), "{f}");
                assert!(
                    hone_data::TOKENIZER_SOURCES.contains(f),
                    "hone-data cannot build a tokenizer from {f}"
                );
            }
        }
    }
}
