//! Datasets, their examples and labels.

use std::collections::{BTreeMap, BTreeSet};

use rusqlite::{params, OptionalExtension, Transaction};
use serde::{Deserialize, Serialize};

use crate::splits::Part;
use crate::{Result, Store, StoreError};

/// What a dataset is for.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Task {
    /// One label per text (or text pair).
    Classification,
    /// One tag per token (named entities).
    TokenClassification,
}

impl Task {
    /// The name stored in the database.
    pub fn as_str(self) -> &'static str {
        match self {
            Task::Classification => "classification",
            Task::TokenClassification => "token_classification",
        }
    }

    fn parse(s: &str) -> Result<Self> {
        match s {
            "classification" => Ok(Task::Classification),
            "token_classification" => Ok(Task::TokenClassification),
            other => Err(StoreError::Invalid(format!("unknown task '{other}'"))),
        }
    }
}

/// A dataset to create.
#[derive(Debug, Clone)]
pub struct NewDataset {
    pub name: String,
    pub task: Task,
    /// Where the rows came from (a file path).
    pub source: String,
    /// csv, tsv, jsonl, parquet, conll.
    pub format: String,
    /// The column mapping used, as JSON.
    pub columns: serde_json::Value,
    /// Class names in a chosen order (a label-names file); otherwise labels are ordered like
    /// the engine's `LabelSet` (numeric when all are integers, else alphabetical).
    pub label_names: Option<Vec<String>>,
}

/// One example to store.
#[derive(Debug, Clone, PartialEq, Default)]
pub struct NewExample {
    pub source_line: Option<u64>,
    pub text: String,
    pub text_pair: Option<String>,
    /// Tokens of a token-classification example.
    pub tokens: Option<Vec<String>>,
    /// A class name, or one tag per token; `None` for unlabeled rows.
    pub label: Option<Label>,
    /// The split part the source assigned, if any.
    pub given_part: Option<Part>,
}

/// A label: one class name or one tag per token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(untagged)]
pub enum Label {
    Class(String),
    Tags(Vec<String>),
}

impl Label {
    fn to_column(&self) -> Result<String> {
        Ok(match self {
            Label::Class(c) => c.clone(),
            Label::Tags(t) => serde_json::to_string(t)?,
        })
    }

    fn names(&self) -> Vec<&str> {
        match self {
            Label::Class(c) => vec![c.as_str()],
            Label::Tags(t) => t.iter().map(String::as_str).collect(),
        }
    }
}

/// A stored example with its current label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredExample {
    pub id: i64,
    pub position: i64,
    pub source_line: Option<i64>,
    pub text: String,
    pub text_pair: Option<String>,
    pub tokens: Option<Vec<String>>,
    pub label: Option<Label>,
    pub given_part: Option<Part>,
}

/// A summary of a dataset.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DatasetInfo {
    pub id: i64,
    pub name: String,
    pub task: Task,
    pub source: String,
    pub format: String,
    pub columns: serde_json::Value,
    pub fingerprint: String,
    pub created_at: String,
    pub rows: i64,
    pub labeled: i64,
    /// Class (or tag) names, id = position.
    pub label_names: Vec<String>,
    /// Examples per class (classification) or tokens per tag.
    pub label_counts: BTreeMap<String, i64>,
    pub warnings: Vec<String>,
    /// Names of the stored splits; `given` first when the source files assigned parts.
    pub splits: Vec<String>,
}

/// Which examples to list.
#[derive(Debug, Clone, Default)]
pub struct ExampleFilter {
    /// Only labeled (Some(true)) or unlabeled (Some(false)) examples.
    pub labeled: Option<bool>,
    /// Only examples in this part of a split (split id, part).
    pub part: Option<(i64, Part)>,
    /// Only examples whose text contains this.
    pub text_contains: Option<String>,
    pub offset: i64,
    pub limit: Option<i64>,
}

/// One change of an example's label.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LabelChange {
    pub previous: Option<String>,
    pub label: Option<String>,
    pub author: String,
    pub changed_at: String,
}

/// Orders label names as the engine does: numerically when all are integers.
pub fn order_labels(names: BTreeSet<String>) -> Vec<String> {
    let mut names: Vec<String> = names.into_iter().collect();
    let numeric: Option<Vec<i64>> = names.iter().map(|n| n.parse::<i64>().ok()).collect();
    if let Some(mut values) = numeric {
        values.sort_unstable();
        values.dedup();
        names = values.into_iter().map(|v| v.to_string()).collect();
    }
    names
}

/// An import in progress: one transaction. Rows are added one by one (streaming);
/// [`Import::finish`] commits, dropping it rolls everything back.
pub struct Import<'a> {
    tx: Transaction<'a>,
    dataset_id: i64,
    task: Task,
    position: i64,
    labeled: i64,
    seen_labels: BTreeSet<String>,
    fixed_labels: Option<Vec<String>>,
}

impl Import<'_> {
    /// The id the dataset will have.
    pub fn dataset_id(&self) -> i64 {
        self.dataset_id
    }

    /// Rows added so far.
    pub fn rows(&self) -> i64 {
        self.position
    }

    /// Adds one example.
    pub fn add(&mut self, ex: &NewExample) -> Result<()> {
        let label = ex.label.as_ref().map(Label::to_column).transpose()?;
        if let Some(l) = &ex.label {
            if let (Some(fixed), Label::Class(c)) = (&self.fixed_labels, l) {
                if !fixed.contains(c) {
                    return Err(StoreError::Invalid(format!(
                        "line {}: label '{c}' is not in the given label names ({})",
                        ex.source_line.unwrap_or(0),
                        fixed.join(", ")
                    )));
                }
            }
            for n in l.names() {
                if !self.seen_labels.contains(n) {
                    self.seen_labels.insert(n.to_string());
                }
            }
            self.labeled += 1;
        }
        let tokens = ex.tokens.as_ref().map(serde_json::to_string).transpose()?;
        let mut stmt = self.tx.prepare_cached(
            "INSERT INTO examples (dataset_id, position, source_line, text, text_pair, tokens_json, label, given_part)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
        )?;
        stmt.execute(params![
            self.dataset_id,
            self.position,
            ex.source_line.map(|l| l as i64),
            ex.text,
            ex.text_pair,
            tokens,
            label,
            ex.given_part.map(Part::as_str),
        ])?;
        self.position += 1;
        Ok(())
    }

    /// Records the label names and the fingerprint, and commits. Returns the dataset id.
    pub fn finish(self, fingerprint: &str, warnings: &[String]) -> Result<i64> {
        if self.position == 0 {
            return Err(StoreError::Invalid(
                "the file has no examples; nothing was imported".into(),
            ));
        }
        let names = match self.fixed_labels {
            Some(fixed) => fixed,
            None if self.task == Task::Classification => order_labels(self.seen_labels),
            None => self.seen_labels.into_iter().collect(),
        };
        {
            let mut stmt = self.tx.prepare_cached(
                "INSERT OR IGNORE INTO label_names (dataset_id, label_id, name) VALUES (?1, ?2, ?3)",
            )?;
            let start: i64 = self.tx.query_row(
                "SELECT COUNT(*) FROM label_names WHERE dataset_id = ?1",
                [self.dataset_id],
                |r| r.get(0),
            )?;
            let mut next = start;
            for name in names {
                let known: Option<i64> = self
                    .tx
                    .query_row(
                        "SELECT label_id FROM label_names WHERE dataset_id = ?1 AND name = ?2",
                        params![self.dataset_id, name],
                        |r| r.get(0),
                    )
                    .optional()?;
                if known.is_none() {
                    stmt.execute(params![self.dataset_id, next, name])?;
                    next += 1;
                }
            }
        }
        self.tx.execute(
            "UPDATE datasets SET fingerprint = ?2, warnings_json = ?3 WHERE id = ?1",
            params![
                self.dataset_id,
                fingerprint,
                serde_json::to_string(warnings)?
            ],
        )?;
        let id = self.dataset_id;
        self.tx.commit()?;
        Ok(id)
    }
}

/// `SELECT {columns} FROM examples e …` with the joins and conditions of `filter` (not its
/// offset and limit), and the query's arguments.
fn filtered(
    columns: &str,
    dataset_id: i64,
    filter: &ExampleFilter,
) -> (String, Vec<rusqlite::types::Value>) {
    let mut sql = format!("{columns} FROM examples e");
    let mut args: Vec<rusqlite::types::Value> = vec![dataset_id.into()];
    if let Some((split, part)) = filter.part {
        sql.push_str(
            " JOIN split_members m ON m.example_id = e.id AND m.split_id = ?2 AND m.part = ?3",
        );
        args.push(split.into());
        args.push(part.as_str().to_string().into());
    }
    sql.push_str(" WHERE e.dataset_id = ?1");
    match filter.labeled {
        Some(true) => sql.push_str(" AND e.label IS NOT NULL"),
        Some(false) => sql.push_str(" AND e.label IS NULL"),
        None => {}
    }
    if let Some(text) = &filter.text_contains {
        args.push(format!("%{text}%").into());
        sql.push_str(&format!(" AND e.text LIKE ?{}", args.len()));
    }
    (sql, args)
}

fn row_to_example(
    r: &rusqlite::Row,
) -> rusqlite::Result<(StoredExample, Option<String>, Option<String>)> {
    Ok((
        StoredExample {
            id: r.get(0)?,
            position: r.get(1)?,
            source_line: r.get(2)?,
            text: r.get(3)?,
            text_pair: r.get(4)?,
            tokens: None,
            label: None,
            given_part: r.get::<_, Option<String>>(7)?.and_then(|p| Part::parse(&p)),
        },
        r.get(5)?,
        r.get(6)?,
    ))
}

impl Store {
    /// Starts importing a new dataset (`append` = false) or adding rows to an existing one.
    pub fn begin_import(&mut self, new: &NewDataset, append: bool) -> Result<Import<'_>> {
        let tx = self.write_transaction()?;
        let existing: Option<(i64, String)> = tx
            .query_row(
                "SELECT id, task FROM datasets WHERE name = ?1",
                [&new.name],
                |r| Ok((r.get(0)?, r.get(1)?)),
            )
            .optional()?;
        let (dataset_id, position) = match (existing, append) {
            (Some(_), false) => return Err(StoreError::DatasetExists(new.name.clone())),
            (Some((id, task)), true) => {
                if Task::parse(&task)? != new.task {
                    return Err(StoreError::Invalid(format!(
                        "dataset '{}' holds {task} examples; cannot append {} rows",
                        new.name,
                        new.task.as_str()
                    )));
                }
                let next: i64 = tx.query_row(
                    "SELECT COALESCE(MAX(position) + 1, 0) FROM examples WHERE dataset_id = ?1",
                    [id],
                    |r| r.get(0),
                )?;
                (id, next)
            }
            (None, _) => {
                tx.execute(
                    "INSERT INTO datasets (name, task, source, format, columns_json, fingerprint)
                     VALUES (?1, ?2, ?3, ?4, ?5, '')",
                    params![
                        new.name,
                        new.task.as_str(),
                        new.source,
                        new.format,
                        new.columns.to_string()
                    ],
                )?;
                (tx.last_insert_rowid(), 0)
            }
        };
        Ok(Import {
            tx,
            dataset_id,
            task: new.task,
            position,
            labeled: 0,
            seen_labels: BTreeSet::new(),
            fixed_labels: new.label_names.clone(),
        })
    }

    fn dataset_id(&self, name: &str) -> Result<i64> {
        self.conn
            .query_row("SELECT id FROM datasets WHERE name = ?1", [name], |r| {
                r.get(0)
            })
            .optional()?
            .ok_or_else(|| StoreError::NoDataset(name.to_string()))
    }

    /// All datasets, newest first.
    pub fn datasets(&self) -> Result<Vec<DatasetInfo>> {
        let names: Vec<String> = self
            .conn
            .prepare("SELECT name FROM datasets ORDER BY id DESC")?
            .query_map([], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        names.iter().map(|n| self.dataset(n)).collect()
    }

    /// The summary of the dataset called `name`.
    pub fn dataset(&self, name: &str) -> Result<DatasetInfo> {
        let id = self.dataset_id(name)?;
        let (task, source, format, columns, fingerprint, created_at, warnings): (
            String,
            String,
            String,
            String,
            String,
            String,
            String,
        ) = self.conn.query_row(
            "SELECT task, source, format, columns_json, fingerprint, created_at, warnings_json
             FROM datasets WHERE id = ?1",
            [id],
            |r| {
                Ok((
                    r.get(0)?,
                    r.get(1)?,
                    r.get(2)?,
                    r.get(3)?,
                    r.get(4)?,
                    r.get(5)?,
                    r.get(6)?,
                ))
            },
        )?;
        let task = Task::parse(&task)?;
        let (rows, labeled): (i64, i64) = self.conn.query_row(
            "SELECT COUNT(*), COUNT(label) FROM examples WHERE dataset_id = ?1",
            [id],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        let label_names = self.label_names(id)?;
        let mut label_counts = BTreeMap::new();
        let mut stmt = self.conn.prepare(
            "SELECT label, COUNT(*) FROM examples WHERE dataset_id = ?1 AND label IS NOT NULL GROUP BY label",
        )?;
        let groups = stmt.query_map([id], |r| Ok((r.get::<_, String>(0)?, r.get::<_, i64>(1)?)))?;
        for g in groups {
            let (label, n) = g?;
            match task {
                Task::Classification => {
                    *label_counts.entry(label).or_insert(0) += n;
                }
                Task::TokenClassification => {
                    let tags: Vec<String> = serde_json::from_str(&label)?;
                    for t in tags {
                        *label_counts.entry(t).or_insert(0) += n;
                    }
                }
            }
        }
        let mut splits: Vec<String> = self
            .conn
            .prepare("SELECT name FROM splits WHERE dataset_id = ?1 ORDER BY id")?
            .query_map([id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?;
        let given: bool = self.conn.query_row(
            "SELECT EXISTS (SELECT 1 FROM examples WHERE dataset_id = ?1 AND given_part IS NOT NULL)",
            [id],
            |r| r.get(0),
        )?;
        if given {
            splits.insert(0, "given".into());
        }
        Ok(DatasetInfo {
            id,
            name: name.to_string(),
            task,
            source,
            format,
            columns: serde_json::from_str(&columns)?,
            fingerprint,
            created_at,
            rows,
            labeled,
            label_names,
            label_counts,
            warnings: serde_json::from_str(&warnings)?,
            splits,
        })
    }

    /// Class names of a dataset, id = position.
    pub fn label_names(&self, dataset_id: i64) -> Result<Vec<String>> {
        Ok(self
            .conn
            .prepare("SELECT name FROM label_names WHERE dataset_id = ?1 ORDER BY label_id")?
            .query_map([dataset_id], |r| r.get(0))?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Examples of a dataset in position order.
    pub fn examples(&self, dataset_id: i64, filter: &ExampleFilter) -> Result<Vec<StoredExample>> {
        let (mut sql, mut args) = filtered(
            "SELECT e.id, e.position, e.source_line, e.text, e.text_pair, e.tokens_json, e.label, e.given_part",
            dataset_id,
            filter,
        );
        sql.push_str(" ORDER BY e.position");
        args.push(filter.limit.unwrap_or(-1).into());
        sql.push_str(&format!(" LIMIT ?{}", args.len()));
        args.push(filter.offset.into());
        sql.push_str(&format!(" OFFSET ?{}", args.len()));
        let mut stmt = self.conn.prepare(&sql)?;
        let rows = stmt.query_map(rusqlite::params_from_iter(args), row_to_example)?;
        let task_tokens = |json: Option<String>| -> Result<Option<Vec<String>>> {
            Ok(json.map(|j| serde_json::from_str(&j)).transpose()?)
        };
        let mut out = Vec::new();
        for row in rows {
            let (mut ex, tokens, label) = row?;
            ex.tokens = task_tokens(tokens)?;
            ex.label = match (label, &ex.tokens) {
                (None, _) => None,
                (Some(l), Some(_)) => Some(Label::Tags(serde_json::from_str(&l)?)),
                (Some(l), None) => Some(Label::Class(l)),
            };
            out.push(ex);
        }
        Ok(out)
    }

    /// How many examples of a dataset match `filter` (its offset and limit aside).
    pub fn count_examples(&self, dataset_id: i64, filter: &ExampleFilter) -> Result<i64> {
        let (sql, args) = filtered("SELECT COUNT(*)", dataset_id, filter);
        Ok(self
            .conn
            .query_row(&sql, rusqlite::params_from_iter(args), |r| r.get(0))?)
    }

    /// Sets (or clears, with `None`) the label of an example, keeping the change in the history.
    pub fn set_label(
        &mut self,
        example_id: i64,
        label: Option<&Label>,
        author: &str,
    ) -> Result<()> {
        let tx = self.write_transaction()?;
        let (dataset_id, previous, tokens): (i64, Option<String>, Option<String>) = tx
            .query_row(
                "SELECT dataset_id, label, tokens_json FROM examples WHERE id = ?1",
                [example_id],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?
            .ok_or(StoreError::NoExample(example_id))?;
        let tokens: Option<Vec<String>> = tokens.map(|t| serde_json::from_str(&t)).transpose()?;
        match (label, &tokens) {
            (Some(Label::Tags(tags)), Some(tokens)) if tags.len() != tokens.len() => {
                return Err(StoreError::Invalid(format!(
                    "example {example_id} has {} tokens but {} tags were given",
                    tokens.len(),
                    tags.len()
                )))
            }
            (Some(Label::Tags(_)), None) => {
                return Err(StoreError::Invalid(format!(
                    "example {example_id} is a text, not tokens: give it a class, not tags"
                )))
            }
            (Some(Label::Class(_)), Some(_)) => {
                return Err(StoreError::Invalid(format!(
                    "example {example_id} is a token sequence: give it one tag per token"
                )))
            }
            _ => {}
        }
        let value = label.map(Label::to_column).transpose()?;
        tx.execute(
            "UPDATE examples SET label = ?2 WHERE id = ?1",
            params![example_id, value],
        )?;
        tx.execute(
            "INSERT INTO label_history (example_id, previous, label, author) VALUES (?1, ?2, ?3, ?4)",
            params![example_id, previous, value, author],
        )?;
        if let Some(label) = label {
            for name in label.names() {
                tx.execute(
                    "INSERT OR IGNORE INTO label_names (dataset_id, label_id, name)
                     SELECT ?1, COALESCE(MAX(label_id) + 1, 0), ?2 FROM label_names WHERE dataset_id = ?1",
                    params![dataset_id, name],
                )?;
            }
        }
        tx.commit()?;
        Ok(())
    }

    /// Renames class `old` of a text-classification dataset to `new` everywhere: its place in
    /// the class list (its id stays), and every example labeled with it (each change kept in
    /// the label history). Returns how many examples changed.
    pub fn rename_label(&mut self, dataset: &str, old: &str, new: &str) -> Result<u64> {
        let info = self.dataset(dataset)?;
        let new = new.trim();
        if info.task == Task::TokenClassification {
            return Err(StoreError::Invalid(format!(
                "'{dataset}' has entity tags; tags cannot be renamed yet"
            )));
        }
        if new.is_empty() {
            return Err(StoreError::Invalid("a class name cannot be empty".into()));
        }
        if new != old && info.label_names.iter().any(|n| n == new) {
            return Err(StoreError::Invalid(format!(
                "'{dataset}' already has a class named '{new}'; choose another name"
            )));
        }
        let tx = self.write_transaction()?;
        let renamed = tx.execute(
            "UPDATE label_names SET name = ?3 WHERE dataset_id = ?1 AND name = ?2",
            params![info.id, old, new],
        )?;
        if renamed == 0 {
            return Err(StoreError::Invalid(format!(
                "'{dataset}' has no class named '{old}' (its classes: {})",
                info.label_names.join(", ")
            )));
        }
        tx.execute(
            "INSERT INTO label_history (example_id, previous, label, author)
             SELECT id, label, ?3, 'rename' FROM examples WHERE dataset_id = ?1 AND label = ?2",
            params![info.id, old, new],
        )?;
        let changed = tx.execute(
            "UPDATE examples SET label = ?3 WHERE dataset_id = ?1 AND label = ?2",
            params![info.id, old, new],
        )?;
        tx.commit()?;
        Ok(changed as u64)
    }

    /// The label changes of an example, oldest first.
    pub fn label_history(&self, example_id: i64) -> Result<Vec<LabelChange>> {
        Ok(self
            .conn
            .prepare(
                "SELECT previous, label, author, changed_at FROM label_history WHERE example_id = ?1 ORDER BY id",
            )?
            .query_map([example_id], |r| {
                Ok(LabelChange {
                    previous: r.get(0)?,
                    label: r.get(1)?,
                    author: r.get(2)?,
                    changed_at: r.get(3)?,
                })
            })?
            .collect::<rusqlite::Result<_>>()?)
    }

    /// Deletes a dataset with its examples, labels and splits (runs keep their records).
    pub fn delete_dataset(&mut self, name: &str) -> Result<()> {
        let id = self.dataset_id(name)?;
        self.conn
            .execute("DELETE FROM datasets WHERE id = ?1", [id])?;
        Ok(())
    }
}
