//! The rounds of the labeling loop: a short run that continues from the last one on the
//! labels so far, and the curve of each round's score against the labels it had.

use hone_engine::metrics::Metric;
use hone_engine::models::ModelSpec;
use hone_engine::Report;
use hone_store::RunStatus;
use serde::{Deserialize, Serialize};

use crate::run_config::{DataConfig, RunConfig, StoredData};
use crate::{App, AppError};

/// One finished run on a dataset: how many labels it learned from, and how it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    pub run_id: i64,
    /// Labeled examples the run used (train, validation and test parts together).
    pub labels: u64,
    /// Accuracy (entities: entity F1) on the test part when the run had one, else on
    /// validation.
    pub score: f64,
    /// "test" or "validation": where `score` comes from.
    pub part: String,
    pub finished_at: Option<String>,
}

impl App {
    /// The configuration of the next round: run `run_id`'s settings on every label of
    /// `dataset` so far (a fresh seeded validation share, not an older split), starting from
    /// that run's fine-tuned model when the dataset's classes are still the ones it learned
    /// (else from the model it started from). A teacher or a previous task is not carried
    /// over: the labels, and maybe the classes, changed since (a loss curriculum, which needs
    /// the teacher, falls back to shuffled epochs).
    pub fn next_round_config(&self, run_id: i64, dataset: &str) -> Result<RunConfig, AppError> {
        let run = self.store().run(run_id)?;
        let mut config = RunConfig::of_run(&run)?;
        let info = self.store().dataset(dataset)?;
        let (export, _) = self.run_model(run_id)?;
        // The classes the run learned: its export's id2label.
        let learned = ModelSpec::from_dir(&export)
            .ok()
            .and_then(|spec| spec.labels);
        if learned.as_deref() == Some(&info.label_names[..]) {
            config.model = export;
        }
        config.data = DataConfig::Stored(StoredData {
            dataset: dataset.to_string(),
            split: None,
            valid_fraction: config.data.valid_fraction(),
        });
        config.out = None;
        config.teacher = None;
        config.ewc = None;
        if config.training.curriculum == hone_engine::curriculum::CurriculumOrder::Loss {
            config.training.curriculum = hone_engine::curriculum::CurriculumOrder::Off;
        }
        Ok(config)
    }

    /// Every completed run on `dataset` as a point of the labels-vs-score curve, fewest
    /// labels first. Runs recorded before Hone counted their labels are left out.
    pub fn label_curve(&self, dataset: &str) -> Result<Vec<CurvePoint>, AppError> {
        let info = self.store().dataset(dataset)?;
        let mut points: Vec<CurvePoint> = self
            .store()
            .runs()?
            .into_iter()
            .filter(|r| r.dataset_id == Some(info.id) && r.status == RunStatus::Completed)
            .filter_map(|r| {
                let m = r.final_metrics.as_ref()?;
                let labels = m.get("labeled_examples")?.as_u64()?;
                let (part, report) = match m.get("test").filter(|t| !t.is_null()) {
                    Some(test) => ("test", test),
                    None => ("validation", m.get("best")?),
                };
                let report: Report = serde_json::from_value(report.clone()).ok()?;
                let metric = match report {
                    Report::Entities(_) => Metric::MacroF1,
                    Report::Classification(_)
                    | Report::Choices(_)
                    | Report::Language(_)
                    | Report::Generation(_) => Metric::Accuracy,
                    Report::Answers(_) | Report::Tasks(_) => Metric::MacroF1,
                };
                Some(CurvePoint {
                    run_id: r.id,
                    labels,
                    score: report.get(metric),
                    part: part.to_string(),
                    finished_at: r.finished_at.clone(),
                })
            })
            .collect();
        points.sort_by_key(|p| (p.labels, p.run_id));
        Ok(points)
    }
}
