//! `hone-hub-testserver --repo ORG/NAME=DIR [--repo ...] [--port P]`: serves model folders as
//! Hub repositories on 127.0.0.1 (for the app's end-to-end test and for demos), until killed.

use std::path::PathBuf;

use hone_hub_testserver::{Repo, TestHub};

fn main() {
    let mut args = std::env::args().skip(1);
    let mut port = 0u16;
    let mut repos = Vec::new();
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--port" => {
                port = args
                    .next()
                    .and_then(|p| p.parse().ok())
                    .unwrap_or_else(|| fail("--port needs a number"))
            }
            "--repo" => {
                let spec = args
                    .next()
                    .unwrap_or_else(|| fail("--repo needs ORG/NAME=DIR"));
                let (id, dir) = spec
                    .split_once('=')
                    .unwrap_or_else(|| fail("--repo needs ORG/NAME=DIR"));
                let repo = Repo::from_dir(id, &PathBuf::from(dir))
                    .unwrap_or_else(|e| fail(&format!("cannot read {dir}: {e}")))
                    .task("text-classification")
                    .stats(1000 + repos.len() as u64, 10, "2026-01-01T00:00:00.000Z");
                repos.push(repo);
            }
            _ => fail("usage: hone-hub-testserver --repo ORG/NAME=DIR [--repo ...] [--port P]"),
        }
    }
    let hub =
        TestHub::start_on(port, repos).unwrap_or_else(|e| fail(&format!("cannot listen: {e}")));
    println!("listening on {}", hub.url());
    loop {
        std::thread::park();
    }
}

fn fail(message: &str) -> ! {
    eprintln!("hone-hub-testserver: {message}");
    std::process::exit(2)
}
