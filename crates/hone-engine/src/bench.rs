//! Timing full training steps and forward passes on one fixed batch (`hone bench`), with the
//! figures named as `../shared/bench/torch_baseline.py` names them so the two compare directly.

use std::path::Path;
use std::time::Instant;

use candle_core::census;
use hone_data::Batch;
use serde::{Deserialize, Serialize};

use crate::config::TrainingConfig;
use crate::inference::batch_logits;
use crate::memory::FitSettings;
use crate::models::Model;
use crate::recipes::{apply_freezing, optimizer};
use crate::rng::HoneRng;
use crate::step::Stepper;
use crate::EngineError;

/// Summary statistics of repeated timings, in seconds.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Timing {
    pub median_s: f64,
    pub mean_s: f64,
    pub min_s: f64,
    pub max_s: f64,
    pub n: usize,
}

impl Timing {
    /// Statistics of `samples` (at least one).
    pub fn of(samples: &[f64]) -> Self {
        let mut sorted = samples.to_vec();
        sorted.sort_by(f64::total_cmp);
        let n = sorted.len();
        let median = if n % 2 == 1 {
            sorted[n / 2]
        } else {
            (sorted[n / 2 - 1] + sorted[n / 2]) / 2.0
        };
        Timing {
            median_s: median,
            mean_s: sorted.iter().sum::<f64>() / n as f64,
            min_s: sorted[0],
            max_s: sorted[n - 1],
            n,
        }
    }
}

/// Median time of each phase of a training step.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PhaseTimes {
    pub forward_loss: f64,
    pub backward: f64,
    pub optimizer: f64,
}

/// The result of a benchmark.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BenchReport {
    pub batch: usize,
    pub seq: usize,
    pub threads: usize,
    pub params: u64,
    pub dropout: bool,
    /// "cpu" (Hone's CPU path) or "autograd" (candle's autograd).
    pub path: String,
    /// Forward + loss + backward + AdamW.
    pub train_step: Timing,
    pub train_phase_median_s: PhaseTimes,
    /// Evaluation-mode forward pass.
    pub forward_only: Timing,
    pub samples_per_s: f64,
    pub tokens_per_s: f64,
    pub fwd_samples_per_s: f64,
    /// Peak resident memory of the process (Linux), MiB.
    pub peak_rss_mib: Option<f64>,
    pub loss_first_last: [f64; 2],
    /// Share of the batch's token slots that are real tokens (the CPU path skips the rest).
    pub real_token_share: f64,
    /// The matrix rates the estimate took (measured before the steps), on the CPU path.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub matrix_rates: Option<crate::speed::MatrixRates>,
    /// What the speed estimate (`crate::speed`, used by the fit check before a download) says
    /// for this shape with every slot a real token, and the step's work by kind, on the CPU
    /// path; compare its samples/s with a dense batch's.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub speed_estimate: Option<crate::speed::SpeedEstimate>,
    /// The operations of one training step and one forward pass, when asked for.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub census: Option<OpCensus>,
}

/// How many steps to run.
#[derive(Debug, Clone, Copy)]
pub struct BenchSettings {
    /// Untimed steps (and forward passes) first.
    pub warmup: usize,
    /// Timed training steps (and timed forward passes, unless `forward_steps` says otherwise).
    pub steps: usize,
    /// Timed forward passes when not `steps` (at least one): a kernel profile keeps them
    /// equal between a short and a long run, so that they cancel out.
    pub forward_steps: Option<usize>,
    pub lr: f64,
    /// Count the backend operations of one more training step and forward pass
    /// ([`OpCensus`]).
    pub census: bool,
}

/// The backend operations of one training step (phases `forward`, `backward`, `optimizer`)
/// and one evaluation pass (`evaluation`), counted by candle's census (vendored): each is one
/// kernel launch on a GPU, so this tells on the CPU what a step would launch there.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct OpCensus {
    /// Each operation kind per phase, in step order, the most launched first.
    pub ops: Vec<CensusRow>,
}

/// Launches and bytes of a phase (`op` empty) or of one operation kind in it.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CensusRow {
    pub phase: String,
    pub op: String,
    pub launches: u64,
    /// Bytes the operations' inputs and outputs span.
    pub bytes: u64,
}

impl OpCensus {
    const PHASES: [&'static str; 4] = ["forward", "backward", "optimizer", "evaluation"];

    fn of(rows: Vec<census::Row>) -> Self {
        let row = |r: &census::Row| CensusRow {
            phase: r.phase.to_string(),
            op: r.op.to_string(),
            launches: r.count.launches,
            bytes: r.count.bytes,
        };
        let mut ops: Vec<CensusRow> = rows.iter().map(row).collect();
        let order = |phase: &str| Self::PHASES.iter().position(|p| *p == phase);
        ops.sort_by(|a, b| {
            (order(&a.phase), b.launches, &a.op).cmp(&(order(&b.phase), a.launches, &b.op))
        });
        OpCensus { ops }
    }

    /// Each phase's totals (`op` empty), in step order.
    pub fn phases(&self) -> Vec<CensusRow> {
        Self::PHASES
            .iter()
            .map(|phase| {
                let of_phase = self.ops.iter().filter(|r| r.phase == *phase);
                CensusRow {
                    phase: phase.to_string(),
                    op: String::new(),
                    launches: of_phase.clone().map(|r| r.launches).sum(),
                    bytes: of_phase.map(|r| r.bytes).sum(),
                }
            })
            .collect()
    }

    /// The training step's launches (forward, backward and optimizer).
    pub fn step_launches(&self) -> u64 {
        self.ops
            .iter()
            .filter(|r| r.phase != "evaluation")
            .map(|r| r.launches)
            .sum()
    }
}

/// Peak resident set size of this process in MiB (`VmHWM`), where the OS reports it.
pub fn peak_rss_mib() -> Option<f64> {
    let status = std::fs::read_to_string("/proc/self/status").ok()?;
    let line = status.lines().find(|l| l.starts_with("VmHWM:"))?;
    let kib: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kib / 1024.0)
}

#[derive(Deserialize)]
struct BatchFile {
    input_ids: Vec<Vec<u32>>,
    #[serde(default)]
    token_type_ids: Option<Vec<Vec<u32>>>,
    attention_mask: Vec<Vec<u32>>,
    /// One per sequence; per decoder slot (-100 for none) in a text-to-text batch.
    labels: Vec<i64>,
    /// A text-to-text batch's decoder inputs (`input_ids` are then the encoder's).
    #[serde(default)]
    decoder_input_ids: Option<Vec<Vec<u32>>>,
    #[serde(default)]
    decoder_attention_mask: Option<Vec<Vec<u32>>>,
}

/// Reads a fixed batch written by `torch_baseline.py --dump-batch` (JSON lists of lists), or
/// a text-to-text batch (`bench/t5_step.py`: the source as `input_ids`, the decoder's inputs
/// and per-slot labels).
pub fn batch_from_json(path: &Path) -> Result<Batch, EngineError> {
    let text = std::fs::read_to_string(path).map_err(|e| EngineError::io(path, e))?;
    let file: BatchFile = serde_json::from_str(&text)
        .map_err(|e| EngineError::InvalidConfig(format!("{}: {e}", path.display())))?;
    let bad = || {
        EngineError::InvalidConfig(format!(
            "{}: input_ids, attention_mask, token_type_ids, labels (and decoder_input_ids, \
             decoder_attention_mask) must describe one rectangular batch",
            path.display()
        ))
    };
    let label = |y: i64| -> Result<u32, EngineError> {
        match y {
            -100 => Ok(crate::graph::IGNORE_LABEL),
            y => u32::try_from(y).map_err(|_| bad()),
        }
    };
    let labels: Vec<u32> = file
        .labels
        .iter()
        .map(|&y| label(y))
        .collect::<Result<_, _>>()?;
    let source = padded(
        &file.input_ids,
        &file.attention_mask,
        file.token_type_ids.as_ref(),
    )
    .ok_or_else(bad)?;
    match (&file.decoder_input_ids, &file.decoder_attention_mask) {
        (Some(ids), Some(mask)) => {
            let mut target = padded(ids, mask, None).ok_or_else(bad)?;
            if labels.len() != target.batch_size * target.seq_len
                || target.batch_size != source.batch_size
            {
                return Err(bad());
            }
            target.labels = labels;
            target.source = Some(Box::new(source));
            Ok(target)
        }
        (None, None) if labels.len() == source.batch_size => Ok(Batch { labels, ..source }),
        _ => Err(bad()),
    }
}

/// A rectangular batch of rows (unlabeled), `None` when the rows are ragged or empty.
fn padded(ids: &[Vec<u32>], mask: &[Vec<u32>], types: Option<&Vec<Vec<u32>>>) -> Option<Batch> {
    let batch_size = ids.len();
    let seq_len = ids.first().map(Vec::len)?;
    let rows_ok =
        |rows: &[Vec<u32>]| rows.len() == batch_size && rows.iter().all(|r| r.len() == seq_len);
    if batch_size == 0 || !rows_ok(ids) || !rows_ok(mask) || types.is_some_and(|t| !rows_ok(t)) {
        return None;
    }
    Some(Batch {
        input_ids: ids.concat(),
        token_type_ids: types
            .map(|t| t.concat())
            .unwrap_or_else(|| vec![0; batch_size * seq_len]),
        attention_mask: mask.concat(),
        labels: Vec::new(),
        batch_size,
        seq_len,
        padded_options: Vec::new(),
        soft_targets: Vec::new(),
        source: None,
    })
}

/// Times `settings.steps` training steps and forward passes of `model` on `batch` (on the CPU
/// path when `fast` and possible, through candle's autograd otherwise).
pub fn run_bench(
    model: &Model,
    batch: &Batch,
    cfg: &TrainingConfig,
    settings: BenchSettings,
    fast: bool,
) -> Result<BenchReport, EngineError> {
    // Measured first, while nothing else runs.
    // The bf16 rate only where the run multiplies in bf16: its measurement's buffers would
    // count in an fp32 run's peak memory.
    let rates = fast.then(|| crate::speed::MatrixRates {
        f32: crate::speed::cpu_matmul_gflops(),
        bf16: (cfg.precision == crate::precision::Precision::Bf16)
            .then(crate::speed::cpu_bf16_gflops)
            .flatten(),
    });
    apply_freezing(model, cfg, None);
    let mut optimizer = optimizer(model, cfg);
    let batches = std::slice::from_ref(batch);
    let mut stepper = Stepper::new(model, fast).with_precision(cfg.precision);
    let (mut totals, mut forward, mut backward, mut opt, mut losses) =
        (Vec::new(), Vec::new(), Vec::new(), Vec::new(), Vec::new());
    let mut take_step = |stepper: &mut Stepper, step: u64| {
        stepper.step(
            model,
            &mut optimizer,
            batches,
            cfg.clip_norm,
            settings.lr,
            HoneRng::new(cfg.seed, step),
            step + 1,
        )
    };
    for step in 0..settings.warmup + settings.steps {
        let t0 = Instant::now();
        let done = take_step(&mut stepper, step as u64)?;
        let total = t0.elapsed().as_secs_f64();
        if step >= settings.warmup {
            totals.push(total);
            forward.push(done.forward_s);
            backward.push(done.backward_s);
            opt.push(done.optimizer_s);
            losses.push(done.loss);
        }
    }
    let mut counted = Vec::new();
    if settings.census {
        let step = (settings.warmup + settings.steps) as u64;
        census::start("forward");
        let done = take_step(&mut stepper, step);
        counted = census::stop();
        done?;
    }
    let path = match (stepper.is_fast(), cfg.precision.is_mixed()) {
        (true, false) => "cpu".to_string(),
        (true, true) => format!("cpu {}", cfg.precision),
        (false, false) => "autograd".to_string(),
        (false, true) => format!("autograd {}", cfg.precision),
    };
    // The training buffers go before the forward-only ones come, as in a real run, so the peak
    // memory is the training step's.
    drop(stepper);
    let mut stepper = Stepper::new(model, fast).with_precision(cfg.precision);
    let mut forward_only = Vec::new();
    let forward_steps = settings.forward_steps.unwrap_or(settings.steps).max(1);
    for i in 0..settings.warmup + forward_steps {
        let t0 = Instant::now();
        batch_logits(model, &mut stepper, batch)?;
        if i >= settings.warmup {
            forward_only.push(t0.elapsed().as_secs_f64());
        }
    }
    if settings.census {
        census::start("evaluation");
        let done = batch_logits(model, &mut stepper, batch);
        counted.extend(census::stop());
        done?;
    }
    let train_step = Timing::of(&totals);
    let forward_only = Timing::of(&forward_only);
    let d = model.spec().encoder.dropout;
    let slots = (batch.batch_size * batch.seq_len).max(1);
    let real = batch.attention_mask.iter().filter(|&&m| m != 0).count();
    let on_cpu_graph = path.starts_with("cpu");
    let estimate = rates.filter(|_| on_cpu_graph).map(|rates| {
        let settings = FitSettings {
            batch_size: batch.batch_size,
            max_length: batch.source.as_ref().map_or(batch.seq_len, |s| s.seq_len),
            freeze_embeddings: cfg.freeze_embeddings,
            num_labels: model.num_labels(),
            // The CPU path skips padding: the batch's real tokens per sequence (the
            // sources' for a text-to-text batch).
            typical_length: Some({
                let read = batch.source.as_deref().unwrap_or(batch);
                let real = read.attention_mask.iter().filter(|&&m| m != 0).count();
                (real / read.batch_size.max(1)).max(1)
            }),
            lora_rank: model.spec().lora.as_ref().map(|l| l.r),
            autograd: None,
            bf16_products: cfg.precision == crate::precision::Precision::Bf16,
            gpu: false,
            device: Some(crate::device::DeviceSpec::Cpu),
            // A text-to-text batch is its targets (the sources inside).
            target_length: batch.source.as_ref().map(|_| batch.seq_len),
        };
        crate::speed::estimate_speed(model.spec(), settings, rates)
    });
    Ok(BenchReport {
        batch: batch.batch_size,
        seq: batch.seq_len,
        threads: candle_core::utils::get_num_threads(),
        params: model.params().count() as u64,
        dropout: d.hidden > 0.0 || d.attention > 0.0,
        path: path.clone(),
        train_phase_median_s: PhaseTimes {
            forward_loss: Timing::of(&forward).median_s,
            backward: Timing::of(&backward).median_s,
            optimizer: Timing::of(&opt).median_s,
        },
        samples_per_s: batch.batch_size as f64 / train_step.median_s,
        tokens_per_s: (batch.batch_size * batch.seq_len) as f64 / train_step.median_s,
        fwd_samples_per_s: batch.batch_size as f64 / forward_only.median_s,
        train_step,
        forward_only,
        peak_rss_mib: peak_rss_mib(),
        loss_first_last: [
            losses.first().copied().unwrap_or(f64::NAN),
            losses.last().copied().unwrap_or(f64::NAN),
        ],
        real_token_share: real as f64 / slots as f64,
        matrix_rates: rates,
        speed_estimate: estimate,
        census: settings.census.then(|| OpCensus::of(counted)),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn median_of_even_and_odd_counts() {
        assert_eq!(Timing::of(&[3.0, 1.0, 2.0]).median_s, 2.0);
        assert_eq!(Timing::of(&[4.0, 1.0, 2.0, 3.0]).median_s, 2.5);
    }
}
