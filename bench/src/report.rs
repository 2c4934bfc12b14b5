//! The run report: JSON for machines, a table for people.

use crate::args::BenchArgs;
use crate::hardware::Machine;
use crate::histogram::Percentiles;
use anyhow::Context as _;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::fmt::Write as _;

#[derive(Clone, Debug, Serialize)]
pub struct Report {
    pub benchmark: &'static str,
    pub version: &'static str,
    pub unix_time_s: u64,
    pub machine: Machine,
    pub params: BenchArgs,
    pub broker: BrokerInfo,
    pub results: Results,
}

#[derive(Clone, Debug, Serialize)]
pub struct BrokerInfo {
    pub bootstrap: String,
    /// The `--broker-config` labels: what the broker was started with, as told by the user.
    pub config: BTreeMap<String, String>,
}

/// Figures of the measurement window (warm-up excluded). MB are 10^6 bytes of record values.
#[derive(Clone, Debug, Serialize, Deserialize)]
pub struct Results {
    pub measured_s: f64,
    /// Latency is measured from each record's scheduled time (open loop), or from its send.
    pub open_loop: bool,
    pub offered_records_per_s: u64,
    /// Records handed to the producer clients over the whole run (warm-up included); fewer
    /// than scheduled if the producers were still behind `--drain-timeout` after the end.
    #[serde(default)]
    pub records_sent_total: u64,
    /// Records still unacknowledged when the producers gave up waiting.
    #[serde(default)]
    pub records_unacked: u64,
    pub produce: Flow,
    /// From the scheduled time (open loop) or the send (closed loop) to the acknowledgement.
    pub ack_latency_ms: Percentiles,
    pub consume: Flow,
    /// From the scheduled time (open loop) or the send (closed loop) to the receipt.
    pub e2e_latency_ms: Percentiles,
}

#[derive(Clone, Debug, Default, Serialize, Deserialize)]
pub struct Flow {
    /// Records scheduled in the window and acknowledged (produce) or received (consume).
    pub records: u64,
    /// Acknowledgements (receipts) that happened in the window, per second.
    pub records_per_s: f64,
    pub mb_per_s: f64,
    pub errors: u64,
    /// Over the whole run, warm-up and drain included.
    pub records_total: u64,
}

impl Report {
    pub fn table(&self) -> String {
        let p = &self.params;
        let r = &self.results;
        let mut out = String::new();
        let rate = if p.rate == 0 {
            "closed loop".to_string()
        } else {
            format!("{} rec/s offered", p.rate)
        };
        let _ = writeln!(
            out,
            "ringbroker bench: {} topic {} ({} partitions), {} producer(s), {} consumer(s), \
             {} B records, {rate}, batch {} B, linger {} ms, {}, acks {}, {:.1} s measured",
            p.bootstrap,
            p.topic,
            p.partitions,
            p.producers,
            p.consumers,
            p.record_size,
            p.batch_size,
            p.linger_ms,
            p.compression.name(),
            p.acks.name(),
            r.measured_s
        );
        if !self.broker.config.is_empty() {
            let labels: Vec<String> = self
                .broker
                .config
                .iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect();
            let _ = writeln!(out, "broker config: {}", labels.join(" "));
        }
        let _ = writeln!(out, "machine: {}", self.machine.describe());
        let _ = writeln!(
            out,
            "\n{:<12} {:>10} {:>12} {:>9} {:>7}",
            "", "records", "records/s", "MB/s", "errors"
        );
        for (name, f) in [("produce", &r.produce), ("consume", &r.consume)] {
            let _ = writeln!(
                out,
                "{name:<12} {:>10} {:>12.0} {:>9.2} {:>7}",
                f.records, f.records_per_s, f.mb_per_s, f.errors
            );
        }
        let _ = writeln!(
            out,
            "\n{:<12} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8} {:>8}",
            "latency ms", "p50", "p90", "p99", "p99.9", "p99.99", "max", "mean"
        );
        for (name, l) in [
            ("ack", &r.ack_latency_ms),
            ("end-to-end", &r.e2e_latency_ms),
        ] {
            let _ = writeln!(
                out,
                "{name:<12} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2} {:>8.2}",
                l.p50, l.p90, l.p99, l.p999, l.p9999, l.max, l.mean
            );
        }
        out
    }
}

/// Writes `value` as pretty JSON, with a final newline, to `path`.
pub fn write_json(path: &std::path::Path, value: &impl Serialize) -> anyhow::Result<()> {
    let text = serde_json::to_string_pretty(value)?;
    std::fs::write(path, text + "\n").with_context(|| format!("writing {}", path.display()))
}

/// Writes a benchmark's JSON report to `perf/results/<prefix>-<date>.json` under `root`
/// (the repository) and returns the path.
pub fn write_dated(
    root: &std::path::Path,
    prefix: &str,
    report: &serde_json::Value,
) -> std::io::Result<std::path::PathBuf> {
    let dir = root.join("perf/results");
    std::fs::create_dir_all(&dir)?;
    let date = std::process::Command::new("date")
        .arg("+%Y-%m-%d")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_else(|| "undated".into());
    let path = dir.join(format!("{prefix}-{date}.json"));
    let text = serde_json::to_string_pretty(report).map_err(std::io::Error::other)?;
    std::fs::write(&path, text)?;
    Ok(path)
}
