//! Task heads: what sits on a backbone's hidden states for each task. The families only say
//! which head they use under which tensor names (their `head` functions); a head runs the
//! same on every family and every graph.

use serde::{Deserialize, Serialize};

use super::nn::Linear;
use crate::graph::Graph;
use crate::ops::Activation;
use crate::weights::ParamBuilder;
use crate::EngineError;

/// What a model is fine-tuned to do.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Task {
    /// One class per text (or text pair).
    #[default]
    SequenceClassification,
    /// One class per token (named entities, part of speech, …).
    TokenClassification,
    /// The right option of several for a question: each (question, option) pair scored by
    /// the same head, softmax over the options.
    MultipleChoice,
    /// Extractive question answering: the answer's first and last token in a passage (two
    /// scores per token, softmax over the tokens of each window).
    QuestionAnswering,
    /// Causal language modelling (supervised fine-tuning of a decoder): each token's next
    /// token, over the vocabulary.
    CausalLm,
    /// Text-to-text generation with an encoder–decoder (summarization, translation, any
    /// task as text): each target token from the source and the target tokens before it.
    #[serde(rename = "text2text")]
    Text2Text,
}

impl Task {
    /// Every task, in the order the UI lists them.
    pub const ALL: [Task; 6] = [
        Task::SequenceClassification,
        Task::TokenClassification,
        Task::MultipleChoice,
        Task::QuestionAnswering,
        Task::CausalLm,
        Task::Text2Text,
    ];

    /// The tasks of encoders (a head on the encoder's hidden states).
    pub const ENCODER: [Task; 4] = [
        Task::SequenceClassification,
        Task::TokenClassification,
        Task::MultipleChoice,
        Task::QuestionAnswering,
    ];

    /// The name in run configurations and on the command line.
    pub fn name(self) -> &'static str {
        match self {
            Task::SequenceClassification => "sequence-classification",
            Task::TokenClassification => "token-classification",
            Task::MultipleChoice => "multiple-choice",
            Task::QuestionAnswering => "question-answering",
            Task::CausalLm => "causal-lm",
            Task::Text2Text => "text2text",
        }
    }

    /// What people call it (`token classification`).
    pub fn display_name(self) -> &'static str {
        match self {
            Task::SequenceClassification => "text and text-pair classification",
            Task::TokenClassification => "token classification",
            Task::MultipleChoice => "multiple choice",
            Task::QuestionAnswering => "extractive question answering",
            Task::CausalLm => "causal language modelling (instruction tuning)",
            Task::Text2Text => "text-to-text generation (summarization, translation)",
        }
    }

    /// The suffix of the `transformers` class name (`BertForTokenClassification`).
    pub fn architecture_suffix(self) -> &'static str {
        match self {
            Task::SequenceClassification => "ForSequenceClassification",
            Task::TokenClassification => "ForTokenClassification",
            Task::MultipleChoice => "ForMultipleChoice",
            Task::QuestionAnswering => "ForQuestionAnswering",
            Task::CausalLm => "ForCausalLM",
            Task::Text2Text => "ForConditionalGeneration",
        }
    }

    /// True for language-model heads (a decoder's, an encoder–decoder's): their classes are
    /// the vocabulary, with no label names.
    pub fn is_language_model(self) -> bool {
        matches!(self, Task::CausalLm | Task::Text2Text)
    }

    /// What one row of labels stands for in a batch of this task.
    pub fn labels_per(self, choices: usize) -> LabelsPer {
        match self {
            Task::SequenceClassification => LabelsPer::Sequence,
            Task::TokenClassification | Task::CausalLm | Task::Text2Text => LabelsPer::Token,
            Task::MultipleChoice => LabelsPer::Group(choices),
            Task::QuestionAnswering => LabelsPer::Span,
        }
    }

    /// The task of a `transformers` class name, if Hone has it.
    pub fn from_architecture(name: &str) -> Option<Self> {
        Task::ALL
            .into_iter()
            .find(|t| name.ends_with(t.architecture_suffix()))
    }
}

impl std::str::FromStr for Task {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        Task::ALL
            .into_iter()
            .find(|t| t.name() == s)
            .ok_or_else(|| {
                let names: Vec<_> = Task::ALL.iter().map(|t| t.name()).collect();
                format!("unknown task '{s}' (one of: {})", names.join(", "))
            })
    }
}

/// The error for a head a family does not have.
pub fn unsupported(family: &super::FamilyDescriptor, task: Task) -> EngineError {
    let tasks: Vec<&str> = family.tasks.iter().map(|t| t.name()).collect();
    EngineError::InvalidConfig(format!(
        "{} models are not trained for {} here (their tasks: {})",
        family.name,
        task.display_name(),
        tasks.join(", ")
    ))
}

/// What a batch's labels are attached to.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LabelsPer {
    /// One label per sequence.
    Sequence,
    /// One label per token slot of the padded batch.
    Token,
    /// One label per run of this many consecutive sequences (the options of one question):
    /// the index of the right one.
    Group(usize),
    /// Two labels per sequence: the token where its answer starts and the one where it ends
    /// (positions within the sequence; the first token when the answer is not in it). Each
    /// is a class over the sequence's tokens.
    Span,
}

/// A task head over the backbone's hidden states `[tokens × hidden]`.
pub enum Head {
    /// A language-model head (a decoder's, or an encoder–decoder's on its decoder): every
    /// token → its scores over the vocabulary (`lm_head`, or the word embeddings when they
    /// are tied).
    LanguageModel {
        weight: crate::params::Param,
        task: Task,
    },
    /// A sequence head on the first token: dense + activation → dropout → classifier. BERT's
    /// (the pooler, tanh) and DistilBERT's (pre_classifier, ReLU); with one output per
    /// sequence it is every family's multiple-choice head (`*ForMultipleChoice`).
    Pooled {
        dense: Linear,
        activation: Activation,
        classifier: Linear,
        dropout: f64,
        task: Task,
    },
    /// RoBERTa's sequence head and DeBERTa's `ContextPooler` heads: first token → dropout →
    /// dense + activation → dropout → out_proj (RoBERTa: tanh, the classifier dropout twice;
    /// DeBERTa: the pooler's activation and dropout, then the classifier dropout; one output
    /// for multiple choice).
    ClassificationHead {
        dense: Linear,
        activation: Activation,
        out_proj: Linear,
        /// Before the dense layer and before `out_proj`.
        dropouts: [f64; 2],
        task: Task,
    },
    /// Token classification: every token → dropout → classifier. With two outputs named
    /// `qa_outputs` it is every family's question-answering head (start and end scores).
    Tokens {
        classifier: Linear,
        dropout: f64,
        task: Task,
    },
}

impl Head {
    /// The token-classification head every family has: `classifier` over each token.
    pub fn token_classifier(
        b: &mut ParamBuilder,
        hidden: usize,
        num_labels: usize,
        dropout: f64,
    ) -> Result<Self, EngineError> {
        Ok(Head::Tokens {
            classifier: Linear::head(b, "classifier", hidden, num_labels)?,
            dropout,
            task: Task::TokenClassification,
        })
    }

    /// The question-answering head every family has: `qa_outputs` over each token, a start
    /// and an end score (`*ForQuestionAnswering`).
    pub fn span_scorer(
        b: &mut ParamBuilder,
        hidden: usize,
        dropout: f64,
    ) -> Result<Self, EngineError> {
        Ok(Head::Tokens {
            classifier: Linear::head(b, "qa_outputs", hidden, 2)?,
            dropout,
            task: Task::QuestionAnswering,
        })
    }

    /// The multiple-choice head every family has: `dense` (its pooler) + `activation` →
    /// dropout → `classifier` with one output, the option's score.
    pub fn choice_scorer(
        b: &mut ParamBuilder,
        dense: &str,
        activation: Activation,
        hidden: usize,
        dropout: f64,
    ) -> Result<Self, EngineError> {
        Ok(Head::Pooled {
            dense: Linear::head(b, dense, hidden, hidden)?,
            activation,
            classifier: Linear::head(b, "classifier", hidden, 1)?,
            dropout,
            task: Task::MultipleChoice,
        })
    }

    /// True when the head reads only each sequence's first token (`[CLS]` / `<s>`): the
    /// backbone's last layer need not run for the others.
    pub fn reads_first_tokens(&self) -> bool {
        matches!(self, Head::Pooled { .. } | Head::ClassificationHead { .. })
    }

    /// The task the head serves.
    pub fn task(&self) -> Task {
        match self {
            Head::Tokens { task, .. } => *task,
            Head::Pooled { task, .. } => *task,
            Head::ClassificationHead { task, .. } => *task,
            Head::LanguageModel { task, .. } => *task,
        }
    }

    /// Logits: `[sequences × labels]` for sequence heads, `[tokens × labels]` for token heads,
    /// `[sequences × 1]` for the multiple-choice head (one score per option), `[tokens × 2]`
    /// for the question-answering head.
    ///
    /// `first_only`: `hidden` holds each sequence's first token alone (the backbone ran its
    /// last layer for them: [`Head::reads_first_tokens`]).
    pub fn forward<G: Graph>(
        &self,
        g: &mut G,
        hidden: G::Value,
        first_only: bool,
    ) -> Result<G::Value, EngineError> {
        match self {
            Head::LanguageModel { weight, .. } => g.dense(&hidden, weight, None),
            Head::Pooled {
                dense,
                activation,
                classifier,
                dropout,
                ..
            } => {
                let cls = if first_only {
                    hidden
                } else {
                    g.first_tokens(&hidden)?
                };
                let pooled = g.linear(&cls, dense)?;
                let pooled = g.activation(&pooled, *activation)?;
                let pooled = g.dropout(pooled, *dropout)?;
                g.linear(&pooled, classifier)
            }
            Head::ClassificationHead {
                dense,
                activation,
                out_proj,
                dropouts,
                ..
            } => {
                let cls = if first_only {
                    hidden
                } else {
                    g.first_tokens(&hidden)?
                };
                let x = g.dropout(cls, dropouts[0])?;
                let x = g.linear(&x, dense)?;
                let x = g.activation(&x, *activation)?;
                let x = g.dropout(x, dropouts[1])?;
                g.linear(&x, out_proj)
            }
            Head::Tokens {
                classifier,
                dropout,
                ..
            } => {
                let x = g.dropout(hidden, *dropout)?;
                g.linear(&x, classifier)
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_task_is_written_in_run_files_as_on_the_command_line() {
        for task in Task::ALL {
            let written = serde_json::to_value(task).expect("a task serialises");
            assert_eq!(written, serde_json::json!(task.name()));
            assert_eq!(task.name().parse::<Task>(), Ok(task));
        }
    }
}
