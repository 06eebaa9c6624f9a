//! How fast fine-tuning will run here, from config.json alone (before anything is downloaded):
//! the matrix work of one training step, divided by the rates this machine's matrix kernels
//! reach (f32, and bf16 where the CPU has it; measured once per process, in about 0.3 s) times
//! the share of that rate the step's products keep, plus the per-step passes over the
//! parameters (the optimizer's over the trained ones; the matrix kernel's packing of the layer
//! weights, which does not shrink with the batch and dominates short ones). The shares were
//! fitted to `hone bench` runs of encoders and decoders on dense batches (every token real;
//! `bench/speed_estimate.sh`, figures in `bench/README.md`); with the data's typical length
//! the estimate follows the CPU path, which drops padding.

use std::sync::OnceLock;
use std::time::Instant;

use serde::{Deserialize, Serialize};

use crate::cpu::gemm::{matmul, MatRef, Threads};
use crate::memory::{Dims, FitSettings};
use crate::models::spec::ModelSpec;

// The constants were fitted (2026-12-05, `DECODER=1 bench/speed_estimate.sh`) to 58 `hone
// bench` runs on dense batches: MiniLM-L6 from 16 × 13 to 8 × 256 (full and frozen
// embeddings) and SmolLM2-135M (LoRA from 8 × 128 to 1 × 1,024, full fine-tuning at 4 × 128
// and 8 × 64), each in fp32 and with bf16 products; the optimizer's and the overhead's terms
// fixed, the rest by least squares on relative error (`bench/README.md`). The rates they
// scale were 500–555 (f32) and 880–960 (bf16) GFLOP/s on two cores.

/// Share of the measured matrix rate the projections and feed-forward products of a step reach,
/// the element-wise kernels between them included (fitted).
const DENSE_EFFICIENCY: f64 = 0.73;
/// Share of the measured f32 rate the attention products reach: small per-(sequence, head)
/// matrices, with the softmax and its dropout around them (fitted).
const ATTENTION_EFFICIENCY: f64 = 0.27;
/// Time per step that does not grow with the model: thread hand-offs, batch assembly, the
/// loss (fitted on tiny models, where it dominates).
const STEP_OVERHEAD_SECONDS: f64 = 0.0005;
/// Per trained parameter and step: AdamW reads and writes it, its gradient and two moments
/// (measured: the optimizer phase of `hone bench`, 0.42–0.45 ns for MiniLM and SmolLM2).
const SECONDS_PER_TRAINED_PARAMETER: f64 = 0.45e-9;
/// Per encoder-layer weight and step, trained or frozen: the matrix kernel packs each weight
/// for the forward product and both backward ones whatever the batch (fitted; what makes short
/// batches slower than their FLOPs say).
const SECONDS_PER_LAYER_PARAMETER: f64 = 2.0e-9;
/// How much longer a bf16 or fp16 step takes on the CPU, where mixed precision runs candle's
/// autograd graph instead of Hone's CPU graph (MiniLM-L6: dense 16 × 128 `hone bench`, bf16
/// 2.0–2.3 s against fp32's ~0.8 s; the SST-2 fine-tune of `bench/sst2_accuracy.sh` in bf16
/// 3.25× fp32's time; fitted at 3).
const MIXED_PRECISION_ON_CPU: f64 = 3.0;
/// [`DENSE_EFFICIENCY`] of bf16 products, as a share of their own measured rate: the left
/// operand is converted and packed in every product (fitted).
const BF16_DENSE_EFFICIENCY: f64 = 0.58;
/// [`SECONDS_PER_LAYER_PARAMETER`] with bf16 products, per trained layer weight: a frozen
/// one's packings are kept across steps (fitted).
const SECONDS_PER_BF16_PACKED_PARAMETER: f64 = 2.2e-9;

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
    /// Weights of the encoder layers that train (with bf16 products only these are packed
    /// every step: a frozen weight's packings are kept).
    #[serde(default)]
    pub trained_layer_parameters: u64,
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
        // half the forward's); its causal mask spares the blocks of keys no query row of a
        // block sees.
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
            * dims.query as f64
            * match dims.decoder {
                Some(_) => crate::cpu::attention::causal_work_share(length),
                None => 1.0,
            },
        trainable_parameters: trainable,
        layer_parameters: (per_layer * config.num_layers as f64 * passes / 3.0) as u64,
        trained_layer_parameters: match settings.lora_rank {
            Some(_) => 0,
            None => (per_layer * config.num_layers as f64) as u64,
        },
        batch_size: batch,
        length,
    }
}

/// The expected speed of fine-tuning on this machine.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct SpeedEstimate {
    pub work: StepWork,
    /// The matrix rate measured here, in GFLOP/s, of the products the dense layers run in
    /// (bf16's with bf16 products).
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

/// The expected speed of fine-tuning `spec` at `settings` with matrix kernels that reach
/// `rates`.
pub fn estimate_speed(
    spec: &ModelSpec,
    settings: FitSettings,
    rates: MatrixRates,
) -> SpeedEstimate {
    let work = step_work(spec, settings);
    let f32_rate = rates.f32.max(0.1) * 1e9;
    // bf16 products: the dense layers at the bf16 rate; a frozen weight's packings are kept
    // across steps, so only the trained ones are packed each step.
    let bf16_rate = rates.bf16.filter(|_| settings.runs_bf16_products());
    let (dense_rate, packed_per_step) = match bf16_rate {
        Some(rate) => (
            rate.max(0.1) * 1e9 * BF16_DENSE_EFFICIENCY,
            work.trained_layer_parameters as f64 * SECONDS_PER_BF16_PACKED_PARAMETER,
        ),
        None => (
            f32_rate * DENSE_EFFICIENCY,
            work.layer_parameters as f64 * SECONDS_PER_LAYER_PARAMETER,
        ),
    };
    let step_seconds = work.dense_flops / dense_rate
        + work.attention_flops / (f32_rate * ATTENTION_EFFICIENCY)
        + work.trainable_parameters as f64 * SECONDS_PER_TRAINED_PARAMETER
        + packed_per_step
        + STEP_OVERHEAD_SECONDS;
    let matmul_gflops = bf16_rate.unwrap_or(rates.f32);
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

/// The rates (GFLOP/s) this machine's CPU matrix products reach.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct MatrixRates {
    /// f32 products (the `gemm` crate).
    pub f32: f64,
    /// bf16 products (`cpu::bf16`), where the CPU has them.
    pub bf16: Option<f64>,
}

/// The rate (GFLOP/s) the CPU matrix kernel reaches here on a product the size of a MiniLM
/// feed-forward block (1024 × 384 by 384 × 1536) with the training thread pool; measured once
/// per process (about 0.15 s), then remembered. Measure it while the machine is
/// otherwise idle (the desktop app does so at start), not during a run.
pub fn cpu_matmul_gflops() -> f64 {
    static MEASURED: OnceLock<f64> = OnceLock::new();
    *MEASURED.get_or_init(|| measure_matmul(1024, 384, 1536, matmul))
}

/// [`cpu_matmul_gflops`] for bf16 products (the right operand packed in each product, as a
/// trained weight is), where the CPU has them; measured once per process.
pub fn cpu_bf16_gflops() -> Option<f64> {
    static MEASURED: OnceLock<Option<f64>> = OnceLock::new();
    *MEASURED.get_or_init(|| {
        crate::cpu::bf16::available()
            .then(|| measure_matmul(1024, 384, 1536, crate::cpu::bf16::matmul))
    })
}

/// Both rates, [`cpu_matmul_gflops`] and [`cpu_bf16_gflops`].
pub fn cpu_matrix_rates() -> MatrixRates {
    MatrixRates {
        f32: cpu_matmul_gflops(),
        bf16: cpu_bf16_gflops(),
    }
}

/// A product `c (+)= a · b` on the training thread pool.
type Product = fn(&mut [f32], usize, MatRef, MatRef, bool, Threads);

/// Times `m × k` by `k × n` products: the fastest of those in [`TIMED`] (at least eight),
/// after [`WARM_UP`] of them untimed.
fn measure_matmul(m: usize, k: usize, n: usize, product: Product) -> f64 {
    let a: Vec<f32> = (0..m * k)
        .map(|x| ((x % 97) as f32 - 48.0) / 97.0)
        .collect();
    let b: Vec<f32> = (0..k * n)
        .map(|x| ((x % 89) as f32 - 44.0) / 89.0)
        .collect();
    let mut c = vec![0f32; m * n];
    let run = |c: &mut [f32]| {
        product(
            c,
            n,
            MatRef::new(&a, m, k),
            MatRef::new(&b, k, n),
            false,
            Threads::All,
        )
    };
    // The thread pool wakes and the clocks rise first: a few products' warm-up left the
    // figure anywhere between half and all of the rate (two cores, 273–551 GFLOP/s).
    let warm_up = Instant::now();
    while warm_up.elapsed() < WARM_UP {
        run(&mut c);
    }
    let flops = 2.0 * (m * k * n) as f64;
    let mut best = f64::INFINITY;
    let timing = Instant::now();
    for round in 0.. {
        if round >= 8 && timing.elapsed() >= TIMED {
            break;
        }
        let start = Instant::now();
        run(&mut c);
        best = best.min(start.elapsed().as_secs_f64());
    }
    flops / best.max(1e-9) / 1e9
}

/// How long [`measure_matmul`] multiplies before it times, and how long it times (at least
/// eight products).
const WARM_UP: std::time::Duration = std::time::Duration::from_millis(50);
const TIMED: std::time::Duration = std::time::Duration::from_millis(100);

#[cfg(test)]
mod tests {
    use super::*;
    use crate::memory::minilm;

    /// A CPU with f32 products at 200 GFLOP/s and no bf16 ones.
    const F32_ONLY: MatrixRates = MatrixRates {
        f32: 200.0,
        bf16: None,
    };

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
        let fast = estimate_speed(&minilm(), short, F32_ONLY);
        let slow = estimate_speed(&minilm(), long, F32_ONLY);
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
        let plain = estimate_speed(&minilm(), fp32, F32_ONLY);
        let mixed = estimate_speed(&minilm(), bf16, F32_ONLY);
        assert!((mixed.step_seconds / plain.step_seconds - MIXED_PRECISION_ON_CPU).abs() < 1e-9);
        // fp32 named explicitly is the CPU graph's speed.
        let named = FitSettings {
            autograd: Some(Precision::Fp32),
            ..fp32
        };
        assert_eq!(
            estimate_speed(&minilm(), named, F32_ONLY).step_seconds,
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
        let at_max = estimate_speed(&minilm(), max, F32_ONLY);
        let at_typical = estimate_speed(&minilm(), typical, F32_ONLY);
        assert_eq!(at_typical.work.length, 32);
        // A quarter of the tokens: about four times as fast (less the fixed costs).
        let ratio = at_typical.samples_per_second / at_max.samples_per_second;
        assert!(ratio > 3.0 && ratio < 4.5, "{ratio}");
        // Longer than the maximum is capped; memory stays sized for the longest batch.
        let long = FitSettings {
            typical_length: Some(4096),
            ..max
        };
        assert_eq!(estimate_speed(&minilm(), long, F32_ONLY).work.length, 128);
        assert_eq!(
            max.length(&minilm().encoder),
            typical.length(&minilm().encoder)
        );
    }

    #[test]
    fn bf16_products_are_estimated_at_their_own_rate_and_keep_frozen_packings() {
        let fp32 = FitSettings::default();
        let bf16 = FitSettings {
            bf16_products: true,
            ..fp32
        };
        let both = MatrixRates {
            f32: 200.0,
            bf16: Some(400.0),
        };
        let plain = estimate_speed(&minilm(), fp32, both);
        let fast = estimate_speed(&minilm(), bf16, both);
        assert!(fast.step_seconds < plain.step_seconds, "{fast:?} {plain:?}");
        assert_eq!(fast.matmul_gflops, 400.0);
        assert_eq!(plain.matmul_gflops, 200.0);
        // Without bf16 products on this CPU the run is fp32's.
        assert_eq!(
            estimate_speed(&minilm(), bf16, F32_ONLY).step_seconds,
            estimate_speed(&minilm(), fp32, F32_ONLY).step_seconds
        );
        // LoRA freezes every layer weight: none is packed per step.
        let lora = FitSettings {
            lora_rank: Some(8),
            ..bf16
        };
        assert_eq!(step_work(&minilm(), lora).trained_layer_parameters, 0);
        assert_eq!(
            step_work(&minilm(), bf16).trained_layer_parameters,
            6 * (4 * 384 * 384 + 2 * 384 * 1536)
        );
    }

    #[test]
    fn a_decoders_causal_attention_counts_the_blocks_it_multiplies() {
        use crate::memory::smollm2;
        let at = |length| {
            let settings = FitSettings {
                batch_size: 1,
                max_length: length,
                ..FitSettings::default()
            };
            step_work(&smollm2(), settings).attention_flops / (length * length) as f64
        };
        // Per token pair: one block at 64 tokens, eight at 1,024 (9/16 of the pairs).
        let share = at(1024) / at(64);
        assert!((share - 3.5 / 3.0 * 9.0 / 16.0).abs() < 1e-9, "{share}");
        assert_eq!(crate::cpu::attention::causal_work_share(64), 1.0);
    }

    #[test]
    fn the_matrix_rate_is_measured_and_positive() {
        let rate = measure_matmul(64, 64, 64, matmul);
        assert!(rate.is_finite() && rate > 0.01, "{rate}");
    }
}
