//! Segment recovery, fuzzed on a simulated disk (`storage::sim::SimStorage`): a log of
//! random batches (plain and compressed, over small segments) is written and closed, its
//! segment and index files are damaged (bit flips, cuts, garbage or copies appended,
//! zeroed ranges, batch headers with huge lengths or overflowing offsets), and it is
//! opened again. Never a panic or a hang; and when the damage is in what recovery
//! verifies (the tail segment after its last index entry; every index):
//! - the log opens, and every batch readable from the log start is valid, whole and the
//!   batch that was written there, with offsets running without gaps to the log end;
//! - an append lands at the log end offset, and a reopen holds the same log plus it.
//!
//! Damage anywhere else (bytes of sealed segments, or of the tail before its last index
//! entry) is trusted as Kafka trusts a cleanly closed log: only no panic and no hang are
//! required, and how often corrupt bytes stayed readable is counted.
//!
//! `FUZZ_SEED` sets the seed, `FUZZ_SEGMENT_ITERS` the number of logs (default: about
//! 10 s in a debug build); `FUZZ_SEGMENT_FROM=N` starts at case N (a failure names it)
//! and `FUZZ_VERBOSE=1` prints which files are damaged. Long run:
//! `FUZZ_SEGMENT_ITERS=200000 cargo test --test fuzz_segments -- --nocapture`

mod fuzz_support;

use bytes::Bytes;
use fuzz_support::{Rng, built_batch, compressed, env_or, rng, set_i32};
use rand::RngExt;
use ringbroker::compression::ALL_CODECS;
use ringbroker::config::LogConfig;
use ringbroker::protocol::batch::{self, HEADER_BYTES, LOG_OVERHEAD};
use ringbroker::storage::io::segment_path;
use ringbroker::storage::sim::SimStorage;
use ringbroker::storage::{PartitionLog, Storage};
use std::path::PathBuf;

const DEFAULT_SEED: u64 = 0x5e6_4ec0;

/// What the segment fuzzer counted.
#[derive(Default, Debug)]
struct Recovered {
    opened: u64,
    refused: u64,
    batches_lost: u64,
    corrupt_readable: u64,
}

/// Damages `b` at or after byte `from`: bit flips, a cut (anywhere), garbage or a copy
/// appended, a zeroed range, or a batch header given huge or overflowing fields.
fn damage(rng: &mut Rng, b: &mut Vec<u8>, from: usize) {
    if b.len() <= from {
        b.extend((0..rng.random_range(1..100)).map(|_| rng.random::<u8>()));
        return;
    }
    let at = rng.random_range(from..b.len());
    let kind = rng.random_range(0..7);
    if std::env::var_os("FUZZ_VERBOSE").is_some() {
        eprintln!("  damage {kind} at {at} (from {from}) of {} bytes", b.len());
    }
    match kind {
        0 => {
            for _ in 0..rng.random_range(1..8) {
                let i = rng.random_range(from..b.len());
                b[i] ^= 1 << rng.random_range(0..8);
            }
        }
        1 => b.truncate(rng.random_range(0..b.len())),
        2 => b.extend((0..rng.random_range(1..200)).map(|_| rng.random::<u8>())),
        3 => {
            let chunk = b[at..(at + rng.random_range(1..400)).min(b.len())].to_vec();
            b.extend_from_slice(&chunk);
        }
        4 => {
            let end = (at + rng.random_range(1..600)).min(b.len());
            b[at..end].fill(0);
        }
        _ => {
            // A batch start, found by walking the length fields.
            let mut starts = vec![0usize];
            let mut p = 0usize;
            while let Some((_, len)) = b.get(p..).and_then(batch::peek_offset_and_size) {
                match usize::try_from(len) {
                    Ok(l) if l >= 49 && p + LOG_OVERHEAD + l < b.len() => {
                        p += LOG_OVERHEAD + l;
                        starts.push(p);
                    }
                    _ => break,
                }
            }
            starts.retain(|&s| s >= from && s + HEADER_BYTES <= b.len());
            if starts.is_empty() {
                return;
            }
            let s = starts[rng.random_range(0..starts.len())];
            let huge = [i32::MAX, 1 << 30, -1, 48][rng.random_range(0..4)];
            let top = i64::MAX - rng.random_range(0..3);
            match rng.random_range(0..4) {
                0 => set_i32(b, s + 8, huge),
                1 => b[s..s + 8].copy_from_slice(&top.to_be_bytes()),
                2 => set_i32(b, s + 23, [i32::MAX, -1][rng.random_range(0..2)]),
                _ => b[s..s + 8].copy_from_slice(&rng.random_range(-5i64..100).to_be_bytes()),
            }
        }
    }
}

/// Where recovery starts verifying a segment: the position of the last entry of its
/// offset index (8-byte entries of relative offset and position), 0 without one.
fn last_index_position(index: &[u8]) -> usize {
    match index.len() {
        n if n >= 8 && n % 8 == 0 => {
            u32::from_be_bytes([index[n - 4], index[n - 3], index[n - 2], index[n - 1]]) as usize
        }
        _ => 0,
    }
}

/// The log's batches from its start: (base offset, bytes) of each readable batch, and
/// whether they were all valid and contiguous up to the log end offset.
async fn read_all<S: Storage>(log: &PartitionLog<S>) -> (Vec<(i64, Vec<u8>)>, Result<(), String>) {
    let mut out = Vec::new();
    let mut next = log.log_start_offset();
    for _ in 0..10_000 {
        let slice = match log.read(next, 1 << 16).await {
            Ok(s) if s.regions.is_empty() => break,
            Ok(s) => s,
            Err(e) => return (out, Err(format!("read at {next}: {e}"))),
        };
        for r in &slice.regions {
            let Ok(bytes) = r.read().await else {
                return (out, Err(format!("region at {next} cannot be read")));
            };
            let batches = match batch::validate_batches(&bytes) {
                Ok(b) => b,
                Err(e) => return (out, Err(format!("corrupt batch readable at {next}: {e}"))),
            };
            for (h, range) in batches {
                if h.base_offset != next {
                    return (
                        out,
                        Err(format!("batch at {} where {next} was next", h.base_offset)),
                    );
                }
                next = h.last_offset() + 1;
                out.push((h.base_offset, bytes[range].to_vec()));
            }
        }
    }
    let end = log.log_end_offset();
    let whole = if next == end {
        Ok(())
    } else {
        Err(format!("reads end at {next}, the log at {end}"))
    };
    (out, whole)
}

/// Without the partition leader epoch, which no checksum covers.
fn sans_epoch(b: &[u8]) -> Vec<u8> {
    let mut b = b.to_vec();
    b[12..16].fill(0);
    b
}

/// One log written, closed, damaged and reopened; `Err` is a broken property.
async fn segment_case(rng: &mut Rng, stats: &mut Recovered) -> Result<(), String> {
    let sim = SimStorage::new(rng.random());
    let dir = PathBuf::from("/data/t-0");
    let cfg = LogConfig {
        segment_bytes: rng.random_range(1500..12_000),
        index_interval_bytes: rng.random_range(64..2048),
        retention_ms: None,
        timestamp_after_max_ms: None,
        ..LogConfig::default()
    };
    let log = PartitionLog::open(sim.clone(), dir.clone(), cfg.clone())
        .await
        .map_err(|e| e.to_string())?;
    let mut written: Vec<Vec<u8>> = Vec::new();
    for _ in 0..rng.random_range(1..40) {
        let mut b = built_batch(rng);
        if rng.random_ratio(1, 4) {
            b = compressed(&b, ALL_CODECS[rng.random_range(0..ALL_CODECS.len())]);
        }
        let info = log
            .append(Bytes::from(b.clone()))
            .await
            .map_err(|e| format!("append: {e}"))?;
        batch::set_base_offset(&mut b, info.base_offset);
        written.push(b);
    }
    let bases = log.segment_bases();
    log.close().await.map_err(|e| format!("close: {e}"))?;
    // Mostly the tail segment and the indexes (what recovery verifies); sometimes any file.
    let tail_only = rng.random_bool(0.8);
    let tail = *bases.last().ok_or("no segment")?;
    for _ in 0..rng.random_range(1..=3) {
        let any = bases[rng.random_range(0..bases.len())];
        let (base, ext) = match rng.random_range(0..5) {
            0..=2 if tail_only => (tail, "log"),
            _ if tail_only => (any, ["index", "timeindex"][rng.random_range(0..2)]),
            _ => (any, ["log", "index", "timeindex"][rng.random_range(0..3)]),
        };
        let path = segment_path(&dir, base, ext);
        if std::env::var_os("FUZZ_VERBOSE").is_some() {
            eprintln!("damaging {} of segments {bases:?}", path.display());
        }
        // Recovery verifies the tail after its last index entry: that is what a crash can
        // tear. Bytes before it are trusted, as Kafka trusts a cleanly closed log.
        let from = if tail_only && ext == "log" {
            let index = sim.file_bytes(&segment_path(&dir, tail, "index"));
            last_index_position(&index.unwrap_or_default())
        } else {
            0
        };
        let mut bytes = sim.file_bytes(&path).unwrap_or_default();
        damage(rng, &mut bytes, from);
        sim.set_file_bytes(&path, bytes);
    }
    let log = match PartitionLog::open(sim.clone(), dir.clone(), cfg.clone()).await {
        Ok(l) => l,
        Err(e) if !tail_only => {
            stats.refused += 1;
            let _ = e;
            return Ok(());
        }
        Err(e) => return Err(format!("a damaged tail is not recovered: {e}")),
    };
    stats.opened += 1;
    let (batches, whole) = read_all(&log).await;
    for _ in 0..4 {
        let at = log.log_start_offset() + rng.random_range(-2..written.len() as i64 * 6 + 2);
        let _ = log.read(at, rng.random_range(0..70_000)).await;
    }
    if let Err(why) = whole {
        if tail_only {
            return Err(why);
        }
        // Sealed segments are trusted as Kafka trusts them after a clean shutdown.
        stats.corrupt_readable += 1;
        return Ok(());
    }
    if tail_only {
        // What is left is what was written, up to where the damage begins.
        for (i, (_, b)) in batches.iter().enumerate() {
            if written.get(i).map(|w| sans_epoch(w)) != Some(sans_epoch(b)) {
                return Err(format!("batch {i} after recovery is not the batch written"));
            }
        }
        stats.batches_lost += (written.len() - batches.len()) as u64;
    }
    let next = log.log_end_offset();
    let info = log
        .append(Bytes::from(built_batch(rng)))
        .await
        .map_err(|e| format!("append after recovery: {e}"))?;
    if info.base_offset != next {
        return Err(format!(
            "append after recovery at {}, the log ended at {next}",
            info.base_offset
        ));
    }
    log.close().await.map_err(|e| format!("close: {e}"))?;
    let again = PartitionLog::open(sim, dir, cfg)
        .await
        .map_err(|e| format!("reopen: {e}"))?;
    let (after, whole) = read_all(&again).await;
    whole.map_err(|e| format!("after reopening: {e}"))?;
    if after.len() != batches.len() + 1 || after[..batches.len()] != batches[..] {
        return Err("the reopened log is not the recovered one plus the append".into());
    }
    Ok(())
}

#[test]
fn damaged_segments_recover_to_a_valid_log() {
    let seed = env_or("FUZZ_SEED", DEFAULT_SEED);
    let iters = env_or("FUZZ_SEGMENT_ITERS", 5_000);
    let (tx, rx) = std::sync::mpsc::channel::<u64>();
    let started = std::time::Instant::now();
    let runner = std::thread::spawn(move || {
        let mut stats = Recovered::default();
        for i in env_or("FUZZ_SEGMENT_FROM", 0)..iters {
            let _ = tx.send(i);
            let mut rng = rng(seed ^ i.wrapping_mul(0x2545_f491_4f6c_dd1d));
            if let Err(why) = futures_lite::future::block_on(segment_case(&mut rng, &mut stats)) {
                panic!("FUZZ_SEED={seed:#x} FUZZ_SEGMENT_FROM={i}: {why}");
            }
        }
        stats
    });
    // A case that takes this long is a hang in recovery.
    let mut last = 0;
    loop {
        match rx.recv_timeout(std::time::Duration::from_secs(60)) {
            Ok(i) => last = i,
            Err(std::sync::mpsc::RecvTimeoutError::Disconnected) => break,
            Err(_) => panic!("FUZZ_SEED={seed:#x}: segment case {last} hangs"),
        }
    }
    let stats = runner
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e));
    let secs = started.elapsed().as_secs_f64();
    eprintln!(
        "{iters} damaged logs in {secs:.1} s ({:.0}/s): {stats:?}",
        iters as f64 / secs
    );
    assert!(stats.opened > iters / 2, "{stats:?}");
}
