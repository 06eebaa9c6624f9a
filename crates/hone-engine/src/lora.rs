//! LoRA (low-rank adaptation) as PEFT defines it: a targeted linear layer `W` gains two
//! trained matrices `A` `[r × in]` and `B` `[out × r]` and computes
//! `x·Wᵀ + b + scale · dropout(x)·Aᵀ·Bᵀ`, `scale = α / r` (rsLoRA: `α / √r`), with `W` and `b`
//! frozen. The branch is part of [`crate::models::nn::Linear`] and runs through the ordinary
//! graph ops ([`crate::graph::Graph::linear`]), so every family and both graphs get it from one
//! definition.
//!
//! This module holds the settings, which parameters a LoRA run trains (the adapters and the
//! `modules_to_save`, PEFT's name for modules trained in full: the task head), the PEFT folder
//! format (`adapter_config.json`, `adapter_model.safetensors` with `base_model.model.` names)
//! and merging the adapters into the weights (`W + scale·B·A`).

use std::collections::HashMap;
use std::path::{Path, PathBuf};

use candle_core::Tensor;
use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::models::Task;
use crate::EngineError;

/// The file PEFT keeps an adapter's settings in.
pub const ADAPTER_CONFIG: &str = "adapter_config.json";
/// The file PEFT keeps an adapter's tensors in.
pub const ADAPTER_WEIGHTS: &str = "adapter_model.safetensors";
/// The fine-tuned model's own config.json (labels, head class) next to a Hone adapter: the
/// base model's config.json does not have them, and a `config.json` in an adapter folder
/// would make `transformers` read the folder as a full model.
pub const HEAD_CONFIG: &str = "head_config.json";
/// What PEFT puts before every tensor name of the wrapped model.
const PEFT_PREFIX: &str = "base_model.model.";

/// Which linear layers get adapters: module names (a layer matches when its name is the
/// entry or ends with `.entry`), or one regular expression the whole name must match (PEFT's
/// two forms of `target_modules`).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum LoraTargets {
    Names(Vec<String>),
    Pattern(String),
}

impl LoraTargets {
    /// Names from a comma-separated list (`query,value`).
    pub fn parse_list(text: &str) -> Self {
        LoraTargets::Names(
            text.split(',')
                .map(str::trim)
                .filter(|s| !s.is_empty())
                .map(str::to_string)
                .collect(),
        )
    }

    /// Which entry (by index; 0 for a pattern) matches the linear layer `module`.
    fn matching(&self, module: &str) -> Result<Option<usize>, EngineError> {
        Ok(match self {
            LoraTargets::Names(names) => names
                .iter()
                .position(|t| module == t || module.ends_with(&format!(".{t}"))),
            LoraTargets::Pattern(p) => {
                let re = regex::Regex::new(&format!("^(?:{p})$")).map_err(|e| {
                    EngineError::InvalidConfig(format!("LoRA target pattern '{p}': {e}"))
                })?;
                re.is_match(module).then_some(0)
            }
        })
    }

    fn entries(&self) -> Vec<String> {
        match self {
            LoraTargets::Names(n) => n.clone(),
            LoraTargets::Pattern(p) => vec![p.clone()],
        }
    }
}

/// The settings of a LoRA model.
#[derive(Debug, Clone, PartialEq)]
pub struct LoraConfig {
    /// The rank `r` of `A` and `B`.
    pub r: usize,
    /// α: the branch is scaled by α / r (or α / √r with `rslora`).
    pub alpha: f64,
    /// Dropout on the branch's input.
    pub dropout: f64,
    pub targets: LoraTargets,
    /// Rank-stabilised scaling (α / √r).
    pub rslora: bool,
    /// Modules trained in full and saved with the adapter (the head), PEFT's
    /// `modules_to_save`: a module is saved when its name (or a parent's) ends with an entry.
    pub modules_to_save: Vec<String>,
}

impl LoraConfig {
    /// The factor on the branch's output.
    pub fn scale(&self) -> f64 {
        if self.rslora {
            self.alpha / (self.r as f64).sqrt()
        } else {
            self.alpha / self.r as f64
        }
    }

    /// Checks the numbers and that there is a target.
    pub fn validate(&self) -> Result<(), EngineError> {
        check_numbers(self.r, self.alpha, self.dropout)?;
        if self.targets.entries().is_empty() {
            return Err(EngineError::InvalidConfig(
                "LoRA needs at least one target module (e.g. query,value)".into(),
            ));
        }
        Ok(())
    }

    /// Which target (by index) picks the linear layer `module`, if any.
    pub fn target_of(&self, module: &str) -> Result<Option<usize>, EngineError> {
        self.targets.matching(module)
    }

    /// The target entries, as written.
    pub fn target_entries(&self) -> Vec<String> {
        self.targets.entries()
    }

    /// True when the parameter `name` belongs to a module trained in full.
    pub fn saves(&self, name: &str) -> bool {
        module_saved(&self.modules_to_save, name)
    }

    /// True for the parameters a LoRA run trains: the adapters and the saved modules.
    pub fn trains(&self, name: &str) -> bool {
        is_adapter_param(name) || self.saves(name)
    }
}

/// True when the parameter `name` belongs to a module of `modules_to_save`: PEFT wraps the
/// first module whose name ends with an entry, and its children go with it.
pub fn module_saved(modules_to_save: &[String], name: &str) -> bool {
    let module = module_of(name);
    let mut prefixes = module
        .match_indices('.')
        .map(|(i, _)| &module[..i])
        .chain(std::iter::once(module));
    prefixes.any(|m| modules_to_save.iter().any(|s| m.ends_with(s.as_str())))
}

/// Checks a LoRA rank, alpha and dropout.
pub fn check_numbers(r: usize, alpha: f64, dropout: f64) -> Result<(), EngineError> {
    let bad = |m: String| Err(EngineError::InvalidConfig(m));
    if r == 0 {
        return bad("the LoRA rank must be at least 1".into());
    }
    if !(alpha.is_finite() && alpha > 0.0) {
        return bad(format!("LoRA alpha must be positive, got {alpha}"));
    }
    if !(0.0..1.0).contains(&dropout) {
        return bad(format!("LoRA dropout must be in [0, 1), got {dropout}"));
    }
    Ok(())
}

/// The module a parameter belongs to (`…query.weight` → `…query`).
fn module_of(name: &str) -> &str {
    name.rsplit_once('.').map_or(name, |(m, _)| m)
}

/// True for a LoRA matrix (`….lora_A.weight`, `….lora_B.weight`).
pub fn is_adapter_param(name: &str) -> bool {
    name.ends_with(".lora_A.weight") || name.ends_with(".lora_B.weight")
}

/// PEFT's `task_type` for a head (multiple choice has none: PEFT wraps it as a plain model).
pub fn peft_task_type(task: Task) -> Option<&'static str> {
    match task {
        Task::SequenceClassification => Some("SEQ_CLS"),
        Task::TokenClassification => Some("TOKEN_CLS"),
        Task::QuestionAnswering => Some("QUESTION_ANS"),
        Task::CausalLm => Some("CAUSAL_LM"),
        Task::Text2Text => Some("SEQ_2_SEQ_LM"),
        Task::MultipleChoice => None,
    }
}

/// The head a PEFT `task_type` names.
pub fn task_of_peft_type(task_type: &str) -> Option<Task> {
    match task_type {
        "SEQ_CLS" => Some(Task::SequenceClassification),
        "TOKEN_CLS" => Some(Task::TokenClassification),
        "QUESTION_ANS" => Some(Task::QuestionAnswering),
        "CAUSAL_LM" => Some(Task::CausalLm),
        "SEQ_2_SEQ_LM" => Some(Task::Text2Text),
        _ => None,
    }
}

/// `adapter_config.json` as PEFT writes it for LoRA: the keys Hone reads and writes, and any
/// other kept as it was.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct PeftAdapterConfig {
    pub peft_type: String,
    #[serde(default)]
    pub task_type: Option<String>,
    pub r: usize,
    pub lora_alpha: f64,
    #[serde(default)]
    pub lora_dropout: f64,
    pub target_modules: Option<LoraTargets>,
    #[serde(default)]
    pub modules_to_save: Option<Vec<String>>,
    #[serde(default = "no_bias")]
    pub bias: String,
    #[serde(default)]
    pub fan_in_fan_out: bool,
    #[serde(default)]
    pub use_rslora: bool,
    #[serde(default)]
    pub base_model_name_or_path: Option<String>,
    #[serde(default)]
    pub revision: Option<String>,
    #[serde(flatten)]
    pub other: serde_json::Map<String, Value>,
}

fn no_bias() -> String {
    "none".into()
}

impl PeftAdapterConfig {
    /// The settings Hone trains and runs, or why this adapter cannot be used.
    pub fn lora(&self, path: &Path) -> Result<LoraConfig, EngineError> {
        let bad = |message: String| EngineError::BadAdapter {
            path: path.to_path_buf(),
            message,
        };
        if self.peft_type != "LORA" {
            return Err(bad(format!(
                "it is a {} adapter; Hone reads LoRA and prefix-tuning adapters",
                self.peft_type
            )));
        }
        if self.bias != "none" {
            return Err(bad(format!(
                "bias = \"{}\" (trained biases) is not supported; Hone reads bias = \"none\"",
                self.bias
            )));
        }
        if self.fan_in_fan_out {
            return Err(bad(
                "fan_in_fan_out (GPT-2's Conv1D layers) is not supported".into(),
            ));
        }
        for key in ["use_dora", "lora_bias"] {
            if self.other.get(key).and_then(Value::as_bool) == Some(true) {
                return Err(bad(format!("{key} is not supported")));
            }
        }
        for key in ["rank_pattern", "alpha_pattern"] {
            if self
                .other
                .get(key)
                .and_then(Value::as_object)
                .is_some_and(|m| !m.is_empty())
            {
                return Err(bad(format!(
                    "{key} (a rank or alpha per layer) is not supported"
                )));
            }
        }
        if self
            .other
            .get("layers_to_transform")
            .is_some_and(|v| !v.is_null())
        {
            return Err(bad("layers_to_transform is not supported".into()));
        }
        let cfg = LoraConfig {
            r: self.r,
            alpha: self.lora_alpha,
            dropout: self.lora_dropout,
            targets: self
                .target_modules
                .clone()
                .ok_or_else(|| bad("it names no target_modules".into()))?,
            rslora: self.use_rslora,
            modules_to_save: self.modules_to_save.clone().unwrap_or_else(|| {
                match self.task_type.as_deref() {
                    Some("QUESTION_ANS") => vec!["qa_outputs".into()],
                    Some("SEQ_CLS") | Some("TOKEN_CLS") => {
                        vec!["classifier".into(), "score".into()]
                    }
                    _ => Vec::new(),
                }
            }),
        };
        cfg.validate().map_err(|e| bad(e.to_string()))?;
        Ok(cfg)
    }

    /// The config PEFT would write for `cfg` on a `task` head over `base`.
    pub fn for_lora(cfg: &LoraConfig, task: Task, base: &BaseModelRef) -> Self {
        let mut other = serde_json::Map::new();
        other.insert("inference_mode".into(), Value::Bool(true));
        other.insert("init_lora_weights".into(), Value::Bool(true));
        other.insert("use_dora".into(), Value::Bool(false));
        other.insert("layers_to_transform".into(), Value::Null);
        other.insert("layers_pattern".into(), Value::Null);
        other.insert("rank_pattern".into(), Value::Object(Default::default()));
        other.insert("alpha_pattern".into(), Value::Object(Default::default()));
        other.insert("auto_mapping".into(), Value::Null);
        PeftAdapterConfig {
            peft_type: "LORA".into(),
            task_type: peft_task_type(task).map(str::to_string),
            r: cfg.r,
            lora_alpha: cfg.alpha,
            lora_dropout: cfg.dropout,
            target_modules: Some(cfg.targets.clone()),
            modules_to_save: (!cfg.modules_to_save.is_empty()).then(|| cfg.modules_to_save.clone()),
            bias: "none".into(),
            fan_in_fan_out: false,
            use_rslora: cfg.rslora,
            base_model_name_or_path: Some(base.name.clone()),
            revision: base.revision.clone(),
            other,
        }
    }
}

/// How an adapter names its base model: a Hub repository id (with the revision) when the base
/// is a snapshot in a Hugging Face cache, else the folder's absolute path.
#[derive(Debug, Clone, PartialEq)]
pub struct BaseModelRef {
    pub name: String,
    pub revision: Option<String>,
}

impl BaseModelRef {
    /// The reference for a base model folder.
    pub fn for_folder(dir: &Path) -> Self {
        let dir = dir.canonicalize().unwrap_or_else(|_| dir.to_path_buf());
        let parts: Vec<String> = dir
            .components()
            .map(|c| c.as_os_str().to_string_lossy().into_owned())
            .collect();
        // …/models--org--name/snapshots/<commit>
        if let [.., repo, snapshots, commit] = parts.as_slice() {
            if snapshots == "snapshots" {
                if let Some(id) = repo.strip_prefix("models--") {
                    return BaseModelRef {
                        name: id.replace("--", "/"),
                        revision: Some(commit.clone()),
                    };
                }
            }
        }
        BaseModelRef {
            name: dir.display().to_string(),
            revision: None,
        }
    }
}

/// What an adapter folder adds to its base model.
#[derive(Debug, Clone)]
pub enum AdapterKind {
    /// A PEFT LoRA adapter (`adapter_config.json`).
    Lora(LoraConfig),
    /// Hone's bottleneck adapters (`hone_adapter.json`, [`crate::bottleneck`]).
    Bottleneck(crate::bottleneck::BottleneckConfig),
    /// A PEFT prefix (`adapter_config.json` with `PREFIX_TUNING`, [`crate::prefix`]).
    Prefix(crate::prefix::PrefixConfig),
}

/// An adapter folder (PEFT LoRA, or Hone's bottleneck adapters) and the base model folder it
/// applies to.
#[derive(Debug, Clone)]
pub struct AdapterFolder {
    pub dir: PathBuf,
    pub kind: AdapterKind,
    /// The head, as PEFT's `task_type` names it.
    pub task_type: Option<String>,
    /// The settings file as written (for model cards).
    pub settings: Value,
    pub base_dir: PathBuf,
}

impl AdapterFolder {
    /// Reads `dir` as an adapter folder: `None` when it has neither `adapter_config.json` nor
    /// `hone_adapter.json`.
    pub fn open(dir: &Path) -> Result<Option<Self>, EngineError> {
        let peft = dir.join(ADAPTER_CONFIG);
        let hone = dir.join(crate::bottleneck::ADAPTER_FILE);
        let path = if peft.is_file() {
            peft
        } else if hone.is_file() {
            hone
        } else {
            return Ok(None);
        };
        let bad = |message: String| EngineError::BadAdapter {
            path: path.clone(),
            message,
        };
        let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
        let settings: Value = serde_json::from_str(&text).map_err(|e| bad(e.to_string()))?;
        let peft_type = settings.get("peft_type").and_then(Value::as_str);
        let (kind, task_type, base, revision) =
            if path.ends_with(ADAPTER_CONFIG) && peft_type == Some(crate::prefix::PEFT_TYPE) {
                let prefix = crate::prefix::from_peft(&settings).map_err(bad)?;
                let text = |key: &str| {
                    settings
                        .get(key)
                        .and_then(Value::as_str)
                        .map(str::to_string)
                };
                (
                    AdapterKind::Prefix(prefix),
                    text("task_type"),
                    text("base_model_name_or_path").unwrap_or_default(),
                    text("revision"),
                )
            } else if path.ends_with(ADAPTER_CONFIG) {
                let config: PeftAdapterConfig =
                    serde_json::from_value(settings.clone()).map_err(|e| bad(e.to_string()))?;
                let lora = config.lora(&path)?;
                let base = config.base_model_name_or_path.clone().unwrap_or_default();
                (
                    AdapterKind::Lora(lora),
                    config.task_type,
                    base,
                    config.revision,
                )
            } else {
                let file: crate::bottleneck::AdapterFile =
                    serde_json::from_value(settings.clone()).map_err(|e| bad(e.to_string()))?;
                if file.method != "bottleneck" {
                    return Err(bad(format!(
                        "method '{}' is not one Hone knows (bottleneck)",
                        file.method
                    )));
                }
                file.config.validate().map_err(|e| bad(e.to_string()))?;
                (
                    AdapterKind::Bottleneck(file.config),
                    file.task_type,
                    file.base_model_name_or_path,
                    file.revision,
                )
            };
        if !dir.join(ADAPTER_WEIGHTS).is_file() {
            return Err(EngineError::BadAdapter {
                path: dir.join(ADAPTER_WEIGHTS),
                message: "the adapter's weights are missing (they are saved as \
                          adapter_model.safetensors)"
                    .into(),
            });
        }
        let base_dir = resolve_base(dir, &base, revision.as_deref())
            .or_else(|| base_folder_recorded(dir))
            .ok_or_else(|| {
                bad(format!(
                    "its base model '{base}' is neither a folder here nor in the Hugging Face \
                 cache; download it (hone hub download {base}) or set \
                 base_model_name_or_path to the base model's folder"
                ))
            })?;
        Ok(Some(AdapterFolder {
            dir: dir.to_path_buf(),
            kind,
            task_type,
            settings,
            base_dir,
        }))
    }

    /// The number of outputs of the adapter's classifier (`classifier.weight`, or
    /// RoBERTa's `classifier.out_proj.weight`), when it saved one.
    pub fn classifier_rows(&self) -> Result<Option<usize>, EngineError> {
        let file = self.dir.join(ADAPTER_WEIGHTS);
        // SAFETY: a read-only map of a file Hone does not write while reading it.
        let st =
            unsafe { candle_core::safetensors::MmapedSafetensors::new(&file) }.map_err(|e| {
                EngineError::BadAdapter {
                    path: file.clone(),
                    message: e.to_string(),
                }
            })?;
        let tensors = st.tensors();
        let rows = |name: &str| {
            tensors
                .iter()
                .find(|(n, _)| n == &format!("{PEFT_PREFIX}{name}"))
                .and_then(|(_, v)| v.shape().first().copied())
        };
        Ok(rows("classifier.out_proj.weight").or_else(|| rows("classifier.weight")))
    }

    /// The tensor names of the adapter's file as Hone names parameters (PEFT's
    /// `base_model.model.` dropped).
    pub fn hone_name(peft_name: &str) -> &str {
        peft_name.strip_prefix(PEFT_PREFIX).unwrap_or(peft_name)
    }
}

/// The key of `head_config.json` where Hone records the base model's folder on the machine
/// that trained the adapter: found even when `base_model_name_or_path` names a repository in a
/// cache other than the standard one (the app's own Hub cache).
pub const BASE_FOLDER_KEY: &str = "hone_base_model_folder";

/// The base model folder recorded in an adapter's `head_config.json`, if it is still there.
fn base_folder_recorded(dir: &Path) -> Option<PathBuf> {
    let text = std::fs::read_to_string(dir.join(HEAD_CONFIG)).ok()?;
    let head: Value = serde_json::from_str(&text).ok()?;
    let folder = PathBuf::from(head.get(BASE_FOLDER_KEY)?.as_str()?);
    folder.join("config.json").is_file().then_some(folder)
}

/// The base model folder an adapter names: a folder (absolute, relative to the working
/// folder or to the adapter's), or a repository id in the Hugging Face cache (`HF_HUB_CACHE`,
/// `HF_HOME/hub` or `~/.cache/huggingface/hub`) at its revision or `main`.
fn resolve_base(adapter: &Path, name: &str, revision: Option<&str>) -> Option<PathBuf> {
    if name.is_empty() {
        return None;
    }
    let is_model = |d: &Path| d.join("config.json").is_file();
    let as_path = Path::new(name);
    for candidate in [as_path.to_path_buf(), adapter.join(name)] {
        if is_model(&candidate) {
            return Some(candidate);
        }
    }
    let cache = std::env::var_os("HF_HUB_CACHE")
        .map(PathBuf::from)
        .or_else(|| std::env::var_os("HF_HOME").map(|h| PathBuf::from(h).join("hub")))
        .or_else(|| {
            std::env::var_os("HOME").map(|h| PathBuf::from(h).join(".cache/huggingface/hub"))
        })?;
    let repo = cache.join(format!("models--{}", name.replace('/', "--")));
    let revision = revision.unwrap_or("main");
    let commit = std::fs::read_to_string(repo.join("refs").join(revision))
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|_| revision.to_string());
    let snapshot = repo.join("snapshots").join(commit);
    is_model(&snapshot).then_some(snapshot)
}

/// The tensors an adapter export writes, under PEFT's names: those of `values` (Hone names)
/// that `trains` picks (the adapters and the saved modules).
pub fn adapter_tensors(
    trains: impl Fn(&str) -> bool,
    values: &HashMap<String, Tensor>,
) -> HashMap<String, Tensor> {
    values
        .iter()
        .filter(|(name, _)| trains(name))
        .map(|(name, t)| {
            // PEFT keeps a prompt-learning method's own tensor outside the wrapped model.
            let saved = if crate::prefix::is_adapter_param(name) {
                name.clone()
            } else {
                format!("{PEFT_PREFIX}{name}")
            };
            (saved, t.clone())
        })
        .collect()
}

/// `values` with every adapter merged into its layer (`W + scale·B·A`) and the adapter
/// tensors dropped: a plain model's weights.
pub fn merged(
    cfg: &LoraConfig,
    values: &HashMap<String, Tensor>,
) -> Result<HashMap<String, Tensor>, EngineError> {
    let scale = cfg.scale();
    let mut out: HashMap<String, Tensor> = values
        .iter()
        .filter(|(n, _)| !is_adapter_param(n))
        .map(|(n, t)| (n.clone(), t.clone()))
        .collect();
    for (name, a) in values {
        let Some(module) = name.strip_suffix(".lora_A.weight") else {
            continue;
        };
        let missing = |what: &str| {
            EngineError::InvalidConfig(format!("the adapter of {module} has no {what}"))
        };
        let b = values
            .get(&format!("{module}.lora_B.weight"))
            .ok_or_else(|| missing("B matrix"))?;
        let weight_name = format!("{module}.weight");
        let w = out
            .get(&weight_name)
            .ok_or_else(|| missing("base weight"))?;
        let delta = (b.matmul(a)? * scale)?;
        let merged = (w + delta.to_dtype(w.dtype())?)?;
        out.insert(weight_name, merged);
    }
    Ok(out)
}

/// The folder a model's tokenizer is read from: `dir`, or the base model's folder for an
/// adapter saved without tokenizer files (PEFT saves none).
pub fn tokenizer_folder(dir: &Path) -> Result<PathBuf, EngineError> {
    let has_tokenizer = hone_data::TOKENIZER_SOURCES
        .iter()
        .any(|f| dir.join(f).is_file());
    if has_tokenizer {
        return Ok(dir.to_path_buf());
    }
    base_folder(dir)
}

/// The base model folder of an adapter folder, or `dir` itself for a full model.
pub fn base_folder(dir: &Path) -> Result<PathBuf, EngineError> {
    Ok(AdapterFolder::open(dir)?.map_or_else(|| dir.to_path_buf(), |a| a.base_dir))
}

/// True for a folder Hone can load a model from: a full model (`config.json`) or an adapter
/// (`adapter_config.json`, `hone_adapter.json`).
pub fn is_model_folder(dir: &Path) -> bool {
    dir.join("config.json").is_file()
        || dir.join(ADAPTER_CONFIG).is_file()
        || dir.join(crate::bottleneck::ADAPTER_FILE).is_file()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg() -> LoraConfig {
        LoraConfig {
            r: 4,
            alpha: 8.0,
            dropout: 0.0,
            targets: LoraTargets::parse_list("query, value"),
            rslora: false,
            modules_to_save: vec!["classifier".into()],
        }
    }

    #[test]
    fn targets_match_whole_module_names_as_peft_does() {
        let c = cfg();
        let t = |m| c.target_of(m).unwrap();
        assert_eq!(t("bert.encoder.layer.0.attention.self.query"), Some(0));
        assert_eq!(t("bert.encoder.layer.0.attention.self.value"), Some(1));
        assert_eq!(t("bert.encoder.layer.0.attention.self.key"), None);
        assert_eq!(t("bert.encoder.layer.0.attention.self.subquery"), None);
        let pattern = LoraConfig {
            targets: LoraTargets::Pattern(r".*\.layer\.1\..*(query|key)".into()),
            ..cfg()
        };
        assert_eq!(
            pattern
                .target_of("bert.encoder.layer.1.attention.self.key")
                .unwrap(),
            Some(0)
        );
        assert_eq!(
            pattern
                .target_of("bert.encoder.layer.0.attention.self.key")
                .unwrap(),
            None
        );
    }

    #[test]
    fn saved_modules_take_their_children() {
        let c = LoraConfig {
            modules_to_save: vec!["classifier".into()],
            ..cfg()
        };
        assert!(c.saves("classifier.weight"));
        assert!(c.saves("classifier.out_proj.bias"));
        assert!(c.saves("pre_classifier.weight"), "PEFT matches by suffix");
        assert!(!c.saves("bert.pooler.dense.weight"));
        assert!(c.trains("bert.encoder.layer.0.attention.self.query.lora_A.weight"));
        assert!(!c.trains("bert.encoder.layer.0.attention.self.query.weight"));
    }

    #[test]
    fn scale_is_alpha_over_rank_or_its_root() {
        assert_eq!(cfg().scale(), 2.0);
        let rs = LoraConfig {
            rslora: true,
            ..cfg()
        };
        assert_eq!(rs.scale(), 4.0);
    }

    #[test]
    fn merging_adds_the_scaled_product() {
        let d = candle_core::Device::Cpu;
        let mut v = HashMap::new();
        v.insert(
            "l.weight".to_string(),
            Tensor::new(&[[1f32, 0.], [0., 1.]], &d).unwrap(),
        );
        v.insert(
            "l.lora_A.weight".to_string(),
            Tensor::new(&[[1f32, 2.]], &d).unwrap(),
        );
        v.insert(
            "l.lora_B.weight".to_string(),
            Tensor::new(&[[3f32], [4.]], &d).unwrap(),
        );
        let c = LoraConfig {
            r: 1,
            alpha: 0.5,
            ..cfg()
        };
        let m = merged(&c, &v).unwrap();
        assert_eq!(m.len(), 1);
        let w: Vec<Vec<f32>> = m["l.weight"].to_vec2().unwrap();
        assert_eq!(w, vec![vec![2.5, 3.0], vec![2.0, 5.0]]);
    }

    #[test]
    fn a_hub_cache_snapshot_is_named_by_its_repository() {
        let tmp = std::env::temp_dir().join(format!("hone-lora-{}", std::process::id()));
        let snap = tmp.join("models--org--tiny/snapshots/abc123");
        std::fs::create_dir_all(&snap).unwrap();
        let r = BaseModelRef::for_folder(&snap);
        assert_eq!(r.name, "org/tiny");
        assert_eq!(r.revision.as_deref(), Some("abc123"));
        let plain = BaseModelRef::for_folder(&tmp);
        assert!(plain.name.starts_with('/'));
        std::fs::remove_dir_all(&tmp).unwrap();
    }
}
