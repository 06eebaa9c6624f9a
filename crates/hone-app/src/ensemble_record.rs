//! An ensemble of finished runs kept as a run of its own: its record in the database (no
//! training: the members' ids and how they are combined), its folder as the export, and its
//! scores beside its members' on the validation examples they all held out — so "three runs
//! at 0.739, their ensemble at 0.748" shows in Runs at a glance, and the Playground predicts
//! with it like any run.

use std::collections::HashSet;
use std::path::Path;

use hone_data::Example;
use hone_engine::Report;
use hone_store::{NewRun, RunStatus};
use serde::{Deserialize, Serialize};

use crate::ensemble::{EnsembleManifest, Mean};
use crate::evaluation::evaluate_examples;
use crate::predict::FineTunedModel;
use crate::run_config::RunConfig;
use crate::{App, AppError};

/// What an ensemble's record says it combines.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct EnsembleOf {
    /// The member runs' ids.
    pub members: Vec<i64>,
    pub mean: Mean,
}

/// An ensemble recorded as a run, with what it scored.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct EnsembleRecord {
    pub run_id: i64,
    /// Validation examples every member held out (the ensemble and each member are scored on
    /// them); 0 when they share none.
    pub examples: usize,
    pub report: Option<Report>,
    /// Each member's report on the same examples.
    pub members: Vec<(i64, Report)>,
}

/// One example's identity across runs (its texts, options and label).
fn key_of(e: &Example) -> String {
    format!(
        "{}\u{1}{:?}\u{1}{:?}\u{1}{:?}\u{1}{:?}",
        e.text, e.text_pair, e.label, e.choices, e.tags
    )
}

impl App {
    /// The validation examples of run `id`, as its configuration reads them (the same
    /// files, dataset, split and seed).
    fn validation_examples(&self, config: &RunConfig) -> Result<Vec<Example>, AppError> {
        let (data, _) = self.read_data(&config.data, config.task, config.training.seed)?;
        Ok(data.valid)
    }

    /// Records the ensemble folder `dir` of runs `ids` as a run (named `name`, or after its
    /// members) and scores it and each member on the validation examples all members held
    /// out. Returns the record.
    pub fn record_ensemble(
        &mut self,
        ids: &[i64],
        dir: &Path,
        manifest: &EnsembleManifest,
        name: Option<&str>,
    ) -> Result<EnsembleRecord, AppError> {
        let runs = ids
            .iter()
            .map(|&id| self.store.run(id))
            .collect::<Result<Vec<_>, _>>()?;
        let configs = runs
            .iter()
            .map(RunConfig::of_run)
            .collect::<Result<Vec<_>, _>>()?;
        // The examples every member held out: none of them trained on these. Members that
        // read the same data with the same seed are read once.
        let mut common: Option<Vec<Example>> = None;
        let mut read: HashSet<String> = HashSet::new();
        for config in &configs {
            let source = serde_json::json!([config.task, config.data, config.training.seed]);
            if !read.insert(source.to_string()) {
                continue;
            }
            let valid = self.validation_examples(config)?;
            common = Some(match common {
                None => valid,
                Some(kept) => {
                    let theirs: HashSet<String> = valid.iter().map(key_of).collect();
                    kept.into_iter()
                        .filter(|e| theirs.contains(&key_of(e)))
                        .collect()
                }
            });
        }
        let common = common.unwrap_or_default();
        let first = &configs[0];
        let (batch, max_length) = (first.training.batch_size, first.training.max_length);
        let source = Path::new("the members' validation examples");
        let (report, members) = if common.is_empty() {
            (None, Vec::new())
        } else {
            let ensemble =
                FineTunedModel::load(dir, hone_engine::DeviceSpec::Cpu, Some(max_length))?;
            let report = evaluate_examples(&ensemble, &common, source, batch)?.report;
            let mut members = Vec::with_capacity(ids.len());
            for &id in ids {
                let (model_dir, _) = self.run_model(id)?;
                let model = FineTunedModel::load(
                    &model_dir,
                    hone_engine::DeviceSpec::Cpu,
                    Some(max_length),
                )?;
                members.push((
                    id,
                    evaluate_examples(&model, &common, source, batch)?.report,
                ));
            }
            (Some(report), members)
        };
        let listed: Vec<String> = ids.iter().map(|i| i.to_string()).collect();
        let mut config = first.clone();
        config.out = Some(dir.to_path_buf());
        config.ensemble = Some(EnsembleOf {
            members: ids.to_vec(),
            mean: manifest.mean,
        });
        let run_id = self.store.create_run(&NewRun {
            name: Some(
                name.map(str::to_string)
                    .unwrap_or_else(|| format!("ensemble of runs {}", listed.join(", "))),
            ),
            config: serde_json::to_value(&config).unwrap_or_default(),
            dataset_id: runs[0].dataset_id,
            split_id: runs[0].split_id,
            model_fingerprint: None,
            dataset_fingerprint: None,
            hardware: serde_json::json!({}),
            // No folder of its own to delete with it: the ensemble folder is the user's.
            run_dir: String::new(),
        })?;
        self.store
            .record_artifact(run_id, "export", &dir.display().to_string(), None)?;
        if let Some(report) = &report {
            let json = serde_json::to_value(report).unwrap_or_default();
            let metrics: Vec<(String, f64)> = report
                .metrics()
                .into_iter()
                .map(|(n, v)| (format!("eval_{n}"), v))
                .collect();
            let named: Vec<(&str, f64)> = metrics.iter().map(|(n, v)| (n.as_str(), *v)).collect();
            self.store
                .record_evaluation(run_id, 0, 0.0, "validation", &json, None, &named)?;
        }
        let final_metrics = serde_json::json!({
            "steps": 0,
            "best_step": report.as_ref().map(|_| 0),
            "best": report,
            "ensemble": {
                "members": members.iter().map(|(id, r)| serde_json::json!({"run": id, "report": r})).collect::<Vec<_>>(),
                "examples": common.len(),
                "mean": manifest.mean,
            },
        });
        self.store
            .finish_run(run_id, RunStatus::Completed, None, Some(&final_metrics))?;
        Ok(EnsembleRecord {
            run_id,
            examples: common.len(),
            report,
            members,
        })
    }
}
