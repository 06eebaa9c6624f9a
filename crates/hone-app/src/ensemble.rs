//! Ensembles of fine-tuned models: two or more exported folders of the same task and classes
//! (options, for multiple choice), scored together — their probabilities averaged, or their
//! logits. An ensemble is a folder: the members copied under `members/` and
//! [`MANIFEST`] naming them, so it travels whole; [`crate::predict::FineTunedModel::load`]
//! reads it like a model, so `hone predict` and `hone eval` take it as they are.

use std::path::{Path, PathBuf};

use hone_data::Example;
use hone_engine::inference::{probabilities, ChoicePrediction, Prediction};
use hone_engine::models::{ModelSpec, Task};
use hone_engine::DeviceSpec;
use serde::{Deserialize, Serialize};

use crate::predict::FineTunedModel;
use crate::AppError;

/// The manifest file of an ensemble folder.
pub const MANIFEST: &str = "hone_ensemble.json";

/// How the members' outputs are combined.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Mean {
    /// The mean of the members' probabilities (the guides' ensembles).
    #[default]
    Probs,
    /// The mean of their logits.
    Logits,
}

impl std::str::FromStr for Mean {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "probs" | "probabilities" => Ok(Mean::Probs),
            "logits" => Ok(Mean::Logits),
            other => Err(format!("unknown mean '{other}': use probs or logits")),
        }
    }
}

/// One member of an ensemble.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleMember {
    /// Its folder, relative to the ensemble's.
    pub path: PathBuf,
    /// Where it came from (`run 3`, or the folder it was copied from).
    pub source: String,
}

/// `hone_ensemble.json`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleManifest {
    pub format: String,
    pub version: u32,
    pub task: Task,
    /// Class names (option letters for multiple choice), shared by every member.
    pub labels: Vec<String>,
    pub mean: Mean,
    pub members: Vec<EnsembleMember>,
}

const FORMAT: &str = "hone-ensemble";

/// The task and classes of a fine-tuned folder, for the members' check.
fn head_of(dir: &Path) -> Result<(Task, Vec<String>), AppError> {
    let spec = ModelSpec::from_dir(dir)?;
    let task = spec.task().unwrap_or(Task::SequenceClassification);
    let labels = spec.labels.clone().ok_or_else(|| {
        AppError::Invalid(format!(
            "{} is not a fine-tuned model (its config.json has no classes)",
            dir.display()
        ))
    })?;
    Ok((task, labels))
}

/// Makes an ensemble folder `out` (which must not exist) from `members` (a folder and where
/// it came from, each), checking they share the task and classes.
pub fn create(
    members: &[(PathBuf, String)],
    out: &Path,
    mean: Mean,
) -> Result<EnsembleManifest, AppError> {
    if members.len() < 2 {
        return Err(AppError::Invalid(
            "an ensemble needs at least two runs or model folders".into(),
        ));
    }
    if out.exists() {
        return Err(AppError::Invalid(format!(
            "{} already exists; choose another folder",
            out.display()
        )));
    }
    let (task, labels) = head_of(&members[0].0)?;
    if matches!(task, Task::TokenClassification | Task::QuestionAnswering) {
        return Err(AppError::Invalid(format!(
            "ensembles combine text classifiers or multiple-choice models; {} models are not combined yet",
            task.display_name()
        )));
    }
    for (dir, source) in &members[1..] {
        let (t, l) = head_of(dir)?;
        if t != task || l != labels {
            return Err(AppError::Invalid(format!(
                "{source} is a {} with classes {}; {} is a {} with classes {}: an ensemble's members share the task and classes",
                t.display_name(),
                l.join(", "),
                members[0].1,
                task.display_name(),
                labels.join(", ")
            )));
        }
    }
    let manifest = EnsembleManifest {
        format: FORMAT.into(),
        version: 1,
        task,
        labels,
        mean,
        members: members
            .iter()
            .enumerate()
            .map(|(i, (dir, source))| {
                let name = dir
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_else(|| "model".into());
                EnsembleMember {
                    path: Path::new("members").join(format!("{:02}-{name}", i + 1)),
                    source: source.clone(),
                }
            })
            .collect(),
    };
    hone_engine::checkpoint::write_dir_atomic(out, |tmp| {
        for ((dir, _), member) in members.iter().zip(&manifest.members) {
            let into = tmp.join(&member.path);
            std::fs::create_dir_all(&into).map_err(|e| hone_engine::EngineError::io(&into, e))?;
            crate::runs::copy_files(dir, &into)?;
        }
        let text = serde_json::to_string_pretty(&manifest)
            .map_err(|e| hone_engine::EngineError::InvalidConfig(e.to_string()))?;
        let path = tmp.join(MANIFEST);
        std::fs::write(&path, text).map_err(|e| hone_engine::EngineError::io(&path, e))
    })?;
    Ok(manifest)
}

/// The manifest of `dir`, when it is an ensemble folder.
pub fn read_manifest(dir: &Path) -> Result<Option<EnsembleManifest>, AppError> {
    let path = dir.join(MANIFEST);
    if !path.is_file() {
        return Ok(None);
    }
    let text = std::fs::read_to_string(&path).map_err(|e| AppError::Io {
        path: path.clone(),
        source: e,
    })?;
    let manifest: EnsembleManifest = serde_json::from_str(&text)
        .map_err(|e| AppError::Invalid(format!("{}: {e}", path.display())))?;
    if manifest.format != FORMAT || manifest.version != 1 {
        return Err(AppError::Invalid(format!(
            "{}: not a version 1 Hone ensemble",
            path.display()
        )));
    }
    Ok(Some(manifest))
}

/// Combines the members' rows of one example into one row that reads like logits: the mean
/// of their logits, or the log of the mean of their probabilities (so argmax, softmax and
/// cross-entropy of the row are the ensemble's). Options that pad a question keep the
/// padding score.
pub fn combine(rows: &[&[f32]], mean: Mean) -> Vec<f32> {
    let n = rows.len().max(1) as f64;
    let width = rows.first().map_or(0, |r| r.len());
    let padded = |j: usize| {
        rows.iter()
            .any(|r| r[j] <= hone_engine::graph::PADDED_OPTION_SCORE)
    };
    let combined: Vec<f32> = match mean {
        Mean::Logits => (0..width)
            .map(|j| (rows.iter().map(|r| r[j] as f64).sum::<f64>() / n) as f32)
            .collect(),
        Mean::Probs => {
            let probs: Vec<Vec<f64>> = rows.iter().map(|r| probabilities(r)).collect();
            (0..width)
                .map(|j| (probs.iter().map(|p| p[j]).sum::<f64>() / n).ln() as f32)
                .collect()
        }
    };
    combined
        .into_iter()
        .enumerate()
        .map(|(j, v)| {
            if padded(j) || !v.is_finite() {
                hone_engine::graph::PADDED_OPTION_SCORE
            } else {
                v
            }
        })
        .collect()
}

/// An ensemble folder loaded for prediction and evaluation.
pub struct Ensemble {
    pub manifest: EnsembleManifest,
    pub members: Vec<FineTunedModel>,
}

impl Ensemble {
    /// Loads every member of the ensemble in `dir`.
    pub fn load(
        dir: &Path,
        manifest: EnsembleManifest,
        device: DeviceSpec,
        max_length: Option<usize>,
    ) -> Result<Self, AppError> {
        let members = manifest
            .members
            .iter()
            .map(|m| FineTunedModel::load(&dir.join(&m.path), device, max_length))
            .collect::<Result<Vec<_>, _>>()?;
        if let Some(odd) = members
            .iter()
            .find(|m| m.task() != manifest.task || m.labels() != manifest.labels.as_slice())
        {
            return Err(AppError::Invalid(format!(
                "{}: a member is a {}, not the manifest's {}",
                dir.display(),
                odd.task().display_name(),
                manifest.task.display_name()
            )));
        }
        Ok(Ensemble { manifest, members })
    }

    /// The classes of every prediction.
    pub fn predict(
        &self,
        texts: &[(String, Option<String>)],
        batch_size: usize,
    ) -> Result<Vec<Prediction>, AppError> {
        let mut each = Vec::with_capacity(self.members.len());
        for m in &self.members {
            match m {
                FineTunedModel::Classes(p) => each.push(p.predict(texts, batch_size)?),
                _ => return Err(self.wrong_task("texts")),
            }
        }
        Ok((0..texts.len())
            .map(|i| {
                let rows: Vec<&[f32]> = each.iter().map(|p| &p[i].logits[..]).collect();
                let logits = combine(&rows, self.manifest.mean);
                let id = hone_engine::inference::argmax(&logits);
                let first = &each[0][i];
                Prediction {
                    text: first.text.clone(),
                    text_pair: first.text_pair.clone(),
                    label: self.manifest.labels[id as usize].clone(),
                    label_id: id,
                    probabilities: probabilities(&logits),
                    logits,
                    labels: self.manifest.labels.clone(),
                    truncated: each.iter().any(|p| p[i].truncated),
                }
            })
            .collect())
    }

    /// The options of each question ranked by the ensemble.
    pub fn predict_choices(
        &self,
        questions: &[Example],
        batch_size: usize,
    ) -> Result<Vec<ChoicePrediction>, AppError> {
        let mut each = Vec::with_capacity(self.members.len());
        for m in &self.members {
            match m {
                FineTunedModel::Choices(p) => each.push(p.predict(questions, batch_size)?),
                _ => return Err(self.wrong_task("options")),
            }
        }
        Ok((0..questions.len())
            .map(|i| {
                let rows: Vec<&[f32]> = each.iter().map(|p| &p[i].logits[..]).collect();
                let logits = combine(&rows, self.manifest.mean);
                let mut ranking: Vec<usize> = (0..logits.len()).collect();
                ranking.sort_by_key(|&j| hone_engine::metrics::choices::rank_of(&logits, j));
                ChoicePrediction {
                    answer: ranking[0],
                    letter: hone_data::choice_letter(ranking[0]),
                    probabilities: probabilities(&logits),
                    logits,
                    ranking,
                    truncated: each.iter().any(|p| p[i].truncated),
                    ..each[0][i].clone()
                }
            })
            .collect())
    }

    fn wrong_task(&self, what: &str) -> AppError {
        AppError::Invalid(format!(
            "this ensemble is for {}; it does not take {what}",
            self.manifest.task.display_name()
        ))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn probabilities_or_logits_are_averaged() {
        let a = [2.0f32, 0.0];
        let b = [0.0f32, 0.0];
        let logits = combine(&[&a, &b], Mean::Logits);
        assert_eq!(logits, [1.0, 0.0]);
        let probs = probabilities(&combine(&[&a, &b], Mean::Probs));
        let pa = probabilities(&a);
        let want = (pa[0] + 0.5) / 2.0;
        assert!((probs[0] - want).abs() < 1e-6, "{probs:?}");
        // A padded option stays out of the softmax.
        let pad = hone_engine::graph::PADDED_OPTION_SCORE;
        let c = combine(&[&[1.0, pad], &[0.5, pad]], Mean::Probs);
        assert_eq!(c[1], pad);
        assert!((probabilities(&c)[0] - 1.0).abs() < 1e-9);
    }
}
