//! BERT (and MiniLM and other BERT-layout checkpoints): embeddings and encoder (also the
//! encoder RoBERTa reuses), and the heads of `BertFor*` under their Hub names.

use super::family::{BertLayoutConfig, DropoutKeys, Family, FamilyDescriptor, Positions};
use super::heads::{Head, Task};
use super::layer::{run_layers, EncoderLayer, LayerNames};
use super::nn::{Embedding, LayerNorm, Linear};
use super::spec::EncoderConfig;
use crate::graph::{Graph, TokenIds};
use crate::ops::Activation;
use crate::params::ParamPosition;
use crate::weights::ParamBuilder;
use crate::EngineError;

/// BERT: `model_type` `bert`, tensors under `bert.`, `BertFor*` classes.
pub const DESCRIPTOR: FamilyDescriptor = FamilyDescriptor {
    family: Family::Bert,
    name: "BERT",
    model_types: &["bert"],
    class_prefixes: &[("bert", "Bert")],
    tensor_prefix: "bert",
    tasks: &Task::ENCODER,
    lora_targets: &["query", "value"],
    tokenizer_loads_from: &["tokenizer.json", "vocab.txt"],
    tokenizer_files: WORDPIECE_TOKENIZER_FILES,
    positions: Positions::FromZero,
    dropout_keys: BERT_DROPOUT_KEYS,
    encoder_config: |raw| BertLayoutConfig::read(raw, 0),
};

/// The files of a WordPiece tokenizer (BERT, DistilBERT).
pub(super) const WORDPIECE_TOKENIZER_FILES: &[&str] = &[
    "tokenizer.json",
    "tokenizer_config.json",
    "special_tokens_map.json",
    "added_tokens.json",
    "vocab.txt",
];

/// BERT's and RoBERTa's dropout keys in config.json.
pub(super) const BERT_DROPOUT_KEYS: DropoutKeys = DropoutKeys {
    hidden: "hidden_dropout_prob",
    attention: "attention_probs_dropout_prob",
    classifier: "classifier_dropout",
    classifier_defaults_to_hidden: true,
};

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

/// Where an encoder with absolute positions keeps its tensors: BERT's and RoBERTa's
/// `{prefix}.embeddings.*` and `{prefix}.encoder.layer.N.*`, DistilBERT's own names.
pub struct EncoderNames<'a> {
    /// The embeddings' prefix (`bert.embeddings`).
    pub embeddings: &'a str,
    /// The layers' prefix, before each layer's number (`bert.encoder.layer`).
    pub layers: &'a str,
    /// The tensors of a layer.
    pub layer: &'a LayerNames,
    /// Whether there is a token-type table (`{embeddings}.token_type_embeddings`).
    pub token_types: bool,
}

/// Word + position (+ token-type) embeddings, LayerNorm and dropout, then the layers: BERT,
/// RoBERTa and DistilBERT.
pub struct BertEncoder {
    word: Embedding,
    position: Embedding,
    token_type: Option<Embedding>,
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
        let names = EncoderNames {
            embeddings: &format!("{prefix}.embeddings"),
            layers: &format!("{prefix}.encoder.layer"),
            layer: &BERT_LAYER,
            token_types: true,
        };
        Self::build_named(b, &names, cfg)
    }

    /// Builds the encoder whose tensors are where `names` says.
    pub fn build_named(
        b: &mut ParamBuilder,
        names: &EncoderNames,
        cfg: &EncoderConfig,
    ) -> Result<Self, EngineError> {
        let (h, emb) = (cfg.hidden_size, names.embeddings);
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
        let token_type = match names.token_types {
            true => Some(Embedding::required(
                b,
                &format!("{emb}.token_type_embeddings"),
                cfg.type_vocab_size.max(1),
                h,
                false,
            )?),
            false => None,
        };
        let norm = LayerNorm::required(
            b,
            &format!("{emb}.LayerNorm"),
            h,
            cfg.layer_norm_eps,
            ParamPosition::EmbeddingNorm,
        )?;
        let layers = (0..cfg.num_layers)
            .map(|i| EncoderLayer::build(b, &format!("{}.{i}", names.layers), names.layer, cfg, i))
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

    /// Hidden states `[tokens × hidden]` of the last layer; with `first_only` the last layer
    /// may run for the first tokens alone ([`run_layers`]): the output, and whether it is
    /// `[sequences × hidden]`.
    pub fn forward<G: Graph>(
        &self,
        g: &mut G,
        first_only: bool,
    ) -> Result<(G::Value, bool), EngineError> {
        // Configs with one segment type read row 0 for every token (the model's type ids
        // are all zero then).
        let mut tables = vec![
            (self.word.param(), TokenIds::Words),
            (self.position.param(), TokenIds::Positions),
        ];
        if let Some(types) = &self.token_type {
            tables.push((types.param(), TokenIds::Types));
        }
        let x = g.embed(&tables)?;
        let x = g.layer_norm(&x, &self.norm)?;
        let x = g.dropout(x, self.dropout)?;
        run_layers(g, &self.layers, x, first_only)
    }
}

/// The head of `BertFor{task}`.
pub fn head(
    b: &mut ParamBuilder,
    cfg: &EncoderConfig,
    task: Task,
    num_labels: usize,
) -> Result<Head, EngineError> {
    let h = cfg.hidden_size;
    Ok(match task {
        Task::SequenceClassification => Head::Pooled {
            dense: Linear::head(b, "bert.pooler.dense", h, h)?,
            activation: Activation::Tanh,
            classifier: Linear::head(b, "classifier", h, num_labels)?,
            dropout: cfg.dropout.classifier,
            task,
        },
        Task::TokenClassification => {
            Head::token_classifier(b, h, num_labels, cfg.dropout.classifier)?
        }
        Task::MultipleChoice => Head::choice_scorer(
            b,
            "bert.pooler.dense",
            Activation::Tanh,
            h,
            cfg.dropout.classifier,
        )?,
        // `BertForQuestionAnswering` has no dropout before `qa_outputs`.
        Task::QuestionAnswering => Head::span_scorer(b, h, cfg.dropout.answer)?,
        Task::CausalLm | Task::Text2Text => {
            return Err(super::heads::unsupported(&DESCRIPTOR, task))
        }
    })
}
