//! Mixed precision: which dtype the matrix products of a training step run in, the fallback
//! when a device cannot run it, and fp16's dynamic loss scaling.
//!
//! The weights, the optimizer state and every reduction (layer norm, softmax, the loss) stay
//! f32; under `bf16` or `fp16` the autograd graph casts the operands of each matrix product
//! (dense layers and attention) to the low dtype, as PyTorch's autocast does for `linear` and
//! `matmul`, and keeps the product's output in it through the bias (added in f32, rounded
//! once), the activation and dropout, up to the op that needs f32: a residual sum, a norm,
//! softmax, the loss (`graph::autograd`). The gradients reach the f32 weights through the
//! casts; a bias's gradient is summed in f32 (`graph::bias`).

use std::fmt;
use std::str::FromStr;

use candle_core::{DType, Device, Tensor};
use serde::{Deserialize, Serialize};

use crate::EngineError;

/// The dtype of a step's matrix products.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize, schemars::JsonSchema,
)]
#[serde(rename_all = "lowercase")]
pub enum Precision {
    /// Everything in f32 (the default; the CPU graph's only precision).
    #[default]
    Fp32,
    /// bfloat16 products (f32's range, 8 bits of mantissa): no loss scaling needed.
    Bf16,
    /// float16 products with dynamic loss scaling (for GPUs without bfloat16).
    Fp16,
}

impl Precision {
    /// The dtype matrix products are cast to, `None` for f32.
    pub fn autocast(self) -> Option<DType> {
        match self {
            Precision::Fp32 => None,
            Precision::Bf16 => Some(DType::BF16),
            Precision::Fp16 => Some(DType::F16),
        }
    }

    /// True for the low precisions (bf16, fp16).
    pub fn is_mixed(self) -> bool {
        self != Precision::Fp32
    }

    /// True when a step in this precision can run on Hone's CPU graph: fp32, and bf16 on a
    /// CPU with AVX512-BF16 (its dense products with bf16 operands and f32 sums); any other
    /// runs candle's autograd graph.
    pub fn runs_on_cpu_graph(self) -> bool {
        match self {
            Precision::Fp32 => true,
            Precision::Bf16 => crate::cpu::bf16::available(),
            Precision::Fp16 => false,
        }
    }
}

impl FromStr for Precision {
    type Err = String;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s.trim().to_ascii_lowercase().as_str() {
            "fp32" | "f32" | "float32" => Ok(Precision::Fp32),
            "bf16" | "bfloat16" => Ok(Precision::Bf16),
            "fp16" | "f16" | "float16" | "half" => Ok(Precision::Fp16),
            other => Err(format!(
                "unknown precision '{other}': use fp32, bf16 or fp16"
            )),
        }
    }
}

impl fmt::Display for Precision {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Precision::Fp32 => "fp32",
            Precision::Bf16 => "bf16",
            Precision::Fp16 => "fp16",
        })
    }
}

/// The precision a run gets on `device`, and a notice when it is not quite what was asked:
/// bf16 on a GPU that cannot multiply bfloat16 matrices falls back to fp16, and mixed
/// precision on the CPU, except bf16 where the CPU graph runs it, says it runs the (slower)
/// autograd graph.
pub fn resolve(requested: Precision, device: &Device) -> (Precision, Option<String>) {
    let Some(dtype) = requested.autocast() else {
        return (requested, None);
    };
    if device.is_cpu() && requested.runs_on_cpu_graph() {
        return (requested, None);
    }
    if device.is_cpu() {
        return (
            requested,
            Some(format!(
                "{requested} on the CPU runs candle's autograd graph, which is slower there than \
                 Hone's fp32 CPU graph; mixed precision pays on a GPU"
            )),
        );
    }
    if supports(device, dtype) {
        return (requested, None);
    }
    if requested == Precision::Bf16 && supports(device, DType::F16) {
        return (
            Precision::Fp16,
            Some(
                "this GPU cannot multiply bfloat16 matrices (it needs compute capability 8.0 or \
                 newer): training in fp16 with dynamic loss scaling instead"
                    .into(),
            ),
        );
    }
    (
        Precision::Fp32,
        Some(format!(
            "this device cannot multiply {requested} matrices: training in fp32 instead"
        )),
    )
}

/// True when a small product in `dtype` runs on `device`.
fn supports(device: &Device, dtype: DType) -> bool {
    let probe = || -> candle_core::Result<()> {
        let a = Tensor::ones((16, 16), DType::F32, device)?.to_dtype(dtype)?;
        let p = a.matmul(&a)?.to_dtype(DType::F32)?;
        let v = p.sum_all()?.to_scalar::<f32>()?;
        if v == 16.0 * 16.0 * 16.0 {
            Ok(())
        } else {
            Err(candle_core::Error::Msg(format!(
                "a {dtype:?} product gave {v}"
            )))
        }
    };
    probe().is_ok()
}

/// fp16's dynamic loss scale (PyTorch's `GradScaler` defaults): the loss is multiplied by the
/// scale before the backward pass and the gradients divided by it after; a step whose
/// gradients overflowed is skipped and the scale halved, and after `GROWTH_INTERVAL` steps in
/// a row without overflow it doubles. Saved with a resumable checkpoint, so a resumed run
/// goes on at the scale it had reached.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct LossScaler {
    scale: f64,
    good_steps: u32,
}

impl LossScaler {
    /// GradScaler's `init_scale`.
    pub const INITIAL: f64 = 65536.0;
    /// GradScaler's `growth_interval`.
    pub const GROWTH_INTERVAL: u32 = 2000;

    /// A scaler at `LossScaler::INITIAL`.
    pub fn new() -> Self {
        Self::starting_at(Self::INITIAL)
    }

    /// A scaler at `scale` (GradScaler's `init_scale`).
    pub fn starting_at(scale: f64) -> Self {
        LossScaler {
            scale,
            good_steps: 0,
        }
    }

    /// The factor the loss is multiplied by now.
    pub fn scale(&self) -> f64 {
        self.scale
    }

    /// Takes a step's (scaled) gradient norm: true when the step may go on (finite
    /// gradients), false when it must be skipped (the scale is halved then).
    pub fn update(&mut self, scaled_norm: f64, step: u64) -> Result<bool, EngineError> {
        if scaled_norm.is_finite() {
            self.good_steps += 1;
            if self.good_steps >= Self::GROWTH_INTERVAL {
                self.scale *= 2.0;
                self.good_steps = 0;
            }
            return Ok(true);
        }
        self.scale /= 2.0;
        self.good_steps = 0;
        if self.scale < 1.0 {
            // Even unscaled the gradients overflow: the run diverges, scaling cannot help.
            return Err(EngineError::NonFiniteGradient {
                step,
                value: scaled_norm,
            });
        }
        Ok(false)
    }
}

impl Default for LossScaler {
    fn default() -> Self {
        Self::new()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints_precisions() {
        for p in [Precision::Fp32, Precision::Bf16, Precision::Fp16] {
            assert_eq!(p.to_string().parse::<Precision>(), Ok(p));
        }
        assert_eq!("BFloat16".parse::<Precision>(), Ok(Precision::Bf16));
        assert!("fp8".parse::<Precision>().is_err());
        let json = serde_json::to_string(&Precision::Bf16).unwrap();
        assert_eq!(json, "\"bf16\"");
    }

    /// fp16 (and bf16 without AVX512-BF16) runs the autograd graph on the CPU and says so;
    /// bf16 on a CPU with AVX512-BF16 runs the CPU graph, with nothing to say.
    #[test]
    fn the_cpu_runs_mixed_precision_on_the_autograd_graph_with_a_notice() {
        assert_eq!(
            resolve(Precision::Fp32, &Device::Cpu),
            (Precision::Fp32, None)
        );
        let (p, notice) = resolve(Precision::Fp16, &Device::Cpu);
        assert_eq!(p, Precision::Fp16);
        assert!(notice.unwrap().contains("autograd"));
        assert!(!Precision::Fp16.runs_on_cpu_graph());
        let (p, notice) = resolve(Precision::Bf16, &Device::Cpu);
        assert_eq!(p, Precision::Bf16);
        match Precision::Bf16.runs_on_cpu_graph() {
            true => assert_eq!(notice, None),
            false => assert!(notice.unwrap().contains("autograd")),
        }
        assert!(supports(&Device::Cpu, DType::BF16));
        assert!(supports(&Device::Cpu, DType::F16));
    }

    #[test]
    fn the_loss_scale_backs_off_on_overflow_and_grows_after_good_steps() {
        let mut s = LossScaler::new();
        assert!(s.update(12.0, 1).unwrap());
        assert!(!s.update(f64::INFINITY, 2).unwrap());
        assert_eq!(s.scale(), LossScaler::INITIAL / 2.0);
        assert!(!s.update(f64::NAN, 3).unwrap());
        assert_eq!(s.scale(), LossScaler::INITIAL / 4.0);
        for _ in 0..LossScaler::GROWTH_INTERVAL {
            assert!(s.update(1.0, 4).unwrap());
        }
        assert_eq!(s.scale(), LossScaler::INITIAL / 2.0);
        // Halving below 1 means even unscaled gradients overflow.
        let mut s = LossScaler {
            scale: 1.0,
            good_steps: 0,
        };
        assert!(s.update(f64::INFINITY, 5).is_err());
    }
}
