//! Behavioral tests of a text classifier (CheckList: Ribeiro et al., 2020), from a suite file
//! the user edits (TOML): minimum-functionality tests (texts, or a template with placeholders,
//! that must get a class), invariance tests (a perturbation must not change the prediction)
//! and directional tests (a change to each text must move a class's probability one way).
//! The report gives each test's failure rate with failing examples, a robustness score (the
//! share of perturbed texts whose prediction stayed) and, on a labeled file, accuracy per slice.

mod perturb;
mod slices;

use std::collections::{BTreeMap, HashMap};

use hone_engine::rng::HoneRng;
use serde::{Deserialize, Serialize};

pub use perturb::Perturbation;
pub use slices::{slice_accuracy, SliceRule, SliceScore};

use crate::predict::{FineTunedModel, Predictions};
use crate::AppError;

/// A suite file: its tests in order.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Suite {
    #[serde(default)]
    pub name: Option<String>,
    /// The seed of the perturbations.
    #[serde(default)]
    pub seed: u64,
    #[serde(rename = "test", default)]
    pub tests: Vec<TestSpec>,
}

/// Where a test's texts come from: listed in the suite, or (left out) the `--data` file's.
#[derive(Debug, Clone, PartialEq, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case", deny_unknown_fields)]
pub enum TestSpec {
    /// Minimum functionality: every text (the listed ones, and the template filled with
    /// every combination of its placeholders' values) must get the class `expect`.
    Mft {
        name: String,
        #[serde(default)]
        texts: Vec<String>,
        #[serde(default)]
        template: Option<String>,
        #[serde(default)]
        fill: BTreeMap<String, Vec<String>>,
        expect: String,
    },
    /// Invariance: each text perturbed must keep its predicted class.
    Invariance {
        name: String,
        perturb: Perturbation,
        #[serde(default)]
        texts: Vec<String>,
    },
    /// Directional: with `append` after (or `prepend` before) each text, the probability of
    /// `class` must not move against `direction` by more than `tolerance`.
    Directional {
        name: String,
        #[serde(default)]
        texts: Vec<String>,
        #[serde(default)]
        append: Option<String>,
        #[serde(default)]
        prepend: Option<String>,
        class: String,
        direction: Direction,
        #[serde(default)]
        tolerance: f64,
    },
}

/// Which way a directional test expects a probability to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Direction {
    Up,
    Down,
}

impl TestSpec {
    fn name(&self) -> &str {
        match self {
            TestSpec::Mft { name, .. }
            | TestSpec::Invariance { name, .. }
            | TestSpec::Directional { name, .. } => name,
        }
    }

    fn kind(&self) -> &'static str {
        match self {
            TestSpec::Mft { .. } => "mft",
            TestSpec::Invariance { .. } => "invariance",
            TestSpec::Directional { .. } => "directional",
        }
    }
}

/// One failing example: the text (and what it became), what was expected and what came.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct Failure {
    pub text: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    pub changed: Option<String>,
    pub expected: String,
    pub got: String,
}

/// One test's result.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct TestResult {
    pub name: String,
    pub kind: &'static str,
    /// Examples tested (texts a perturbation could not change are left out).
    pub examples: usize,
    pub failures: usize,
    pub failure_rate: f64,
    /// Up to [`FAILURES_SHOWN`] failing examples.
    pub failing: Vec<Failure>,
}

/// A suite's results.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct SuiteReport {
    pub suite: Option<String>,
    pub tests: Vec<TestResult>,
    /// The share of perturbed texts (over every invariance test) whose prediction stayed;
    /// `None` without invariance tests.
    pub robustness: Option<f64>,
    /// Accuracy per slice of the labeled data, when slices were asked for.
    pub slices: Vec<SliceScore>,
}

/// Failing examples kept per test.
pub const FAILURES_SHOWN: usize = 5;

/// Texts a test reads from the data file at most.
pub const DATA_TEXTS: usize = 500;

impl Suite {
    /// Parses a suite file's text; `path` names it in errors.
    pub fn parse(text: &str, path: &std::path::Path) -> Result<Self, AppError> {
        let suite: Suite = toml::from_str(text)
            .map_err(|e| AppError::Invalid(format!("{}: not a test suite: {e}", path.display())))?;
        if suite.tests.is_empty() {
            return Err(AppError::Invalid(format!(
                "{}: the suite has no [[test]]",
                path.display()
            )));
        }
        Ok(suite)
    }

    /// A starter suite for a classifier with `labels`: an invariance test of each
    /// perturbation on the data's texts, and commented examples of the other kinds.
    pub fn starter(labels: &[String]) -> String {
        let first = labels.first().map_or("positive", String::as_str);
        let last = labels.last().map_or("negative", String::as_str);
        let mut out = format!(
            "# Behavioral tests for `hone test --model DIR --suite THIS_FILE --data FILE`.\n\
             # Tests without `texts` use the data file's texts (the first {DATA_TEXTS}; in the\n\
             # app, the run's held-out examples).\n\
             # Classes of this model: {}\n\nname = \"starter\"\nseed = 0\n",
            labels.join(", ")
        );
        for p in Perturbation::ALL {
            out.push_str(&format!(
                "\n[[test]]\nkind = \"invariance\"\nname = \"{} keeps the prediction\"\nperturb = \"{}\"\n",
                p.describe(),
                p.name()
            ));
        }
        out.push_str(&format!(
            "\n# Minimum functionality: every text must get the class.\n\
             # [[test]]\n# kind = \"mft\"\n# name = \"plain {first} statements\"\n\
             # template = \"The {{thing}} was {{word}}.\"\n# expect = \"{first}\"\n\
             # fill = {{ thing = [\"film\", \"meal\"], word = [\"great\", \"lovely\"] }}\n\
             \n# Directional: the change must not lower (up) or raise (down) the class's\n\
             # probability by more than the tolerance.\n\
             # [[test]]\n# kind = \"directional\"\n# name = \"a complaint lowers {first}\"\n\
             # append = \"But the ending was awful.\"\n# class = \"{first}\"\n# direction = \"down\"\n\
             # tolerance = 0.05\n# texts = [\"I liked the film.\", \"The food was good.\"]\n\
             \n# Another class: {last}\n"
        ));
        out
    }
}

/// Fills `template`'s `{placeholders}` with every combination of their values.
fn expand(template: &str, fill: &BTreeMap<String, Vec<String>>) -> Result<Vec<String>, AppError> {
    let mut out = vec![template.to_string()];
    for (key, values) in fill {
        let slot = format!("{{{key}}}");
        if !template.contains(&slot) {
            return Err(AppError::Invalid(format!(
                "the template '{template}' has no {slot} to fill"
            )));
        }
        let slot = &slot;
        out = out
            .iter()
            .flat_map(|t| values.iter().map(move |v| t.replace(slot, v)))
            .collect();
    }
    if let Some(open) = out.iter().find(|t| t.contains('{') && t.contains('}')) {
        return Err(AppError::Invalid(format!(
            "'{open}' still has a placeholder: give its values under fill"
        )));
    }
    Ok(out)
}

/// A classifier's label and probabilities.
type Classified = (String, Vec<f64>);

/// A classifier that remembers its answers: the data texts the tests and the slices share
/// (and texts a perturbation left unchanged) are classified once.
struct Classifier<'m> {
    model: &'m FineTunedModel,
    seen: HashMap<String, Classified>,
}

impl<'m> Classifier<'m> {
    fn new(model: &'m FineTunedModel) -> Self {
        Classifier {
            model,
            seen: HashMap::new(),
        }
    }

    /// The predicted class of each text (what slices are scored on).
    fn labels(&mut self, texts: &[String]) -> Result<Vec<String>, AppError> {
        Ok(self
            .classify(texts)?
            .into_iter()
            .map(|(label, _)| label)
            .collect())
    }

    /// The label and probabilities of each text.
    fn classify(&mut self, texts: &[String]) -> Result<Vec<Classified>, AppError> {
        let mut new: Vec<String> = texts
            .iter()
            .filter(|t| !self.seen.contains_key(*t))
            .cloned()
            .collect();
        new.sort();
        new.dedup();
        if !new.is_empty() {
            match self.model.predict(&new, None, 32)? {
                Predictions::SequenceClassification(p) => self.seen.extend(
                    new.into_iter()
                        .zip(p.into_iter().map(|p| (p.label, p.probabilities))),
                ),
                _ => {
                    return Err(AppError::Invalid(
                        "behavioral tests run on text classifiers for now".into(),
                    ))
                }
            }
        }
        texts
            .iter()
            .map(|t| {
                self.seen.get(t).cloned().ok_or_else(|| {
                    AppError::Invalid("the classifier gave fewer predictions than texts".into())
                })
            })
            .collect()
    }
}

fn result(spec: &TestSpec, examples: usize, failing: Vec<Failure>) -> TestResult {
    let failures = failing.len();
    TestResult {
        name: spec.name().to_string(),
        kind: spec.kind(),
        examples,
        failures,
        failure_rate: if examples == 0 {
            0.0
        } else {
            failures as f64 / examples as f64
        },
        failing: failing.into_iter().take(FAILURES_SHOWN).collect(),
    }
}

/// Runs every test of `suite` on `model`; tests without texts take `data` (the first
/// [`DATA_TEXTS`]).
pub fn run_suite(
    model: &FineTunedModel,
    suite: &Suite,
    data: &[String],
) -> Result<SuiteReport, AppError> {
    run_suite_with(&mut Classifier::new(model), suite, data)
}

fn run_suite_with(
    classifier: &mut Classifier,
    suite: &Suite,
    data: &[String],
) -> Result<SuiteReport, AppError> {
    let labels = classifier.model.labels().to_vec();
    let class_of = |name: &str| -> Result<usize, AppError> {
        labels.iter().position(|l| l == name).ok_or_else(|| {
            AppError::Invalid(format!(
                "the model has no class '{name}' (its classes: {})",
                labels.join(", ")
            ))
        })
    };
    let texts_of = |listed: &[String], name: &str| -> Result<Vec<String>, AppError> {
        if !listed.is_empty() {
            return Ok(listed.to_vec());
        }
        if data.is_empty() {
            return Err(AppError::Invalid(format!(
                "the test '{name}' lists no texts: give some, or a data file (--data)"
            )));
        }
        Ok(data.iter().take(DATA_TEXTS).cloned().collect())
    };
    let mut rng = HoneRng::new(suite.seed, 0x7e57);
    let (mut kept, mut perturbed) = (0usize, 0usize);
    let mut tests = Vec::with_capacity(suite.tests.len());
    for spec in &suite.tests {
        tests.push(match spec {
            TestSpec::Mft {
                texts,
                template,
                fill,
                expect,
                ..
            } => {
                class_of(expect)?;
                let mut all = texts.clone();
                if let Some(t) = template {
                    all.extend(expand(t, fill)?);
                }
                if all.is_empty() {
                    return Err(AppError::Invalid(format!(
                        "the test '{}' has no texts and no template",
                        spec.name()
                    )));
                }
                let got = classifier.classify(&all)?;
                let failing = all
                    .iter()
                    .zip(&got)
                    .filter(|(_, (label, _))| label != expect)
                    .map(|(text, (label, _))| Failure {
                        text: text.clone(),
                        changed: None,
                        expected: expect.clone(),
                        got: label.clone(),
                    })
                    .collect();
                result(spec, all.len(), failing)
            }
            TestSpec::Invariance { perturb, texts, .. } => {
                let texts = texts_of(texts, spec.name())?;
                let pairs: Vec<(String, String)> = texts
                    .into_iter()
                    .filter_map(|t| perturb.apply(&t, &mut rng).map(|c| (t, c)))
                    .collect();
                let (before, after): (Vec<String>, Vec<String>) = pairs.iter().cloned().unzip();
                let (a, b) = (classifier.classify(&before)?, classifier.classify(&after)?);
                let failing: Vec<Failure> = pairs
                    .iter()
                    .zip(a.iter().zip(&b))
                    .filter(|(_, (x, y))| x.0 != y.0)
                    .map(|((text, changed), (x, y))| Failure {
                        text: text.clone(),
                        changed: Some(changed.clone()),
                        expected: x.0.clone(),
                        got: y.0.clone(),
                    })
                    .collect();
                kept += pairs.len() - failing.len();
                perturbed += pairs.len();
                result(spec, pairs.len(), failing)
            }
            TestSpec::Directional {
                texts,
                append,
                prepend,
                class,
                direction,
                tolerance,
                ..
            } => {
                let c = class_of(class)?;
                if append.is_none() && prepend.is_none() {
                    return Err(AppError::Invalid(format!(
                        "the directional test '{}' needs append or prepend",
                        spec.name()
                    )));
                }
                let texts = texts_of(texts, spec.name())?;
                let changed: Vec<String> = texts
                    .iter()
                    .map(|t| {
                        let mut s = t.trim().to_string();
                        if let Some(p) = prepend {
                            s = format!("{} {s}", p.trim());
                        }
                        if let Some(a) = append {
                            s = format!("{s} {}", a.trim());
                        }
                        s
                    })
                    .collect();
                let (a, b) = (classifier.classify(&texts)?, classifier.classify(&changed)?);
                let failing = texts
                    .iter()
                    .zip(&changed)
                    .zip(a.iter().zip(&b))
                    .filter(|(_, (x, y))| {
                        let moved = y.1[c] - x.1[c];
                        match direction {
                            Direction::Up => moved < -tolerance,
                            Direction::Down => moved > *tolerance,
                        }
                    })
                    .map(|((text, changed), (x, y))| Failure {
                        text: text.clone(),
                        changed: Some(changed.clone()),
                        expected: format!(
                            "P({class}) {} from {:.3}",
                            if *direction == Direction::Up {
                                "not lower"
                            } else {
                                "not higher"
                            },
                            x.1[c]
                        ),
                        got: format!("{:.3}", y.1[c]),
                    })
                    .collect();
                result(spec, texts.len(), failing)
            }
        });
    }
    Ok(SuiteReport {
        suite: suite.name.clone(),
        tests,
        robustness: (perturbed > 0).then(|| kept as f64 / perturbed as f64),
        slices: Vec::new(),
    })
}

/// Runs the suite `suite` (a suite file's text; `name` names it in errors) on `model` with a
/// run's held-out `examples`: tests that list no texts take theirs, and `rules` score the
/// accuracy of each slice against their labels (the app's Test tab).
pub fn run_on_examples(
    model: &FineTunedModel,
    suite: &str,
    name: &std::path::Path,
    examples: &[hone_data::Example],
    rules: &[SliceRule],
) -> Result<SuiteReport, AppError> {
    let suite = Suite::parse(suite, name)?;
    let texts: Vec<String> = examples.iter().map(|e| e.text.clone()).collect();
    let mut classifier = Classifier::new(model);
    let mut report = run_suite_with(&mut classifier, &suite, &texts)?;
    let labeled: Vec<&hone_data::Example> = examples.iter().filter(|e| e.label.is_some()).collect();
    if !labeled.is_empty() {
        let texts: Vec<String> = labeled.iter().map(|e| e.text.clone()).collect();
        let gold: Vec<String> = labeled
            .iter()
            .map(|e| e.label.clone().unwrap_or_default())
            .collect();
        let predicted = classifier.labels(&texts)?;
        report.slices = slice_accuracy(&texts, &gold, &predicted, rules, None)?;
    }
    Ok(report)
}

/// A labeled (or unlabeled) file for a suite: where its texts, labels and slice values are.
#[derive(Debug, Clone)]
pub struct TestData {
    pub path: std::path::PathBuf,
    pub format: Option<hone_data::FileFormat>,
    pub text_column: String,
    pub label_column: Option<String>,
    /// A column whose values slice the data.
    pub slice_column: Option<String>,
}

/// The texts of a data file, with their labels and slice values when asked for.
struct DataRows {
    texts: Vec<String>,
    labels: Option<Vec<String>>,
    groups: Option<Vec<String>>,
}

fn read_data(data: &TestData) -> Result<DataRows, AppError> {
    let spec = hone_data::SourceSpec {
        format: data.format,
        text: Some(data.text_column.clone()),
        label: data.label_column.clone(),
        // The reader's split column reads any column's value per row.
        split: data.slice_column.clone(),
        ..Default::default()
    };
    let flags = |e: hone_data::DataError| {
        AppError::Invalid(e.to_string().replace("--split-column", "--slice-column"))
    };
    let (mut texts, mut labels, mut groups) = (Vec::new(), Vec::new(), Vec::new());
    for row in hone_data::SourceReader::open(&data.path, &spec).map_err(flags)? {
        let row = row.map_err(flags)?;
        if data.label_column.is_some() && row.label.is_none() {
            continue;
        }
        texts.push(row.text);
        labels.extend(row.label);
        groups.push(row.split.unwrap_or_default());
    }
    Ok(DataRows {
        texts,
        labels: data.label_column.is_some().then_some(labels),
        groups: data.slice_column.is_some().then_some(groups),
    })
}

/// Runs the suite file at `suite` on `model`, with `data`'s texts for tests that list none and,
/// when `data` has labels and slices are asked for (`rules`, its slice column), the accuracy
/// of every slice.
pub fn run_file(
    model: &FineTunedModel,
    suite: &std::path::Path,
    data: Option<&TestData>,
    rules: &[SliceRule],
) -> Result<SuiteReport, AppError> {
    let text = std::fs::read_to_string(suite).map_err(|e| AppError::Io {
        path: suite.to_path_buf(),
        source: e,
    })?;
    let suite = Suite::parse(&text, suite)?;
    let rows = data.map(read_data).transpose()?;
    let texts = rows.as_ref().map_or(&[][..], |r| &r.texts[..]);
    let mut classifier = Classifier::new(model);
    let mut report = run_suite_with(&mut classifier, &suite, texts)?;
    let wants_slices = !rules.is_empty() || rows.as_ref().is_some_and(|r| r.groups.is_some());
    if wants_slices {
        let rows = rows.as_ref().ok_or_else(|| {
            AppError::Invalid("slices are scored on a labeled data file: give --data".into())
        })?;
        let gold = rows.labels.as_ref().ok_or_else(|| {
            AppError::Invalid("slices are scored against labels: give --label-column".into())
        })?;
        let predicted = classifier.labels(&rows.texts)?;
        let column = data.and_then(|d| d.slice_column.as_deref()).unwrap_or("");
        report.slices = slice_accuracy(
            &rows.texts,
            gold,
            &predicted,
            rules,
            rows.groups.as_deref().map(|g| (column, g)),
        )?;
    }
    Ok(report)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn templates_fill_every_combination_and_refuse_unfilled_placeholders() {
        let fill: BTreeMap<String, Vec<String>> = [
            ("a".to_string(), vec!["x".to_string(), "y".to_string()]),
            (
                "b".to_string(),
                vec!["1".to_string(), "2".to_string(), "3".to_string()],
            ),
        ]
        .into();
        let out = expand("{a}-{b}", &fill).unwrap();
        assert_eq!(out, ["x-1", "x-2", "x-3", "y-1", "y-2", "y-3"]);
        assert!(expand("{a} {c}", &fill).is_err());
        assert!(expand("{a}", &fill).is_err(), "b has no slot");
    }

    #[test]
    fn the_starter_suite_parses_and_names_the_classes() {
        let labels = vec!["negative".to_string(), "positive".to_string()];
        let text = Suite::starter(&labels);
        assert!(text.contains("negative, positive"));
        let suite = Suite::parse(&text, std::path::Path::new("starter.toml")).unwrap();
        assert_eq!(suite.tests.len(), Perturbation::ALL.len());
        // The commented examples parse once uncommented.
        let open: String = text
            .lines()
            .map(|l| {
                l.strip_prefix("# ")
                    .filter(|r| r.starts_with("[[test]]") || r.contains(" = "))
                    .unwrap_or(l)
            })
            .collect::<Vec<_>>()
            .join("\n");
        let all = Suite::parse(&open, std::path::Path::new("open.toml")).unwrap();
        assert_eq!(all.tests.len(), Perturbation::ALL.len() + 2);
        assert!(Suite::parse("name = 'x'", std::path::Path::new("e.toml")).is_err());
        assert!(Suite::parse(
            "[[test]]\nkind = 'bogus'\nname = 'x'",
            std::path::Path::new("e.toml")
        )
        .is_err());
    }
}
