//! One optimizer step: forward, loss and backward over one or more micro-batches, gradient
//! clipping, AdamW. Shared by the training loop and the benchmark. [`Stepper`] takes the CPU
//! path (`crate::cpu`) when it can and candle's autograd otherwise.

use std::time::Instant;

use hone_data::Batch;

use crate::cpu::{pack_all, CpuTrainer};
use crate::models::Classifier;
use crate::ops::{cross_entropy, ForwardCtx};
use crate::optim::{AdamW, Gradients};
use crate::rng::HoneRng;
use crate::EngineError;

/// What one step did and how long its phases took.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct StepOutcome {
    /// Mean loss over the step's examples.
    pub loss: f64,
    /// Global gradient norm before clipping.
    pub grad_norm: f64,
    pub examples: usize,
    /// Real (non-padding) tokens.
    pub tokens: usize,
    pub forward_s: f64,
    pub backward_s: f64,
    pub optimizer_s: f64,
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

/// Runs one optimizer step over `batches` (accumulated as one step of all their examples),
/// with the learning rate `lr`. `step` (1-based) is only used in error messages.
pub fn train_step(
    model: &Classifier,
    optimizer: &mut AdamW,
    batches: &[Batch],
    clip_norm: Option<f64>,
    lr: f64,
    ctx: &mut ForwardCtx,
    step: u64,
) -> Result<StepOutcome, EngineError> {
    let examples: usize = batches.iter().map(|b| b.batch_size).sum();
    let mut grads = Gradients::default();
    let (mut loss_sum, mut tokens) = (0f64, 0usize);
    let (mut forward_s, mut backward_s) = (0f64, 0f64);
    for batch in batches {
        let t0 = Instant::now();
        tokens += batch.real_tokens();
        let inputs = model.inputs(batch)?;
        let labels = inputs
            .labels
            .as_ref()
            .ok_or_else(|| EngineError::InvalidConfig("training examples need labels".into()))?;
        let logits = model.forward(&inputs, ctx)?;
        let loss = cross_entropy(&logits, labels)?;
        let value = loss.to_scalar::<f32>()? as f64;
        if !value.is_finite() {
            return Err(EngineError::NonFiniteLoss { step, value });
        }
        loss_sum += value * batch.batch_size as f64;
        let t1 = Instant::now();
        let share = batch.batch_size as f64 / examples as f64;
        let backward = (loss * share)?.backward()?;
        grads.accumulate(&backward, model.params().trainable())?;
        forward_s += (t1 - t0).as_secs_f64();
        backward_s += t1.elapsed().as_secs_f64();
    }
    let t2 = Instant::now();
    let grad_norm = grads.global_norm()?;
    grads.scale(clip_factor(grad_norm, clip_norm, step)?)?;
    optimizer.step(&grads, lr)?;
    Ok(StepOutcome {
        loss: loss_sum / examples.max(1) as f64,
        grad_norm,
        examples,
        tokens,
        forward_s,
        backward_s,
        optimizer_s: t2.elapsed().as_secs_f64(),
    })
}

/// Runs optimizer steps for one model, on the CPU path when the model is f32 on the CPU and the
/// batches are right-padded, through candle's autograd otherwise.
pub struct Stepper {
    cpu: Option<CpuTrainer>,
}

impl Stepper {
    /// A stepper for `model`; `fast` allows the CPU path.
    pub fn new(model: &Classifier, fast: bool) -> Self {
        Stepper {
            cpu: if fast { CpuTrainer::new(model) } else { None },
        }
    }

    /// The CPU path's trainer (and its buffers), when steps run on it.
    pub fn cpu_mut(&mut self) -> Option<&mut CpuTrainer> {
        self.cpu.as_mut()
    }

    /// True when steps run on the CPU path.
    pub fn is_fast(&self) -> bool {
        self.cpu.is_some()
    }

    /// One optimizer step over `batches` with learning rate `lr`; dropout masks come from
    /// `rng`. `step` (1-based) is used in error messages.
    #[allow(clippy::too_many_arguments)]
    pub fn step(
        &mut self,
        model: &Classifier,
        optimizer: &mut AdamW,
        batches: &[Batch],
        clip_norm: Option<f64>,
        lr: f64,
        mut rng: HoneRng,
        step: u64,
    ) -> Result<StepOutcome, EngineError> {
        if let Some(cpu) = &mut self.cpu {
            if let Some(packed) = pack_all(model, batches) {
                return cpu.step(optimizer, &packed, clip_norm, lr, &mut rng, step);
            }
        }
        let mut ctx = ForwardCtx::train(rng);
        train_step(model, optimizer, batches, clip_norm, lr, &mut ctx, step)
    }
}
