//! Tauri commands by domain; each is a thin adapter over `hone-app`.

pub mod app;
pub mod datasets;
pub mod labeling;
pub mod models;
pub mod playground;
pub mod runs;
pub mod targets;
pub mod train;

/// Runs blocking work (SQLite, files, HTTP) off the window's thread.
pub(crate) async fn blocking<T: Send + 'static>(
    f: impl FnOnce() -> crate::error::CommandResult<T> + Send + 'static,
) -> crate::error::CommandResult<T> {
    tauri::async_runtime::spawn_blocking(f)
        .await
        .map_err(|e| crate::error::CommandError::new("internal", e.to_string()))?
}
