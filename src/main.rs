//! `hone`: the command-line twin of the Hone app. Fine-tune, evaluate and run transformer
//! classifiers on your own machine.

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    exit_quietly_on_closed_pipe();
    hone_app::allocator::return_freed_memory_promptly();
    cli::run()
}

/// Writing into a closed pipe (`hone eval --json | head -c 100`) ends the process quietly, as
/// with other command-line tools, instead of a panic in `println!`: Rust ignores SIGPIPE by
/// default, so the write fails and `println!` panics.
fn exit_quietly_on_closed_pipe() {
    #[cfg(unix)]
    // SAFETY: restores the default disposition of one signal at start, before any thread
    // exists; no handler is installed.
    unsafe {
        libc::signal(libc::SIGPIPE, libc::SIG_DFL);
    }
}
