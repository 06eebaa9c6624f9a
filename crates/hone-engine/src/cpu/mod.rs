//! The CPU kernels behind the host graph (`crate::graph::host`): each op of a transformer
//! as a fused f32 kernel with its hand-derived backward, over packed (padding-free)
//! sequences; gradient buffers kept across steps; an in-place AdamW (`crate::optim`).

pub mod attention;
pub mod bf16;
pub mod biased;
pub mod decoder;
pub mod first_token;
pub mod gemm;
pub mod grads;
pub mod int8;
pub mod kernels;
pub mod lm_loss;
pub mod math;
pub mod prefix;

pub use grads::HostGrads;
