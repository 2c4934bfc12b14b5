//! Damaged files: a torn last save is cut at every byte, damage anywhere else is an
//! error, forged lengths allocate nothing, stray and superseded files are cleaned up.

use super::tests::{View, dir, entries, files, hard, log_path, open, reopen, snapshot, view_of};
use super::*;
use crate::storage::sim::SimStorage;
use futures_lite::future::block_on;

/// A store with a few saves; returns the disk, the view and the log's length after them.
fn saved_state(seed: u64) -> (SimStorage, View, PathBuf, Vec<u64>) {
    block_on(async {
        let sim = SimStorage::new(seed);
        let (mut s, _) = reopen(&sim).await;
        let mut ends = vec![s.log_len];
        for i in 0..5u64 {
            let es = entries(i * 3 + 1, i * 3 + 3, 1);
            s.save(&es, Some(&hard(1, 1, i * 3))).await.expect("save");
            ends.push(s.log_len);
        }
        let path = log_path(&s);
        drop(s);
        let (_, v) = reopen(&sim).await;
        (sim, v, path, ends)
    })
}

#[test]
fn a_torn_last_save_is_cut_at_every_byte_and_the_store_goes_on() {
    let (sim, before, path, ends) = saved_state(3);
    let whole = sim.file_bytes(&path).expect("log");
    let (start, end) = (ends[4] as usize, ends[5] as usize);
    // The state before the last save: the same log cut at its start.
    let previous = {
        let img = sim.crash_image(0);
        img.set_file_bytes(&path, whole[..start].to_vec());
        block_on(reopen(&img)).1
    };
    assert_ne!(previous, before);
    for k in start..end {
        let mut zero_filled = whole[..k].to_vec();
        zero_filled.resize(end, 0);
        let mut flipped = whole.clone();
        flipped[k] ^= 0x40;
        for (what, bytes) in [
            ("cut", whole[..k].to_vec()),
            ("zero-filled", zero_filled),
            ("flipped", flipped),
        ] {
            let img = sim.crash_image(0);
            img.set_file_bytes(&path, bytes);
            block_on(async {
                let (mut s, v) = open(&img)
                    .await
                    .unwrap_or_else(|e| panic!("{what} at {k}: {e}"));
                assert_eq!(v, previous, "{what} at {k}: the previous durable state");
                assert_eq!(s.log_len, start as u64, "{what} at {k}: the tail is cut");
                assert_eq!(img.file_bytes(&path).map(|b| b.len()), Some(start));
                s.save(&entries(13, 13, 2), None)
                    .await
                    .expect("save after the cut");
                drop(s);
                let (_, v) = reopen(&img).await;
                assert_eq!(
                    v.entries.last().map(|e| (e.0, e.1)),
                    Some((13, 2)),
                    "{what} at {k}"
                );
            });
        }
    }
}

#[test]
fn damage_before_the_tail_is_an_error_not_a_cut() {
    let (sim, _, path, ends) = saved_state(4);
    let whole = sim.file_bytes(&path).expect("log");
    let mut spots: Vec<(String, usize)> = vec![("file header".into(), 20)];
    for w in ends.windows(2).take(ends.len() - 2) {
        let (a, b) = (w[0] as usize, w[1] as usize);
        spots.push((format!("length of the frame at {a}"), a));
        spots.push((format!("header CRC of the frame at {a}"), a + 9));
        spots.push((format!("body of the frame at {a}"), (a + b) / 2));
    }
    for (what, at) in spots {
        let img = sim.crash_image(0);
        let mut bytes = whole.clone();
        bytes[at] ^= 0x01;
        img.set_file_bytes(&path, bytes);
        match block_on(open(&img)) {
            Err(RaftStoreError::Corrupt(_)) => {}
            other => panic!("{what}: {:?}", other.map(|x| x.1)),
        }
    }
}

/// A frame header that passes its own CRC but claims a length no frame may have.
fn forged_header(len: u32) -> Vec<u8> {
    let mut h = len.to_le_bytes().to_vec();
    h.extend_from_slice(&0u32.to_le_bytes());
    let crc = crc32c::crc32c(&h);
    h.extend_from_slice(&crc.to_le_bytes());
    h
}

#[test]
fn lengths_read_from_disk_are_bounded() {
    let (sim, before, path, ends) = saved_state(5);
    let whole = sim.file_bytes(&path).expect("log");
    for len in [u32::MAX, FRAME_BODY_MAX as u32 + 1, 1 << 30] {
        // At the tail: taken for a torn write and cut, with nothing allocated by it.
        let mut tail = whole.clone();
        tail.extend(forged_header(len));
        tail.extend_from_slice(&[7; 100]);
        let img = sim.crash_image(0);
        img.set_file_bytes(&path, tail);
        let (s, v) = block_on(open(&img)).expect("forged tail");
        assert_eq!((v, s.log_len), (before.clone(), whole.len() as u64));
        // In the middle: the frames after it are valid, so it is corruption.
        let mut mid = whole[..ends[2] as usize].to_vec();
        mid.extend(forged_header(len));
        mid.extend_from_slice(&whole[ends[2] as usize + FRAME_HEADER..]);
        let img = sim.crash_image(0);
        img.set_file_bytes(&path, mid);
        assert!(matches!(
            block_on(open(&img)),
            Err(RaftStoreError::Corrupt(_))
        ));
    }
}

#[test]
fn damage_inside_a_rewritten_log_is_never_a_torn_tail() {
    block_on(async {
        let sim = SimStorage::new(9);
        let (mut s, _) = reopen(&sim).await;
        s.set_compact_bytes_min(0);
        for round in 0..6u64 {
            s.save(&entries(1, 10, round + 1), None)
                .await
                .expect("save");
        }
        s.save_snapshot(&snapshot(3, 6, b"i"))
            .await
            .expect("snapshot");
        s.compact(3).await.expect("compact");
        let path = log_path(&s);
        drop(s);
        // The rewritten file ends with its synced initial part: its last frame is not a tail.
        let mut bytes = sim.file_bytes(&path).expect("log");
        let last = bytes.len() - 3;
        bytes[last] ^= 0x10;
        sim.set_file_bytes(&path, bytes);
        assert!(matches!(
            block_on(open(&sim)),
            Err(RaftStoreError::Corrupt(_))
        ));
    });
}

#[test]
fn stray_and_superseded_files_are_removed_and_damaged_snapshots_refused() {
    block_on(async {
        let sim = SimStorage::new(10);
        let (mut s, _) = reopen(&sim).await;
        s.save(&entries(1, 4, 1), None).await.expect("save");
        s.save_snapshot(&snapshot(2, 1, b"image"))
            .await
            .expect("snapshot");
        drop(s);
        let d = dir();
        let tmp = d.join(format!("{:020}.snapshot.tmp", 2));
        sim.set_file_bytes(&tmp, b"half a snapshot".to_vec());
        sim.set_file_bytes(&d.join(format!("{:020}.raftlog.tmp", 2)), vec![1; 40]);
        sim.set_file_bytes(
            &d.join(format!("{:020}.snapshot", 0)),
            b"superseded".to_vec(),
        );
        sim.set_file_bytes(&d.join("notes.txt"), b"not ours".to_vec());
        let (_, v) = reopen(&sim).await;
        assert_eq!(
            v,
            view_of((0, 0, 0), Some((2, 1, b"image")), &entries(3, 4, 1))
        );
        assert_eq!(
            files(&sim),
            vec![
                format!("{:020}.raftlog", 1),
                format!("{:020}.snapshot", 1),
                "notes.txt".to_string()
            ]
        );
        // The snapshot the log depends on is damaged, or gone.
        let snap = d.join(format!("{:020}.snapshot", 1));
        let mut bytes = sim.file_bytes(&snap).expect("snapshot");
        let good = bytes.clone();
        bytes[20] ^= 1;
        sim.set_file_bytes(&snap, bytes);
        assert!(matches!(
            block_on(open(&sim)),
            Err(RaftStoreError::Corrupt(_))
        ));
        block_on(sim.remove_file(&snap)).expect("remove");
        assert!(matches!(
            block_on(open(&sim)),
            Err(RaftStoreError::Corrupt(_))
        ));
        // A snapshot with no log beside it.
        let empty = SimStorage::new(11);
        empty.set_file_bytes(&snap, good);
        assert!(matches!(
            block_on(open(&empty)),
            Err(RaftStoreError::Corrupt(_))
        ));
    });
}
