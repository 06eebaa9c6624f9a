//! `hone-desktop`: the Hone window.
#![cfg_attr(not(debug_assertions), windows_subsystem = "windows")]

#[global_allocator]
static GLOBAL: mimalloc::MiMalloc = mimalloc::MiMalloc;

fn main() {
    hone_app::allocator::return_freed_memory_promptly();
    hone_desktop::run();
}
