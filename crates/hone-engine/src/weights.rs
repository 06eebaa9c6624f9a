//! Reading checkpoint tensors from a Hugging Face model folder, and building parameters from
//! them.
//!
//! Supported: `model.safetensors`, sharded `model.safetensors.index.json`, `pytorch_model.bin`
//! (and its sharded index) through candle's pickle reader. Any float dtype is converted to the
//! training dtype. Old TensorFlow-era names (`LayerNorm.gamma` / `.beta`) are read as
//! `.weight` / `.bias`, and a base-model checkpoint without the family prefix (`bert.`,
//! `roberta.`, `distilbert.`) is matched to the prefixed names of the classification model.

use std::collections::{BTreeSet, HashMap};
use std::path::{Path, PathBuf};

use candle_core::pickle::PthTensors;
use candle_core::safetensors::MmapedSafetensors;
use candle_core::{DType, Device, Tensor};

use crate::bottleneck::BottleneckConfig;
use crate::lora::{AdapterFolder, LoraConfig};
use crate::models::nn::LoraBranch;
use crate::params::{Param, ParamPosition, ParamStore};
use crate::rng::HoneRng;
use crate::EngineError;

enum Backend {
    Safetensors(MmapedSafetensors),
    Pth(Vec<PthTensors>),
}

/// The tensors of a checkpoint, read lazily. For a LoRA adapter folder, the base model's
/// tensors with the adapter's in front of them (under Hone's names).
pub struct WeightSource {
    dir: PathBuf,
    backend: Backend,
    /// Normalised name → (original name, file index for pickle shards).
    names: HashMap<String, (String, usize)>,
    /// An adapter's tensors: the file and Hone name → PEFT name.
    adapter: Option<(MmapedSafetensors, HashMap<String, String>)>,
}

fn normalise_name(name: &str) -> String {
    if let Some(stem) = name.strip_suffix(".gamma") {
        format!("{stem}.weight")
    } else if let Some(stem) = name.strip_suffix(".beta") {
        format!("{stem}.bias")
    } else {
        name.to_string()
    }
}

fn shard_files(index: &Path) -> Result<Vec<PathBuf>, EngineError> {
    let text = std::fs::read_to_string(index).map_err(|e| EngineError::io(index, e))?;
    let json: serde_json::Value =
        serde_json::from_str(&text).map_err(|e| EngineError::BadWeights {
            path: index.to_path_buf(),
            message: e.to_string(),
        })?;
    let map = json
        .get("weight_map")
        .and_then(|m| m.as_object())
        .ok_or_else(|| EngineError::BadWeights {
            path: index.to_path_buf(),
            message: "no \"weight_map\" object".into(),
        })?;
    let dir = index.parent().unwrap_or(Path::new("."));
    let files: BTreeSet<&str> = map.values().filter_map(|v| v.as_str()).collect();
    let mut out = Vec::new();
    for f in files {
        if f.contains("..") || Path::new(f).is_absolute() {
            return Err(EngineError::BadWeights {
                path: index.to_path_buf(),
                message: format!("shard name '{f}' points outside the model folder"),
            });
        }
        let path = dir.join(f);
        if !path.is_file() {
            return Err(EngineError::BadWeights {
                path: index.to_path_buf(),
                message: format!("shard '{f}' is missing; download the complete model"),
            });
        }
        out.push(path);
    }
    Ok(out)
}

impl WeightSource {
    /// Opens the weights of a model folder (see the module docs for the accepted files), or
    /// of a LoRA adapter folder and its base model.
    pub fn open(dir: &Path) -> Result<Self, EngineError> {
        let Some(adapter) = AdapterFolder::open(dir)? else {
            return Self::open_model(dir);
        };
        let mut source = Self::open_model(&adapter.base_dir)?;
        let file = dir.join(crate::lora::ADAPTER_WEIGHTS);
        // SAFETY: as in `open_model`: read-only maps of files Hone does not write while reading.
        let st = unsafe { MmapedSafetensors::new(&file) }.map_err(|e| EngineError::BadAdapter {
            path: file.clone(),
            message: e.to_string(),
        })?;
        let names = st
            .tensors()
            .into_iter()
            .map(|(peft, _)| (AdapterFolder::hone_name(&peft).to_string(), peft))
            .collect();
        source.adapter = Some((st, names));
        Ok(source)
    }

    fn open_model(dir: &Path) -> Result<Self, EngineError> {
        let single = dir.join("model.safetensors");
        let index = dir.join("model.safetensors.index.json");
        let pth = dir.join("pytorch_model.bin");
        let pth_index = dir.join("pytorch_model.bin.index.json");
        let (backend, files) = if single.is_file() || index.is_file() {
            let files = if single.is_file() {
                vec![single]
            } else {
                shard_files(&index)?
            };
            // SAFETY: the files are memory-mapped read-only; Hone never writes into a model
            // folder it is reading, and candle copies tensors out of the map when loading.
            let st = unsafe { MmapedSafetensors::multi(&files) }.map_err(|e| {
                EngineError::BadWeights {
                    path: files[0].clone(),
                    message: e.to_string(),
                }
            })?;
            (Backend::Safetensors(st), files)
        } else if pth.is_file() || pth_index.is_file() {
            let files = if pth.is_file() {
                vec![pth]
            } else {
                shard_files(&pth_index)?
            };
            let mut readers = Vec::new();
            for f in &files {
                readers.push(
                    PthTensors::new(f, None).map_err(|e| EngineError::BadWeights {
                        path: f.clone(),
                        message: e.to_string(),
                    })?,
                );
            }
            (Backend::Pth(readers), files)
        } else {
            return Err(EngineError::NoWeights {
                dir: dir.to_path_buf(),
            });
        };
        let mut names = HashMap::new();
        match &backend {
            Backend::Safetensors(st) => {
                for (name, _) in st.tensors() {
                    names.insert(normalise_name(&name), (name, 0));
                }
            }
            Backend::Pth(readers) => {
                for (i, r) in readers.iter().enumerate() {
                    for name in r.tensor_infos().keys() {
                        names.insert(normalise_name(name), (name.clone(), i));
                    }
                }
            }
        }
        let _ = files;
        Ok(WeightSource {
            dir: dir.to_path_buf(),
            backend,
            names,
            adapter: None,
        })
    }

    /// True when the folder has a tensor of this name.
    pub fn contains(&self, name: &str) -> bool {
        self.names.contains_key(name)
            || self
                .adapter
                .as_ref()
                .is_some_and(|(_, names)| names.contains_key(name))
    }

    /// The folder the weights come from.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    /// Loads one tensor on the CPU in its stored dtype (an adapter's before the base's).
    pub fn load(&self, name: &str) -> Result<Option<Tensor>, EngineError> {
        if let Some((st, names)) = &self.adapter {
            if let Some(peft) = names.get(name) {
                return st.load(peft, &Device::Cpu).map(Some).map_err(|e| {
                    EngineError::BadAdapter {
                        path: self.dir.clone(),
                        message: format!("tensor '{peft}': {e}"),
                    }
                });
            }
        }
        let Some((original, file)) = self.names.get(name) else {
            return Ok(None);
        };
        let bad = |e: candle_core::Error| EngineError::BadWeights {
            path: self.dir.clone(),
            message: format!("tensor '{original}': {e}"),
        };
        match &self.backend {
            Backend::Safetensors(st) => st.load(original, &Device::Cpu).map(Some).map_err(bad),
            Backend::Pth(readers) => readers[*file].get(original).map_err(bad),
        }
    }
}

/// How a parameter missing from the checkpoint (or a random model) is initialised, as
/// `transformers`' `_init_weights` does it.
#[derive(Debug, Clone, Copy)]
pub enum Init {
    /// Normal(0, `initializer_range`).
    Normal,
    /// Normal(0, this standard deviation): a family whose layers each have their own (T5).
    NormalStd(f64),
    Zeros,
    Ones,
}

/// Builds a model's parameters from a checkpoint (or at random), on one device and dtype.
pub struct ParamBuilder<'a> {
    source: Option<&'a WeightSource>,
    prefix: &'static str,
    family: &'static str,
    device: Device,
    dtype: DType,
    init_std: f64,
    rng: HoneRng,
    store: ParamStore,
    newly_initialized: Vec<String>,
    /// Put before head parameters' names (a multi-task model's heads: `ner::classifier.weight`);
    /// the checkpoint is still read under the Hub name.
    head_prefix: String,
    /// LoRA settings: targeted linear layers get adapters.
    lora: Option<LoraConfig>,
    /// How many layers each LoRA target matched.
    lora_hits: Vec<usize>,
    /// Every linear layer built, for naming the choices when a target matches none.
    linear_modules: Vec<String>,
    /// Bottleneck adapter settings: the encoder layers add adapters.
    bottleneck: Option<BottleneckConfig>,
    /// Prefix tuning settings: a decoder adds its prefix rows.
    virtual_prefix: Option<crate::prefix::PrefixConfig>,
}

impl<'a> ParamBuilder<'a> {
    /// A builder reading from `source` (or initialising everything when `None`). `prefix` is
    /// the family's base-model attribute (`bert`, `roberta`, `distilbert`).
    pub fn new(
        source: Option<&'a WeightSource>,
        prefix: &'static str,
        family: &'static str,
        device: &Device,
        init_std: f64,
        seed: u64,
    ) -> Self {
        ParamBuilder {
            source,
            prefix,
            family,
            device: device.clone(),
            dtype: DType::F32,
            init_std,
            rng: HoneRng::new(seed, 0x1417),
            store: ParamStore::default(),
            newly_initialized: Vec::new(),
            head_prefix: String::new(),
            lora: None,
            lora_hits: Vec::new(),
            linear_modules: Vec::new(),
            bottleneck: None,
            virtual_prefix: None,
        }
    }

    /// Gives the decoder built from now on a prefix (prefix tuning).
    pub fn set_prefix(&mut self, prefix: Option<crate::prefix::PrefixConfig>) {
        self.virtual_prefix = prefix;
    }

    /// The prefix tuning settings, when the model has a prefix.
    pub fn virtual_prefix(&self) -> Option<&crate::prefix::PrefixConfig> {
        self.virtual_prefix.as_ref()
    }

    /// Gives the encoder layers built from now on bottleneck adapters.
    pub fn set_bottleneck(&mut self, bottleneck: Option<BottleneckConfig>) {
        self.bottleneck = bottleneck;
    }

    /// The bottleneck adapter settings, when the model has adapters.
    pub fn bottleneck(&self) -> Option<&BottleneckConfig> {
        self.bottleneck.as_ref()
    }

    /// A parameter the checkpoint may have (an adapter's, read from an adapter folder),
    /// initialised with `init` otherwise.
    pub fn optional(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        position: ParamPosition,
    ) -> Result<Param, EngineError> {
        let value = match self.lookup(name)? {
            Some(t) => Self::checked(name, t, shape)?,
            None => self.initial(shape, init)?,
        };
        self.add(name, value, position)
    }

    /// Gives the linear layers built from now on LoRA adapters where `lora` targets them.
    pub fn set_lora(&mut self, lora: Option<LoraConfig>) {
        self.lora_hits = vec![0; lora.as_ref().map_or(0, |l| l.target_entries().len())];
        self.lora = lora;
    }

    /// The LoRA branch of the linear layer `module` (`None` when no target names it): `A`
    /// (Kaiming-uniform, as PEFT) and `B` (zeros) unless the checkpoint (an adapter) has them.
    pub fn lora_branch(
        &mut self,
        module: &str,
        in_features: usize,
        out_features: usize,
        position: ParamPosition,
    ) -> Result<Option<LoraBranch>, EngineError> {
        let Some(lora) = &self.lora else {
            return Ok(None);
        };
        self.linear_modules.push(module.to_string());
        let Some(hit) = lora.target_of(module)? else {
            return Ok(None);
        };
        let (r, scale, dropout) = (lora.r, lora.scale(), lora.dropout);
        self.lora_hits[hit] += 1;
        let named = |m: &str| format!("{}{module}.{m}.weight", self.head_prefix_for(position));
        let (a_name, b_name) = (named("lora_A"), named("lora_B"));
        let a = match self.lookup(&format!("{module}.lora_A.weight"))? {
            Some(t) => Self::checked(&a_name, t, &[r, in_features])?,
            None => {
                // kaiming_uniform_(a=√5): U(−1/√in, 1/√in).
                let bound = 1.0 / (in_features as f32).sqrt();
                let values = (0..r * in_features)
                    .map(|_| (2.0 * self.rng.uniform() - 1.0) * bound)
                    .collect();
                Tensor::from_vec(values, (r, in_features), &self.device)?
            }
        };
        let b = match self.lookup(&format!("{module}.lora_B.weight"))? {
            Some(t) => Self::checked(&b_name, t, &[out_features, r])?,
            None => Tensor::zeros((out_features, r), self.dtype, &self.device)?,
        };
        Ok(Some(LoraBranch {
            a: self.add(&a_name, a, position)?,
            b: self.add(&b_name, b, position)?,
            scale,
            dropout,
        }))
    }

    fn head_prefix_for(&self, position: ParamPosition) -> &str {
        if position == ParamPosition::Head {
            &self.head_prefix
        } else {
            ""
        }
    }

    /// Fails when a LoRA target matched no linear layer, naming the layers there are.
    pub fn check_lora_targets(&self) -> Result<(), EngineError> {
        let Some(lora) = &self.lora else {
            return Ok(());
        };
        for (entry, hits) in lora.target_entries().iter().zip(&self.lora_hits) {
            if *hits == 0 {
                let mut names: Vec<&str> = self
                    .linear_modules
                    .iter()
                    .map(|m| m.rsplit('.').next().unwrap_or(m))
                    .collect();
                names.sort_unstable();
                names.dedup();
                return Err(EngineError::InvalidConfig(format!(
                    "the LoRA target '{entry}' matches no linear layer of this {} model; its \
                     linear layers are named {}",
                    self.family,
                    names.join(", ")
                )));
            }
        }
        Ok(())
    }

    fn lookup(&self, name: &str) -> Result<Option<Tensor>, EngineError> {
        let Some(source) = self.source else {
            return Ok(None);
        };
        if let Some(t) = source.load(name)? {
            return Ok(Some(t));
        }
        if let Some(stripped) = name
            .strip_prefix(self.prefix)
            .and_then(|s| s.strip_prefix('.'))
        {
            return source.load(stripped);
        }
        Ok(None)
    }

    fn initial(&mut self, shape: &[usize], init: Init) -> Result<Tensor, EngineError> {
        let n: usize = shape.iter().product();
        let t = match init {
            Init::Normal => Tensor::from_vec(
                self.rng.normal(n, self.init_std as f32),
                shape,
                &self.device,
            )?,
            Init::NormalStd(std) => {
                Tensor::from_vec(self.rng.normal(n, std as f32), shape, &self.device)?
            }
            Init::Zeros => Tensor::zeros(shape, self.dtype, &self.device)?,
            Init::Ones => Tensor::ones(shape, self.dtype, &self.device)?,
        };
        Ok(t)
    }

    fn add(
        &mut self,
        name: &str,
        value: Tensor,
        position: ParamPosition,
    ) -> Result<Param, EngineError> {
        let value = value.to_dtype(self.dtype)?.to_device(&self.device)?;
        let param = Param::new(name, value, position)?;
        self.store.push(param.clone());
        Ok(param)
    }

    fn checked(name: &str, tensor: Tensor, shape: &[usize]) -> Result<Tensor, EngineError> {
        if tensor.dims() != shape {
            return Err(EngineError::ShapeMismatch {
                name: name.to_string(),
                expected: shape.to_vec(),
                found: tensor.dims().to_vec(),
            });
        }
        Ok(tensor)
    }

    /// A parameter the checkpoint must have (initialised with `init` for a random model).
    pub fn required(
        &mut self,
        name: &str,
        shape: &[usize],
        init: Init,
        position: ParamPosition,
    ) -> Result<Param, EngineError> {
        let value = match (self.lookup(name)?, self.source) {
            (Some(t), _) => Self::checked(name, t, shape)?,
            (None, None) => self.initial(shape, init)?,
            (None, Some(source)) => {
                return Err(EngineError::MissingTensor {
                    dir: source.dir().to_path_buf(),
                    name: name.to_string(),
                    family: self.family.to_string(),
                })
            }
        };
        self.add(name, value, position)
    }

    /// A head parameter: taken from the checkpoint when it is there with the right shape,
    /// otherwise newly initialised (and reported in [`ParamBuilder::newly_initialized`]).
    /// Named with the head prefix in front, when one is set.
    pub fn head(&mut self, name: &str, shape: &[usize], init: Init) -> Result<Param, EngineError> {
        let named = format!("{}{name}", self.head_prefix);
        let value = match self.lookup(name)? {
            Some(t) if t.dims() == shape => t,
            _ => {
                if self.source.is_some() {
                    self.newly_initialized.push(named.clone());
                }
                self.initial(shape, init)?
            }
        };
        self.add(&named, value, ParamPosition::Head)
    }

    /// True when the checkpoint being read has a tensor of this name (false for a model
    /// built from its config alone).
    pub fn has_tensor(&self, name: &str) -> bool {
        self.source.is_some_and(|s| s.contains(name))
    }

    /// Names the head parameters built from now on with `prefix` in front.
    pub fn set_head_prefix(&mut self, prefix: &str) {
        self.head_prefix = prefix.to_string();
    }

    /// Names of head parameters that were not in the checkpoint (or had another shape).
    pub fn newly_initialized(&self) -> &[String] {
        &self.newly_initialized
    }

    /// The parameters built so far.
    pub fn finish(self) -> (ParamStore, Vec<String>) {
        (self.store, self.newly_initialized)
    }
}
