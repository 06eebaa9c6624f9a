//! A whole run's configuration — model, data (files or a stored dataset), task, training
//! options, output folder — as the command line, the TOML file, the desktop's form and the
//! database hold it, and reading a run's files into training data.

use std::path::{Path, PathBuf};

use hone_data::{
    read_choice_examples, read_examples, read_tagged, ChoiceColumns, ColumnSpec, Example,
    FileFormat, LabelSet, TagColumns,
};
use hone_engine::job::{answer_data, choice_data, hold_out, tagged_data, TrainingData};
use hone_engine::models::Task;
use hone_engine::TrainingConfig;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// Training examples from files.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct FileData {
    /// Training file (CSV, TSV, JSON(L), Parquet or lines).
    pub train: PathBuf,
    /// Validation file; without one, a seeded stratified share of `train` is held out.
    pub valid: Option<PathBuf>,
    /// File format when the extension does not tell.
    pub format: Option<FileFormat>,
    /// Column with the text to classify (token classification: the field holding the words
    /// array of a JSON lines file; CoNLL files have their words in the first column).
    pub text_column: String,
    /// Column with the second text of sentence pairs.
    pub text_pair_column: Option<String>,
    /// Column with the class label (token classification: the field holding the tags array;
    /// multiple choice: the answer as a letter, a 0-based index or the option's text).
    pub label_column: String,
    /// Multiple choice: the column with a passage the question is about.
    pub context_column: Option<String>,
    /// Multiple choice: the columns with the options, or one column with a JSON list.
    pub choice_columns: Vec<String>,
    /// Multiple choice: shuffle each question's options with this seed.
    pub shuffle_choices: Option<u64>,
    /// Share of `train` held out for validation when there is no `valid` file.
    pub valid_fraction: f64,
}

impl FileData {
    /// Multiple choice: the question (the text column), context, option and answer columns.
    pub fn choice_columns(&self) -> ChoiceColumns {
        ChoiceColumns {
            question: self.text_column.clone(),
            context: self.context_column.clone(),
            choices: self.choice_columns.clone(),
            answer: Some(self.label_column.clone()),
            shuffle_seed: self.shuffle_choices,
        }
    }

    /// The columns to read, labels included.
    pub fn columns(&self) -> ColumnSpec {
        ColumnSpec {
            text: self.text_column.clone(),
            text_pair: self.text_pair_column.clone(),
            label: Some(self.label_column.clone()),
        }
    }
}

/// Training examples from a dataset stored in Hone's database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredData {
    /// The dataset's name (`hone data list`).
    pub dataset: String,
    /// A stored split of it (its train and validation parts are used); without one, a seeded
    /// stratified share of the labeled examples is held out.
    pub split: Option<String>,
    /// Share held out for validation when there is no split.
    pub valid_fraction: f64,
}

/// Where a run's examples come from: files, or a stored dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(try_from = "RawData", into = "RawData")]
pub enum DataConfig {
    Files(FileData),
    Stored(StoredData),
}

/// The `[data]` table as written: either `train` (+ columns) or `dataset`.
#[derive(Debug, Clone, Default, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawData {
    #[serde(skip_serializing_if = "Option::is_none")]
    train: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid: Option<PathBuf>,
    #[serde(skip_serializing_if = "Option::is_none")]
    format: Option<FileFormat>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    text_pair_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    label_column: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    context_column: Option<String>,
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    choice_columns: Vec<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    shuffle_choices: Option<u64>,
    #[serde(skip_serializing_if = "Option::is_none")]
    dataset: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    split: Option<String>,
    #[serde(skip_serializing_if = "Option::is_none")]
    valid_fraction: Option<f64>,
}

impl TryFrom<RawData> for DataConfig {
    type Error = String;

    fn try_from(r: RawData) -> Result<Self, String> {
        let valid_fraction = r.valid_fraction.unwrap_or(0.1);
        match (r.train, r.dataset) {
            (Some(train), None) => {
                if r.split.is_some() {
                    return Err(
                        "`split` belongs to a stored `dataset`, not to `train` files".into(),
                    );
                }
                let missing = |what: &str| format!("data from files needs `{what}`");
                Ok(DataConfig::Files(FileData {
                    train,
                    valid: r.valid,
                    format: r.format,
                    text_column: r.text_column.ok_or_else(|| missing("text_column"))?,
                    text_pair_column: r.text_pair_column,
                    label_column: r.label_column.ok_or_else(|| missing("label_column"))?,
                    context_column: r.context_column,
                    choice_columns: r.choice_columns,
                    shuffle_choices: r.shuffle_choices,
                    valid_fraction,
                }))
            }
            (None, Some(dataset)) => {
                if r.valid.is_some()
                    || r.text_column.is_some()
                    || r.label_column.is_some()
                    || r.context_column.is_some()
                    || !r.choice_columns.is_empty()
                    || r.format.is_some()
                {
                    return Err("a stored `dataset` already knows its columns; drop `valid`, `format` and the `*_column` keys".into());
                }
                Ok(DataConfig::Stored(StoredData {
                    dataset,
                    split: r.split,
                    valid_fraction,
                }))
            }
            (Some(_), Some(_)) => {
                Err("set either `train` (files) or `dataset` (stored), not both".into())
            }
            (None, None) => Err("set `train` (a file) or `dataset` (a stored dataset)".into()),
        }
    }
}

impl From<DataConfig> for RawData {
    fn from(d: DataConfig) -> Self {
        match d {
            DataConfig::Files(f) => RawData {
                train: Some(f.train),
                valid: f.valid,
                format: f.format,
                text_column: Some(f.text_column),
                text_pair_column: f.text_pair_column,
                label_column: Some(f.label_column),
                context_column: f.context_column,
                choice_columns: f.choice_columns,
                shuffle_choices: f.shuffle_choices,
                valid_fraction: Some(f.valid_fraction),
                ..Default::default()
            },
            DataConfig::Stored(s) => RawData {
                dataset: Some(s.dataset),
                split: s.split,
                valid_fraction: Some(s.valid_fraction),
                ..Default::default()
            },
        }
    }
}

impl DataConfig {
    /// Share held out for validation when there is no validation file or split.
    pub fn valid_fraction(&self) -> f64 {
        match self {
            DataConfig::Files(f) => f.valid_fraction,
            DataConfig::Stored(s) => s.valid_fraction,
        }
    }
}

/// A whole fine-tuning run: model, data, options and where the result goes.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct RunConfig {
    /// What the model learns to do (sequence classification unless set).
    #[serde(default)]
    pub task: Task,
    /// The pretrained model folder.
    pub model: PathBuf,
    pub data: DataConfig,
    #[serde(default)]
    pub training: TrainingConfig,
    /// Folder receiving the exported model of the best checkpoint; runs recorded in Hone's
    /// database default to a `model` folder in the run's own folder.
    #[serde(default)]
    pub out: Option<PathBuf>,
    /// Set on an ensemble's record only: the runs it combines (it trains nothing).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ensemble: Option<crate::ensemble_record::EnsembleOf>,
    /// Knowledge distillation and loss curricula: the teacher, a finished run's id or a model
    /// folder with the run's classes.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub teacher: Option<String>,
    /// Elastic weight consolidation: the previous task whose weights the run holds on to.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ewc: Option<PreviousTaskConfig>,
    /// Multi-task learning: the run's own task's name (default: its dataset's name or its
    /// training file's stem).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// Multi-task learning: more tasks trained on the same encoder, each with its own head
    /// (`[[also]]` tables).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub also: Vec<AlsoTask>,
}

/// A task trained beside the run's own on the same encoder, with its own head and data.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlsoTask {
    /// Its name: its scores and its exported head are shown under it (default: its dataset's
    /// name or its training file's stem).
    #[serde(default)]
    pub name: Option<String>,
    /// What its head learns (sequence classification unless set).
    #[serde(default)]
    pub task: Task,
    pub data: DataConfig,
}

/// A task name from where its data comes from: the stored dataset's name or the training
/// file's stem, reduced to letters, digits, `-` and `_`.
fn data_name(data: &DataConfig) -> String {
    let raw = match data {
        DataConfig::Stored(s) => s.dataset.clone(),
        DataConfig::Files(f) => f
            .train
            .file_stem()
            .map(|s| s.to_string_lossy().into_owned())
            .unwrap_or_default(),
    };
    let cleaned: String = raw
        .chars()
        .map(|c| {
            if c.is_ascii_alphanumeric() || c == '-' || c == '_' {
                c
            } else {
                '_'
            }
        })
        .take(64)
        .collect();
    if cleaned.is_empty() {
        "task".into()
    } else {
        cleaned
    }
}

/// The task a run should not forget (elastic weight consolidation).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PreviousTaskConfig {
    /// The previous task's model: a finished run's id, or a fine-tuned classifier's folder.
    pub from: String,
    /// Its data (a text classification file or a stored dataset); a run's own data when
    /// `from` is a run and this is not given.
    #[serde(default)]
    pub data: Option<DataConfig>,
}

impl RunConfig {
    /// Multi-task learning: every task's name, the run's own first (names given, or taken from
    /// the data; a repeated name gets `-2`, `-3`, …). Empty for a run of one task.
    pub fn task_names(&self) -> Vec<String> {
        if self.also.is_empty() {
            return Vec::new();
        }
        let given: Vec<Option<&String>> = std::iter::once(self.name.as_ref())
            .chain(self.also.iter().map(|t| t.name.as_ref()))
            .collect();
        let sources = std::iter::once(&self.data).chain(self.also.iter().map(|t| &t.data));
        let taken = |names: &[String], candidate: &str| {
            names.iter().any(|n| n.eq_ignore_ascii_case(candidate))
                || given
                    .iter()
                    .flatten()
                    .any(|g| g.eq_ignore_ascii_case(candidate))
        };
        let mut names: Vec<String> = Vec::new();
        for (name, data) in given.iter().zip(sources) {
            // Names given are kept as written (two alike are an error when the run starts);
            // names taken from the data get `-2`, `-3`, … until they differ from every other.
            let name = match name {
                Some(n) => n.to_string(),
                None => {
                    let base = data_name(data);
                    let mut unique = base.clone();
                    let mut n = 2;
                    while taken(&names, &unique) {
                        let suffix = format!("-{n}");
                        let room = 64 - suffix.len();
                        unique = format!("{}{suffix}", &base[..base.len().min(room)]);
                        n += 1;
                    }
                    unique
                }
            };
            names.push(name);
        }
        names
    }

    /// The configuration a stored run was created with.
    pub fn of_run(run: &hone_store::RunRecord) -> Result<Self, AppError> {
        serde_json::from_value(run.config.clone()).map_err(|e| {
            AppError::Invalid(format!(
                "run {} has an unreadable configuration: {e}",
                run.id
            ))
        })
    }

    /// Reads a run configuration from a TOML file.
    pub fn from_toml_file(path: &Path) -> Result<Self, AppError> {
        let text = std::fs::read_to_string(path).map_err(|e| AppError::Io {
            path: path.to_path_buf(),
            source: e,
        })?;
        toml::from_str(&text)
            .map_err(|e| AppError::Invalid(format!("{}: {}", path.display(), e.message())))
    }
}

/// Reads a run's files: the label set from the training file, the validation file checked
/// against it, or a held-out share when there is none.
pub fn load_files(files: &FileData, task: Task, seed: u64) -> Result<TrainingData, AppError> {
    match task {
        Task::TokenClassification => return load_tagged_files(files, seed),
        Task::MultipleChoice => return load_choice_files(files, seed),
        Task::QuestionAnswering => return load_answer_files(files, seed),
        Task::CausalLm => return load_conversation_files(files, seed),
        Task::Text2Text => return load_text2text_files(files, seed),
        Task::SequenceClassification => {}
    }
    if !files.choice_columns.is_empty() || files.context_column.is_some() {
        return Err(AppError::Invalid(
            "option and context columns are for multiple choice: set the task to multiple-choice"
                .into(),
        ));
    }
    let columns = files.columns();
    let mut notices = Vec::new();
    let mut read = |path: &Path| -> Result<Vec<Example>, AppError> {
        let file = read_examples(path, files.format, &columns)?;
        notices.extend(file.warnings);
        Ok(file.examples)
    };
    let all_train = read(&files.train)?;
    let labels = LabelSet::from_examples(&all_train)?;
    let ids = labels.ids_for(&files.train, &all_train)?;
    let (train, valid) = match &files.valid {
        Some(valid_file) => {
            let valid = read(valid_file)?;
            labels.ids_for(valid_file, &valid)?;
            (all_train, valid)
        }
        None => hold_out(all_train, &ids, files.valid_fraction, seed),
    };
    Ok(TrainingData {
        task,
        labels,
        train,
        valid,
        notices,
    })
}

/// The training file and the validation file (when there is one), each read by `read`, which
/// adds what the user should know to the notices.
type ReadFile<'a> = dyn FnMut(&Path, &mut Vec<String>) -> Result<Vec<Example>, AppError> + 'a;

/// The examples of a run's files and what reading them noticed.
struct FilesRead {
    train: Vec<Example>,
    valid: Option<Vec<Example>>,
    notices: Vec<String>,
}

fn read_both(files: &FileData, read: &mut ReadFile) -> Result<FilesRead, AppError> {
    let mut notices = Vec::new();
    let train = read(&files.train, &mut notices)?;
    let valid = match files.valid.as_deref() {
        Some(path) => Some(read(path, &mut notices)?),
        None => None,
    };
    Ok(FilesRead {
        train,
        valid,
        notices,
    })
}

fn load_choice_files(files: &FileData, seed: u64) -> Result<TrainingData, AppError> {
    let columns = files.choice_columns();
    let FilesRead {
        train,
        valid,
        notices,
    } = read_both(files, &mut |path, notices| {
        let file = read_choice_examples(path, files.format, &columns)?;
        notices.extend(file.warnings);
        Ok(file.examples)
    })?;
    Ok(choice_data(
        train,
        valid,
        files.valid_fraction,
        seed,
        notices,
    )?)
}

/// SQuAD JSON or JSON lines with `question`, `context` and `answers` (the columns are fixed).
fn load_answer_files(files: &FileData, seed: u64) -> Result<TrainingData, AppError> {
    let FilesRead {
        train,
        valid,
        notices,
    } = read_both(files, &mut |path, notices| {
        let file = hone_data::read_qa_examples(path)?;
        notices.extend(file.warnings);
        Ok(file.examples)
    })?;
    Ok(answer_data(
        train,
        valid,
        files.valid_fraction,
        seed,
        notices,
    )?)
}

fn load_conversation_files(files: &FileData, seed: u64) -> Result<TrainingData, AppError> {
    let FilesRead {
        train,
        valid,
        notices,
    } = read_both(files, &mut |path, notices| {
        let file = hone_data::read_conversations(path)?;
        notices.extend(file.warnings);
        Ok(file.examples)
    })?;
    Ok(hone_engine::sft::conversation_data(
        train,
        valid,
        files.valid_fraction,
        seed,
        notices,
    ))
}

/// A text-to-text run's files: the source in the text column, the target in the label
/// column.
fn load_text2text_files(files: &FileData, seed: u64) -> Result<TrainingData, AppError> {
    let columns = files.columns();
    let FilesRead {
        train,
        valid,
        notices,
    } = read_both(files, &mut |path, notices| {
        let file = read_examples(path, files.format, &columns)?;
        notices.extend(file.warnings);
        Ok(file.examples)
    })?;
    Ok(hone_engine::seq2seq::text2text_data(
        train,
        valid,
        files.valid_fraction,
        seed,
        notices,
    ))
}

fn load_tagged_files(files: &FileData, seed: u64) -> Result<TrainingData, AppError> {
    let columns = TagColumns {
        tokens: files.text_column.clone(),
        tags: files.label_column.clone(),
    };
    let FilesRead {
        train,
        valid,
        notices,
    } = read_both(files, &mut |path, notices| {
        let file = read_tagged(path, files.format, &columns)?;
        notices.extend(file.warnings);
        notices.push(format!(
            "{}: {} sentences, tags in {} (trained as IOB2)",
            path.display(),
            file.sentences.len(),
            file.scheme
        ));
        Ok(file.sentences.into_iter().map(Example::from).collect())
    })?;
    Ok(tagged_data(
        train,
        valid,
        files.valid_fraction,
        seed,
        notices,
    ))
}

/// Keeps the run configuration beside the exported model (`hone_run.json`).
pub fn save_run_config(config: &RunConfig, out: &Path) -> Result<(), AppError> {
    let json = serde_json::to_string_pretty(config)
        .map_err(|e| AppError::Invalid(format!("the run configuration cannot be written: {e}")))?;
    Ok(hone_engine::checkpoint::write_atomic(
        &out.join("hone_run.json"),
        json.as_bytes(),
    )?)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn toml_round_trip_with_defaults() {
        let text = r#"
            model = "models/minilm"
            out = "out"
            [data]
            train = "train.tsv"
            text_column = "sentence"
            label_column = "label"
            [training]
            epochs = 1
            lr = 3e-5
            layer_lr_decay = 0.9
            device = "cpu"
        "#;
        let cfg: RunConfig = toml::from_str(text).unwrap();
        assert_eq!(cfg.training.epochs, 1);
        assert_eq!(cfg.training.batch_size, 16);
        assert_eq!(cfg.training.layer_lr_decay, Some(0.9));
        let DataConfig::Files(files) = &cfg.data else {
            panic!("files expected")
        };
        assert_eq!(files.columns().text, "sentence");
        assert_eq!(cfg.data.valid_fraction(), 0.1);
        let json = serde_json::to_string(&cfg).unwrap();
        assert_eq!(serde_json::from_str::<RunConfig>(&json).unwrap(), cfg);
    }

    #[test]
    fn a_teacher_and_a_previous_task_round_trip_and_stay_out_of_plain_configs() {
        let cfg: RunConfig = toml::from_str(
            "model = \"m\"\nteacher = \"3\"\n[ewc]\nfrom = \"runs/sst2\"\n\
             [ewc.data]\ntrain = \"sst2.tsv\"\ntext_column = \"sentence\"\nlabel_column = \"label\"\n\
             [data]\ntrain = \"t.tsv\"\ntext_column = \"text\"\nlabel_column = \"label\"\n\
             [training]\ncurriculum = \"loss\"\ndistill_alpha = 0.7\n",
        )
        .unwrap();
        assert_eq!(cfg.teacher.as_deref(), Some("3"));
        let ewc = cfg.ewc.as_ref().unwrap();
        assert_eq!(ewc.from, "runs/sst2");
        let Some(DataConfig::Files(files)) = &ewc.data else {
            panic!("files expected")
        };
        assert_eq!(files.text_column, "sentence");
        assert_eq!(
            cfg.training.curriculum,
            hone_engine::curriculum::CurriculumOrder::Loss
        );
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(serde_json::from_value::<RunConfig>(json).unwrap(), cfg);
        let plain = RunConfig {
            teacher: None,
            ewc: None,
            also: Vec::new(),
            ..cfg
        };
        let json = serde_json::to_value(&plain).unwrap();
        assert!(json.get("teacher").is_none() && json.get("ewc").is_none());
    }

    #[test]
    fn other_tasks_read_from_also_tables_and_get_names_from_their_data() {
        let cfg: RunConfig = toml::from_str(
            "model = \"m\"\n[data]\ntrain = \"data/sst2.tsv\"\ntext_column = \"sentence\"\n\
             label_column = \"label\"\n\
             [[also]]\ntask = \"token-classification\"\n[also.data]\ntrain = \"conll.txt\"\n\
             text_column = \"tokens\"\nlabel_column = \"ner_tags\"\n\
             [[also]]\nname = \"sst2\"\n[also.data]\ndataset = \"emotion\"\n",
        )
        .unwrap();
        assert_eq!(cfg.also.len(), 2);
        assert_eq!(cfg.also[0].task, Task::TokenClassification);
        // `sst2` is given to the third task: the first, named after its file, steps aside.
        assert_eq!(cfg.task_names(), vec!["sst2-2", "conll", "sst2"]);
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(serde_json::from_value::<RunConfig>(json).unwrap(), cfg);
        let one = RunConfig {
            also: Vec::new(),
            ..cfg
        };
        assert!(one.task_names().is_empty());
        assert!(serde_json::to_value(&one).unwrap().get("also").is_none());
    }

    #[test]
    fn a_stored_dataset_and_clear_errors_for_mixed_sources() {
        let cfg: RunConfig = toml::from_str(
            "model = \"m\"\nout = \"o\"\n[data]\ndataset = \"sst2\"\nsplit = \"default\"\n",
        )
        .unwrap();
        assert_eq!(
            cfg.data,
            DataConfig::Stored(StoredData {
                dataset: "sst2".into(),
                split: Some("default".into()),
                valid_fraction: 0.1
            })
        );
        let json = serde_json::to_value(&cfg).unwrap();
        assert_eq!(serde_json::from_value::<RunConfig>(json).unwrap(), cfg);
        let err = toml::from_str::<RunConfig>(
            "model = \"m\"\nout = \"o\"\n[data]\ndataset = \"a\"\ntrain = \"t.tsv\"\n",
        )
        .unwrap_err();
        assert!(err.to_string().contains("not both"), "{err}");
    }
}
