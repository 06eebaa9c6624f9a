//! Without a display the desktop binary says what is wrong and exits, instead of GTK's abort
//! with a backtrace.

#[cfg(target_os = "linux")]
#[test]
fn without_a_display_the_window_says_why_and_exits() {
    let out = std::process::Command::new(env!("CARGO_BIN_EXE_hone-desktop"))
        .env_remove("DISPLAY")
        .env_remove("WAYLAND_DISPLAY")
        .env(
            "HONE_DB",
            std::env::temp_dir().join("hone-no-display-test.db"),
        )
        .output()
        .expect("run hone-desktop");
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains("needs a display") && stderr.contains("DISPLAY"),
        "{stderr}"
    );
    assert!(!stderr.contains("panicked"), "{stderr}");
}
