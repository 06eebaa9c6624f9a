//! Where the database lives by default.

use std::path::PathBuf;

/// The database path: `HONE_DB` when set, else `hone/hone.db` in the platform's data folder
/// (`~/.local/share` on Linux, `~/Library/Application Support` on macOS, `%APPDATA%` on
/// Windows).
pub fn default_db() -> PathBuf {
    if let Some(p) = std::env::var_os("HONE_DB").filter(|p| !p.is_empty()) {
        return PathBuf::from(p);
    }
    dirs::data_dir()
        .unwrap_or_else(|| PathBuf::from("."))
        .join("hone")
        .join("hone.db")
}
