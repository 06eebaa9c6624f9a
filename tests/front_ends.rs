//! The command line and the desktop reach the engine, data, store and Hub crates only through
//! hone-app, so a task or family added there reaches both front ends at once. Cargo enforces
//! it once the crates are not dependencies; this test keeps them out of the manifests.

use std::path::Path;

const BELOW_APP: [&str; 4] = ["hone-engine", "hone-data", "hone-store", "hone-hub"];

fn dependencies(manifest: &Path) -> Vec<String> {
    let text = std::fs::read_to_string(manifest).expect("read the manifest");
    let doc: toml::Table = toml::from_str(&text).expect("parse the manifest");
    let mut names: Vec<String> = doc
        .get("dependencies")
        .and_then(|d| d.as_table())
        .map(|t| t.keys().cloned().collect())
        .unwrap_or_default();
    names.sort();
    names
}

#[test]
fn the_front_ends_depend_on_hone_app_alone() {
    let root = Path::new(env!("CARGO_MANIFEST_DIR"));
    for manifest in [root.join("Cargo.toml"), root.join("src-tauri/Cargo.toml")] {
        let deps = dependencies(&manifest);
        assert!(
            deps.iter().any(|d| d == "hone-app"),
            "{}: {deps:?}",
            manifest.display()
        );
        for below in BELOW_APP {
            assert!(
                !deps.iter().any(|d| d == below),
                "{} depends on {below} directly; go through hone-app",
                manifest.display()
            );
        }
    }
}
