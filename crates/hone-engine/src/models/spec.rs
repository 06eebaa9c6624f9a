//! A model folder's `config.json`: which family it is (read by the family's descriptor) and
//! the encoder's dimensions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::family::{bad_config, supported_model_types, Family, FamilyDescriptor};
use crate::bottleneck::BottleneckConfig;
use crate::lora::{AdapterFolder, AdapterKind, LoraConfig, HEAD_CONFIG};
use crate::ops::Activation;
use crate::EngineError;

/// Dropout probabilities of a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dropouts {
    /// After embeddings, attention output and feed-forward output.
    pub hidden: f64,
    /// On attention probabilities.
    pub attention: f64,
    /// Before the classifier.
    pub classifier: f64,
    /// Before the question-answering head (DistilBERT's `qa_dropout`; the other families
    /// have none there).
    pub answer: f64,
}

/// Encoder dimensions and settings shared by the families.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EncoderConfig {
    pub vocab_size: usize,
    pub hidden_size: usize,
    pub num_layers: usize,
    pub num_heads: usize,
    pub intermediate_size: usize,
    pub activation: Activation,
    pub layer_norm_eps: f64,
    pub max_position_embeddings: usize,
    pub type_vocab_size: usize,
    pub pad_token_id: u32,
    pub initializer_range: f64,
    pub dropout: Dropouts,
    /// DistilBERT with fixed sinusoidal position embeddings (never trained).
    pub sinusoidal_positions: bool,
    /// A decoder's own settings (grouped-query heads, rotary positions, tied head).
    #[serde(default)]
    pub decoder: Option<super::llama::DecoderConfig>,
    /// DeBERTa's own settings (relative attention, embedding projection, pooler).
    #[serde(default)]
    pub deberta: Option<super::deberta::DebertaConfig>,
    /// An encoder–decoder's own settings (T5: both stacks, position buckets, gating).
    #[serde(default)]
    pub t5: Option<super::t5::T5Config>,
}

/// A parsed model config.json.
#[derive(Debug, Clone)]
pub struct ModelSpec {
    pub family: Family,
    /// The `model_type` as written (e.g. `xlm-roberta`).
    pub model_type: String,
    pub encoder: EncoderConfig,
    /// Class names from `id2label`, when the config has a classification head.
    pub labels: Option<Vec<String>>,
    /// The whole config.json, kept so an export changes only what it must.
    pub raw: Value,
    pub path: PathBuf,
    /// LoRA adapters on the targeted linear layers (a LoRA run, or an adapter folder).
    pub lora: Option<LoraConfig>,
    /// Bottleneck adapters in every encoder layer (an adapter run, or an adapter folder).
    pub bottleneck: Option<BottleneckConfig>,
    /// A decoder's learned prefix (a prefix-tuning run, or a PEFT prefix folder).
    pub prefix: Option<crate::prefix::PrefixConfig>,
}

struct Reader<'a> {
    raw: &'a Value,
    path: &'a Path,
}

impl Reader<'_> {
    fn bad(&self, message: String) -> EngineError {
        EngineError::BadModelConfig {
            path: self.path.to_path_buf(),
            message,
        }
    }

    fn labels(&self) -> Result<Option<Vec<String>>, EngineError> {
        let Some(map) = self.raw.get("id2label").and_then(|v| v.as_object()) else {
            return Ok(None);
        };
        let mut pairs = Vec::with_capacity(map.len());
        for (k, v) in map {
            let id: usize = k
                .parse()
                .map_err(|_| self.bad(format!("id2label key '{k}' is not an integer")))?;
            let name = v
                .as_str()
                .ok_or_else(|| self.bad(format!("id2label['{k}'] is not a string")))?;
            pairs.push((id, name.to_string()));
        }
        pairs.sort();
        if pairs.iter().enumerate().any(|(i, (id, _))| i != *id) {
            return Err(self.bad("id2label ids must be 0..n without gaps".into()));
        }
        Ok(Some(pairs.into_iter().map(|(_, n)| n).collect()))
    }
}

/// What adapts a model's frozen base (one kind per model).
pub enum Adapters<'a> {
    /// LoRA: written as PEFT writes it (`adapter_config.json`).
    Lora(&'a LoraConfig),
    /// Bottleneck adapters: Hone's `hone_adapter.json`.
    Bottleneck(&'a BottleneckConfig),
    /// A decoder's prefix: written as PEFT writes it (`adapter_config.json`).
    Prefix(&'a crate::prefix::PrefixConfig),
}

impl Adapters<'_> {
    /// True for the parameters the adapters' run trains (and an export saves).
    pub fn trains(&self, name: &str) -> bool {
        match self {
            Adapters::Lora(l) => l.trains(name),
            Adapters::Bottleneck(b) => b.trains(name),
            Adapters::Prefix(p) => p.trains(name),
        }
    }
}

impl ModelSpec {
    /// Reads `config.json` of a model folder. A LoRA adapter folder reads as its base model's
    /// config with the adapter's settings in [`ModelSpec::lora`], and the head the adapter was
    /// trained with (Hone's `head_config.json`, else PEFT's `task_type`).
    pub fn from_dir(dir: &Path) -> Result<Self, EngineError> {
        if let Some(adapter) = AdapterFolder::open(dir)? {
            let head = dir.join(HEAD_CONFIG);
            let mut spec = if head.is_file() {
                Self::from_json(read_json(&head)?, &head)?
            } else {
                let mut base = Self::from_dir(&adapter.base_dir)?;
                if let Some(task) = adapter
                    .task_type
                    .as_deref()
                    .and_then(crate::lora::task_of_peft_type)
                {
                    base.raw["architectures"] = serde_json::json!([base.architecture(task)]);
                    if base.labels.is_none() && task != super::Task::QuestionAnswering {
                        // PEFT does not keep the labels: name the classifier's rows.
                        if let Some(n) = adapter.classifier_rows()? {
                            let names: Vec<String> = (0..n).map(|i| format!("LABEL_{i}")).collect();
                            base.raw["id2label"] = names
                                .iter()
                                .enumerate()
                                .map(|(i, l)| (i.to_string(), Value::from(l.as_str())))
                                .collect::<serde_json::Map<_, _>>()
                                .into();
                            base.labels = Some(names);
                        }
                    }
                }
                base
            };
            match adapter.kind {
                AdapterKind::Lora(lora) => spec.lora = Some(lora),
                AdapterKind::Bottleneck(b) => spec.bottleneck = Some(b),
                AdapterKind::Prefix(p) => spec.prefix = Some(p),
            }
            return Ok(spec);
        }
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(EngineError::NotAModelFolder {
                dir: dir.to_path_buf(),
            });
        }
        Self::from_json(read_json(&path)?, &path)
    }

    /// Parses a config.json value (`path` is for messages).
    pub fn from_json(raw: Value, path: &Path) -> Result<Self, EngineError> {
        let r = Reader { raw: &raw, path };
        let model_type = raw
            .get("model_type")
            .and_then(|v| v.as_str())
            .ok_or_else(|| r.bad("'model_type' is missing".into()))?
            .to_string();
        let family = Family::from_model_type(&model_type).ok_or_else(|| {
            EngineError::UnsupportedArchitecture {
                model_type: model_type.clone(),
                supported: supported_model_types(),
            }
        })?;
        let encoder =
            (family.descriptor().encoder_config)(&raw).map_err(|e| bad_config(path, e))?;
        let e = &encoder;
        for (name, p) in [
            ("hidden dropout", e.dropout.hidden),
            ("attention dropout", e.dropout.attention),
            ("classifier dropout", e.dropout.classifier),
        ] {
            if !(0.0..1.0).contains(&p) {
                return Err(r.bad(format!("{name} probability {p} must be in [0, 1)")));
            }
        }
        if e.num_heads == 0 || e.hidden_size % e.num_heads != 0 {
            return Err(r.bad(format!(
                "hidden size {} is not divisible by {} attention heads",
                e.hidden_size, e.num_heads
            )));
        }
        if e.num_layers == 0 || e.vocab_size == 0 {
            return Err(r.bad("the model needs at least one layer and a vocabulary".into()));
        }
        let labels = r.labels()?;
        Ok(ModelSpec {
            family,
            model_type,
            encoder,
            labels,
            raw,
            path: path.to_path_buf(),
            lora: None,
            bottleneck: None,
            prefix: None,
        })
    }

    /// What adapts the model, when something does (LoRA, bottleneck adapters or a prefix;
    /// a model takes one).
    pub fn adapters(&self) -> Option<Adapters<'_>> {
        match (&self.lora, &self.bottleneck, &self.prefix) {
            (Some(lora), _, _) => Some(Adapters::Lora(lora)),
            (None, Some(b), _) => Some(Adapters::Bottleneck(b)),
            (None, None, Some(p)) => Some(Adapters::Prefix(p)),
            (None, None, None) => None,
        }
    }

    /// The family's descriptor.
    pub fn descriptor(&self) -> &'static FamilyDescriptor {
        self.family.descriptor()
    }

    /// The longest input (special tokens included) the position embeddings allow: a prefix's
    /// virtual tokens take the first positions.
    pub fn max_sequence_length(&self) -> usize {
        let prefix = self.prefix.as_ref().map_or(0, |p| p.tokens);
        self.descriptor()
            .max_sequence_length(&self.encoder)
            .saturating_sub(prefix)
            .max(1)
    }

    /// The `architectures` entry of an exported model with a `task` head
    /// (`XLMRobertaForTokenClassification`).
    pub fn architecture(&self, task: super::Task) -> String {
        self.descriptor().architecture(&self.model_type, task)
    }

    /// The task of a fine-tuned folder, from its config's `architectures` (`None` for a base
    /// model or a head Hone does not have).
    pub fn task(&self) -> Option<super::Task> {
        self.raw
            .get("architectures")?
            .as_array()?
            .iter()
            .filter_map(|a| a.as_str())
            .find_map(super::Task::from_architecture)
    }
}

/// A JSON file, parsed (a config).
fn read_json(path: &Path) -> Result<Value, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    serde_json::from_str(&text).map_err(|e| EngineError::BadModelConfig {
        path: path.to_path_buf(),
        message: e.to_string(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn unsupported_model_type_lists_what_is_supported() {
        let err = ModelSpec::from_json(json!({"model_type": "gpt2"}), Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("gpt2") && err.contains("distilbert"), "{err}");
    }

    #[test]
    fn missing_dimension_is_named() {
        let err = ModelSpec::from_json(
            json!({"model_type": "bert", "vocab_size": 10, "hidden_size": 8}),
            Path::new("c.json"),
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("num_hidden_layers"), "{err}");
    }

    #[test]
    fn relative_positions_and_unknown_activations_are_refused_with_the_reason() {
        let base = json!({"model_type": "bert", "vocab_size": 10, "hidden_size": 8,
                          "num_hidden_layers": 1, "num_attention_heads": 2,
                          "intermediate_size": 16});
        let mut relative = base.clone();
        relative["position_embedding_type"] = json!("relative_key");
        let err = ModelSpec::from_json(relative, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("relative_key position embeddings"), "{err}");
        let mut odd = base.clone();
        odd["hidden_act"] = json!("swish_v9");
        let err = ModelSpec::from_json(odd, Path::new("c.json"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("swish_v9"), "{err}");
        let mut nulls = base;
        nulls["classifier_dropout"] = json!(null);
        nulls["hidden_dropout_prob"] = json!(0.2);
        let spec = ModelSpec::from_json(nulls, Path::new("c.json")).unwrap();
        assert_eq!(spec.encoder.dropout.classifier, 0.2);
    }

    #[test]
    fn roberta_positions_leave_room_for_the_padding_offset() {
        let spec = ModelSpec::from_json(
            json!({"model_type": "xlm-roberta", "vocab_size": 10, "hidden_size": 8,
                   "num_hidden_layers": 1, "num_attention_heads": 2, "intermediate_size": 16,
                   "max_position_embeddings": 514, "pad_token_id": 1}),
            Path::new("c.json"),
        )
        .unwrap();
        assert_eq!(spec.max_sequence_length(), 512);
        assert_eq!(
            spec.architecture(crate::models::Task::SequenceClassification),
            "XLMRobertaForSequenceClassification"
        );
    }
}
