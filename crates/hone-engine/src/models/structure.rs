//! A classifier's blocks as parameter handles, for code that runs the network without candle's
//! autograd (the CPU training path in `crate::cpu`).

use crate::ops::Activation;
use crate::params::Param;

/// A dense layer: `weight` `[out × in]`, `bias` `[out]`.
#[derive(Clone, Debug)]
pub struct LinearBlock {
    pub weight: Param,
    pub bias: Param,
}

/// A layer norm.
#[derive(Clone, Debug)]
pub struct NormBlock {
    pub weight: Param,
    pub bias: Param,
    pub eps: f64,
}

/// Embeddings: word + position (+ token type) → LayerNorm → dropout.
#[derive(Clone, Debug)]
pub struct EmbeddingBlock {
    pub word: Param,
    pub position: Param,
    pub token_type: Option<Param>,
    pub norm: NormBlock,
    pub dropout: f64,
}

/// One post-LayerNorm encoder layer.
#[derive(Clone, Debug)]
pub struct LayerBlock {
    pub query: LinearBlock,
    pub key: LinearBlock,
    pub value: LinearBlock,
    pub attention_output: LinearBlock,
    pub attention_norm: NormBlock,
    pub ffn_in: LinearBlock,
    pub ffn_out: LinearBlock,
    pub output_norm: NormBlock,
    pub num_heads: usize,
    pub activation: Activation,
    pub hidden_dropout: f64,
    pub attention_dropout: f64,
    pub attention_output_dropout: bool,
}

/// The classification head on the first token's hidden state.
#[derive(Clone, Debug)]
pub enum HeadBlock {
    /// BERT: dense + tanh (the pooler) → dropout → classifier.
    Pooler {
        dense: LinearBlock,
        classifier: LinearBlock,
        dropout: f64,
    },
    /// DistilBERT: pre_classifier + ReLU → dropout → classifier.
    PreClassifier {
        dense: LinearBlock,
        classifier: LinearBlock,
        dropout: f64,
    },
    /// RoBERTa: dropout → dense + tanh → dropout → out_proj.
    ClassificationHead {
        dense: LinearBlock,
        out_proj: LinearBlock,
        dropout: f64,
    },
}

/// The whole network.
#[derive(Clone, Debug)]
pub struct Structure {
    pub embeddings: EmbeddingBlock,
    pub layers: Vec<LayerBlock>,
    pub head: HeadBlock,
}
