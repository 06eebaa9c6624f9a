//! Trainable sequence classifiers, one file per family, with tensor names exactly as on the
//! Hugging Face Hub so loading and exporting need no renaming table.

pub mod bert;
pub mod distilbert;
pub mod layer;
pub mod nn;
pub mod roberta;
pub mod spec;
pub mod structure;

use std::path::Path;

use candle_core::{DType, Device, Tensor};
use hone_data::Batch;

pub use spec::{Dropouts, EncoderConfig, Family, ModelSpec, SUPPORTED_MODEL_TYPES};

use crate::ops::ForwardCtx;
use crate::params::{Param, ParamStore};
use crate::weights::{ParamBuilder, WeightSource};
use crate::EngineError;

/// A batch as tensors on the model's device.
pub struct ModelInputs {
    /// `[batch, seq]` u32.
    pub input_ids: Tensor,
    /// `[batch, seq]` u32 (zeros for families without segments).
    pub token_type_ids: Tensor,
    /// `[batch, seq]` u32.
    pub position_ids: Tensor,
    /// `[batch, 1, 1, seq]`: 0 for tokens, the lowest f32 for padding.
    pub mask_bias: Tensor,
    /// `[batch]` u32 class ids, when the batch is labeled.
    pub labels: Option<Tensor>,
    pub batch_size: usize,
    pub seq_len: usize,
}

enum Net {
    Bert(bert::BertClassifier),
    DistilBert(distilbert::DistilBertClassifier),
    Roberta(roberta::RobertaClassifier),
}

/// A transformer encoder with a sequence classification head.
pub struct Classifier {
    spec: ModelSpec,
    net: Net,
    params: ParamStore,
    num_labels: usize,
    newly_initialized: Vec<String>,
    device: Device,
}

impl Classifier {
    /// Loads a model folder as a classifier with `num_labels` classes. Head tensors that are
    /// missing (or sized for another number of classes) are newly initialised from `seed`.
    /// `dropout` overrides every dropout probability of the config.
    pub fn load(
        dir: &Path,
        num_labels: usize,
        dropout: Option<f64>,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        let spec = ModelSpec::from_dir(dir)?;
        let source = WeightSource::open(dir)?;
        Self::build(spec, Some(&source), num_labels, dropout, device, seed)
    }

    /// A randomly initialised classifier for a config (tests and benchmarks).
    pub fn random(
        spec: ModelSpec,
        num_labels: usize,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        Self::build(spec, None, num_labels, None, device, seed)
    }

    fn build(
        mut spec: ModelSpec,
        source: Option<&WeightSource>,
        num_labels: usize,
        dropout: Option<f64>,
        device: &Device,
        seed: u64,
    ) -> Result<Self, EngineError> {
        if num_labels < 2 {
            return Err(EngineError::InvalidConfig(format!(
                "a classifier needs at least 2 classes, got {num_labels}"
            )));
        }
        if let Some(p) = dropout {
            if !(0.0..1.0).contains(&p) {
                return Err(EngineError::InvalidConfig(format!(
                    "dropout must be in [0, 1), got {p}"
                )));
            }
            spec.encoder.dropout = Dropouts {
                hidden: p,
                attention: p,
                classifier: p,
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
        let net = match spec.family {
            Family::Bert => Net::Bert(bert::BertClassifier::build(&mut b, &cfg, num_labels)?),
            Family::DistilBert => Net::DistilBert(distilbert::DistilBertClassifier::build(
                &mut b, &cfg, num_labels,
            )?),
            Family::Roberta => {
                Net::Roberta(roberta::RobertaClassifier::build(&mut b, &cfg, num_labels)?)
            }
        };
        let (params, newly_initialized) = b.finish();
        Ok(Classifier {
            spec,
            net,
            params,
            num_labels,
            newly_initialized,
            device: device.clone(),
        })
    }

    /// Logits `[batch, num_labels]`.
    pub fn forward(
        &self,
        inputs: &ModelInputs,
        ctx: &mut ForwardCtx,
    ) -> candle_core::Result<Tensor> {
        match &self.net {
            Net::Bert(m) => m.forward(inputs, ctx),
            Net::DistilBert(m) => m.forward(inputs, ctx),
            Net::Roberta(m) => m.forward(inputs, ctx),
        }
    }

    /// The network's blocks as parameter handles.
    pub fn structure(&self) -> structure::Structure {
        match &self.net {
            Net::Bert(m) => m.structure(),
            Net::DistilBert(m) => m.structure(),
            Net::Roberta(m) => m.structure(),
        }
    }

    /// This family's position ids for a padded batch (`[batch × seq]`).
    pub fn position_ids(&self, batch: &Batch) -> Vec<u32> {
        let (b, s) = (batch.batch_size, batch.seq_len);
        match self.spec.family {
            Family::Roberta => {
                roberta::position_ids(&batch.input_ids, s, self.spec.encoder.pad_token_id)
            }
            _ => (0..b).flat_map(|_| 0..s as u32).collect(),
        }
    }

    /// The segment ids the model sees: the batch's when the config has several token types,
    /// zeros otherwise.
    pub fn token_type_ids(&self, batch: &Batch) -> Vec<u32> {
        if self.spec.encoder.type_vocab_size > 1 {
            batch.token_type_ids.clone()
        } else {
            vec![0; batch.batch_size * batch.seq_len]
        }
    }

    /// Moves a padded batch to the device, with this family's position and segment ids.
    pub fn inputs(&self, batch: &Batch) -> Result<ModelInputs, EngineError> {
        let (b, s) = (batch.batch_size, batch.seq_len);
        let dev = &self.device;
        let position_ids = self.position_ids(batch);
        let token_type_ids = self.token_type_ids(batch);
        let mask_bias: Vec<f32> = batch
            .attention_mask
            .iter()
            .map(|&m| if m == 1 { 0.0 } else { f32::MIN })
            .collect();
        let labels = if batch.labels.is_empty() {
            None
        } else {
            Some(Tensor::from_slice(&batch.labels, b, dev)?)
        };
        Ok(ModelInputs {
            input_ids: Tensor::from_slice(&batch.input_ids, (b, s), dev)?,
            token_type_ids: Tensor::from_vec(token_type_ids, (b, s), dev)?,
            position_ids: Tensor::from_vec(position_ids, (b, s), dev)?,
            mask_bias: Tensor::from_vec(mask_bias, (b, 1, 1, s), dev)?,
            labels,
            batch_size: b,
            seq_len: s,
        })
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

    /// Number of classes.
    pub fn num_labels(&self) -> usize {
        self.num_labels
    }

    /// Number of encoder layers.
    pub fn num_layers(&self) -> usize {
        self.spec.encoder.num_layers
    }

    /// Head tensors that were not in the checkpoint and were initialised anew.
    pub fn newly_initialized(&self) -> &[String] {
        &self.newly_initialized
    }

    /// The device the parameters live on.
    pub fn device(&self) -> &Device {
        &self.device
    }

    /// Copies the tensors of a safetensors checkpoint into the parameters one at a time, so
    /// restoring the best weights needs no second copy of the model in memory.
    pub fn load_values(&self, path: &Path) -> Result<(), EngineError> {
        let mut seen = std::collections::HashSet::new();
        crate::checkpoint::for_each_tensor(path, |name, value| {
            if let Some(p) = self.params.get(name) {
                p.var()
                    .set(&value.to_dtype(DType::F32)?.to_device(&self.device)?)?;
                seen.insert(name.to_string());
            }
            Ok(())
        })?;
        if let Some(missing) = self.params.all().iter().find(|p| !seen.contains(p.name())) {
            return Err(EngineError::MissingTensor {
                dir: path.to_path_buf(),
                name: missing.name().to_string(),
                family: self.spec.family.name().to_string(),
            });
        }
        Ok(())
    }

    /// Copies `values` (by Hub name) into the parameters, e.g. to restore a checkpoint.
    pub fn set_values(
        &self,
        values: &std::collections::HashMap<String, Tensor>,
    ) -> Result<(), EngineError> {
        for p in self.params.all() {
            let v = values
                .get(p.name())
                .ok_or_else(|| EngineError::MissingTensor {
                    dir: Path::new("checkpoint").to_path_buf(),
                    name: p.name().to_string(),
                    family: self.spec.family.name().to_string(),
                })?;
            p.var()
                .set(&v.to_dtype(DType::F32)?.to_device(&self.device)?)?;
        }
        Ok(())
    }
}
