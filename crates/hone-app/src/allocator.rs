//! The process allocator (mimalloc, which both binaries install): freed pages go back to the
//! operating system within 10 ms.

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3; default 10 ms in v2, 1000 ms in v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// The purge delay: long enough that a buffer freed by one matrix product (the `gemm` crate
/// allocates its packing buffers per call) is reused by the next instead of being faulted in
/// afresh (0 ms cost a dense MiniLM step at 16 × 64 ~3%), short enough that memory freed at
/// the end of a phase goes back to the OS before the next peak (mimalloc v3's default of 1 s
/// raised the peak of a 32 × 128 run from 1.36 GB to 1.7 GB).
const PURGE_DELAY_MS: std::ffi::c_long = 10;

/// Makes mimalloc hand freed pages back to the OS after [`PURGE_DELAY_MS`]. A value set
/// through `MIMALLOC_PURGE_DELAY` is left alone.
pub fn return_freed_memory_promptly() {
    if std::env::var_os("MIMALLOC_PURGE_DELAY").is_some() {
        return;
    }
    // SAFETY: reading and setting a mimalloc option has no preconditions; the default-value
    // check guards against a different option numbering in another mimalloc version.
    unsafe {
        if matches!(
            libmimalloc_sys::mi_option_get(MI_OPTION_PURGE_DELAY),
            10 | 1000
        ) {
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, PURGE_DELAY_MS);
        }
    }
}
