//! What the tests of every part of the log share, and the round trip through all of them.

use super::PartitionLog;
use crate::config::{FlushMode, LogConfig};
use crate::protocol::batch;
use crate::protocol::batch::testing::build_batch;
use crate::storage::StorageError;
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
