//! Accuracy per slice of a labeled file, so gaps between groups show: a slice is the texts a
//! regular expression matches (`--slice short='^\S+( \S+){0,4}$'`) or one value of a column
//! (`--slice-column source`).

use serde::Serialize;

use crate::AppError;

/// A named slice: the texts `pattern` matches.
#[derive(Debug, Clone)]
pub struct SliceRule {
    pub name: String,
    pattern: regex::Regex,
}

impl std::str::FromStr for SliceRule {
    type Err = String;

    /// `NAME=REGEX`.
    fn from_str(s: &str) -> Result<Self, String> {
        let (name, pattern) = s
            .split_once('=')
            .filter(|(n, p)| !n.trim().is_empty() && !p.is_empty())
            .ok_or_else(|| format!("a slice is NAME=REGEX, got '{s}'"))?;
        let pattern = regex::Regex::new(pattern)
            .map_err(|e| format!("the slice '{name}' is not a regular expression: {e}"))?;
        Ok(SliceRule {
            name: name.trim().to_string(),
            pattern,
        })
    }
}

/// One slice's accuracy.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SliceScore {
    pub name: String,
    pub examples: usize,
    /// `None` for an empty slice.
    pub accuracy: Option<f64>,
}

/// Accuracy on every example, on each rule's matches and on each `groups` value (one per
/// example, from a column), given gold labels and predictions in the same order.
pub fn slice_accuracy(
    texts: &[String],
    gold: &[String],
    predicted: &[String],
    rules: &[SliceRule],
    groups: Option<(&str, &[String])>,
) -> Result<Vec<SliceScore>, AppError> {
    if gold.len() != texts.len() || predicted.len() != texts.len() {
        return Err(AppError::Invalid(
            "slices need a label and a prediction for every text".into(),
        ));
    }
    let score = |name: String, members: &[usize]| SliceScore {
        name,
        examples: members.len(),
        accuracy: (!members.is_empty()).then(|| {
            members.iter().filter(|&&i| gold[i] == predicted[i]).count() as f64
                / members.len() as f64
        }),
    };
    let all: Vec<usize> = (0..texts.len()).collect();
    let mut out = vec![score("all".into(), &all)];
    for rule in rules {
        let members: Vec<usize> = all
            .iter()
            .copied()
            .filter(|&i| rule.pattern.is_match(&texts[i]))
            .collect();
        out.push(score(rule.name.clone(), &members));
    }
    if let Some((column, values)) = groups {
        let mut names: Vec<&String> = values.iter().collect();
        names.sort();
        names.dedup();
        for value in names {
            let members: Vec<usize> = all
                .iter()
                .copied()
                .filter(|&i| &values[i] == value)
                .collect();
            out.push(score(format!("{column}={value}"), &members));
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slices_score_their_members_only() {
        let texts: Vec<String> = [
            "short one",
            "a much longer text here",
            "tiny",
            "another long text of words",
        ]
        .map(String::from)
        .to_vec();
        let gold: Vec<String> = ["a", "b", "a", "b"].map(String::from).to_vec();
        let predicted: Vec<String> = ["a", "a", "a", "b"].map(String::from).to_vec();
        let rule: SliceRule = r"short=^\S+( \S+)?$".parse().unwrap();
        let sources: Vec<String> = ["x", "y", "x", "y"].map(String::from).to_vec();
        let out = slice_accuracy(
            &texts,
            &gold,
            &predicted,
            &[rule],
            Some(("source", &sources)),
        )
        .unwrap();
        let by: Vec<(&str, usize, Option<f64>)> = out
            .iter()
            .map(|s| (s.name.as_str(), s.examples, s.accuracy))
            .collect();
        assert_eq!(
            by,
            [
                ("all", 4, Some(0.75)),
                ("short", 2, Some(1.0)),
                ("source=x", 2, Some(1.0)),
                ("source=y", 2, Some(0.5)),
            ]
        );
        assert!("noequals".parse::<SliceRule>().is_err());
        assert!("bad=(".parse::<SliceRule>().is_err());
    }
}
