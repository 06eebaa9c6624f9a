//! `hone`: the command-line twin of the Hone app. Fine-tune, evaluate and run transformer
//! classifiers on your own machine.

mod cli;

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() -> std::process::ExitCode {
    hone_app::allocator::return_freed_memory_promptly();
    cli::run()
}
