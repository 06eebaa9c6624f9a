//! A model's parameters: named `Var`s with Hub tensor names, where they sit in the network, and
//! whether they are trained right now.

use std::collections::HashMap;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use candle_core::{Tensor, Var};

/// Where a parameter sits, for freezing and layer-wise learning rates.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ParamPosition {
    /// An embedding table (word, position or token type).
    EmbeddingTable { word: bool },
    /// The LayerNorm right after the embeddings.
    EmbeddingNorm,
    /// Encoder layer `i`, counted from the bottom (0).
    Layer(usize),
    /// The task head (pooler, pre-classifier, classifier): new or task-specific weights.
    Head,
}

struct ParamInner {
    name: String,
    var: Var,
    position: ParamPosition,
    frozen: AtomicBool,
}

/// One named parameter. Cloning shares the same storage and frozen flag.
#[derive(Clone)]
pub struct Param {
    inner: Arc<ParamInner>,
}

impl std::fmt::Debug for Param {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Param")
            .field("name", &self.inner.name)
            .field("shape", &self.inner.var.shape())
            .field("frozen", &self.is_frozen())
            .finish()
    }
}

impl Param {
    /// A parameter holding `value`.
    pub fn new(name: &str, value: Tensor, position: ParamPosition) -> candle_core::Result<Self> {
        Ok(Param {
            inner: Arc::new(ParamInner {
                name: name.to_string(),
                var: Var::from_tensor(&value)?,
                position,
                frozen: AtomicBool::new(false),
            }),
        })
    }

    /// The Hugging Face tensor name (e.g. `bert.encoder.layer.0.output.dense.weight`).
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Where the parameter sits in the network.
    pub fn position(&self) -> ParamPosition {
        self.inner.position
    }

    /// The variable (for the optimizer and for reading gradients).
    pub fn var(&self) -> &Var {
        &self.inner.var
    }

    /// The current value, detached.
    pub fn value(&self) -> Tensor {
        self.inner.var.as_detached_tensor()
    }

    /// True when the parameter is not trained.
    pub fn is_frozen(&self) -> bool {
        self.inner.frozen.load(Ordering::Relaxed)
    }

    /// Freezes or unfreezes the parameter.
    pub fn set_frozen(&self, frozen: bool) {
        self.inner.frozen.store(frozen, Ordering::Relaxed)
    }

    /// True for parameters that take no weight decay: biases and LayerNorm weights.
    pub fn is_no_decay(&self) -> bool {
        let n = &self.inner.name;
        n.ends_with(".bias")
            || n.contains("LayerNorm.")
            || n.contains("layer_norm.")
            || n.contains("layernorm.")
    }
}

/// All parameters of a model in a fixed order, addressable by name.
#[derive(Clone, Default, Debug)]
pub struct ParamStore {
    params: Vec<Param>,
    by_name: HashMap<String, usize>,
}

impl ParamStore {
    /// Adds a parameter (names are unique).
    pub fn push(&mut self, param: Param) {
        self.by_name
            .insert(param.name().to_string(), self.params.len());
        self.params.push(param);
    }

    /// All parameters, in construction order.
    pub fn all(&self) -> &[Param] {
        &self.params
    }

    /// The position of the parameter with this Hub name.
    pub fn index_of(&self, name: &str) -> Option<usize> {
        self.by_name.get(name).copied()
    }

    /// The parameter with this Hub name.
    pub fn get(&self, name: &str) -> Option<&Param> {
        self.by_name.get(name).map(|&i| &self.params[i])
    }

    /// Parameters trained right now.
    pub fn trainable(&self) -> impl Iterator<Item = &Param> {
        self.params.iter().filter(|p| !p.is_frozen())
    }

    /// Total number of scalar values.
    pub fn count(&self) -> usize {
        self.params.iter().map(|p| p.var().elem_count()).sum()
    }

    /// Number of scalar values trained right now.
    pub fn count_trainable(&self) -> usize {
        self.trainable().map(|p| p.var().elem_count()).sum()
    }

    /// Current values by Hub name, detached but sharing storage with the parameters (an
    /// optimizer step changes them too): save them at once or `copy()` them.
    pub fn values(&self) -> HashMap<String, Tensor> {
        self.params
            .iter()
            .map(|p| (p.name().to_string(), p.value()))
            .collect()
    }
}
