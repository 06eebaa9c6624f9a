//! Hone's own CUDA kernels (`kernels/*.cu`) as PTX, compiled by the build script with nvcc:
//! `ADAMW` (the optimizer's in-place update) and `ACTIVATIONS` (GELU's backward pass).

include!(concat!(env!("OUT_DIR"), "/ptx.rs"));
