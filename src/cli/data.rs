//! `hone data`: datasets in Hone's database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use anyhow::Context;
use clap::{Args, Subcommand};
use hone_app::types::SourceSpec;
use hone_app::types::{DatasetInfo, ExampleFilter, Label, Part};
use hone_app::{App, ImportRequest};
use indicatif::{ProgressBar, ProgressStyle};

#[derive(Subcommand)]
pub enum DataCommand {
    /// Import a CSV, TSV, JSONL, JSON, Parquet, CoNLL or `LABEL text` file (one transaction).
    Import(ImportArgs),
    /// List the stored datasets.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Show a dataset: size, labels, splits and some examples.
    Show {
        name: String,
        /// How many examples to show.
        #[arg(long, default_value_t = 10)]
        limit: i64,
        /// Show unlabeled examples only.
        #[arg(long)]
        unlabeled: bool,
        #[arg(long)]
        json: bool,
    },
    /// Make a seeded, stratified train / validation / test split and store it.
    Split {
        dataset: String,
        /// The split's name.
        #[arg(long, default_value = "default")]
        name: String,
        #[arg(long, default_value_t = 0.1)]
        valid: f64,
        #[arg(long, default_value_t = 0.1)]
        test: f64,
        #[arg(long, default_value_t = 42)]
        seed: u64,
        #[arg(long)]
        json: bool,
    },
    /// Write a dataset (or one part of a split) to a file: .csv, .tsv, .jsonl (or .conll for
    /// token tags).
    Export {
        dataset: String,
        #[arg(long, value_name = "FILE")]
        out: PathBuf,
        /// Only this split's examples…
        #[arg(long, requires = "part")]
        split: Option<String>,
        /// …in this part: train, validation or test.
        #[arg(long, requires = "split")]
        part: Option<String>,
    },
    /// Delete a dataset with its examples, labels and splits.
    Delete { name: String },
    /// Name a dataset's classes (their ids stay): `0=negative,1=positive`. Every view, new
    /// runs and their exports (id2label) use the new names.
    RenameClasses {
        dataset: String,
        /// OLD=NEW pairs, comma-separated.
        #[arg(value_name = "OLD=NEW,…")]
        map: String,
    },
    /// Pre-label the unlabeled examples with a finished run's model, the ones it is least
    /// sure about first (active learning).
    Suggest(super::suggest::SuggestArgs),
}

#[derive(Args)]
pub struct ImportArgs {
    /// The file to import.
    file: PathBuf,
    /// The dataset's name [default: the file name without extension].
    #[arg(long)]
    name: Option<String>,
    #[command(flatten)]
    columns: super::ColumnArgs,
    /// Column naming each row's split part (train, validation / dev, test).
    #[arg(long, value_name = "S")]
    split_column: Option<String>,
    /// Every row of this file belongs to this part (import train, validation and test files
    /// into one dataset with --append).
    #[arg(long)]
    part: Option<String>,
    /// CSV/TSV without a header row: columns are 1, 2, 3, …
    #[arg(long)]
    no_header: bool,
    /// CoNLL: 1-based column of the tokens [default: 1].
    #[arg(long, value_name = "N")]
    token_column: Option<usize>,
    /// CoNLL: 1-based column of the tags [default: the last].
    #[arg(long, value_name = "N")]
    tag_column: Option<usize>,
    /// Force the encoding: utf-8, utf-16le, utf-16be, latin1.
    #[arg(long)]
    encoding: Option<String>,
    /// A file with one class name per line, in id order (integer labels become these names).
    #[arg(long, value_name = "FILE")]
    label_names: Option<PathBuf>,
    /// Rename labels while importing: `0=negative,1=positive`.
    #[arg(long, value_name = "OLD=NEW,…")]
    label_map: Option<String>,
    /// Add the rows to an existing dataset of that name.
    #[arg(long)]
    append: bool,
    #[arg(long)]
    json: bool,
}

/// `0=negative,1=positive` → pairs in order; `flag` names the option in the message.
fn parse_label_map(spec: &str, flag: &str) -> anyhow::Result<Vec<(String, String)>> {
    spec.split(',')
        .map(|pair| {
            pair.split_once('=')
                .map(|(a, b)| (a.trim().to_string(), b.trim().to_string()))
                .with_context(|| format!("'{pair}' in {flag} is not OLD=NEW"))
        })
        .collect()
}

fn parse_part(p: &str) -> anyhow::Result<Part> {
    Part::parse(p).with_context(|| format!("'{p}' is not a part: use train, validation or test"))
}

fn import(args: ImportArgs, db: &Path) -> anyhow::Result<ExitCode> {
    let name = match &args.name {
        Some(n) => n.clone(),
        None => args
            .file
            .file_stem()
            .and_then(|s| s.to_str())
            .context("name the dataset with --name")?
            .to_string(),
    };
    let label_names = match &args.label_names {
        Some(path) => Some(
            std::fs::read_to_string(path)
                .with_context(|| format!("cannot read {}", path.display()))?
                .lines()
                .map(str::trim)
                .filter(|l| !l.is_empty())
                .map(str::to_string)
                .collect(),
        ),
        None => None,
    };
    let label_map = match &args.label_map {
        Some(spec) => Some(parse_label_map(spec, "--label-map")?.into_iter().collect()),
        None => None,
    };
    let given = SourceSpec {
        format: args.columns.format,
        text: args.columns.text_column.clone(),
        text_pair: args.columns.text_pair_column.clone(),
        label: args.columns.label_column.clone(),
        split: args.split_column.clone(),
        no_header: args.no_header,
        token_column: args.token_column,
        tag_column: args.tag_column,
        encoding: args.encoding.clone(),
        choices: Vec::new(),
    };
    let spec = super::guess_columns(&args.file, &given, args.json)?;
    let request = ImportRequest {
        path: args.file.clone(),
        name,
        spec,
        label_names,
        label_map,
        part: args.part.as_deref().map(parse_part).transpose()?,
        append: args.append,
    };
    let mut app = App::open(db)?;
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let bar = ProgressBar::new(0);
        bar.set_style(
            ProgressStyle::with_template(
                "importing [{bar:32.cyan/blue}] {bytes}/{total_bytes} · ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    };
    let summary = app.import(&request, &mut |done, total| {
        bar.set_length(total);
        bar.set_position(done);
    });
    bar.finish_and_clear();
    let summary = summary?;
    if args.json {
        println!("{}", serde_json::to_string(&summary)?);
    } else {
        for w in &summary.warnings {
            eprintln!("note: {w}");
        }
        println!(
            "imported {} rows into '{}' ({} labeled, {} unlabeled)",
            summary.imported,
            summary.dataset.name,
            summary.labeled,
            summary.imported - summary.labeled
        );
        print_labels(&summary.dataset);
    }
    Ok(ExitCode::SUCCESS)
}

fn print_labels(d: &DatasetInfo) {
    let total: i64 = d.label_counts.values().sum::<i64>().max(1);
    for name in &d.label_names {
        let n = d.label_counts.get(name).copied().unwrap_or(0);
        let bar = "█".repeat(((n * 30) / total) as usize);
        println!("  {name:<16} {n:>8}  {bar}");
    }
}

fn label_text(label: &Option<Label>) -> String {
    match label {
        None => "—".into(),
        Some(Label::Class(c)) => c.clone(),
        Some(Label::Tags(t)) => t.join(" "),
    }
}

pub fn run(cmd: DataCommand, db: &Path) -> anyhow::Result<ExitCode> {
    match cmd {
        DataCommand::Import(args) => import(args, db),
        DataCommand::Suggest(args) => super::suggest::run(args, db),
        DataCommand::List { json } => {
            let app = App::open(db)?;
            let datasets = app.store().datasets()?;
            if json {
                println!("{}", serde_json::to_string(&datasets)?);
            } else if datasets.is_empty() {
                println!("no datasets yet; import one with `hone data import FILE --text-column C --label-column L`");
            } else {
                println!(
                    "{:<24} {:>9} {:>9} {:>7}  {:<20} splits",
                    "name", "rows", "labeled", "classes", "task"
                );
                for d in datasets {
                    println!(
                        "{:<24} {:>9} {:>9} {:>7}  {:<20} {}",
                        d.name,
                        d.rows,
                        d.labeled,
                        d.label_names.len(),
                        d.task.as_str(),
                        d.splits.join(", ")
                    );
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Show {
            name,
            limit,
            unlabeled,
            json,
        } => {
            let app = App::open(db)?;
            let info = app.store().dataset(&name)?;
            let examples = app.store().examples(
                info.id,
                &ExampleFilter {
                    labeled: unlabeled.then_some(false),
                    limit: Some(limit),
                    ..Default::default()
                },
            )?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string(
                        &serde_json::json!({"dataset": info, "examples": examples})
                    )?
                );
            } else {
                println!(
                    "{} · {} rows ({} labeled) · {} from {} ({})",
                    info.name,
                    info.rows,
                    info.labeled,
                    info.task.as_str(),
                    info.source,
                    info.format
                );
                println!(
                    "imported {} · fingerprint {}",
                    info.created_at,
                    &info.fingerprint[..info.fingerprint.len().min(16)]
                );
                for w in &info.warnings {
                    println!("note: {w}");
                }
                print_labels(&info);
                if !info.splits.is_empty() {
                    println!("splits: {}", info.splits.join(", "));
                }
                println!();
                for e in examples {
                    let mut text: String = e.text.chars().take(90).collect();
                    if let Some(p) = &e.text_pair {
                        text.push_str(" ‖ ");
                        text.extend(p.chars().take(40));
                    }
                    println!("{:>7}  {:<12} {}", e.position, label_text(&e.label), text);
                }
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Split {
            dataset,
            name,
            valid,
            test,
            seed,
            json,
        } => {
            let mut app = App::open(db)?;
            let split = app.make_split(&dataset, &name, valid, test, seed)?;
            if json {
                println!("{}", serde_json::to_string(&split)?);
            } else {
                println!(
                    "split '{}' of '{dataset}' (seed {seed}): {} train · {} validation · {} test",
                    split.name, split.train, split.validation, split.test
                );
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Export {
            dataset,
            out,
            split,
            part,
        } => {
            let app = App::open(db)?;
            let which = match (split, part) {
                (Some(s), Some(p)) => Some((s, parse_part(&p)?)),
                _ => None,
            };
            let n = app.export_dataset(&dataset, &out, which)?;
            println!("wrote {n} examples to {}", out.display());
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::RenameClasses { dataset, map } => {
            let mut app = App::open(db)?;
            for (old, new) in parse_label_map(&map, "the map")? {
                let n = app.store_mut().rename_label(&dataset, &old, &new)?;
                println!("'{old}' is now '{new}' ({n} examples)");
            }
            Ok(ExitCode::SUCCESS)
        }
        DataCommand::Delete { name } => {
            let mut app = App::open(db)?;
            app.store_mut().delete_dataset(&name)?;
            println!("deleted dataset '{name}'");
            Ok(ExitCode::SUCCESS)
        }
    }
}
