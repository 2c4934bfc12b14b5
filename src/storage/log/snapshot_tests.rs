//! Producer state snapshots in a log: the open from a snapshot builds the state the walk of
//! the whole log builds, reads only what follows the snapshot, falls back past damaged
//! snapshots, and truncation, retention and DeleteRecords remove the snapshots they make
//! wrong or useless.

use super::PartitionLog;
use super::tests::{batch, cfg, read_all};
use crate::config::{FlushMode, LogConfig};
use crate::producer::{PartitionTxns, ProducerStates};
use crate::protocol::batch::{self as b, testing::build_batch};
use crate::storage::epochs::EpochCache;
use crate::storage::io::Storage;
use crate::storage::sim::SimStorage;
use crate::storage::snapshot;
use bytes::Bytes;
use futures_lite::future::block_on;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::path::{Path, PathBuf};

type State = (ProducerStates, EpochCache, PartitionTxns);

fn state_of(log: &PartitionLog<SimStorage>) -> State {
    (
        log.inner.producers.borrow().clone(),
        log.inner.epochs.borrow().clone(),
        log.inner.txns.borrow().clone(),
    )
}

/// A batch of `n` records of producer `pid` at `epoch` from sequence `seq`.
fn producer_batch(pid: i64, epoch: i16, seq: i32, n: usize, transactional: bool) -> Bytes {
    let v = format!("p{pid}-{seq}");
    let vals: Vec<&[u8]> = (0..n).map(|_| v.as_bytes()).collect();
    let mut bytes = build_batch(&vals, 1_000 + i64::from(seq));
    b::set_producer(&mut bytes, pid, epoch, seq);
    let len = (bytes.len() - b::LOG_OVERHEAD) as i32;
    let attrs = if transactional {
        b::ATTR_TRANSACTIONAL
    } else {
        0
    };
    b::set_length_attributes_and_crc(&mut bytes, len, attrs);
    Bytes::from(bytes)
}

fn snapshots_in(sim: &SimStorage, dir: &Path) -> Vec<i64> {
    snapshot::offsets(&block_on(sim.list_dir(dir)).expect("list"))
}

/// The state a walk of the whole log builds: the log on a copy of the disk, opened with
/// every snapshot removed.
async fn full_walk(sim: &SimStorage, dir: &Path, config: LogConfig) -> State {
    let copy = sim.crash_image(0);
    for o in snapshots_in(&copy, dir) {
        copy.remove_file(&snapshot::path(dir, o))
            .await
            .expect("remove");
    }
    let log = PartitionLog::open(copy, dir.to_path_buf(), config)
        .await
        .expect("open without snapshots");
    assert_eq!(log.open_report().snapshot, None);
    state_of(&log)
}

/// One random history: idempotent producers (retries, epoch bumps), transactions that
/// commit or abort, leader epochs, rolls and reopens.
async fn random_history(seed: u64, sim: &SimStorage, dir: &Path, config: &LogConfig) {
    let mut rng = StdRng::seed_from_u64(seed);
    let mut log = PartitionLog::open(sim.clone(), dir.to_path_buf(), config.clone())
        .await
        .expect("open");
    // (pid, epoch, next sequence, last batch for a retry, transactional, txn open)
    let mut producers: Vec<(i64, i16, i32, Option<Bytes>, bool, bool)> = vec![
        (1, 0, 0, None, false, false),
        (2, 3, 0, None, false, false),
        (3, 0, 0, None, false, false),
        (10, 0, 0, None, true, false),
        (11, 1, 0, None, true, false),
    ];
    let mut leader_epoch = 0;
    for step in 0..400 {
        let pick = rng.random_range(0..producers.len());
        match rng.random_range(0..100) {
            0..50 => {
                let p = &mut producers[pick];
                let n = rng.random_range(1..4);
                let bytes = producer_batch(p.0, p.1, p.2, n, p.4);
                log.append(bytes.clone()).await.expect("append");
                p.2 += n as i32;
                p.3 = Some(bytes);
                p.5 |= p.4;
            }
            50..58 => {
                // A retry of the producer's last batch: answered as a duplicate.
                if let Some(bytes) = producers[pick].3.clone() {
                    log.append(bytes).await.expect("retry");
                }
            }
            58..66 => {
                let p = &mut producers[pick];
                if p.4 && p.5 {
                    let commit = rng.random_bool(0.5);
                    log.append_marker(p.0, p.1, commit, 0)
                        .await
                        .expect("marker");
                    p.5 = false;
                }
            }
            66..70 => {
                let p = &mut producers[pick];
                if !p.5 {
                    p.1 += 1;
                    p.2 = 0;
                    p.3 = None;
                }
            }
            70..74 => {
                leader_epoch += rng.random_range(1..3);
                log.set_leader_epoch(Some(leader_epoch));
            }
            74..80 => log.force_roll().await.expect("roll"),
            80..82 if step > 0 => {
                log.close().await.expect("close");
                log = PartitionLog::open(sim.clone(), dir.to_path_buf(), config.clone())
                    .await
                    .expect("reopen");
                log.set_leader_epoch(Some(leader_epoch));
            }
            _ => {
                log.append(batch(step, rng.random_range(1..4)))
                    .await
                    .expect("plain");
            }
        }
    }
    log.close().await.expect("close");
}

#[test]
fn an_open_from_a_snapshot_builds_the_state_of_the_full_walk() {
    let mut used = 0;
    for seed in 0..24 {
        block_on(async {
            let sim = SimStorage::new(seed);
            let dir = PathBuf::from("/d/snap-0");
            let config = cfg(FlushMode::Fsync);
            random_history(seed, &sim, &dir, &config).await;
            let want = full_walk(&sim, &dir, config.clone()).await;
            let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
                .await
                .expect("open");
            let report = log.open_report();
            if report.snapshot.is_some() {
                used += 1;
            }
            assert_eq!(state_of(&log), want, "seed {seed}: {report:?}");
            assert!(snapshots_in(&sim, &dir).len() <= snapshot::KEPT);
            // A follower's truncation somewhere in the log: the snapshots past the cut go,
            // and the state is again the full walk's of what is left.
            log.close().await.expect("close");
            let bases = log.segment_bases();
            let end = log.log_end_offset();
            let cut = if seed % 2 == 0 {
                bases[bases.len() / 2] + 1
            } else {
                end / 2
            };
            let new_end = super::truncate_closed(&sim, &dir, cut)
                .await
                .expect("truncate");
            assert!(snapshots_in(&sim, &dir).iter().all(|&o| o <= cut));
            let want = full_walk(&sim, &dir, config.clone()).await;
            let log = PartitionLog::open(sim.clone(), dir.clone(), config)
                .await
                .expect("reopen");
            assert_eq!(log.log_end_offset(), new_end);
            assert!(snapshots_in(&sim, &dir).iter().all(|&o| o <= new_end));
            assert_eq!(state_of(&log), want, "seed {seed} after a cut at {cut}");
        });
    }
    assert!(used >= 20, "snapshots used in {used} of 24 histories");
}

/// Many sealed segments, one small active one: the open reads the snapshot and the active
/// segment, not the sealed ones (the scrubber checks them later).
#[test]
fn an_open_from_a_snapshot_reads_only_what_follows_it() {
    block_on(async {
        let sim = SimStorage::new(31);
        let dir = PathBuf::from("/d/snap-1");
        let config = cfg(FlushMode::Fsync);
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("open");
        for i in 0..400 {
            log.append(producer_batch(5, 0, i * 2, 2, false))
                .await
                .expect("append");
        }
        log.close().await.expect("close");
        let bases = log.segment_bases();
        let active = *bases.last().expect("segments");
        assert!(bases.len() > 5, "{}", bases.len());
        let total: u64 = log.size_bytes();
        let active_size = log.inner.state.borrow().active().size;
        assert_eq!(
            snapshots_in(&sim, &dir),
            bases[bases.len() - snapshot::KEPT..].to_vec(),
            "one snapshot per roll, the newest kept"
        );
        let before = sim.bytes_read();
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("open");
        let read = sim.bytes_read() - before;
        let report = log.open_report();
        assert_eq!(report.snapshot, Some(active));
        assert_eq!(report.walked_bytes, active_size);
        assert_eq!(report.unverified_below, Some(active));
        assert_eq!(log.unverified_below(), Some(active));
        // The indexes of every segment and the last index entry's batch of each are read;
        // the batches themselves are not.
        assert!(
            read < total / 4,
            "the open read {read} bytes of a {total}-byte log"
        );
        // Without snapshots the open reads every byte.
        log.close().await.expect("close");
        for o in snapshots_in(&sim, &dir) {
            sim.remove_file(&snapshot::path(&dir, o))
                .await
                .expect("remove");
        }
        let before = sim.bytes_read();
        let log = PartitionLog::open(sim.clone(), dir, config)
            .await
            .expect("open");
        assert!(sim.bytes_read() - before >= total);
        assert_eq!(log.open_report().walked_bytes, total);
        assert_eq!(log.unverified_below(), None);
        assert_eq!(
            log.inner
                .producers
                .borrow()
                .last_batch(5)
                .map(|(_, m)| m.last_seq),
            Some(799)
        );
    });
}

#[test]
fn damaged_or_unknown_snapshots_fall_back_to_older_ones_or_the_full_walk() {
    block_on(async {
        let sim = SimStorage::new(32);
        let dir = PathBuf::from("/d/snap-2");
        let config = cfg(FlushMode::Fsync);
        random_history(7, &sim, &dir, &config).await;
        let want = full_walk(&sim, &dir, config.clone()).await;
        let snaps = snapshots_in(&sim, &dir);
        assert_eq!(snaps.len(), snapshot::KEPT, "{snaps:?}");
        // The newest: a flipped bit. The next: a future version. The oldest: cut short.
        let newest = snapshot::path(&dir, snaps[2]);
        let mut bytes = sim.file_bytes(&newest).expect("newest");
        let last = bytes.len() - 1;
        bytes[last] ^= 1;
        sim.set_file_bytes(&newest, bytes);
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("open");
        assert_eq!(log.open_report().snapshot, Some(snaps[1]));
        assert_eq!(state_of(&log), want);
        log.close().await.expect("close");
        let middle = snapshot::path(&dir, snaps[1]);
        let mut bytes = sim.file_bytes(&middle).expect("middle");
        bytes[4..6].copy_from_slice(&9i16.to_be_bytes());
        sim.set_file_bytes(&middle, bytes);
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("open");
        assert_eq!(log.open_report().snapshot, Some(snaps[0]));
        assert_eq!(state_of(&log), want);
        log.close().await.expect("close");
        let oldest = snapshot::path(&dir, snaps[0]);
        let bytes = sim.file_bytes(&oldest).expect("oldest");
        sim.set_file_bytes(&oldest, bytes[..bytes.len() / 2].to_vec());
        let log = PartitionLog::open(sim.clone(), dir.clone(), config)
            .await
            .expect("open");
        assert_eq!(log.open_report().snapshot, None);
        assert_eq!(state_of(&log), want);
    });
}

/// A crash at any step of a roll (and so of its snapshot write) leaves a log whose open
/// builds the state of the full walk.
#[test]
fn a_crash_during_the_roll_and_its_snapshot_loses_nothing() {
    // A roll with its snapshot is about 15 changing operations: past the last one, the
    // crash comes after the roll.
    let mut completed = 0;
    for crash_at in 1..=24 {
        block_on(async {
            let sim = SimStorage::new(40 + crash_at);
            let dir = PathBuf::from("/d/snap-3");
            let config = cfg(FlushMode::Fsync);
            let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
                .await
                .expect("open");
            for i in 0..60 {
                log.append(producer_batch(8, 2, i * 3, 3, false))
                    .await
                    .expect("append");
            }
            sim.crash_at_op(crash_at);
            let _ = log.force_roll().await;
            if !sim.has_crashed() {
                // Past the roll: the snapshot is whole and is the one the open takes.
                assert_eq!(snapshots_in(&sim, &dir).last(), Some(&180));
                completed += 1;
            }
            for seed in 0..3 {
                let disk = sim.crash_image(seed);
                let want = full_walk(&disk, &dir, config.clone()).await;
                let log = PartitionLog::open(disk.clone(), dir.clone(), config.clone())
                    .await
                    .expect("open after the crash");
                assert_eq!(state_of(&log), want, "crash at op {crash_at}, seed {seed}");
                assert_eq!(
                    log.inner
                        .producers
                        .borrow()
                        .last_batch(8)
                        .map(|(_, m)| m.last_seq),
                    Some(179)
                );
            }
        });
    }
    assert!(
        completed > 0,
        "every step of the roll and its snapshot was crashed at"
    );
}

#[test]
fn retention_and_delete_records_remove_the_snapshots_below_the_first_segment() {
    block_on(async {
        let sim = SimStorage::new(33);
        let dir = PathBuf::from("/d/snap-4");
        let config = cfg(FlushMode::Fsync);
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("open");
        for i in 0..120 {
            log.append(producer_batch(4, 0, i, 1, false))
                .await
                .expect("append");
            if i % 10 == 9 {
                log.force_roll().await.expect("roll");
            }
        }
        let snaps = snapshots_in(&sim, &dir);
        assert_eq!(snaps.len(), snapshot::KEPT);
        // DeleteRecords into the middle snapshot's segment: the oldest goes with its
        // segment, the one at the first segment's base stays (it is where a walk starts).
        log.delete_records_before(snaps[1] + 3)
            .await
            .expect("delete records");
        assert_eq!(log.segment_bases()[0], snaps[1]);
        assert_eq!(snapshots_in(&sim, &dir), snaps[1..].to_vec());
        // Retention down to the active segment: only the snapshot at its base is left.
        let mut c = log.config();
        c.retention_bytes = Some(1);
        log.set_config(c);
        log.apply_retention().await.expect("retention");
        let first = log.segment_bases()[0];
        assert!(snapshots_in(&sim, &dir).iter().all(|&o| o >= first));
        let kept = read_all(&log, log.log_start_offset()).await;
        log.close().await.expect("close");
        let log = PartitionLog::open(sim.clone(), dir.clone(), config)
            .await
            .expect("reopen");
        assert_eq!(read_all(&log, log.log_start_offset()).await, kept);
        // The producer stays known though its batches are gone (as it did in the running
        // log): a retry is a duplicate, answered with its offset.
        let retry = log
            .append(producer_batch(4, 0, 119, 1, false))
            .await
            .expect("retry");
        assert_eq!(retry.base_offset, 119);
    });
}

#[test]
fn restarting_a_replica_at_the_leaders_start_removes_every_snapshot() {
    block_on(async {
        let sim = SimStorage::new(34);
        let dir = PathBuf::from("/d/snap-5");
        let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
            .await
            .expect("open");
        for i in 0..200 {
            log.append(batch(i, 2)).await.expect("append");
        }
        log.close().await.expect("close");
        assert!(!snapshots_in(&sim, &dir).is_empty());
        super::restart_closed_at(&sim, &dir, 5_000)
            .await
            .expect("restart");
        assert!(snapshots_in(&sim, &dir).is_empty());
        let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
            .await
            .expect("open");
        assert_eq!(log.log_end_offset(), 5_000);
        assert_eq!(log.open_report().snapshot, None);
    });
}

/// A keyed batch: `key` once per record, each its own value.
fn keyed_batch(keys: &[String]) -> Vec<u8> {
    let recs: Vec<b::testing::KeyValue<'_>> = keys
        .iter()
        .map(|k| (Some(k.as_bytes()), Some(&b"value"[..])))
        .collect();
    b::testing::keyed(&recs, 1_000)
}

/// Compaction merges segments across snapshot offsets: a snapshot inside a cleaned segment
/// still gives the full walk's state (the walk skips the batches below it there).
#[test]
fn a_snapshot_inside_a_segment_compaction_merged_still_gives_the_full_walks_state() {
    block_on(async {
        let sim = SimStorage::new(35);
        let dir = PathBuf::from("/d/snap-6");
        let config = LogConfig {
            cleanup_compact: true,
            cleanup_delete: false,
            retention_ms: None,
            ..cfg(FlushMode::Fsync)
        };
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("open");
        let mut seq = 0;
        for i in 0..300 {
            if i % 3 == 0 {
                // The idempotent producer's records have keys of their own: compaction
                // keeps them, so its batches are the same in the full walk.
                let keys: Vec<String> = (0..2).map(|r| format!("idem-{i}-{r}")).collect();
                let mut bytes = keyed_batch(&keys);
                b::set_producer(&mut bytes, 6, 0, seq);
                seq += 2;
                log.append(Bytes::from(bytes)).await.expect("append");
            } else {
                let keys: Vec<String> = (0..4).map(|r| format!("hot-{}", (i + r) % 5)).collect();
                log.append(Bytes::from(keyed_batch(&keys)))
                    .await
                    .expect("append");
            }
        }
        let before = log.segment_bases();
        // The snapshots as the rolls wrote them (the later rolls prune them; put back
        // below, as if more were kept).
        let written: Vec<(i64, Vec<u8>)> = snapshots_in(&sim, &dir)
            .into_iter()
            .map(|o| {
                (
                    o,
                    sim.file_bytes(&snapshot::path(&dir, o)).expect("snapshot"),
                )
            })
            .collect();
        // The first clean shrinks the segments, the next merges them (groups are cut by
        // the sizes the segments had).
        for now in [2_000, 3_000] {
            log.clean(now, 1 << 20, &crate::storage::clean::Unpaced)
                .await
                .expect("clean");
            for i in 0..20 {
                let keys: Vec<String> = (0..4).map(|r| format!("hot-{}", (i + r) % 5)).collect();
                log.append(Bytes::from(keyed_batch(&keys)))
                    .await
                    .expect("append");
            }
            log.force_roll().await.expect("roll");
        }
        let after = log.segment_bases();
        assert!(after.len() < before.len(), "{before:?} -> {after:?}");
        log.close().await.expect("close");
        // A snapshot that is no longer a segment base (its segment was merged into the one
        // before): damage the newer ones so the open falls back to it.
        let (inside, bytes) = written
            .iter()
            .rev()
            .find(|(o, _)| !after.contains(o))
            .expect("a snapshot inside a merged segment");
        for o in snapshots_in(&sim, &dir) {
            sim.set_file_bytes(&snapshot::path(&dir, o), b"RBPS".to_vec());
        }
        sim.set_file_bytes(&snapshot::path(&dir, *inside), bytes.clone());
        let want = full_walk(&sim, &dir, config.clone()).await;
        let log = PartitionLog::open(sim, dir, config).await.expect("open");
        assert_eq!(log.open_report().snapshot, Some(*inside));
        assert_eq!(state_of(&log), want);
        assert_eq!(
            log.inner
                .producers
                .borrow()
                .last_batch(6)
                .map(|(_, m)| m.last_seq),
            Some(seq - 1)
        );
    });
}

/// Damage in a sealed segment below the snapshot is not seen by the open (it does not read
/// that segment); the scrub of the segments the open skipped finds it, naming the file and
/// the position. Damage in the segment after the snapshot is found at open.
#[test]
fn damage_below_the_snapshot_is_left_to_the_scrub_and_damage_after_it_found_at_open() {
    block_on(async {
        let sim = SimStorage::new(36);
        let dir = PathBuf::from("/d/snap-7");
        let config = cfg(FlushMode::Fsync);
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("open");
        for i in 0..150 {
            log.append(batch(i, 2)).await.expect("append");
        }
        let bases = log.segment_bases();
        log.close().await.expect("close");
        let first = crate::storage::io::segment_path(&dir, bases[0], "log");
        let mut bytes = sim.file_bytes(&first).expect("segment");
        bytes[120] ^= 0x20;
        sim.set_file_bytes(&first, bytes);
        let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
            .await
            .expect("the open does not read the damaged segment");
        let below = log.unverified_below().expect("segments left to check");
        assert_eq!(below, *bases.last().expect("segments"));
        // The scrub of the skipped segments finds it.
        match log.scrub_next(None, Some(below)).await {
            Err(crate::storage::StorageError::Corrupt { path, reason }) => {
                assert!(path.ends_with("00000000000000000000.log"), "{path:?}");
                assert!(reason.contains("position"), "{reason}");
            }
            other => panic!("expected damage, got {other:?}"),
        }
        // The scrub bounded by `before` stops there: the second segment is the last one
        // it checks when bounded by the third's base.
        assert_eq!(
            log.scrub_next(Some(bases[0]), Some(bases[2]))
                .await
                .expect("second segment is whole"),
            Some((bases[1], log.inner.state.borrow().segments[1].size))
        );
        assert_eq!(
            log.scrub_next(Some(bases[1]), Some(bases[2]))
                .await
                .expect("nothing left"),
            None
        );
        // Without the snapshots the open walks the damaged segment and refuses the log.
        log.close().await.expect("close");
        for o in snapshots_in(&sim, &dir) {
            sim.remove_file(&snapshot::path(&dir, o))
                .await
                .expect("remove");
        }
        assert!(matches!(
            PartitionLog::open(sim, dir, config).await.map(|_| ()),
            Err(crate::storage::StorageError::Corrupt { .. })
        ));
    });
}
