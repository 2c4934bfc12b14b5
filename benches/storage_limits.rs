//! The storage engine against the machine's own limits, measured in the same run:
//! - `io=direct, flush=none` appends of 64 KiB batches vs raw sequential O_DIRECT writes
//!   of 64 KiB on the same directory (glommio DmaFile; and fio when it is installed);
//! - `flush=fsync` group commit: 16 concurrent appenders vs one, on one log (and 16
//!   appenders on 16 logs of one shard for comparison).
//!
//! `cargo bench --bench storage_limits` writes `perf/results/storage-limits-<date>.json`
//! and prints a markdown table. Under `cargo test` it runs a tiny smoke version.

use bytes::Bytes;
use glommio::io::DmaFile;
use glommio::{LocalExecutorBuilder, Placement};
use ringbroker::config::{FlushMode, IoMode, LogConfig};
use ringbroker::protocol::batch::testing::batch_of_size;
use ringbroker::storage::{GlommioStorage, PartitionLog};
use std::future::Future;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

fn on_glommio<G, F, T>(f: G) -> T
where
    G: FnOnce() -> F + Send + 'static,
    F: Future<Output = T> + 'static,
    T: Send + 'static,
{
    LocalExecutorBuilder::new(Placement::Fixed(0))
        .io_memory(2 << 20)
        .spawn(f)
        .expect("glommio executor")
        .join()
        .expect("executor thread")
}

struct Params {
    raw_bytes: u64,
    log_bytes: u64,
    fsync_window: Duration,
}

/// Raw sequential O_DIRECT writes of `block` bytes with `depth` writes in flight.
async fn raw_direct(path: PathBuf, total: u64, block: usize, depth: usize) -> f64 {
    let file = std::rc::Rc::new(DmaFile::create(&path).await.expect("create"));
    file.pre_allocate(total, true).await.expect("fallocate");
    let start = Instant::now();
    let mut pos = 0u64;
    let mut inflight = Vec::new();
    while pos < total {
        while inflight.len() < depth && pos < total {
            let f = file.clone();
            let mut buf = f.alloc_dma_buffer(block);
            buf.as_bytes_mut().fill(0x5a);
            let at = pos;
            inflight.push(glommio::spawn_local(async move {
                f.write_at(buf, at).await.expect("write")
            }));
            pos += block as u64;
        }
        let first = inflight.remove(0);
        first.await;
    }
    for t in inflight {
        t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    let _ = std::fs::remove_file(&path);
    total as f64 / secs / 1e6
}

/// MB/s of `appenders` concurrent appenders writing `total` bytes of `batch`-byte batches.
async fn log_append(
    dir: PathBuf,
    config: LogConfig,
    total: u64,
    batch: usize,
    appenders: usize,
) -> f64 {
    let log = PartitionLog::open(GlommioStorage, dir.clone(), config)
        .await
        .expect("open");
    let b = Bytes::from(batch_of_size(batch, 64, 0));
    let per = total / batch as u64 / appenders as u64;
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|_| {
            let log = log.clone();
            let b = b.clone();
            glommio::spawn_local(async move {
                for _ in 0..per {
                    log.append(b.clone()).await.expect("append");
                }
            })
        })
        .collect();
    for t in tasks {
        t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    log.close().await.expect("close");
    let _ = std::fs::remove_dir_all(&dir);
    (per * appenders as u64 * b.len() as u64) as f64 / secs / 1e6
}

/// Appends per second under `flush=fsync` with `appenders` concurrent appenders spread
/// over `logs` logs, for `window`.
async fn fsync_rate(
    base: PathBuf,
    io: IoMode,
    appenders: usize,
    logs: usize,
    window: Duration,
) -> f64 {
    let config = LogConfig {
        io,
        flush: FlushMode::Fsync,
        ..LogConfig::default()
    };
    let mut opened = Vec::new();
    for i in 0..logs {
        opened.push(
            PartitionLog::open(GlommioStorage, base.join(format!("t-{i}")), config.clone())
                .await
                .expect("open"),
        );
    }
    let b = Bytes::from(batch_of_size(1024, 8, 0));
    let deadline = Instant::now() + window;
    let start = Instant::now();
    let tasks: Vec<_> = (0..appenders)
        .map(|i| {
            let log = opened[i % logs].clone();
            let b = b.clone();
            glommio::spawn_local(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    log.append(b.clone()).await.expect("append");
                    n += 1;
                }
                n
            })
        })
        .collect();
    let mut total = 0;
    for t in tasks {
        total += t.await;
    }
    let secs = start.elapsed().as_secs_f64();
    for log in opened {
        log.close().await.expect("close");
    }
    let _ = std::fs::remove_dir_all(&base);
    total as f64 / secs
}

fn fio_mbps(dir: &Path, depth: usize, size: &str) -> Option<f64> {
    let file = dir.join("fio.tmp");
    let out = Command::new("fio")
        .args([
            "--name=seq",
            &format!("--filename={}", file.display()),
            "--rw=write",
            "--bs=64k",
            &format!("--size={size}"),
            "--direct=1",
            "--ioengine=io_uring",
            &format!("--iodepth={depth}"),
            "--output-format=terse",
        ])
        .output()
        .ok()?;
    let _ = std::fs::remove_file(&file);
    let text = String::from_utf8(out.stdout).ok()?;
    // Terse v3: field 48 is write bandwidth in KiB/s.
    let kib: f64 = text.split(';').nth(47)?.parse().ok()?;
    Some(kib * 1024.0 / 1e6)
}

fn main() {
    let full = std::env::args().any(|a| a == "--bench");
    let p = if full {
        Params {
            raw_bytes: 1 << 30,
            log_bytes: 1 << 30,
            fsync_window: Duration::from_secs(3),
        }
    } else {
        Params {
            raw_bytes: 4 << 20,
            log_bytes: 4 << 20,
            fsync_window: Duration::from_millis(100),
        }
    };
    let root = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&root).expect("bench dir");
    let tmp = tempfile::Builder::new()
        .prefix("limits")
        .tempdir_in(&root)
        .expect("temp dir");
    let d = tmp.path().to_path_buf();
    let (raw_bytes, log_bytes, window) = (p.raw_bytes, p.log_bytes, p.fsync_window);

    // LIMITS_ONLY=fsync skips the bandwidth part (quick group-commit checks) and writes no
    // report.
    let bandwidth = std::env::var("LIMITS_ONLY").map_or(true, |v| v != "fsync");
    let results = on_glommio(move || async move {
        let direct_none = LogConfig {
            io: IoMode::Direct,
            flush: FlushMode::None,
            ..LogConfig::default()
        };
        let (raw_qd1, log_1, raw_qd4, log_4) = if bandwidth {
            (
                raw_direct(d.join("raw1"), raw_bytes, 64 << 10, 1).await,
                log_append(d.join("l1"), direct_none.clone(), log_bytes, 64 << 10, 1).await,
                raw_direct(d.join("raw4"), raw_bytes, 64 << 10, 4).await,
                log_append(d.join("l4"), direct_none.clone(), log_bytes, 64 << 10, 4).await,
            )
        } else {
            (f64::NAN, f64::NAN, f64::NAN, f64::NAN)
        };
        let mut fsync = Vec::new();
        for io in [IoMode::Buffered, IoMode::Direct] {
            let one = fsync_rate(d.join("f1"), io, 1, 1, window).await;
            let sixteen = fsync_rate(d.join("f16"), io, 16, 1, window).await;
            let spread = fsync_rate(d.join("f16x16"), io, 16, 16, window).await;
            fsync.push((io, one, sixteen, spread));
        }
        (raw_qd1, log_1, raw_qd4, log_4, fsync)
    });
    let (raw_qd1, log_1, raw_qd4, log_4, fsync) = results;
    let full = full && bandwidth;
    let fio = if full {
        (fio_mbps(tmp.path(), 1, "1g"), fio_mbps(tmp.path(), 4, "1g"))
    } else {
        (None, None)
    };

    println!("| measurement | value | ratio |");
    println!("|---|---|---|");
    println!("| raw O_DIRECT 64 KiB writes, QD1 | {raw_qd1:.0} MB/s | 1.00 |");
    println!(
        "| log io=direct flush=none, 64 KiB batches, 1 appender | {log_1:.0} MB/s | {:.2} of raw QD1 |",
        log_1 / raw_qd1
    );
    println!("| raw O_DIRECT 64 KiB writes, QD4 | {raw_qd4:.0} MB/s | 1.00 |");
    println!(
        "| log io=direct flush=none, 64 KiB batches, 4 appenders | {log_4:.0} MB/s | {:.2} of raw QD4 |",
        log_4 / raw_qd4
    );
    if let (Some(f1), Some(f4)) = fio {
        println!(
            "| fio 64k direct QD1 / QD4 | {f1:.0} / {f4:.0} MB/s | log: {:.2} / {:.2} |",
            log_1 / f1,
            log_4 / f4
        );
    }
    let mut fsync_json = Vec::new();
    for (io, one, sixteen, spread) in &fsync {
        println!("| io={io} flush=fsync 1 KiB, 1 appender | {one:.0} appends/s | 1.00 |");
        println!(
            "| io={io} flush=fsync 1 KiB, 16 appenders, 1 log | {sixteen:.0} appends/s | {:.1}x |",
            sixteen / one
        );
        println!(
            "| io={io} flush=fsync 1 KiB, 16 appenders, 16 logs | {spread:.0} appends/s | {:.1}x |",
            spread / one
        );
        fsync_json.push(serde_json::json!({
            "io": io.to_string(),
            "one_appender_per_s": one,
            "sixteen_appenders_one_log_per_s": sixteen,
            "sixteen_appenders_sixteen_logs_per_s": spread,
            "group_commit_ratio": sixteen / one,
        }));
    }
    if full {
        let report = serde_json::json!({
            "benchmark": "storage_limits",
            "command": "cargo bench --bench storage_limits",
            "machine": ringbroker_bench::hardware::Machine::detect(),
            "params": { "raw_bytes": raw_bytes, "log_bytes": log_bytes, "fsync_window_s": window.as_secs_f64(), "batch_bytes": 65536 },
            "direct_none_64k": {
                "raw_qd1_mb_s": raw_qd1, "log_1_appender_mb_s": log_1, "ratio_qd1": log_1 / raw_qd1,
                "raw_qd4_mb_s": raw_qd4, "log_4_appenders_mb_s": log_4, "ratio_qd4": log_4 / raw_qd4,
                "fio_qd1_mb_s": fio.0, "fio_qd4_mb_s": fio.1,
            },
            "fsync_group_commit": fsync_json,
        });
        let path = ringbroker_bench::report::write_dated(
            std::path::Path::new(env!("CARGO_MANIFEST_DIR")),
            "storage-limits",
            &report,
        )
        .expect("write report");
        println!("\nwrote {}", path.display());
    }
}
