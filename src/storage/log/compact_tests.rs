//! Compaction on the simulated disk, checked against a model of what must stay.

use super::super::PartitionLog;
use crate::compression::Codec;
use crate::config::{FlushMode, LogConfig};
use crate::protocol::batch::{self, testing::keyed};
use crate::storage::Storage;
use crate::storage::clean::{Unpaced, records};
use crate::storage::sim::SimStorage;
use bytes::Bytes;
use futures_lite::future::block_on;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::cell::Cell;
use std::collections::BTreeMap;
use std::path::PathBuf;

thread_local! {
    static NOW: Cell<i64> = const { Cell::new(10_000_000) };
}

pub(super) fn now() -> i64 {
    NOW.with(|n| n.get())
}

pub(super) fn advance(ms: i64) {
    NOW.with(|n| n.set(n.get() + ms));
}

pub(super) const MAP_BYTES: u64 = 1 << 20;

/// (offset, key, value) of a record; `None` is null.
pub(super) type Rec = (i64, Option<Vec<u8>>, Option<Vec<u8>>);

pub(super) fn compact_cfg() -> LogConfig {
    LogConfig {
        segment_bytes: 4096,
        index_interval_bytes: 256,
        retention_ms: None,
        cleanup_delete: false,
        cleanup_compact: true,
        flush: FlushMode::None,
        ..LogConfig::default()
    }
}

/// A batch of (key, value) records, compressed with `codec`.
pub(super) fn kv(recs: &[(&str, Option<&str>)], codec: Codec) -> Bytes {
    let recs: Vec<batch::testing::KeyValue<'_>> = recs
        .iter()
        .map(|(k, v)| (Some(k.as_bytes()), v.map(str::as_bytes)))
        .collect();
    let mut b = keyed(&recs, now());
    if codec != Codec::None {
        let payload = crate::compression::compress(codec, &b[batch::HEADER_BYTES..]);
        b.truncate(batch::HEADER_BYTES);
        b.extend_from_slice(&payload);
        let len = (b.len() - batch::LOG_OVERHEAD) as i32;
        batch::set_length_attributes_and_crc(&mut b, len, codec as i16);
    }
    Bytes::from(b)
}

/// Every record a consumer reads from the log start, checking that batches are whole,
/// valid and in increasing offsets.
pub(super) async fn records_of<S: Storage>(log: &PartitionLog<S>) -> Vec<Rec> {
    let mut out: Vec<Rec> = Vec::new();
    let mut next = log.log_start_offset();
    let mut last = -1;
    loop {
        let slice = log.read(next, 1 << 20).await.expect("read");
        if slice.regions.is_empty() {
            return out;
        }
        for r in &slice.regions {
            let bytes = r.read().await.expect("region");
            let mut at = 0;
            while at < bytes.len() {
                let (_, len) = batch::peek_offset_and_size(&bytes[at..]).expect("header");
                let end = at + len as usize + batch::LOG_OVERHEAD;
                let b = &bytes[at..end];
                let h = batch::validate_stored_batch(b).expect("valid batch");
                assert!(h.base_offset > last, "offsets increase");
                let recs = records::records_of(&h, b, 1 << 24).expect("records");
                for rec in records::parse(&h, &recs).expect("parse") {
                    let off = rec.offset(h.base_offset).expect("offset");
                    assert!(
                        off > last && off <= h.last_offset(),
                        "record offsets increase"
                    );
                    last = off;
                    out.push((
                        off,
                        rec.key.map(<[u8]>::to_vec),
                        rec.value.map(<[u8]>::to_vec),
                    ));
                }
                last = last.max(h.last_offset());
                next = h.last_offset() + 1;
                at = end;
            }
        }
    }
}

/// What compaction must leave of `all`: records at or past `active_base` all stay; below
/// it, the latest record of each key below it.
pub(super) fn model(all: &[Rec], active_base: i64, drop_tombstones: bool) -> Vec<Rec> {
    let mut latest = BTreeMap::new();
    for (o, k, _) in all.iter().filter(|r| r.0 < active_base) {
        latest.insert(k.clone(), *o);
    }
    all.iter()
        .filter(|(o, k, v)| {
            *o >= active_base || (latest.get(k) == Some(o) && !(drop_tombstones && v.is_none()))
        })
        .cloned()
        .collect()
}

pub(super) async fn fill(log: &PartitionLog<SimStorage>, seed: u64, batches: usize, codec: Codec) {
    let mut rng = StdRng::seed_from_u64(seed);
    for i in 0..batches {
        let n = rng.random_range(1..=4);
        let recs: Vec<(String, Option<String>)> = (0..n)
            .map(|j| {
                let key = format!("key-{}", rng.random_range(0..12));
                let value = (rng.random_range(0..10) > 0)
                    .then(|| format!("v{i}-{j}-{}", "x".repeat(i % 40)));
                (key, value)
            })
            .collect();
        let recs: Vec<(&str, Option<&str>)> = recs
            .iter()
            .map(|(k, v)| (k.as_str(), v.as_deref()))
            .collect();
        log.append(kv(&recs, codec)).await.expect("append");
    }
}

#[test]
fn cleaning_keeps_the_latest_record_per_key_at_its_offset_and_not_the_active_segment() {
    for (seed, codec) in [
        (1, Codec::None),
        (2, Codec::Gzip),
        (3, Codec::Zstd),
        (4, Codec::Lz4),
    ] {
        block_on(async {
            let sim = SimStorage::new(seed);
            let dir = PathBuf::from("/d/c-0");
            let log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), compact_cfg(), now)
                .await
                .expect("open");
            fill(&log, seed, 300, codec).await;
            let all = records_of(&log).await;
            let active_base = *log.segment_bases().last().expect("segments");
            assert!(log.segment_count() > 3, "several sealed segments");
            let active_bytes = sim.file_bytes(&dir.join(format!("{active_base:020}.log")));
            let report = log.clean(now(), MAP_BYTES, &Unpaced).await.expect("clean");
            let report = report.expect("something to clean");
            assert_eq!(report.cleaned_to, active_base);
            assert!(report.records_removed > 0);
            let stats = log.stats();
            assert_eq!(stats.cleaner_runs.get(), 1);
            assert_eq!(stats.cleaner_records_removed.get(), report.records_removed);
            assert_eq!(stats.cleaner_bytes_written.get(), report.bytes_written);
            let want = model(&all, active_base, false);
            assert_eq!(records_of(&log).await, want, "{codec:?}");
            assert_eq!(
                sim.file_bytes(&dir.join(format!("{active_base:020}.log"))),
                active_bytes,
                "the active segment is untouched"
            );
            assert_eq!(log.log_end_offset(), all.last().map_or(0, |r| r.0 + 1));
            // Nothing new is dirty: nothing to clean until more segments are sealed.
            assert_eq!(log.cleanable(now()).await.expect("cleanable"), None);
            // Appends go on, and a reopen reads the same.
            fill(&log, seed + 100, 3, codec).await;
            let before = records_of(&log).await;
            log.close().await.expect("close");
            let log = PartitionLog::open_with_clock(sim, dir, compact_cfg(), now)
                .await
                .expect("reopen");
            assert_eq!(records_of(&log).await, before);
        });
    }
}

#[test]
fn fetch_from_a_removed_offset_returns_the_next_batch() {
    block_on(async {
        let sim = SimStorage::new(5);
        let config = LogConfig {
            io: crate::config::IoMode::Direct,
            ..compact_cfg()
        };
        let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/f-0"), config, now)
            .await
            .expect("open");
        // Reads of the old positions come from the batch cache until the clean forgets
        // them: a stale cache would serve the removed batches.
        let cache = std::rc::Rc::new(std::cell::RefCell::new(crate::storage::BatchCache::new(
            1 << 20,
        )));
        log.use_cache(cache.clone());
        for i in 0..10 {
            let v = format!("{i}");
            log.append(kv(&[("k", Some(&v))], Codec::None))
                .await
                .expect("append");
        }
        log.force_roll().await.expect("roll");
        log.append(kv(&[("other", Some("x"))], Codec::None))
            .await
            .expect("append");
        log.clean(now(), MAP_BYTES, &Unpaced).await.expect("clean");
        let (hw, start) = (log.high_watermark(), log.log_start_offset());
        assert_eq!(
            (hw, start),
            (11, 0),
            "high watermark and log start unchanged"
        );
        let slice = log.read(3, 1 << 20).await.expect("read removed offset");
        let bytes = slice.regions[0].read().await.expect("region");
        let h = batch::validate_stored_batch(
            &bytes[..batch::peek_offset_and_size(&bytes).map_or(0, |(_, l)| l as usize + 12)],
        )
        .expect("batch");
        assert_eq!(h.base_offset, 9, "the next batch that remains");
        assert_eq!(
            records_of(&log)
                .await
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            vec![9, 10]
        );
    });
}

#[test]
fn tombstones_stay_until_delete_retention_after_their_first_clean() {
    block_on(async {
        let sim = SimStorage::new(6);
        let config = LogConfig {
            delete_retention_ms: 60_000,
            ..compact_cfg()
        };
        let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/t-0"), config, now)
            .await
            .expect("open");
        log.append(kv(&[("a", Some("1")), ("b", Some("1"))], Codec::None))
            .await
            .expect("append");
        log.append(kv(&[("a", None)], Codec::None))
            .await
            .expect("append");
        log.force_roll().await.expect("roll");
        log.append(kv(&[("c", Some("1"))], Codec::None))
            .await
            .expect("append");
        let all = records_of(&log).await;
        log.clean(now(), MAP_BYTES, &Unpaced).await.expect("clean");
        assert_eq!(
            records_of(&log).await,
            model(&all, 3, false),
            "tombstone kept"
        );
        advance(30_000);
        assert_eq!(
            log.cleanable(now()).await.expect("cleanable"),
            None,
            "not due yet"
        );
        advance(30_001);
        let due = log.cleanable(now()).await.expect("cleanable").expect("due");
        assert!(due.overdue, "the passed delete horizon makes the log due");
        log.clean(now(), MAP_BYTES, &Unpaced).await.expect("clean");
        assert_eq!(
            records_of(&log).await,
            model(&all, 3, true),
            "tombstone gone"
        );
    });
}

#[test]
fn min_compaction_lag_keeps_young_segments_dirty() {
    block_on(async {
        let sim = SimStorage::new(7);
        let config = LogConfig {
            min_compaction_lag_ms: 60_000,
            ..compact_cfg()
        };
        let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/l-0"), config, now)
            .await
            .expect("open");
        for v in ["1", "2", "3"] {
            log.append(kv(&[("k", Some(v))], Codec::None))
                .await
                .expect("append");
        }
        log.force_roll().await.expect("roll");
        log.append(kv(&[("k", Some("4"))], Codec::None))
            .await
            .expect("append");
        let all = records_of(&log).await;
        assert_eq!(
            log.clean(now(), MAP_BYTES, &Unpaced).await.expect("clean"),
            None
        );
        assert_eq!(
            records_of(&log).await,
            all,
            "records younger than the lag stay"
        );
        advance(60_000);
        assert!(
            log.clean(now(), MAP_BYTES, &Unpaced)
                .await
                .expect("clean")
                .is_some()
        );
        assert_eq!(records_of(&log).await, model(&all, 3, false));
    });
}

#[test]
fn the_last_batch_of_an_idempotent_producer_stays_as_an_empty_batch() {
    block_on(async {
        let sim = SimStorage::new(8);
        let dir = PathBuf::from("/d/p-0");
        let log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), compact_cfg(), now)
            .await
            .expect("open");
        let idem = |v: &str, seq: i32| {
            let mut b = kv(&[("k", Some(v))], Codec::None).to_vec();
            batch::set_producer(&mut b, 7, 0, seq);
            Bytes::from(b)
        };
        log.append(idem("1", 0)).await.expect("append");
        log.append(idem("2", 1)).await.expect("append");
        log.append(kv(&[("k", Some("3"))], Codec::None))
            .await
            .expect("append");
        log.force_roll().await.expect("roll");
        log.append(kv(&[("x", Some("1"))], Codec::None))
            .await
            .expect("append");
        let report = log
            .clean(now(), MAP_BYTES, &Unpaced)
            .await
            .expect("clean")
            .expect("ran");
        assert_eq!(
            report.batches_removed, 1,
            "the producer's earlier batch goes"
        );
        assert_eq!(
            records_of(&log)
                .await
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
        // The producer's last batch is there, empty, and its state survives a reopen.
        let slice = log.read(0, 1 << 20).await.expect("read");
        let bytes = slice.regions[0].read().await.expect("region");
        let h = batch::BatchHeader::parse(&bytes).expect("header");
        assert_eq!(
            (
                h.base_offset,
                h.record_count,
                h.producer_id,
                h.base_sequence
            ),
            (1, 0, 7, 1)
        );
        log.close().await.expect("close");
        let log = PartitionLog::open_with_clock(sim, dir, compact_cfg(), now)
            .await
            .expect("reopen");
        let state = log
            .inner
            .producers
            .borrow()
            .last_batch(7)
            .map(|(_, m)| (m.last_seq, m.last_offset));
        assert_eq!(state, Some((1, 1)));
    });
}

#[test]
fn compact_alone_keeps_every_segment_and_compact_delete_also_deletes() {
    block_on(async {
        for (delete, kept) in [(false, true), (true, false)] {
            let sim = SimStorage::new(11);
            let config = LogConfig {
                retention_ms: Some(60_000),
                cleanup_delete: delete,
                ..compact_cfg()
            };
            let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/r-0"), config, now)
                .await
                .expect("open");
            fill(&log, 11, 100, Codec::None).await;
            let segments = log.segment_count();
            advance(120_000);
            log.tick(now()).await.expect("tick");
            assert_eq!(log.segment_count() == segments, kept, "delete={delete}");
            assert_eq!(log.log_start_offset() == 0, kept, "delete={delete}");
        }
    });
}

#[test]
fn max_compaction_lag_makes_a_log_due_whatever_its_ratio() {
    block_on(async {
        let sim = SimStorage::new(12);
        let config = LogConfig {
            max_compaction_lag_ms: 600_000,
            ..compact_cfg()
        };
        let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/m-0"), config, now)
            .await
            .expect("open");
        log.append(kv(&[("k", Some("1"))], Codec::None))
            .await
            .expect("append");
        log.force_roll().await.expect("roll");
        log.append(kv(&[("k", Some("2"))], Codec::None))
            .await
            .expect("append");
        let c = log
            .cleanable(now())
            .await
            .expect("cleanable")
            .expect("dirty");
        assert!(!c.overdue && c.dirty_bytes > 0);
        advance(600_001);
        let c = log
            .cleanable(now())
            .await
            .expect("cleanable")
            .expect("dirty");
        assert!(c.overdue, "older than max.compaction.lag.ms");
        // A log that is not compacted is never cleanable.
        let mut plain = log.config();
        plain.cleanup_compact = false;
        log.set_config(plain);
        assert_eq!(log.cleanable(now()).await.expect("cleanable"), None);
        assert_eq!(
            log.clean(now(), MAP_BYTES, &Unpaced).await.expect("clean"),
            None
        );
    });
}

#[test]
fn repeated_cleans_with_appends_and_reopens_match_the_model() {
    block_on(async {
        let sim = SimStorage::new(13);
        let dir = PathBuf::from("/d/rep-0");
        let mut log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), compact_cfg(), now)
            .await
            .expect("open");
        let mut history: Vec<Rec> = Vec::new();
        let mut runs = 0;
        for round in 0..6u64 {
            let from = log.log_end_offset();
            fill(
                &log,
                100 + round,
                60,
                [Codec::None, Codec::Snappy][round as usize % 2],
            )
            .await;
            // What was appended this round, read before any clean touches it.
            history.extend(records_of(&log).await.into_iter().filter(|r| r.0 >= from));
            if round % 2 == 1 {
                log.force_roll().await.expect("roll");
            }
            if log
                .clean(now(), MAP_BYTES, &Unpaced)
                .await
                .expect("clean")
                .is_some()
            {
                runs += 1;
            }
            let active_base = *log.segment_bases().last().expect("segments");
            assert_eq!(
                records_of(&log).await,
                model(&history, active_base, false),
                "round {round}"
            );
            if round % 3 == 2 {
                log.close().await.expect("close");
                log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), compact_cfg(), now)
                    .await
                    .expect("reopen");
                assert_eq!(records_of(&log).await, model(&history, active_base, false));
            }
        }
        assert!(
            records_of(&log).await.len() < history.len() / 2,
            "cleans removed records"
        );
        assert!(runs >= 4, "{runs} cleans ran");
    });
}

#[test]
fn reads_skip_segments_that_cleaning_emptied() {
    block_on(async {
        let sim = SimStorage::new(16);
        let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/e-0"), compact_cfg(), now)
            .await
            .expect("open");
        // Three segments of ~3 KB (too large to be grouped under segment.bytes = 4096),
        // each overwriting the same key.
        let big = "v".repeat(3000);
        for _ in 0..3 {
            log.append(kv(&[("k", Some(&big))], Codec::None))
                .await
                .expect("append");
            log.force_roll().await.expect("roll");
        }
        log.append(kv(&[("other", Some("x"))], Codec::None))
            .await
            .expect("append");
        log.clean(now(), MAP_BYTES, &Unpaced).await.expect("clean");
        assert_eq!(
            log.segment_bases(),
            vec![0, 1, 2, 3],
            "one cleaned segment per group"
        );
        assert_eq!(log.log_start_offset(), 0);
        for from in [0, 1, 2] {
            let slice = log.read(from, 1 << 20).await.expect("read");
            let bytes = slice.regions[0].read().await.expect("region");
            let h = batch::BatchHeader::parse(&bytes).expect("header");
            assert_eq!(
                h.base_offset, 2,
                "from {from}: the first batch that remains"
            );
        }
        assert_eq!(
            records_of(&log)
                .await
                .iter()
                .map(|r| r.0)
                .collect::<Vec<_>>(),
            vec![2, 3]
        );
    });
}
