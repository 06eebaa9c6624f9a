//! `hone export`: a run's model copied to a folder, or with `--merge` its LoRA adapter merged
//! into the base model's weights (a full model plain `transformers` loads), or with `--onnx`
//! written as an ONNX model (ONNX Runtime, Optimum, Transformers.js), int8 too with `--int8`,
//! or with `--gguf` a decoder written as one GGUF file (llama.cpp).

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::{bail, Context};
use clap::Args;

#[derive(Args)]
pub struct ExportArgs {
    /// The run whose model to export.
    #[arg(
        long,
        value_name = "ID",
        required_unless_present = "model",
        conflicts_with = "model"
    )]
    run: Option<i64>,
    /// A model or adapter folder to export (with --merge).
    #[arg(long, value_name = "DIR")]
    model: Option<PathBuf>,
    /// Merge the LoRA adapter into the base model's weights (W + scale·B·A): a full model
    /// folder that plain transformers loads, without PEFT.
    #[arg(long, conflicts_with = "onnx")]
    merge: bool,
    /// Write an ONNX model (`onnx/model.onnx`, opset 17, dynamic batch and sequence axes) with
    /// the config and tokenizer, for ONNX Runtime, Optimum and Transformers.js.
    #[arg(long)]
    onnx: bool,
    /// With --onnx: also write `onnx/model_quantized.onnx`, dynamically quantized to int8
    /// (weights per output feature, activations at run time).
    #[arg(long, requires = "onnx")]
    int8: bool,
    /// Write a decoder as one GGUF file (llama.cpp, Ollama, LM Studio; transformers loads it
    /// too): f16 or q8_0 matrices. --out is then the file (e.g. model-q8_0.gguf).
    #[arg(long, value_name = "TYPE", conflicts_with_all = ["onnx", "merge"])]
    gguf: Option<hone_app::types::GgufType>,
    /// Print what was written as JSON.
    #[arg(long)]
    json: bool,
    /// The folder to write; it must not exist yet.
    #[arg(long, value_name = "DIR")]
    out: PathBuf,
}

/// Runs `hone export`.
pub fn run(args: ExportArgs, db: &std::path::Path) -> anyhow::Result<ExitCode> {
    if args.out.exists() {
        bail!(
            "{} already exists; choose a new folder for --out",
            args.out.display()
        );
    }
    let name = args
        .out
        .file_name()
        .and_then(|n| n.to_str())
        .context("--out needs a folder name")?
        .to_string();
    let parent = match args.out.parent() {
        Some(p) if !p.as_os_str().is_empty() => p.to_path_buf(),
        _ => PathBuf::from("."),
    };
    if args.onnx {
        return onnx(&args, db, &parent, &name);
    }
    if let Some(weights) = args.gguf {
        return gguf(&args, db, &parent, &name, weights);
    }
    match (&args.model, args.run) {
        (Some(dir), _) => {
            if !args.merge {
                bail!("a folder is exported as it is; add --merge to merge its LoRA adapter");
            }
            hone_app::runs::merge_adapter(dir, &args.out)?;
            eprintln!(
                "merged {} into a full model at {}",
                dir.display(),
                args.out.display()
            );
        }
        (None, Some(id)) => {
            let mut app = hone_app::App::open(db)?;
            let target = if args.merge {
                app.export_run_merged(id, &parent, &name)?
            } else {
                app.export_run_model(id, &parent, &name)?
            };
            let what = if args.merge {
                "merged into a full model"
            } else {
                "copied"
            };
            eprintln!("run {id}'s model {what} at {}", target.display());
        }
        (None, None) => bail!("name the model: --run ID or --model DIR"),
    }
    Ok(ExitCode::SUCCESS)
}

/// `hone export --onnx`: the run's model or the folder written as ONNX.
fn onnx(
    args: &ExportArgs,
    db: &std::path::Path,
    parent: &std::path::Path,
    name: &str,
) -> anyhow::Result<ExitCode> {
    let (out, written) = match (&args.model, args.run) {
        (Some(dir), _) => (
            args.out.clone(),
            hone_app::runs::export_onnx(dir, &args.out, args.int8)?,
        ),
        (None, Some(id)) => {
            let mut app = hone_app::App::open(db)?;
            app.export_run_onnx(id, parent, name, args.int8)?
        }
        (None, None) => bail!("name the model: --run ID or --model DIR"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&written)?);
    } else {
        for model in &written {
            eprintln!(
                "{} ({}, {:.1} MB, {} nodes; inputs {}; outputs {})",
                model.path.display(),
                if model.int8 { "int8" } else { "float32" },
                model.bytes as f64 / 1e6,
                model.nodes,
                model.inputs.join(", "),
                model.outputs.join(", "),
            );
        }
        eprintln!("ONNX model of {} in {}", model_name(args), out.display());
    }
    Ok(ExitCode::SUCCESS)
}

fn model_name(args: &ExportArgs) -> String {
    match (&args.model, args.run) {
        (Some(dir), _) => dir.display().to_string(),
        (None, Some(id)) => format!("run {id}"),
        (None, None) => String::new(),
    }
}

/// `hone export --gguf`: the run's decoder or the folder written as one GGUF file.
fn gguf(
    args: &ExportArgs,
    db: &std::path::Path,
    parent: &std::path::Path,
    name: &str,
    weights: hone_app::types::GgufType,
) -> anyhow::Result<ExitCode> {
    let written = match (&args.model, args.run) {
        (Some(dir), _) => hone_app::runs::export_gguf(dir, &args.out, weights)?,
        (None, Some(id)) => hone_app::App::open(db)?.export_run_gguf(id, parent, name, weights)?,
        (None, None) => bail!("name the model: --run ID or --model DIR"),
    };
    if args.json {
        println!("{}", serde_json::to_string_pretty(&written)?);
    } else {
        eprintln!(
            "GGUF ({}, {}, {} tensors, {:.1} MB) of {} at {}",
            written.architecture,
            written.weights.name(),
            written.tensors,
            written.bytes as f64 / 1e6,
            model_name(args),
            written.path.display()
        );
    }
    Ok(ExitCode::SUCCESS)
}
