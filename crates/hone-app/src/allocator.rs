//! The process allocator (mimalloc, which both binaries install): freed pages go back to the
//! operating system at once.

/// `mi_option_purge_delay` in mimalloc.h (v2 and v3; default 10 ms in v2, 1000 ms in v3).
const MI_OPTION_PURGE_DELAY: libmimalloc_sys::mi_option_t = 15;

/// Makes mimalloc hand freed pages back to the OS at once. Training frees and re-allocates
/// batch-sized buffers every step; with the delayed purge a real MiniLM run at batch 32 ×
/// 128 tokens held 1.7 GB instead of 1.36 GB, at no measurable speed difference. A value set
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
            libmimalloc_sys::mi_option_set(MI_OPTION_PURGE_DELAY, 0);
        }
    }
}
