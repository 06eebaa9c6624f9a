//! Running a model without gradients: logits for many examples, evaluation reports and
//! predictions from an exported model folder.

use std::path::Path;

use candle_core::Device;
use hone_data::{Batch, Batcher, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::batch::EncodedSet;
use crate::metrics::ClassificationReport;
use crate::models::{Model, ModelSpec, Task};
use crate::step::Stepper;
use crate::EngineError;

/// Logits `[batch][label]` of one padded batch in evaluation mode (one row per sequence for
/// sequence heads, per real token for token heads), on `stepper`'s buffers.
pub fn batch_logits(
    model: &Model,
    stepper: &mut Stepper,
    batch: &Batch,
) -> Result<Vec<Vec<f32>>, EngineError> {
    Ok(stepper
        .logits(model, batch)?
        .rows()
        .map(<[f32]>::to_vec)
        .collect())
}

/// Logits of every example of `set` (in the set's order), computed in evaluation mode in
/// length-sorted batches of `batch_size`.
pub fn logits(
    model: &Model,
    set: &EncodedSet,
    batch_size: usize,
) -> Result<Vec<Vec<f32>>, EngineError> {
    logits_with(model, set, batch_size, &mut Stepper::new(model, true))
}

/// [`logits`] on the buffers of an existing stepper (a training run's own, so evaluation
/// needs no memory of its own when `batch_size` is at most the training batch).
pub fn logits_with(
    model: &Model,
    set: &EncodedSet,
    batch_size: usize,
    stepper: &mut Stepper,
) -> Result<Vec<Vec<f32>>, EngineError> {
    if model.task() != Task::SequenceClassification {
        return Err(EngineError::InvalidConfig(format!(
            "per-example logits need a sequence head, this model is for {}",
            model.task().name()
        )));
    }
    let batcher = Batcher::new(model.spec().encoder.pad_token_id);
    let order = set.by_length();
    let mut out = vec![Vec::new(); set.len()];
    for chunk in order.chunks(batch_size.max(1)) {
        let mut batch = set.batch(&batcher, chunk);
        batch.labels.clear();
        let rows = batch_logits(model, stepper, &batch)?;
        for (&i, row) in chunk.iter().zip(rows) {
            out[i] = row;
        }
    }
    Ok(out)
}

/// Softmax of one row of logits, in f64.
pub fn probabilities(logits: &[f32]) -> Vec<f64> {
    let max = logits.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64;
    let exps: Vec<f64> = logits.iter().map(|&l| (l as f64 - max).exp()).collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The index of the largest logit.
pub fn argmax(row: &[f32]) -> u32 {
    row.iter()
        .enumerate()
        .fold((0, f32::NEG_INFINITY), |best, (i, &v)| {
            if v > best.1 {
                (i, v)
            } else {
                best
            }
        })
        .0 as u32
}

/// Evaluates `model` on a labeled set: mean cross-entropy and classification scores.
pub fn evaluate(
    model: &Model,
    set: &EncodedSet,
    labels: &[String],
    batch_size: usize,
) -> Result<ClassificationReport, EngineError> {
    evaluate_with(
        model,
        set,
        labels,
        batch_size,
        &mut Stepper::new(model, true),
    )
    .map(|(report, _)| report)
}

/// [`evaluate`] on the buffers of an existing stepper (see [`logits_with`]); also gives the
/// logits of every example, in the set's order.
pub fn evaluate_with(
    model: &Model,
    set: &EncodedSet,
    labels: &[String],
    batch_size: usize,
    stepper: &mut Stepper,
) -> Result<(ClassificationReport, Vec<Vec<f32>>), EngineError> {
    let rows = logits_with(model, set, batch_size, stepper)?;
    let mut loss = 0f64;
    let mut predicted = Vec::with_capacity(rows.len());
    for (row, &truth) in rows.iter().zip(&set.labels) {
        let p = probabilities(row);
        loss -= p[truth as usize].max(f64::MIN_POSITIVE).ln();
        predicted.push(argmax(row));
    }
    let loss = loss / rows.len().max(1) as f64;
    let report = ClassificationReport::from_predictions(labels, &set.labels, &predicted, loss);
    Ok((report, rows))
}

/// The prediction for one text.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prediction {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub text_pair: Option<String>,
    /// The most probable class.
    pub label: String,
    pub label_id: u32,
    /// Class probabilities, in the order of `labels`.
    pub probabilities: Vec<f64>,
    /// Raw logits, in the order of `labels`.
    pub logits: Vec<f32>,
    pub labels: Vec<String>,
    pub truncated: bool,
}

/// A fine-tuned classifier loaded from a model folder (as `hone train` exports it).
pub struct Predictor {
    model: Model,
    tokenizer: TextTokenizer,
    labels: Vec<String>,
}

impl Predictor {
    /// Loads a classification model folder. `max_length` defaults to the model's maximum.
    pub fn load(
        dir: &Path,
        device: &Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        let spec = ModelSpec::from_dir(dir)?;
        let labels = spec
            .labels
            .clone()
            .ok_or_else(|| EngineError::NoClassificationHead {
                path: dir.to_path_buf(),
            })?;
        let model_max = spec.max_sequence_length();
        let max_length = max_length.unwrap_or(model_max).min(model_max);
        let model = Model::load(
            dir,
            Task::SequenceClassification,
            labels.len(),
            None,
            device,
            0,
        )?;
        if !model.newly_initialized().is_empty() {
            return Err(EngineError::NoClassificationHead {
                path: dir.to_path_buf(),
            });
        }
        let tokenizer = TextTokenizer::from_model_dir(dir, max_length)?;
        Ok(Predictor {
            model,
            tokenizer,
            labels,
        })
    }

    /// Class names, id = index.
    pub fn labels(&self) -> &[String] {
        &self.labels
    }

    /// The loaded model.
    pub fn model(&self) -> &Model {
        &self.model
    }

    /// The tokenizer, truncating to the predictor's maximum length.
    pub fn tokenizer(&self) -> &TextTokenizer {
        &self.tokenizer
    }

    /// Predicts the class of each text (with its optional pair).
    pub fn predict(
        &self,
        texts: &[(String, Option<String>)],
        batch_size: usize,
    ) -> Result<Vec<Prediction>, EngineError> {
        let examples = self.tokenizer.encode(texts)?;
        let set = EncodedSet {
            examples,
            labels: Vec::new(),
        };
        let rows = logits(&self.model, &set, batch_size)?;
        Ok(texts
            .iter()
            .zip(rows)
            .zip(&set.examples)
            .map(|(((text, pair), row), encoded)| {
                let id = argmax(&row);
                Prediction {
                    text: text.clone(),
                    text_pair: pair.clone(),
                    label: self.labels[id as usize].clone(),
                    label_id: id,
                    probabilities: probabilities(&row),
                    logits: row,
                    labels: self.labels.clone(),
                    truncated: encoded.truncated,
                }
            })
            .collect())
    }
}
