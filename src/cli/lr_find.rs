//! `hone lr-find`: the learning-rate range test on what `hone train` with the same flags would
//! train, a progress bar while it sweeps, then the loss by rate and a suggested rate.

use std::path::Path;
use std::process::ExitCode;
use std::sync::atomic::AtomicBool;
use std::sync::Arc;

use clap::Args;
use hone_app::types::{LrFindResult, LrFindSettings, TrainEvent};
use hone_app::App;

use super::train::TrainArgs;
use super::EXIT_INTERRUPTED;

#[derive(Args)]
#[command(
    after_help = "Example:\n  hone lr-find --model models-cache/minilm --train train.tsv --steps 100\n\nThe flags of `hone train` choose the model, data, batch size, optimizer and recipe."
)]
pub struct LrFindArgs {
    #[command(flatten)]
    train: TrainArgs,
    /// The sweep's first learning rate [default: 1e-7].
    #[arg(long, value_name = "LR", help_heading = "Range test")]
    start_lr: Option<f64>,
    /// The sweep's last learning rate [default: 1].
    #[arg(long, value_name = "LR", help_heading = "Range test")]
    end_lr: Option<f64>,
    /// Optimizer steps, one rate each [default: 100].
    #[arg(long, value_name = "N", help_heading = "Range test")]
    steps: Option<u64>,
}

pub fn run(args: LrFindArgs, db: &Path) -> anyhow::Result<ExitCode> {
    let config = args.train.run_config()?;
    let defaults = LrFindSettings::default();
    let settings = LrFindSettings {
        start_lr: args.start_lr.unwrap_or(defaults.start_lr),
        end_lr: args.end_lr.unwrap_or(defaults.end_lr),
        steps: args.steps.unwrap_or(defaults.steps),
        ..defaults
    };
    settings.validate()?;
    let json = args.train.json();
    let cancel = Arc::new(AtomicBool::new(false));
    super::install_ctrl_c(
        cancel.clone(),
        Some("stopping the range test after this step (Ctrl-C again to quit now)"),
    )?;
    let app = App::open(db)?;
    let bar = (!json).then(|| super::render::step_bar(settings.steps));
    let result = app.find_lr(
        &config,
        &settings,
        &mut |event| {
            if let TrainEvent::Notice { message } = event {
                match &bar {
                    Some(bar) => bar.println(format!("note: {message}")),
                    None => eprintln!("note: {message}"),
                }
            }
        },
        &mut |point| {
            if let Some(bar) = &bar {
                bar.set_position(point.step + 1);
                bar.set_message(format!("lr {:.2e} · loss {:.4}", point.lr, point.smoothed));
            }
        },
        &cancel,
    );
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    let result = result?;
    if json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", report(&result));
    }
    Ok(if result.cancelled {
        ExitCode::from(EXIT_INTERRUPTED)
    } else {
        ExitCode::SUCCESS
    })
}

/// The loss by learning rate (about 20 rows) and the suggestion, as text.
fn report(result: &LrFindResult) -> String {
    let mut out = String::new();
    let points = &result.points;
    if points.is_empty() {
        return "no step finished: nothing to suggest\n".into();
    }
    let lowest = points
        .iter()
        .map(|p| p.smoothed)
        .fold(f64::INFINITY, f64::min);
    let highest = points
        .iter()
        .map(|p| p.smoothed)
        .filter(|l| l.is_finite())
        .fold(lowest, f64::max)
        .min(lowest * 4.0);
    out.push_str("  learning rate   loss (smoothed)\n");
    let every = points.len().div_ceil(20).max(1);
    for (i, p) in points.iter().enumerate() {
        if i % every != 0 && i + 1 != points.len() {
            continue;
        }
        let share =
            ((p.smoothed.min(highest) - lowest) / (highest - lowest).max(1e-12)).clamp(0.0, 1.0);
        let bar = "█".repeat(1 + (share * 30.0).round() as usize);
        out.push_str(&format!("  {:>13.2e}   {:<8.4} {bar}\n", p.lr, p.smoothed));
    }
    if result.diverged {
        out.push_str(&format!(
            "the loss blew up at {:.2e}: stopped there\n",
            points.last().map_or(0.0, |p| p.lr)
        ));
    } else if result.cancelled {
        out.push_str("stopped before the end of the sweep\n");
    }
    match (result.suggested_lr, result.min_loss_lr) {
        (Some(suggested), Some(lowest)) => {
            out.push_str(&format!(
                "suggested learning rate: {suggested:.1e} (a tenth of {lowest:.1e}, where the smoothed loss was lowest)\n"
            ));
            if let Some(steepest) = result.steepest_lr {
                out.push_str(&format!("the loss fell fastest at {steepest:.1e}\n"));
            }
            out.push_str(&format!(
                "train with: hone train ... --lr {suggested:.1e}\n"
            ));
        }
        _ => out.push_str("no suggestion: the loss never settled\n"),
    }
    out
}
