//! Hone's service layer, shared by the `hone` command line and the desktop app: imports into
//! the database, splits, runs and their lifecycle (queued → running → completed | failed |
//! cancelled | interrupted, resumable), all orchestrating `hone-data`, `hone-engine` and
//! `hone-store`.
//!
//! A run's trainer runs on its own OS thread ([`job::spawn`]); its events are written to the
//! database in small transactions before they are forwarded, so whatever a front end has shown
//! is on disk.

pub mod active;
pub mod allocator;
pub mod answers;
pub mod behavior;
pub mod bench;
pub mod card;
pub mod choices;
pub mod conversations;
pub mod curves;
pub mod dataset_export;
pub mod ensemble;
pub mod ensemble_record;
pub mod error;
pub mod evaluation;
pub mod fingerprint;
pub mod import;
pub mod job;
pub mod lr_find;
pub mod machine;
pub mod models;
pub mod paths;
pub mod predict;
pub mod preview;
pub mod process;
pub mod references;
pub mod remote;
pub mod run_config;
pub mod run_notes;
pub mod runs;
pub mod splits;
pub mod sweep;
pub mod token_lengths;

/// The vocabulary the front ends share with the layers under hone-app — what they show, parse
/// and hand back — re-exported so that the command line and the desktop depend on hone-app
/// alone (`tests/front_ends.rs` checks their manifests and sources). Operations stay behind
/// hone-app's own functions.
pub mod types {
    pub use hone_data::{
        choice_letter, ChatMessage, ChoiceColumns, ColumnSpec, DataError, Entity, Example,
        FileFormat, LossOn, SourceSpec, TagColumns,
    };
    pub use hone_engine::bottleneck::Placement as AdapterPlacement;
    pub use hone_engine::config::{
        training_options, DecayShape, FineTuneMethod, ModelInit, TrainingOption,
    };
    pub use hone_engine::curriculum::CurriculumOrder;
    pub use hone_engine::events::{CheckpointKind, RunStatus as TrainStatus};
    pub use hone_engine::generate::{Generation, GenerationSettings, StopReason};
    pub use hone_engine::gguf::{GgufFile, GgufType};
    pub use hone_engine::lr_find::{LrFindPoint, LrFindResult, LrFindSettings};
    pub use hone_engine::memory::FitSettings;
    pub use hone_engine::metrics::{GenerationReport, Metric};
    pub use hone_engine::optim::OptimizerKind;
    pub use hone_engine::precision::Precision;
    pub use hone_engine::presets::{preset, presets, LrScaling, Preset};
    pub use hone_engine::schedule::{CyclicMode, Schedule};
    pub use hone_engine::seq2seq::{Decoding, Generated, Search, TextToText};
    pub use hone_engine::{
        ClassificationReport, DeviceSpec, EngineError, EntityReport, Report, Task, TrainEvent,
        TrainingConfig,
    };
    pub use hone_hub::{
        DownloadEvent, DownloadOptions, Downloaded, HubClient, HubError, ModelInfo, ModelSummary,
        SearchQuery, Sort,
    };
    pub use hone_store::{
        ArtifactRecord, DatasetInfo, EvaluationRecord, ExampleFilter, Label, MetricRow,
        ModelRecord, Part, RunRecord, RunStatus, SampleRecord, SplitInfo, StoreError,
        StoredExample,
    };
}

use std::path::{Path, PathBuf};

pub use error::AppError;
pub use hone_store::Store;
pub use import::{ImportRequest, ImportSummary};
pub use job::{spawn, JobHandle};
pub use run_config::{AlsoTask, DataConfig, FileData, PreviousTaskConfig, RunConfig, StoredData};
pub use runs::{check_adapter_base, RunComparison, RunOutcome};

/// The database and the folders around it.
pub struct App {
    store: Store,
    db_path: PathBuf,
    /// Runs that were found dead and marked interrupted when the database was opened.
    recovered: Vec<i64>,
}

impl App {
    /// Opens the database at `db` (creating it) and marks runs whose process died as
    /// `interrupted`.
    pub fn open(db: &Path) -> Result<Self, AppError> {
        let mut store = Store::open(db)?;
        let recovered = store.mark_interrupted(process::is_alive)?;
        Ok(App {
            store,
            db_path: db.to_path_buf(),
            recovered,
        })
    }

    /// The store.
    pub fn store(&self) -> &Store {
        &self.store
    }

    /// The store, for writing.
    pub fn store_mut(&mut self) -> &mut Store {
        &mut self.store
    }

    /// The database file.
    pub fn db_path(&self) -> &Path {
        &self.db_path
    }

    /// Runs found dead (and marked interrupted) when the database was opened.
    pub fn recovered(&self) -> &[i64] {
        &self.recovered
    }

    /// Where the runs' folders live: `<database name>-runs/` beside the database file, so two
    /// databases in one folder never share run folders.
    pub fn runs_dir(&self) -> PathBuf {
        let stem = self
            .db_path
            .file_stem()
            .map(|s| s.to_string_lossy().to_string())
            .unwrap_or_else(|| "hone".into());
        self.db_path
            .parent()
            .unwrap_or(Path::new("."))
            .join(format!("{stem}-runs"))
    }
}
