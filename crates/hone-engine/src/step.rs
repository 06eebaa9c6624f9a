//! One optimizer step: forward, loss (the labels', or with a teacher the distillation loss;
//! plus the EWC penalty when a previous task is held) and backward over one or more
//! micro-batches, gradient clipping, the optimizer; and forward passes without gradients. Shared by the training loop, the
//! evaluation and the benchmark. A [`Stepper`] runs the model on the CPU graph
//! ([`crate::graph::host`]) when the model is f32 on the CPU and on candle's autograd
//! ([`crate::graph::autograd`]) otherwise; the model code is the same.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::Instant;

use candle_core::{census, Device};
use hone_data::Batch;

use crate::cpu::bf16::PackedCache;
use crate::cpu::lm_loss::LmScratch;
use crate::cpu::HostGrads;
use crate::distill::{distilled_loss_sum, Distill};
use crate::ewc::Ewc;
use crate::graph::autograd::{cross_entropy_sum, AutogradGraph};
use crate::graph::host::{
    self, cross_entropy_grad, language_model_loss_grad, HostGraph, Pool, WeightGuards,
};
use crate::graph::tokens::LabelsPer;
use crate::graph::Tokens;
use crate::models::Model;
use crate::optim::{Gradients, Optimizer};
use crate::precision::{LossScaler, Precision};
use crate::rng::HoneRng;
use crate::EngineError;

/// What one step did and how long its phases took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean loss over the step's labeled rows (examples, or tagged tokens).
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub examples: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
    /// Seconds of each phase on the host's clock. A GPU's work is queued: the forward's time
    /// is its queuing, the backward's waits for both passes (the loss is read after the
    /// backward is queued), and the optimizer's for the rest of the step.
    pub forward_s: f64,
    pub backward_s: f64,
    pub optimizer_s: f64,
    /// fp16's loss scale skipped this step: its gradients (or its forward pass) overflowed
    /// (the weights did not change; the scale was halved). The loss and gradient norm are
    /// then not finite.
    pub skipped_overflow: bool,
}

/// Checks a step's gradient norm and returns the factor clipping multiplies the gradients by
/// (`max / (norm + 1e-6)` capped at 1, as `torch.nn.utils.clip_grad_norm_`).
pub fn clip_factor(grad_norm: f64, clip_norm: Option<f64>, step: u64) -> Result<f64, EngineError> {
    if !grad_norm.is_finite() {
        return Err(EngineError::NonFiniteGradient {
            step,
            value: grad_norm,
        });
    }
    Ok(match clip_norm {
        Some(max) => (max / (grad_norm + 1e-6)).min(1.0),
        None => 1.0,
    })
}

/// Logits of one batch: one row per sequence (sequence heads), per real token (token
/// heads, in the batch's packed order) or per question (multiple choice: one column per
/// option).
#[derive(Debug, Clone, PartialEq, Default)]
pub struct Logits {
    pub values: Vec<f32>,
    pub classes: usize,
}

impl Logits {
    /// The rows.
    pub fn rows(&self) -> impl Iterator<Item = &[f32]> {
        self.values.chunks_exact(self.classes.max(1))
    }
}

/// The CPU graph's state kept across steps: gradient buffers, pooled activations and a
/// language model's output-layer chunk buffers.
#[derive(Default)]
struct HostState {
    grads: HostGrads,
    pool: Pool,
    lm_scratch: LmScratch,
    /// The dense layers' products in bf16 (`--precision bf16` on a CPU with AVX512-BF16),
    /// the frozen weights' packings kept here; `None`: in f32.
    bf16: Option<Arc<PackedCache>>,
}

/// Runs optimizer steps and evaluation passes for one model.
pub struct Stepper {
    host: Option<HostState>,
    /// Learn from the batches' teacher scores too (knowledge distillation).
    distill: Option<Distill>,
    /// Hold the weights a previous task needed (elastic weight consolidation).
    ewc: Option<Arc<Ewc>>,
    /// Label smoothing's ε (0: plain cross-entropy).
    smoothing: f64,
    /// The dtype of the autograd graph's matrix products (mixed precision).
    precision: Precision,
    /// fp16's dynamic loss scale.
    scaler: Option<LossScaler>,
}

/// How a step's summed loss is taken: `scale` (1 / the labeled rows: the mean) and label
/// smoothing's ε.
#[derive(Debug, Clone, Copy)]
struct LossSettings {
    scale: f64,
    smoothing: f64,
}

/// A micro-batch's teacher scores and how to learn from them, when distilling.
type Soft<'a> = Option<(&'a [f32], Distill)>;

fn labeled(tokens: &Tokens) -> Result<&[u32], EngineError> {
    tokens
        .labels()
        .ok_or_else(|| EngineError::InvalidConfig("training examples need labels".into()))
}

impl Stepper {
    /// A stepper for `model`; `fast` allows the CPU graph (used when the model is f32 on the
    /// CPU).
    pub fn new(model: &Model, fast: bool) -> Self {
        Stepper {
            host: (fast && host::supports(model.params())).then(HostState::default),
            distill: None,
            ewc: None,
            smoothing: 0.0,
            precision: Precision::Fp32,
            scaler: None,
        }
    }

    /// Runs the matrix products in `precision`: bf16 on the CPU graph where the CPU has
    /// AVX512-BF16 ([`Precision::runs_on_cpu_graph`]), any other mixed precision on candle's
    /// autograd graph; fp16 scales the loss dynamically. Pass what
    /// [`crate::precision::resolve`] gave.
    pub fn with_precision(mut self, precision: Precision) -> Self {
        self.precision = precision;
        match (&mut self.host, precision.runs_on_cpu_graph()) {
            (Some(state), true) => {
                state.bf16 = (precision == Precision::Bf16).then(Arc::default);
            }
            _ => self.host = None,
        }
        self.scaler = (precision == Precision::Fp16).then(LossScaler::new);
        self
    }

    /// Starts fp16's dynamic loss scale at `scale` instead of [`LossScaler::INITIAL`]
    /// (nothing to do in other precisions).
    pub fn with_initial_loss_scale(mut self, scale: f64) -> Self {
        if self.scaler.is_some() {
            self.scaler = Some(LossScaler::starting_at(scale));
        }
        self
    }

    /// Goes on from a saved scaler (a resumed fp16 run's), where this stepper scales the loss.
    pub fn with_loss_scaler(mut self, saved: Option<LossScaler>) -> Self {
        if let (Some(saved), true) = (saved, self.scaler.is_some()) {
            self.scaler = Some(saved);
        }
        self
    }

    /// fp16's dynamic loss scale as it stands (for a checkpoint), `None` in other precisions.
    pub fn loss_scaler(&self) -> Option<&LossScaler> {
        self.scaler.as_ref()
    }

    /// fp16's loss scale now, `None` in other precisions.
    pub fn loss_scale(&self) -> Option<f64> {
        self.scaler.as_ref().map(LossScaler::scale)
    }

    /// Trains on the batches' teacher scores as well as their labels (batches without teacher
    /// scores train on labels alone).
    pub fn with_distillation(mut self, distill: Option<Distill>) -> Self {
        self.distill = distill;
        self
    }

    /// Learns from label-smoothed targets: `1 − ε` on each label and `ε / classes` spread
    /// over every class (transformers' `label_smoothing_factor`); batches with teacher
    /// scores learn the distillation loss instead.
    pub fn with_label_smoothing(mut self, smoothing: f64) -> Self {
        self.smoothing = smoothing;
        self
    }

    /// Adds the EWC penalty of a previous task to every step.
    pub fn with_penalty(mut self, ewc: Option<Arc<Ewc>>) -> Self {
        self.ewc = ewc;
        self
    }

    /// True when passes run on the CPU graph.
    pub fn is_fast(&self) -> bool {
        self.host.is_some()
    }

    /// One optimizer step over `batches` (accumulated as one step of all their labeled rows)
    /// with learning rate `lr`; dropout masks come from `rng`. `step` (1-based) is used in
    /// error messages. A GPU's out-of-memory error says what batch to try.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        model: &Model,
        optimizer: &mut Optimizer,
        batches: &[Batch],
        clip_norm: Option<f64>,
        lr: f64,
        rng: HoneRng,
        step: u64,
    ) -> Result<StepOutcome, EngineError> {
        let done = self
            .step_inner(model, optimizer, batches, clip_norm, lr, rng, step)
            .and_then(|done| {
                // A GPU's work is queued: its errors (out of memory too) surface here, and the
                // step's time is its own.
                model.device().synchronize()?;
                Ok(done)
            });
        done.map_err(|e| on_batches(e, model, batches))
    }

    #[allow(clippy::too_many_arguments)]
    fn step_inner(
        &mut self,
        model: &Model,
        optimizer: &mut Optimizer,
        batches: &[Batch],
        clip_norm: Option<f64>,
        lr: f64,
        mut rng: HoneRng,
        step: u64,
    ) -> Result<StepOutcome, EngineError> {
        let packed = batches
            .iter()
            .map(|b| model.tokens(b))
            .collect::<Result<Vec<_>, _>>()?;
        let rows: usize = packed.iter().map(|t| t.labeled_rows()).sum();
        if rows == 0 {
            return Err(EngineError::InvalidConfig(
                "a training step needs labeled examples".into(),
            ));
        }
        let scale = 1.0 / rows as f64;
        let settings = LossSettings {
            scale,
            smoothing: self.smoothing,
        };
        let mut timing = Timing::default();
        let mut skipped_overflow = false;
        let soft: Vec<Soft> = batches
            .iter()
            .map(|b| {
                self.distill
                    .filter(|_| !b.soft_targets.is_empty())
                    .map(|d| (b.soft_targets.as_slice(), d))
            })
            .collect();
        let grad_norm = match &mut self.host {
            Some(state) => {
                let mut norm = host_step(
                    model,
                    state,
                    &packed,
                    &soft,
                    settings,
                    &mut rng,
                    step,
                    &mut timing,
                )?;
                if let Some(ewc) = &self.ewc {
                    let penalty = ewc.add_to_host(model.params(), &mut state.grads)?;
                    timing.loss_sum += penalty / scale;
                    norm = state.grads.squared_norm().sqrt();
                }
                let t = Instant::now();
                let factor = clip_factor(norm, clip_norm, step)?;
                optimizer.step_host(&state.grads, model.params(), lr, factor as f32)?;
                timing.optimizer_s = t.elapsed().as_secs_f64();
                norm
            }
            None => {
                let loss_scale = self.loss_scale().unwrap_or(1.0);
                let scaled = LossSettings {
                    scale: scale * loss_scale,
                    ..settings
                };
                let autocast = self.precision.autocast();
                let grads = autograd_step(
                    model,
                    &packed,
                    &soft,
                    scaled,
                    autocast,
                    &mut rng,
                    step,
                    &mut timing,
                );
                census::phase("optimizer");
                let mut grads = match grads {
                    // An fp16 product overflowed in the forward pass: skipped as an overflowing
                    // backward pass is (GradScaler's way), until the scale falls below 1.
                    Err(EngineError::NonFiniteLoss { .. }) if self.scaler.is_some() => {
                        timing.loss_sum = f64::NAN;
                        None
                    }
                    other => Some(other?),
                };
                // fp16: the scaled gradients' norm decides whether the step goes on; without
                // an EWC penalty it is the step's norm too, once unscaled (one read-back).
                let mut scaled_norm = None;
                if let Some(scaler) = &mut self.scaler {
                    let norm = match &grads {
                        Some(g) => g.global_norm()?,
                        None => f64::INFINITY,
                    };
                    skipped_overflow = !scaler.update(norm, step)?;
                    scaled_norm = Some(norm);
                }
                match grads.as_mut().filter(|_| !skipped_overflow) {
                    // The weights stay as they are; the scale was halved.
                    None => f64::INFINITY,
                    Some(grads) => {
                        // The loss scale is undone inside the update, with the clipping,
                        // unless EWC's penalty needs the true gradients first.
                        let mut unscale = 1.0 / loss_scale;
                        let mut norm = scaled_norm.map(|n| n * unscale);
                        if let Some(ewc) = &self.ewc {
                            grads.scale(unscale)?;
                            unscale = 1.0;
                            let penalty = ewc.add_to_tensors(model.params(), grads)?;
                            timing.loss_sum += penalty / scale;
                            norm = None;
                        }
                        let t = Instant::now();
                        let norm = match norm {
                            Some(n) => n,
                            // Unscaled already: EWC's path, or no loss scale.
                            None => grads.global_norm()?,
                        };
                        let factor = unscale * clip_factor(norm, clip_norm, step)?;
                        optimizer.step(grads, lr, factor)?;
                        timing.optimizer_s = t.elapsed().as_secs_f64();
                        norm
                    }
                }
            }
        };
        Ok(StepOutcome {
            loss: timing.loss_sum * scale,
            grad_norm,
            examples: packed.iter().map(Tokens::examples).sum(),
            tokens: packed.iter().map(Tokens::len).sum(),
            forward_s: timing.forward_s,
            backward_s: timing.backward_s,
            optimizer_s: timing.optimizer_s,
            skipped_overflow,
        })
    }

    /// Logits of `batch` in evaluation mode (no dropout, no gradients), on the stepper's
    /// own buffers.
    pub fn logits(&mut self, model: &Model, batch: &Batch) -> Result<Logits, EngineError> {
        self.logits_inner(model, batch)
            .map_err(|e| on_batches(e, model, std::slice::from_ref(batch)))
    }

    fn logits_inner(&mut self, model: &Model, batch: &Batch) -> Result<Logits, EngineError> {
        let tokens = model.tokens(batch)?;
        let mut rng = HoneRng::new(0, 0);
        match &self.host {
            Some(state) => host_forward(model, state, &tokens, false, &mut rng),
            None => {
                let mut g =
                    AutogradGraph::new(&tokens, model.device(), model.dtype(), false, &mut rng)?
                        .with_autocast(self.precision.autocast());
                let out = model.forward(&mut g)?;
                let logits = g.output(out)?;
                tensor_logits(&grouped(logits, &tokens)?)
            }
        }
    }
}

/// `err` as a clear out-of-memory error for these batches when it is one.
fn on_batches(err: EngineError, model: &Model, batches: &[Batch]) -> EngineError {
    let sequences = batches.iter().map(|b| b.batch_size).max().unwrap_or(0);
    let length = batches.iter().map(|b| b.seq_len).max().unwrap_or(0);
    err.on_batch(
        &crate::device::device_name(model.device()),
        sequences,
        length,
    )
}

#[derive(Default)]
struct Timing {
    /// Logits of every micro-batch, when asked for.
    logits: Option<Vec<Logits>>,
    loss_sum: f64,
    forward_s: f64,
    backward_s: f64,
    optimizer_s: f64,
}

/// The logits of one forward pass on the CPU graph: in training mode (`train`: dropout from
/// `rng`, as a step draws it) or evaluation mode; no backward pass follows.
fn host_forward(
    model: &Model,
    state: &HostState,
    tokens: &Tokens,
    train: bool,
    rng: &mut HoneRng,
) -> Result<Logits, EngineError> {
    let guards = WeightGuards::lock(model.params());
    let weights = guards.weights()?;
    let mut g = HostGraph::new(
        tokens,
        model.params(),
        &weights,
        train.then_some(&state.grads),
        rng,
        state.pool.clone(),
    )
    .with_int8(model.int8_weights())
    .with_bf16(state.bf16.as_ref());
    Ok(host_logits(&model.forward(&mut g)?, tokens))
}

/// Forward and backward of every micro-batch on the CPU graph; returns the gradient norm.
#[allow(clippy::too_many_arguments)]
fn host_step(
    model: &Model,
    state: &mut HostState,
    packed: &[Tokens],
    soft: &[Soft],
    settings: LossSettings,
    rng: &mut HoneRng,
    step: u64,
    timing: &mut Timing,
) -> Result<f64, EngineError> {
    state.grads.prepare(model.params());
    let guards = WeightGuards::lock(model.params());
    let weights = guards.weights()?;
    for (i, tokens) in packed.iter().enumerate() {
        let t0 = Instant::now();
        let labels = labeled(tokens)?;
        let soft = soft.get(i).copied().flatten();
        let mut g = HostGraph::new(
            tokens,
            model.params(),
            &weights,
            Some(&state.grads),
            rng,
            state.pool.clone(),
        )
        .with_bf16(state.bf16.as_ref());
        // A language model's output layer goes with its loss, a chunk of learned tokens at a
        // time, unless the logits themselves are asked for.
        let fused = model
            .output_layer()
            .filter(|_| timing.logits.is_none() && soft.is_none());
        let (out, tape, loss, d_out) = match fused {
            Some(weight) => {
                let hidden = model.forward_hidden(&mut g)?;
                let tape = g.finish();
                let (loss, d_hidden) = language_model_loss_grad(
                    &hidden,
                    weight,
                    model.params(),
                    &weights,
                    labels,
                    settings.scale,
                    settings.smoothing,
                    &state.pool,
                    &mut state.grads,
                    &mut state.lm_scratch,
                    state.bf16.as_deref(),
                )?;
                (hidden, tape, loss, d_hidden)
            }
            None => {
                let logits = model.forward(&mut g)?;
                let tape = g.finish();
                if let Some(kept) = &mut timing.logits {
                    kept.push(host_logits(&logits, tokens));
                }
                let (loss, d_logits) = cross_entropy_grad(
                    &logits,
                    tokens,
                    labels,
                    soft,
                    settings.scale,
                    settings.smoothing,
                    &state.pool,
                )?;
                (logits, tape, loss, d_logits)
            }
        };
        if !loss.is_finite() {
            return Err(EngineError::NonFiniteLoss { step, value: loss });
        }
        timing.loss_sum += loss;
        let t1 = Instant::now();
        tape.backward(&weights, &out, d_out, &mut state.grads)?;
        timing.forward_s += (t1 - t0).as_secs_f64();
        timing.backward_s += t1.elapsed().as_secs_f64();
    }
    Ok(state.grads.squared_norm().sqrt())
}

/// Forward and backward of every micro-batch through candle's autograd, its matrix products
/// in `autocast` when given; returns the summed gradients.
#[allow(clippy::too_many_arguments)]
fn autograd_step(
    model: &Model,
    packed: &[Tokens],
    soft: &[Soft],
    settings: LossSettings,
    autocast: Option<candle_core::DType>,
    rng: &mut HoneRng,
    step: u64,
    timing: &mut Timing,
) -> Result<Gradients, EngineError> {
    let mut grads = Gradients::default();
    for (i, tokens) in packed.iter().enumerate() {
        let t0 = Instant::now();
        census::phase("forward");
        let labels = labeled(tokens)?;
        host::check_smoothing(tokens, settings.smoothing)?;
        let soft = soft.get(i).copied().flatten();
        let mut g = AutogradGraph::new(tokens, model.device(), model.dtype(), true, rng)?
            .with_autocast(autocast);
        let out = model.forward(&mut g)?;
        let logits = grouped(g.output(out)?, tokens)?;
        if let Some(kept) = &mut timing.logits {
            kept.push(tensor_logits(&logits)?);
        }
        let loss = match soft {
            Some((teacher, distill)) => distilled_loss_sum(&logits, labels, teacher, distill)?,
            None => cross_entropy_sum(&logits, labels, settings.smoothing)?,
        };
        let t1 = Instant::now();
        census::phase("backward");
        let backward = (&loss * settings.scale)?.backward()?;
        // Read once the backward pass is queued: on a GPU reading the loss waits for the
        // forward pass, and the device would idle while the host built the backward's.
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(EngineError::NonFiniteLoss { step, value });
        }
        timing.loss_sum += value;
        grads.accumulate(&backward, model.params().trainable())?;
        timing.forward_s += (t1 - t0).as_secs_f64();
        timing.backward_s += t1.elapsed().as_secs_f64();
    }
    Ok(grads)
}

/// The CPU graph's logits as rows of classes: each question's options in one row, the ones
/// that pad it out of the softmax.
fn host_logits(logits: &host::HostValue, tokens: &Tokens) -> Logits {
    if tokens.labels_per() == LabelsPer::Span {
        return Logits {
            values: tokens.span_rows(logits.data()),
            classes: tokens.max_len(),
        };
    }
    let mut values = logits.data().to_vec();
    tokens.mask_padded_options(&mut values);
    Logits {
        values,
        classes: logits.cols() * tokens.group(),
    }
}

/// The scores of each group of options as one row (`[questions × options]`), the options
/// that pad a question out of its softmax; other tasks' logits as they are.
fn grouped(
    logits: candle_core::Tensor,
    tokens: &Tokens,
) -> Result<candle_core::Tensor, EngineError> {
    if tokens.labels_per() == LabelsPer::Span {
        return span_rows(&logits, tokens);
    }
    let group = tokens.group();
    let logits = match tokens.padded_options() {
        [] => logits,
        padded => {
            let mut shift = vec![0f32; padded.len()];
            tokens.mask_padded_options(&mut shift);
            let shift = candle_core::Tensor::from_vec(shift, (padded.len(), 1), logits.device())?
                .to_dtype(logits.dtype())?;
            logits.broadcast_add(&shift)?
        }
    };
    let (rows, cols) = logits.dims2()?;
    if group == 1 || rows % group != 0 {
        // Unlabeled options of questions with other counts: scored one by one.
        return Ok(logits);
    }
    Ok(logits.reshape((rows / group, cols * group))?)
}

/// [`Tokens::span_rows`] on a tensor: `[tokens × 2]` → `[2·sequences × longest]`, the slots
/// past a sequence's end at [`crate::graph::PADDED_OPTION_SCORE`].
fn span_rows(
    logits: &candle_core::Tensor,
    tokens: &Tokens,
) -> Result<candle_core::Tensor, EngineError> {
    use candle_core::Tensor;
    let (b, width) = (tokens.sequences(), tokens.max_len());
    let mut index = vec![0u32; b * width];
    let mut shift = vec![crate::graph::PADDED_OPTION_SCORE; b * width];
    for (row, span) in tokens.spans().iter().enumerate() {
        for j in 0..span.len {
            index[row * width + j] = (span.start + j) as u32;
            shift[row * width + j] = 0.0;
        }
    }
    let dev = logits.device();
    let shift = Tensor::from_vec(shift, (b * width, 1), dev)?.to_dtype(logits.dtype())?;
    Ok(crate::graph::lookup::HostIndex::new(&index, dev)?
        .select(logits, 0)?
        .broadcast_add(&shift)?
        .reshape((b, width, 2))?
        .transpose(1, 2)?
        .reshape((2 * b, width))?)
}

fn tensor_logits(t: &candle_core::Tensor) -> Result<Logits, EngineError> {
    Ok(Logits {
        classes: t.dim(1)?,
        values: t
            .to_dtype(candle_core::DType::F32)?
            .flatten_all()?
            .to_vec1()?,
    })
}

/// Logits, loss and gradients of one labeled batch.
pub struct BatchGradients {
    pub logits: Logits,
    /// Mean loss over the labeled rows.
    pub loss: f64,
    /// The gradient of the mean loss for every trained parameter, by Hub name.
    pub grads: HashMap<String, candle_core::Tensor>,
}

/// The gradients of one training forward and backward pass over `batch` (dropout from
/// `rng`), on the CPU graph when `fast` allows it, on candle's autograd otherwise; no
/// optimizer step. For checks against a reference and between the two graphs: the loss and
/// gradients are those of a training step (a language model's output layer fused with its
/// loss on the CPU graph).
pub fn gradients(
    model: &Model,
    batch: &Batch,
    fast: bool,
    rng: HoneRng,
) -> Result<BatchGradients, EngineError> {
    smoothed_gradients(model, batch, fast, rng, 0.0)
}

/// [`gradients`] of the label-smoothed loss (ε = `smoothing`).
pub fn smoothed_gradients(
    model: &Model,
    batch: &Batch,
    fast: bool,
    rng: HoneRng,
    smoothing: f64,
) -> Result<BatchGradients, EngineError> {
    gradients_in(model, batch, fast, rng, smoothing, Precision::Fp32)
}

/// [`gradients`] with the matrix products in `precision` (a mixed precision runs candle's
/// autograd graph; fp16 scales the loss by a fixed [`CHECK_LOSS_SCALE`] and the gradients
/// back, as training scales it dynamically, or small gradients would underflow).
pub fn mixed_precision_gradients(
    model: &Model,
    batch: &Batch,
    precision: Precision,
    rng: HoneRng,
) -> Result<BatchGradients, EngineError> {
    gradients_in(model, batch, false, rng, 0.0, precision)
}

/// [`mixed_precision_gradients`] on the CPU graph where it runs `precision`
/// ([`Precision::runs_on_cpu_graph`]: bf16 on a CPU with AVX512-BF16), else on the autograd
/// graph.
pub fn cpu_graph_gradients(
    model: &Model,
    batch: &Batch,
    precision: Precision,
    rng: HoneRng,
) -> Result<BatchGradients, EngineError> {
    gradients_in(model, batch, true, rng, 0.0, precision)
}

/// fp16's loss scale in [`mixed_precision_gradients`].
pub const CHECK_LOSS_SCALE: f64 = 1024.0;

fn gradients_in(
    model: &Model,
    batch: &Batch,
    fast: bool,
    mut rng: HoneRng,
    smoothing: f64,
    precision: Precision,
) -> Result<BatchGradients, EngineError> {
    let tokens = model.tokens(batch)?;
    let rows = tokens.labeled_rows();
    if rows == 0 {
        return Err(EngineError::InvalidConfig("the batch has no labels".into()));
    }
    let scale = 1.0 / rows as f64;
    let loss_scale = match precision {
        Precision::Fp16 => CHECK_LOSS_SCALE,
        _ => 1.0,
    };
    let settings = LossSettings {
        scale: scale * loss_scale,
        smoothing,
    };
    let packed = std::slice::from_ref(&tokens);
    let mut timing = Timing {
        logits: Some(Vec::new()),
        ..Timing::default()
    };
    let mut grads = HashMap::new();
    let mut stepper = Stepper::new(model, fast).with_precision(precision);
    // Gradients as they are: no loss scale.
    stepper.scaler = None;
    match &mut stepper.host {
        Some(state) => {
            // A language model's output layer goes with its loss (as in training): its logits
            // come from a second pass of the same dropout masks.
            let fused = model.output_layer().is_some();
            let start = rng.clone();
            if fused {
                timing.logits = None;
            }
            host_step(
                model,
                state,
                packed,
                &[],
                settings,
                &mut rng,
                1,
                &mut timing,
            )?;
            if fused {
                let logits = host_forward(model, state, &tokens, true, &mut start.clone())?;
                timing.logits = Some(vec![logits]);
            }
            for (i, p) in model.params().all().iter().enumerate() {
                if let Some(g) = state.grads.get(i) {
                    let t = candle_core::Tensor::from_slice(g, p.var().dims(), &Device::Cpu)?;
                    grads.insert(p.name().to_string(), t);
                }
            }
        }
        None => {
            let summed = autograd_step(
                model,
                packed,
                &[],
                settings,
                stepper.precision.autocast(),
                &mut rng,
                1,
                &mut timing,
            )?;
            for p in model.params().trainable() {
                if let Some(g) = summed.get(p.name()) {
                    grads.insert(p.name().to_string(), (g / loss_scale)?);
                }
            }
        }
    }
    let logits = timing
        .logits
        .and_then(|mut l| l.pop())
        .ok_or_else(|| EngineError::InvalidConfig("no forward pass ran".into()))?;
    Ok(BatchGradients {
        logits,
        loss: timing.loss_sum * scale,
        grads,
    })
}
