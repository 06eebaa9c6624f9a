//! `hone bench`: training steps and forward passes timed on one fixed batch of a real model
//! (a batch dumped by the PyTorch baseline, or a synthetic one from review sentences).

use std::path::Path;

use hone_data::{Batcher, TextTokenizer};
pub use hone_engine::bench::OpCensus;
use hone_engine::bench::{batch_from_json, BenchReport, BenchSettings};
use hone_engine::config::FineTuneMethod;
use hone_engine::models::{Model, Task};
use hone_engine::precision::Precision;
use hone_engine::{DeviceSpec, EngineError, TrainingConfig};
use serde::Serialize;

use crate::AppError;

/// Texts of the synthetic batch when no --batch-file is given (cycled to fill the batch).
const SENTENCES: [&str; 8] = [
    "A gripping story told with warmth, wit and a cast that never hits a false note.",
    "The sequel repeats every joke of the first film and somehow makes them all worse.",
    "Fine.",
    "I expected little and got a thoughtful, beautifully shot meditation on grief and family.",
    "Two hours of loud noises, forgettable villains and a plot held together with tape.",
    "The hotel staff went out of their way to make our stay comfortable.",
    "Not bad, not great: a perfectly adequate way to spend a rainy afternoon.",
    "Every chapter ends on a cliffhanger, and I read the whole book in one sitting.",
];

/// What to time.
#[derive(Debug, Clone)]
pub struct BenchRequest<'a> {
    /// Model folder (config.json, weights, tokenizer).
    pub model: &'a Path,
    pub batch_size: usize,
    /// Tokens per sequence (every sequence padded to it).
    pub max_length: usize,
    /// Timed training steps (and timed forward passes).
    pub steps: usize,
    /// Untimed steps first.
    pub warmup: usize,
    /// A fixed batch from `torch_baseline.py --dump-batch` (overrides size and length).
    pub batch_file: Option<&'a Path>,
    /// Learning rate of the timed AdamW steps.
    pub lr: f64,
    pub dropout: bool,
    /// No gradients or optimizer state for the word embeddings.
    pub freeze_embeddings: bool,
    /// Hone's CPU path (`false`: candle's autograd, for comparison).
    pub host_path: bool,
    pub device: &'a DeviceSpec,
    /// The dtype of the matrix products (as the device supports it: see
    /// `hone_engine::precision::resolve`).
    pub precision: hone_engine::precision::Precision,
    /// LoRA at this rank on the family's usual targets (alpha 2 × rank, the base frozen).
    pub lora_rank: Option<usize>,
    /// Timed forward passes, when not `steps`.
    pub forward_steps: Option<usize>,
    /// Count the backend operations (GPU kernel launches) of one more step and forward pass;
    /// candle's autograd graph only (`host_path` false).
    pub census: bool,
}

/// Times `request.steps` training steps and forward passes of a 2-class text classifier (a
/// text-to-text model: of its language-model head on targets; a decoder: as a language model).
pub fn run_bench(request: &BenchRequest) -> Result<BenchReport, AppError> {
    if request.steps == 0 {
        return Err(AppError::Invalid("time at least one step".into()));
    }
    let device = request.device.open()?;
    if request.census && request.host_path && request.precision.runs_on_cpu_graph() {
        return Err(AppError::Invalid(
            "the census counts candle's operations, which only the autograd graph runs: \
             add --autograd"
                .into(),
        ));
    }
    let mut cfg = TrainingConfig {
        lr: request.lr,
        weight_decay: 0.01,
        clip_norm: None,
        freeze_embeddings: request.freeze_embeddings,
        dropout: (!request.dropout).then_some(0.0),
        precision: hone_engine::precision::resolve(request.precision, &device).0,
        ..Default::default()
    };
    with_lora(&mut cfg, request.lora_rank);
    let (task, classes) = bench_task(request.model)?;
    let model = Model::load_for_run(request.model, task, classes, &cfg, &device, 0)?;
    let batch = bench_batch(
        &model,
        request.model,
        request.batch_file,
        request.batch_size,
        request.max_length,
    )?;
    Ok(hone_engine::bench::run_bench(
        &model,
        &batch,
        &cfg,
        BenchSettings {
            warmup: request.warmup,
            steps: request.steps,
            forward_steps: request.forward_steps,
            lr: request.lr,
            census: request.census,
        },
        request.host_path,
    )?)
}

/// LoRA at `rank` (alpha 2 × rank, the base frozen) in `cfg` when a rank is given.
fn with_lora(cfg: &mut TrainingConfig, rank: Option<usize>) {
    if let Some(r) = rank {
        cfg.peft = FineTuneMethod::Lora;
        cfg.lora_r = r;
        cfg.lora_alpha = 2.0 * r as f64;
    }
}

/// The task a benchmark trains: a text-to-text model (T5) as one (sources in, targets
/// teacher-forced), a decoder as a language model (every token learned), any other as a
/// 2-class text classifier.
fn bench_task(dir: &Path) -> Result<(Task, usize), AppError> {
    let tasks = hone_engine::models::ModelSpec::from_dir(dir)?
        .family
        .descriptor()
        .tasks;
    if tasks.contains(&Task::Text2Text) {
        Ok((Task::Text2Text, 0))
    } else if tasks.contains(&Task::SequenceClassification) {
        Ok((Task::SequenceClassification, 2))
    } else if tasks.contains(&Task::CausalLm) {
        Ok((Task::CausalLm, 0))
    } else {
        Err(AppError::Invalid(format!(
            "{} models train none of the tasks a benchmark times (text classification, \
             text-to-text, language modelling)",
            dir.display()
        )))
    }
}

/// What `hone bench check` compares: one training step's loss, logits and gradients on a
/// device (candle's autograd graph, in a precision) against the CPU: the CPU graph in f32, or
/// for a mixed precision candle's autograd graph on the CPU in the same precision (bf16's
/// rounding alone moves gradients whose terms cancel by far more than the device's own error).
#[derive(Debug, Clone)]
pub struct DeviceCheckRequest<'a> {
    pub model: &'a Path,
    pub device: &'a DeviceSpec,
    pub precision: Precision,
    /// A fixed batch (as `hone bench --batch-file`), else synthetic sentences.
    pub batch_file: Option<&'a Path>,
    pub batch_size: usize,
    pub max_length: usize,
    /// LoRA at this rank on the family's usual targets (as [`BenchRequest::lora_rank`]): only
    /// the adapters and the head are compared, and the device must give the frozen weights
    /// no gradient.
    pub lora_rank: Option<usize>,
}

/// How far a device's training step is from the CPU graph's (relative errors: the largest
/// difference over the largest reference value of each tensor; gradients against a floor of
/// 1e-3 × the largest gradient where the reference's are near zero).
#[derive(Debug, Clone, Serialize)]
pub struct DeviceCheck {
    pub device: String,
    /// The precision that ran (after any fallback).
    pub precision: Precision,
    /// What the device was compared with.
    pub reference: String,
    /// The CPU graph's f32 loss (for a mixed precision: how far its rounding moved the loss).
    pub loss_fp32: f64,
    pub tolerance: f64,
    pub loss_cpu: f64,
    pub loss_device: f64,
    pub logits_error: f64,
    /// The LoRA rank of the step, when adapters were trained instead of every weight.
    pub lora_rank: Option<usize>,
    /// Parameters whose gradients were compared.
    pub gradients: usize,
    /// Of those, the ones whose CPU gradient is zero everywhere (a comparison that shows
    /// nothing: a LoRA A whose B is still zero, a layer the loss does not reach).
    pub zero_gradients: usize,
    pub worst_gradient: String,
    pub worst_gradient_error: f64,
    /// The weights after two AdamW updates from the CPU's gradients, on the device against
    /// the CPU: the largest difference over the largest change (the update kernels).
    pub update_error: f64,
    /// The global norm of the CPU's gradients computed on the device against the CPU (the
    /// gradient-norm kernel): the relative difference.
    pub norm_error: f64,
    /// Values a dropout with the same seed dropped differently on the device and the CPU (of
    /// 65,536, in the check's precision's dtype; its mask is drawn inside the kernel, the
    /// same integer hash on both).
    pub dropout_mismatches: usize,
    /// Attention's probabilities op with its dropout (a causal batch with a prefix and
    /// padding keys) on the device against the CPU, in the check's precision's dtype: the
    /// largest difference of the probabilities and of the scores' gradient, each over the
    /// CPU's largest value.
    pub attention_error: f64,
    /// The loss op (`graph::cross_entropy`) on the device against the CPU, in the check's
    /// precision's dtype: a few classes, 301 with label smoothing, a 50,000-word vocabulary;
    /// the largest difference of the rows' losses and of the logits' gradient, each over the
    /// CPU's largest value (infinite when a NaN logit's row is not NaN on the device).
    pub cross_entropy_error: f64,
    pub passed: bool,
}

impl DeviceCheck {
    /// The largest error allowed in `precision`: f32 reductions in another order, or a few
    /// units in the last place of the low dtype (bf16 keeps 8 bits of mantissa, fp16 11):
    /// cuBLAS and the CPU round some products' results the other way, and twelve layers
    /// carry that on (an H200 against this CPU: ≤ 4e-2 in bf16, ≤ 6e-3 in fp16).
    pub fn tolerance(precision: Precision) -> f64 {
        match precision {
            Precision::Fp32 => 1e-3,
            Precision::Bf16 => 5e-2,
            Precision::Fp16 => 1e-2,
        }
    }
}

/// Runs one dropout-free training step's forward and backward of the same model and batch on
/// the CPU graph (f32) and on `request.device` in `request.precision`, and compares them.
pub fn check_device(request: &DeviceCheckRequest) -> Result<DeviceCheck, AppError> {
    use hone_engine::candle_core::{DType, Device, Tensor};
    let device = request.device.open()?;
    let (precision, _) = hone_engine::precision::resolve(request.precision, &device);
    let mut cfg = TrainingConfig {
        dropout: Some(0.0),
        ..Default::default()
    };
    with_lora(&mut cfg, request.lora_rank);
    let (task, classes) = bench_task(request.model)?;
    let reference = Model::load_for_run(request.model, task, classes, &cfg, &Device::Cpu, 0)?;
    let tested = Model::load_for_run(request.model, task, classes, &cfg, &device, 0)?;
    for model in [&reference, &tested] {
        hone_engine::recipes::apply_freezing(model, &cfg, None);
    }
    // A new adapter's B starts at zero, which would leave every A without a gradient.
    give_lora_b_values(&reference)?;
    // The same weights on both, the new head's too.
    for (from, to) in reference.params().all().iter().zip(tested.params().all()) {
        let copy = |from: &Tensor| -> Result<(), EngineError> {
            Ok(to.var().set(&from.to_device(&device)?)?)
        };
        copy(from.var().as_tensor())?;
    }
    let batch = bench_batch(
        &reference,
        request.model,
        request.batch_file,
        request.batch_size,
        request.max_length,
    )?;
    let rng = || hone_engine::rng::HoneRng::new(0, 0);
    let fp32 = hone_engine::step::gradients(&reference, &batch, true, rng())?;
    let loss_fp32 = fp32.loss;
    let (want, reference_name) = match precision.is_mixed() {
        true => (
            hone_engine::step::mixed_precision_gradients(&reference, &batch, precision, rng())?,
            format!("the CPU's autograd graph in {precision}"),
        ),
        false => (fp32, "the CPU graph in fp32".to_string()),
    };
    let got = hone_engine::step::mixed_precision_gradients(&tested, &batch, precision, rng())?;
    let error = |got: &Tensor, want: &Tensor, floor: f64| -> Result<f64, EngineError> {
        let got = got.to_device(&Device::Cpu)?.to_dtype(DType::F32)?;
        let diff = largest_magnitude(&(got - want)?)?;
        Ok(diff / largest_magnitude(want)?.max(floor).max(f64::MIN_POSITIVE))
    };
    let to_tensor = |l: &hone_engine::step::Logits| -> Result<Tensor, EngineError> {
        Ok(Tensor::from_slice(&l.values, l.values.len(), &Device::Cpu)?)
    };
    let logits_error = error(&to_tensor(&got.logits)?, &to_tensor(&want.logits)?, 0.0)?;
    let (mut floor, mut zero_gradients) = (0f64, 0);
    for g in want.grads.values() {
        let largest = largest_magnitude(g)?;
        floor = floor.max(largest * 1e-3);
        zero_gradients += usize::from(largest == 0.0);
    }
    let (mut worst_gradient, mut worst_gradient_error) = (String::new(), 0f64);
    for (name, w) in &want.grads {
        let g = got.grads.get(name).ok_or_else(|| {
            AppError::Invalid(format!(
                "{name} got a gradient on the CPU but none on {}",
                request.device
            ))
        })?;
        let e = error(g, w, floor)?;
        if e > worst_gradient_error || worst_gradient.is_empty() {
            (worst_gradient, worst_gradient_error) = (name.clone(), e);
        }
    }
    let (update_error, norm_error) = update_error(&reference, &tested, &cfg, &want.grads)?;
    let dropout_mismatches = dropout_mismatches(&device, precision.autocast())?;
    let attention_error = attention_error(&device, precision.autocast())?;
    let cross_entropy_error = cross_entropy_error(&device, precision.autocast())?;
    let tolerance = DeviceCheck::tolerance(precision);
    let loss_error = (got.loss - want.loss).abs() / want.loss.abs().max(f64::MIN_POSITIVE);
    Ok(DeviceCheck {
        device: hone_engine::device::device_name(&device),
        precision,
        reference: reference_name,
        loss_fp32,
        tolerance,
        loss_cpu: want.loss,
        loss_device: got.loss,
        logits_error,
        lora_rank: request.lora_rank,
        gradients: want.grads.len(),
        zero_gradients,
        passed: got.grads.len() == want.grads.len()
            && dropout_mismatches == 0
            && [
                loss_error,
                logits_error,
                worst_gradient_error,
                update_error,
                norm_error,
                attention_error,
                cross_entropy_error,
            ]
            .iter()
            .all(|e| *e < tolerance),
        worst_gradient,
        worst_gradient_error,
        update_error,
        norm_error,
        dropout_mismatches,
        attention_error,
        cross_entropy_error,
    })
}

/// Sets every LoRA B of `model` to small fixed values that differ from element to element
/// (`0.02 · sin(0.7 i + 1.3 n)` for element `i` of the `n`-th B), so that the step reaches the
/// A matrices; the same on every machine.
fn give_lora_b_values(model: &Model) -> Result<(), EngineError> {
    use hone_engine::candle_core::Tensor;
    let b_matrices = model
        .params()
        .all()
        .iter()
        .filter(|p| p.name().contains(".lora_B."));
    for (n, p) in b_matrices.enumerate() {
        let var = p.var();
        let values: Vec<f32> = (0..var.elem_count())
            .map(|i| 0.02 * (0.7 * i as f32 + 1.3 * n as f32).sin())
            .collect();
        let values = Tensor::from_vec(values, var.dims(), var.device())?.to_dtype(var.dtype())?;
        var.set(&values)?;
    }
    Ok(())
}

/// The largest absolute value of `t`.
fn largest_magnitude(t: &hone_engine::candle_core::Tensor) -> Result<f64, EngineError> {
    Ok(t.abs()?
        .max_all()?
        .to_dtype(hone_engine::candle_core::DType::F64)?
        .to_scalar::<f64>()?)
}

/// The largest difference of `got` from `want` over `want`'s largest value.
fn relative_error(
    got: &hone_engine::candle_core::Tensor,
    want: &hone_engine::candle_core::Tensor,
) -> Result<f64, EngineError> {
    Ok(largest_magnitude(&(got - want)?)? / largest_magnitude(want)?.max(f64::MIN_POSITIVE))
}

/// `t` on the CPU in f32 (to compare a device's result with the CPU's).
fn on_host_f32(
    t: &hone_engine::candle_core::Tensor,
) -> Result<hone_engine::candle_core::Tensor, EngineError> {
    use hone_engine::candle_core::{DType, Device};
    Ok(t.to_device(&Device::Cpu)?.to_dtype(DType::F32)?)
}

/// How many of 65,536 values a dropout (p = 0.1, one seed) keeps on `device` but drops on
/// the CPU, or the other way round, in `dtype` (mixed precision drops low-precision values;
/// f32 when none).
fn dropout_mismatches(
    device: &hone_engine::candle_core::Device,
    dtype: Option<hone_engine::candle_core::DType>,
) -> Result<usize, EngineError> {
    use hone_engine::candle_core::{DType, Device, Tensor};
    use hone_engine::graph::dropout::dropout;
    let x = Tensor::ones((256, 256), dtype.unwrap_or(DType::F32), &Device::Cpu)?;
    let kept = |t: Tensor| -> Result<Vec<bool>, EngineError> {
        Ok(t.to_device(&Device::Cpu)?
            .to_dtype(DType::F32)?
            .flatten_all()?
            .to_vec1::<f32>()?
            .iter()
            .map(|v| *v != 0.0)
            .collect())
    };
    let on_cpu = kept(dropout(&x, 0x5EED, 0.1)?)?;
    let on_device = kept(dropout(&x.to_device(device)?, 0x5EED, 0.1)?)?;
    Ok(on_cpu
        .iter()
        .zip(&on_device)
        .filter(|(a, b)| a != b)
        .count())
}

/// [`DeviceCheck::attention_error`]: `scores::dropped` forward and backward on `device` and
/// on the CPU, in `dtype` (f32 when none): causal rows after a prefix through dropout, and
/// rows longer than a block without it.
fn attention_error(
    device: &hone_engine::candle_core::Device,
    dtype: Option<hone_engine::candle_core::DType>,
) -> Result<f64, EngineError> {
    let dtype = dtype.unwrap_or(hone_engine::candle_core::DType::F32);
    // Two sequences, 3 heads, 40 queries after 3 prefix rows (the second's last 5 keys pad),
    // p = 0.1; then 300 keys (a block of 256 threads loops), no prefix, no dropout.
    let causal = attention_case(device, dtype, (40, 3), Some(3), Some((0x5EED, 0.1)))?;
    let long = attention_case(device, dtype, (300, 0), None, None)?;
    Ok(causal.max(long))
}

/// One [`attention_error`] case: `(queries, prefix)`, the causal prefix and the dropout.
fn attention_case(
    device: &hone_engine::candle_core::Device,
    dtype: hone_engine::candle_core::DType,
    (s, m): (usize, usize),
    causal: Option<usize>,
    drop: Option<(u64, f64)>,
) -> Result<f64, EngineError> {
    use hone_engine::candle_core::{DType, Device, Tensor, Var};
    let (b, h) = (2, 3);
    let w = s + m;
    let n = b * h * s * w;
    let values = |k: usize, scale: f32| -> Vec<f32> {
        (0..n)
            .map(|i| ((i * k) % 1000) as f32 * scale - 500.0 * scale)
            .collect()
    };
    let scores =
        Tensor::from_vec(values(7919, 0.01), (b, h, s, w), &Device::Cpu)?.to_dtype(dtype)?;
    let weights =
        Tensor::from_vec(values(31, 0.002), (b, h, s, w), &Device::Cpu)?.to_dtype(dtype)?;
    let mut bias = vec![0f32; b * w];
    bias[2 * w - 5..].fill(f32::MIN);
    let bias = Tensor::from_vec(bias, (b, 1, 1, w), &Device::Cpu)?;
    let run = |on: &Device| -> Result<(Tensor, Tensor), EngineError> {
        let x = Var::from_tensor(&scores.to_device(on)?)?;
        let probs = hone_engine::graph::scores::dropped(
            x.as_tensor(),
            &bias.to_device(on)?,
            0.125,
            causal,
            drop,
        )?;
        let grads = (&probs * weights.to_device(on)?)?
            .to_dtype(DType::F32)?
            .sum_all()?
            .backward()?;
        let dx = grads
            .get(x.as_tensor())
            .ok_or_else(|| EngineError::InvalidConfig("the scores got no gradient".into()))?;
        Ok((on_host_f32(&probs)?, on_host_f32(dx)?))
    };
    let ((p_cpu, d_cpu), (p_dev, d_dev)) = (run(&Device::Cpu)?, run(device)?);
    Ok(relative_error(&p_dev, &p_cpu)?.max(relative_error(&d_dev, &d_cpu)?))
}

/// [`DeviceCheck::cross_entropy_error`]: `cross_entropy::row_losses` forward and backward on
/// `device` and on the CPU, in `dtype` (f32 when none): `(rows, classes, smoothing)` of 6 × 5
/// (a block of 32 threads), 4 × 301 with ε = 0.1 (several warps), 3 × 50,000 with ε = 0.1 (a
/// vocabulary: each thread loops), labels at the first and last class; and a row with a NaN
/// logit, whose loss and gradient must stay NaN.
fn cross_entropy_error(
    device: &hone_engine::candle_core::Device,
    dtype: Option<hone_engine::candle_core::DType>,
) -> Result<f64, EngineError> {
    let dtype = dtype.unwrap_or(hone_engine::candle_core::DType::F32);
    let mut worst = 0f64;
    for (rows, classes, smoothing) in [(6, 5, 0.0), (4, 301, 0.1), (3, 50_000, 0.1)] {
        worst = worst.max(cross_entropy_case(
            device, dtype, rows, classes, smoothing, false,
        )?);
    }
    Ok(worst.max(cross_entropy_case(device, dtype, 2, 301, 0.0, true)?))
}

/// One [`cross_entropy_error`] case; with `nan`, the first row holds a NaN logit and the
/// error is infinite unless that row's loss and gradient are NaN on the device too (the other
/// rows are compared).
fn cross_entropy_case(
    device: &hone_engine::candle_core::Device,
    dtype: hone_engine::candle_core::DType,
    rows: usize,
    classes: usize,
    smoothing: f64,
    nan: bool,
) -> Result<f64, EngineError> {
    use hone_engine::candle_core::{Device, Tensor, Var};
    let n = rows * classes;
    let mut values: Vec<f32> = (0..n)
        .map(|i| ((i * 7919) % 1000) as f32 * 0.01 - 5.0)
        .collect();
    if nan {
        values[classes / 2] = f32::NAN;
    }
    let logits = Tensor::from_vec(values, (rows, classes), &Device::Cpu)?.to_dtype(dtype)?;
    let labels: Vec<u32> = (0..rows)
        .map(|r| if r % 2 == 0 { 0 } else { classes as u32 - 1 })
        .collect();
    let weights: Vec<f32> = (0..rows).map(|r| 1.0 + r as f32).collect();
    let run = |on: &Device| -> Result<(Tensor, Tensor), EngineError> {
        let x = Var::from_tensor(&logits.to_device(on)?)?;
        let labels = Tensor::from_vec(labels.clone(), rows, on)?;
        let losses =
            hone_engine::graph::cross_entropy::row_losses(x.as_tensor(), &labels, smoothing)?;
        let weights = Tensor::from_vec(weights.clone(), rows, on)?;
        let grads = (&losses * weights)?.sum_all()?.backward()?;
        let dx = grads
            .get(x.as_tensor())
            .ok_or_else(|| EngineError::InvalidConfig("the logits got no gradient".into()))?;
        Ok((on_host_f32(&losses)?, on_host_f32(dx)?))
    };
    let ((l_cpu, d_cpu), (l_dev, d_dev)) = (run(&Device::Cpu)?, run(device)?);
    let (l_cpu, d_cpu, l_dev, d_dev) = match nan {
        false => (l_cpu, d_cpu, l_dev, d_dev),
        true => {
            let row_is_nan = |l: &Tensor, d: &Tensor| -> Result<bool, EngineError> {
                let loss = l.get(0)?.to_scalar::<f32>()?;
                let grad = d.get(0)?.to_vec1::<f32>()?;
                Ok(loss.is_nan() && grad.iter().all(|g| g.is_nan()))
            };
            if !row_is_nan(&l_cpu, &d_cpu)? || !row_is_nan(&l_dev, &d_dev)? {
                return Ok(f64::INFINITY);
            }
            let rest = |t: Tensor| t.narrow(0, 1, rows - 1);
            (rest(l_cpu)?, rest(d_cpu)?, rest(l_dev)?, rest(d_dev)?)
        }
    };
    Ok(relative_error(&l_dev, &l_cpu)?.max(relative_error(&d_dev, &d_cpu)?))
}

/// Two AdamW updates of `reference` (on the CPU) and `tested` (on its device) from the same
/// gradients `grads` (the CPU's), a clip factor on them: the largest difference of any
/// updated weight over the largest change the CPU's updates made to it; and the relative
/// difference of the gradients' global norm computed on each.
fn update_error(
    reference: &Model,
    tested: &Model,
    cfg: &TrainingConfig,
    grads: &std::collections::HashMap<String, hone_engine::candle_core::Tensor>,
) -> Result<(f64, f64), EngineError> {
    use hone_engine::candle_core::{DType, Device};
    use hone_engine::optim::Gradients;
    let device = tested.device();
    let (mut on_cpu, mut on_device) = (Gradients::default(), Gradients::default());
    for (name, g) in grads {
        let g = g.to_dtype(DType::F32)?;
        on_device.insert(name, g.to_device(device)?);
        on_cpu.insert(name, g);
    }
    // The updated parameters: (reference, tested, the reference's weights before).
    let updated = reference
        .params()
        .all()
        .iter()
        .zip(tested.params().all())
        .filter(|(p, _)| grads.contains_key(p.name()))
        .map(|(want, got)| Ok((want, got, want.var().as_tensor().copy()?)))
        .collect::<Result<Vec<_>, EngineError>>()?;
    let cpu_norm = on_cpu.global_norm()?;
    let norm_error = (on_device.global_norm()? - cpu_norm).abs() / cpu_norm.max(f64::MIN_POSITIVE);
    let (mut cpu_optimizer, mut device_optimizer) = (
        hone_engine::recipes::optimizer(reference, cfg),
        hone_engine::recipes::optimizer(tested, cfg),
    );
    for _ in 0..2 {
        cpu_optimizer.step(&on_cpu, 1e-3, 0.5)?;
        device_optimizer.step(&on_device, 1e-3, 0.5)?;
    }
    let mut worst = 0f64;
    for (want, got, before) in &updated {
        let want = want.var().as_tensor();
        let got = got.var().as_tensor().to_device(&Device::Cpu)?;
        let change = largest_magnitude(&(want - before)?)?;
        worst = worst.max(largest_magnitude(&(got - want)?)? / change.max(f64::MIN_POSITIVE));
    }
    Ok((worst, norm_error))
}

/// A language model's synthetic batch: `batch_size` plain texts (each the sentences from a
/// different one on, run together until `max_length` tokens are surely filled), every token
/// learned.
fn language_model_batch(
    model: &Model,
    dir: &Path,
    batch_size: usize,
    max_length: usize,
) -> Result<hone_data::Batch, AppError> {
    use hone_engine::sft::{Conversations, TemplateChoice};
    let tokenizer = TextTokenizer::from_model_dir(dir, max_length)?;
    let conversations = Conversations::for_model(
        dir,
        model.spec(),
        &tokenizer,
        &TemplateChoice::None,
        hone_data::LossOn::All,
    )?;
    // A sentence is at least one token a word: this many words fill `max_length`.
    let examples: Vec<hone_data::Example> = (0..batch_size)
        .map(|i| {
            let (mut text, mut words) = (Vec::new(), 0);
            for k in i.. {
                if words >= max_length {
                    break;
                }
                let sentence = SENTENCES[k % SENTENCES.len()];
                words += sentence.split_whitespace().count();
                text.push(sentence);
            }
            hone_data::Example {
                text: text.join(" "),
                ..Default::default()
            }
        })
        .collect();
    let set = conversations.encode(&tokenizer, &examples)?;
    let all: Vec<usize> = (0..set.len()).collect();
    Ok(set.batch(
        &Batcher::new(model.spec().encoder.pad_token_id).padding_to(max_length),
        &all,
    ))
}

/// The fixed batch of a benchmark or device check: read from `batch_file`, else
/// `batch_size` synthetic sentences padded to `max_length` (for a text-to-text model, each
/// sentence's first quarter as its target; for a language model, texts of every sentence run
/// together, cut at `max_length`, so that every sequence is full).
fn bench_batch(
    model: &Model,
    dir: &Path,
    batch_file: Option<&Path>,
    batch_size: usize,
    max_length: usize,
) -> Result<hone_data::Batch, AppError> {
    let text2text = model.task() == Task::Text2Text;
    Ok(match batch_file {
        Some(path) => batch_from_json(path)?,
        None if model.task() == Task::CausalLm => {
            language_model_batch(model, dir, batch_size, max_length)?
        }
        None if text2text => {
            // Each sentence's first quarter as its target.
            let tokenizer = TextTokenizer::from_model_dir(dir, max_length)?;
            let examples: Vec<hone_data::Example> = (0..batch_size)
                .map(|i| {
                    let text = SENTENCES[i % SENTENCES.len()];
                    let words: Vec<&str> = text.split_whitespace().collect();
                    hone_data::Example {
                        text: text.to_string(),
                        label: Some(words[..words.len().div_ceil(4)].join(" ")),
                        ..Default::default()
                    }
                })
                .collect();
            let start = model
                .spec()
                .encoder
                .t5
                .as_ref()
                .map_or(0, |t| t.decoder_start_token_id);
            let set =
                hone_engine::seq2seq::encode(&tokenizer, &examples, "", max_length, start, true)?;
            let all: Vec<usize> = (0..set.len()).collect();
            set.batch(&Batcher::new(model.spec().encoder.pad_token_id), &all)
        }
        None => {
            let tokenizer = TextTokenizer::from_model_dir(dir, max_length)?;
            let texts: Vec<(&str, Option<&str>)> = (0..batch_size)
                .map(|i| (SENTENCES[i % SENTENCES.len()], None))
                .collect();
            let encoded = tokenizer.encode(&texts)?;
            let labels: Vec<u32> = (0..batch_size as u32).map(|i| i % 2).collect();
            Batcher::new(model.spec().encoder.pad_token_id)
                .padding_to(max_length)
                .batch(&encoded.iter().collect::<Vec<_>>(), &labels)
        }
    })
}
