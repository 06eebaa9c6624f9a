//! Opening a text file: byte counting for progress, encoding detection (UTF-8, UTF-8 with BOM,
//! UTF-16 with BOM, else Windows-1252 / Latin-1 with a warning) and transcoding to UTF-8 while
//! streaming.

use std::fs::File;
use std::io::{BufRead, BufReader, Read};
use std::path::Path;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;

use encoding_rs::{Encoding, UTF_16BE, UTF_16LE, UTF_8, WINDOWS_1252};
use encoding_rs_io::DecodeReaderBytesBuilder;

use crate::DataError;

/// Counts the bytes read from the file, for progress.
pub struct Counting<R> {
    inner: R,
    read: Arc<AtomicU64>,
}

impl<R: Read> Read for Counting<R> {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.read.fetch_add(n as u64, Ordering::Relaxed);
        Ok(n)
    }
}

/// An encoding chosen by name: utf-8, utf-16le, utf-16be, latin1 / iso-8859-1 / windows-1252.
pub fn encoding_by_name(name: &str) -> Option<&'static Encoding> {
    match name.to_ascii_lowercase().replace('_', "-").as_str() {
        "latin1" | "latin-1" | "iso-8859-1" | "iso8859-1" | "cp1252" | "windows-1252" => {
            Some(WINDOWS_1252)
        }
        other => Encoding::for_label(other.as_bytes()),
    }
}

/// Where the first invalid UTF-8 byte of `head` is, as a 1-based line number, or `None` when
/// `head` is valid UTF-8 (a character cut at the end of `head` counts as valid).
fn first_invalid_utf8_line(head: &[u8]) -> Option<u64> {
    match std::str::from_utf8(head) {
        Ok(_) => None,
        Err(e) if e.error_len().is_none() => None,
        Err(e) => Some(
            head[..e.valid_up_to()]
                .iter()
                .filter(|&&b| b == b'\n')
                .count() as u64
                + 1,
        ),
    }
}

/// Whether the start of a file reads as binary: NUL bytes, which no UTF-8 or single-byte text
/// has (UTF-16 announced by its byte-order mark is text).
pub fn looks_binary(head: &[u8]) -> bool {
    !(head.starts_with(&[0xFF, 0xFE]) || head.starts_with(&[0xFE, 0xFF])) && head.contains(&0)
}

/// Refuses a file that [`looks_binary`] at its start (its first 64 KiB), unless an
/// encoding is forced.
pub fn refuse_binary_file(path: &Path, forced: bool) -> Result<(), DataError> {
    if forced {
        return Ok(());
    }
    let mut head = Vec::with_capacity(1 << 16);
    File::open(path)
        .and_then(|f| f.take(1 << 16).read_to_end(&mut head))
        .map_err(|e| DataError::io(path, e))?;
    if looks_binary(&head) {
        return Err(DataError::NotText {
            path: path.to_path_buf(),
        });
    }
    Ok(())
}

/// A UTF-8 text stream of `path`, with a warning when the encoding had to be guessed.
pub fn open_text(
    path: &Path,
    forced: Option<&'static Encoding>,
    read: Arc<AtomicU64>,
) -> Result<(Box<dyn BufRead + Send>, Option<String>), DataError> {
    let file = File::open(path).map_err(|e| DataError::io(path, e))?;
    let mut buffered = BufReader::with_capacity(1 << 16, Counting { inner: file, read });
    let head = buffered
        .fill_buf()
        .map_err(|e| DataError::io(path, e))?
        .to_vec();
    if forced.is_none() && looks_binary(&head) {
        return Err(DataError::NotText {
            path: path.to_path_buf(),
        });
    }
    let bom = if head.starts_with(&[0xEF, 0xBB, 0xBF]) {
        Some(UTF_8)
    } else if head.starts_with(&[0xFF, 0xFE]) {
        Some(UTF_16LE)
    } else if head.starts_with(&[0xFE, 0xFF]) {
        Some(UTF_16BE)
    } else {
        None
    };
    let (encoding, warning) = match (forced, bom) {
        (Some(e), _) => (e, None),
        (None, Some(e)) => (e, None),
        (None, None) => match first_invalid_utf8_line(&head) {
            None => (UTF_8, None),
            Some(line) => (
                WINDOWS_1252,
                Some(format!(
                    "{} is not valid UTF-8 (first bad byte on line {line}); it was read as Windows-1252 / Latin-1. Check accented characters, or choose the encoding",
                    path.display()
                )),
            ),
        },
    };
    if encoding == UTF_8 {
        // UTF-8 passes through unchanged (a BOM is skipped); an invalid byte later in the file
        // is reported by the format reader with its line.
        if bom.is_some() {
            buffered.consume(3);
        }
        return Ok((Box::new(buffered), warning));
    }
    let decoded = DecodeReaderBytesBuilder::new()
        .encoding(Some(encoding))
        .bom_override(true)
        .build(buffered);
    Ok((
        Box::new(BufReader::with_capacity(1 << 16, decoded)),
        warning,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn read_all(bytes: &[u8], forced: Option<&'static Encoding>) -> (String, Option<String>) {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("f.txt");
        std::fs::write(&path, bytes).unwrap();
        let counter = Arc::new(AtomicU64::new(0));
        let (mut r, warning) = open_text(&path, forced, counter.clone()).unwrap();
        let mut s = String::new();
        r.read_to_string(&mut s).unwrap();
        assert_eq!(counter.load(Ordering::Relaxed), bytes.len() as u64);
        (s, warning)
    }

    #[test]
    fn encodings_are_detected() {
        assert_eq!(
            read_all("héllo\n".as_bytes(), None),
            ("héllo\n".into(), None)
        );
        assert_eq!(read_all(b"\xEF\xBB\xBFbom\n", None).0, "bom\n");
        let utf16: Vec<u8> = [0xFF, 0xFE]
            .into_iter()
            .chain("añb".encode_utf16().flat_map(u16::to_le_bytes))
            .collect();
        assert_eq!(read_all(&utf16, None).0, "añb");
        let (text, warning) = read_all(b"line one\nsister\xf0city caf\xe9\n", None);
        assert_eq!(text, "line one\nsister\u{f0}city caf\u{e9}\n");
        assert!(warning.unwrap().contains("line 2"));
        assert_eq!(read_all(b"caf\xe9", encoding_by_name("latin1")).0, "café");
    }
}
