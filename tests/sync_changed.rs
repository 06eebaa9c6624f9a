//! `scripts/sync-changed`, which `npm run app` copies the built UI with: unchanged files keep
//! their modification time (or every launch would rebuild the desktop binary), changed files
//! are replaced, files gone from the build are removed.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, SystemTime};

fn mtime(path: &Path) -> SystemTime {
    std::fs::metadata(path)
        .and_then(|m| m.modified())
        .expect("mtime")
}

#[test]
fn only_changed_files_are_written() {
    let tmp = tempfile::tempdir().expect("tmp");
    let (src, dst) = (tmp.path().join("next"), tmp.path().join("dist"));
    for dir in [&src, &dst] {
        std::fs::create_dir_all(dir.join("assets")).expect("mkdir");
    }
    std::fs::write(src.join("index.html"), "<html>same</html>").expect("write");
    std::fs::write(src.join("assets/app-2.js"), "new bundle").expect("write");
    std::fs::write(dst.join("index.html"), "<html>same</html>").expect("write");
    std::fs::write(dst.join("assets/app-1.js"), "old bundle").expect("write");
    let old = SystemTime::now() - Duration::from_secs(3600);
    std::fs::File::options()
        .write(true)
        .open(dst.join("index.html"))
        .and_then(|f| f.set_modified(old))
        .expect("age the file");

    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/sync-changed");
    let status = Command::new(script)
        .arg(&src)
        .arg(&dst)
        .status()
        .expect("run sync-changed");
    assert!(status.success());

    assert_eq!(
        mtime(&dst.join("index.html")),
        old,
        "an unchanged file was rewritten"
    );
    assert_eq!(
        std::fs::read_to_string(dst.join("assets/app-2.js")).expect("copied"),
        "new bundle"
    );
    assert!(
        !dst.join("assets/app-1.js").exists(),
        "a stale file was kept"
    );
}
