//! Hone's own CUDA kernels (`kernels/*.cu`) as PTX, compiled by the build script with nvcc:
//! `ADAMW` (the optimizer's in-place update), `ACTIVATIONS` (GELU's backward pass), `ROWS`
//! (softmax's and the norms' backward passes) and `DROPOUT` (dropout with its mask drawn in
//! the kernel).

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
