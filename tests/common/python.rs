//! kafka-python scripts of `tests/python/` run against a broker (kafka-python is installed
//! with pip when missing).

pub fn python_has_kafka() -> bool {
    std::process::Command::new("python3")
        .args(["-c", "import kafka"])
        .status()
        .is_ok_and(|s| s.success())
}

/// Runs `tests/python/admin_partitions.py MODE BOOTSTRAP TOPIC`; returns its stdout.
pub fn run_admin_script(mode: &str, bootstrap: &str, topic: &str) -> String {
    if !python_has_kafka() {
        // The test command runs scripts/setup.sh first; this covers a direct cargo test.
        for extra in [&[][..], &["--break-system-packages"][..]] {
            let _ = std::process::Command::new("python3")
                .args(["-m", "pip", "install", "--quiet"])
                .args(extra)
                .arg("kafka-python")
                .status();
        }
    }
    assert!(python_has_kafka(), "kafka-python is not installed");
    let script: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "python",
        "admin_partitions.py",
    ]
    .iter()
    .collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([mode, bootstrap, topic])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "python failed: {stdout}");
    assert!(stdout.ends_with("OK\n"), "{stdout}");
    stdout
}
