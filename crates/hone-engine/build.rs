//! With the `cuda` feature: Hone's own CUDA kernels (`kernels/*.cu`) compiled to PTX with
//! nvcc, through cudaforge (the builder candle-kernels uses), into `$OUT_DIR/ptx.rs`.

fn main() {
    println!("cargo::rerun-if-changed=build.rs");
    println!("cargo::rerun-if-changed=kernels");
    #[cfg(feature = "cuda")]
    if let Err(e) = build_ptx() {
        panic!("compiling Hone's CUDA kernels (kernels/*.cu) failed: {e}");
    }
}

#[cfg(feature = "cuda")]
fn build_ptx() -> cudaforge::Result<()> {
    let out = std::path::PathBuf::from(std::env::var("OUT_DIR").expect("cargo sets OUT_DIR"));
    cudaforge::KernelBuilder::new()
        .source_dir("kernels")
        .arg("-std=c++17")
        .arg("-O3")
        .build_ptx()?
        .write(out.join("ptx.rs"))
}
