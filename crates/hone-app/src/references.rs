//! What a run may refer to besides its own model and data: a teacher (knowledge distillation,
//! loss curricula) and a previous task (elastic weight consolidation), each a finished run's
//! id or a model folder.

use std::path::PathBuf;

use hone_engine::job::PreviousTask;
use hone_engine::models::Task;

use crate::run_config::{PreviousTaskConfig, RunConfig};
use crate::{App, AppError};

impl App {
    /// The model folder `reference` names: a finished run's exported model (by its id) or a
    /// folder holding a config.json.
    pub fn model_reference(&self, reference: &str) -> Result<PathBuf, AppError> {
        let reference = reference.trim();
        if let Ok(id) = reference.parse::<i64>() {
            return Ok(self.run_model(id)?.0);
        }
        let dir = PathBuf::from(reference);
        if !hone_engine::lora::is_model_folder(&dir) {
            return Err(AppError::Invalid(format!(
                "'{reference}' is neither a run id nor a model folder (no config.json or adapter_config.json in it)"
            )));
        }
        Ok(dir)
    }

    /// The previous task of an EWC run: its model, and its data: as given (a text
    /// classification file or a stored dataset), else as its run read it.
    pub fn previous_task(
        &self,
        previous: &PreviousTaskConfig,
        seed: u64,
    ) -> Result<PreviousTask, AppError> {
        let model = self.model_reference(&previous.from)?;
        let data =
            match (&previous.data, previous.from.trim().parse::<i64>()) {
                // A folder's task is taken to be text classification.
                (Some(data), _) => self.read_data(data, Task::SequenceClassification, seed)?.0,
                (None, Ok(id)) => {
                    let config = RunConfig::of_run(&self.store().run(id)?)?;
                    self.read_data(&config.data, config.task, seed)?.0
                }
                (None, Err(_)) => return Err(AppError::Invalid(
                    "elastic weight consolidation needs the previous task's data: give its file \
                     (--ewc-data) or name a finished run instead of a folder"
                        .into(),
                )),
            };
        Ok(PreviousTask { model, data })
    }
}
