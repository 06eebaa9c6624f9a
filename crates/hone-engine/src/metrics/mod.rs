//! Evaluation metrics by task: for sequence classification accuracy, macro precision / recall
//! / F1, per-class scores and the confusion matrix; for token classification entity-level
//! scores ([`entities`]); for multiple choice accuracy and MAP@3 ([`choices`]). [`Report`]
//! carries any of them through events, the store and the UI.

pub mod answers;
pub mod choices;
pub mod entities;
pub mod language;
pub mod porter;
pub mod rouge;

use serde::{Deserialize, Serialize};

pub use answers::AnswerReport;
pub use choices::ChoiceReport;
pub use entities::{EntityReport, EntityScores, TaggingError};
pub use language::LanguageReport;
pub use rouge::GenerationReport;

/// An evaluation, whichever the task. Serialised as the inner report (untagged), so reports
/// stored before token classification existed read back as classification reports.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Report {
    /// A multi-task run: each task's own report (first: it is the only one with `tasks`).
    Tasks(TaskReports),
    /// Text-to-text generation (before the others: only it has `rouge1`).
    Generation(GenerationReport),
    /// Causal LM (before the others: only it has `perplexity`).
    Language(LanguageReport),
    Entities(EntityReport),
    Classification(ClassificationReport),
    Choices(ChoiceReport),
    Answers(AnswerReport),
}

impl Report {
    /// The value of a metric. For token classification F1, precision and recall are the
    /// entity-level micro scores and accuracy is token accuracy. For multiple choice they are
    /// the micro scores, which equal accuracy (one right option per question); MAP@3 of
    /// another task is its accuracy (its top-1 precision).
    pub fn get(&self, metric: Metric) -> f64 {
        match self {
            Report::Tasks(r) => crate::multitask::mean_metric(&r.tasks, metric),
            Report::Choices(r) => match metric {
                Metric::Loss => r.loss,
                Metric::MapAt3 => r.map_at_3,
                _ => r.accuracy,
            },
            Report::Classification(r) => r.get(metric),
            // Every score but the loss reads as next-token accuracy (runs pick the loss:
            // `Metric::for_task`).
            Report::Language(r) => match metric {
                Metric::Loss => r.loss,
                _ => r.token_accuracy,
            },
            Report::Answers(r) => match metric {
                Metric::Loss => r.loss,
                Metric::ExactMatch | Metric::Accuracy => r.exact_match,
                _ => r.f1,
            },
            // Every score but the loss and exact match reads as ROUGE-L.
            Report::Generation(r) => match metric {
                Metric::Loss => r.loss,
                Metric::ExactMatch | Metric::Accuracy => r.exact_match,
                _ => r.rouge_l,
            },
            Report::Entities(r) => match metric {
                Metric::Loss => r.loss,
                Metric::Accuracy => r.token_accuracy,
                Metric::MacroF1 => r.entity_f1,
                Metric::MacroPrecision => r.precision,
                Metric::MacroRecall => r.recall,
                Metric::MapAt3 | Metric::ExactMatch => r.token_accuracy,
                Metric::RougeL => r.entity_f1,
            },
        }
    }

    /// The report's headline numbers by name, for the store's metric table and charts; a
    /// multi-task report's as `task/name`, with the mean loss as `loss`.
    pub fn metrics(&self) -> Vec<(String, f64)> {
        let owned = |pairs: Vec<(&str, f64)>| {
            pairs
                .into_iter()
                .map(|(n, v)| (n.to_string(), v))
                .collect::<Vec<_>>()
        };
        if let Report::Tasks(r) = self {
            let mut all = vec![("loss".to_string(), self.get(Metric::Loss))];
            for t in &r.tasks {
                all.extend(
                    t.report
                        .metrics()
                        .into_iter()
                        .map(|(n, v)| (format!("{}/{n}", t.name), v)),
                );
            }
            return all;
        }
        owned(match self {
            Report::Tasks(_) => Vec::new(),
            Report::Classification(r) => vec![
                ("loss", r.loss),
                ("accuracy", r.accuracy),
                ("macro_f1", r.macro_f1),
                ("macro_precision", r.macro_precision),
                ("macro_recall", r.macro_recall),
            ],
            Report::Entities(r) => vec![
                ("loss", r.loss),
                ("entity_f1", r.entity_f1),
                ("precision", r.precision),
                ("recall", r.recall),
                ("token_accuracy", r.token_accuracy),
            ],
            Report::Choices(r) => vec![
                ("loss", r.loss),
                ("accuracy", r.accuracy),
                ("map_at_3", r.map_at_3),
            ],
            Report::Answers(r) => vec![
                ("loss", r.loss),
                ("exact_match", r.exact_match),
                ("f1", r.f1),
            ],
            Report::Language(r) => vec![
                ("loss", r.loss),
                ("perplexity", r.perplexity),
                ("token_accuracy", r.token_accuracy),
            ],
            Report::Generation(r) => vec![
                ("loss", r.loss),
                ("rouge1", r.rouge1),
                ("rouge2", r.rouge2),
                ("rougeL", r.rouge_l),
                ("rougeLsum", r.rouge_lsum),
                ("exact_match", r.exact_match),
                ("gen_len", r.gen_len),
            ],
        })
    }
}

/// The evaluation of a multi-task run: one report per task. Its value of a metric is the
/// mean of the tasks' values (each task reads the metric as [`Report::get`] does).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReports {
    pub tasks: Vec<TaskReport>,
}

/// One task's evaluation within a multi-task run.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TaskReport {
    pub name: String,
    pub task: crate::models::Task,
    pub report: Report,
}

/// A metric that selects the best checkpoint and drives early stopping.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    Loss,
    Accuracy,
    #[default]
    MacroF1,
    MacroPrecision,
    MacroRecall,
    /// Multiple choice: mean average precision at 3.
    #[serde(rename = "map_at_3")]
    MapAt3,
    /// Question answering: SQuAD exact match (F1 is `macro_f1`'s place for the task);
    /// text-to-text: the generated targets' exact match.
    ExactMatch,
    /// Text-to-text: ROUGE-L of the validation generations (needs `generate_examples`).
    #[serde(rename = "rouge_l")]
    RougeL,
}

impl std::str::FromStr for Metric {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.to_ascii_lowercase().replace('-', "_").as_str() {
            "loss" | "eval_loss" => Ok(Metric::Loss),
            "accuracy" | "acc" => Ok(Metric::Accuracy),
            "macro_f1" | "f1" => Ok(Metric::MacroF1),
            "macro_precision" | "precision" => Ok(Metric::MacroPrecision),
            "macro_recall" | "recall" => Ok(Metric::MacroRecall),
            "map_at_3" | "map@3" | "map3" => Ok(Metric::MapAt3),
            "exact_match" | "em" => Ok(Metric::ExactMatch),
            "rouge_l" | "rougel" => Ok(Metric::RougeL),
            other => Err(format!(
                "unknown metric '{other}': use loss, accuracy, macro_f1, macro_precision, macro_recall, map_at_3, exact_match or rouge_l"
            )),
        }
    }
}

impl std::fmt::Display for Metric {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Metric::Loss => "loss",
            Metric::Accuracy => "accuracy",
            Metric::MacroF1 => "macro_f1",
            Metric::MacroPrecision => "macro_precision",
            Metric::MacroRecall => "macro_recall",
            Metric::MapAt3 => "map_at_3",
            Metric::ExactMatch => "exact_match",
            Metric::RougeL => "rouge_l",
        })
    }
}

impl Metric {
    /// The metric a run of `task` is judged by when this one is chosen: a language model has
    /// no classes, so every score but accuracy (read as next-token accuracy) is its loss; a
    /// text-to-text run also takes ROUGE-L and exact match; ROUGE-L of a task that generates
    /// nothing is the default, macro F1.
    pub fn for_task(self, task: crate::models::Task) -> Metric {
        use crate::models::Task;
        match (task, self) {
            (Task::CausalLm | Task::Text2Text, Metric::Loss | Metric::Accuracy) => self,
            (Task::Text2Text, Metric::RougeL | Metric::ExactMatch) => self,
            (Task::CausalLm | Task::Text2Text, _) => Metric::Loss,
            (_, Metric::RougeL) => Metric::MacroF1,
            _ => self,
        }
    }

    /// True when larger values are better.
    pub fn higher_is_better(self) -> bool {
        self != Metric::Loss
    }

    /// Whether `candidate` beats `best` by more than `min_delta`.
    pub fn improves(self, candidate: f64, best: Option<f64>, min_delta: f64) -> bool {
        match best {
            None => candidate.is_finite(),
            Some(best) if self.higher_is_better() => candidate > best + min_delta,
            Some(best) => candidate < best - min_delta,
        }
    }
}

/// Scores of one class.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassScores {
    pub label: String,
    pub precision: f64,
    pub recall: f64,
    pub f1: f64,
    /// Number of examples whose true class is this one.
    pub support: u64,
}

/// An evaluation of a classifier on labeled examples.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ClassificationReport {
    /// Mean cross-entropy.
    pub loss: f64,
    pub accuracy: f64,
    pub macro_precision: f64,
    pub macro_recall: f64,
    pub macro_f1: f64,
    pub per_class: Vec<ClassScores>,
    /// `confusion_matrix[true][predicted]` counts.
    pub confusion_matrix: Vec<Vec<u64>>,
    /// Number of examples evaluated.
    pub examples: u64,
}

/// `num / den`, 0 when nothing was counted (scikit-learn's `zero_division=0`).
fn ratio(num: u64, den: u64) -> f64 {
    if den == 0 {
        0.0
    } else {
        num as f64 / den as f64
    }
}

/// The harmonic mean of precision and recall, 0 when both are.
fn f1(precision: f64, recall: f64) -> f64 {
    if precision + recall > 0.0 {
        2.0 * precision * recall / (precision + recall)
    } else {
        0.0
    }
}

impl ClassificationReport {
    /// Scores predictions against true class ids. Classes without predictions or examples score
    /// 0 where undefined (as scikit-learn's `zero_division=0`).
    pub fn from_predictions(
        labels: &[String],
        truth: &[u32],
        predicted: &[u32],
        loss: f64,
    ) -> Self {
        let k = labels.len();
        let mut confusion = vec![vec![0u64; k]; k];
        for (&t, &p) in truth.iter().zip(predicted) {
            confusion[t as usize][p as usize] += 1;
        }
        let per_class: Vec<ClassScores> = (0..k)
            .map(|c| {
                let tp = confusion[c][c];
                let support: u64 = confusion[c].iter().sum();
                let predicted_c: u64 = confusion.iter().map(|row| row[c]).sum();
                let precision = ratio(tp, predicted_c);
                let recall = ratio(tp, support);
                let f1 = f1(precision, recall);
                ClassScores {
                    label: labels[c].clone(),
                    precision,
                    recall,
                    f1,
                    support,
                }
            })
            .collect();
        let mean =
            |f: fn(&ClassScores) -> f64| per_class.iter().map(f).sum::<f64>() / k.max(1) as f64;
        let correct: u64 = (0..k).map(|c| confusion[c][c]).sum();
        ClassificationReport {
            loss,
            accuracy: ratio(correct, truth.len() as u64),
            macro_precision: mean(|c| c.precision),
            macro_recall: mean(|c| c.recall),
            macro_f1: mean(|c| c.f1),
            per_class,
            confusion_matrix: confusion,
            examples: truth.len() as u64,
        }
    }

    /// The value of a metric.
    pub fn get(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Loss => self.loss,
            Metric::Accuracy => self.accuracy,
            Metric::MacroF1 => self.macro_f1,
            Metric::MacroPrecision => self.macro_precision,
            Metric::MacroRecall => self.macro_recall,
            Metric::MapAt3 | Metric::ExactMatch => self.accuracy,
            Metric::RougeL => self.macro_f1,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_language_model_is_judged_by_its_loss_unless_accuracy_is_chosen() {
        use crate::models::Task;
        assert_eq!(Metric::MacroF1.for_task(Task::CausalLm), Metric::Loss);
        assert_eq!(Metric::MapAt3.for_task(Task::CausalLm), Metric::Loss);
        assert_eq!(Metric::Accuracy.for_task(Task::CausalLm), Metric::Accuracy);
        assert_eq!(Metric::RougeL.for_task(Task::Text2Text), Metric::RougeL);
        assert_eq!(
            Metric::ExactMatch.for_task(Task::Text2Text),
            Metric::ExactMatch
        );
        assert_eq!(Metric::MacroF1.for_task(Task::Text2Text), Metric::Loss);
        assert_eq!(Metric::RougeL.for_task(Task::CausalLm), Metric::Loss);
        assert_eq!(
            Metric::RougeL.for_task(Task::SequenceClassification),
            Metric::MacroF1
        );
        assert_eq!("rougeL".parse::<Metric>(), Ok(Metric::RougeL));
        assert_eq!(Metric::RougeL.to_string(), "rouge_l");
        assert_eq!(
            Metric::MacroF1.for_task(Task::SequenceClassification),
            Metric::MacroF1
        );
    }

    #[test]
    fn scores_match_a_hand_computed_example() {
        let labels = vec!["a".to_string(), "b".to_string(), "c".to_string()];
        // truth:     a a a b b c
        // predicted: a a b b c c
        let r = ClassificationReport::from_predictions(
            &labels,
            &[0, 0, 0, 1, 1, 2],
            &[0, 0, 1, 1, 2, 2],
            0.5,
        );
        assert_eq!(
            r.confusion_matrix,
            vec![vec![2, 1, 0], vec![0, 1, 1], vec![0, 0, 1]]
        );
        assert!((r.accuracy - 4.0 / 6.0).abs() < 1e-12);
        // a: p 1, r 2/3, f1 0.8; b: p 1/2, r 1/2, f1 1/2; c: p 1/2, r 1, f1 2/3
        assert!((r.per_class[0].f1 - 0.8).abs() < 1e-12);
        assert!((r.macro_f1 - (0.8 + 0.5 + 2.0 / 3.0) / 3.0).abs() < 1e-12);
        assert!((r.macro_precision - 2.0 / 3.0).abs() < 1e-12);
        assert_eq!(r.per_class[2].support, 1);
    }

    #[test]
    fn a_class_never_predicted_scores_zero() {
        let labels = vec!["x".to_string(), "y".to_string()];
        let r = ClassificationReport::from_predictions(&labels, &[0, 1], &[0, 0], 0.0);
        assert_eq!(r.per_class[1].precision, 0.0);
        assert_eq!(r.per_class[1].f1, 0.0);
    }

    #[test]
    fn stored_classification_reports_read_back_as_classification() {
        let labels = vec!["x".to_string(), "y".to_string()];
        let r = ClassificationReport::from_predictions(&labels, &[0, 1], &[0, 1], 0.2);
        let json = serde_json::to_string(&r).unwrap();
        let back: Report = serde_json::from_str(&json).unwrap();
        assert_eq!(back, Report::Classification(r));
        let none: [Vec<String>; 0] = [];
        let e = EntityReport::from_tags(&none, &none, &none, 0.0);
        let back: Report = serde_json::from_str(&serde_json::to_string(&e).unwrap()).unwrap();
        assert_eq!(back, Report::Entities(e));
    }

    #[test]
    fn improvement_respects_direction_and_delta() {
        assert!(Metric::Loss.improves(0.4, Some(0.5), 0.05));
        assert!(!Metric::Loss.improves(0.46, Some(0.5), 0.05));
        assert!(Metric::Accuracy.improves(0.8, Some(0.7), 0.0));
        assert!(!Metric::Accuracy.improves(0.7, Some(0.7), 0.0));
        assert!(Metric::MacroF1.improves(0.1, None, 0.0));
    }
}
