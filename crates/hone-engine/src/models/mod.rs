//! Trainable models: a backbone (one file per family, tensor names exactly as on the Hugging
//! Face Hub, so loading and exporting need no renaming table) plus a task head
//! ([`heads::Head`]). Written once over [`crate::graph::Graph`], they run on the CPU graph and
//! on candle's autograd alike.

pub mod bert;
pub mod deberta;
pub mod distilbert;
pub mod family;
pub mod heads;
pub mod layer;
pub mod llama;
pub mod nn;
pub mod roberta;
pub mod spec;
pub mod t5;

use std::path::Path;
use std::sync::Arc;

use candle_core::{DType, Device, Tensor};
use hone_data::Batch;

pub use family::{
    all_tokenizer_files, supported_model_types, Family, FamilyDescriptor, Positions, FAMILIES,
};
pub use heads::{Head, Task};
pub use spec::{Adapters, Dropouts, EncoderConfig, ModelSpec};

use crate::graph::{Graph, IdLimits, LabelsPer, Tokens};
use crate::params::{Param, ParamPosition, ParamStore};
use crate::weights::{ParamBuilder, WeightSource};
use crate::EngineError;

enum Backbone {
    /// BERT, RoBERTa (under their own prefixes) and DistilBERT (under its own names).
    Bert(bert::BertEncoder),
    Deberta(deberta::DebertaEncoder),
    Llama(llama::LlamaDecoder),
    T5(t5::T5Model),
}

/// A transformer encoder with a task head.
pub struct Model {
    spec: ModelSpec,
    backbone: Arc<Backbone>,
    head: Head,
    params: ParamStore,
    num_labels: usize,
    newly_initialized: Vec<String>,
    device: Device,
    /// A multi-task model's head: what its head parameters' names start with (empty
    /// otherwise).
    head_prefix: String,
    /// Evaluation passes on the CPU run the linear layers in int8 (`Model::use_int8`).
    int8: Option<Arc<crate::cpu::int8::Int8Weights>>,
}

/// One head of a model: its task, classes and the prefix of its parameters' names (empty for
/// a model with one head).
#[derive(Debug, Clone, PartialEq)]
pub struct HeadSpec {
    pub prefix: String,
    pub task: Task,
    pub num_labels: usize,
}

impl HeadSpec {
    /// The head's number of outputs, checked (question answering always has two).
    fn checked_labels(&self) -> Result<usize, EngineError> {
        let num_labels = if self.task == Task::QuestionAnswering {
            2
        } else {
            self.num_labels
        };
        if num_labels < 2 {
            let what = match self.task {
                Task::MultipleChoice => "a multiple-choice model needs at least 2 options",
                _ => "a classifier needs at least 2 classes",
            };
            return Err(EngineError::InvalidConfig(format!(
                "{what}, got {num_labels}"
            )));
        }
        Ok(num_labels)
    }
}

impl Model {
    /// Loads a model folder with a `task` head of `num_labels` classes. Head tensors that are
    /// missing (or sized for another number of classes) are newly initialised from `seed`.
    /// `dropout` overrides every dropout probability of the config.
    pub fn load(
        dir: &Path,
        task: Task,
        num_labels: usize,
        dropout: Option<f64>,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        let spec = ModelSpec::from_dir(dir)?;
        let source = WeightSource::open(dir)?;
        Self::build(spec, Some(&source), task, num_labels, dropout, device, seed)
    }

    /// Loads a model folder as a run with `cfg` builds it: a `task` head of `num_labels`, the
    /// run's dropout override, and its adapters ([`crate::job::adapt`]: those `cfg.peft` asks
    /// for on a plain model; an adapter folder keeps its own).
    pub fn load_for_run(
        dir: &Path,
        task: Task,
        num_labels: usize,
        cfg: &crate::config::TrainingConfig,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        let mut spec = ModelSpec::from_dir(dir)?;
        crate::job::adapt(&mut spec, task, cfg, &mut |_| {})?;
        let head = HeadSpec {
            prefix: String::new(),
            task,
            num_labels,
        };
        Self::with_heads(spec, Some(dir), &[head], cfg.dropout, device, seed)?
            .pop()
            .ok_or_else(|| EngineError::InvalidConfig("a model needs a head".into()))
    }

    /// A model built from a config alone, every weight initialised as transformers'
    /// `_init_weights` does (normal(0, `initializer_range`), zero biases, unit LayerNorm),
    /// for training from scratch. `dropout` overrides every dropout probability.
    pub fn from_config(
        spec: ModelSpec,
        task: Task,
        num_labels: usize,
        dropout: Option<f64>,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        Self::build(spec, None, task, num_labels, dropout, device, seed)
    }

    /// A randomly initialised model for a config (tests and benchmarks).
    pub fn random(
        spec: ModelSpec,
        task: Task,
        num_labels: usize,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        Self::build(spec, None, task, num_labels, None, device, seed)
    }

    fn build(
        spec: ModelSpec,
        source: Option<&WeightSource>,
        task: Task,
        num_labels: usize,
        dropout: Option<f64>,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        let head = HeadSpec {
            prefix: String::new(),
            task,
            num_labels,
        };
        let mut models = Self::build_heads(spec, source, &[head], dropout, device, seed)?;
        models
            .pop()
            .ok_or_else(|| EngineError::InvalidConfig("a model needs a head".into()))
    }

    /// One encoder with several heads (multi-task learning), from a model folder or, with
    /// `dir` `None`, from `spec` alone (random weights): one [`Model`] per head, all sharing
    /// the encoder's parameters. Head parameters are named with their head's prefix.
    pub fn with_heads(
        spec: ModelSpec,
        dir: Option<&Path>,
        heads: &[HeadSpec],
        dropout: Option<f64>,
        device: &Device,
        seed: u64,
    ) -> Result<Vec<Self>, EngineError> {
        let source = dir.map(WeightSource::open).transpose()?;
        Self::build_heads(spec, source.as_ref(), heads, dropout, device, seed)
    }

    fn build_heads(
        mut spec: ModelSpec,
        source: Option<&WeightSource>,
        heads: &[HeadSpec],
        dropout: Option<f64>,
        device: &Device,
        seed: u64,
    ) -> Result<Vec<Self>, EngineError> {
        if heads.len() > 1 && heads.iter().any(|h| h.prefix.is_empty()) {
            return Err(EngineError::InvalidConfig(
                "the heads of a multi-task model each need their own name".into(),
            ));
        }
        if let Some(p) = dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(EngineError::InvalidConfig(format!(
                    "dropout must be in [0, 1), got {p}"
                )));
            }
            let answer = if spec.encoder.dropout.answer > 0.0 {
                p
            } else {
                0.0
            };
            spec.encoder.dropout = Dropouts {
                hidden: p,
                attention: p,
                classifier: p,
                answer,
            };
        }
        let cfg = spec.encoder.clone();
        let mut b = ParamBuilder::new(
            source,
            spec.family.prefix(),
            spec.family.name(),
            device,
            cfg.initializer_range,
            seed,
        );
        if let Some(lora) = &spec.lora {
            lora.validate()?;
        }
        let methods = [
            spec.lora.is_some(),
            spec.bottleneck.is_some(),
            spec.prefix.is_some(),
        ];
        if methods.iter().filter(|&&m| m).count() > 1 {
            return Err(EngineError::InvalidConfig(
                "a model takes one of LoRA, bottleneck adapters or a prefix, not several".into(),
            ));
        }
        if spec.prefix.is_some() && spec.family != Family::Llama {
            return Err(EngineError::InvalidConfig(format!(
                "prefix tuning is built for decoders (Llama, Qwen2, Mistral): PEFT cannot load \
                 a {} model's prefix with transformers 5; use LoRA or adapters on an encoder",
                spec.family.name()
            )));
        }
        b.set_lora(spec.lora.clone());
        b.set_bottleneck(spec.bottleneck.clone());
        b.set_prefix(spec.prefix.clone());
        let backbone = Arc::new(match spec.family {
            Family::Bert => Backbone::Bert(bert::BertEncoder::build(&mut b, "bert", &cfg)?),
            Family::DistilBert => Backbone::Bert(bert::BertEncoder::build_named(
                &mut b,
                &distilbert::ENCODER_NAMES,
                &cfg,
            )?),
            Family::Roberta => Backbone::Bert(bert::BertEncoder::build(&mut b, "roberta", &cfg)?),
            Family::Deberta => Backbone::Deberta(deberta::DebertaEncoder::build(&mut b, &cfg)?),
            Family::Llama => Backbone::Llama(llama::LlamaDecoder::build(&mut b, &cfg)?),
            Family::T5 => Backbone::T5(t5::T5Model::build(&mut b, &cfg)?),
        });
        let mut built = Vec::with_capacity(heads.len());
        for h in heads {
            // A language model's classes are its vocabulary.
            let num_labels = match h.task {
                Task::CausalLm | Task::Text2Text => cfg.vocab_size,
                _ => h.checked_labels()?,
            };
            b.set_head_prefix(&h.prefix);
            let head = match (spec.family, backbone.as_ref()) {
                (Family::Llama, Backbone::Llama(decoder)) => {
                    llama::head(&mut b, &cfg, h.task, decoder)?
                }
                (Family::T5, Backbone::T5(model)) => t5::head(&mut b, &cfg, h.task, model)?,
                (Family::Bert, _) => bert::head(&mut b, &cfg, h.task, num_labels)?,
                (Family::DistilBert, _) => distilbert::head(&mut b, &cfg, h.task, num_labels)?,
                (Family::Roberta, _) => roberta::head(&mut b, &cfg, h.task, num_labels)?,
                (Family::Deberta, _) => deberta::head(&mut b, &cfg, h.task, num_labels)?,
                (Family::Llama | Family::T5, _) => {
                    return Err(EngineError::InvalidConfig(
                        "a language-model head needs its family's backbone".into(),
                    ))
                }
            };
            built.push((head, num_labels));
        }
        b.check_lora_targets()?;
        let (store, newly_initialized) = b.finish();
        // An adapter model trains (and saves) the head layers that are new, whatever their
        // name.
        let saved = match (&mut spec.lora, &mut spec.bottleneck, &mut spec.prefix) {
            (Some(lora), _, _) => Some(&mut lora.modules_to_save),
            (None, Some(b), _) => Some(&mut b.modules_to_save),
            (None, None, Some(p)) => Some(&mut p.modules_to_save),
            (None, None, None) => None,
        };
        if let Some(saved) = saved {
            for name in &newly_initialized {
                let hub = heads
                    .iter()
                    .find_map(|h| {
                        name.strip_prefix(&h.prefix)
                            .filter(|_| !h.prefix.is_empty())
                    })
                    .unwrap_or(name);
                let module = hub.rsplit_once('.').map_or(hub, |(m, _)| m).to_string();
                if !crate::lora::module_saved(saved, name) {
                    saved.push(module);
                }
            }
        }
        Ok(heads
            .iter()
            .zip(built)
            .map(|(h, (head, num_labels))| {
                let mut params = ParamStore::default();
                for p in store.all() {
                    if p.position() != ParamPosition::Head || p.name().starts_with(&h.prefix) {
                        params.push(p.clone());
                    }
                }
                Model {
                    spec: spec.clone(),
                    backbone: backbone.clone(),
                    head,
                    params,
                    num_labels,
                    newly_initialized: newly_initialized
                        .iter()
                        .filter(|n| n.starts_with(&h.prefix))
                        .cloned()
                        .collect(),
                    device: device.clone(),
                    head_prefix: h.prefix.clone(),
                    int8: None,
                }
            })
            .collect())
    }

    /// The parameters' values under their Hub names (a multi-task head's prefix dropped), as
    /// an export of this head writes them.
    pub fn hub_values(&self) -> std::collections::HashMap<String, Tensor> {
        self.params
            .all()
            .iter()
            .map(|p| {
                let name = p.name().strip_prefix(&self.head_prefix).unwrap_or(p.name());
                (name.to_string(), p.value())
            })
            .collect()
    }

    /// Logits of the graph's batch: `[sequences × labels]` or `[tokens × labels]` by task.
    /// A head that reads the first tokens alone has the encoder's last layer run for them
    /// only (BERT-layout encoders; not DeBERTa's, nor an ONNX export).
    pub fn forward<G: Graph>(&self, g: &mut G) -> Result<G::Value, EngineError> {
        let first_only = self.head.reads_first_tokens() && g.prunes_to_first_tokens();
        let (hidden, pruned) = match self.backbone.as_ref() {
            Backbone::Bert(m) => m.forward(g, first_only)?,
            _ => (self.forward_hidden(g)?, false),
        };
        self.head.forward(g, hidden, pruned)
    }

    /// The backbone's last hidden states, `[tokens × hidden]` (the head's input).
    pub fn forward_hidden<G: Graph>(&self, g: &mut G) -> Result<G::Value, EngineError> {
        match self.backbone.as_ref() {
            Backbone::Bert(m) => Ok(m.forward(g, false)?.0),
            Backbone::Deberta(m) => m.forward(g),
            Backbone::Llama(m) => m.forward(g),
            Backbone::T5(m) => m.forward(g),
        }
    }

    /// A language model's output layer (`[vocabulary × hidden]`, no bias): the CPU path
    /// computes it together with the loss, a chunk of tokens at a time; `None` for other heads.
    pub fn output_layer(&self) -> Option<&Param> {
        match &self.head {
            Head::LanguageModel { weight, .. } => Some(weight),
            _ => None,
        }
    }

    /// The task of the head.
    pub fn task(&self) -> Task {
        self.head.task()
    }

    /// Packs a padded batch with this family's position and segment ids; labels are per
    /// token for token heads, per question (`num_labels` options) for multiple choice, per
    /// sequence otherwise.
    pub fn tokens(&self, batch: &Batch) -> Result<Tokens, EngineError> {
        let e = &self.spec.encoder;
        let limits = IdLimits {
            words: e.vocab_size,
            positions: e.max_position_embeddings,
            types: e.type_vocab_size.max(1),
        };
        let zeros;
        let types: &[u32] = if e.type_vocab_size > 1 {
            &batch.token_type_ids
        } else {
            zeros = vec![0; batch.batch_size * batch.seq_len];
            &zeros
        };
        let per = self.task().labels_per(self.num_labels);
        let tokens = Tokens::pack(batch, &self.position_ids(batch), types, per, limits)?;
        match (&batch.source, self.family()) {
            (Some(source), Family::T5) => {
                let source = Tokens::pack(
                    source,
                    &self.position_ids(source),
                    &vec![0; source.batch_size * source.seq_len],
                    LabelsPer::Sequence,
                    limits,
                )?;
                tokens.with_source(source)
            }
            (None, Family::T5) => Err(EngineError::InvalidConfig(
                "an encoder–decoder batch needs its source texts".into(),
            )),
            (Some(_), _) => Err(EngineError::InvalidConfig(format!(
                "{} models take no source texts",
                self.family().name()
            ))),
            (None, _) => Ok(tokens),
        }
    }

    /// The dtype of the parameters.
    pub fn dtype(&self) -> DType {
        self.params
            .all()
            .first()
            .map_or(DType::F32, |p| p.var().dtype())
    }

    /// This family's position ids for a padded batch (`[batch × seq]`).
    pub fn position_ids(&self, batch: &Batch) -> Vec<u32> {
        let (b, s) = (batch.batch_size, batch.seq_len);
        match self.spec.descriptor().positions {
            Positions::AfterPadding => {
                roberta::position_ids(&batch.input_ids, s, self.spec.encoder.pad_token_id)
            }
            Positions::FromZero => {
                // A prefix's virtual tokens come first (transformers numbers the tokens after
                // a cache of that length).
                let first = self.prefix_tokens() as u32;
                (0..b).flat_map(|_| first..first + s as u32).collect()
            }
        }
    }

    /// The decoder backbone, for a decoder.
    fn decoder(&self) -> Option<&llama::LlamaDecoder> {
        match self.backbone.as_ref() {
            Backbone::Llama(m) => Some(m),
            _ => None,
        }
    }

    /// A decoder's prefix table now (prefix tuning; `None` without a prefix).
    pub fn prefix_table(&self) -> Result<Option<Tensor>, EngineError> {
        Ok(self
            .decoder()
            .map(|d| d.prefix_table())
            .transpose()?
            .flatten())
    }

    /// A decoder's prefix rows of every layer (prefix tuning; `None` without a prefix).
    pub fn prefix_rows(&self) -> Result<Option<crate::prefix::LayerRows>, EngineError> {
        Ok(self
            .decoder()
            .map(|d| d.prefix_rows())
            .transpose()?
            .flatten())
    }

    /// The virtual tokens of a decoder's prefix (0 without one).
    pub fn prefix_tokens(&self) -> usize {
        self.decoder().map_or(0, |d| d.prefix_tokens())
    }

    /// The parsed config.json.
    pub fn spec(&self) -> &ModelSpec {
        &self.spec
    }

    /// The model family.
    pub fn family(&self) -> Family {
        self.spec.family
    }

    /// All parameters.
    pub fn params(&self) -> &ParamStore {
        &self.params
    }

    /// Parameters that are never trained (DistilBERT's fixed sinusoidal positions).
    pub fn is_fixed(&self, param: &Param) -> bool {
        self.spec.encoder.sinusoidal_positions
            && param.name() == "distilbert.embeddings.position_embeddings.weight"
    }

    /// Number of classes (multiple choice: options per question).
    pub fn num_labels(&self) -> usize {
        self.num_labels
    }

    /// Number of encoder layers.
    pub fn num_layers(&self) -> usize {
        self.spec.encoder.num_layers
    }

    /// What this head's parameter names start with in a multi-task model (empty otherwise).
    pub fn head_prefix(&self) -> &str {
        &self.head_prefix
    }

    /// Head tensors that were not in the checkpoint and were initialised anew.
    pub fn newly_initialized(&self) -> &[String] {
        &self.newly_initialized
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Makes evaluation passes on the CPU graph run every linear layer with dynamic int8
    /// quantization (`crate::cpu::int8`: weights int8 per output feature, quantized on first
    /// use; activations per token). Training passes and the autograd graph stay f32. The
    /// int8 copies are made once: for a model whose weights no longer change (a loaded
    /// fine-tuned folder); call again after changing them.
    pub fn use_int8(&mut self) {
        self.int8 = Some(Arc::new(crate::cpu::int8::Int8Weights::new(
            self.params.all().len(),
        )));
    }

    /// The int8 weights of [`Model::use_int8`], if it was called.
    pub fn int8_weights(&self) -> Option<&crate::cpu::int8::Int8Weights> {
        self.int8.as_deref()
    }
}
