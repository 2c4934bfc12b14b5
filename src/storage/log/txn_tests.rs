//! Transactions in one log: the last stable offset, markers, the aborted transactions a
//! read_committed read reports, their rebuild at open, and the gated append.

use super::PartitionLog;
use super::tests::{batch, cfg};
use crate::config::FlushMode;
use crate::protocol::batch::{self as b, testing::build_batch};
use crate::storage::StorageError;
use crate::storage::sim::SimStorage;
use bytes::Bytes;
use futures_lite::future::block_on;
use std::path::PathBuf;

/// A transactional batch of `n` records of producer `pid` (epoch 0) from sequence `seq`.
fn txn_batch(pid: i64, seq: i32, n: usize) -> Bytes {
    let vals: Vec<&[u8]> = (0..n).map(|_| &b"t"[..]).collect();
    let mut v = build_batch(&vals, 1_000);
    b::set_producer(&mut v, pid, 0, seq);
    let len = (v.len() - b::LOG_OVERHEAD) as i32;
    b::set_length_attributes_and_crc(&mut v, len, b::ATTR_TRANSACTIONAL);
    Bytes::from(v)
}

#[test]
fn markers_move_the_last_stable_offset_and_survive_a_reopen() {
    block_on(async {
        let sim = SimStorage::new(11);
        let dir = PathBuf::from("/d/txn-0");
        let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
            .await
            .expect("open");
        assert_eq!(
            log.append(txn_batch(5, 0, 3))
                .await
                .expect("txn")
                .base_offset,
            0
        );
        assert_eq!(log.append(batch(1, 2)).await.expect("plain").base_offset, 3);
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (5, 0));
        assert!(log.has_open_transaction(5));
        let held = log.read_committed(0, 1 << 20).await.expect("read");
        assert!(held.regions.is_empty(), "nothing below the LSO");
        assert_eq!(held.end_offset, 0);
        // An abort marker at 5 closes it; the read below 6 reports the transaction.
        let marker = log.append_marker(5, 0, false, 0).await.expect("abort");
        assert_eq!(marker.base_offset, 5);
        assert_eq!(log.last_stable_offset(), 6);
        let all = log.read_committed(0, 1 << 20).await.expect("read");
        assert_eq!(all.end_offset, 6);
        let aborted = log.aborted_between(0, all.end_offset);
        assert_eq!(
            (
                aborted.len(),
                aborted[0].first_offset,
                aborted[0].last_offset
            ),
            (1, 0, 5)
        );
        // A read of the first batch alone ends at 3: the bound Fetch reports with.
        let first = log.read_committed(0, 1).await.expect("read");
        assert_eq!(first.end_offset, 3);
        // A marker of an older epoch than the producer's is refused.
        log.append_marker(5, 1, true, 0)
            .await
            .expect("a newer epoch fences");
        assert!(matches!(
            log.append_marker(5, 0, true, 0).await,
            Err(StorageError::Producer(_))
        ));
        // Left open at close: a transaction of producer 9 from offset 7.
        assert_eq!(
            log.append(txn_batch(9, 0, 2))
                .await
                .expect("txn")
                .base_offset,
            7
        );
        log.close().await.expect("close");
        let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
            .await
            .expect("reopen");
        assert_eq!((log.high_watermark(), log.last_stable_offset()), (9, 7));
        assert_eq!(log.open_transactions(), vec![(9, 7)]);
        assert_eq!(log.aborted_between(0, 9).len(), 1, "the abort found again");
        log.append_marker(9, 0, true, 0).await.expect("commit");
        assert_eq!(log.last_stable_offset(), 10);
        assert_eq!(
            log.aborted_between(7, 10).len(),
            0,
            "a commit is not an abort"
        );
    });
}

#[test]
fn a_gated_append_keeps_its_place_and_a_refused_one_appends_nothing() {
    block_on(async {
        let sim = SimStorage::new(12);
        let log = PartitionLog::open(sim, PathBuf::from("/d/txn-1"), cfg(FlushMode::None))
            .await
            .expect("open");
        let (open_gate, gate) = crate::rt::oneshot::channel::<()>();
        let gated = log.append_gated(batch(0, 2), async move {
            gate.await;
            Ok(())
        });
        let after = log.append(batch(1, 1));
        // The later append waits behind the gate: it cannot finish before the gate opens.
        let both = futures_lite::future::zip(gated, async {
            open_gate.send(());
            after.await
        });
        let (first, second) = both.await;
        assert_eq!(first.expect("gated").base_offset, 0);
        assert_eq!(second.expect("after").base_offset, 2);
        let refused = log
            .append_gated(batch(2, 1), async {
                Err(StorageError::Refused {
                    code: 48,
                    reason: "not in the transaction".into(),
                })
            })
            .await;
        assert!(matches!(
            refused,
            Err(StorageError::Refused { code: 48, .. })
        ));
        assert_eq!(log.append(batch(3, 1)).await.expect("next").base_offset, 3);
    });
}
