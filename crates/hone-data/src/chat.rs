//! Instruction data for causal-LM fine-tuning: conversations read from JSON files (chat
//! `messages`, Alpaca `instruction/input/output`, `prompt/completion`, plain `text`), a model's
//! chat template rendered with minijinja as `transformers`' `apply_chat_template` renders it,
//! and conversations encoded with each token's next token as its label — the loss on the
//! assistant's tokens only, or on everything.

use std::path::Path;

use serde::{Deserialize, Serialize};
use serde_json::Value;

use crate::examples::{Example, ExampleFile};
use crate::tokenize::{EncodedExample, TextTokenizer};
use crate::DataError;

/// One turn of a conversation.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    /// `system`, `user` or `assistant`.
    pub role: String,
    pub content: String,
}

impl ChatMessage {
    /// A turn of `role`.
    pub fn new(role: &str, content: impl Into<String>) -> Self {
        ChatMessage {
            role: role.to_string(),
            content: content.into(),
        }
    }
}

/// Reads every example of a JSON or JSON lines file of instruction data. Each record is one of:
/// `{"messages": [{"role", "content"}, …]}` (also `conversations` with ShareGPT's
/// `from`/`value`), `{"instruction", "input"?, "output"}` (Alpaca), `{"prompt", "completion"}`,
/// or `{"text"}` (plain text, learned whole).
pub fn read_conversations(path: &Path) -> Result<ExampleFile, DataError> {
    let (records, warnings) = crate::squad::read_json_records(path)?;
    let mut examples = Vec::with_capacity(records.len());
    for (line, record) in &records {
        examples.push(conversation(record, (*line).max(1), path)?);
    }
    if examples.is_empty() {
        return Err(DataError::NoRows {
            path: path.to_path_buf(),
        });
    }
    Ok(ExampleFile { examples, warnings })
}

fn conversation(record: &Value, line: u64, path: &Path) -> Result<Example, DataError> {
    let malformed = |message: String| DataError::Malformed {
        path: path.to_path_buf(),
        line,
        message,
    };
    let text = |key: &str| record.get(key).and_then(Value::as_str);
    let messages = if let Some(list) = record.get("messages").or(record.get("conversations")) {
        let list = list
            .as_array()
            .ok_or_else(|| malformed("'messages' is not a list of turns".into()))?;
        let mut turns = Vec::with_capacity(list.len());
        for turn in list {
            let field = |a: &str, b: &str| turn.get(a).or(turn.get(b)).and_then(Value::as_str);
            let (Some(role), Some(content)) = (field("role", "from"), field("content", "value"))
            else {
                return Err(malformed(
                    "each turn needs a 'role' and a 'content' (or ShareGPT's 'from' and 'value')"
                        .into(),
                ));
            };
            let role = match role {
                "human" => "user",
                "gpt" => "assistant",
                other => other,
            };
            turns.push(ChatMessage::new(role, content));
        }
        if !turns.iter().any(|t| t.role == "assistant") {
            return Err(malformed(
                "the conversation has no assistant turn to learn from".into(),
            ));
        }
        turns
    } else if let (Some(instruction), Some(output)) = (text("instruction"), text("output")) {
        let prompt = match text("input").map(str::trim).filter(|s| !s.is_empty()) {
            Some(input) => format!("{instruction}\n\n{input}"),
            None => instruction.to_string(),
        };
        vec![
            ChatMessage::new("user", prompt),
            ChatMessage::new("assistant", output),
        ]
    } else if let (Some(prompt), Some(completion)) = (text("prompt"), text("completion")) {
        vec![
            ChatMessage::new("user", prompt),
            ChatMessage::new("assistant", completion),
        ]
    } else if let Some(plain) = text("text") {
        return Ok(Example {
            line,
            text: plain.to_string(),
            ..Default::default()
        });
    } else {
        return Err(malformed(
            "a record needs 'messages', 'instruction' and 'output', 'prompt' and 'completion', \
             or 'text'"
                .into(),
        ));
    };
    Ok(Example {
        line,
        text: messages
            .iter()
            .map(|m| m.content.as_str())
            .collect::<Vec<_>>()
            .join("\n"),
        messages,
        ..Default::default()
    })
}

/// A model's chat template with the special tokens it refers to.
#[derive(Debug, Clone)]
pub struct ChatTemplate {
    source: String,
    bos_token: String,
    eos_token: String,
}

/// The chat template of `tokenizer_config.json` (a string, or a list of named templates:
/// the `default` one) or `chat_template.jinja`, and its special tokens.
fn template_of(dir: &Path) -> Result<(Option<String>, Value), DataError> {
    let config_path = dir.join("tokenizer_config.json");
    let config: Value = match std::fs::read_to_string(&config_path) {
        Ok(text) => serde_json::from_str(&text).map_err(|e| DataError::Tokenizer {
            path: config_path.clone(),
            message: e.to_string(),
        })?,
        Err(_) => Value::Null,
    };
    let inline = match config.get("chat_template") {
        Some(Value::String(s)) => Some(s.clone()),
        Some(Value::Array(named)) => named
            .iter()
            .find(|t| t.get("name").and_then(Value::as_str) == Some("default"))
            .or(named.first())
            .and_then(|t| t.get("template"))
            .and_then(Value::as_str)
            .map(str::to_string),
        _ => None,
    };
    let file = dir.join("chat_template.jinja");
    let source = match inline {
        Some(s) => Some(s),
        None if file.is_file() => {
            Some(std::fs::read_to_string(&file).map_err(|e| DataError::io(&file, e))?)
        }
        None => None,
    };
    Ok((source, config))
}

fn token_text(config: &Value, key: &str) -> String {
    match config.get(key) {
        Some(Value::String(s)) => s.clone(),
        Some(Value::Object(o)) => o
            .get("content")
            .and_then(Value::as_str)
            .unwrap_or_default()
            .to_string(),
        _ => String::new(),
    }
}

impl ChatTemplate {
    /// The template's Jinja source.
    pub fn source(&self) -> &str {
        &self.source
    }

    /// The template of a model folder, or `None` when the model has none.
    pub fn from_model_dir(dir: &Path) -> Result<Option<Self>, DataError> {
        let (source, config) = template_of(dir)?;
        let Some(source) = source else {
            return Ok(None);
        };
        Self::new(source, &config).map(Some)
    }

    /// A template read from `file`, with the special tokens of the model folder `dir`.
    pub fn from_file(file: &Path, dir: &Path) -> Result<Self, DataError> {
        let source = std::fs::read_to_string(file).map_err(|e| DataError::io(file, e))?;
        let (_, config) = template_of(dir)?;
        Self::new(source, &config)
    }

    fn new(source: String, config: &Value) -> Result<Self, DataError> {
        let template = ChatTemplate {
            source,
            bos_token: token_text(config, "bos_token"),
            eos_token: token_text(config, "eos_token"),
        };
        // Fails now on a template minijinja cannot read, not at the first example.
        template.render(&[ChatMessage::new("user", "hello")], true)?;
        Ok(template)
    }

    /// The end-of-sequence token's text (`<|im_end|>`), empty when the config names none.
    pub fn eos_token(&self) -> &str {
        &self.eos_token
    }

    /// The conversation as text, as `apply_chat_template(messages, tokenize=False,
    /// add_generation_prompt=…)` renders it.
    pub fn render(
        &self,
        messages: &[ChatMessage],
        add_generation_prompt: bool,
    ) -> Result<String, DataError> {
        let mut env = minijinja::Environment::new();
        env.set_unknown_method_callback(minijinja_contrib::pycompat::unknown_method_callback);
        env.set_trim_blocks(true);
        env.set_lstrip_blocks(true);
        env.add_function(
            "raise_exception",
            |message: String| -> Result<String, minijinja::Error> {
                Err(minijinja::Error::new(
                    minijinja::ErrorKind::InvalidOperation,
                    message,
                ))
            },
        );
        let bad = |e: minijinja::Error| DataError::Encode(format!("the chat template: {e:#}"));
        env.add_template("chat", &self.source).map_err(bad)?;
        let template = env.get_template("chat").map_err(bad)?;
        template
            .render(minijinja::context! {
                messages => messages,
                add_generation_prompt => add_generation_prompt,
                bos_token => self.bos_token.as_str(),
                eos_token => self.eos_token.as_str(),
            })
            .map_err(bad)
    }
}

/// Which tokens a causal-LM example learns.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum LossOn {
    /// Only the assistant's turns (and the token that ends each).
    #[default]
    Assistant,
    /// Every token.
    All,
}

impl std::str::FromStr for LossOn {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "assistant" => Ok(LossOn::Assistant),
            "all" => Ok(LossOn::All),
            other => Err(format!("unknown loss setting '{other}' (assistant or all)")),
        }
    }
}

/// A conversation encoded for training: its tokens, and per token its next token where the
/// loss is taken (`ignore` elsewhere, and on the last token).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EncodedConversation {
    pub example: EncodedExample,
    pub labels: Vec<u32>,
}

/// The Alpaca prompt, for models without a chat template.
fn alpaca_prompt(messages: &[ChatMessage]) -> Vec<(String, bool)> {
    let mut parts = Vec::new();
    for m in messages {
        match m.role.as_str() {
            "assistant" => {
                parts.push(("### Response:\n".to_string(), false));
                parts.push((m.content.clone(), true));
                parts.push(("\n\n".to_string(), false));
            }
            "system" => parts.push((format!("{}\n\n", m.content), false)),
            _ => parts.push((format!("### Instruction:\n{}\n\n", m.content), false)),
        }
    }
    parts
}

/// Encodes one example as its model learns it: a conversation through the chat template
/// (or, with none, the Alpaca prompt), plain text as it is; `eos` appended where the text
/// does not end with it, so generation learns to stop.
pub fn encode_conversation(
    tokenizer: &TextTokenizer,
    template: Option<&ChatTemplate>,
    example: &Example,
    loss_on: LossOn,
    eos: Option<u32>,
    ignore: u32,
) -> Result<EncodedConversation, DataError> {
    // The text, the byte ranges whose tokens are learned, whether the tokenizer adds its
    // special tokens (a chat template writes its own) and whether the end token is appended.
    let (text, learned, special, append_eos) = if example.messages.is_empty() {
        let all = vec![(0, example.text.len())];
        (example.text.clone(), all, true, true)
    } else if let Some(template) = template {
        let full = template.render(&example.messages, false)?;
        let mut spans = Vec::new();
        for (i, m) in example.messages.iter().enumerate() {
            if m.role != "assistant" {
                continue;
            }
            let before = template.render(&example.messages[..i], true)?;
            let through = template.render(&example.messages[..=i], false)?;
            if !full.starts_with(&through) || !through.starts_with(&before) {
                return Err(DataError::Encode(format!(
                    "line {}: the chat template renders earlier turns differently as the \
                     conversation grows, so the assistant's tokens cannot be told apart; \
                     learn every token instead (loss on all)",
                    example.line
                )));
            }
            spans.push((before.len(), through.len()));
        }
        // Templates such as ChatML close every turn with the end token themselves.
        let last = spans.last().map_or(0, |s| s.0);
        let closed =
            !template.eos_token().is_empty() && full[last..].contains(template.eos_token());
        (full, spans, false, !closed)
    } else {
        let mut parts = alpaca_prompt(&example.messages);
        if parts.last().is_some_and(|(_, learned)| !learned) {
            parts.pop();
        }
        let mut text = String::new();
        let mut spans = Vec::new();
        for (part, learned) in parts {
            if learned {
                spans.push((text.len(), text.len() + part.len()));
            }
            text.push_str(&part);
        }
        (text, spans, true, true)
    };
    let encoding = tokenizer
        .inner()
        .encode(text.as_str(), special)
        .map_err(|e| DataError::Encode(e.to_string()))?;
    let mut ids = encoding.get_ids().to_vec();
    let mut offsets = encoding.get_offsets().to_vec();
    let ends_with_eos = eos.is_some_and(|e| ids.last() == Some(&e));
    let truncated = !encoding.get_overflowing().is_empty();
    if let (Some(eos), false, true) = (eos, ends_with_eos, append_eos) {
        if ids.len() >= tokenizer.max_length() {
            ids.pop();
            offsets.pop();
        }
        ids.push(eos);
        // The end token belongs to the text's end: learned when the last learned span
        // reaches it.
        offsets.push((text.len(), text.len()));
    }
    let in_loss = |t: usize| -> bool {
        match loss_on {
            LossOn::All => true,
            LossOn::Assistant => {
                let (start, end) = offsets[t];
                learned.iter().any(|&(a, b)| {
                    (start >= a && start < b) || (start == end && start == b && b == text.len())
                })
            }
        }
    };
    let labels = (0..ids.len())
        .map(|t| match ids.get(t + 1) {
            Some(&next) if in_loss(t + 1) => next,
            _ => ignore,
        })
        .collect();
    Ok(EncodedConversation {
        example: EncodedExample {
            type_ids: vec![0; ids.len()],
            input_ids: ids,
            truncated,
        },
        labels,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const CHATML: &str = "{% for message in messages %}{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    #[test]
    fn records_of_every_layout_become_conversations() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("d.jsonl");
        std::fs::write(
            &path,
            concat!(
                r#"{"instruction": "Add", "input": "2 and 3", "output": "5"}"#,
                "\n",
                r#"{"messages": [{"role": "user", "content": "hi"}, {"role": "assistant", "content": "hello"}]}"#,
                "\n",
                r#"{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]}"#,
                "\n",
                r#"{"text": "just text"}"#,
                "\n"
            ),
        )
        .unwrap();
        let file = read_conversations(&path).unwrap();
        let e = &file.examples;
        assert_eq!(e[0].messages[0].content, "Add\n\n2 and 3");
        assert_eq!(e[0].messages[1], ChatMessage::new("assistant", "5"));
        assert_eq!(e[1].messages.len(), 2);
        assert_eq!(e[2].messages[1].role, "assistant");
        assert!(e[3].messages.is_empty() && e[3].text == "just text");
        std::fs::write(
            &path,
            r#"{"messages": [{"role": "user", "content": "hi"}]}"#,
        )
        .unwrap();
        let err = read_conversations(&path).unwrap_err().to_string();
        assert!(err.contains("line 1") && err.contains("assistant"), "{err}");
    }

    #[test]
    fn chatml_renders_as_transformers_does() {
        let t = ChatTemplate {
            source: CHATML.into(),
            bos_token: String::new(),
            eos_token: "<|im_end|>".into(),
        };
        let messages = [
            ChatMessage::new("user", "hi there"),
            ChatMessage::new("assistant", "a fine day"),
        ];
        assert_eq!(
            t.render(&messages, false).unwrap(),
            "<|im_start|>user\nhi there<|im_end|>\n<|im_start|>assistant\na fine day<|im_end|>\n"
        );
        assert!(t
            .render(&messages[..1], true)
            .unwrap()
            .ends_with("<|im_start|>assistant\n"));
    }
}
