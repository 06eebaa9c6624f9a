//! `hone hub`: search the Hugging Face Hub, inspect a model (can Hone train it, does it fit this
//! machine) and download what a fine-tune needs into the shared cache.

use std::io::IsTerminal;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::{Args, Subcommand};
use hone_app::models::{hub_model_page, FitReport, ModelCheck};
use hone_app::types::FitSettings;
use hone_app::types::{DownloadEvent, DownloadOptions, HubClient, ModelInfo, SearchQuery, Sort};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};
use serde_json::json;

use super::render::human_bytes;
use super::EXIT_INTERRUPTED;

#[derive(Subcommand)]
pub enum HubCommand {
    /// Search models by name, task and library.
    Search(SearchArgs),
    /// What a model is, whether Hone can train it and whether it fits this machine.
    Info(InfoArgs),
    /// Download the files a fine-tune needs (config, weights, tokenizer) into the cache.
    Download(DownloadArgs),
}

#[derive(Args)]
pub struct SearchArgs {
    /// Words to look for in model ids.
    #[arg(default_value = "")]
    query: String,
    /// Pipeline tag, e.g. text-classification, fill-mask, token-classification.
    #[arg(long)]
    task: Option<String>,
    /// Library, e.g. transformers.
    #[arg(long)]
    library: Option<String>,
    /// downloads, likes or updated.
    #[arg(long, default_value = "downloads")]
    sort: Sort,
    /// Models to show.
    #[arg(long, default_value_t = 20)]
    limit: usize,
    #[arg(long)]
    json: bool,
}

/// The run shape the fit check judges (`hone hub info`, `hone models check`).
#[derive(Args, Clone, Copy)]
pub struct FitArgs {
    /// Batch size the fit check assumes.
    #[arg(long, default_value_t = FitSettings::default().batch_size)]
    batch_size: usize,
    /// Sequence length the fit check assumes.
    #[arg(long, default_value_t = FitSettings::default().max_length)]
    max_length: usize,
    /// The data's mean length in tokens: the speed estimate uses it (padding is skipped),
    /// memory stays sized for --max-length.
    #[arg(long, value_name = "TOKENS")]
    typical_length: Option<usize>,
    /// The rank of the LoRA line [default: 8].
    #[arg(long, value_name = "R")]
    lora_r: Option<usize>,
    /// The run's precision: on a GPU, and on the CPU in fp16 (bf16 without AVX512-BF16), the
    /// run takes candle's autograd graph, which keeps more; bf16 on the CPU graph keeps the
    /// frozen weights' bf16 packings.
    #[arg(long, default_value = "fp32")]
    precision: hone_app::types::Precision,
    /// The device whose memory is judged: cpu (the RAM), cuda:N, metal, or auto (the first
    /// GPU when there is one, else the RAM). A run's own default device is cpu.
    #[arg(long, default_value = "auto")]
    device: hone_app::types::DeviceSpec,
    /// A text-to-text model's target tokens per example (a run's --max-target-length)
    /// [default: 128].
    #[arg(long, value_name = "TOKENS")]
    max_target_length: Option<usize>,
}

impl FitArgs {
    /// The settings of the fit check.
    pub fn settings(self) -> FitSettings {
        FitSettings {
            batch_size: self.batch_size,
            max_length: self.max_length,
            typical_length: self.typical_length,
            lora_rank: self.lora_r,
            // Where the run takes the autograd graph (`hone_app::models::fit_report`).
            autograd: Some(self.precision),
            device: Some(self.device),
            target_length: self.max_target_length,
            ..FitSettings::default()
        }
    }
}

#[derive(Args)]
pub struct InfoArgs {
    /// Repository id, e.g. sentence-transformers/all-MiniLM-L6-v2.
    repo: String,
    /// Branch, tag or commit.
    #[arg(long)]
    revision: Option<String>,
    #[command(flatten)]
    fit: FitArgs,
    /// Print the whole model card.
    #[arg(long)]
    card: bool,
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
pub struct DownloadArgs {
    /// Repository id, e.g. sentence-transformers/all-MiniLM-L6-v2.
    repo: String,
    /// Branch, tag or commit.
    #[arg(long)]
    revision: Option<String>,
    /// Extra files by glob (e.g. 'onnx/*'); repeat for more.
    #[arg(long, value_name = "GLOB")]
    include: Vec<String>,
    /// One JSON object per event.
    #[arg(long)]
    json: bool,
}

pub fn run(cmd: HubCommand) -> anyhow::Result<ExitCode> {
    let hub = HubClient::from_env();
    match cmd {
        HubCommand::Search(args) => search(&hub, args),
        HubCommand::Info(args) => info(&hub, args),
        HubCommand::Download(args) => download(&hub, args),
    }
}

fn search(hub: &HubClient, args: SearchArgs) -> anyhow::Result<ExitCode> {
    let query = SearchQuery {
        text: args.query,
        task: args.task,
        library: args.library,
        sort: args.sort,
        limit: args.limit.max(1),
    };
    let mut page = hub.search(&query)?;
    let mut models = std::mem::take(&mut page.models);
    while models.len() < query.limit {
        let Some(next) = page.next.take() else { break };
        page = hub.search_page(&next)?;
        models.append(&mut page.models);
    }
    models.truncate(query.limit);
    let hits = hone_app::models::search_hits(models);
    if args.json {
        println!("{}", serde_json::to_string_pretty(&hits)?);
        return Ok(ExitCode::SUCCESS);
    }
    if hits.is_empty() {
        println!("no models match; try fewer words or another --task");
        return Ok(ExitCode::SUCCESS);
    }
    let shown_id = |m: &hone_app::types::ModelSummary| {
        let mut id = m.id.clone();
        if m.gated {
            id.push_str(" (gated)");
        }
        if m.private {
            id.push_str(" (private)");
        }
        id
    };
    let width = hits
        .iter()
        .map(|h| shown_id(&h.model).len())
        .max()
        .unwrap_or(10)
        .max(5);
    println!(
        "{:width$}  {:10}  {:24}  {:>10}  {:>6}  updated",
        "model", "hone", "task", "downloads", "likes"
    );
    for hit in &hits {
        let m = &hit.model;
        println!(
            "{:width$}  {:10}  {:24}  {:>10}  {:>6}  {}",
            shown_id(m),
            hit.family.as_deref().unwrap_or("-"),
            m.task.as_deref().unwrap_or("-"),
            m.downloads,
            m.likes,
            m.last_modified
                .as_deref()
                .map(|d| d.get(..10).unwrap_or(d))
                .unwrap_or("-"),
        );
    }
    if hits.iter().any(|h| h.family.is_none()) {
        println!("\n'-' under hone: no tag names a family Hone trains (BERT, DistilBERT, RoBERTa); `hone hub info` checks config.json");
    }
    Ok(ExitCode::SUCCESS)
}

fn info(hub: &HubClient, args: InfoArgs) -> anyhow::Result<ExitCode> {
    let page = hub_model_page(
        hub,
        &args.repo,
        args.revision.as_deref(),
        args.fit.settings(),
    )?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&page)?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(why) = &page.offline {
        eprintln!("offline: {why}");
    }
    print_info(&page.info, &page.check, page.download_bytes, args.card);
    Ok(ExitCode::SUCCESS)
}

fn print_info(info: &ModelInfo, check: &ModelCheck, download_bytes: u64, full_card: bool) {
    println!("{}", info.id);
    let mut flags = Vec::new();
    if info.gated {
        flags.push("gated: accept its terms on the Hub and set HF_TOKEN");
    }
    if info.private {
        flags.push("private");
    }
    for f in flags {
        println!("  {f}");
    }
    let line = |k: &str, v: String| println!("  {k:<14}{v}");
    line("task", info.task.clone().unwrap_or_else(|| "-".into()));
    line(
        "library",
        info.library.clone().unwrap_or_else(|| "-".into()),
    );
    line(
        "license",
        info.license.clone().unwrap_or_else(|| "-".into()),
    );
    line(
        "popularity",
        format!("{} downloads · {} likes", info.downloads, info.likes),
    );
    if let Some(d) = &info.last_modified {
        line("updated", d.clone());
    }
    if let Some(sha) = &info.sha {
        line("commit", sha.clone());
    }
    let parameters = info.parameters.or(check.parameters);
    if let Some(p) = parameters {
        let source = if info.parameters.is_some() {
            "from the weights"
        } else {
            "computed from config.json"
        };
        line("parameters", format!("{:.1}M ({source})", p as f64 / 1e6));
    }
    if let Some(c) = &info.config_summary {
        line(
            "architecture",
            format!(
                "{} · model_type {} · {} layers · hidden {} · {} heads · max {} tokens",
                c.architectures.first().map(String::as_str).unwrap_or("-"),
                c.model_type.as_deref().unwrap_or("-"),
                opt(c.num_layers),
                opt(c.hidden_size),
                opt(c.num_heads),
                opt(c.max_positions),
            ),
        );
    }
    line(
        "files",
        format!(
            "{} files, {} in all; a fine-tune downloads {}",
            info.files.len(),
            human_bytes(info.total_size()),
            human_bytes(download_bytes)
        ),
    );
    println!();
    if check.trainable {
        println!(
            "Hone can fine-tune this model ({}) for {}.",
            check.family.as_deref().unwrap_or("-"),
            check.tasks.join(" and ")
        );
    } else {
        println!("Hone cannot fine-tune this model:");
        for p in &check.problems {
            println!("  - {p}");
        }
    }
    if let Some(fit) = &check.fit {
        print_fit(fit);
    }
    if let Some(card) = &info.card {
        let body = strip_front_matter(card);
        let lines: Vec<&str> = body.lines().collect();
        let shown = if full_card {
            lines.len()
        } else {
            lines.len().min(15)
        };
        if shown > 0 {
            println!("\nModel card:");
            for l in &lines[..shown] {
                println!("  {l}");
            }
            if shown < lines.len() {
                println!("  … {} more lines (--card shows all)", lines.len() - shown);
            }
        }
    }
}

fn opt(v: Option<u64>) -> String {
    v.map(|v| v.to_string()).unwrap_or_else(|| "-".into())
}

/// The fit verdicts with their numbers.
pub fn print_fit(fit: &FitReport) {
    let s = &fit.full.estimate.settings;
    // No memory at all: the device is not on this machine, and compared_with says why.
    let free = match fit.total {
        0 => String::new(),
        _ => format!(
            " ({} free of {})",
            human_bytes(fit.available),
            human_bytes(fit.total)
        ),
    };
    println!(
        "\nMemory at batch {} × {} tokens, against {}{free}:",
        s.batch_size, s.max_length, fit.compared_with,
    );
    if let Some(host) = &fit.host {
        println!(
            "  and RAM: {} ({} free of {}) to read the weights and hold the program and data: {}",
            human_bytes(host.needed),
            human_bytes(host.available),
            human_bytes(host.total),
            host.verdict.label()
        );
    }
    for (name, l) in [
        ("full fine-tuning", &fit.full),
        ("frozen embeddings", &fit.frozen_embeddings),
        ("LoRA (rank 8)", &fit.lora),
    ] {
        let e = &l.estimate;
        println!(
            "  {name:<18} {:>10}  {:<12}  (weights {}, gradients {}, AdamW {}, activations {}, runtime {})",
            human_bytes(e.total),
            l.verdict.label(),
            human_bytes(e.weights),
            human_bytes(e.gradients),
            human_bytes(e.optimizer),
            human_bytes(e.activations),
            human_bytes(e.runtime + e.checkpoint),
        );
    }
    if let (Some(full), Some(frozen)) = (&fit.full.speed, &fit.frozen_embeddings.speed) {
        let lengths = match fit.full.estimate.settings.typical_length {
            Some(_) => format!("texts of {} tokens", full.work.length),
            None => "every text at full length".to_string(),
        };
        let lora = fit
            .lora
            .speed
            .as_ref()
            .map_or(0.0, |s| s.samples_per_second);
        println!(
            "Speed here (CPU, {} threads, {}matrix kernel {:.0} GFLOP/s), {lengths}: \
             about {:.1} samples/s full, {:.1} with frozen embeddings, {lora:.1} with LoRA \
             ({:.0} s per 1,000 examples){}",
            hone_app::machine::training_threads(),
            if fit.full.estimate.settings.bf16_products {
                "bf16 "
            } else {
                ""
            },
            full.matmul_gflops,
            full.samples_per_second,
            frozen.samples_per_second,
            full.seconds_for(1000, 1),
            if fit.full.estimate.settings.typical_length.is_some() {
                ""
            } else {
                "; shorter texts train faster (--typical-length)"
            },
        );
    }
}

/// The model card without its YAML header.
fn strip_front_matter(card: &str) -> &str {
    let Some(rest) = card.strip_prefix("---") else {
        return card.trim();
    };
    match rest.find("\n---") {
        Some(end) => rest[end + 4..].trim(),
        None => card.trim(),
    }
}

fn download(hub: &HubClient, args: DownloadArgs) -> anyhow::Result<ExitCode> {
    let cancel = Arc::new(AtomicBool::new(false));
    super::install_ctrl_c(
        cancel.clone(),
        (!args.json).then_some(
            "stopping; the partial file is kept and the next download resumes it (Ctrl-C again to quit at once)",
        ),
    )?;
    let options = DownloadOptions {
        revision: args.revision.clone(),
        include: args.include.clone(),
    };
    let bar = if args.json {
        ProgressBar::hidden()
    } else {
        let target = if std::io::stderr().is_terminal() {
            ProgressDrawTarget::stderr()
        } else {
            ProgressDrawTarget::hidden()
        };
        let bar = ProgressBar::with_draw_target(Some(0), target);
        bar.set_style(
            ProgressStyle::with_template(
                "{msg:30!} [{bar:30.cyan/blue}] {bytes}/{total_bytes} · {bytes_per_sec} · ETA {eta}",
            )
            .unwrap_or_else(|_| ProgressStyle::default_bar())
            .progress_chars("=> "),
        );
        bar
    };
    let plain = !args.json && !std::io::stderr().is_terminal();
    let result = hub.download(&args.repo, &options, &cancel, &mut |event| {
        if args.json {
            if let Ok(line) = serde_json::to_string(event) {
                println!("{line}");
            }
            return;
        }
        match event {
            DownloadEvent::Planned {
                files,
                total_bytes,
                done_bytes,
                commit,
                ..
            } => {
                bar.set_length(*total_bytes);
                bar.set_position(*done_bytes);
                let cached = files.iter().filter(|f| f.cached).count();
                let text = format!(
                    "{} at {}: {} files, {} ({} already cached)",
                    args.repo,
                    commit.get(..10).unwrap_or(commit),
                    files.len(),
                    human_bytes(*total_bytes),
                    cached
                );
                bar.println(&text);
            }
            DownloadEvent::FileStarted {
                name, resumed_from, ..
            } => {
                bar.set_message(name.clone());
                if *resumed_from > 0 {
                    bar.println(format!("resuming {name} at {}", human_bytes(*resumed_from)));
                }
            }
            DownloadEvent::Progress { done_bytes, .. } => bar.set_position(*done_bytes),
            DownloadEvent::Retrying {
                name,
                attempt,
                message,
            } => bar.println(format!("{name}: {message}; retrying (attempt {attempt})")),
            DownloadEvent::FileDone { name } => {
                if plain {
                    eprintln!("downloaded {name}");
                }
            }
        }
    });
    bar.finish_and_clear();
    let done = match result {
        Ok(done) => done,
        Err(hone_app::types::HubError::Cancelled) => {
            eprintln!("download cancelled; run the same command again to resume");
            return Ok(ExitCode::from(EXIT_INTERRUPTED));
        }
        Err(e) => return Err(e.into()),
    };
    if args.json {
        println!("{}", serde_json::to_string(&json!({"done": done}))?);
        return Ok(ExitCode::SUCCESS);
    }
    if let Some(notice) = &done.notice {
        eprintln!("note: {notice}");
    }
    println!(
        "{} ready at {} ({} fetched, {} files)",
        done.repo,
        done.snapshot.display(),
        human_bytes(done.fetched_bytes),
        done.files.len()
    );
    println!(
        "train it with: hone train --model {} --train FILE --text-column C --label-column L",
        done.repo
    );
    Ok(ExitCode::SUCCESS)
}
