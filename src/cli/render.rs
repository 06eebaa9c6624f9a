//! Showing training events: a progress bar with ETA and one line per validation for people,
//! or one JSON object per line for machines.

use std::io::Write;
use std::time::Duration;

use hone_app::types::Metric;
use hone_app::types::{CheckpointKind, TrainStatus as RunStatus};
use hone_app::types::{ClassificationReport, EntityReport, Report, TrainEvent};
use indicatif::{ProgressBar, ProgressDrawTarget, ProgressStyle};

/// Renders [`TrainEvent`]s as they arrive.
pub struct TrainRenderer {
    json: bool,
    bar: Option<ProgressBar>,
    /// Without a terminal the bar is hidden: print a plain line every this many steps.
    plain_every: u64,
}

/// A parameter count for people: 22.7M, 37.4k.
fn count(n: u64) -> String {
    match n {
        0..=9_999 => n.to_string(),
        10_000..=999_999 => format!("{:.1}k", n as f64 / 1e3),
        1_000_000..=999_999_999 => format!("{:.1}M", n as f64 / 1e6),
        _ => format!("{:.2}B", n as f64 / 1e9),
    }
}

fn duration(seconds: f64) -> String {
    let s = seconds.max(0.0).round() as u64;
    match s {
        0..=59 => format!("{s}s"),
        60..=3599 => format!("{}m{:02}s", s / 60, s % 60),
        _ => format!("{}h{:02}m", s / 3600, (s % 3600) / 60),
    }
}

/// A sample answer as printed: its text, or what an empty one means.
pub fn sample_answer(text: &str) -> &str {
    if text.is_empty() {
        "(nothing: the end token came first)"
    } else {
        text
    }
}

/// A short line of the headline metrics of a report.
pub fn report_line(r: &Report) -> String {
    match r {
        Report::Tasks(r) => r
            .tasks
            .iter()
            .map(|t| format!("{}: {}", t.name, report_line(&t.report)))
            .collect::<Vec<_>>()
            .join("\n  "),
        Report::Classification(r) => format!(
            "loss {:.4} · accuracy {:.4} · macro-F1 {:.4}",
            r.loss, r.accuracy, r.macro_f1
        ),
        Report::Entities(r) => format!(
            "loss {:.4} · entity F1 {:.4} · precision {:.4} · recall {:.4} · token accuracy {:.4}",
            r.loss, r.entity_f1, r.precision, r.recall, r.token_accuracy
        ),
        Report::Choices(r) => format!(
            "loss {:.4} · accuracy {:.4} · MAP@3 {:.4}",
            r.loss, r.accuracy, r.map_at_3
        ),
        Report::Answers(r) => format!(
            "loss {:.4} · exact match {:.4} · F1 {:.4}",
            r.loss, r.exact_match, r.f1
        ),
        Report::Language(r) => format!(
            "loss {:.4} · perplexity {:.3} · next-token accuracy {:.4} · {} tokens",
            r.loss, r.perplexity, r.token_accuracy, r.tokens
        ),
        Report::Generation(r) => format!(
            "loss {:.4} · ROUGE-1 {:.4} · ROUGE-2 {:.4} · ROUGE-L {:.4} · ROUGE-Lsum {:.4} · \
             exact match {:.4} · {:.1} tokens generated",
            r.loss, r.rouge1, r.rouge2, r.rouge_l, r.rouge_lsum, r.exact_match, r.gen_len
        ),
    }
}

/// A text-to-text report's best and worst generations next to their references.
pub fn generation_samples(r: &hone_app::types::GenerationReport) -> String {
    let mut s = String::new();
    for sample in &r.samples {
        s.push_str(&format!(
            "ROUGE-L {:.3}\n  source:    {}\n  reference: {}\n  generated: {}\n",
            sample.rouge_l, sample.source, sample.reference, sample.generated
        ));
    }
    s
}

/// The per-type table of an entity report and its worst sentences, gold vs predicted.
pub fn entity_table(r: &EntityReport) -> String {
    let width = r.per_type.keys().map(|k| k.len()).max().unwrap_or(6).max(6);
    let mut s = format!("{:<width$}  precision  recall      f1  support\n", "entity");
    for (kind, c) in &r.per_type {
        s.push_str(&format!(
            "{kind:<width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}\n",
            c.precision, c.recall, c.f1, c.support
        ));
    }
    s.push_str(&format!(
        "{:<width$}  {:>9.4}  {:>6.4}  {:>6.4}\n",
        "micro", r.precision, r.recall, r.entity_f1
    ));
    if !r.worst.is_empty() {
        s.push_str("\nworst sentences ([TYPE text] gold → predicted):\n");
        for e in r.worst.iter().take(5) {
            s.push_str(&format!(
                "  {}\n  → {}\n",
                bracketed(&e.tokens, &e.gold_entities),
                bracketed(&e.tokens, &e.predicted_entities)
            ));
        }
    }
    s
}

/// Words with their entities in brackets: `[PER Peter Blackburn] visited [LOC Brussels]`.
fn bracketed(tokens: &[String], entities: &[hone_app::types::Entity]) -> String {
    let words = |a: usize, b: usize| tokens.get(a..b).unwrap_or_default().join(" ");
    let mut out = Vec::new();
    let mut i = 0;
    for e in entities {
        out.push(words(i, e.start));
        out.push(format!("[{} {}]", e.kind, words(e.start, e.end)));
        i = e.end;
    }
    out.push(words(i, tokens.len()));
    out.retain(|w| !w.is_empty());
    out.join(" ")
}

/// The per-class table and confusion matrix of a classification report.
pub fn report_table(labels: &[String], r: &ClassificationReport) -> String {
    let width = labels.iter().map(|l| l.len()).max().unwrap_or(5).max(5);
    let mut s = format!("{:<width$}  precision  recall      f1  support\n", "class");
    for c in &r.per_class {
        s.push_str(&format!(
            "{:<width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}\n",
            c.label, c.precision, c.recall, c.f1, c.support
        ));
    }
    s.push_str(&format!(
        "{:<width$}  {:>9.4}  {:>6.4}  {:>6.4}  {:>7}\n\nconfusion matrix (rows: true, columns: predicted)\n",
        "macro", r.macro_precision, r.macro_recall, r.macro_f1, r.examples
    ));
    let cell = r
        .confusion_matrix
        .iter()
        .flatten()
        .map(|v| v.to_string().len())
        .max()
        .unwrap_or(1)
        .max(labels.iter().map(|l| l.len().min(10)).max().unwrap_or(1));
    s.push_str(&format!("{:<width$}", ""));
    for l in labels {
        let short: String = l.chars().take(10).collect();
        s.push_str(&format!("  {short:>cell$}"));
    }
    s.push('\n');
    for (label, row) in labels.iter().zip(&r.confusion_matrix) {
        s.push_str(&format!("{label:<width$}"));
        for v in row {
            s.push_str(&format!("  {v:>cell$}"));
        }
        s.push('\n');
    }
    s
}

impl TrainRenderer {
    pub fn new(json: bool) -> Self {
        TrainRenderer {
            json,
            bar: None,
            plain_every: 0,
        }
    }

    fn say(&self, line: &str) {
        match &self.bar {
            Some(bar) if !bar.is_hidden() => bar.println(line),
            _ => eprintln!("{line}"),
        }
    }

    /// Shows one event.
    pub fn show(&mut self, event: &TrainEvent) {
        if self.json {
            if let Ok(line) = serde_json::to_string(event) {
                let mut out = std::io::stdout().lock();
                let _ = writeln!(out, "{line}");
                let _ = out.flush();
            }
            return;
        }
        match event {
            TrainEvent::Started {
                device,
                model_type,
                labels,
                train_examples,
                valid_examples,
                truncated_train,
                truncated_valid,
                max_length,
                epochs,
                total_steps,
                warmup_steps,
                params_total,
                params_trainable,
                newly_initialized,
                ..
            } => {
                eprintln!(
                    "{model_type} · {} parameters ({} trained) · {device}",
                    count(*params_total),
                    count(*params_trainable)
                );
                eprintln!(
                    "{train_examples} training / {valid_examples} validation examples · {} classes: {}",
                    labels.len(),
                    labels.join(", ")
                );
                eprintln!(
                    "{epochs} epoch(s) · {total_steps} steps · {warmup_steps} warmup steps · max length {max_length}"
                );
                if truncated_train + truncated_valid > 0 {
                    eprintln!(
                        "note: {} training and {} validation texts are longer than {max_length} tokens and were truncated",
                        truncated_train, truncated_valid
                    );
                }
                if !newly_initialized.is_empty() {
                    eprintln!("new head: {}", newly_initialized.join(", "));
                }
                let bar = step_bar(*total_steps);
                self.plain_every = (total_steps / 20).max(1);
                self.bar = Some(bar);
            }
            TrainEvent::Notice { message } => self.say(&format!("note: {message}")),
            TrainEvent::Resumed { step, epoch } => self.say(&format!(
                "resuming from the checkpoint at step {step} (epoch {})",
                epoch + 1
            )),
            TrainEvent::Step {
                step,
                total_steps,
                epoch,
                loss,
                lr,
                samples_per_s,
                eta_s,
                task,
                ..
            } => {
                let task = task.as_ref().map(|t| format!(" ({t})")).unwrap_or_default();
                let message = format!(
                    "epoch {epoch:.2} · loss {loss:.4}{task} · lr {lr:.2e} · {samples_per_s:.1} samples/s"
                );
                if let Some(bar) = &self.bar {
                    bar.set_position(*step);
                    if bar.is_hidden() {
                        if step.is_multiple_of(self.plain_every) {
                            eprintln!("step {step}/{total_steps} · {message} · ETA {}", duration(*eta_s));
                        }
                    } else {
                        bar.set_message(message);
                    }
                }
            }
            TrainEvent::PhaseChanged {
                step,
                phase,
                params_trainable,
                ..
            } => self.say(&format!(
                "step {step}: now training {phase} ({} parameters)",
                count(*params_trainable)
            )),
            TrainEvent::Evaluated {
                step,
                epoch,
                metric,
                value,
                is_best,
                report,
            } => {
                let extra = match metric {
                    Metric::MacroPrecision | Metric::MacroRecall => format!(" · {metric} {value:.4}"),
                    _ => String::new(),
                };
                self.say(&format!(
                    "step {step} (epoch {epoch:.2}) validation: {}{extra}{}",
                    report_line(report),
                    if *is_best { " ★ best" } else { "" }
                ))
            }
            TrainEvent::Samples { step, samples } => {
                let mut text = format!("step {step} sample answers:");
                for s in samples {
                    let answer = sample_answer(&s.text).replace('\n', "\n    ");
                    text.push_str(&format!("\n  > {}\n    {answer}", s.prompt));
                }
                self.say(&text)
            }
            TrainEvent::CheckpointSaved { kind, path, .. } => {
                if *kind == CheckpointKind::Last {
                    if let Some(bar) = &self.bar {
                        bar.set_message(format!("checkpoint saved in {}", path.display()));
                    }
                }
            }
            TrainEvent::EarlyStopped {
                step,
                metric,
                best,
                patience,
            } => self.say(&format!(
                "step {step}: {metric} has not improved on {best:.4} for {patience} validation(s); stopping early"
            )),
            TrainEvent::Finished {
                status,
                steps,
                elapsed_s,
                best_step,
                best,
                export_dir,
            } => {
                if let Some(bar) = self.bar.take() {
                    bar.finish_and_clear();
                }
                let how = match status {
                    RunStatus::Completed => "finished",
                    RunStatus::EarlyStopped => "stopped early",
                    RunStatus::Cancelled => "cancelled",
                };
                eprintln!("{how} after {steps} steps in {}", duration(*elapsed_s));
                match (best_step, best) {
                    (Some(step), Some(report)) => eprintln!(
                        "best checkpoint: step {step} · {}",
                        report_line(report)
                    ),
                    _ => eprintln!("no validation ran; exported the last weights"),
                }
                match best {
                    // A multi-task run: a folder per head, named after its task.
                    Some(Report::Tasks(r)) => {
                        for t in &r.tasks {
                            eprintln!(
                                "{} head exported to {}",
                                t.name,
                                export_dir.join(&t.name).display()
                            );
                        }
                    }
                    _ => eprintln!("model exported to {}", export_dir.display()),
                }
            }
        }
    }

    /// Clears the progress bar (after an error).
    pub fn finish(&mut self) {
        if let Some(bar) = self.bar.take() {
            bar.finish_and_clear();
        }
    }
}

/// Bytes for people: 512 B, 1.5 KiB, 90.3 MiB, 1.2 GiB.
pub fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 5] = ["B", "KiB", "MiB", "GiB", "TiB"];
    let mut value = bytes as f64;
    let mut unit = 0;
    while value >= 1024.0 && unit + 1 < UNITS.len() {
        value /= 1024.0;
        unit += 1;
    }
    if unit == 0 {
        format!("{bytes} B")
    } else {
        format!("{value:.1} {}", UNITS[unit])
    }
}

/// A progress bar over `total` optimizer steps on stderr: position, a message, the ETA.
pub fn step_bar(total: u64) -> ProgressBar {
    let bar = ProgressBar::with_draw_target(Some(total), ProgressDrawTarget::stderr_with_hz(4));
    bar.set_style(
        ProgressStyle::with_template(
            "{spinner} [{bar:32.cyan/blue}] {pos}/{len} steps · {msg} · ETA {eta}",
        )
        .unwrap_or_else(|_| ProgressStyle::default_bar())
        .progress_chars("=> "),
    );
    bar.enable_steady_tick(Duration::from_millis(250));
    bar
}
