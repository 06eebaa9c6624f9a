//! Names that come from the user or the Hub and end up in paths or URLs. Anything that could
//! leave the cache folder (`..`, absolute paths, backslashes, odd characters in an ETag used as
//! a blob name) is refused here, before a byte is written.

use crate::HubError;

fn word_char(c: char) -> bool {
    c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.')
}

/// Checks a repository id (`org/name` or `name`) as the Hub does.
pub fn check_repo_id(repo: &str) -> Result<(), HubError> {
    let parts: Vec<&str> = repo.split('/').collect();
    let ok = (1..=2).contains(&parts.len())
        && parts.iter().all(|p| {
            !p.is_empty()
                && p.len() <= 96
                && p.chars().all(word_char)
                && !p.starts_with(['-', '.'])
                && !p.ends_with(['-', '.'])
        })
        && !repo.contains("--")
        && !repo.contains("..");
    if ok {
        Ok(())
    } else {
        Err(HubError::BadRepoId {
            repo: repo.to_string(),
        })
    }
}

/// Checks a revision (branch, tag or commit; `refs/pr/1` style slashes allowed).
pub(crate) fn check_revision(revision: &str) -> Result<(), HubError> {
    let ok = !revision.is_empty()
        && revision.len() <= 255
        && revision.split('/').all(|p| {
            !p.is_empty() && p != "." && p != ".." && p.chars().all(|c| word_char(c) || c == '+')
        });
    if ok {
        Ok(())
    } else {
        Err(HubError::UnsafeFileName {
            name: revision.to_string(),
        })
    }
}

/// Checks a file name from a repository listing: relative, `/`-separated, no `.`/`..`
/// components, no backslashes, drive letters or control characters.
pub(crate) fn check_file_name(name: &str) -> Result<(), HubError> {
    let ok = !name.is_empty()
        && name.len() <= 1024
        && !name.starts_with('/')
        && !name.contains('\\')
        && !name.contains(':')
        && !name.chars().any(char::is_control)
        && name
            .split('/')
            .all(|p| !p.is_empty() && p != "." && p != "..");
    if ok {
        Ok(())
    } else {
        Err(HubError::UnsafeFileName {
            name: name.to_string(),
        })
    }
}

/// A commit hash: 40 lowercase hex digits.
pub(crate) fn is_commit_hash(s: &str) -> bool {
    s.len() == 40
        && s.bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
}

/// The blob name an ETag stands for: quotes and the weak prefix removed; only word characters
/// allowed (it becomes a file name in `blobs/`).
pub(crate) fn etag_to_blob_name(etag: &str) -> Result<String, HubError> {
    let name = etag
        .trim()
        .trim_start_matches("W/")
        .trim_matches('"')
        .to_string();
    if !name.is_empty()
        && name.len() <= 128
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || c == '-' || c == '_')
    {
        Ok(name)
    } else {
        Err(HubError::UnsafeFileName { name })
    }
}

/// The checksum an ETag carries: SHA-256 (LFS files) or git's SHA-1 of the blob (small files).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Checksum {
    Sha256,
    GitSha1,
    None,
}

pub(crate) fn checksum_of(blob_name: &str) -> Checksum {
    let hex = blob_name.bytes().all(|b| b.is_ascii_hexdigit());
    match (hex, blob_name.len()) {
        (true, 64) => Checksum::Sha256,
        (true, 40) => Checksum::GitSha1,
        _ => Checksum::None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn repo_ids() {
        for ok in [
            "bert-base-uncased",
            "sentence-transformers/all-MiniLM-L6-v2",
            "a/b.c_d",
        ] {
            assert!(check_repo_id(ok).is_ok(), "{ok}");
        }
        for bad in [
            "", "a/b/c", "../x", "a/..", "a--b/c", "/abs", "a/ b", "a/b\\c", "-a/b",
        ] {
            assert!(check_repo_id(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn file_names() {
        for ok in ["config.json", "onnx/model.onnx", "a..b.txt"] {
            assert!(check_file_name(ok).is_ok(), "{ok}");
        }
        for bad in [
            "",
            "../x",
            "a/../../x",
            "/etc/passwd",
            "a\\b",
            "C:x",
            "a//b",
            "./a",
            "a/\n",
        ] {
            assert!(check_file_name(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn etags() {
        let sha = "a".repeat(64);
        assert_eq!(etag_to_blob_name(&format!("\"{sha}\"")).unwrap(), sha);
        assert_eq!(etag_to_blob_name(&format!("W/\"{sha}\"")).unwrap(), sha);
        assert!(etag_to_blob_name("\"../../x\"").is_err());
        assert_eq!(checksum_of(&sha), Checksum::Sha256);
        assert_eq!(checksum_of(&"0".repeat(40)), Checksum::GitSha1);
        assert_eq!(checksum_of("abc-1"), Checksum::None);
        assert!(check_revision("refs/pr/1").is_ok() && check_revision("../main").is_err());
    }
}
