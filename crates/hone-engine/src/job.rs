//! A whole fine-tuning run: examples (read by hone-app from files or the database) → labels →
//! split → tokens → model → training (or resuming) → the best checkpoint exported.

use std::path::Path;
use std::sync::atomic::AtomicBool;

use hone_data::{stratified_holdout, Example, LabelSet, TextTokenizer};

use crate::batch::{EncodedSet, WordTags};
use crate::checkpoint::load_last;
use crate::config::{ModelInit, TrainingConfig};
use crate::curriculum::CurriculumOrder;
use crate::device::device_name;
use crate::events::{RunStatus, TrainEvent};
use crate::export::{export_model, ModelCard};
use crate::graph::IGNORE_LABEL;
use crate::lr_find::{lr_find, LrFindPoint, LrFindResult, LrFindSettings};
use crate::models::{HeadSpec, Model, ModelSpec, Task};
use crate::multitask::TaskSet;
use crate::trainer::{TrainPlan, TrainSummary, Trainer};
use crate::EngineError;

/// The result of a fine-tuning run.
#[derive(Debug, Clone)]
pub struct FineTuneOutcome {
    pub summary: TrainSummary,
    pub labels: Vec<String>,
}

/// Labeled examples ready for training, with their class names (token classification: the
/// IOB2 tags).
#[derive(Debug, Clone)]
pub struct TrainingData {
    pub task: Task,
    pub labels: LabelSet,
    pub train: Vec<Example>,
    pub valid: Vec<Example>,
    /// Things to tell the user (a guessed file encoding).
    pub notices: Vec<String>,
}

/// Holds out a seeded, stratified `fraction` of `examples` for validation.
pub fn hold_out(
    examples: Vec<Example>,
    ids: &[u32],
    fraction: f64,
    seed: u64,
) -> (Vec<Example>, Vec<Example>) {
    let (train_idx, valid_idx) = stratified_holdout(ids, fraction, seed);
    let mut slots: Vec<Option<Example>> = examples.into_iter().map(Some).collect();
    let mut take =
        |idx: &[usize]| -> Vec<Example> { idx.iter().filter_map(|&i| slots[i].take()).collect() };
    let train = take(&train_idx);
    let valid = take(&valid_idx);
    (train, valid)
}

/// The tag set of token-classification examples: O first, then the entity tags sorted by
/// type (B- before I-).
pub fn tag_set<'e>(examples: impl IntoIterator<Item = &'e Example>) -> LabelSet {
    let mut distinct: std::collections::BTreeSet<&str> = examples
        .into_iter()
        .flat_map(|e| e.tags.iter().map(String::as_str))
        .collect();
    distinct.insert("O");
    let mut tags: Vec<&str> = distinct.into_iter().collect();
    tags.sort_by_key(|t| (*t != "O", t.get(2..).unwrap_or(""), *t));
    LabelSet::from_names(tags.into_iter().map(str::to_string).collect())
}

/// The validation examples given, or else a seeded (unstratified) `fraction` of `train`.
pub fn given_or_held_out(
    train: Vec<Example>,
    valid: Option<Vec<Example>>,
    fraction: f64,
    seed: u64,
) -> (Vec<Example>, Vec<Example>) {
    match valid {
        Some(valid) => (train, valid),
        None => {
            let unstratified = vec![0; train.len()];
            hold_out(train, &unstratified, fraction, seed)
        }
    }
}

/// Token-classification data: the tag set of the training sentences, and the validation
/// sentences given, or else a seeded share of the training ones. Validation tags the training
/// data lacks are refused when the sentences are encoded.
pub fn tagged_data(
    train: Vec<Example>,
    valid: Option<Vec<Example>>,
    valid_fraction: f64,
    seed: u64,
    notices: Vec<String>,
) -> TrainingData {
    let labels = tag_set(&train);
    let (train, valid) = given_or_held_out(train, valid, valid_fraction, seed);
    TrainingData {
        task: Task::TokenClassification,
        labels,
        train,
        valid,
        notices,
    }
}

/// The right option's index of a multiple-choice example (as `read_choice_examples` writes
/// it), checked against the number of options.
fn right_option(e: &Example) -> Result<Option<u32>, EngineError> {
    let Some(label) = &e.label else {
        return Ok(None);
    };
    match label.parse::<u32>() {
        Ok(i) if (i as usize) < e.choices.len() => Ok(Some(i)),
        _ => Err(EngineError::InvalidConfig(format!(
            "line {}: the answer '{label}' is not the index of one of the {} options",
            e.line,
            e.choices.len()
        ))),
    }
}

/// Multiple-choice data: the options' letters (A, B, …, as many as the most options a
/// training question has) as classes, and the validation questions given, or else a seeded
/// share of the training ones stratified by the right option's place. Questions with fewer
/// options are padded when they are encoded.
pub fn choice_data(
    train: Vec<Example>,
    valid: Option<Vec<Example>>,
    valid_fraction: f64,
    seed: u64,
    notices: Vec<String>,
) -> Result<TrainingData, EngineError> {
    let n = train.iter().map(|e| e.choices.len()).max().unwrap_or(0);
    if n < 2 {
        return Err(EngineError::InvalidConfig(
            "multiple choice needs questions with at least 2 options".into(),
        ));
    }
    if let Some(odd) = valid.iter().flatten().find(|e| e.choices.len() > n) {
        return Err(EngineError::InvalidConfig(format!(
            "line {}: the validation question has {} options, the training questions at most {n}",
            odd.line,
            odd.choices.len()
        )));
    }
    let ids = train
        .iter()
        .map(|e| {
            right_option(e)?.ok_or_else(|| {
                EngineError::InvalidConfig(format!(
                    "line {}: the question has no answer; training needs one",
                    e.line
                ))
            })
        })
        .collect::<Result<Vec<u32>, _>>()?;
    let labels = LabelSet::from_names((0..n).map(hone_data::choice_letter).collect());
    let (train, valid) = match valid {
        Some(valid) => (train, valid),
        None => hold_out(train, &ids, valid_fraction, seed),
    };
    Ok(TrainingData {
        task: Task::MultipleChoice,
        labels,
        train,
        valid,
        notices,
    })
}

/// The two scores per token of a question-answering head.
pub const SPAN_LABELS: [&str; 2] = ["start", "end"];

/// Question-answering data: the validation questions given, or else a seeded share of the
/// training ones. Training needs every question answered.
pub fn answer_data(
    train: Vec<Example>,
    valid: Option<Vec<Example>>,
    valid_fraction: f64,
    seed: u64,
    notices: Vec<String>,
) -> Result<TrainingData, EngineError> {
    if let Some(e) = train.iter().find(|e| e.answers.is_empty()) {
        return Err(EngineError::InvalidConfig(format!(
            "question {}{} has no answer; training needs one for every question",
            e.line,
            e.qa_id
                .as_deref()
                .map(|i| format!(" ({i})"))
                .unwrap_or_default()
        )));
    }
    let (train, valid) = given_or_held_out(train, valid, valid_fraction, seed);
    Ok(TrainingData {
        task: Task::QuestionAnswering,
        labels: LabelSet::from_names(SPAN_LABELS.iter().map(|s| s.to_string()).collect()),
        train,
        valid,
        notices,
    })
}

/// The text paired with each option: the question, after its context when there is one.
pub fn choice_prompt(e: &Example) -> String {
    match &e.text_pair {
        Some(context) => format!("{context} {}", e.text),
        None => e.text.clone(),
    }
}

/// Encodes multiple-choice questions as transformers' `*ForMultipleChoice` reads them: one
/// (prompt, option) pair per option; a pair too long loses the end of its prompt, never the
/// option (unless the option alone is too long); the label is the right
/// option's index (none for unlabeled questions). A question with fewer than `options`
/// options is padded with empty ones that take no part in its softmax.
pub fn encode_choices(
    tokenizer: &TextTokenizer,
    examples: &[Example],
    options: usize,
) -> Result<EncodedSet, EngineError> {
    let n = options;
    let mut pairs = Vec::with_capacity(examples.len() * n);
    let mut padded = Vec::with_capacity(examples.len() * n);
    let mut labels = Vec::with_capacity(examples.len());
    for e in examples {
        if e.choices.len() > n || e.choices.len() < 2 {
            return Err(EngineError::InvalidConfig(format!(
                "line {}: the question has {} options; this model takes 2 to {n}",
                e.line,
                e.choices.len()
            )));
        }
        let prompt = choice_prompt(e);
        let empty = std::iter::repeat_n(String::new(), n - e.choices.len());
        pairs.extend(
            e.choices
                .iter()
                .cloned()
                .chain(empty)
                .map(|c| (prompt.clone(), c)),
        );
        padded.extend((0..n).map(|i| i >= e.choices.len()));
        labels.extend(right_option(e)?);
    }
    let padded = if padded.iter().any(|&p| p) {
        padded
    } else {
        Vec::new()
    };
    if !labels.is_empty() && labels.len() != examples.len() {
        return Err(EngineError::InvalidConfig(
            "some questions have an answer and some do not".into(),
        ));
    }
    Ok(EncodedSet {
        examples: tokenizer.encode_keeping_second(&pairs)?,
        choices: n,
        padded,
        labels,
        ..Default::default()
    })
}

/// An encoder–decoder's first decoder token (`None` for other models).
fn decoder_start(spec: &crate::models::ModelSpec) -> Option<u32> {
    spec.encoder.t5.as_ref().map(|t| t.decoder_start_token_id)
}

/// Encodes examples for `task` with the run's options (`chat`: how a causal LM's
/// conversations are rendered; `decoder_start`: an encoder–decoder's first decoder token).
pub fn encode(
    tokenizer: &TextTokenizer,
    labels: &LabelSet,
    examples: &[Example],
    task: Task,
    cfg: &TrainingConfig,
    chat: Option<&crate::sft::Conversations>,
    decoder_start: Option<u32>,
) -> Result<EncodedSet, EngineError> {
    match task {
        Task::Text2Text => {
            return crate::seq2seq::encode(
                tokenizer,
                examples,
                &cfg.source_prefix,
                cfg.max_target_length,
                decoder_start.unwrap_or(0),
                true,
            )
        }
        Task::CausalLm => {
            let chat = chat.ok_or_else(|| {
                EngineError::InvalidConfig("a causal LM run needs its chat settings".into())
            })?;
            return chat.encode(tokenizer, examples);
        }
        Task::TokenClassification => {
            return encode_tagged(tokenizer, labels, examples, cfg.label_all_subtokens, true)
        }
        Task::MultipleChoice => return encode_choices(tokenizer, examples, labels.len()),
        Task::QuestionAnswering => {
            return crate::answers::encode_answers(
                tokenizer,
                examples,
                cfg.doc_stride,
                cfg.max_answer_length,
            )
        }
        Task::SequenceClassification => {}
    }
    let texts: Vec<(&str, Option<&str>)> = examples
        .iter()
        .map(|e| (e.text.as_str(), e.text_pair.as_deref()))
        .collect();
    Ok(EncodedSet {
        examples: tokenizer.encode(&texts)?,
        labels: labels.ids_for(Path::new("the data"), examples)?,
        ..Default::default()
    })
}

/// Encodes tagged sentences: words to sub-tokens, tags onto the first sub-token of each word
/// (or every sub-token, B- becoming I- after the first). A tag not in `labels` is an error
/// when `strict` (training); otherwise it takes no loss and still counts as gold in the
/// scores (evaluating a file with tags the model never learned).
pub fn encode_tagged(
    tokenizer: &TextTokenizer,
    labels: &LabelSet,
    examples: &[Example],
    label_all_subtokens: bool,
    strict: bool,
) -> Result<EncodedSet, EngineError> {
    let sentences: Vec<&[String]> = examples.iter().map(|e| &e.tokens[..]).collect();
    let encoded = tokenizer.encode_words(&sentences)?;
    let inside = |id: u32| -> u32 {
        match labels.names()[id as usize].strip_prefix("B-") {
            Some(kind) => labels.id(&format!("I-{kind}")).unwrap_or(id),
            None => id,
        }
    };
    let mut set = EncodedSet::default();
    for (e, enc) in examples.iter().zip(encoded) {
        let ids: Vec<u32> = e
            .tags
            .iter()
            .map(|t| match labels.id(t) {
                Some(id) => Ok(id),
                None if !strict => Ok(IGNORE_LABEL),
                None => Err(EngineError::InvalidConfig(format!(
                    "line {}: the tag '{t}' is not in the training data (its tags: {})",
                    e.line,
                    labels.names().join(", ")
                ))),
            })
            .collect::<Result<_, _>>()?;
        set.token_labels
            .push(enc.token_labels(&ids, label_all_subtokens, inside, IGNORE_LABEL));
        set.words.push(WordTags {
            first_tokens: enc.first_tokens(e.tokens.len()),
            words: e.tokens.clone(),
            tags: e.tags.clone(),
        });
        set.examples.push(enc.example);
    }
    Ok(set)
}

/// Where a run reads its model and writes its results.
pub struct RunPaths<'a> {
    /// The pretrained model folder.
    pub model: &'a Path,
    /// What the model card calls the pretrained model: its Hub repo id when it came from the
    /// Hub, else its folder.
    pub base_model: &'a str,
    /// Folder receiving the exported model of the best checkpoint.
    pub out: &'a Path,
    /// Folder of the `best` and `last` checkpoints.
    pub work_dir: &'a Path,
    /// Knowledge distillation and loss curricula: the teacher's model folder.
    pub teacher: Option<&'a Path>,
    /// Elastic weight consolidation: the previous task to hold on to.
    pub previous: Option<&'a PreviousTask>,
    /// Multi-task learning: the main task's name and the tasks trained beside it; each head
    /// is exported to its own folder in `out`, named after its task.
    pub multitask: Option<&'a MultiTask>,
}

/// A task trained beside the main one on the same encoder (multi-task learning).
pub struct NamedTask {
    /// Letters, digits, `-` and `_`: it names the task's results and exported folder.
    pub name: String,
    pub data: TrainingData,
}

/// Multi-task learning: one encoder, a head per task.
pub struct MultiTask {
    /// The main task's name (the run's own data).
    pub main: String,
    pub also: Vec<NamedTask>,
}

impl MultiTask {
    /// Every task's name, the main one first.
    pub fn names(&self) -> impl Iterator<Item = &str> {
        std::iter::once(self.main.as_str()).chain(self.also.iter().map(|t| t.name.as_str()))
    }

    /// Checks the names ([`check_task_names`]).
    pub fn check(&self) -> Result<(), EngineError> {
        check_task_names(self.names())
    }
}

/// Checks a multi-task run's task names: each usable ([`is_task_name`]) and distinct ignoring
/// case (`Reviews` and `reviews` are one folder on macOS and Windows).
pub fn check_task_names<'a>(names: impl IntoIterator<Item = &'a str>) -> Result<(), EngineError> {
    let mut seen = std::collections::HashSet::new();
    for name in names {
        if !is_task_name(name) {
            return Err(EngineError::InvalidConfig(format!(
                "task name '{name}': use 1 to 64 letters, digits, '-' or '_', not a name \
                 Windows keeps for devices (it names the task's exported folder)"
            )));
        }
        if !seen.insert(name.to_ascii_lowercase()) {
            return Err(EngineError::InvalidConfig(format!(
                "two tasks are named '{name}'; give each task its own name"
            )));
        }
    }
    Ok(())
}

/// True for a usable task name: 1 to 64 ASCII letters, digits, `-` or `_`, and not a device
/// name Windows reserves (`con`, `nul`, `com1`, …) — it becomes a folder name.
pub fn is_task_name(name: &str) -> bool {
    const RESERVED: [&str; 4] = ["con", "prn", "aux", "nul"];
    let lower = name.to_ascii_lowercase();
    let device = RESERVED.contains(&lower.as_str())
        || ((lower.starts_with("com") || lower.starts_with("lpt"))
            && lower.len() == 4
            && lower.as_bytes()[3].is_ascii_digit());
    !name.is_empty()
        && name.len() <= 64
        && !device
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
}

/// Another head of a multi-task run, ready to train: its model (sharing the encoder) and
/// encoded examples.
pub struct PreparedTask {
    pub name: String,
    pub model: Model,
    pub train: EncodedSet,
    pub valid: EncodedSet,
    pub labels: Vec<String>,
}

/// A task trained before, for elastic weight consolidation: its fine-tuned model (whose
/// weights are the anchor) and its data (where the Fisher information is estimated).
pub struct PreviousTask {
    pub model: std::path::PathBuf,
    pub data: TrainingData,
}

/// The EWC penalty of `previous`: its model's Fisher information on its own data.
pub fn previous_task_penalty(
    previous: &PreviousTask,
    cfg: &TrainingConfig,
    device: &candle_core::Device,
    sink: &mut dyn FnMut(TrainEvent),
) -> Result<crate::ewc::Ewc, EngineError> {
    let data = &previous.data;
    let spec = ModelSpec::from_dir(&previous.model)?;
    let max_length = cfg.max_length.min(spec.max_sequence_length());
    let tokenizer = TextTokenizer::from_model_dir(&previous.model, max_length)?;
    let set = encode(
        &tokenizer,
        &data.labels,
        &data.train,
        data.task,
        cfg,
        None,
        decoder_start(&spec),
    )?;
    let model = Model::load(
        &previous.model,
        data.task,
        data.labels.len(),
        Some(0.0),
        device,
        0,
    )?;
    let samples = cfg.ewc_samples.min(set.len());
    sink(TrainEvent::Notice {
        message: format!(
            "elastic weight consolidation: estimating what {} needed on {samples} of its examples",
            previous.model.display()
        ),
    });
    let ewc = crate::ewc::Ewc::estimate(
        &model,
        &set,
        samples,
        cfg.seed,
        cfg.ewc_lambda,
        &mut |_, _| {},
    )?;
    sink(TrainEvent::Notice {
        message: format!(
            "elastic weight consolidation: holding the previous task's weights (mean Fisher {:.3e}, λ {})",
            ewc.mean_fisher(),
            cfg.ewc_lambda
        ),
    });
    Ok(ewc)
}

/// Adds the teacher's scores to the training set (a loss curriculum needs them).
fn teach(
    train: &mut EncodedSet,
    data: &TrainingData,
    cfg: &TrainingConfig,
    teacher: Option<&Path>,
    device: &candle_core::Device,
    work_dir: &Path,
    sink: &mut dyn FnMut(TrainEvent),
) -> Result<(), EngineError> {
    if let Some(dir) = teacher {
        sink(TrainEvent::Notice {
            message: format!(
                "scoring the {} training examples with the teacher {} (once: they are cached)",
                data.train.len(),
                dir.display()
            ),
        });
        train.teacher = crate::distill::teacher_logits(
            dir,
            &data.train,
            &data.labels,
            data.task,
            cfg,
            device,
            work_dir,
        )?;
    }
    if cfg.curriculum == CurriculumOrder::Loss && train.teacher.is_empty() {
        return Err(EngineError::InvalidConfig(
            "a loss curriculum orders examples by a teacher's loss: give a teacher (a \
             finished run or a model folder) or order by length"
                .into(),
        ));
    }
    Ok(())
}

/// What a run trains: the model (pretrained or fresh), the encoded training and validation
/// sets, the tokenizer, and the options as they apply (a too-wide document stride narrowed).
pub struct Prepared {
    pub spec: ModelSpec,
    pub device: candle_core::Device,
    pub model: Model,
    pub tokenizer: TextTokenizer,
    pub train: EncodedSet,
    pub valid: EncodedSet,
    pub max_length: usize,
    pub cfg: TrainingConfig,
    /// Multi-task learning: the other heads (the main one is `model`).
    pub also: Vec<PreparedTask>,
    /// A causal-LM run's fixed prompts, answered at each evaluation.
    pub samples: Option<crate::sft::SamplePrompts>,
    /// A text-to-text run's generations at each evaluation.
    pub generations: Option<crate::seq2seq::ValidationGenerations>,
}

/// Checks the options, encodes `data` with the model's tokenizer and builds the model, telling
/// `sink` what it adjusted. Shared by a run and the learning-rate range test.
pub fn prepare(
    model_dir: &Path,
    data: &TrainingData,
    multitask: Option<&MultiTask>,
    cfg: &TrainingConfig,
    sink: &mut dyn FnMut(TrainEvent),
) -> Result<Prepared, EngineError> {
    cfg.validate()?;
    let mut spec = ModelSpec::from_dir(model_dir)?;
    adapt(&mut spec, data.task, cfg, sink)?;
    if data.task == Task::Text2Text && !cfg.source_prefix.is_empty() {
        // The exported config's `prefix`: transformers' text2text pipeline writes it before
        // every input, and so does Hone's (`seq2seq::TextToText`).
        if let Some(obj) = spec.raw.as_object_mut() {
            obj.insert("prefix".into(), cfg.source_prefix.clone().into());
        }
    }
    let device = cfg.device.open()?;
    for message in &data.notices {
        sink(TrainEvent::Notice {
            message: message.clone(),
        });
    }
    if let Some(multi) = multitask {
        multi.check()?;
    }
    let others = multitask.map_or(&[][..], |m| &m.also[..]);
    for (name, d) in
        std::iter::once(("", data)).chain(others.iter().map(|t| (&t.name[..], &t.data)))
    {
        if d.train.is_empty() {
            let which = if name.is_empty() {
                String::new()
            } else {
                format!("task '{name}': ")
            };
            return Err(EngineError::InvalidConfig(format!(
                "{which}no training examples are left after holding out the validation share"
            )));
        }
        if !name.is_empty() {
            for message in &d.notices {
                sink(TrainEvent::Notice {
                    message: format!("{name}: {message}"),
                });
            }
        }
    }
    let labels = &data.labels;
    let model_max = spec.max_sequence_length();
    let max_length = cfg.max_length.min(model_max);
    if max_length < cfg.max_length {
        sink(TrainEvent::Notice {
            message: format!(
                "max length {} is longer than the model allows; using {model_max}",
                cfg.max_length
            ),
        });
    }
    let tokenizer =
        TextTokenizer::from_model_dir(&crate::lora::tokenizer_folder(model_dir)?, max_length)?;
    let task = data.task;
    let mut cfg = cfg.clone();
    let (precision, notice) = crate::precision::resolve(cfg.precision, &device);
    if let Some(message) = notice {
        sink(TrainEvent::Notice { message });
    }
    cfg.precision = precision;
    let any_answers = std::iter::once(task)
        .chain(others.iter().map(|t| t.data.task))
        .any(|t| t == Task::QuestionAnswering);
    if any_answers && cfg.doc_stride >= max_length {
        let stride = max_length / 2;
        sink(TrainEvent::Notice {
            message: format!(
                "document stride {} is not shorter than the maximum length {max_length}; using {stride}",
                cfg.doc_stride
            ),
        });
        cfg.doc_stride = stride;
    }
    let chat = match task {
        Task::CausalLm => {
            let chat = crate::sft::Conversations::for_model(
                &crate::lora::tokenizer_folder(model_dir)?,
                &spec,
                &tokenizer,
                &crate::sft::TemplateChoice::parse(&cfg.chat_template),
                cfg.loss_on,
            )?;
            if !chat.has_template() {
                sink(TrainEvent::Notice {
                    message: "the conversations are written in the Alpaca prompt (### \
                              Instruction / ### Response): the model has no chat template, \
                              or none was asked for"
                        .into(),
                });
            }
            Some(chat)
        }
        _ => None,
    };
    let start = decoder_start(&spec);
    let train = encode(
        &tokenizer,
        labels,
        &data.train,
        task,
        &cfg,
        chat.as_ref(),
        start,
    )?;
    let valid = encode(
        &tokenizer,
        labels,
        &data.valid,
        task,
        &cfg,
        chat.as_ref(),
        start,
    )?;
    if chat.is_none() && !cfg.sample_prompt_list().is_empty() {
        sink(TrainEvent::Notice {
            message: "sample prompts are answered by causal-LM runs only: none this run".into(),
        });
    }
    let samples = match &chat {
        Some(_) if valid.is_empty() && !cfg.sample_prompt_list().is_empty() => {
            sink(TrainEvent::Notice {
                message: "sample prompts are answered after each validation, and this run has \
                          no validation examples: none this run"
                    .into(),
            });
            None
        }
        Some(chat) if !cfg.sample_prompt_list().is_empty() => {
            if !matches!(device, candle_core::Device::Cpu) {
                sink(TrainEvent::Notice {
                    message: "sample answers are generated on the CPU only: none this run".into(),
                });
                None
            } else {
                crate::sft::SamplePrompts::new(
                    &cfg.sample_prompt_list(),
                    &tokenizer,
                    chat,
                    &spec,
                    cfg.sample_tokens,
                )?
            }
        }
        _ => None,
    };
    let generations = match task {
        Task::Text2Text => crate::seq2seq::ValidationGenerations::new(
            &tokenizer,
            &data.valid,
            cfg.generate_examples,
            cfg.max_target_length,
            cfg.rouge_stemmer,
        ),
        _ => None,
    };
    if cfg.init == ModelInit::Random {
        sink(TrainEvent::Notice {
            message: "training from scratch: the weights start at random from config.json \
                      (expect to need far more data and steps than fine-tuning)"
                .into(),
        });
    }
    // One head, or (multi-task) one per task, each named after its task.
    let prefix = |name: &str| match multitask {
        Some(_) => format!("{name}::"),
        None => String::new(),
    };
    let main_name = multitask.map_or("", |m| m.main.as_str());
    let heads: Vec<HeadSpec> = std::iter::once((main_name, data))
        .chain(others.iter().map(|t| (t.name.as_str(), &t.data)))
        .map(|(name, d)| HeadSpec {
            prefix: prefix(name),
            task: d.task,
            num_labels: d.labels.len(),
        })
        .collect();
    let dir = (cfg.init == ModelInit::Pretrained).then_some(model_dir);
    let mut models =
        Model::with_heads(spec.clone(), dir, &heads, cfg.dropout, &device, cfg.seed)?.into_iter();
    let model = models
        .next()
        .ok_or_else(|| EngineError::InvalidConfig("a model needs a head".into()))?;
    let mut also = Vec::with_capacity(others.len());
    for (t, model) in others.iter().zip(models) {
        let d = &t.data;
        also.push(PreparedTask {
            name: t.name.clone(),
            model,
            train: encode(
                &tokenizer,
                &d.labels,
                &d.train,
                d.task,
                &cfg,
                chat.as_ref(),
                start,
            )?,
            valid: encode(
                &tokenizer,
                &d.labels,
                &d.valid,
                d.task,
                &cfg,
                chat.as_ref(),
                start,
            )?,
            labels: d.labels.names().to_vec(),
        });
    }
    Ok(Prepared {
        spec,
        device,
        model,
        tokenizer,
        train,
        valid,
        max_length,
        cfg,
        also,
        samples,
        generations,
    })
}

/// Gives `spec` the run's adapters: its own (`peft = lora` or `adapter`), or an adapter
/// folder's when the run continues training one.
pub(crate) fn adapt(
    spec: &mut ModelSpec,
    task: Task,
    cfg: &TrainingConfig,
    sink: &mut dyn FnMut(TrainEvent),
) -> Result<(), EngineError> {
    use crate::config::FineTuneMethod;
    use crate::models::Adapters;
    let continued = spec.adapters().map(|a| match a {
        Adapters::Lora(l) => (
            FineTuneMethod::Lora,
            format!(
                "the adapter's LoRA (rank {}, alpha {}, on {})",
                l.r,
                l.alpha,
                l.target_entries().join(", ")
            ),
        ),
        Adapters::Bottleneck(b) => (
            FineTuneMethod::Adapter,
            format!(
                "the folder's bottleneck adapters (size {}, {:?})",
                b.size, b.placement
            ),
        ),
        Adapters::Prefix(p) => (
            FineTuneMethod::Prefix,
            format!("the folder's prefix ({} virtual tokens)", p.tokens),
        ),
    });
    if let Some((method, what)) = continued {
        if cfg.peft != method {
            let name = match method {
                FineTuneMethod::Lora => "lora",
                FineTuneMethod::Prefix => "prefix",
                _ => "adapter",
            };
            return Err(EngineError::InvalidConfig(format!(
                "the model is an adapter folder: continue training it with peft = {name}, or \
                 (LoRA) merge it into a full model first (hone export --merge)"
            )));
        }
        sink(TrainEvent::Notice {
            message: format!("continuing {what}; the run's own adapter settings are not used"),
        });
        return Ok(());
    }
    if cfg.peft != FineTuneMethod::Full && cfg.init == ModelInit::Random {
        return Err(EngineError::InvalidConfig(
            "LoRA, adapters and prefixes adapt pretrained weights; training from scratch needs \
             peft = full"
                .into(),
        ));
    }
    spec.lora = cfg.lora_config(spec, task)?;
    spec.bottleneck = cfg.bottleneck_config(task)?;
    spec.prefix = cfg.prefix_config(task)?;
    Ok(())
}

/// The learning-rate range test ([`crate::lr_find`]) on a run's model, data and options:
/// notices go to `sink`, each step to `on_point`.
pub fn find_lr_data(
    model_dir: &Path,
    data: &TrainingData,
    cfg: &TrainingConfig,
    settings: &LrFindSettings,
    sink: &mut dyn FnMut(TrainEvent),
    on_point: &mut dyn FnMut(&LrFindPoint),
    cancel: &AtomicBool,
) -> Result<LrFindResult, EngineError> {
    settings.validate()?;
    let prepared = prepare(model_dir, data, None, cfg, sink)?;
    lr_find(
        &prepared.model,
        &prepared.cfg,
        &prepared.train,
        settings,
        on_point,
        cancel,
    )
}

/// Fine-tunes on `data`, reporting through `sink` and stopping after the current step when
/// `cancel` is raised. With `resume`, continues from the `last` checkpoint in the work folder
/// (exactly: same data order, dropout masks, optimizer state and schedule position). The best
/// checkpoint (or, without validation, the last weights) is exported; `config_text` goes into
/// the model card.
pub fn fine_tune_data(
    paths: &RunPaths,
    data: TrainingData,
    cfg: &TrainingConfig,
    config_text: &str,
    resume: bool,
    sink: &mut dyn FnMut(TrainEvent),
    cancel: &AtomicBool,
) -> Result<FineTuneOutcome, EngineError> {
    if paths.multitask.is_some()
        && (paths.teacher.is_some()
            || paths.previous.is_some()
            || cfg.curriculum != CurriculumOrder::Off)
    {
        return Err(EngineError::InvalidConfig(
            "a multi-task run cannot take a teacher, a previous task (EWC) or a curriculum \
             yet: train the tasks together first, then distil or continue from that run"
                .into(),
        ));
    }
    if cfg.packing && (data.task != Task::CausalLm || paths.multitask.is_some()) {
        return Err(EngineError::InvalidConfig(
            "packing is for causal-LM runs of one task (conversations of different lengths); \
             turn it off"
                .into(),
        ));
    }
    if cfg.packing && cfg.curriculum != CurriculumOrder::Off {
        return Err(EngineError::InvalidConfig(
            "packing and a curriculum both decide which examples share a step: use one".into(),
        ));
    }
    if paths.multitask.is_some() && !cfg.shuffle {
        return Err(EngineError::InvalidConfig(
            "a multi-task run draws each step's task at random, so it cannot keep the file's \
             order: turn shuffling back on"
                .into(),
        ));
    }
    let Prepared {
        spec,
        device,
        model,
        tokenizer,
        mut train,
        valid,
        max_length,
        cfg,
        also,
        samples,
        generations,
    } = prepare(paths.model, &data, paths.multitask, cfg, sink)?;
    let cfg = &cfg;
    let labels = &data.labels;
    teach(
        &mut train,
        &data,
        cfg,
        paths.teacher,
        &device,
        paths.work_dir,
        sink,
    )?;
    let ewc = match paths.previous {
        Some(previous) => Some(std::sync::Arc::new(previous_task_penalty(
            previous, cfg, &device, sink,
        )?)),
        None => None,
    };
    let main_name = paths.multitask.map_or("", |m| m.main.as_str());
    let also_sets: Vec<TaskSet> = also
        .iter()
        .map(|t| TaskSet {
            name: &t.name,
            model: &t.model,
            train: &t.train,
            valid: &t.valid,
            labels: &t.labels,
        })
        .collect();
    let models: Vec<&Model> = std::iter::once(&model)
        .chain(also.iter().map(|t| &t.model))
        .collect();
    let params = crate::multitask::union_params(&models);
    let train_examples = train.len() + also.iter().map(|t| t.train.len()).sum::<usize>();
    let valid_examples = valid.len() + also.iter().map(|t| t.valid.len()).sum::<usize>();
    let units = match crate::packing::run_bins(cfg, &train, &model) {
        Some(bins) => {
            sink(TrainEvent::Notice {
                message: format!(
                    "packing: {} conversations in {} bins of at most {max_length} tokens ({:.0}% full), \
                     {} bins a step",
                    train.len(),
                    bins.len(),
                    100.0 * train.lengths().iter().sum::<usize>() as f64
                        / (bins.len().max(1) * max_length) as f64,
                    cfg.batch_size
                ),
            });
            bins.len()
        }
        None => train_examples,
    };
    let plan = TrainPlan::new(cfg, units, model.num_layers());
    for m in &models {
        crate::recipes::apply_freezing(m, cfg, plan.trainable_depth(0));
    }
    let resume_point = if resume {
        let point = load_last(paths.work_dir)?;
        if point.is_none() {
            sink(TrainEvent::Notice {
                message: "no checkpoint to resume from; starting from the beginning".into(),
            });
        }
        point
    } else {
        None
    };
    for t in also.iter().filter(|t| t.valid.is_empty()) {
        sink(TrainEvent::Notice {
            message: format!(
                "task '{}' has no validation examples: it trains but is not scored, and the \
                 best checkpoint is chosen by the other tasks",
                t.name
            ),
        });
    }
    if !also.is_empty() {
        let shares = crate::multitask::task_weights(
            &std::iter::once(train.len())
                .chain(also.iter().map(|t| t.train.len()))
                .collect::<Vec<_>>(),
            cfg.task_temperature,
        );
        let names: Vec<&str> = std::iter::once(main_name)
            .chain(also.iter().map(|t| t.name.as_str()))
            .collect();
        let described: Vec<String> = names
            .iter()
            .zip(&shares)
            .map(|(n, p)| format!("{n} {:.0}%", 100.0 * p))
            .collect();
        sink(TrainEvent::Notice {
            message: format!(
                "multi-task: {} heads on one encoder; steps drawn per task ({})",
                names.len(),
                described.join(", ")
            ),
        });
    }
    sink(TrainEvent::Started {
        device: device_name(&device),
        model_type: spec.model_type.clone(),
        labels: labels.names().to_vec(),
        train_examples: train_examples as u64,
        valid_examples: valid_examples as u64,
        truncated_train: (train.truncated()
            + also.iter().map(|t| t.train.truncated()).sum::<usize>())
            as u64,
        truncated_valid: (valid.truncated()
            + also.iter().map(|t| t.valid.truncated()).sum::<usize>())
            as u64,
        max_length,
        epochs: cfg.epochs,
        steps_per_epoch: plan.steps_per_epoch,
        total_steps: plan.total_steps,
        warmup_steps: plan.warmup_steps,
        params_total: params.count() as u64,
        params_trainable: params.count_trainable() as u64,
        newly_initialized: models
            .iter()
            .flat_map(|m| m.newly_initialized().iter().cloned())
            .collect(),
    });

    let trainer = Trainer {
        model: &model,
        cfg,
        train: &train,
        valid: &valid,
        labels: labels.names(),
        work_dir: paths.work_dir,
        resume: resume_point,
        ewc,
        also: &also_sets,
        name: main_name,
        samples: samples.as_ref(),
        generations: generations.as_ref(),
    };
    let summary = trainer.run(sink, cancel)?;

    if summary.best.is_some() {
        crate::checkpoint::load_into(
            &crate::recipes::checkpointed(&models, &params, cfg),
            &summary.best_dir.join("model.safetensors"),
            spec.family.name(),
        )?;
    } else if summary.status == RunStatus::Cancelled {
        sink(TrainEvent::Notice {
            message: "stopped before the first validation: exporting the current weights".into(),
        });
    }
    let best_step = summary.best.as_ref().map(|(s, _)| *s);
    let best_report = summary.best.as_ref().map(|(_, r)| r);
    let mut heads = vec![(&model, labels.names(), &train, &valid, main_name)];
    heads.extend(
        also.iter()
            .map(|t| (&t.model, &t.labels[..], &t.train, &t.valid, t.name.as_str())),
    );
    for (m, names, train, valid, name) in heads {
        // A multi-task run's heads go to folders named after their tasks, each with its own
        // task's scores.
        let out = if paths.multitask.is_some() {
            paths.out.join(name)
        } else {
            paths.out.to_path_buf()
        };
        let report = match best_report {
            Some(crate::Report::Tasks(r)) => {
                r.tasks.iter().find(|t| t.name == name).map(|t| &t.report)
            }
            other => other,
        };
        export_model(
            m,
            names,
            paths.model,
            &tokenizer,
            &out,
            &ModelCard {
                base_model: paths.base_model,
                train_examples: train.len() as u64,
                valid_examples: valid.len() as u64,
                best_step,
                report,
                config_text,
            },
        )?;
    }
    sink(TrainEvent::Finished {
        status: summary.status,
        steps: summary.steps,
        elapsed_s: summary.elapsed_s,
        best_step,
        best: best_report.cloned(),
        export_dir: paths.out.to_path_buf(),
    });
    Ok(FineTuneOutcome {
        summary,
        labels: labels.names().to_vec(),
    })
}
