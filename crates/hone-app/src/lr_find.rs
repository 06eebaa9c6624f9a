//! The learning-rate range test on a run configuration: the data a run of it would train on,
//! the model it names, its optimizer and recipe, and an exponential sweep of rates.

use std::sync::atomic::AtomicBool;

use hone_engine::job::find_lr_data;
use hone_engine::lr_find::{LrFindPoint, LrFindResult, LrFindSettings};
use hone_engine::TrainEvent;

use crate::run_config::RunConfig;
use crate::{App, AppError};

impl App {
    /// Runs the range test for `config` (nothing is stored: it is a probe before a run).
    /// Notices go to `sink`, each step to `on_point`; `cancel` stops after the current step.
    pub fn find_lr(
        &self,
        config: &RunConfig,
        settings: &LrFindSettings,
        sink: &mut dyn FnMut(TrainEvent),
        on_point: &mut dyn FnMut(&LrFindPoint),
        cancel: &AtomicBool,
    ) -> Result<LrFindResult, AppError> {
        if config.ensemble.is_some() {
            return Err(AppError::Invalid(
                "an ensemble is not trained, so it has no learning rate to find".into(),
            ));
        }
        let (data, _) = self.read_data(&config.data, config.task, config.training.seed)?;
        if !config.also.is_empty() {
            sink(TrainEvent::Notice {
                message: "multi-task: the range test runs on the run's own task alone (its \
                          other tasks share the rate)"
                    .into(),
            });
        }
        Ok(find_lr_data(
            &config.model,
            &data,
            &config.training,
            settings,
            sink,
            on_point,
            cancel,
        )?)
    }
}
