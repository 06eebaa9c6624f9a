//! Supervised fine-tuning of decoders (`causal-lm`): how a run's conversations become token
//! sequences with next-token labels — the model's chat template (or one the run names, or
//! none: the Alpaca prompt), the loss on the assistant's tokens or on all, the end token
//! appended so generation learns to stop.

use std::path::Path;

use hone_data::{encode_conversation, ChatTemplate, Example, LossOn, TextTokenizer};

use crate::batch::EncodedSet;
use crate::graph::IGNORE_LABEL;
use crate::models::ModelSpec;
use crate::EngineError;

/// How a run encodes its conversations.
#[derive(Debug, Clone)]
pub struct Conversations {
    template: Option<ChatTemplate>,
    loss_on: LossOn,
    eos: Option<u32>,
}

/// What a run's `chat_template` option names.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum TemplateChoice {
    /// The model's own, or the Alpaca prompt when it has none.
    Auto,
    /// The Alpaca prompt, whatever the model has.
    None,
    /// A Jinja file.
    File(std::path::PathBuf),
}

impl TemplateChoice {
    /// Reads the option: `auto`, `none` or a file path.
    pub fn parse(value: &str) -> Self {
        match value.trim() {
            "" | "auto" => TemplateChoice::Auto,
            "none" => TemplateChoice::None,
            path => TemplateChoice::File(path.into()),
        }
    }
}

impl Conversations {
    /// The encoding of a run on the model in `model_dir` (its tokenizer folder for an adapter).
    pub fn for_model(
        tokenizer_dir: &Path,
        spec: &ModelSpec,
        tokenizer: &TextTokenizer,
        choice: &TemplateChoice,
        loss_on: LossOn,
    ) -> Result<Self, EngineError> {
        let template = match choice {
            TemplateChoice::Auto => ChatTemplate::from_model_dir(tokenizer_dir)?,
            TemplateChoice::None => None,
            TemplateChoice::File(path) => {
                if !path.is_file() {
                    return Err(EngineError::InvalidConfig(format!(
                        "chat template {} does not exist (use auto, none or a Jinja file)",
                        path.display()
                    )));
                }
                Some(ChatTemplate::from_file(path, tokenizer_dir)?)
            }
        };
        // The end token: the template's, else the config's first.
        let eos = template
            .as_ref()
            .and_then(|t| tokenizer.token_id(t.eos_token()))
            .or_else(|| {
                spec.encoder
                    .decoder
                    .as_ref()
                    .and_then(|d| d.eos_token_ids.first().copied())
            });
        Ok(Conversations {
            template,
            loss_on,
            eos,
        })
    }

    /// True when the model's chat template renders the conversations.
    pub fn has_template(&self) -> bool {
        self.template.is_some()
    }

    /// The template, when there is one.
    pub fn template(&self) -> Option<&ChatTemplate> {
        self.template.as_ref()
    }

    /// The token that ends a generation.
    pub fn eos(&self) -> Option<u32> {
        self.eos
    }

    /// Encodes `examples` with their next-token labels.
    pub fn encode(
        &self,
        tokenizer: &TextTokenizer,
        examples: &[Example],
    ) -> Result<EncodedSet, EngineError> {
        let mut set = EncodedSet::default();
        for e in examples {
            let encoded = encode_conversation(
                tokenizer,
                self.template.as_ref(),
                e,
                self.loss_on,
                self.eos,
                IGNORE_LABEL,
            )?;
            set.examples.push(encoded.example);
            set.token_labels.push(encoded.labels);
        }
        if set
            .token_labels
            .iter()
            .flatten()
            .all(|&y| y == IGNORE_LABEL)
            && !examples.is_empty()
        {
            return Err(EngineError::InvalidConfig(
                "no token of the data is learned: every answer was cut by the maximum length? \
                 (raise max length)"
                    .into(),
            ));
        }
        Ok(set)
    }
}
