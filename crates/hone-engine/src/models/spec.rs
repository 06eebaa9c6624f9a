//! A model folder's `config.json`: which family it is and the encoder's dimensions.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::ops::Activation;
use crate::EngineError;

/// Model families Hone can fine-tune.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Family {
    /// BERT and its relatives with the same layout (MiniLM, ...).
    Bert,
    DistilBert,
    /// RoBERTa, XLM-RoBERTa and CamemBERT.
    Roberta,
}

/// The `model_type` values Hone trains, for error messages.
pub const SUPPORTED_MODEL_TYPES: &str =
    "bert (incl. MiniLM), distilbert, roberta, xlm-roberta, camembert";

impl Family {
    /// The family of a config.json `model_type`.
    pub fn from_model_type(model_type: &str) -> Option<Self> {
        match model_type {
            "bert" => Some(Family::Bert),
            "distilbert" => Some(Family::DistilBert),
            "roberta" | "xlm-roberta" | "camembert" => Some(Family::Roberta),
            _ => None,
        }
    }

    /// The attribute holding the base model in `*ForSequenceClassification` (tensor prefix).
    pub fn prefix(self) -> &'static str {
        match self {
            Family::Bert => "bert",
            Family::DistilBert => "distilbert",
            Family::Roberta => "roberta",
        }
    }

    /// A display name.
    pub fn name(self) -> &'static str {
        match self {
            Family::Bert => "BERT",
            Family::DistilBert => "DistilBERT",
            Family::Roberta => "RoBERTa",
        }
    }
}

/// Dropout probabilities of a model.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct Dropouts {
    /// After embeddings, attention output and feed-forward output.
    pub hidden: f64,
    /// On attention probabilities.
    pub attention: f64,
    /// Before the classifier.
    pub classifier: f64,
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

    fn usize(&self, key: &str, default: Option<usize>) -> Result<usize, EngineError> {
        match self.raw.get(key) {
            Some(v) => v
                .as_u64()
                .map(|v| v as usize)
                .ok_or_else(|| self.bad(format!("'{key}' must be a non-negative integer"))),
            None => default.ok_or_else(|| self.bad(format!("'{key}' is missing"))),
        }
    }

    fn f64(&self, key: &str, default: f64) -> Result<f64, EngineError> {
        match self.raw.get(key) {
            Some(Value::Null) | None => Ok(default),
            Some(v) => v
                .as_f64()
                .ok_or_else(|| self.bad(format!("'{key}' must be a number"))),
        }
    }

    fn opt_f64(&self, key: &str) -> Result<Option<f64>, EngineError> {
        match self.raw.get(key) {
            Some(Value::Null) | None => Ok(None),
            Some(v) => v
                .as_f64()
                .map(Some)
                .ok_or_else(|| self.bad(format!("'{key}' must be a number"))),
        }
    }

    fn activation(&self, key: &str) -> Result<Activation, EngineError> {
        let name = self.raw.get(key).and_then(|v| v.as_str()).unwrap_or("gelu");
        Activation::from_config(name).ok_or_else(|| {
            self.bad(format!(
                "activation '{name}' is not supported (use gelu, gelu_new, relu or silu)"
            ))
        })
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

impl ModelSpec {
    /// Reads `config.json` of a model folder.
    pub fn from_dir(dir: &Path) -> Result<Self, EngineError> {
        let path = dir.join("config.json");
        if !path.is_file() {
            return Err(EngineError::NotAModelFolder {
                dir: dir.to_path_buf(),
            });
        }
        let text = std::fs::read_to_string(&path).map_err(|e| EngineError::io(&path, e))?;
        let raw: Value = serde_json::from_str(&text).map_err(|e| EngineError::BadModelConfig {
            path: path.clone(),
            message: e.to_string(),
        })?;
        Self::from_json(raw, &path)
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
                supported: SUPPORTED_MODEL_TYPES.into(),
            }
        })?;
        let encoder = match family {
            Family::Bert | Family::Roberta => {
                let position_type = raw
                    .get("position_embedding_type")
                    .and_then(|v| v.as_str())
                    .unwrap_or("absolute");
                if position_type != "absolute" {
                    return Err(EngineError::UnsupportedArchitecture {
                        model_type: format!(
                            "{model_type} with {position_type} position embeddings"
                        ),
                        supported: format!(
                            "{SUPPORTED_MODEL_TYPES} (absolute position embeddings)"
                        ),
                    });
                }
                let hidden = r.f64("hidden_dropout_prob", 0.1)?;
                EncoderConfig {
                    vocab_size: r.usize("vocab_size", None)?,
                    hidden_size: r.usize("hidden_size", None)?,
                    num_layers: r.usize("num_hidden_layers", None)?,
                    num_heads: r.usize("num_attention_heads", None)?,
                    intermediate_size: r.usize("intermediate_size", None)?,
                    activation: r.activation("hidden_act")?,
                    layer_norm_eps: r.f64("layer_norm_eps", 1e-12)?,
                    max_position_embeddings: r.usize("max_position_embeddings", Some(512))?,
                    type_vocab_size: r.usize("type_vocab_size", Some(2))?,
                    pad_token_id: r.usize(
                        "pad_token_id",
                        Some(if family == Family::Roberta { 1 } else { 0 }),
                    )? as u32,
                    initializer_range: r.f64("initializer_range", 0.02)?,
                    dropout: Dropouts {
                        hidden,
                        attention: r.f64("attention_probs_dropout_prob", 0.1)?,
                        classifier: r.opt_f64("classifier_dropout")?.unwrap_or(hidden),
                    },
                    sinusoidal_positions: false,
                }
            }
            Family::DistilBert => EncoderConfig {
                vocab_size: r.usize("vocab_size", None)?,
                hidden_size: r.usize("dim", None)?,
                num_layers: r.usize("n_layers", None)?,
                num_heads: r.usize("n_heads", None)?,
                intermediate_size: r.usize("hidden_dim", None)?,
                activation: r.activation("activation")?,
                layer_norm_eps: 1e-12,
                max_position_embeddings: r.usize("max_position_embeddings", Some(512))?,
                type_vocab_size: 0,
                pad_token_id: r.usize("pad_token_id", Some(0))? as u32,
                initializer_range: r.f64("initializer_range", 0.02)?,
                dropout: Dropouts {
                    hidden: r.f64("dropout", 0.1)?,
                    attention: r.f64("attention_dropout", 0.1)?,
                    classifier: r.f64("seq_classif_dropout", 0.2)?,
                },
                sinusoidal_positions: raw
                    .get("sinusoidal_pos_embds")
                    .and_then(|v| v.as_bool())
                    .unwrap_or(false),
            },
        };
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
        })
    }

    /// The longest input (special tokens included) the position embeddings allow.
    pub fn max_sequence_length(&self) -> usize {
        match self.family {
            // RoBERTa's positions start after the padding index.
            Family::Roberta => self
                .encoder
                .max_position_embeddings
                .saturating_sub(self.encoder.pad_token_id as usize + 1),
            _ => self.encoder.max_position_embeddings,
        }
    }

    /// The `architectures` entry of an exported model with a `task` head
    /// (`XLMRobertaForTokenClassification`).
    pub fn architecture(&self, task: super::Task) -> String {
        let base = match self.model_type.as_str() {
            "xlm-roberta" => "XLMRoberta",
            "camembert" => "Camembert",
            _ => match self.family {
                Family::Bert => "Bert",
                Family::DistilBert => "DistilBert",
                Family::Roberta => "Roberta",
            },
        };
        format!("{base}{}", task.architecture_suffix())
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
