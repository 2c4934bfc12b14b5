//! Compaction on the simulated disk under faults: a crash before every IO step of a clean
//! and of the recovery that finishes it, a damaged batch, a key map too small.

use super::super::PartitionLog;
use super::tests::{MAP_BYTES, Rec, compact_cfg, fill, kv, model, now, records_of};
use crate::compression::Codec;
use crate::config::LogConfig;
use crate::storage::Storage;
use crate::storage::clean::Unpaced;
use crate::storage::sim::SimStorage;
use futures_lite::future::block_on;
use std::path::PathBuf;

#[test]
fn a_crash_at_every_step_of_a_clean_leaves_the_old_or_the_new_log() {
    block_on(async {
        let dir = PathBuf::from("/d/x-0");
        // One group: small segments made by hand, under a large segment.bytes.
        let config = LogConfig {
            segment_bytes: 1 << 20,
            ..compact_cfg()
        };
        let origin = SimStorage::new(9);
        let log = PartitionLog::open_with_clock(origin.clone(), dir.clone(), config.clone(), now)
            .await
            .expect("open");
        for _ in 0..3 {
            fill(&log, 9, 40, Codec::Snappy).await;
            log.force_roll().await.expect("roll");
        }
        fill(&log, 10, 5, Codec::Snappy).await;
        log.close().await.expect("close");
        let old = records_of(&log).await;
        let active_base = *log.segment_bases().last().expect("segments");
        let new = model(&old, active_base, false);
        assert_ne!(old, new);
        let mut step = 1;
        let mut swaps_seen = 0;
        loop {
            let disk = origin.crash_image(0);
            let log = PartitionLog::open_with_clock(disk.clone(), dir.clone(), config.clone(), now)
                .await
                .expect("open before the clean");
            disk.crash_at_op(step);
            let done = log.clean(now(), MAP_BYTES, &Unpaced).await.is_ok();
            for seed in 0..4 {
                let image = disk.crash_image(seed);
                let names = image.list_dir(&dir).await.expect("list");
                if names.iter().any(|n| n.ends_with(".swap")) {
                    crash_while_finishing_the_swap(&image, &dir, &config, &new).await;
                    swaps_seen += 1;
                }
                let log = PartitionLog::open_with_clock(image, dir.clone(), config.clone(), now)
                    .await
                    .unwrap_or_else(|e| panic!("step {step} seed {seed}: open: {e}"));
                let got = records_of(&log).await;
                assert!(got == old || got == new, "step {step} seed {seed}: a mix");
                if done {
                    assert_eq!(got, new, "a finished clean is durable");
                }
            }
            if done {
                break;
            }
            step += 1;
        }
        assert!(step > 8, "the clean took {step} steps");
        assert!(swaps_seen > 0, "some crashes land after the commit point");
    });
}

/// A committed swap is finished by the next open; a crash at every step of that finishing
/// still leaves a disk that opens to the cleaned log.
async fn crash_while_finishing_the_swap(
    image: &SimStorage,
    dir: &std::path::Path,
    config: &LogConfig,
    new: &[Rec],
) {
    let mut step = 1;
    loop {
        let disk = image.crash_image(0);
        disk.crash_at_op(step);
        let opened =
            PartitionLog::open_with_clock(disk.clone(), dir.to_path_buf(), config.clone(), now)
                .await
                .is_ok();
        let again = PartitionLog::open_with_clock(
            disk.crash_image(1),
            dir.to_path_buf(),
            config.clone(),
            now,
        )
        .await
        .unwrap_or_else(|e| panic!("recovery step {step}: open: {e}"));
        assert_eq!(records_of(&again).await, new, "recovery step {step}");
        if opened {
            return;
        }
        step += 1;
    }
}

#[test]
fn a_damaged_batch_stops_the_clean_and_changes_nothing() {
    block_on(async {
        let sim = SimStorage::new(14);
        let dir = PathBuf::from("/d/bad-0");
        let log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), compact_cfg(), now)
            .await
            .expect("open");
        fill(&log, 14, 120, Codec::None).await;
        let first = dir.join(format!("{:020}.log", 0));
        let mut bytes = sim.file_bytes(&first).expect("first segment");
        let last = bytes.len() - 1;
        bytes[last] ^= 0x55;
        sim.set_file_bytes(&first, bytes);
        let before = sim.list_dir(&dir).await.expect("list");
        let snapshot: Vec<_> = before
            .iter()
            .map(|n| sim.file_bytes(&dir.join(n)))
            .collect();
        assert!(matches!(
            log.clean(now(), MAP_BYTES, &Unpaced).await,
            Err(crate::storage::StorageError::Corrupt { .. })
        ));
        let after = sim.list_dir(&dir).await.expect("list");
        assert_eq!(after, before, "no file left behind");
        let now_bytes: Vec<_> = after.iter().map(|n| sim.file_bytes(&dir.join(n))).collect();
        assert_eq!(now_bytes, snapshot, "nothing rewritten");
    });
}

#[test]
fn the_key_map_bound_ends_the_dirty_section_at_a_segment() {
    block_on(async {
        let sim = SimStorage::new(15);
        let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/map-0"), compact_cfg(), now)
            .await
            .expect("open");
        // Distinct keys in every segment: each segment's keys need their own room.
        for seg in 0..4 {
            for i in 0..20 {
                let key = format!("s{seg}-k{}", i % 10);
                log.append(kv(&[(&key, Some("v"))], Codec::None))
                    .await
                    .expect("append");
            }
            log.force_roll().await.expect("roll");
        }
        let all = records_of(&log).await;
        let first_end = log.segment_bases()[1];
        // Room for about 1.5 segments' keys: the first clean maps one segment.
        let room = 15 * (64 + 6);
        assert!(
            log.clean(now(), 5 * (64 + 6), &Unpaced).await.is_err(),
            "not one segment fits"
        );
        let report = log
            .clean(now(), room, &Unpaced)
            .await
            .expect("clean")
            .expect("ran");
        assert_eq!(
            report.cleaned_to, first_end,
            "stopped after the first segment"
        );
        assert_eq!(
            records_of(&log).await,
            model(&all, first_end, false)
                .into_iter()
                .filter(|r| r.0 < first_end)
                .chain(all.iter().filter(|r| r.0 >= first_end).cloned())
                .collect::<Vec<_>>()
        );
        // The next cleans go on from the checkpoint.
        while log.cleanable(now()).await.expect("cleanable").is_some() {
            log.clean(now(), room, &Unpaced).await.expect("clean");
        }
        let active = *log.segment_bases().last().expect("segments");
        assert_eq!(records_of(&log).await, model(&all, active, false));
    });
}

#[test]
fn a_crash_in_a_clean_of_several_groups_leaves_a_cleaned_prefix_of_them() {
    block_on(async {
        let dir = PathBuf::from("/d/g-0");
        let config = compact_cfg();
        let origin = SimStorage::new(17);
        let log = PartitionLog::open_with_clock(origin.clone(), dir.clone(), config.clone(), now)
            .await
            .expect("open");
        fill(&log, 17, 100, Codec::Lz4).await;
        log.close().await.expect("close");
        let old = records_of(&log).await;
        let bases = log.segment_bases();
        let active_base = *bases.last().expect("segments");
        let new = model(&old, active_base, false);
        // Groups are whole segments, swapped in order: a crash leaves the groups before
        // some segment base cleaned and the rest as they were.
        let states: Vec<Vec<Rec>> = bases
            .iter()
            .map(|&b| {
                new.iter()
                    .filter(|r| r.0 < b)
                    .chain(old.iter().filter(|r| r.0 >= b))
                    .cloned()
                    .collect()
            })
            .collect();
        let mut step = 1;
        let mut partial = 0;
        loop {
            let disk = origin.crash_image(0);
            let log = PartitionLog::open_with_clock(disk.clone(), dir.clone(), config.clone(), now)
                .await
                .expect("open before the clean");
            disk.crash_at_op(step);
            let done = log.clean(now(), MAP_BYTES, &Unpaced).await.is_ok();
            for seed in 0..2 {
                let image = disk.crash_image(seed);
                let log = PartitionLog::open_with_clock(image, dir.clone(), config.clone(), now)
                    .await
                    .unwrap_or_else(|e| panic!("step {step} seed {seed}: open: {e}"));
                let got = records_of(&log).await;
                let at = states.iter().position(|s| *s == got);
                assert!(
                    at.is_some(),
                    "step {step} seed {seed}: not a cleaned prefix"
                );
                if at.is_some_and(|i| i > 0 && i + 1 < states.len()) {
                    partial += 1;
                }
            }
            if done {
                break;
            }
            step += 1;
        }
        assert!(
            bases.len() >= 4 && partial > 0,
            "crashes landed between groups: {} segments, {partial} partial images",
            bases.len()
        );
    });
}
