//! Suggestions for the labeling queue: a finished run's model pre-labels the unlabeled
//! examples of a dataset, and the queue orders them by how unsure the model is.

use std::sync::atomic::{AtomicBool, Ordering};

use hone_engine::models::Task;
use hone_engine::DeviceSpec;
use hone_store::{ExampleFilter, Label, StoredExample};
use serde::{Deserialize, Serialize};

use super::scoring::{random_score, sentence_uncertainty, uncertainty, Strategy};
use crate::predict::FineTunedModel;
use crate::{App, AppError};

/// Examples scored per model call (the unit of progress and of cancelling).
const CHUNK: usize = 256;

/// What to suggest: for which dataset, from which run, in which order.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct SuggestRequest {
    pub dataset: String,
    /// A finished run whose model pre-labels (any run with the dataset's task).
    pub run_id: i64,
    pub strategy: Strategy,
    /// Return the first N of the queue (all when `None`).
    pub limit: Option<usize>,
    /// Score at most this many unlabeled examples (a seeded sample of them) when there are
    /// more; `None` scores every one.
    pub pool: Option<usize>,
    /// Seeds the random order and the pool's sample.
    pub seed: u64,
}

/// One unlabeled example with the model's suggestion.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestion {
    pub example_id: i64,
    pub text: String,
    pub text_pair: Option<String>,
    pub tokens: Option<Vec<String>>,
    /// The suggested label: a class, or a tag per word.
    pub label: Label,
    /// The model's probability of its class (tags: of its least certain word's tag).
    pub confidence: f64,
    /// The strategy's score in [0, 1]: the queue is ordered by it, highest first (`random`:
    /// the seeded shuffle's key).
    pub uncertainty: f64,
}

/// The queue for a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Suggestions {
    pub dataset: String,
    pub run_id: i64,
    pub strategy: Strategy,
    /// The model's classes (or tags).
    pub labels: Vec<String>,
    /// Unlabeled examples in the dataset.
    pub unlabeled: usize,
    /// How many of them were scored (all, or the pool's sample).
    pub scored: usize,
    pub suggestions: Vec<Suggestion>,
}

/// The work of a suggestion request that needs no model: the unlabeled examples to score.
pub struct Pool {
    pub examples: Vec<StoredExample>,
    pub unlabeled: usize,
    pub task: Task,
    /// The dataset's class names now (a class renamed since the run trained is suggested
    /// under its new name).
    pub label_names: Vec<String>,
}

impl App {
    /// The unlabeled examples of `request.dataset` to score (a seeded sample of
    /// `request.pool` of them when there are more).
    pub fn unlabeled_pool(&self, request: &SuggestRequest) -> Result<Pool, AppError> {
        let info = self.store().dataset(&request.dataset)?;
        let filter = ExampleFilter {
            labeled: Some(false),
            ..Default::default()
        };
        let mut examples = self.store().examples(info.id, &filter)?;
        let unlabeled = examples.len();
        if let Some(pool) = request.pool.filter(|&p| p < examples.len()) {
            examples.sort_by(|a, b| {
                random_score(request.seed, a.id as u64)
                    .total_cmp(&random_score(request.seed, b.id as u64))
            });
            examples.truncate(pool);
            examples.sort_by_key(|e| e.id);
        }
        Ok(Pool {
            examples,
            unlabeled,
            task: crate::runs::engine_task(info.task),
            label_names: info.label_names,
        })
    }

    /// Suggestions from run `request.run_id`'s model for the unlabeled examples of
    /// `request.dataset` (the command line's `hone data suggest`). `progress` hears
    /// (scored, to score).
    pub fn suggest_labels(
        &self,
        request: &SuggestRequest,
        progress: &mut dyn FnMut(usize, usize),
        cancel: &AtomicBool,
    ) -> Result<Suggestions, AppError> {
        let pool = self.unlabeled_pool(request)?;
        let (dir, max_length) = self.run_model(request.run_id)?;
        let model = FineTunedModel::load(&dir, DeviceSpec::Cpu, max_length)?;
        suggest(&model, request, pool, progress, cancel)
    }
}

/// Ranks `pool` for labeling with `model` (loaded by the caller, who may keep it).
pub fn suggest(
    model: &FineTunedModel,
    request: &SuggestRequest,
    pool: Pool,
    progress: &mut dyn FnMut(usize, usize),
    cancel: &AtomicBool,
) -> Result<Suggestions, AppError> {
    if model.task() != pool.task {
        return Err(AppError::Invalid(format!(
            "run {} was trained for {} and dataset '{}' is for {}: pick a run trained on this kind of data",
            request.run_id,
            task_words(model.task()),
            request.dataset,
            task_words(pool.task)
        )));
    }
    let Pool {
        mut examples,
        unlabeled,
        label_names,
        ..
    } = pool;
    let names = current_names(model.labels(), &label_names);
    let scored = examples.len();
    // The random control needs no model to order the queue: only the examples returned are
    // pre-labeled.
    if request.strategy == Strategy::Random {
        examples.sort_by(|a, b| {
            random_score(request.seed, b.id as u64)
                .total_cmp(&random_score(request.seed, a.id as u64))
        });
        examples.truncate(request.limit.unwrap_or(usize::MAX));
    }
    let total = examples.len();
    let mut suggestions = Vec::with_capacity(total);
    progress(0, total);
    for chunk in examples.chunks(CHUNK) {
        if cancel.load(Ordering::Relaxed) {
            return Err(AppError::Cancelled);
        }
        suggestions.extend(score_chunk(model, chunk, request, &names)?);
        progress(suggestions.len(), total);
    }
    suggestions.sort_by(|a: &Suggestion, b| {
        b.uncertainty
            .total_cmp(&a.uncertainty)
            .then(a.example_id.cmp(&b.example_id))
    });
    suggestions.truncate(request.limit.unwrap_or(usize::MAX));
    Ok(Suggestions {
        dataset: request.dataset.clone(),
        run_id: request.run_id,
        strategy: request.strategy,
        labels: names,
        unlabeled,
        scored,
        suggestions,
    })
}

/// The dataset's name for each of the model's classes: the same name when the dataset still
/// has it, else the dataset's class with the same id (renamed since the run trained; ids are
/// kept by a rename).
fn current_names(model: &[String], dataset: &[String]) -> Vec<String> {
    model
        .iter()
        .enumerate()
        .map(|(id, name)| {
            if dataset.contains(name) {
                return name.clone();
            }
            match dataset.get(id) {
                Some(renamed) if !model.contains(renamed) => renamed.clone(),
                _ => name.clone(),
            }
        })
        .collect()
}

fn task_words(task: Task) -> &'static str {
    match task {
        Task::SequenceClassification => "text classification",
        Task::TokenClassification => "named entities",
        Task::MultipleChoice => "multiple choice",
        Task::QuestionAnswering => "question answering",
        Task::CausalLm => "text generation",
        Task::Text2Text => "text-to-text generation",
    }
}

/// Pre-labels and scores one chunk of examples.
fn score_chunk(
    model: &FineTunedModel,
    chunk: &[StoredExample],
    request: &SuggestRequest,
    names: &[String],
) -> Result<Vec<Suggestion>, AppError> {
    let score = |e: &StoredExample, probabilities: &dyn Fn(Strategy) -> f64| match request.strategy
    {
        Strategy::Random => random_score(request.seed, e.id as u64),
        s => probabilities(s),
    };
    let suggestion =
        |e: &StoredExample, label: Label, confidence: f64, uncertainty: f64| Suggestion {
            example_id: e.id,
            text: e.text.clone(),
            text_pair: e.text_pair.clone(),
            tokens: e.tokens.clone(),
            label,
            confidence,
            uncertainty,
        };
    match model {
        FineTunedModel::Choices(_)
        | FineTunedModel::Ensemble(_)
        | FineTunedModel::Answers(_)
        | FineTunedModel::Language(_)
        | FineTunedModel::TextToText(_) => Err(AppError::Invalid(format!(
            "the labeling assistant works with classifiers and taggers; this model is for {}",
            model.task().display_name()
        ))),
        FineTunedModel::Classes(p) => {
            let inputs: Vec<(String, Option<String>)> = chunk
                .iter()
                .map(|e| (e.text.clone(), e.text_pair.clone()))
                .collect();
            let predictions = p.predict(&inputs, 32)?;
            Ok(chunk
                .iter()
                .zip(predictions)
                .map(|(e, p)| {
                    let confidence = p.probabilities.iter().copied().fold(0.0, f64::max);
                    let u = score(e, &|s| uncertainty(&p.probabilities, s));
                    let label = names.get(p.label_id as usize).cloned().unwrap_or(p.label);
                    suggestion(e, Label::Class(label), confidence, u)
                })
                .collect())
        }
        FineTunedModel::Tokens(p) => {
            let words: Vec<Vec<String>> = chunk.iter().map(words_of).collect();
            let predictions = p.tag_words(&words, 32)?;
            Ok(chunk
                .iter()
                .zip(predictions)
                .map(|(e, p)| {
                    let confidence = p
                        .probabilities
                        .iter()
                        .filter(|w| !w.is_empty())
                        .map(|w| w.iter().copied().fold(0.0, f64::max))
                        .fold(1.0, f64::min);
                    let u = score(e, &|s| sentence_uncertainty(&p.probabilities, s));
                    suggestion(e, Label::Tags(p.tags), confidence, u)
                })
                .collect())
        }
    }
}

/// A stored sentence's words (its tokens; a text without them split at white space).
fn words_of(e: &StoredExample) -> Vec<String> {
    match &e.tokens {
        Some(tokens) => tokens.clone(),
        None => e.text.split_whitespace().map(str::to_string).collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::current_names;

    fn v(names: &[&str]) -> Vec<String> {
        names.iter().map(|s| s.to_string()).collect()
    }

    #[test]
    fn a_class_renamed_after_the_run_is_suggested_under_its_new_name() {
        assert_eq!(
            current_names(&v(&["0", "1"]), &v(&["0", "1"])),
            v(&["0", "1"])
        );
        assert_eq!(
            current_names(&v(&["0", "1"]), &v(&["negative", "positive"])),
            v(&["negative", "positive"])
        );
        // A class added since keeps the model's names for the ones it knows.
        assert_eq!(
            current_names(&v(&["neg", "pos"]), &v(&["neg", "pos", "neutral"])),
            v(&["neg", "pos"])
        );
        assert_eq!(
            current_names(&v(&["0", "1"]), &v(&["negative", "1"])),
            v(&["negative", "1"])
        );
    }
}
