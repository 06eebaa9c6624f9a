//! Seeded, stratified train / validation / test splits of stored datasets.

use hone_data::split::stratified_three_way;
use hone_store::{ExampleFilter, Label, Part, SplitInfo};

use crate::{App, AppError};

impl App {
    /// Splits the labeled examples of `dataset` into train / validation / test, stratified by
    /// class (token-classification datasets are split at random), seeded, and stores it as
    /// `name` (replacing a split of that name).
    pub fn make_split(
        &mut self,
        dataset: &str,
        name: &str,
        valid: f64,
        test: f64,
        seed: u64,
    ) -> Result<SplitInfo, AppError> {
        if !(0.0..1.0).contains(&valid) || !(0.0..1.0).contains(&test) || valid + test >= 1.0 {
            return Err(AppError::Invalid(format!(
                "validation ({valid}) and test ({test}) shares must be ≥ 0 and leave room for training"
            )));
        }
        if name == "given" {
            return Err(AppError::Invalid(
                "'given' is the split the source files assigned; choose another name".into(),
            ));
        }
        let info = self.store.dataset(dataset)?;
        let examples = self.store.examples(
            info.id,
            &ExampleFilter {
                labeled: Some(true),
                ..Default::default()
            },
        )?;
        if examples.is_empty() {
            return Err(AppError::Invalid(format!(
                "dataset '{dataset}' has no labeled examples to split; label some first"
            )));
        }
        let classes: Vec<u32> = examples
            .iter()
            .map(|e| match &e.label {
                Some(Label::Class(c)) => {
                    info.label_names.iter().position(|n| n == c).unwrap_or(0) as u32
                }
                _ => 0,
            })
            .collect();
        let (train, validation, test_idx) = stratified_three_way(&classes, valid, test, seed);
        let mut members = Vec::with_capacity(examples.len());
        for (indices, part) in [
            (train, Part::Train),
            (validation, Part::Validation),
            (test_idx, Part::Test),
        ] {
            members.extend(indices.into_iter().map(|i| (examples[i].id, part)));
        }
        let settings = serde_json::json!({"validation": valid, "test": test, "stratified": true});
        self.store.save_split(
            info.id,
            name,
            "stratified",
            Some(seed as i64),
            &settings,
            &members,
        )?;
        Ok(self
            .store
            .split(info.id, name)?
            .expect("the split was just saved"))
    }
}
