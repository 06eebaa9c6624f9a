//! What a file of instruction or chat data holds, before a causal-LM run trains on it: how
//! many conversations, the first ones whole, and how a chosen model would read them (its chat
//! template, or the Alpaca prompt when it has none).

use std::path::Path;

use hone_data::{ChatMessage, ChatTemplate};
use serde::{Deserialize, Serialize};

use crate::AppError;

/// What a conversation file holds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ConversationPreview {
    pub conversations: usize,
    /// Plain-text records (learned whole, no turns).
    pub plain_texts: usize,
    /// Assistant turns over every conversation (what assistant-only loss learns).
    pub assistant_turns: usize,
    /// The first conversations, turn by turn (a plain text is one assistant turn).
    pub samples: Vec<Vec<ChatMessage>>,
    /// With a model: whether it has a chat template (`None` without a model).
    pub model_has_template: Option<bool>,
    /// With a model that has a template: the first conversation as the model reads it.
    pub rendered: Option<String>,
    pub warnings: Vec<String>,
}

/// Reads the whole file and describes it; `model` (a model folder) adds how its chat
/// template renders the first conversation. The first `limit` conversations come back whole.
pub fn preview_conversations(
    path: &Path,
    model: Option<&Path>,
    limit: usize,
) -> Result<ConversationPreview, AppError> {
    let file = hone_data::read_conversations(path)?;
    let examples = file.examples;
    let turns = |e: &hone_data::Example| -> Vec<ChatMessage> {
        if e.messages.is_empty() {
            vec![ChatMessage::new("assistant", e.text.clone())]
        } else {
            e.messages.clone()
        }
    };
    // With a model: its template, if it has one.
    let template = model.map(ChatTemplate::from_model_dir).transpose()?;
    let rendered = match (
        template.as_ref().and_then(Option::as_ref),
        examples.iter().find(|e| !e.messages.is_empty()),
    ) {
        (Some(t), Some(first)) => Some(t.render(&first.messages, false)?),
        _ => None,
    };
    Ok(ConversationPreview {
        conversations: examples.len(),
        plain_texts: examples.iter().filter(|e| e.messages.is_empty()).count(),
        assistant_turns: examples
            .iter()
            .map(|e| {
                e.messages
                    .iter()
                    .filter(|m| m.role == "assistant")
                    .count()
                    .max(usize::from(e.messages.is_empty()))
            })
            .sum(),
        samples: examples.iter().take(limit).map(turns).collect(),
        model_has_template: template.as_ref().map(Option::is_some),
        rendered,
        warnings: file.warnings,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn alpaca_records_become_turns_and_a_template_renders_them() {
        let dir = tempfile::tempdir().unwrap();
        let data = dir.path().join("alpaca.json");
        std::fs::write(
            &data,
            r#"[{"instruction": "Add", "input": "2 and 3", "output": "5"},
                {"instruction": "Say hi", "input": "", "output": "Hi"},
                {"text": "Plain text is learned whole."}]"#,
        )
        .unwrap();
        let plain = preview_conversations(&data, None, 2).unwrap();
        assert_eq!(plain.conversations, 3);
        assert_eq!(plain.plain_texts, 1);
        assert_eq!(plain.assistant_turns, 3);
        assert_eq!(plain.samples.len(), 2);
        assert_eq!(plain.samples[0][0].content, "Add\n\n2 and 3");
        assert_eq!(plain.model_has_template, None);

        let model = dir.path().join("model");
        std::fs::create_dir(&model).unwrap();
        std::fs::write(
            model.join("tokenizer_config.json"),
            r#"{"eos_token": "<|im_end|>", "chat_template": "{% for m in messages %}<|im_start|>{{ m.role }}\n{{ m.content }}<|im_end|>\n{% endfor %}"}"#,
        )
        .unwrap();
        let chat = preview_conversations(&data, Some(&model), 1).unwrap();
        assert_eq!(chat.model_has_template, Some(true));
        assert_eq!(
            chat.rendered.as_deref(),
            Some(
                "<|im_start|>user\nAdd\n\n2 and 3<|im_end|>\n<|im_start|>assistant\n5<|im_end|>\n"
            )
        );
        std::fs::write(model.join("tokenizer_config.json"), "{}").unwrap();
        let none = preview_conversations(&data, Some(&model), 1).unwrap();
        assert_eq!(none.model_has_template, Some(false));
        assert!(none.rendered.is_none());
    }
}
