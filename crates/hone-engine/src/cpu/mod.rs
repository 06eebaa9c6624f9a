//! The CPU training path: the network's forward and backward passes written out with fused
//! kernels over packed (padding-free) sequences, gradients in buffers kept across steps, and an
//! in-place AdamW. Used whenever the model lives on the CPU in f32; other devices go through
//! candle's autograd (`crate::models::Classifier::forward`). Both paths compute the same
//! function and are checked against the same `transformers` reference.

pub mod attention;
pub mod gemm;
pub mod grads;
pub mod kernels;
pub mod math;
pub mod model;

use std::time::Instant;

use hone_data::Batch;

pub use grads::HostGrads;
pub use model::{CpuModel, Packed, Saved, Scratch};

use crate::models::Classifier;
use crate::optim::AdamW;
use crate::rng::HoneRng;
use crate::step::{clip_factor, StepOutcome};
use crate::EngineError;

/// Training and inference state of the CPU path for one model.
pub struct CpuTrainer {
    model: CpuModel,
    grads: HostGrads,
    saved: Saved,
    scratch: Scratch,
}

impl CpuTrainer {
    /// The CPU path for `model`, or `None` when the model is not f32 on the CPU.
    pub fn new(model: &Classifier) -> Option<Self> {
        Some(CpuTrainer {
            model: CpuModel::new(model)?,
            grads: HostGrads::default(),
            saved: Saved::default(),
            scratch: Scratch::default(),
        })
    }

    /// One optimizer step over `batches` (accumulated), as [`crate::step::train_step`] does it.
    pub fn step(
        &mut self,
        optimizer: &mut AdamW,
        batches: &[Packed],
        clip_norm: Option<f64>,
        lr: f64,
        rng: &mut HoneRng,
        step: u64,
    ) -> Result<StepOutcome, EngineError> {
        let examples: usize = batches.iter().map(Packed::sequences).sum();
        if examples == 0 {
            return Err(EngineError::InvalidConfig(
                "a training step needs examples".into(),
            ));
        }
        if batches.iter().any(|b| b.labels().len() != b.sequences()) {
            return Err(EngineError::InvalidConfig(
                "training examples need labels".into(),
            ));
        }
        self.grads.prepare(self.model.params());
        let (mut loss_sum, mut tokens) = (0f64, 0usize);
        let (mut forward_s, mut backward_s) = (0f64, 0f64);
        {
            let guards = self.model.lock();
            let weights = guards.weights()?;
            for packed in batches {
                let t0 = Instant::now();
                tokens += packed.tokens();
                self.model
                    .forward(&weights, packed, true, rng, &mut self.saved);
                let t1 = Instant::now();
                let share = packed.sequences() as f32 / examples as f32;
                let loss = self.model.backward(
                    &weights,
                    packed,
                    &self.saved,
                    share,
                    &mut self.grads,
                    &mut self.scratch,
                );
                if !loss.is_finite() {
                    return Err(EngineError::NonFiniteLoss { step, value: loss });
                }
                loss_sum += loss * packed.sequences() as f64;
                forward_s += (t1 - t0).as_secs_f64();
                backward_s += t1.elapsed().as_secs_f64();
            }
        }
        let t2 = Instant::now();
        let grad_norm = self.grads.squared_norm().sqrt();
        let scale = clip_factor(grad_norm, clip_norm, step)?;
        optimizer.step_host(&self.grads, self.model.params(), lr, scale as f32)?;
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

    /// Logits `[sequences × labels]` of a packed batch in evaluation mode.
    pub fn logits(&mut self, packed: &Packed) -> Result<Vec<f32>, EngineError> {
        let guards = self.model.lock();
        let weights = guards.weights()?;
        let mut rng = HoneRng::new(0, 0);
        Ok(self
            .model
            .forward(&weights, packed, false, &mut rng, &mut self.saved)
            .to_vec())
    }
}

/// Packs every batch, or `None` when one of them is not right-padded.
pub fn pack_all(model: &Classifier, batches: &[Batch]) -> Option<Vec<Packed>> {
    batches
        .iter()
        .map(|b| Packed::from_batch(model, b))
        .collect()
}
