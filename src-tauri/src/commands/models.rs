//! Models: Hub search, info with the fit check, downloads with progress and cancel, the cache
//! and imported folders.

use std::path::PathBuf;
use std::sync::atomic::Ordering;
use std::sync::Arc;
use std::time::{Duration, Instant};

use hone_app::models::{
    check_folder, hub_model_page, search_hits, HubModelPage, KnownModel, ModelCheck, SearchHit,
};
use hone_app::types::FitSettings;
use hone_app::types::{DownloadEvent, DownloadOptions, Downloaded, SearchQuery};
use serde::Serialize;
use tauri::ipc::Channel;
use tauri::State;

use crate::error::{CommandError, CommandResult};
use crate::state::DesktopState;

/// One page of search results.
#[derive(Serialize)]
pub struct SearchResults {
    pub models: Vec<SearchHit>,
    /// Pass back as `next` for the following page.
    pub next: Option<String>,
}

#[tauri::command]
pub async fn hub_search(
    state: State<'_, Arc<DesktopState>>,
    query: SearchQuery,
    next: Option<String>,
) -> CommandResult<SearchResults> {
    let state = state.inner().clone();
    super::blocking(move || {
        let page = match next {
            Some(url) => state.hub().search_page(&url)?,
            None => state.hub().search(&SearchQuery {
                limit: query.limit.clamp(1, 100),
                ..query
            })?,
        };
        Ok(SearchResults {
            models: search_hits(page.models),
            next: page.next,
        })
    })
    .await
}

#[tauri::command]
pub async fn hub_info(
    state: State<'_, Arc<DesktopState>>,
    repo: String,
    settings: Option<FitSettings>,
) -> CommandResult<HubModelPage> {
    let state = state.inner().clone();
    super::blocking(move || {
        Ok(hub_model_page(
            state.hub(),
            &repo,
            None,
            settings.unwrap_or_default(),
        )?)
    })
    .await
}

/// Downloads what a fine-tune of `repo` needs, reporting progress over `on_event` (at most
/// ten progress messages a second).
#[tauri::command]
pub async fn hub_download(
    state: State<'_, Arc<DesktopState>>,
    repo: String,
    on_event: Channel<DownloadEvent>,
) -> CommandResult<Downloaded> {
    let state = state.inner().clone();
    let cancel = state.track_download(&repo)?;
    let result = super::blocking({
        let state = state.clone();
        let repo = repo.clone();
        move || {
            let mut last = Instant::now() - Duration::from_secs(1);
            let done = state.hub().download(
                &repo,
                &DownloadOptions::default(),
                &cancel,
                &mut |event| {
                    if let DownloadEvent::Progress {
                        done_bytes,
                        total_bytes,
                        ..
                    } = event
                    {
                        if last.elapsed() < Duration::from_millis(100) && done_bytes < total_bytes {
                            return;
                        }
                        last = Instant::now();
                    }
                    let _ = on_event.send(event.clone());
                },
            )?;
            Ok(done)
        }
    })
    .await;
    state.untrack_download(&repo);
    result
}

/// Stops a download; the partial file stays and the next download resumes it.
#[tauri::command]
pub fn hub_cancel_download(state: State<'_, Arc<DesktopState>>, repo: String) -> bool {
    match state.download_switch(&repo) {
        Some(flag) => {
            flag.store(true, Ordering::SeqCst);
            true
        }
        None => false,
    }
}

#[tauri::command]
pub async fn models_list(state: State<'_, Arc<DesktopState>>) -> CommandResult<Vec<KnownModel>> {
    let state = state.inner().clone();
    super::blocking(move || Ok(state.app()?.known_models(state.hub())?)).await
}

/// A known model's check (compatibility and fit) at the given batch size and length.
#[tauri::command]
pub async fn model_check(
    state: State<'_, Arc<DesktopState>>,
    reference: String,
    settings: Option<FitSettings>,
) -> CommandResult<ModelCheck> {
    let state = state.inner().clone();
    super::blocking(move || {
        let dir = state.known_model_dir(&PathBuf::from(&reference))?;
        Ok(check_folder(&dir, settings.unwrap_or_default())?)
    })
    .await
}

/// The result of an import.
#[derive(Serialize)]
pub struct ImportedModel {
    pub model: hone_app::types::ModelRecord,
    pub check: ModelCheck,
}

#[tauri::command]
pub async fn model_import(
    state: State<'_, Arc<DesktopState>>,
    dir: PathBuf,
) -> CommandResult<ImportedModel> {
    let dir = state.allowed(&dir)?;
    let state = state.inner().clone();
    super::blocking(move || {
        let (model, check) = state.app()?.import_model(&dir)?;
        Ok(ImportedModel { model, check })
    })
    .await
}

#[tauri::command]
pub async fn model_remove(
    state: State<'_, Arc<DesktopState>>,
    reference: String,
) -> CommandResult<u64> {
    let state = state.inner().clone();
    super::blocking(move || {
        if state.download_switch(&reference).is_some() {
            return Err(CommandError::new(
                "busy",
                format!("{reference} is downloading; cancel the download first"),
            ));
        }
        Ok(state.app()?.remove_model(state.hub(), &reference)?)
    })
    .await
}
