//! Codec throughput and ratio on realistic log lines (JSON application logs and syslog, from
//! `ringbroker_bench::loglines`), framed as the records of a Kafka batch — the bytes the
//! broker decompresses and recompresses. For each codec: compress and decompress MB/s of
//! uncompressed bytes, and the compression ratio.
//!
//! `cargo bench --bench codecs` runs criterion and writes `perf/results/codecs-<date>.json`.
//! Under `cargo test` (no `--bench`) each benchmark runs once on a small sample.

use criterion::{BenchmarkId, Criterion, Throughput};
use ringbroker::compression::{self, ALL_CODECS, Codec};
use ringbroker::protocol::batch::{HEADER_BYTES, testing::build_batch};
use ringbroker_bench::loglines::LogLines;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

/// The records of a batch of log lines, about `bytes` long, one line per record.
fn records(bytes: usize) -> Vec<u8> {
    let text = LogLines::new(1).bytes(bytes);
    let lines: Vec<&[u8]> = text
        .split(|&b| b == b'\n')
        .filter(|l| !l.is_empty())
        .collect();
    build_batch(&lines, 1_763_700_000_000)[HEADER_BYTES..].to_vec()
}

fn machine() -> serde_json::Value {
    let cpu = std::fs::read_to_string("/proc/cpuinfo")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("model name"))
                .and_then(|l| l.split(':').nth(1))
                .map(|s| s.trim().to_string())
        })
        .unwrap_or_default();
    let kernel = Command::new("uname")
        .arg("-r")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .map(|s| s.trim().to_string())
        .unwrap_or_default();
    serde_json::json!({
        "cpu": cpu,
        "cores": std::thread::available_parallelism().map(|n| n.get()).unwrap_or(0),
        "kernel": kernel,
    })
}

/// MB/s of uncompressed bytes for `f` over at least `window`.
fn rate(bytes: usize, window: Duration, mut f: impl FnMut()) -> f64 {
    let start = Instant::now();
    let mut n = 0u64;
    while n == 0 || start.elapsed() < window {
        f();
        n += 1;
    }
    (bytes as f64 * n as f64) / start.elapsed().as_secs_f64() / 1e6
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let sample_bytes = if full { 1 << 20 } else { 16 << 10 };
    let data = records(sample_bytes);
    let limit = compression::decompressed_limit(1 << 20);

    let mut c = if full {
        Criterion::default().configure_from_args()
    } else {
        Criterion::default()
            .configure_from_args()
            .sample_size(10)
            .warm_up_time(Duration::from_millis(1))
            .measurement_time(Duration::from_millis(1))
    };
    let mut report = Vec::new();
    {
        let mut g = c.benchmark_group("codecs");
        g.throughput(Throughput::Bytes(data.len() as u64));
        for codec in ALL_CODECS.into_iter().filter(|&k| k != Codec::None) {
            let packed = compression::compress(codec, &data);
            assert_eq!(
                compression::decompress(codec, &packed, limit).expect("round trip"),
                data
            );
            g.bench_with_input(BenchmarkId::new("compress", codec.name()), &data, |b, d| {
                b.iter(|| compression::compress(codec, d))
            });
            g.bench_with_input(
                BenchmarkId::new("decompress", codec.name()),
                &packed,
                |b, p| b.iter(|| compression::decompress(codec, p, limit).expect("decompress")),
            );
            if full {
                let window = Duration::from_secs(2);
                let compress_mb_s = rate(data.len(), window, || {
                    std::hint::black_box(compression::compress(codec, &data));
                });
                let decompress_mb_s = rate(data.len(), window, || {
                    std::hint::black_box(
                        compression::decompress(codec, &packed, limit).expect("decompress"),
                    );
                });
                report.push(serde_json::json!({
                    "codec": codec.name(),
                    "compress_mb_s": compress_mb_s,
                    "decompress_mb_s": decompress_mb_s,
                    "ratio": data.len() as f64 / packed.len() as f64,
                    "compressed_bytes": packed.len(),
                }));
            }
        }
        g.finish();
    }
    c.final_summary();
    if full {
        let date = Command::new("date")
            .arg("+%Y-%m-%d")
            .output()
            .ok()
            .and_then(|o| String::from_utf8(o.stdout).ok())
            .map(|s| s.trim().to_string())
            .unwrap_or_else(|| "undated".into());
        let out = serde_json::json!({
            "benchmark": "codecs",
            "command": "cargo bench --bench codecs",
            "machine": machine(),
            "params": {
                "input": "records of one Kafka batch of JSON/syslog log lines (ringbroker_bench::loglines, seed 1)",
                "uncompressed_bytes": data.len(),
                "zstd_level": 3,
                "gzip_level": "default (6)",
                "lz4": "frame, 64 KiB independent blocks",
                "snappy": "xerial framing, 32 KiB blocks",
                "rates": "MB/s (1e6 bytes) of uncompressed data, single thread, 2 s per measurement",
            },
            "results": report,
        });
        let dir = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("perf/results");
        std::fs::create_dir_all(&dir).expect("perf/results");
        let path = dir.join(format!("codecs-{date}.json"));
        std::fs::write(&path, serde_json::to_string_pretty(&out).expect("json"))
            .expect("write report");
        println!("\nwrote {}", path.display());
    }
}
