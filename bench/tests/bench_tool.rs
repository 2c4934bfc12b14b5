//! `ringbroker-bench` end to end: start the real broker binary, run the bench binary against
//! it for a few seconds, and check its JSON report.

use serde_json::Value;
use std::net::TcpListener;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

/// The broker binary: `RINGBROKER_BIN` if set (e.g. a release build), else the workspace's
/// `ringbroker` of this test's profile. `cargo test --workspace` builds it along with the
/// broker's own tests; when it is missing (`cargo test -p ringbroker-bench` on a fresh
/// target dir) it is built here. This crate does not depend on the broker crate, so cargo
/// does not rebuild the broker for `-p ringbroker-bench` alone: build or test the workspace
/// after changing the broker.
fn broker_bin() -> &'static Path {
    static BIN: OnceLock<PathBuf> = OnceLock::new();
    BIN.get_or_init(|| {
        if let Some(bin) = std::env::var_os("RINGBROKER_BIN") {
            return PathBuf::from(bin);
        }
        // This test runs from <target dir>/<profile dir>/deps/; the broker binary of the
        // same profile is <target dir>/<profile dir>/ringbroker.
        let exe = std::env::current_exe().expect("test executable path");
        let profile_dir = exe
            .parent()
            .and_then(Path::parent)
            .expect("test executable in <target>/<profile>/deps");
        let bin = profile_dir.join("ringbroker");
        if bin.is_file() {
            return bin;
        }
        let profile = match profile_dir.file_name().and_then(|n| n.to_str()) {
            Some("debug") | None => "dev",
            Some(name) => name,
        };
        let target_dir = profile_dir.parent().expect("target dir");
        let status = Command::new(env!("CARGO"))
            .args(["build", "--quiet", "--bin", "ringbroker"])
            .args(["-p", "ringbroker", "--profile", profile])
            .env("CARGO_TARGET_DIR", target_dir)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build for the broker");
        assert!(status.success(), "building the ringbroker binary failed");
        bin
    })
}

struct Broker {
    child: Child,
    addr: String,
    _dir: tempfile::TempDir,
}

impl Drop for Broker {
    fn drop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(10);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
    }
}

fn start_broker() -> Broker {
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let addr = format!("127.0.0.1:{port}");
    // A real disk directory (not tmpfs), as the storage tests use.
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let child = Command::new(broker_bin())
        .args(["serve", "--listen", &addr, "--data-dir"])
        .arg(dir.path())
        .args(["--shards", "2"])
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()
        .expect("start ringbroker");
    let deadline = Instant::now() + Duration::from_secs(10);
    while std::net::TcpStream::connect(&addr).is_err() {
        assert!(Instant::now() < deadline, "broker did not start listening");
        std::thread::sleep(Duration::from_millis(20));
    }
    Broker {
        child,
        addr,
        _dir: dir,
    }
}

fn bench(args: &[&str], json: &Path) -> Value {
    let out = Command::new(env!("CARGO_BIN_EXE_ringbroker-bench"))
        .args(args)
        .arg("--json")
        .arg(json)
        .stderr(Stdio::inherit())
        .output()
        .expect("run ringbroker-bench");
    let table = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "bench failed: {table}");
    assert!(
        table.contains("produce") && table.contains("end-to-end"),
        "{table}"
    );
    serde_json::from_str(&std::fs::read_to_string(json).unwrap()).unwrap()
}

fn f(v: &Value) -> f64 {
    v.as_f64().unwrap_or_else(|| panic!("not a number: {v}"))
}

fn assert_ordered(latency: &Value) {
    let (p50, p90, p99, p999, max) = (
        f(&latency["p50"]),
        f(&latency["p90"]),
        f(&latency["p99"]),
        f(&latency["p999"]),
        f(&latency["max"]),
    );
    assert!(p50 > 0.0, "{latency}");
    assert!(
        p50 <= p90 && p90 <= p99 && p99 <= p999 && p999 <= max,
        "{latency}"
    );
}

#[test]
fn open_loop_run_reports_sane_figures() {
    let broker = start_broker();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let json = dir.path().join("report.json");
    let report = bench(
        &[
            "--bootstrap",
            &broker.addr,
            "--topic",
            "bench-open",
            "--partitions",
            "4",
            "--producers",
            "2",
            "--consumers",
            "2",
            "--record-size",
            "256",
            "--compression",
            "lz4",
            "--acks",
            "all",
            "--key-distribution",
            "sequential",
            "--rate",
            "2000",
            "--warmup",
            "1",
            "--duration",
            "3",
            "--broker-config",
            "log.io=buffered",
            "--quiet",
        ],
        &json,
    );
    let r = &report["results"];
    let produced = r["produce"]["records"].as_u64().unwrap();
    let consumed = r["consume"]["records"].as_u64().unwrap();
    // 2000 records/s for 3 s measured.
    assert!(
        (5000..=6100).contains(&produced),
        "produced {produced}: {r}"
    );
    assert_eq!(produced, consumed, "{r}");
    assert_eq!(r["produce"]["errors"], 0, "{r}");
    assert_eq!(r["consume"]["errors"], 0, "{r}");
    for flow in ["produce", "consume"] {
        assert!(f(&r[flow]["records_per_s"]) > 1000.0, "{r}");
        assert!(f(&r[flow]["mb_per_s"]) > 0.0, "{r}");
    }
    assert_eq!(r["ack_latency_ms"]["count"].as_u64(), Some(produced));
    assert_eq!(r["e2e_latency_ms"]["count"].as_u64(), Some(consumed));
    assert_ordered(&r["ack_latency_ms"]);
    assert_ordered(&r["e2e_latency_ms"]);
    assert_eq!(r["open_loop"], true);

    assert_eq!(report["params"]["compression"], "lz4");
    assert_eq!(report["params"]["rate"], 2000);
    assert_eq!(report["broker"]["bootstrap"], broker.addr.as_str());
    assert_eq!(report["broker"]["config"]["log.io"], "buffered");
    assert!(report["machine"]["cores"].as_u64().unwrap() >= 1);
    assert!(!report["machine"]["kernel"].as_str().unwrap().is_empty());
}

#[test]
fn closed_loop_run_reports_throughput() {
    let broker = start_broker();
    let dir = tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap();
    let json = dir.path().join("report.json");
    let report = bench(
        &[
            "--bootstrap",
            &broker.addr,
            "--topic",
            "bench-closed",
            "--rate",
            "0",
            "--acks",
            "1",
            "--record-size",
            "512",
            "--warmup",
            "0.5",
            "--duration",
            "1.5",
            "--quiet",
        ],
        &json,
    );
    let r = &report["results"];
    assert_eq!(r["open_loop"], false);
    assert!(f(&r["produce"]["records_per_s"]) > 0.0, "{r}");
    assert_eq!(
        r["produce"]["records"].as_u64(),
        r["consume"]["records"].as_u64(),
        "{r}"
    );
    assert_ordered(&r["ack_latency_ms"]);
}

#[test]
fn rejects_records_too_small_for_the_timestamp() {
    let out = Command::new(env!("CARGO_BIN_EXE_ringbroker-bench"))
        .args(["--bootstrap", "127.0.0.1:1", "--record-size", "8"])
        .output()
        .unwrap();
    assert!(!out.status.success());
    assert!(String::from_utf8_lossy(&out.stderr).contains("--record-size"));
}
