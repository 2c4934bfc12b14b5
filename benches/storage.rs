//! Criterion micro-benchmarks of the storage engine on the build directory's disk:
//! - append throughput of one appender, 1 KiB and 64 KiB batches, for each io × flush pair;
//! - offset lookup (`read`) and timestamp lookup cost against log size.
//!
//! `cargo bench --bench storage`; `perf/README.md` records results.

use bytes::Bytes;
use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use glommio::{LocalExecutorBuilder, Placement};
use ringbroker::config::{FlushMode, IoMode, LogConfig};
use ringbroker::protocol::batch::testing::batch_of_size;
use ringbroker::storage::{GlommioStorage, PartitionLog};
use std::future::Future;
use std::path::PathBuf;
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

fn bench_dir(name: &str) -> tempfile::TempDir {
    let base = PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("target/bench-data");
    std::fs::create_dir_all(&base).expect("bench dir");
    tempfile::Builder::new()
        .prefix(name)
        .tempdir_in(base)
        .expect("temp dir")
}

fn append_throughput(c: &mut Criterion) {
    let mut group = c.benchmark_group("append");
    group.sample_size(10);
    group.measurement_time(Duration::from_secs(3));
    group.warm_up_time(Duration::from_millis(500));
    for size in [1024usize, 64 * 1024] {
        for io in [IoMode::Buffered, IoMode::Direct] {
            for flush in [FlushMode::None, FlushMode::Interval, FlushMode::Fsync] {
                group.throughput(Throughput::Bytes(size as u64));
                let id = BenchmarkId::new(format!("{io}-{flush}"), format!("{}KiB", size / 1024));
                group.bench_function(id, |b| {
                    b.iter_custom(|iters| {
                        let tmp = bench_dir("append");
                        let dir = tmp.path().join("t-0");
                        on_glommio(move || async move {
                            let config = LogConfig {
                                io,
                                flush,
                                ..LogConfig::default()
                            };
                            let log = PartitionLog::open(GlommioStorage, dir, config)
                                .await
                                .expect("open");
                            let batch = Bytes::from(batch_of_size(size, (size / 100).max(1), 0));
                            let start = Instant::now();
                            for _ in 0..iters {
                                log.append(batch.clone()).await.expect("append");
                            }
                            let elapsed = start.elapsed();
                            log.close().await.expect("close");
                            elapsed
                        })
                    });
                });
            }
        }
    }
    group.finish();
}

/// Builds a log of `batches` small batches (several segments) and returns its directory.
fn build_log(batches: u64) -> tempfile::TempDir {
    let tmp = bench_dir("lookup");
    let dir = tmp.path().join("t-0");
    on_glommio(move || async move {
        let config = LogConfig {
            segment_bytes: 16 << 20,
            ..LogConfig::default()
        };
        let log = PartitionLog::open(GlommioStorage, dir, config)
            .await
            .expect("open");
        // 100 batches per append call keeps the build fast; each batch gets its own offset.
        let mut i = 0u64;
        while i < batches {
            let n = 100.min(batches - i);
            let mut chunk = Vec::new();
            for k in 0..n {
                chunk.extend_from_slice(&batch_of_size(200, 2, ((i + k) * 10) as i64));
            }
            log.append(Bytes::from(chunk)).await.expect("append");
            i += n;
        }
        log.close().await.expect("close");
    });
    tmp
}

fn lookups(c: &mut Criterion) {
    let mut group = c.benchmark_group("lookup");
    group.sample_size(20);
    group.measurement_time(Duration::from_secs(2));
    group.warm_up_time(Duration::from_millis(300));
    // Under `cargo test` (no `--bench`) criterion runs each benchmark once: keep the logs
    // small there so the test suite stays fast.
    let sizes: &[u64] = if std::env::args().any(|a| a == "--bench") {
        &[1_000, 10_000, 100_000, 1_000_000]
    } else {
        &[1_000, 10_000]
    };
    for &batches in sizes {
        let tmp = build_log(batches);
        let dir = tmp.path().join("t-0");
        for kind in ["offset", "timestamp"] {
            let dir = dir.clone();
            group.bench_function(BenchmarkId::new(kind, batches), |b| {
                let dir = dir.clone();
                b.iter_custom(move |iters| {
                    let dir = dir.clone();
                    on_glommio(move || async move {
                        let log = PartitionLog::open(GlommioStorage, dir, LogConfig::default())
                            .await
                            .expect("open");
                        let records = log.log_end_offset();
                        let mut x = 0x9e37_79b9_7f4a_7c15u64;
                        let start = Instant::now();
                        for _ in 0..iters {
                            x ^= x << 13;
                            x ^= x >> 7;
                            x ^= x << 17;
                            let target = (x % records as u64) as i64;
                            if kind == "offset" {
                                let s = log.read(target, 1).await.expect("read");
                                assert_eq!(s.regions.len(), 1);
                            } else {
                                // Batch k has timestamps 10k, 10k+1.
                                let ts = (target / 2) * 10 + 1;
                                let hit = log.offset_for_timestamp(ts).await.expect("lookup");
                                assert!(hit.is_some());
                            }
                        }
                        let elapsed = start.elapsed();
                        log.close().await.expect("close");
                        elapsed
                    })
                });
            });
        }
        drop(tmp);
    }
    group.finish();
}

criterion_group!(benches, append_throughput, lookups);
criterion_main!(benches);
