//! The playground and export: predictions of a finished run's model, and a copy of its
//! exported folder where the user chose.

use std::path::PathBuf;
use std::sync::Arc;

use hone_app::predict::Predictions;
use hone_app::types::{ChatMessage, Generation, GenerationSettings, Search};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use crate::error::CommandResult;
use crate::state::DesktopState;

/// Runs `texts` through run `run_id`'s model: classes with probabilities for a text
/// classifier, entities and tagged tokens for a token classifier. `int8`: the linear layers
/// in int8 (the scores change a little).
#[tauri::command]
pub async fn predict(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    texts: Vec<String>,
    int8: Option<bool>,
) -> CommandResult<Predictions> {
    let state = state.inner().clone();
    super::blocking(move || {
        let (dir, max_length) = state.app()?.run_model(run_id)?;
        let model = state.predictor_in(&dir, max_length, int8.unwrap_or(false))?;
        let texts: Vec<String> = texts.into_iter().filter(|t| !t.trim().is_empty()).collect();
        Ok(model.predict(&texts, None, 32)?)
    })
    .await
}

/// Ranks the options of a question with run `run_id`'s multiple-choice model.
#[tauri::command]
pub async fn predict_choices(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    question: String,
    context: Option<String>,
    options: Vec<String>,
    int8: Option<bool>,
) -> CommandResult<Predictions> {
    let state = state.inner().clone();
    super::blocking(move || {
        let (dir, max_length) = state.app()?.run_model(run_id)?;
        let model = state.predictor_in(&dir, max_length, int8.unwrap_or(false))?;
        let question = hone_app::types::Example {
            text: question,
            text_pair: context.filter(|c| !c.trim().is_empty()),
            choices: options
                .into_iter()
                .filter(|o| !o.trim().is_empty())
                .collect(),
            ..Default::default()
        };
        Ok(model.predict_choices(&[question], 1)?)
    })
    .await
}

/// Answers a question from a passage with run `run_id`'s question-answering model, reading
/// the passage as the run was trained to (its stride and longest answer).
#[tauri::command]
pub async fn predict_answer(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    question: String,
    context: String,
    int8: Option<bool>,
) -> CommandResult<Predictions> {
    let state = state.inner().clone();
    super::blocking(move || {
        let app = state.app()?;
        let (dir, max_length) = app.run_model(run_id)?;
        let settings = app.run_answer_settings(run_id)?;
        let model = state.predictor_in(&dir, max_length, int8.unwrap_or(false))?;
        Ok(model.predict_answers(&[(question, context)], settings, 1)?)
    })
    .await
}

/// A message of a chat's stream: each piece of the answer as it is decided.
#[derive(Clone, Serialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChatEvent {
    Text { text: String },
}

/// Answers the conversation `messages` with run `run_id`'s language model (through its chat
/// template, or as plain text to continue when `chat` is false), streaming the answer over
/// `on_event`; the whole generation (its tokens, speed and why it stopped) comes back at the
/// end. A text-to-text model answers the last user message as its source, with `search`'s
/// beams when asked (its text comes when the search ends). A new chat, or `chat_stop`,
/// stops the one before.
#[tauri::command]
#[allow(clippy::too_many_arguments)]
pub async fn chat(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    messages: Vec<ChatMessage>,
    chat: Option<bool>,
    settings: Option<GenerationSettings>,
    search: Option<Search>,
    on_event: Channel<ChatEvent>,
) -> CommandResult<Generation> {
    let state = state.inner().clone();
    let cancel = state.chat.begin();
    let worker = (state.clone(), cancel.clone());
    let result = super::blocking(move || {
        let (state, cancel) = worker;
        let (dir, max_length) = state.app()?.run_model(run_id)?;
        let model = state.predictor(&dir, max_length)?;
        let settings = settings.unwrap_or_default();
        let go_on = || !cancel.load(std::sync::atomic::Ordering::SeqCst);
        let mut send = |text: &str| {
            let _ = on_event.send(ChatEvent::Text {
                text: text.to_string(),
            });
        };
        if let Some(t2t) = model.text_to_text() {
            let source = messages
                .iter()
                .rev()
                .find(|m| m.role == "user")
                .map(|m| m.content.clone())
                .unwrap_or_default();
            let search = search.unwrap_or_default();
            return Ok(t2t.answer(&source, &settings, &search, &mut send, &go_on)?);
        }
        let language = model.language_model()?;
        Ok(
            language.generate(&messages, chat.unwrap_or(true), &settings, &mut |text| {
                send(text);
                go_on()
            })?,
        )
    })
    .await;
    state.chat.end(&cancel);
    result
}

/// Stops the chat answer being written (it keeps what it has); true when one was running.
#[tauri::command]
pub fn chat_stop(state: State<'_, Arc<DesktopState>>) -> bool {
    state.chat.cancel()
}

/// Combines finished runs into an ensemble folder `name` inside the picked folder `dest`
/// (`hone ensemble create`): their models copied there with the manifest `hone predict` and
/// `hone eval` read, and recorded as a run scored beside its members. Returns the folder, the
/// manifest and the record.
#[tauri::command]
pub async fn ensemble_create(
    state: State<'_, Arc<DesktopState>>,
    run_ids: Vec<i64>,
    dest: PathBuf,
    name: String,
    mean: Option<hone_app::ensemble::Mean>,
) -> CommandResult<(
    PathBuf,
    hone_app::ensemble::EnsembleManifest,
    hone_app::ensemble_record::EnsembleRecord,
)> {
    let dest = state.allowed(&dest)?;
    let state = state.inner().clone();
    super::blocking(move || {
        Ok(state
            .app()?
            .ensemble_runs(&run_ids, &dest, &name, mean.unwrap_or_default())?)
    })
    .await
}

/// Copies run `run_id`'s exported model (Hugging Face format, or a LoRA run's PEFT adapter,
/// with its model card) into a new folder `name` inside the picked folder `dest`; with `merge`,
/// writes a LoRA run's adapter merged into a full model instead; with `onnx`, an ONNX folder
/// (`onnx/model.onnx`, and with `int8` `onnx/model_quantized.onnx`, beside the config and
/// tokenizer); with `gguf` (`f16` or `q8_0`), a decoder as the GGUF file `name` (llama.cpp).
/// Returns the new folder or file.
#[allow(clippy::too_many_arguments)]
#[tauri::command]
pub async fn export_run(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    dest: PathBuf,
    name: String,
    merge: Option<bool>,
    onnx: Option<bool>,
    int8: Option<bool>,
    gguf: Option<hone_app::types::GgufType>,
) -> CommandResult<PathBuf> {
    let dest = state.allowed(&dest)?;
    let state = state.inner().clone();
    super::blocking(move || {
        let mut app = state.app()?;
        Ok(if let Some(weights) = gguf {
            app.export_run_gguf(run_id, &dest, &name, weights)?.path
        } else if onnx.unwrap_or(false) {
            app.export_run_onnx(run_id, &dest, &name, int8.unwrap_or(false))?
                .0
        } else if merge.unwrap_or(false) {
            app.export_run_merged(run_id, &dest, &name)?
        } else {
            app.export_run_model(run_id, &dest, &name)?
        })
    })
    .await
}

/// A starter behavioral-test suite (TOML) for run `run_id`'s text classifier: its classes
/// in the examples, invariance tests of every perturbation on its held-out texts.
#[tauri::command]
pub async fn behavior_starter(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
) -> CommandResult<String> {
    let state = state.inner().clone();
    super::blocking(move || {
        let (dir, max_length) = state.app()?.run_model(run_id)?;
        let model = state.predictor(&dir, max_length)?;
        Ok(hone_app::behavior::Suite::starter(model.labels()))
    })
    .await
}

/// Runs the behavioral-test suite `suite` (TOML, as `hone test --suite` reads) on run
/// `run_id`'s model with the run's held-out examples, and the accuracy of each slice
/// (`NAME=REGEX`, one per entry) on them.
#[tauri::command]
pub async fn behavior_run(
    state: State<'_, Arc<DesktopState>>,
    run_id: i64,
    suite: String,
    slices: Vec<String>,
) -> CommandResult<hone_app::behavior::SuiteReport> {
    let state = state.inner().clone();
    super::blocking(move || {
        let rules = slices
            .iter()
            .filter(|s| !s.trim().is_empty())
            .map(|s| s.trim().parse::<hone_app::behavior::SliceRule>())
            .collect::<Result<Vec<_>, _>>()
            .map_err(hone_app::AppError::Invalid)?;
        let app = state.app()?;
        let (dir, max_length) = app.run_model(run_id)?;
        let examples = app.held_out_examples(run_id)?;
        drop(app);
        let model = state.predictor(&dir, max_length)?;
        Ok(hone_app::behavior::run_on_examples(
            &model,
            &suite,
            std::path::Path::new("the suite"),
            &examples,
            &rules,
        )?)
    })
    .await
}
