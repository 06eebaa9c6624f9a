//! JSON objects: one per line (JSONL), or the elements of a top-level array (read one element at
//! a time on a helper thread, so the array is never held whole).

use std::io::BufRead;
use std::path::Path;
use std::sync::mpsc::{sync_channel, Receiver};

use serde::de::{DeserializeSeed, SeqAccess, Visitor};
use serde_json::{Map, Value};

use super::{make_row, owned, unknown_column, utf8_lines, RawValues, Rows, SourceRow, SourceSpec};
use crate::DataError;

/// A JSON scalar as text: strings as they are, numbers and booleans printed.
fn scalar(value: Option<&Value>) -> Option<String> {
    match value? {
        Value::String(s) => Some(s.clone()),
        Value::Number(n) => Some(n.to_string()),
        Value::Bool(b) => Some(b.to_string()),
        _ => None,
    }
}

fn row_from_object(
    path: &Path,
    line: u64,
    spec: &SourceSpec,
    object: &Map<String, Value>,
    first: bool,
) -> Result<SourceRow, DataError> {
    let keys = || object.keys().cloned().collect::<Vec<_>>();
    let text_name = spec.text.as_deref().unwrap_or("text");
    if first {
        for (column, flag) in [
            (Some(text_name), "--text-column"),
            (spec.text_pair.as_deref(), "--text-pair-column"),
            (spec.label.as_deref(), "--label-column"),
            (spec.split.as_deref(), "--split-column"),
        ] {
            if let Some(c) = column {
                if !object.contains_key(c) {
                    return Err(unknown_column(path, c, &keys(), flag));
                }
            }
        }
        if let Some(c) = spec.choices.iter().find(|c| !object.contains_key(*c)) {
            return Err(unknown_column(path, c, &keys(), "--choice-columns"));
        }
    }
    let field = |c: &Option<String>| c.as_ref().and_then(|c| scalar(object.get(c)));
    // A list of options is handed on as its JSON text.
    let option = |c: &String| match object.get(c) {
        Some(list @ Value::Array(_)) => Some(list.to_string()),
        other => scalar(other),
    };
    make_row(
        path,
        line,
        spec,
        RawValues {
            text: scalar(object.get(text_name)),
            text_pair: field(&spec.text_pair),
            label: field(&spec.label),
            split: field(&spec.split),
            choices: spec.choices.iter().map(option).collect(),
        },
    )
}

/// Rows of a JSONL file.
pub fn lines(
    path: &Path,
    text: Box<dyn BufRead + Send>,
    spec: &SourceSpec,
) -> Result<Rows, DataError> {
    let path = owned(path);
    let spec = spec.clone();
    let mut lines = utf8_lines(&path, text);
    let mut first = true;
    Ok(Box::new(std::iter::from_fn(move || loop {
        let (line, text) = match lines.next()? {
            Ok(l) => l,
            Err(e) => return Some(Err(e)),
        };
        let text = text.trim();
        if text.is_empty() {
            continue;
        }
        let value: Value = match serde_json::from_str(text) {
            Ok(v) => v,
            Err(e) => {
                return Some(Err(DataError::Malformed {
                    path: path.clone(),
                    line,
                    message: format!(
                        "not a JSON object ({e}); the file needs one JSON object per line"
                    ),
                }))
            }
        };
        let Value::Object(object) = value else {
            return Some(Err(DataError::Malformed {
                path: path.clone(),
                line,
                message: "expected one JSON object per line".into(),
            }));
        };
        let row = row_from_object(&path, line, &spec, &object, first);
        first = false;
        return Some(row);
    })))
}

/// Sends each element of a JSON array over a channel as it is parsed.
struct Elements<'a> {
    sender: &'a std::sync::mpsc::SyncSender<Result<Value, String>>,
}

impl<'de> DeserializeSeed<'de> for Elements<'_> {
    type Value = ();
    fn deserialize<D: serde::Deserializer<'de>>(self, d: D) -> Result<(), D::Error> {
        d.deserialize_seq(self)
    }
}

impl<'de> Visitor<'de> for Elements<'_> {
    type Value = ();
    fn expecting(&self, f: &mut std::fmt::Formatter) -> std::fmt::Result {
        f.write_str("a JSON array of objects")
    }
    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<(), A::Error> {
        while let Some(v) = seq.next_element::<Value>()? {
            if self.sender.send(Ok(v)).is_err() {
                break; // the reader stopped early
            }
        }
        Ok(())
    }
}

/// Rows of a file holding one JSON array of objects; "line" is the element's number.
pub fn array(
    path: &Path,
    text: Box<dyn BufRead + Send>,
    spec: &SourceSpec,
) -> Result<Rows, DataError> {
    let (sender, receiver) = sync_channel::<Result<Value, String>>(256);
    std::thread::Builder::new()
        .name("hone-json-array".into())
        .spawn(move || {
            let mut de = serde_json::Deserializer::from_reader(text);
            if let Err(e) = (Elements { sender: &sender }).deserialize(&mut de) {
                let _ = sender.send(Err(e.to_string()));
            }
        })
        .map_err(|e| DataError::io(path, e))?;
    let path = owned(path);
    let spec = spec.clone();
    let receiver: Receiver<Result<Value, String>> = receiver;
    let mut index = 0u64;
    Ok(Box::new(std::iter::from_fn(move || {
        let item = receiver.recv().ok()?;
        index += 1;
        Some(match item {
            Err(message) => Err(DataError::Malformed {
                path: path.clone(),
                line: index,
                message: format!("{message}; the file needs a JSON array of objects"),
            }),
            Ok(Value::Object(object)) => row_from_object(&path, index, &spec, &object, index == 1),
            Ok(_) => Err(DataError::Malformed {
                path: path.clone(),
                line: index,
                message: "array element is not a JSON object".into(),
            }),
        })
    })))
}
