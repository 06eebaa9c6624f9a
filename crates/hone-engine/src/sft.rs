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

/// Causal-LM data: the conversations given for validation, or else a seeded share of the
/// training ones. A language model has no classes.
pub fn conversation_data(
    train: Vec<Example>,
    valid: Option<Vec<Example>>,
    valid_fraction: f64,
    seed: u64,
    notices: Vec<String>,
) -> crate::job::TrainingData {
    let (train, valid) = crate::job::given_or_held_out(train, valid, valid_fraction, seed);
    crate::job::TrainingData {
        task: crate::models::Task::CausalLm,
        labels: hone_data::LabelSet::from_names(Vec::new()),
        train,
        valid,
        notices,
    }
}

/// A causal LM loaded from a model or adapter folder: for generation and evaluation.
pub struct LanguageModel {
    model: crate::models::Model,
    tokenizer: TextTokenizer,
    chat: Conversations,
    end_tokens: Vec<u32>,
}

impl LanguageModel {
    /// Loads `dir` (a `*ForCausalLM` folder, a base decoder, or an adapter folder on one);
    /// `max_length` (default: the model's context) bounds the prompts.
    pub fn load(
        dir: &Path,
        device: &candle_core::Device,
        max_length: Option<usize>,
    ) -> Result<Self, EngineError> {
        let spec = ModelSpec::from_dir(dir)?;
        if !spec.family.is_decoder() {
            return Err(EngineError::InvalidConfig(format!(
                "{} is a {} model, not a causal LM: generation needs a decoder (Llama, \
                 Qwen2, Mistral, SmolLM)",
                dir.display(),
                spec.family.name()
            )));
        }
        let context = spec.max_sequence_length();
        let max_length = max_length.unwrap_or(context).min(context);
        let model =
            crate::models::Model::load(dir, crate::models::Task::CausalLm, 0, None, device, 0)?;
        let tokenizer_dir = crate::lora::tokenizer_folder(dir)?;
        let tokenizer = TextTokenizer::from_model_dir(&tokenizer_dir, max_length)?;
        let chat = Conversations::for_model(
            &tokenizer_dir,
            &spec,
            &tokenizer,
            &TemplateChoice::Auto,
            LossOn::Assistant,
        )?;
        let end_tokens = end_tokens(&spec, &chat);
        Ok(LanguageModel {
            model,
            tokenizer,
            chat,
            end_tokens,
        })
    }

    /// The model.
    pub fn model(&self) -> &crate::models::Model {
        &self.model
    }

    /// True when the model has a chat template (else chat prompts use the Alpaca prompt).
    pub fn has_chat_template(&self) -> bool {
        self.chat.has_template()
    }

    /// The tokens of a prompt: as one user turn of a chat (`chat`, through the template and
    /// its generation prompt), or as plain text to continue.
    pub fn prompt_tokens(
        &self,
        messages: &[hone_data::ChatMessage],
        chat: bool,
    ) -> Result<Vec<u32>, EngineError> {
        prompt_tokens(&self.tokenizer, &self.chat, messages, chat)
    }

    /// Generates the answer to `messages` (`chat`) or the continuation of their text,
    /// streaming the text to `on_text` (which returns false to stop).
    pub fn generate(
        &self,
        messages: &[hone_data::ChatMessage],
        chat: bool,
        settings: &crate::generate::GenerationSettings,
        on_text: &mut dyn FnMut(&str) -> bool,
    ) -> Result<crate::generate::Generation, EngineError> {
        let prompt = self.prompt_tokens(messages, chat)?;
        crate::generate::generate(
            &self.model,
            &self.tokenizer,
            &prompt,
            &self.end_tokens,
            settings,
            on_text,
        )
    }

    /// Loss, perplexity and next-token accuracy on conversations, as the run scored its
    /// validation set (the model's template, the assistant's tokens).
    pub fn evaluate(
        &self,
        examples: &[Example],
        batch_size: usize,
    ) -> Result<crate::metrics::LanguageReport, EngineError> {
        let set = self.chat.encode(&self.tokenizer, examples)?;
        crate::inference::evaluate_language(
            &self.model,
            &set,
            batch_size,
            &mut crate::step::Stepper::new(&self.model, true),
        )
    }
}

/// The tokens that end a generation: the config's end tokens and the template's.
fn end_tokens(spec: &ModelSpec, chat: &Conversations) -> Vec<u32> {
    let mut end: Vec<u32> = spec
        .encoder
        .decoder
        .as_ref()
        .map(|d| d.eos_token_ids.clone())
        .unwrap_or_default();
    end.extend(chat.eos());
    end.sort_unstable();
    end.dedup();
    end
}

/// The tokens of a prompt: as one user turn of a chat (`chat`: `conversations`' template and
/// its generation prompt, else the Alpaca prompt), or as plain text to continue.
fn prompt_tokens(
    tokenizer: &TextTokenizer,
    conversations: &Conversations,
    messages: &[hone_data::ChatMessage],
    chat: bool,
) -> Result<Vec<u32>, EngineError> {
    let (text, special) = match (chat, conversations.template()) {
        (true, Some(template)) => (template.render(messages, true)?, false),
        (true, None) => {
            let mut text = String::new();
            for m in messages {
                match m.role.as_str() {
                    "assistant" => text.push_str(&format!("### Response:\n{}\n\n", m.content)),
                    "system" => text.push_str(&format!("{}\n\n", m.content)),
                    _ => text.push_str(&format!("### Instruction:\n{}\n\n", m.content)),
                }
            }
            text.push_str("### Response:\n");
            (text, true)
        }
        (false, _) => (
            messages
                .iter()
                .map(|m| m.content.as_str())
                .collect::<Vec<_>>()
                .join("\n"),
            true,
        ),
    };
    let encoded = tokenizer.encode_plain(&text, special)?;
    if encoded.truncated {
        return Err(EngineError::InvalidConfig(format!(
            "the prompt is longer than {} tokens; shorten it or raise the maximum length",
            tokenizer.max_length()
        )));
    }
    Ok(encoded.input_ids)
}

/// What a causal-LM run answers to its fixed prompts at an evaluation.
#[derive(Debug, Clone, PartialEq, serde::Serialize, serde::Deserialize)]
pub struct Sample {
    pub prompt: String,
    /// The greedy answer.
    pub text: String,
    /// Its tokens.
    pub tokens: usize,
}

/// Fixed prompts a causal-LM run answers greedily at each evaluation (`sample_prompts`), each
/// written as one user turn, as the run writes its conversations.
pub struct SamplePrompts {
    prompts: Vec<(String, Vec<u32>)>,
    tokenizer: TextTokenizer,
    end_tokens: Vec<u32>,
    settings: crate::generate::GenerationSettings,
}

impl SamplePrompts {
    /// The prompts of `texts` (empty ones skipped), `None` when there are none.
    pub fn new(
        texts: &[String],
        tokenizer: &TextTokenizer,
        conversations: &Conversations,
        spec: &ModelSpec,
        max_new_tokens: usize,
    ) -> Result<Option<Self>, EngineError> {
        let mut prompts = Vec::new();
        for text in texts.iter().map(|t| t.trim()).filter(|t| !t.is_empty()) {
            let message = hone_data::ChatMessage {
                role: "user".into(),
                content: text.to_string(),
            };
            let ids =
                prompt_tokens(tokenizer, conversations, &[message], true).map_err(|e| match e {
                    EngineError::InvalidConfig(m) => {
                        EngineError::InvalidConfig(format!("sample prompt \"{text}\": {m}"))
                    }
                    other => other,
                })?;
            prompts.push((text.to_string(), ids));
        }
        if prompts.is_empty() {
            return Ok(None);
        }
        let settings = crate::generate::GenerationSettings {
            max_new_tokens,
            ..Default::default()
        };
        settings.validate()?;
        Ok(Some(SamplePrompts {
            prompts,
            tokenizer: tokenizer.clone(),
            end_tokens: end_tokens(spec, conversations),
            settings,
        }))
    }

    /// Each prompt's greedy answer by `model` as it is now.
    pub fn generate(&self, model: &crate::models::Model) -> Result<Vec<Sample>, EngineError> {
        self.prompts
            .iter()
            .map(|(prompt, ids)| {
                let g = crate::generate::generate(
                    model,
                    &self.tokenizer,
                    ids,
                    &self.end_tokens,
                    &self.settings,
                    &mut |_| true,
                )?;
                Ok(Sample {
                    prompt: prompt.clone(),
                    text: g.text,
                    tokens: g.new_tokens,
                })
            })
            .collect()
    }
}
