//! Hone's own CUDA kernels (`kernels/*.cu`) as PTX, compiled by the build script with nvcc:
//! `MULTI_TENSOR` (AdamW and the gradient norm over every parameter), `ACTIVATIONS` (GELU's
//! backward pass), `ROWS` (the norms' backward passes), `DROPOUT` (dropout with
//! its mask drawn in the kernel), `BIAS` (a mixed-precision product's f32 bias and its
//! gradient), `SCATTER` (the backward pass of a gather by ids the host knows), `SCORES`
//! (attention's probabilities from its raw scores, through dropout, and their backward pass),
//! `CROSS_ENTROPY` (each row's loss from its logits, and their gradient), `ROTARY` (rotary
//! position embeddings, either way) and `GATED` (a gated feed-forward's SiLU gate and its
//! backward pass).

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
