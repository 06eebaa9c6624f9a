//! What a person says of a run — tags and notes, checked here for every front end — and asking
//! a run that another process trains to stop.

use crate::{App, AppError};

/// The most tags a run keeps.
pub const MAX_TAGS: usize = 20;
/// The longest tag, in characters.
pub const MAX_TAG_CHARS: usize = 40;
/// The longest notes, in characters.
pub const MAX_NOTES_CHARS: usize = 20_000;

/// Tags as stored: trimmed, inner whitespace kept to single spaces, no duplicates (ignoring
/// case; the first spelling stays), in the order given. Empty ones are dropped.
pub fn normalise_tags(tags: &[String]) -> Result<Vec<String>, AppError> {
    let mut out: Vec<String> = Vec::new();
    for tag in tags {
        let tag = tag.split_whitespace().collect::<Vec<_>>().join(" ");
        if tag.is_empty() {
            continue;
        }
        if tag.chars().count() > MAX_TAG_CHARS {
            return Err(AppError::Invalid(format!(
                "the tag '{tag}' is longer than {MAX_TAG_CHARS} characters"
            )));
        }
        if tag.contains(',') {
            return Err(AppError::Invalid(format!(
                "the tag '{tag}' has a comma; give each tag on its own"
            )));
        }
        if !out.iter().any(|t| t.eq_ignore_ascii_case(&tag)) {
            out.push(tag);
        }
    }
    if out.len() > MAX_TAGS {
        return Err(AppError::Invalid(format!(
            "a run keeps at most {MAX_TAGS} tags, got {}",
            out.len()
        )));
    }
    Ok(out)
}

fn check_notes(notes: &str) -> Result<(), AppError> {
    if notes.chars().count() > MAX_NOTES_CHARS {
        return Err(AppError::Invalid(format!(
            "notes are kept up to {MAX_NOTES_CHARS} characters"
        )));
    }
    Ok(())
}

impl App {
    /// Sets run `id`'s tags (see [`normalise_tags`]); returns them as stored.
    pub fn set_run_tags(&mut self, id: i64, tags: &[String]) -> Result<Vec<String>, AppError> {
        let tags = normalise_tags(tags)?;
        self.store.set_run_tags(id, &tags)?;
        Ok(tags)
    }

    /// Adds and removes tags of run `id` (removal ignores case); returns the tags as stored.
    pub fn edit_run_tags(
        &mut self,
        id: i64,
        add: &[String],
        remove: &[String],
    ) -> Result<Vec<String>, AppError> {
        let run = self.store.run(id)?;
        let removed = normalise_tags(remove)?;
        let mut tags: Vec<String> = run
            .tags
            .into_iter()
            .filter(|t| !removed.iter().any(|r| r.eq_ignore_ascii_case(t)))
            .collect();
        tags.extend(add.iter().cloned());
        self.set_run_tags(id, &tags)
    }

    /// Adds and removes tags and sets the notes of run `id` (each when given), all checked
    /// before anything is written; returns the run's tags as stored.
    pub fn annotate_run(
        &mut self,
        id: i64,
        add: &[String],
        remove: &[String],
        notes: Option<&str>,
    ) -> Result<Vec<String>, AppError> {
        normalise_tags(add)?;
        if let Some(notes) = notes {
            check_notes(notes)?;
        }
        let tags = self.edit_run_tags(id, add, remove)?;
        if let Some(notes) = notes {
            self.set_run_notes(id, notes)?;
        }
        Ok(tags)
    }

    /// Sets run `id`'s notes; blank notes clear them.
    pub fn set_run_notes(&mut self, id: i64, notes: &str) -> Result<(), AppError> {
        check_notes(notes)?;
        let notes = notes.trim_end();
        let notes = (!notes.trim().is_empty()).then_some(notes);
        Ok(self.store.set_run_notes(id, notes)?)
    }

    /// Asks run `id` to stop after its current step, whichever process trains it (the process
    /// reads the request after each step and stops as a cancel does: resumable).
    pub fn request_cancel(&mut self, id: i64) -> Result<(), AppError> {
        // A run on a compute target is stopped through its scheduler.
        let run = self.store.run(id)?;
        if run.remote.is_some()
            && matches!(
                run.status,
                hone_store::RunStatus::Queued | hone_store::RunStatus::Running
            )
        {
            return self.cancel_remote_run(id);
        }
        if self.store.request_cancel(id)? {
            return Ok(());
        }
        let status = self.store.run(id)?.status;
        Err(AppError::Invalid(format!(
            "run {id} is {}, not running: there is nothing to stop",
            status.as_str()
        )))
    }

    /// True when run `id` is running and was asked to stop.
    pub fn stop_requested(&self, id: i64) -> Result<bool, AppError> {
        Ok(self.store.cancel_requested(id)?)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tags_are_trimmed_deduplicated_and_checked() {
        let tags =
            |t: &[&str]| normalise_tags(&t.iter().map(|s| s.to_string()).collect::<Vec<_>>());
        assert_eq!(
            tags(&["  baseline ", "lr  sweep", "", "Baseline", "sst2"]).unwrap(),
            ["baseline", "lr sweep", "sst2"]
        );
        let long = "x".repeat(MAX_TAG_CHARS + 1);
        assert!(tags(&[&long]).unwrap_err().to_string().contains("longer"));
        assert!(tags(&["a,b"]).unwrap_err().to_string().contains("comma"));
        let many: Vec<String> = (0..=MAX_TAGS).map(|i| format!("t{i}")).collect();
        assert!(normalise_tags(&many).is_err());
    }
}
