//! Knowledge distillation (Hinton et al. 2015): a student learns from a teacher's softened
//! probabilities as well as the labels. Per labeled row, with student logits `s`, teacher
//! logits `t`, label `y`, temperature `T` and weight `α`:
//!
//! `loss = α · T² · KL(softmax(t/T) ‖ softmax(s/T)) + (1 − α) · cross_entropy(s, y)`,
//! `∂loss/∂s = α · T · (softmax(s/T) − softmax(t/T)) + (1 − α) · (softmax(s) − onehot(y))`.
//!
//! The teacher is any model folder with the run's task and classes (another family too: it
//! reads the texts with its own tokenizer). Its logits are computed once, before training, and
//! cached in the run's work folder, so a resumed run does not compute them again.

use std::path::Path;

use candle_core::{DType, Tensor};
use hone_data::{Example, LabelSet, TextTokenizer};
use serde::{Deserialize, Serialize};

use crate::config::TrainingConfig;
use crate::inference::logits_with;
use crate::models::{Model, ModelSpec, Task};
use crate::step::Stepper;
use crate::EngineError;

/// How much the teacher counts and how soft its probabilities are.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Distill {
    /// Weight of the teacher's term (1 − α goes to the labels).
    pub alpha: f64,
    /// Softmax temperature of both sides in the teacher's term.
    pub temperature: f64,
}

impl Distill {
    /// The settings of a run's options.
    pub fn from_config(cfg: &TrainingConfig) -> Self {
        Distill {
            alpha: cfg.distill_alpha,
            temperature: cfg.distill_temperature,
        }
    }
}

/// Softmax of `row / temperature` in f64.
fn softmax(row: &[f32], temperature: f64) -> Vec<f64> {
    let max = row.iter().fold(f32::NEG_INFINITY, |a, &b| a.max(b)) as f64 / temperature;
    let exps: Vec<f64> = row
        .iter()
        .map(|&v| (v as f64 / temperature - max).exp())
        .collect();
    let sum: f64 = exps.iter().sum();
    exps.into_iter().map(|e| e / sum).collect()
}

/// The distillation loss summed over the labeled rows of `logits` (`classes` wide), and its
/// gradient times `scale` in `dlogits`. `teacher` holds one row per row of `logits`; rows
/// labeled [`crate::graph::IGNORE_LABEL`] take no part.
pub fn distilled_cross_entropy(
    logits: &[f32],
    labels: &[u32],
    teacher: &[f32],
    classes: usize,
    scale: f64,
    distill: Distill,
    dlogits: &mut [f32],
) -> f64 {
    let Distill { alpha, temperature } = distill;
    let mut loss = 0f64;
    for (((row, d), &y), t) in logits
        .chunks_exact(classes)
        .zip(dlogits.chunks_exact_mut(classes))
        .zip(labels)
        .zip(teacher.chunks_exact(classes))
    {
        if y == crate::graph::IGNORE_LABEL {
            d.fill(0.0);
            continue;
        }
        let hard = softmax(row, 1.0);
        let student = softmax(row, temperature);
        let target = softmax(t, temperature);
        let mut kl = 0f64;
        for (&p, &q) in target.iter().zip(&student) {
            if p > 0.0 {
                kl += p * (p.ln() - q.max(f64::MIN_POSITIVE).ln());
            }
        }
        let cross_entropy = -hard[y as usize].max(f64::MIN_POSITIVE).ln();
        loss += alpha * temperature * temperature * kl + (1.0 - alpha) * cross_entropy;
        for (j, o) in d.iter_mut().enumerate() {
            let onehot = if j == y as usize { 1.0 } else { 0.0 };
            let g =
                alpha * temperature * (student[j] - target[j]) + (1.0 - alpha) * (hard[j] - onehot);
            *o = (g * scale) as f32;
        }
    }
    loss
}

/// The distillation loss summed over the labeled rows, on tensors (candle's autograd).
pub fn distilled_loss_sum(
    logits: &Tensor,
    labels: &[u32],
    teacher: &[f32],
    distill: Distill,
) -> Result<Tensor, EngineError> {
    let (rows, classes) = logits.dims2()?;
    if teacher.len() != rows * classes {
        return Err(EngineError::InvalidConfig(format!(
            "{} teacher scores for {rows} rows of {classes} classes",
            teacher.len()
        )));
    }
    let dev = logits.device();
    let kept: Vec<u32> = labels
        .iter()
        .enumerate()
        .filter(|(_, &y)| y != crate::graph::IGNORE_LABEL)
        .map(|(i, _)| i as u32)
        .collect();
    if kept.is_empty() {
        return Ok(Tensor::zeros((), DType::F32, dev)?);
    }
    let n = kept.len();
    let picked = crate::graph::lookup::HostIndex::new(&kept, dev)?
        .select(logits, 0)?
        .to_dtype(DType::F32)?;
    let targets: Vec<f32> = kept
        .iter()
        .flat_map(|&i| {
            let row = &teacher[i as usize * classes..(i as usize + 1) * classes];
            softmax(row, distill.temperature)
                .into_iter()
                .map(|p| p as f32)
        })
        .collect();
    let targets = Tensor::from_vec(targets, (n, classes), dev)?;
    let log_student = crate::ops::log_softmax_last_dim(&(&picked / distill.temperature)?)?;
    // Σ p·log p is a constant: only the cross term carries a gradient, but the value is KL.
    let plogp: f64 = targets
        .flatten_all()?
        .to_vec1::<f32>()?
        .iter()
        .filter(|&&p| p > 0.0)
        .map(|&p| p as f64 * (p as f64).ln())
        .sum();
    let cross = (targets * log_student)?.sum_all()?;
    let kl = ((cross.neg()? + plogp)? * (distill.temperature * distill.temperature))?;
    let hard = crate::graph::autograd::cross_entropy_sum(&picked, &pick(labels, &kept), 0.0)?;
    Ok(((kl * distill.alpha)? + (hard * (1.0 - distill.alpha))?)?)
}

fn pick(labels: &[u32], kept: &[u32]) -> Vec<u32> {
    kept.iter().map(|&i| labels[i as usize]).collect()
}

/// Where a run keeps its teacher's logits.
const CACHE_FILE: &str = "teacher-logits.safetensors";

/// What the cache was computed from: the teacher folder and the examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
struct CacheKey {
    teacher: String,
    examples: usize,
    classes: usize,
}

/// The teacher's logits, one row per training example (classes, or options for multiple
/// choice), read from the work folder's cache or computed with the teacher's own tokenizer.
#[allow(clippy::too_many_arguments)]
pub fn teacher_logits(
    teacher_dir: &Path,
    examples: &[Example],
    labels: &LabelSet,
    task: Task,
    cfg: &TrainingConfig,
    device: &candle_core::Device,
    work_dir: &Path,
) -> Result<Vec<Vec<f32>>, EngineError> {
    if !matches!(task, Task::SequenceClassification | Task::MultipleChoice) {
        return Err(EngineError::InvalidConfig(
            "distillation covers text classification and multiple choice: drop the teacher \
             for this task"
                .into(),
        ));
    }
    let spec = ModelSpec::from_dir(teacher_dir)?;
    let permutation = class_order(&spec, labels, task, teacher_dir)?;
    let classes = permutation.len();
    let key = CacheKey {
        teacher: teacher_dir.display().to_string(),
        examples: examples.len(),
        classes,
    };
    if let Some(rows) = read_cache(work_dir, &key) {
        return Ok(rows);
    }
    let max_length = cfg.max_length.min(spec.max_sequence_length());
    let tokenizer = TextTokenizer::from_model_dir(teacher_dir, max_length)?;
    let set = crate::job::encode(&tokenizer, labels, examples, task, cfg, None, None)?;
    let teacher = Model::load(teacher_dir, task, classes, None, device, 0)?;
    let mut stepper = Stepper::new(&teacher, true);
    let rows = logits_with(&teacher, &set, cfg.batch_size.max(8), &mut stepper)?;
    let rows: Vec<Vec<f32>> = rows
        .into_iter()
        .map(|row| permutation.iter().map(|&j| row[j]).collect())
        .collect();
    write_cache(work_dir, &key, &rows)?;
    Ok(rows)
}

/// For each of the run's classes, the teacher's column holding it (identity for multiple
/// choice, whose columns are options).
fn class_order(
    spec: &ModelSpec,
    labels: &LabelSet,
    task: Task,
    dir: &Path,
) -> Result<Vec<usize>, EngineError> {
    if task == Task::MultipleChoice {
        return Ok((0..labels.len()).collect());
    }
    let Some(theirs) = &spec.labels else {
        return Err(EngineError::InvalidConfig(format!(
            "the teacher {} has no classes (no id2label in its config.json): give a fine-tuned \
             classifier",
            dir.display()
        )));
    };
    let ours = labels.names();
    let order: Option<Vec<usize>> = ours
        .iter()
        .map(|name| theirs.iter().position(|t| t == name))
        .collect();
    match order {
        Some(order) if theirs.len() == ours.len() => Ok(order),
        _ => Err(EngineError::InvalidConfig(format!(
            "the teacher knows the classes [{}], this run trains [{}]: distillation needs the \
             same classes",
            theirs.join(", "),
            ours.join(", ")
        ))),
    }
}

fn read_cache(work_dir: &Path, key: &CacheKey) -> Option<Vec<Vec<f32>>> {
    let path = work_dir.join(CACHE_FILE);
    let bytes = std::fs::read(&path).ok()?;
    let (_, meta) = safetensors::SafeTensors::read_metadata(&bytes).ok()?;
    let stored: CacheKey = serde_json::from_str(meta.metadata().as_ref()?.get("key")?).ok()?;
    if &stored != key {
        return None;
    }
    let tensors = safetensors::SafeTensors::deserialize(&bytes).ok()?;
    let view = tensors.tensor("logits").ok()?;
    let values: Vec<f32> = view
        .data()
        .chunks_exact(4)
        .map(|b| f32::from_le_bytes([b[0], b[1], b[2], b[3]]))
        .collect();
    if values.len() != key.examples * key.classes {
        return None;
    }
    Some(
        values
            .chunks_exact(key.classes.max(1))
            .map(<[f32]>::to_vec)
            .collect(),
    )
}

fn write_cache(work_dir: &Path, key: &CacheKey, rows: &[Vec<f32>]) -> Result<(), EngineError> {
    std::fs::create_dir_all(work_dir).map_err(|e| EngineError::io(work_dir, e))?;
    let path = work_dir.join(CACHE_FILE);
    let flat: Vec<u8> = rows
        .iter()
        .flatten()
        .flat_map(|v| v.to_le_bytes())
        .collect();
    let view = safetensors::tensor::TensorView::new(
        safetensors::Dtype::F32,
        vec![rows.len(), key.classes],
        &flat,
    )
    .map_err(|e| EngineError::InvalidConfig(format!("teacher logits: {e}")))?;
    let meta = std::collections::HashMap::from([(
        "key".to_string(),
        serde_json::to_string(key).unwrap_or_default(),
    )]);
    safetensors::serialize_to_file([("logits", view)], Some(meta), &path)
        .map_err(|e| EngineError::InvalidConfig(format!("cannot cache the teacher logits: {e}")))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_gradient_matches_finite_differences() {
        let logits = [0.3f32, -1.2, 2.0, 0.5, 0.1, -0.4];
        let teacher = [1.0f32, 0.0, -1.0, -0.5, 2.5, 0.2];
        let labels = [2u32, 0];
        let distill = Distill {
            alpha: 0.7,
            temperature: 3.0,
        };
        let mut d = [0f32; 6];
        distilled_cross_entropy(&logits, &labels, &teacher, 3, 1.0, distill, &mut d);
        for i in 0..6 {
            let at = |h: f32| {
                let mut x = logits;
                x[i] += h;
                let mut scratch = [0f32; 6];
                distilled_cross_entropy(&x, &labels, &teacher, 3, 1.0, distill, &mut scratch)
            };
            let numeric = (at(1e-3) - at(-1e-3)) / 2e-3;
            assert!(
                (numeric - d[i] as f64).abs() < 1e-3,
                "{i}: {numeric} vs {}",
                d[i]
            );
        }
    }

    #[test]
    fn a_student_equal_to_its_teacher_has_only_the_label_term() {
        let row = [0.5f32, -0.5];
        let mut d = [0f32; 2];
        let distill = Distill {
            alpha: 1.0,
            temperature: 2.0,
        };
        let loss = distilled_cross_entropy(&row, &[0], &row, 2, 1.0, distill, &mut d);
        assert!(loss.abs() < 1e-12 && d.iter().all(|g| g.abs() < 1e-7));
    }
}
