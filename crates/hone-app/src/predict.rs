//! A fine-tuned model answering texts, whichever its task: the command line's `hone predict`
//! and the desktop Playground both go through [`FineTunedModel`], so a new task head shows up
//! in both at once.

use std::path::Path;

use hone_data::Example;
use hone_engine::inference::{
    AnswerPrediction, AnswerPredictor, ChoicePrediction, ChoicePredictor, Prediction, Predictor,
    TokenPrediction, TokenPredictor,
};
use hone_engine::models::{ModelSpec, Task};
use hone_engine::DeviceSpec;
use serde::{Deserialize, Serialize};

use crate::AppError;

/// A fine-tuned model folder loaded for prediction.
pub enum FineTunedModel {
    /// `*ForSequenceClassification`: a class per text (or text pair).
    Classes(Predictor),
    /// `*ForTokenClassification`: a tag per token, grouped into entities.
    Tokens(TokenPredictor),
    /// `*ForMultipleChoice`: the options of a question ranked.
    Choices(ChoicePredictor),
    /// `*ForQuestionAnswering`: the answer to a question found in a passage.
    Answers(AnswerPredictor),
    /// Several runs' models of one task and classes, combined (`hone ensemble create`).
    Ensemble(Box<crate::ensemble::Ensemble>),
    /// `*ForCausalLM`: text generated (`hone generate`, the Playground's chat).
    Language(Box<hone_engine::sft::LanguageModel>),
    /// `*ForConditionalGeneration` (T5): a target generated from each source text.
    TextToText(Box<hone_engine::seq2seq::TextToText>),
}

/// What a model says about some texts, by task.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "task", content = "predictions", rename_all = "kebab-case")]
pub enum Predictions {
    SequenceClassification(Vec<Prediction>),
    TokenClassification(Vec<TokenPrediction>),
    MultipleChoice(Vec<ChoicePrediction>),
    QuestionAnswering(Vec<AnswerPrediction>),
}

/// How a question-answering model reads passages: windows sharing `doc_stride` tokens, answers
/// of at most `max_answer_length` tokens.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub struct AnswerSettings {
    pub doc_stride: usize,
    pub max_answer_length: usize,
}

impl From<&hone_engine::TrainingConfig> for AnswerSettings {
    /// How a run trained with `training` reads passages.
    fn from(training: &hone_engine::TrainingConfig) -> Self {
        AnswerSettings {
            doc_stride: training.doc_stride,
            max_answer_length: training.max_answer_length,
        }
    }
}

impl Default for AnswerSettings {
    /// The pipeline's stride (128) and Hone's longest answer (30 tokens, as `run_qa.py`).
    fn default() -> Self {
        AnswerSettings {
            doc_stride: 128,
            max_answer_length: 30,
        }
    }
}

impl FineTunedModel {
    /// Loads the folder with the head its config's `architectures` names (a folder without
    /// one is read as a text classifier, as Hone exported them first). `max_length` defaults
    /// to the model's maximum.
    pub fn load(
        dir: &Path,
        device: DeviceSpec,
        max_length: Option<usize>,
    ) -> Result<Self, AppError> {
        if let Some(manifest) = crate::ensemble::read_manifest(dir)? {
            let ensemble = crate::ensemble::Ensemble::load(dir, manifest, device, max_length)?;
            return Ok(FineTunedModel::Ensemble(Box::new(ensemble)));
        }
        let device = &device.open()?;
        let spec = ModelSpec::from_dir(dir)?;
        if spec.family.is_decoder() {
            return Ok(FineTunedModel::Language(Box::new(
                hone_engine::sft::LanguageModel::load(dir, device, max_length)?,
            )));
        }
        if spec.family.descriptor().tasks.contains(&Task::Text2Text) {
            return Ok(FineTunedModel::TextToText(Box::new(
                hone_engine::seq2seq::TextToText::load(dir, device, max_length)?,
            )));
        }
        Ok(match spec.task() {
            Some(Task::TokenClassification) => {
                FineTunedModel::Tokens(TokenPredictor::load(dir, device, max_length)?)
            }
            Some(Task::MultipleChoice) => {
                FineTunedModel::Choices(ChoicePredictor::load(dir, device, max_length)?)
            }
            Some(Task::QuestionAnswering) => {
                FineTunedModel::Answers(AnswerPredictor::load(dir, device, max_length)?)
            }
            Some(Task::SequenceClassification | Task::CausalLm | Task::Text2Text) | None => {
                FineTunedModel::Classes(Predictor::load(dir, device, max_length)?)
            }
        })
    }

    /// Runs the model's linear layers with dynamic int8 quantization from now on (on the
    /// CPU: weights int8 per output feature, activations per token; `hone predict --int8`).
    /// Text generation is not covered.
    pub fn use_int8(&mut self) -> Result<(), AppError> {
        match self {
            FineTunedModel::Classes(p) => p.use_int8()?,
            FineTunedModel::Tokens(p) => p.use_int8()?,
            FineTunedModel::Choices(p) => p.use_int8()?,
            FineTunedModel::Answers(p) => p.use_int8()?,
            FineTunedModel::Ensemble(e) => {
                for member in &mut e.members {
                    member.use_int8()?;
                }
            }
            FineTunedModel::Language(_) | FineTunedModel::TextToText(_) => {
                return Err(AppError::Invalid(
                    "int8 inference covers classifiers, taggers, multiple choice and question \
                     answering; a language model generates in f32 (export a decoder as GGUF \
                     q8_0 for an 8-bit model)"
                        .into(),
                ))
            }
        }
        Ok(())
    }

    /// The task of the model's head.
    pub fn task(&self) -> Task {
        match self {
            FineTunedModel::Classes(_) => Task::SequenceClassification,
            FineTunedModel::Tokens(_) => Task::TokenClassification,
            FineTunedModel::Choices(_) => Task::MultipleChoice,
            FineTunedModel::Answers(_) => Task::QuestionAnswering,
            FineTunedModel::Ensemble(e) => e.manifest.task,
            FineTunedModel::Language(_) => Task::CausalLm,
            FineTunedModel::TextToText(_) => Task::Text2Text,
        }
    }

    /// Class or tag names, id = index.
    pub fn labels(&self) -> &[String] {
        match self {
            FineTunedModel::Classes(p) => p.labels(),
            FineTunedModel::Tokens(p) => p.labels(),
            FineTunedModel::Choices(p) => p.labels(),
            FineTunedModel::Answers(p) => p.labels(),
            FineTunedModel::Ensemble(e) => &e.manifest.labels,
            FineTunedModel::Language(_) | FineTunedModel::TextToText(_) => &[],
        }
    }

    /// Predicts every text; `pair` is the second text of sentence-pair classifiers (the same
    /// for every text), refused by token classifiers. Multiple-choice models take
    /// [`FineTunedModel::predict_choices`].
    pub fn predict(
        &self,
        texts: &[String],
        pair: Option<&str>,
        batch_size: usize,
    ) -> Result<Predictions, AppError> {
        match self {
            FineTunedModel::Classes(p) => {
                let inputs: Vec<(String, Option<String>)> = texts
                    .iter()
                    .map(|t| (t.clone(), pair.map(str::to_string)))
                    .collect();
                Ok(Predictions::SequenceClassification(
                    p.predict(&inputs, batch_size)?,
                ))
            }
            FineTunedModel::Tokens(p) => {
                if pair.is_some() {
                    return Err(AppError::Invalid(
                        "a second text is for sentence-pair classifiers; this model tags tokens"
                            .into(),
                    ));
                }
                Ok(Predictions::TokenClassification(
                    p.predict(texts, batch_size)?,
                ))
            }
            FineTunedModel::Choices(_) => Err(AppError::Invalid(
                "this model picks among options: give a question and its options".into(),
            )),
            FineTunedModel::Answers(_) => Err(AppError::Invalid(
                "this model finds answers in a passage: give a question and its context".into(),
            )),
            FineTunedModel::Language(_) | FineTunedModel::TextToText(_) => Err(AppError::Invalid(
                "this model writes text: generate with it (hone generate, or the Playground's chat)"
                    .into(),
            )),
            FineTunedModel::Ensemble(e) => {
                let inputs: Vec<(String, Option<String>)> = texts
                    .iter()
                    .map(|t| (t.clone(), pair.map(str::to_string)))
                    .collect();
                Ok(Predictions::SequenceClassification(
                    e.predict(&inputs, batch_size)?,
                ))
            }
        }
    }

    /// Ranks the options of each question (`text` the question, `text_pair` an optional
    /// context, `choices` the options); only multiple-choice models answer.
    pub fn predict_choices(
        &self,
        questions: &[Example],
        batch_size: usize,
    ) -> Result<Predictions, AppError> {
        match self {
            FineTunedModel::Choices(p) => Ok(Predictions::MultipleChoice(
                p.predict(questions, batch_size)?,
            )),
            FineTunedModel::Ensemble(e) => Ok(Predictions::MultipleChoice(
                e.predict_choices(questions, batch_size)?,
            )),
            other => Err(AppError::Invalid(format!(
                "options are for multiple-choice models; this one is for {}",
                other.task().display_name()
            ))),
        }
    }

    /// The language model, for generation; an error names what this model does instead.
    pub fn language_model(&self) -> Result<&hone_engine::sft::LanguageModel, AppError> {
        match self {
            FineTunedModel::Language(m) => Ok(m),
            other => Err(AppError::Invalid(format!(
                "generation needs a causal LM (Llama, Qwen2, Mistral, SmolLM); this model is for {}",
                other.task().display_name()
            ))),
        }
    }

    /// The text-to-text model, for generation from sources.
    pub fn text_to_text(&self) -> Option<&hone_engine::seq2seq::TextToText> {
        match self {
            FineTunedModel::TextToText(m) => Some(m),
            _ => None,
        }
    }

    /// Answers each (question, passage) with a span of the passage; only question-answering
    /// models answer.
    pub fn predict_answers(
        &self,
        questions: &[(String, String)],
        settings: AnswerSettings,
        batch_size: usize,
    ) -> Result<Predictions, AppError> {
        match self {
            FineTunedModel::Answers(p) => Ok(Predictions::QuestionAnswering(p.predict(
                questions,
                settings.doc_stride,
                settings.max_answer_length,
                batch_size,
            )?)),
            other => Err(AppError::Invalid(format!(
                "a question with a passage is for question-answering models; this one is for {}",
                other.task().display_name()
            ))),
        }
    }
}
