//! What the tests of every part of the log share, and the round trip through all of them.

use super::PartitionLog;
use crate::config::{FlushMode, LogConfig};
use crate::protocol::batch;
use crate::protocol::batch::testing::build_batch;
use crate::storage::StorageError;
use crate::storage::io::segment_path;
use crate::storage::sim::SimStorage;
use bytes::Bytes;
use futures_lite::future::block_on;
use std::path::PathBuf;

pub(super) fn cfg(flush: FlushMode) -> LogConfig {
    LogConfig {
        flush,
        segment_bytes: 4096,
        index_interval_bytes: 256,
        ..LogConfig::default()
    }
}

pub(super) fn batch(i: usize, n: usize) -> Bytes {
    let v = format!("value-{i:06}-{}", "x".repeat(i % 50));
    let vals: Vec<&[u8]> = (0..n).map(|_| v.as_bytes()).collect();
    Bytes::from(build_batch(&vals, 1_000 + i as i64 * 10))
}

pub(super) async fn read_all(log: &PartitionLog<SimStorage>, from: i64) -> Vec<(i64, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = from;
    loop {
        let slice = log.read(next, 1000).await.expect("read");
        if slice.regions.is_empty() {
            return out;
        }
        for r in &slice.regions {
            let bytes = r.read().await.expect("region");
            for (h, range) in batch::validate_batches(&bytes).expect("whole valid batches") {
                out.push((h.base_offset, bytes[range].to_vec()));
                next = h.last_offset() + 1;
            }
        }
    }
}

#[test]
fn append_assigns_offsets_and_reads_back_across_rolls_and_reopen() {
    block_on(async {
        let sim = SimStorage::new(1);
        let dir = PathBuf::from("/d/t-0");
        let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
            .await
            .expect("open");
        let mut expect_next = 0;
        for i in 0..100 {
            let info = log.append(batch(i, 1 + i % 3)).await.expect("append");
            assert_eq!(info.base_offset, expect_next);
            expect_next = info.last_offset + 1;
        }
        assert!(log.segment_count() > 3, "small segments roll");
        assert_eq!(log.high_watermark(), expect_next);
        let before = read_all(&log, 0).await;
        assert_eq!(before.len(), 100);
        // A read from the middle of a batch returns that whole batch.
        let mid = before[10].0 + 1;
        let s = log.read(mid, 1).await.expect("read");
        assert_eq!(s.regions.len(), 1);
        let got = s.regions[0].read().await.expect("bytes");
        assert_eq!(
            got, before[10].1,
            "one whole batch even when max_bytes is tiny"
        );
        log.close().await.expect("close");
        assert!(matches!(
            log.append(batch(0, 1)).await,
            Err(StorageError::Closed)
        ));

        let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
            .await
            .expect("reopen");
        assert_eq!(log.log_end_offset(), expect_next);
        assert_eq!(read_all(&log, 0).await, before);
        let info = log.append(batch(7, 2)).await.expect("append after reopen");
        assert_eq!(info.base_offset, expect_next);
    });
}

/// Found by tests/fuzz_segments.rs: the base offset is outside the CRC, and recovery
/// took a batch whose base offset jumped ahead (a gap reads could not explain) or came
/// so close to i64::MAX that its last offset overflowed.
#[test]
fn recovery_truncates_at_a_damaged_base_offset() {
    block_on(async {
        for (damaged, bad) in [(0usize, 87i64), (3, 87), (3, i64::MAX - 1), (3, 2)] {
            let sim = SimStorage::new(7);
            let dir = PathBuf::from("/d/t-0");
            let config = LogConfig {
                index_interval_bytes: 1 << 20,
                ..cfg(FlushMode::None)
            };
            let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
                .await
                .expect("open");
            let mut positions = Vec::new();
            let mut end = 0;
            for i in 0..6 {
                let b = batch(i, 2);
                positions.push(end);
                end += b.len();
                log.append(b).await.expect("append");
            }
            log.close().await.expect("close");
            let path = segment_path(&dir, 0, "log");
            let mut bytes = sim.file_bytes(&path).expect("segment");
            let at = positions[damaged];
            bytes[at..at + 8].copy_from_slice(&bad.to_be_bytes());
            sim.set_file_bytes(&path, bytes);
            let log = PartitionLog::open(sim, dir, config)
                .await
                .expect("recovers");
            assert_eq!(
                log.log_end_offset(),
                2 * damaged as i64,
                "damage at {damaged}"
            );
            let kept = read_all(&log, 0).await;
            assert_eq!(kept.len(), damaged);
            let info = log.append(batch(9, 1)).await.expect("append");
            assert_eq!(info.base_offset, 2 * damaged as i64);
        }
        // Before the last index entry, reached when a missing time index makes
        // recovery rebuild the indexes from the whole segment: it overflowed there.
        let sim = SimStorage::new(8);
        let dir = PathBuf::from("/d/t-1");
        let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::None))
            .await
            .expect("open");
        let mut at = 0;
        for i in 0..12 {
            let b = batch(i, 2);
            if i == 1 {
                at = log.size_bytes() as usize;
            }
            log.append(b).await.expect("append");
        }
        log.close().await.expect("close");
        assert_eq!(log.segment_count(), 1);
        let path = segment_path(&dir, 0, "log");
        let mut bytes = sim.file_bytes(&path).expect("segment");
        bytes[at..at + 8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
        sim.set_file_bytes(&path, bytes);
        sim.set_file_bytes(&segment_path(&dir, 0, "timeindex"), Vec::new());
        let log = PartitionLog::open(sim, dir, cfg(FlushMode::None))
            .await
            .expect("recovers");
        assert_eq!(log.log_end_offset(), 2);
        assert_eq!(read_all(&log, 0).await.len(), 1);
    });
}

/// Found by tests/fuzz_segments.rs: an index entry damaged in the middle of the file
/// (still increasing, so it loads) sent reads between batches or to another batch,
/// and a consumer at those offsets got nothing, or later batches.
#[test]
fn reads_survive_a_wrong_index_entry() {
    block_on(async {
        // (entry, damage): 0 moves its position into its batch, 1 gives it a smaller
        // offset than its batch has (a read there would skip batches).
        for (entry, damage) in [(1usize, 0), (2, 0), (1, 1), (2, 1)] {
            let sim = SimStorage::new(3);
            let dir = PathBuf::from("/d/t-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::None))
                .await
                .expect("open");
            for i in 0..40 {
                log.append(batch(i, 2)).await.expect("append");
            }
            let before = read_all(&log, 0).await;
            log.close().await.expect("close");
            let path = segment_path(&dir, 0, "index");
            let mut index = sim.file_bytes(&path).expect("index");
            assert!(index.len() >= 4 * 8, "entries to damage");
            let u32_at =
                |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
            let at = entry * 8;
            if damage == 0 {
                let pos = u32_at(&index, at + 4) + 1;
                index[at + 4..at + 8].copy_from_slice(&pos.to_be_bytes());
            } else {
                let rel = u32_at(&index, at - 8) + 1;
                assert!(rel < u32_at(&index, at));
                index[at..at + 4].copy_from_slice(&rel.to_be_bytes());
            }
            sim.set_file_bytes(&path, index);
            let log = PartitionLog::open(sim, dir, cfg(FlushMode::None))
                .await
                .expect("reopen");
            assert_eq!(
                read_all(&log, 0).await,
                before,
                "entry {entry} damage {damage}"
            );
            for (offset, bytes) in &before {
                let s = log.read(*offset, 1).await.expect("read");
                let got = s.regions[0].read().await.expect("bytes");
                assert_eq!(&got, bytes, "read at {offset}");
            }
        }
    });
}
