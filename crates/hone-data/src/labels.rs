//! The set of class labels of a classification task, in a stable order.

use std::collections::BTreeSet;
use std::path::Path;

use serde::{Deserialize, Serialize};

use crate::{DataError, Example};

/// Class names indexed by class id.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct LabelSet {
    names: Vec<String>,
}

impl LabelSet {
    /// A label set with the given names, in that order (id = position).
    pub fn from_names(names: Vec<String>) -> Self {
        LabelSet { names }
    }

    /// The distinct labels of `examples`: in numeric order when every label is an integer
    /// (so "0", "1", "2" keep their meaning as ids), otherwise in alphabetical order.
    pub fn from_examples(examples: &[Example]) -> Result<Self, DataError> {
        let distinct: BTreeSet<&str> = examples.iter().filter_map(|e| e.label.as_deref()).collect();
        let mut names: Vec<String> = distinct.into_iter().map(str::to_string).collect();
        let numeric: Option<Vec<i64>> = names.iter().map(|n| n.parse::<i64>().ok()).collect();
        if let Some(mut values) = numeric {
            values.sort_unstable();
            names = values.into_iter().map(|v| v.to_string()).collect();
        }
        match names.len() {
            0 => Err(DataError::SingleLabel {
                label: String::new(),
            }),
            1 => Err(DataError::SingleLabel {
                label: names.remove(0),
            }),
            _ => Ok(LabelSet { names }),
        }
    }

    /// Class names, id = index.
    pub fn names(&self) -> &[String] {
        &self.names
    }

    /// Number of classes.
    pub fn len(&self) -> usize {
        self.names.len()
    }

    /// True when there are no classes.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty()
    }

    /// The id of a label name. Integer labels also match their canonical form ("01" → "1").
    pub fn id(&self, name: &str) -> Option<u32> {
        let name = name.trim();
        if let Some(i) = self.names.iter().position(|n| n == name) {
            return Some(i as u32);
        }
        let value = name.parse::<i64>().ok()?;
        self.names
            .iter()
            .position(|n| n.parse::<i64>().ok() == Some(value))
            .map(|i| i as u32)
    }

    /// The class ids of labeled examples; an unknown label is an error naming its line.
    pub fn ids_for(&self, path: &Path, examples: &[Example]) -> Result<Vec<u32>, DataError> {
        examples
            .iter()
            .map(|e| {
                let label = e.label.as_deref().unwrap_or("");
                self.id(label).ok_or_else(|| DataError::UnseenLabel {
                    path: path.to_path_buf(),
                    line: e.line,
                    label: label.to_string(),
                    known: self.names.join(", "),
                })
            })
            .collect()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ex(label: &str) -> Example {
        Example {
            line: 2,
            text: "t".into(),
            text_pair: None,
            label: Some(label.into()),
            ..Default::default()
        }
    }

    #[test]
    fn integer_labels_sort_numerically() {
        let set = LabelSet::from_examples(&[ex("10"), ex("2"), ex("1")]).unwrap();
        assert_eq!(set.names(), ["1", "2", "10"]);
        assert_eq!(set.id("10"), Some(2));
        assert_eq!(set.id("02"), Some(1));
    }

    #[test]
    fn text_labels_sort_alphabetically_and_unknown_is_an_error() {
        let set = LabelSet::from_examples(&[ex("pos"), ex("neg"), ex("pos")]).unwrap();
        assert_eq!(set.names(), ["neg", "pos"]);
        let err = set.ids_for(Path::new("v.tsv"), &[ex("meh")]).unwrap_err();
        assert!(err.to_string().contains("label 'meh'"), "{err}");
    }

    #[test]
    fn one_label_is_not_a_task() {
        let err = LabelSet::from_examples(&[ex("a"), ex("a")]).unwrap_err();
        assert!(matches!(err, DataError::SingleLabel { .. }));
    }
}
