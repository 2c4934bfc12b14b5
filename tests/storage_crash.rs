//! Crash tests. The fault-injecting disk kills the "process" at a chosen write while
//! concurrent appenders run (tearing that write), then many crash images (the durable
//! bytes plus arbitrary, possibly torn, subsets of the unsynced writes) are recovered:
//! - under `flush=fsync` every acknowledged batch is readable, byte for byte;
//! - under every flush setting nothing corrupt is readable and offsets have no gaps;
//! - appends continue at the recovered next offset.
//!
//! Torn tails and flipped bits are also recovered on a real ext4 directory.

mod storage_support;

use bytes::Bytes;
use futures_lite::future::block_on;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use ringbroker::config::{FlushMode, IoMode, LogConfig};
use ringbroker::protocol::batch::{self, set_base_offset};
use ringbroker::storage::sim::SimStorage;
use ringbroker::storage::{GlommioStorage, PartitionLog, Storage};
use std::cell::RefCell;
use std::path::PathBuf;
use std::rc::Rc;
use storage_support::{disk_dir, make_batch, run};

/// (base offset, bytes) of batches.
type Batches = Vec<(i64, Vec<u8>)>;

thread_local! {
    static NOW: std::cell::Cell<i64> = const { std::cell::Cell::new(1_000) };
}

fn fake_clock() -> i64 {
    NOW.with(|n| n.get())
}

fn config(flush: FlushMode) -> LogConfig {
    LogConfig {
        flush,
        segment_bytes: 12 * 1024,
        index_interval_bytes: 512,
        flush_interval_bytes: 4096,
        retention_ms: None,
        ..LogConfig::default()
    }
}

/// Reads the whole log, checking every batch is whole, valid and contiguous in offsets.
async fn scan<S: Storage>(log: &PartitionLog<S>) -> Vec<(i64, Vec<u8>)> {
    let mut out: Vec<(i64, Vec<u8>)> = Vec::new();
    let mut next = log.log_start_offset();
    loop {
        let slice = log.read(next, 1 << 20).await.expect("read after recovery");
        if slice.regions.is_empty() {
            break;
        }
        for r in &slice.regions {
            let bytes = r.read().await.expect("region");
            let batches = batch::validate_batches(&bytes).expect("no corrupt batch is readable");
            for (h, range) in batches {
                assert_eq!(h.base_offset, next, "offsets continue without gaps");
                next = h.last_offset() + 1;
                out.push((h.base_offset, bytes[range].to_vec()));
            }
        }
    }
    assert_eq!(
        next,
        log.log_end_offset(),
        "next offset follows the last batch"
    );
    out
}

fn crash_run(seed: u64, flush: FlushMode) {
    block_on(async {
        let mut rng = StdRng::seed_from_u64(seed);
        let sim = SimStorage::new(seed);
        let dir = PathBuf::from("/data/topic-3");
        let cfg = config(flush);
        let log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), cfg.clone(), fake_clock)
            .await
            .expect("open");
        let acked: Rc<RefCell<Batches>> = Rc::default();
        // The shard's ticker: interval flushes and lazy index writes race the appenders.
        let ticker = {
            let log = log.clone();
            async move {
                for _ in 0..400 {
                    futures_lite::future::yield_now().await;
                    NOW.with(|n| n.set(n.get() + 3));
                    if log.tick(fake_clock()).await.is_err() {
                        return;
                    }
                }
            }
        };
        sim.crash_at_write(rng.random_range(1..120));
        let writers = (0..6u64).map(|w| {
            let log = log.clone();
            let acked = acked.clone();
            let mut rng = StdRng::seed_from_u64(seed * 31 + w);
            async move {
                for i in 0..40u64 {
                    let b = make_batch(
                        w * 1000 + i,
                        rng.random_range(1..5),
                        rng.random_range(10..1500),
                        1000 + i as i64,
                    );
                    match log.append(b.clone()).await {
                        Ok(info) => {
                            let mut bytes = b.to_vec();
                            set_base_offset(&mut bytes, info.base_offset);
                            acked.borrow_mut().push((info.base_offset, bytes));
                        }
                        Err(_) => return,
                    }
                }
            }
        });
        futures::future::join(futures::future::join_all(writers), ticker).await;
        sim.crash_now();
        let acked = acked.borrow().clone();

        for image in 0..6u64 {
            let disk = sim.crash_image(seed * 100 + image);
            let recovered = PartitionLog::open(disk.clone(), dir.clone(), cfg.clone())
                .await
                .expect("recovery succeeds on any crash image");
            let batches = scan(&recovered).await;
            if flush == FlushMode::Fsync {
                for (offset, bytes) in &acked {
                    let found = batches.iter().find(|(o, _)| o == offset);
                    assert_eq!(
                        found.map(|(_, b)| b),
                        Some(bytes),
                        "seed {seed} image {image}: acknowledged batch at {offset} survives intact"
                    );
                }
            }
            // Appends continue where recovery ended, and survive another reopen.
            let next = recovered.log_end_offset();
            let info = recovered
                .append(make_batch(7, 2, 64, 9_999))
                .await
                .expect("append after recovery");
            assert_eq!(info.base_offset, next);
            recovered.close().await.expect("close");
            let again = PartitionLog::open(disk, dir.clone(), cfg.clone())
                .await
                .expect("reopen");
            let after = scan(&again).await;
            assert_eq!(after.len(), batches.len() + 1);
            assert_eq!(&after[..batches.len()], &batches[..]);
        }
    });
}

/// Seeds per test; `CRASH_SEEDS=5000 cargo test --release --test storage_crash` sweeps more.
fn seeds() -> u64 {
    std::env::var("CRASH_SEEDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(150)
}

#[test]
fn crashes_under_fsync_lose_no_acknowledged_batch() {
    for seed in 0..seeds() {
        crash_run(seed, FlushMode::Fsync);
    }
}

#[test]
fn crashes_under_none_and_interval_leave_no_corrupt_or_gapped_log() {
    for seed in 100_000..100_000 + seeds() / 2 {
        crash_run(seed, FlushMode::None);
        crash_run(seed + 1_000_000, FlushMode::Interval);
    }
}

/// A failed fdatasync under `fsync`: the waiting append is not acknowledged, the log
/// refuses further appends, and after a crash nothing acknowledged is missing.
#[test]
fn failed_fdatasync_acknowledges_nothing_it_did_not_cover() {
    block_on(async {
        for n in 1..6 {
            let sim = SimStorage::new(n);
            let dir = PathBuf::from("/data/t-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), config(FlushMode::Fsync))
                .await
                .expect("open");
            sim.fail_sync_at(n);
            let mut acked = Vec::new();
            let mut failed = false;
            for i in 0..20 {
                match log.append(make_batch(i, 1, 300, 0)).await {
                    Ok(info) => {
                        assert!(!failed, "nothing is acknowledged after a failed fdatasync");
                        acked.push(info.base_offset);
                    }
                    Err(_) => failed = true,
                }
            }
            assert!(failed, "the injected failure surfaced");
            let disk = sim.crash_image(n);
            let recovered = PartitionLog::open(disk, dir, config(FlushMode::Fsync))
                .await
                .expect("recovers");
            let batches = scan(&recovered).await;
            for o in acked {
                assert!(batches.iter().any(|(b, _)| *b == o), "acked {o} survives");
            }
        }
    });
}

async fn write_some(dir: &std::path::Path, io: IoMode) -> Vec<(i64, Vec<u8>)> {
    let cfg = LogConfig {
        io,
        flush: FlushMode::Fsync,
        ..config(FlushMode::Fsync)
    };
    let log = PartitionLog::open(GlommioStorage, dir.to_path_buf(), cfg)
        .await
        .expect("open");
    let mut out = Vec::new();
    for i in 0..30 {
        let b: Bytes = make_batch(i, 3, 700, 100 + i as i64);
        let info = log.append(b.clone()).await.expect("append");
        let mut bytes = b.to_vec();
        set_base_offset(&mut bytes, info.base_offset);
        out.push((info.base_offset, bytes));
    }
    log.close().await.expect("close");
    out
}

fn tail_segment(dir: &std::path::Path) -> PathBuf {
    let mut logs: Vec<PathBuf> = std::fs::read_dir(dir)
        .expect("dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    logs.sort();
    logs.pop().expect("a segment")
}

/// A truncated tail (a torn last write) and a flipped bit in the last batch are both
/// recovered by truncating that batch, on a real disk, in both io modes.
#[test]
fn torn_tail_and_flipped_bit_are_truncated_on_ext4() {
    run(|| async {
        for io in [IoMode::Buffered, IoMode::Direct] {
            for damage in ["truncate", "flip"] {
                let tmp = disk_dir("torn");
                let dir = tmp.path().join("t-0");
                let written = write_some(&dir, io).await;
                let seg = tail_segment(&dir);
                let len = std::fs::metadata(&seg).expect("meta").len();
                let (last_offset, last_bytes) = written.last().cloned().expect("batches");
                match damage {
                    "truncate" => {
                        let f = std::fs::OpenOptions::new()
                            .write(true)
                            .open(&seg)
                            .expect("open");
                        f.set_len(len - 100).expect("truncate");
                    }
                    _ => {
                        let mut bytes = std::fs::read(&seg).expect("read");
                        let at = bytes.len() - last_bytes.len() / 2;
                        bytes[at] ^= 0x10;
                        std::fs::write(&seg, bytes).expect("write");
                    }
                }
                let cfg = LogConfig {
                    io,
                    ..config(FlushMode::Fsync)
                };
                let log = PartitionLog::open(GlommioStorage, dir.clone(), cfg)
                    .await
                    .expect("recover");
                assert_eq!(
                    log.log_end_offset(),
                    last_offset,
                    "{io} {damage}: last batch dropped"
                );
                let batches = scan(&log).await;
                assert_eq!(batches, written[..written.len() - 1].to_vec());
                assert_eq!(
                    std::fs::metadata(&seg).expect("meta").len(),
                    len - last_bytes.len() as u64,
                    "the file is truncated at the end of the last good batch"
                );
                let info = log.append(make_batch(1, 1, 10, 0)).await.expect("append");
                assert_eq!(info.base_offset, last_offset);
                log.close().await.expect("close");
            }
        }
    });
}
