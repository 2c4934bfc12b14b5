//! librdkafka's own test suite against the real binary: `scripts/librdkafka-tests.sh`
//! builds librdkafka's test runner from the source the rdkafka-sys dev-dependency vendors
//! (once, cached under the target dir; only the tests named are compiled), and this test
//! runs it against a broker started here, as librdkafka's CI runs it against a Kafka
//! cluster: auto-created topics with 4 partitions, `TEST_KAFKA_VERSION` 4.0.0 (what
//! ringbroker's ApiVersions reads as).
//!
//! `0011_produce_batch` (quick mode, `-Q`) covers batch produce with the sticky, random and
//! per-message partitioners, a topic created through the Admin API, and a topic altered to
//! `cleanup.policy=delete,compact` with IncrementalAlterConfigs APPEND, where a batch with
//! keyless records fails with INVALID_RECORD for exactly those records (ProduceResponse v8+
//! `record_errors`) and `_INVALID_DIFFERENT_RECORD` for the rest of the batch.
//! `--ignored librdkafka_0011_full` runs it in full mode (100,000-message batches).
//!
//! `0103_transactions` runs against a three-broker cluster, as its topics ask for three
//! replicas: transactional produce with and without compression, consume-transform-produce
//! with offsets sent to the transaction, fencing by a newer producer, empty transactions,
//! read_committed watermarks and abort markers, with the transaction coordinators and the
//! partitions' leaders spread over the brokers (markers cross brokers with
//! WriteTxnMarkers). `--ignored librdkafka_transactions_full` adds the long versions of
//! `0061_consumer_lag` (lag under read_committed with transactions) and
//! `0137_barrier_batch_consume` (control messages in batch consumption).
//! `0129_fetch_aborted_msgs` cannot run unchanged: it creates a topic with
//! `segment.bytes=20000`, below Kafka 4.0's 1 MiB bound that ringbroker keeps;
//! `tests/transactions.rs` covers its case (an aborted transaction across segments).

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use common::Broker;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

/// Build (about 1.5 min the first time on 2 cores) plus run.
const TIMEOUT: Duration = Duration::from_secs(900);

fn target_dir() -> PathBuf {
    // CARGO_TARGET_TMPDIR is `<target dir>/tmp`.
    Path::new(env!("CARGO_TARGET_TMPDIR"))
        .parent()
        .expect("the target dir above CARGO_TARGET_TMPDIR")
        .to_path_buf()
}

/// Runs `scripts/librdkafka-tests.sh TESTS=<test> --broker <broker> <args>` and returns its
/// exit code, the runner's JSON report and its output.
fn run_suite(broker: &Broker, test: &str, args: &[&str]) -> (Option<i32>, String, String) {
    let work = common::disk_tempdir("rdk-suite-");
    let report = work.path().join("report.json");
    let out_path = work.path().join("output.log");
    let out = std::fs::File::create(&out_path).expect("create the output file");
    let err = out.try_clone().expect("clone the output file");
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("scripts/librdkafka-tests.sh");
    let started = Instant::now();
    let mut child = Command::new(&script)
        .arg(format!("TESTS={test}"))
        .arg("--broker")
        .arg(broker.bootstrap())
        .arg("--report")
        .arg(&report)
        .args(args)
        .env("CARGO_TARGET_DIR", target_dir())
        .stdin(Stdio::null())
        .stdout(Stdio::from(out))
        .stderr(Stdio::from(err))
        // Its own process group, so a timeout kills the runner too.
        .process_group(0)
        .spawn()
        .expect("spawn scripts/librdkafka-tests.sh");
    let status = loop {
        if let Some(st) = child.try_wait().expect("wait for the script") {
            break st;
        }
        if started.elapsed() > TIMEOUT {
            // SAFETY: kill(2) on the process group this test created.
            unsafe { libc::kill(-(child.id() as i32), libc::SIGKILL) };
            let _ = child.wait();
            let output = std::fs::read_to_string(&out_path).unwrap_or_default();
            panic!("librdkafka test {test} still running after {TIMEOUT:?}:\n{output}");
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    eprintln!(
        "librdkafka test {test} {}: {status} after {:.1} s",
        args.join(" "),
        started.elapsed().as_secs_f64()
    );
    let report = std::fs::read_to_string(&report).unwrap_or_default();
    let output = std::fs::read_to_string(&out_path).unwrap_or_default();
    (status.code(), report, output)
}

/// The state the runner's report gives `name` ("PASSED", "FAILED", "SKIPPED", ...).
fn state_of(report: &str, name: &str) -> Option<String> {
    let v: serde_json::Value = serde_json::from_str(report).ok()?;
    Some(v["tests"][name]["state"].as_str()?.to_string())
}

fn passes(test: &str, name: &str, args: &[&str]) {
    let _heavy = common::heavy_lock();
    let broker = Broker::start(&["auto.create.topics.enable=true", "num.partitions=4"]);
    let (code, report, output) = run_suite(&broker, test, args);
    let state = state_of(&report, name);
    if code != Some(0) || state.as_deref() != Some("PASSED") {
        let tail: Vec<&str> = output.lines().rev().take(80).collect();
        let tail: Vec<&str> = tail.into_iter().rev().collect();
        panic!(
            "librdkafka test {name}: exit {code:?}, report state {state:?}\n\
             --- runner output (last 80 lines) ---\n{}",
            tail.join("\n")
        );
    }
}

/// As [`passes`], against a three-broker cluster (small internal topics, so that it
/// forms and creates them quickly on 2 cores).
fn passes_on_cluster(test: &str, names: &[&str], args: &[&str]) {
    let cluster = cluster::Cluster::start(cluster::Options {
        sets: [
            "auto.create.topics.enable=true",
            "num.partitions=4",
            "offsets.topic.num.partitions=8",
            "transaction.state.log.num.partitions=8",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
        ..Default::default()
    });
    let (code, report, output) = run_suite(cluster.broker(1), test, args);
    for name in names {
        let state = state_of(&report, name);
        if code != Some(0) || state.as_deref() != Some("PASSED") {
            let tail: Vec<&str> = output.lines().rev().take(80).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            panic!(
                "librdkafka test {name}: exit {code:?}, report state {state:?}\n\
                 --- runner output (last 80 lines) ---\n{}\n--- cluster ---\n{}",
                tail.join("\n"),
                cluster.describe()
            );
        }
    }
}

#[test]
fn librdkafka_0103_transactions_on_three_brokers() {
    passes_on_cluster(
        "0103",
        &["0103_transactions", "0103_transactions_local"],
        &["-Q"],
    );
}

#[test]
#[ignore]
fn librdkafka_transactions_full() {
    passes_on_cluster(
        "0061,0103,0137",
        &[
            "0061_consumer_lag",
            "0103_transactions",
            "0137_barrier_batch_consume",
        ],
        &["-p1"],
    );
}

#[test]
fn librdkafka_0011_produce_batch_quick() {
    passes("0011", "0011_produce_batch", &["-Q"]);
}

/// Full mode: 100,000-message batches (`-p1` only stands in for "no -Q").
#[test]
#[ignore]
fn librdkafka_0011_full() {
    passes("0011", "0011_produce_batch", &["-p1"]);
}
