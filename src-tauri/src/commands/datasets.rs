//! Datasets: preview before import, import with progress, browse, label, split.

use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hone_app::preview::{preview_file, FilePreview};
use hone_app::types::SourceSpec;
use hone_app::types::{DatasetInfo, ExampleFilter, Label, SplitInfo, StoredExample};
use hone_app::{ImportRequest, ImportSummary};
use serde::{Deserialize, Serialize};
use tauri::ipc::Channel;
use tauri::State;

use crate::error::CommandResult;
use crate::state::DesktopState;

/// Reads the columns and first rows of a picked file; nothing is written.
#[tauri::command]
pub async fn dataset_preview(
    state: State<'_, Arc<DesktopState>>,
    path: PathBuf,
    spec: Option<SourceSpec>,
) -> CommandResult<FilePreview> {
    let path = state.allowed(&path)?;
    super::blocking(move || Ok(preview_file(&path, &spec.unwrap_or_default(), 50)?)).await
}

/// Multiple-choice questions in a picked file, read with `columns`: counts, the first
/// questions and, with `model`, the token length of each (question, option) pair.
#[tauri::command]
pub async fn choice_preview(
    state: State<'_, Arc<DesktopState>>,
    path: PathBuf,
    columns: hone_app::types::ChoiceColumns,
    model: Option<PathBuf>,
    max_length: usize,
) -> CommandResult<hone_app::choices::ChoicePreview> {
    let path = state.allowed(&path)?;
    let model = model.map(|m| state.known_model_dir(&m)).transpose()?;
    super::blocking(move || {
        Ok(hone_app::choices::preview_choices(
            &path,
            None,
            &columns,
            model.as_deref(),
            max_length,
            3,
        )?)
    })
    .await
}

/// Questions in a picked SQuAD JSON or JSON lines file: counts, the first questions and,
/// with `model`, how many windows their passages make at `max_length` and `stride`.
#[tauri::command]
pub async fn answer_preview(
    state: State<'_, Arc<DesktopState>>,
    path: PathBuf,
    model: Option<PathBuf>,
    max_length: usize,
    stride: usize,
) -> CommandResult<hone_app::answers::AnswerPreview> {
    let path = state.allowed(&path)?;
    let model = model.map(|m| state.known_model_dir(&m)).transpose()?;
    super::blocking(move || {
        Ok(hone_app::answers::preview_answers(
            &path,
            model.as_deref(),
            max_length,
            stride,
            3,
        )?)
    })
    .await
}

/// Conversations in a picked instruction or chat file (Alpaca, `messages`, ShareGPT,
/// prompt/completion, plain text): counts, the first ones and, with `model`, whether it has a
/// chat template and how it renders the first.
#[tauri::command]
pub async fn conversation_preview(
    state: State<'_, Arc<DesktopState>>,
    path: PathBuf,
    model: Option<PathBuf>,
) -> CommandResult<hone_app::conversations::ConversationPreview> {
    let path = state.allowed(&path)?;
    let model = model.map(|m| state.known_model_dir(&m)).transpose()?;
    super::blocking(move || {
        Ok(hone_app::conversations::preview_conversations(
            &path,
            model.as_deref(),
            2,
        )?)
    })
    .await
}

/// Lengths of a stored dataset's examples in the tokens of a known model (a sample of up to
/// 2,000), for the Train page's speed estimate.
#[tauri::command]
pub async fn dataset_token_lengths(
    state: State<'_, Arc<DesktopState>>,
    name: String,
    model: PathBuf,
    max_length: usize,
) -> CommandResult<hone_app::token_lengths::TokenLengths> {
    let model = state.known_model_dir(&model)?;
    let state = state.inner().clone();
    super::blocking(move || {
        Ok(state
            .app()?
            .dataset_token_lengths(&name, &model, max_length)?)
    })
    .await
}

/// Bytes read of the file, for the progress bar.
#[derive(Clone, Serialize)]
pub struct ImportProgress {
    pub done: u64,
    pub total: u64,
}

/// Imports a picked file as dataset `name` (one transaction).
#[tauri::command]
pub async fn dataset_import(
    state: State<'_, Arc<DesktopState>>,
    path: PathBuf,
    name: String,
    spec: SourceSpec,
    label_map: Option<std::collections::HashMap<String, String>>,
    on_progress: Channel<ImportProgress>,
) -> CommandResult<ImportSummary> {
    let path = state.allowed(&path)?;
    let state = state.inner().clone();
    super::blocking(move || {
        let request = ImportRequest {
            path,
            name,
            spec,
            label_names: None,
            label_map: label_map.filter(|m| !m.is_empty()),
            part: None,
            append: false,
        };
        let mut last = Instant::now() - Duration::from_secs(1);
        Ok(state.app()?.import(&request, &mut |done, total| {
            if last.elapsed() >= Duration::from_millis(100) || done == total {
                last = Instant::now();
                let _ = on_progress.send(ImportProgress { done, total });
            }
        })?)
    })
    .await
}

#[tauri::command]
pub async fn datasets_list(state: State<'_, Arc<DesktopState>>) -> CommandResult<Vec<DatasetInfo>> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.store().datasets()?)).await
}

/// Which examples to list.
#[derive(Debug, Default, Deserialize)]
#[serde(default)]
pub struct ExampleQuery {
    pub labeled: Option<bool>,
    pub text_contains: Option<String>,
    pub offset: i64,
    pub limit: Option<i64>,
}

/// A page of a dataset's examples.
#[derive(Serialize)]
pub struct ExamplePage {
    pub dataset: DatasetInfo,
    pub examples: Vec<StoredExample>,
    /// How many examples match the query (the page is `offset..offset + limit` of them).
    pub total: i64,
}

#[tauri::command]
pub async fn dataset_examples(
    state: State<'_, Arc<DesktopState>>,
    name: String,
    query: ExampleQuery,
) -> CommandResult<ExamplePage> {
    let state = state.inner().clone();
    super::blocking(move || {
        let app = state.app()?;
        let dataset = app.store().dataset(&name)?;
        let filter = ExampleFilter {
            labeled: query.labeled,
            part: None,
            text_contains: query.text_contains.filter(|t| !t.is_empty()),
            offset: query.offset.max(0),
            limit: Some(query.limit.unwrap_or(100).clamp(1, 1000)),
        };
        let examples = app.store().examples(dataset.id, &filter)?;
        let total = app.store().count_examples(dataset.id, &filter)?;
        Ok(ExamplePage {
            dataset,
            examples,
            total,
        })
    })
    .await
}

/// Sets (or clears, with `None`) an example's label: a class name, or one tag per token
/// (BIO tags for entities).
#[tauri::command]
pub async fn example_set_label(
    state: State<'_, Arc<DesktopState>>,
    example_id: i64,
    label: Option<Label>,
) -> CommandResult<()> {
    let state = state.inner().clone();
    super::blocking(move || {
        let mut app = state.app()?;
        app.store_mut()
            .set_label(example_id, label.as_ref(), "app")?;
        Ok(())
    })
    .await
}

/// Renames class `old` of dataset `name` to `new` (its id stays; its examples follow); the
/// dataset as it is now.
#[tauri::command]
pub async fn dataset_rename_class(
    state: State<'_, Arc<DesktopState>>,
    name: String,
    old: String,
    new: String,
) -> CommandResult<DatasetInfo> {
    let state = state.inner().clone();
    super::blocking(move || {
        let mut app = state.app()?;
        app.store_mut().rename_label(&name, &old, &new)?;
        Ok(app.store().dataset(&name)?)
    })
    .await
}

/// Makes (or replaces) a stratified, seeded split.
#[tauri::command]
pub async fn dataset_split(
    state: State<'_, Arc<DesktopState>>,
    name: String,
    split: String,
    valid: f64,
    test: f64,
    seed: u64,
) -> CommandResult<SplitInfo> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.make_split(&name, &split, valid, test, seed)?)).await
}

#[tauri::command]
pub async fn dataset_delete(
    state: State<'_, Arc<DesktopState>>,
    name: String,
) -> CommandResult<()> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.store_mut().delete_dataset(&name)?)).await
}
