//! `hone bench`: time training steps and forward passes on a fixed batch.

use std::path::PathBuf;
use std::process::ExitCode;

use anyhow::bail;
use clap::Args;
use hone_app::bench::{check_device, run_bench, BenchRequest, DeviceCheckRequest};
use hone_app::types::{DeviceSpec, Precision};

#[derive(Args)]
#[command(args_conflicts_with_subcommands = true, subcommand_negates_reqs = true)]
pub struct BenchArgs {
    #[command(subcommand)]
    suite: Option<BenchSuite>,
    /// Model folder (config.json, weights, tokenizer).
    #[arg(long, value_name = "DIR", required = true)]
    model: Option<PathBuf>,
    #[arg(long, default_value_t = 16)]
    batch_size: usize,
    /// Tokens per sequence (every sequence is padded to this length).
    #[arg(long, default_value_t = 64)]
    max_length: usize,
    /// Timed training steps (and timed forward passes).
    #[arg(long, default_value_t = 20)]
    steps: usize,
    /// Untimed steps first.
    #[arg(long, default_value_t = 3)]
    warmup: usize,
    /// Timed forward passes [default: --steps] (bench/gpu-check.sh's kernel profile keeps
    /// them fixed while the training steps vary).
    #[arg(long, value_name = "N")]
    forward_steps: Option<usize>,
    /// A fixed batch from `torch_baseline.py --dump-batch` (overrides --batch-size/--max-length).
    #[arg(long, value_name = "FILE")]
    batch_file: Option<PathBuf>,
    /// Learning rate of the timed AdamW steps.
    #[arg(long, default_value_t = 2e-5)]
    lr: f64,
    /// Turn dropout off.
    #[arg(long)]
    no_dropout: bool,
    /// Freeze the word embeddings (no gradients or optimizer state for them).
    #[arg(long)]
    freeze_embeddings: bool,
    /// Run candle's autograd instead of Hone's CPU path (for comparison).
    #[arg(long)]
    autograd: bool,
    /// Train LoRA adapters of this rank on the query and value projections (alpha 2 × rank)
    /// instead of every weight.
    #[arg(long, value_name = "R")]
    lora_r: Option<usize>,
    #[arg(long, default_value = "cpu")]
    device: DeviceSpec,
    /// Matrix products in fp32, bf16 or fp16 (bf16 runs the CPU graph where the CPU has
    /// AVX512-BF16, other mixed precision candle's autograd graph; fp16 scales the loss
    /// dynamically).
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// Count the backend operations of one more training step and forward pass: each is a
    /// kernel launch on a GPU, so this shows on the CPU what a step launches there (with
    /// --autograd).
    #[arg(long)]
    census: bool,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

/// Longer measurements than one configuration's steps.
#[derive(clap::Subcommand)]
pub enum BenchSuite {
    /// Simulate the labeling loop with an oracle: uncertainty sampling against random,
    /// several seeds, accuracy at the reported label counts.
    ActiveLearning(Box<super::simulate::SimulateArgs>),
    /// Compare one training step (loss, logits, every gradient; dropout off) on a device and
    /// precision against the CPU graph in fp32. Exits 1 when an error exceeds the tolerance.
    Check(CheckArgs),
}

#[derive(Args)]
pub struct CheckArgs {
    /// Model folder (config.json, weights; a tokenizer unless --batch-file is given).
    #[arg(long, value_name = "DIR")]
    model: PathBuf,
    #[arg(long, default_value = "auto")]
    device: DeviceSpec,
    #[arg(long, default_value = "fp32")]
    precision: Precision,
    /// A fixed batch (as `hone bench --batch-file`).
    #[arg(long, value_name = "FILE")]
    batch_file: Option<PathBuf>,
    #[arg(long, default_value_t = 8)]
    batch_size: usize,
    #[arg(long, default_value_t = 64)]
    max_length: usize,
    /// Train LoRA adapters of this rank (alpha 2 × rank) instead of every weight: only the
    /// adapters and the head get gradients, on the device as on the CPU.
    #[arg(long, value_name = "R")]
    lora_r: Option<usize>,
    /// Print one JSON object.
    #[arg(long)]
    json: bool,
}

fn check(args: CheckArgs) -> anyhow::Result<ExitCode> {
    let report = check_device(&DeviceCheckRequest {
        model: &args.model,
        device: &args.device,
        precision: args.precision,
        batch_file: args.batch_file.as_deref(),
        batch_size: args.batch_size,
        max_length: args.max_length,
        lora_rank: args.lora_r,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        println!(
            "{} {}{} against {}: loss {:.6} vs {:.6} (fp32 {:.6}), logits {:.1e}, worst of {} gradients {:.1e} ({}), AdamW updates {:.1e}, gradient norm {:.1e}, dropout masks differing {}, attention probabilities {:.1e}, cross-entropy {:.1e}, tolerance {:.0e}: {}",
            report.device,
            report.precision,
            match report.lora_rank {
                Some(r) => format!(" LoRA r={r}"),
                None => String::new(),
            },
            report.reference,
            report.loss_device,
            report.loss_cpu,
            report.loss_fp32,
            report.logits_error,
            report.gradients,
            report.worst_gradient_error,
            report.worst_gradient,
            report.update_error,
            report.norm_error,
            report.dropout_mismatches,
            report.attention_error,
            report.cross_entropy_error,
            report.tolerance,
            if report.passed { "ok" } else { "FAILED" }
        );
    }
    Ok(if report.passed {
        ExitCode::SUCCESS
    } else {
        ExitCode::FAILURE
    })
}

pub fn run(args: BenchArgs) -> anyhow::Result<ExitCode> {
    match args.suite {
        Some(BenchSuite::ActiveLearning(args)) => return super::simulate::run(*args),
        Some(BenchSuite::Check(args)) => return check(args),
        None => {}
    }
    let Some(model) = args.model else {
        bail!("--model DIR is required");
    };
    if args.steps == 0 {
        bail!("--steps must be at least 1");
    }
    let report = run_bench(&BenchRequest {
        model: &model,
        batch_size: args.batch_size,
        max_length: args.max_length,
        steps: args.steps,
        warmup: args.warmup,
        forward_steps: args.forward_steps,
        batch_file: args.batch_file.as_deref(),
        lr: args.lr,
        dropout: !args.no_dropout,
        freeze_embeddings: args.freeze_embeddings,
        host_path: !args.autograd,
        device: &args.device,
        precision: args.precision,
        lora_rank: args.lora_r,
        census: args.census,
    })?;
    if args.json {
        println!("{}", serde_json::to_string_pretty(&report)?);
    } else {
        let ms = |s: f64| s * 1e3;
        println!(
            "batch {} x seq {} · {} threads · {:.1}M parameters · dropout {} · {} path",
            report.batch,
            report.seq,
            report.threads,
            report.params as f64 / 1e6,
            if report.dropout { "on" } else { "off" },
            report.path
        );
        let t = &report.train_step;
        println!(
            "train step   : median {:.1} ms (min {:.1}, max {:.1}) over {} steps",
            ms(t.median_s),
            ms(t.min_s),
            ms(t.max_s),
            t.n
        );
        let p = &report.train_phase_median_s;
        println!(
            "  phases     : forward+loss {:.1} ms | backward {:.1} ms | optimizer {:.1} ms",
            ms(p.forward_loss),
            ms(p.backward),
            ms(p.optimizer)
        );
        println!(
            "throughput   : {:.1} samples/s, {:.0} tokens/s ({:.0}% of the token slots real)",
            report.samples_per_s,
            report.tokens_per_s,
            100.0 * report.real_token_share
        );
        if let Some(estimate) = report.speed_estimate.map(|e| e.samples_per_second) {
            println!(
                "estimate     : {estimate:.1} samples/s with every slot real (the fit check's figure)"
            );
        }
        println!(
            "forward only : median {:.1} ms -> {:.1} samples/s",
            ms(report.forward_only.median_s),
            report.fwd_samples_per_s
        );
        if let Some(rss) = report.peak_rss_mib {
            println!("memory       : peak RSS {rss:.0} MiB");
        }
        println!(
            "loss         : first timed step {:.4}, last {:.4}",
            report.loss_first_last[0], report.loss_first_last[1]
        );
        if let Some(census) = &report.census {
            print_census(census);
        }
    }
    Ok(ExitCode::SUCCESS)
}

/// The census as a table: each phase's launches and bytes, then its most launched operations.
fn print_census(census: &hone_app::bench::OpCensus) {
    const SHOWN: usize = 8;
    let mib = |b: u64| b as f64 / (1u64 << 20) as f64;
    println!(
        "operations   : {} launches a training step (one kernel each on a GPU)",
        census.step_launches()
    );
    for phase in &census.phases() {
        println!(
            "  {:<10} : {:>6} launches, {:>9.1} MiB",
            phase.phase,
            phase.launches,
            mib(phase.bytes)
        );
        let ops: Vec<_> = census
            .ops
            .iter()
            .filter(|o| o.phase == phase.phase)
            .collect();
        for op in ops.iter().take(SHOWN) {
            println!(
                "      {:<26} {:>6} launches, {:>9.1} MiB",
                op.op,
                op.launches,
                mib(op.bytes)
            );
        }
        if ops.len() > SHOWN {
            let rest = &ops[SHOWN..];
            println!(
                "      {:<26} {:>6} launches, {:>9.1} MiB",
                format!("({} more kinds)", rest.len()),
                rest.iter().map(|o| o.launches).sum::<u64>(),
                mib(rest.iter().map(|o| o.bytes).sum())
            );
        }
    }
}

/// `hone devices`: the CPU and every GPU this build can use, with their memory.
pub fn devices(json: bool) -> anyhow::Result<ExitCode> {
    let machine = hone_app::machine::machine_memory();
    if json {
        println!("{}", serde_json::to_string_pretty(&machine)?);
        return Ok(ExitCode::SUCCESS);
    }
    let gib = |b: u64| b as f64 / (1u64 << 30) as f64;
    let bf16 = match Precision::Bf16.runs_on_cpu_graph() {
        true => "bf16 products (AVX512-BF16)",
        false => "fp32 products (no AVX512-BF16: --precision bf16 runs the slower autograd graph)",
    };
    println!(
        "cpu      {} threads, {:.1} GiB RAM ({:.1} GiB free), {bf16}",
        hone_app::machine::training_threads(),
        gib(machine.ram_total),
        gib(machine.ram_available)
    );
    match &machine.gpu_backend {
        None => println!(
            "         no GPU: this build has no CUDA or Metal (`cargo build --release --features cuda`)"
        ),
        Some(backend) if machine.gpus.is_empty() => {
            let probe = if backend == "cuda" {
                " (nvidia-smi found none)"
            } else {
                ""
            };
            println!("         {backend} build, no GPU listed{probe}");
        }
        Some(backend) => {
            for gpu in &machine.gpus {
                println!(
                    "{backend}:{}   {}, {:.1} GiB ({:.1} GiB free)",
                    gpu.index,
                    gpu.name,
                    gib(gpu.total),
                    gib(gpu.free)
                );
            }
        }
    }
    Ok(ExitCode::SUCCESS)
}
