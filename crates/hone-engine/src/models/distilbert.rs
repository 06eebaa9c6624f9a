//! DistilBERT: word + position embeddings (no token types), its own tensor names, and the
//! heads of `DistilBertFor*` (sequence classification: pre_classifier + ReLU + dropout +
//! classifier).

use serde::Deserialize;
use serde_json::Value;

use super::bert::{EncoderNames, WORDPIECE_TOKENIZER_FILES};
use super::family::{activation, DropoutKeys, Family, FamilyDescriptor, Positions};
use super::heads::{Head, Task};
use super::layer::LayerNames;
use super::nn::Linear;
use super::spec::{Dropouts, EncoderConfig};
use crate::ops::Activation;
use crate::weights::ParamBuilder;
use crate::EngineError;

/// DistilBERT: its own config keys (`dim`, `n_layers`, …), tensors under `distilbert.`.
pub const DESCRIPTOR: FamilyDescriptor = FamilyDescriptor {
    family: Family::DistilBert,
    name: "DistilBERT",
    model_types: &["distilbert"],
    class_prefixes: &[("distilbert", "DistilBert")],
    tensor_prefix: "distilbert",
    tasks: &Task::ENCODER,
    lora_targets: &["q_lin", "v_lin"],
    tokenizer_loads_from: &["tokenizer.json", "vocab.txt"],
    tokenizer_files: WORDPIECE_TOKENIZER_FILES,
    positions: Positions::FromZero,
    dropout_keys: DropoutKeys {
        hidden: "dropout",
        attention: "attention_dropout",
        classifier: "seq_classif_dropout",
        classifier_defaults_to_hidden: false,
    },
    encoder_config: DistilBertConfig::read,
};

/// DistilBERT's config.json, with `transformers`' defaults.
#[derive(Debug, Deserialize)]
struct DistilBertConfig {
    vocab_size: usize,
    dim: usize,
    n_layers: usize,
    n_heads: usize,
    hidden_dim: usize,
    activation: Option<String>,
    max_position_embeddings: Option<usize>,
    pad_token_id: Option<u32>,
    initializer_range: Option<f64>,
    dropout: Option<f64>,
    attention_dropout: Option<f64>,
    seq_classif_dropout: Option<f64>,
    qa_dropout: Option<f64>,
    sinusoidal_pos_embds: Option<bool>,
}

impl DistilBertConfig {
    fn read(raw: &Value) -> Result<EncoderConfig, serde_json::Error> {
        let c = Self::deserialize(raw)?;
        Ok(EncoderConfig {
            vocab_size: c.vocab_size,
            hidden_size: c.dim,
            num_layers: c.n_layers,
            num_heads: c.n_heads,
            intermediate_size: c.hidden_dim,
            activation: activation(c.activation.as_deref())?,
            layer_norm_eps: 1e-12,
            max_position_embeddings: c.max_position_embeddings.unwrap_or(512),
            type_vocab_size: 0,
            pad_token_id: c.pad_token_id.unwrap_or(0),
            initializer_range: c.initializer_range.unwrap_or(0.02),
            dropout: Dropouts {
                hidden: c.dropout.unwrap_or(0.1),
                attention: c.attention_dropout.unwrap_or(0.1),
                classifier: c.seq_classif_dropout.unwrap_or(0.2),
                answer: c.qa_dropout.unwrap_or(0.1),
            },
            sinusoidal_positions: c.sinusoidal_pos_embds.unwrap_or(false),
            decoder: None,
            deberta: None,
            t5: None,
        })
    }
}

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

/// Where DistilBERT keeps its tensors: `distilbert.embeddings.*` (no token types) and
/// `distilbert.transformer.layer.N.*`.
pub const ENCODER_NAMES: EncoderNames = EncoderNames {
    embeddings: "distilbert.embeddings",
    layers: "distilbert.transformer.layer",
    layer: &DISTILBERT_LAYER,
    token_types: false,
};

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
            task,
        },
        // DistilBertForTokenClassification uses the model's own `dropout`.
        Task::TokenClassification => Head::token_classifier(b, h, num_labels, cfg.dropout.hidden)?,
        Task::MultipleChoice => Head::choice_scorer(
            b,
            "pre_classifier",
            Activation::Relu,
            h,
            cfg.dropout.classifier,
        )?,
        // `DistilBertForQuestionAnswering`: dropout `qa_dropout`, then `qa_outputs`.
        Task::QuestionAnswering => Head::span_scorer(b, h, cfg.dropout.answer)?,
        Task::CausalLm | Task::Text2Text => {
            return Err(super::heads::unsupported(&DESCRIPTOR, task))
        }
    })
}
