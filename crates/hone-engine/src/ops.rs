//! Differentiable building blocks of the encoders.
//!
//! candle's fused `softmax_last_dim`, `layer_norm`, `rms_norm`, `rope` and `sdpa` record no
//! autograd node, so a model built from them silently trains only its head. Everything here is
//! composed from ops whose backward candle implements (matmul, broadcast arithmetic, exp, sqrt,
//! reductions, gather, erf-GELU, ...).

use candle_core::{Tensor, D};
use serde::{Deserialize, Serialize};

/// `x · wᵀ + b` over the last dimension of `x` (any leading dimensions).
pub fn linear(x: &Tensor, weight: &Tensor, bias: Option<&Tensor>) -> candle_core::Result<Tensor> {
    let dims = x.dims();
    let in_features = dims[dims.len() - 1];
    let rows = x.elem_count() / in_features;
    let y = x.reshape((rows, in_features))?.matmul(&weight.t()?)?;
    let y = match bias {
        Some(b) => y.broadcast_add(b)?,
        None => y,
    };
    let mut out_dims = dims.to_vec();
    let last = out_dims.len() - 1;
    out_dims[last] = weight.dim(0)?;
    y.reshape(out_dims)
}

/// Layer normalisation over the last dimension (biased variance, as PyTorch).
pub fn layer_norm(
    x: &Tensor,
    gamma: &Tensor,
    beta: &Tensor,
    eps: f64,
) -> candle_core::Result<Tensor> {
    let mean = x.mean_keepdim(D::Minus1)?;
    let centered = x.broadcast_sub(&mean)?;
    let var = centered.sqr()?.mean_keepdim(D::Minus1)?;
    let normed = centered.broadcast_div(&(var + eps)?.sqrt()?)?;
    normed.broadcast_mul(gamma)?.broadcast_add(beta)
}

/// RMS normalisation over the last dimension: `x / √(mean(x²) + eps) · gamma`.
pub fn rms_norm(x: &Tensor, gamma: &Tensor, eps: f64) -> candle_core::Result<Tensor> {
    let ms = x.sqr()?.mean_keepdim(D::Minus1)?;
    x.broadcast_div(&(ms + eps)?.sqrt()?)?.broadcast_mul(gamma)
}

/// Softmax over the last dimension. The max that keeps `exp` finite is a constant shift
/// (it cancels in the gradient), so it is detached.
pub fn softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let e = x.broadcast_sub(&max)?.exp()?;
    let sum = e.sum_keepdim(D::Minus1)?;
    e.broadcast_div(&sum)
}

/// Log-softmax over the last dimension.
pub fn log_softmax_last_dim(x: &Tensor) -> candle_core::Result<Tensor> {
    let max = x.max_keepdim(D::Minus1)?.detach();
    let shifted = x.broadcast_sub(&max)?;
    let log_sum = shifted.exp()?.sum_keepdim(D::Minus1)?.log()?;
    shifted.broadcast_sub(&log_sum)
}

/// The activation function of a feed-forward block, by its `transformers` name.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Activation {
    /// Exact GELU, `x·Φ(x)` ("gelu").
    Gelu,
    /// The tanh approximation of GELU ("gelu_new", "gelu_pytorch_tanh", "gelu_fast").
    GeluTanh,
    Relu,
    /// SiLU / swish.
    Silu,
    /// tanh (BERT's pooler, RoBERTa's classification head).
    Tanh,
}

impl Activation {
    /// Parses a `hidden_act` / `activation` value of a config.json.
    pub fn from_config(name: &str) -> Option<Self> {
        match name {
            "gelu" | "gelu_python" => Some(Activation::Gelu),
            "gelu_new" | "gelu_pytorch_tanh" | "gelu_fast" => Some(Activation::GeluTanh),
            "relu" => Some(Activation::Relu),
            "silu" | "swish" => Some(Activation::Silu),
            "tanh" => Some(Activation::Tanh),
            _ => None,
        }
    }

    /// Applies the activation.
    pub fn apply(self, x: &Tensor) -> candle_core::Result<Tensor> {
        match self {
            Activation::Gelu => x.gelu_erf(),
            Activation::GeluTanh => x.gelu(),
            Activation::Relu => x.relu(),
            Activation::Silu => x.silu(),
            Activation::Tanh => x.tanh(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use candle_core::{DType, Device, Var};

    fn close(a: &[f32], b: &[f32], tol: f32) {
        assert_eq!(a.len(), b.len());
        for (x, y) in a.iter().zip(b) {
            assert!((x - y).abs() <= tol, "{a:?} vs {b:?}");
        }
    }

    #[test]
    fn softmax_and_layer_norm_match_their_definitions() -> candle_core::Result<()> {
        let x = Tensor::new(&[[1f32, 2.0, 3.0], [0.0, 0.0, 0.0]], &Device::Cpu)?;
        let s = softmax_last_dim(&x)?.to_vec2::<f32>()?;
        close(&s[0], &[0.090_030_57, 0.244_728_48, 0.665_240_94], 1e-6);
        close(&s[1], &[1.0 / 3.0; 3], 1e-6);
        let g = Tensor::new(&[1f32, 2.0, 1.0], &Device::Cpu)?;
        let b = Tensor::new(&[0f32, 0.0, 1.0], &Device::Cpu)?;
        let n = layer_norm(&x, &g, &b, 1e-12)?.to_vec2::<f32>()?;
        let z = (1.5f32).sqrt();
        close(&n[0], &[-z, 0.0, z + 1.0], 1e-5);
        Ok(())
    }

    #[test]
    fn every_block_passes_gradients() -> candle_core::Result<()> {
        let dev = Device::Cpu;
        let x = Var::new(&[[0.3f32, -1.2, 0.7], [1.0, 0.1, -0.4]], &dev)?;
        let g = Var::new(&[1f32, 0.5, 2.0], &dev)?;
        let b = Var::new(&[0.1f32, 0.0, -0.1], &dev)?;
        let w = Var::new(&[[0.2f32, -0.3, 0.5], [0.7, 0.1, -0.2]], &dev)?;
        let h = layer_norm(x.as_tensor(), g.as_tensor(), b.as_tensor(), 1e-5)?;
        let h = Activation::Gelu.apply(&h)?;
        let logits = linear(&softmax_last_dim(&h)?, w.as_tensor(), None)?;
        let grads = crate::graph::autograd::cross_entropy_sum(&logits, &[1, 0], 0.0)
            .expect("labels fit")
            .backward()?;
        for v in [&x, &g, &b, &w] {
            let gr = grads.get(v.as_tensor()).expect("a gradient");
            let norm = gr.sqr()?.sum_all()?.to_scalar::<f32>()?;
            assert!(norm > 0.0);
        }
        Ok(())
    }

    #[test]
    fn cross_entropy_of_uniform_logits_is_log_classes_and_ignored_rows_count_nothing() {
        let logits = Tensor::zeros((4, 5), DType::F32, &Device::Cpu).expect("zeros");
        let ignore = crate::graph::IGNORE_LABEL;
        let labels = [0, ignore, 2, 4];
        let sum = crate::graph::autograd::cross_entropy_sum(&logits, &labels, 0.0).expect("loss");
        let loss = sum.to_scalar::<f32>().expect("scalar");
        assert!((loss - 3.0 * 5f32.ln()).abs() < 1e-5);
        assert!(crate::graph::autograd::cross_entropy_sum(&logits, &[0, 1, 2, 5], 0.0).is_err());
    }
}
