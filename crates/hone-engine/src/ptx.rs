//! Hone's own CUDA kernels (`kernels/*.cu`) as PTX, compiled by the build script with nvcc:
//! `ADAMW` (the optimizer's in-place update), `ACTIVATIONS` (GELU's backward pass) and `ROWS`
//! (softmax's and the norms' backward passes).

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
