//! `hone models`: the models Hone can train from here — Hub models in the cache and local
//! folders imported into the database.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Subcommand;
use hone_app::types::HubClient;
use hone_app::App;

use super::hub::{print_fit, FitArgs};
use super::render::human_bytes;

#[derive(Subcommand)]
pub enum ModelsCommand {
    /// Cached Hub models and imported local folders.
    List {
        #[arg(long)]
        json: bool,
    },
    /// Delete a Hub model from the cache, or forget an imported folder (its files stay).
    Remove {
        /// A repo id (org/name) or an imported folder.
        model: String,
    },
    /// Whether Hone can fine-tune a folder or a cached Hub model here: architecture, tasks, and
    /// the memory and speed of a run of the given shape (nothing is recorded).
    Check {
        /// A model folder or a cached repo id (org/name).
        model: PathBuf,
        #[command(flatten)]
        fit: FitArgs,
        #[arg(long)]
        json: bool,
    },
    /// Check a model folder (config, weights, tokenizer, architecture) and record it.
    Import {
        dir: PathBuf,
        #[arg(long)]
        json: bool,
    },
}

pub fn run(cmd: ModelsCommand, db: &Path) -> anyhow::Result<ExitCode> {
    let hub = HubClient::from_env();
    match cmd {
        // Touches no database.
        ModelsCommand::Check { model, fit, json } => return check(&hub, &model, fit, json),
        ModelsCommand::List { json } => {
            let models = App::open(db)?.known_models(&hub)?;
            if json {
                println!("{}", serde_json::to_string_pretty(&models)?);
            } else if models.is_empty() {
                println!(
                    "no models yet: `hone hub download ORG/NAME` fetches one, `hone models import DIR` adds a folder"
                );
            } else {
                let width = models.iter().map(|m| m.reference.len()).max().unwrap_or(5);
                println!("{:width$}  source  {:12}  {:>10}", "model", "type", "size");
                for m in &models {
                    println!(
                        "{:width$}  {:6}  {:12}  {:>10}",
                        m.reference,
                        m.source,
                        m.model_type.as_deref().unwrap_or("-"),
                        human_bytes(m.size_bytes)
                    );
                }
            }
        }
        ModelsCommand::Remove { model } => {
            let freed = App::open(db)?.remove_model(&hub, &model)?;
            if freed > 0 {
                println!(
                    "removed {model} from the cache ({} freed)",
                    human_bytes(freed)
                );
            } else {
                println!("forgot {model} (its files were left on disk)");
            }
        }
        ModelsCommand::Import { dir, json } => {
            let (record, check) = App::open(db)?.import_model(&dir)?;
            if json {
                println!(
                    "{}",
                    serde_json::to_string_pretty(
                        &serde_json::json!({"model": record, "check": check})
                    )?
                );
            } else {
                println!(
                    "imported {} ({}, {}, {:.1}M parameters)",
                    record.model.path,
                    check.family.as_deref().unwrap_or("-"),
                    human_bytes(record.model.size_bytes.max(0) as u64),
                    check.parameters.unwrap_or(0) as f64 / 1e6
                );
                if let Some(fit) = &check.fit {
                    print_fit(fit);
                }
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// `hone models check`: the verdict on a folder or cached model, without touching the database.
fn check(hub: &HubClient, model: &Path, fit: FitArgs, json: bool) -> anyhow::Result<ExitCode> {
    let dir = hone_app::models::resolve_model(model, hub)?;
    if !dir.is_dir() {
        anyhow::bail!("{} is not a folder or a cached Hub model", model.display());
    }
    let check = hone_app::models::check_folder(&dir, fit.settings())?;
    if json {
        println!("{}", serde_json::to_string_pretty(&check)?);
    } else {
        if check.trainable {
            println!(
                "Hone can fine-tune {} ({}) for {}.",
                dir.display(),
                check.family.as_deref().unwrap_or("-"),
                check.tasks.join(" and ")
            );
        } else {
            println!(
                "Hone cannot fine-tune {}: {}",
                dir.display(),
                check.problems.join("; ")
            );
        }
        if let Some(adapter) = &check.adapter {
            println!("It is {adapter}.");
        }
        if let Some(fit) = &check.fit {
            print_fit(fit);
        }
    }
    Ok(if check.trainable {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}
