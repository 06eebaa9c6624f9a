//! Fingerprints that tie a run to exactly the model and the data it saw (BLAKE3, hex).

use std::path::Path;

use hone_data::Example;

use crate::AppError;

/// A model folder's fingerprint: its config, weights and tokenizer files, by name and content.
pub fn model(dir: &Path) -> Result<String, AppError> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .map_err(|e| AppError::Io {
            path: dir.to_path_buf(),
            source: e,
        })?
        .filter_map(|e| e.ok())
        .map(|e| e.path())
        .filter(|p| p.is_file())
        .filter(|p| {
            let name = p.file_name().and_then(|n| n.to_str()).unwrap_or("");
            name == "config.json"
                || name == hone_engine::lora::ADAPTER_CONFIG
                || name == hone_engine::lora::HEAD_CONFIG
                || name == hone_engine::bottleneck::ADAPTER_FILE
                || name.ends_with(".safetensors")
                || name.ends_with(".bin")
                || name.ends_with(".index.json")
                || name.starts_with("tokenizer")
                || name.starts_with("vocab")
                || name == "merges.txt"
                || name == "special_tokens_map.json"
        })
        .collect();
    names.sort();
    let mut hasher = blake3::Hasher::new();
    for path in names {
        hasher.update(path.file_name().unwrap_or_default().as_encoded_bytes());
        hasher.update(&[0]);
        let file = std::fs::File::open(&path).map_err(|e| AppError::Io {
            path: path.clone(),
            source: e,
        })?;
        hasher.update_reader(file).map_err(|e| AppError::Io {
            path: path.clone(),
            source: e,
        })?;
    }
    Ok(hasher.finalize().to_hex().to_string())
}

/// The fingerprint of the examples a run trains and validates on (texts, pairs, labels, and
/// which part each is in).
pub fn examples(train: &[Example], valid: &[Example]) -> String {
    let mut hasher = blake3::Hasher::new();
    for (part, examples) in [(b"train".as_slice(), train), (b"valid".as_slice(), valid)] {
        hasher.update(part);
        for e in examples {
            for field in [
                Some(e.text.as_str()),
                e.text_pair.as_deref(),
                e.label.as_deref(),
            ] {
                match field {
                    Some(f) => {
                        hasher.update(&(f.len() as u64).to_le_bytes());
                        hasher.update(f.as_bytes());
                    }
                    None => {
                        hasher.update(&u64::MAX.to_le_bytes());
                    }
                }
            }
        }
    }
    hasher.finalize().to_hex().to_string()
}
