//! How fast fine-tuning will run here, from config.json alone (before anything is downloaded):
//! the matrix work of one training step, divided by the rate this machine's matrix kernel
//! reaches (measured once per process, in well under a second) times the share of that rate
//! the step's products keep, plus the per-step passes over the parameters (the optimizer's
//! over the trained ones; the matrix kernel's packing of every layer weight, which does not
//! shrink with the batch and dominates short ones). The shares were fitted to `hone bench` runs
//! of MiniLM-L6 on dense batches (every token real) from 16 × 13 to 8 × 256, full and with
//! frozen embeddings (`bench/speed_estimate.sh`; figures in `bench/README.md`: every shape
//! within 4%); with the data's typical length the estimate follows the CPU path, which drops
//! padding.

use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cpu::gemm::{matmul, MatRef, Threads};
use crate::memory::{Dims, FitSettings};
use crate::models::spec::ModelSpec;

/// Share of the measured matrix rate the projections and feed-forward products of a step reach,
/// the element-wise kernels between them included (fitted).
const DENSE_EFFICIENCY: f64 = 0.63;
/// Share the attention products reach: small per-(sequence, head) matrices, with the softmax
/// and its dropout around them (fitted).
const ATTENTION_EFFICIENCY: f64 = 0.19;
/// Time per step that does not grow with the model: thread hand-offs, batch assembly, the
/// loss (fitted on tiny models, where it dominates).
const STEP_OVERHEAD_SECONDS: f64 = 0.0005;
/// Per trained parameter and step: AdamW reads and writes it, its gradient and two moments,
/// and the gradient is cleared and measured for clipping (fitted; memory bound).
const SECONDS_PER_TRAINED_PARAMETER: f64 = 1.0e-9;
/// Per encoder-layer weight and step, trained or frozen: the matrix kernel packs each weight
/// for the forward product and both backward ones whatever the batch (fitted; what makes short
/// batches slower than their FLOPs say).
const SECONDS_PER_LAYER_PARAMETER: f64 = 3.36e-9;
/// How much longer a bf16 or fp16 step takes on the CPU, where mixed precision runs candle's
/// autograd graph instead of Hone's CPU graph (MiniLM-L6: dense 16 × 128 `hone bench`, bf16
/// 2.0–2.3 s against fp32's ~0.8 s; the SST-2 fine-tune of `bench/sst2_accuracy.sh` in bf16
/// 3.25× fp32's time; fitted at 3).
const MIXED_PRECISION_ON_CPU: f64 = 3.0;

/// Floating-point work of one training step (forward and backward).
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct StepWork {
    /// FLOPs of the projections and feed-forward products (a multiply-add counts two).
    pub dense_flops: f64,
    /// FLOPs of the attention scores and context.
    pub attention_flops: f64,
    /// Parameters the optimizer updates.
    pub trainable_parameters: u64,
    /// Weights of the encoder layers (each packed by the matrix kernel every step).
    #[serde(default)]
    pub layer_parameters: u64,
    /// Sequences per step.
    pub batch_size: usize,
    /// Tokens per sequence the estimate assumes: the data's typical length when known, else
    /// the maximum (capped at the model's).
    pub length: usize,
}

/// The work of one training step of `spec` at `settings`: every sequence of the data's
/// typical length when the settings know it, else full length.
///
/// Per layer and token the forward pass multiplies through the four attention projections
/// (8h² for an encoder), the feed-forward block (4hi; 6hi gated) and the attention scores and
/// context (4Lh), and a language model's tokens through its output layer (2hV); the backward
/// pass costs twice the forward (the gradients of inputs and of weights).
pub fn step_work(spec: &ModelSpec, settings: FitSettings) -> StepWork {
    let config = &spec.encoder;
    let longest = settings.length(config);
    let length = settings
        .typical_length
        .map_or(longest, |t| t.clamp(1, longest));
    let batch = settings.batch_size.max(1);
    let dims = Dims::of(config);
    let (h, l) = (dims.hidden as f64, length as f64);
    let tokens = (batch * length) as f64;
    let token_layers = tokens * config.num_layers as f64;
    let (trainable, _) = settings.trained_and_added(config);
    let per_layer = dims.layer_matrix_weights() as f64;
    // A language model's output layer: every token multiplies through the vocabulary.
    let output_layer = match dims.decoder {
        Some(_) => 2.0 * h * dims.vocab as f64,
        None => 0.0,
    };
    // With LoRA the frozen weights need no gradient: their backward is the input's gradient
    // alone (two products of three), plus the adapters' own small products.
    let (passes, lora_flops) = match settings.lora_rank {
        Some(r) => (2.0, 3.0 * token_layers * 2.0 * 2.0 * r as f64 * 2.0 * h),
        None => (3.0, 0.0),
    };
    // DeBERTa: each position term scores every token against up to 2L relative rows (as much
    // as the scores themselves), and each layer projects the 2·span relative embeddings once
    // per step.
    let (position_terms, position_projections) = config.deberta.as_ref().map_or((0.0, 0.0), |d| {
        let terms = f64::from(u8::from(d.c2p) + u8::from(d.p2c));
        let rows = (2 * d.buckets.span) as f64;
        (terms, terms * config.num_layers as f64 * 2.0 * rows * h * h)
    });
    StepWork {
        dense_flops: passes
            * (token_layers * 2.0 * per_layer + tokens * output_layer + position_projections)
            + lora_flops,
        // A decoder's backward pass over long batches computes the scores again (`q·kᵀ`:
        // half the forward's).
        attention_flops: if dims.decoder.is_some()
            && crate::cpu::attention::recompute_pays(batch * dims.heads as usize * length * length)
        {
            3.5
        } else {
            3.0
        } * token_layers
            * 4.0
            * (1.0 + position_terms)
            * l
            * dims.query as f64,
        trainable_parameters: trainable,
        layer_parameters: (per_layer * config.num_layers as f64 * passes / 3.0) as u64,
        batch_size: batch,
        length,
    }
}

/// The expected speed of fine-tuning on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpeedEstimate {
    pub work: StepWork,
    /// The matrix rate measured here, in GFLOP/s.
    pub matmul_gflops: f64,
    pub step_seconds: f64,
    pub samples_per_second: f64,
}

impl SpeedEstimate {
    /// Seconds for `epochs` passes over `examples` training examples (validation not counted).
    pub fn seconds_for(&self, examples: u64, epochs: u64) -> f64 {
        let steps = examples.div_ceil(self.work.batch_size as u64) * epochs;
        steps as f64 * self.step_seconds
    }
}

/// The expected speed of fine-tuning `spec` at `settings` with a matrix kernel that reaches
/// `matmul_gflops`.
pub fn estimate_speed(
    spec: &ModelSpec,
    settings: FitSettings,
    matmul_gflops: f64,
) -> SpeedEstimate {
    let work = step_work(spec, settings);
    let rate = matmul_gflops.max(0.1) * 1e9;
    let step_seconds = work.dense_flops / (rate * DENSE_EFFICIENCY)
        + work.attention_flops / (rate * ATTENTION_EFFICIENCY)
        + work.trainable_parameters as f64 * SECONDS_PER_TRAINED_PARAMETER
        + work.layer_parameters as f64 * SECONDS_PER_LAYER_PARAMETER
        + STEP_OVERHEAD_SECONDS;
    let mixed_on_cpu = !settings.gpu && settings.autograd.is_some_and(|p| p.is_mixed());
    let step_seconds = match mixed_on_cpu {
        true => step_seconds * MIXED_PRECISION_ON_CPU,
        false => step_seconds,
    };
    SpeedEstimate {
        work,
        matmul_gflops,
        step_seconds,
        samples_per_second: work.batch_size as f64 / step_seconds,
    }
}

/// The rate (GFLOP/s) the CPU matrix kernel reaches here on a product the size of a MiniLM
/// feed-forward block (1024 × 384 by 384 × 1536) with the training thread pool; measured once
/// per process (about 0.1 s on two cores), then remembered. Measure it while the machine is
/// otherwise idle (the desktop app does so at start), not during a run.
pub fn cpu_matmul_gflops() -> f64 {
    static MEASURED: OnceLock<f64> = OnceLock::new();
    *MEASURED.get_or_init(|| measure_matmul(1024, 384, 1536))
}

/// Times `m × k` by `k × n` products: the best of several, after one warm-up.
fn measure_matmul(m: usize, k: usize, n: usize) -> f64 {
    let a: Vec<f32> = (0..m * k)
        .map(|x| ((x % 97) as f32 - 48.0) / 97.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|x| ((x % 89) as f32 - 44.0) / 89.0)
        .collect();
    let mut c = vec![0f32; m * n];
    let run = |c: &mut [f32]| {
        matmul(
            c,
            n,
            MatRef::new(&a, m, k),
            MatRef::new(&b, k, n),
            false,
            Threads::All,
        )
    };
    run(&mut c);
    let flops = 2.0 * (m * k * n) as f64;
    let mut best = f64::INFINITY;
    for _ in 0..8 {
        let start = Instant::now();
        run(&mut c);
        best = best.min(start.elapsed().as_secs_f64());
    }
    flops / best.max(1e-9) / 1e9
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::minilm;

    #[test]
    fn step_work_counts_the_products_of_a_bert_layer() {
        let settings = FitSettings {
            batch_size: 16,
            max_length: 64,
            ..FitSettings::default()
        };
        let work = step_work(&minilm(), settings);
        // 1024 tokens × 6 layers × 3 × (8·384² + 4·384·1536) and × 4·64·384: the 65.2 + 1.8
        // GFLOP torch_baseline.py counts for this batch.
        assert_eq!(
            work.dense_flops,
            1024.0 * 6.0 * 3.0 * (8.0 * 147456.0 + 4.0 * 589824.0)
        );
        assert_eq!(work.attention_flops, 1024.0 * 6.0 * 3.0 * 98304.0);
        assert!((work.dense_flops / 1e9 - 65.2).abs() < 0.1);
        assert_eq!(work.trainable_parameters, 22_713_986);
    }

    #[test]
    fn longer_batches_are_slower_per_sample_and_epochs_add_up() {
        let short = FitSettings {
            batch_size: 16,
            max_length: 64,
            ..FitSettings::default()
        };
        let long = FitSettings {
            max_length: 256,
            ..short
        };
        let fast = estimate_speed(&minilm(), short, 200.0);
        let slow = estimate_speed(&minilm(), long, 200.0);
        assert!(slow.samples_per_second < fast.samples_per_second / 4.0);
        assert_eq!(fast.seconds_for(160, 2), 20.0 * fast.step_seconds);
        assert!(fast.seconds_for(161, 1) > fast.seconds_for(160, 1));
    }

    #[test]
    fn mixed_precision_on_the_cpu_is_estimated_slower() {
        use crate::precision::Precision;
        let fp32 = FitSettings::default();
        let bf16 = FitSettings {
            autograd: Some(Precision::Bf16),
            ..fp32
        };
        let plain = estimate_speed(&minilm(), fp32, 200.0);
        let mixed = estimate_speed(&minilm(), bf16, 200.0);
        assert!((mixed.step_seconds / plain.step_seconds - MIXED_PRECISION_ON_CPU).abs() < 1e-9);
        // fp32 named explicitly is the CPU graph's speed.
        let named = FitSettings {
            autograd: Some(Precision::Fp32),
            ..fp32
        };
        assert_eq!(
            estimate_speed(&minilm(), named, 200.0).step_seconds,
            plain.step_seconds
        );
    }

    #[test]
    fn the_data_typical_length_sets_the_speed_not_the_memory() {
        let max = FitSettings {
            batch_size: 16,
            max_length: 128,
            ..FitSettings::default()
        };
        let typical = FitSettings {
            typical_length: Some(32),
            ..max
        };
        let at_max = estimate_speed(&minilm(), max, 200.0);
        let at_typical = estimate_speed(&minilm(), typical, 200.0);
        assert_eq!(at_typical.work.length, 32);
        // A quarter of the tokens: about four times as fast (less the fixed costs).
        let ratio = at_typical.samples_per_second / at_max.samples_per_second;
        assert!(ratio > 3.0 && ratio < 4.5, "{ratio}");
        // Longer than the maximum is capped; memory stays sized for the longest batch.
        let long = FitSettings {
            typical_length: Some(4096),
            ..max
        };
        assert_eq!(estimate_speed(&minilm(), long, 200.0).work.length, 128);
        assert_eq!(
            max.length(&minilm().encoder),
            typical.length(&minilm().encoder)
        );
    }

    #[test]
    fn the_matrix_rate_is_measured_and_positive() {
        let rate = measure_matmul(64, 64, 64);
        assert!(rate.is_finite() && rate > 0.01, "{rate}");
    }
}
