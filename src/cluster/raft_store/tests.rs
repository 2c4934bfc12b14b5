//! The store on the simulated disk: round trips, Raft's rules, damaged files, failed syncs.
//! Crashes at every step are in `tests_crash`.

use super::*;
use crate::storage::sim::SimStorage;
use futures_lite::future::block_on;
use raft::eraftpb::ConfState;

pub(super) fn dir() -> PathBuf {
    PathBuf::from("/data/__cluster")
}

pub(super) fn entry(index: u64, term: u64, data: &[u8]) -> Entry {
    Entry {
        index,
        term,
        data: Bytes::copy_from_slice(data),
        ..Default::default()
    }
}

/// Entries `from..=to` of `term` with small distinct payloads.
pub(super) fn entries(from: u64, to: u64, term: u64) -> Vec<Entry> {
    (from..=to)
        .map(|i| entry(i, term, format!("cmd {i} of term {term}").as_bytes()))
        .collect()
}

pub(super) fn hard(term: u64, vote: u64, commit: u64) -> HardState {
    HardState {
        term,
        vote,
        commit,
        ..Default::default()
    }
}

pub(super) fn snapshot(index: u64, term: u64, data: &[u8]) -> Snapshot {
    let mut s = Snapshot {
        data: Bytes::copy_from_slice(data),
        ..Default::default()
    };
    let m = s.mut_metadata();
    m.index = index;
    m.term = term;
    m.set_conf_state(ConfState::from((vec![1, 2, 3], vec![])));
    s
}

/// What `open` recovered, in a form tests compare.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct View {
    pub hard_state: (u64, u64, u64),
    pub snapshot: Option<(u64, u64, Vec<u8>)>,
    pub entries: Vec<(u64, u64, Vec<u8>)>,
}

pub(super) fn view(r: &Recovered) -> View {
    let snap_index = r.snapshot.as_ref().map_or(0, |s| s.get_metadata().index);
    for (k, e) in r.entries.iter().enumerate() {
        assert_eq!(
            e.index,
            snap_index + 1 + k as u64,
            "entries are contiguous right after the snapshot"
        );
    }
    View {
        hard_state: (r.hard_state.term, r.hard_state.vote, r.hard_state.commit),
        snapshot: r.snapshot.as_ref().map(|s| {
            let m = s.get_metadata();
            assert_eq!(m.get_conf_state().voters, vec![1, 2, 3]);
            (m.index, m.term, s.data.to_vec())
        }),
        entries: r
            .entries
            .iter()
            .map(|e| (e.index, e.term, e.data.to_vec()))
            .collect(),
    }
}

pub(super) fn view_of(hs: (u64, u64, u64), snap: Option<(u64, u64, &[u8])>, es: &[Entry]) -> View {
    View {
        hard_state: hs,
        snapshot: snap.map(|(i, t, d)| (i, t, d.to_vec())),
        entries: es
            .iter()
            .map(|e| (e.index, e.term, e.data.to_vec()))
            .collect(),
    }
}

pub(super) async fn open(
    sim: &SimStorage,
) -> Result<(RaftStore<SimStorage>, View), RaftStoreError> {
    let (store, rec) = RaftStore::open(sim.clone(), dir()).await?;
    Ok((store, view(&rec)))
}

pub(super) async fn reopen(sim: &SimStorage) -> (RaftStore<SimStorage>, View) {
    open(sim).await.expect("open")
}

pub(super) fn log_path(store: &RaftStore<SimStorage>) -> PathBuf {
    file_path(&store.dir, store.log_gen, LOG_EXT)
}

pub(super) fn files(sim: &SimStorage) -> Vec<String> {
    let mut names = block_on(sim.list_dir(&dir())).expect("list");
    names.sort();
    names
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    block_on(async {
        let sim = SimStorage::new(1);
        let (mut s, v) = reopen(&sim).await;
        assert_eq!(v, view_of((0, 0, 0), None, &[]), "a new store is empty");
        s.save(&entries(1, 3, 1), Some(&hard(1, 2, 0)))
            .await
            .expect("save");
        s.save(&entries(4, 4, 1), None).await.expect("entries only");
        s.save(&[], Some(&hard(1, 2, 3)))
            .await
            .expect("hard state only");
        s.save(&[], None).await.expect("nothing to save");
        drop(s);
        let (mut s, v) = reopen(&sim).await;
        assert_eq!(v, view_of((1, 2, 3), None, &entries(1, 4, 1)));
        // The reopened store goes on where it was.
        s.save(&entries(5, 6, 2), Some(&hard(2, 1, 4)))
            .await
            .expect("save");
        drop(s);
        let (_, v) = reopen(&sim).await;
        let mut want = entries(1, 4, 1);
        want.extend(entries(5, 6, 2));
        assert_eq!(v, view_of((2, 1, 4), None, &want));
        assert_eq!(files(&sim), vec![format!("{:020}.raftlog", 1)]);
    });
}

#[test]
fn a_conflicting_entry_replaces_the_suffix_and_gaps_are_refused() {
    block_on(async {
        let sim = SimStorage::new(2);
        let (mut s, _) = reopen(&sim).await;
        s.save(&entries(1, 10, 1), Some(&hard(1, 1, 2)))
            .await
            .expect("save");
        s.save(&entries(6, 7, 2), Some(&hard(2, 3, 2)))
            .await
            .expect("conflict");
        let mut want = entries(1, 5, 1);
        want.extend(entries(6, 7, 2));
        let len = s.log_len;
        for (bad, why) in [
            (entries(9, 9, 2), "gap after 7"),
            (entries(0, 0, 2), "index 0"),
            (
                vec![entry(8, 2, b"a"), entry(10, 2, b"b")],
                "not contiguous",
            ),
        ] {
            let r = s.save(&bad, Some(&hard(9, 9, 9))).await;
            assert!(matches!(r, Err(RaftStoreError::Invalid(_))), "{why}: {r:?}");
        }
        assert_eq!(s.log_len, len, "a refused save writes nothing");
        drop(s);
        let (mut s, v) = reopen(&sim).await;
        assert_eq!(v, view_of((2, 3, 2), None, &want));
        s.save(&entries(3, 3, 3), None)
            .await
            .expect("a deeper conflict");
        drop(s);
        let (_, v) = reopen(&sim).await;
        let mut want = entries(1, 2, 1);
        want.extend(entries(3, 3, 3));
        assert_eq!(v, view_of((2, 3, 2), None, &want));
    });
}

#[test]
fn a_failed_sync_is_an_error_and_the_store_takes_no_more_writes() {
    block_on(async {
        let sim = SimStorage::new(6);
        let (mut s, _) = reopen(&sim).await;
        s.save(&entries(1, 2, 1), Some(&hard(1, 1, 1)))
            .await
            .expect("save");
        sim.fail_sync_at(1);
        let r = s.save(&entries(3, 4, 1), Some(&hard(1, 1, 3))).await;
        assert!(matches!(r, Err(RaftStoreError::Io(_))), "{r:?}");
        // A retried fdatasync would report success on Linux; the store must not trust it.
        let r = s.save(&entries(3, 4, 1), None).await;
        assert!(matches!(r, Err(RaftStoreError::Failed)), "{r:?}");
        let r = s.save_snapshot(&snapshot(2, 1, b"img")).await;
        assert!(matches!(r, Err(RaftStoreError::Failed)), "{r:?}");
        assert!(matches!(s.compact(0).await, Err(RaftStoreError::Failed)));
        for seed in 0..4 {
            let (_, v) = reopen(&sim.crash_image(seed)).await;
            assert_eq!(
                v,
                view_of((1, 1, 1), None, &entries(1, 2, 1)),
                "seed {seed}"
            );
        }
    });
}

#[test]
fn a_local_snapshot_keeps_the_tail_and_a_leader_snapshot_replaces_a_diverged_log() {
    block_on(async {
        let sim = SimStorage::new(7);
        let (mut s, _) = reopen(&sim).await;
        s.save(&entries(1, 10, 1), Some(&hard(1, 1, 7)))
            .await
            .expect("save");
        s.save_snapshot(&snapshot(5, 1, b"image at 5"))
            .await
            .expect("local");
        drop(s);
        let (mut s, v) = reopen(&sim).await;
        assert_eq!(
            v,
            view_of((1, 1, 7), Some((5, 1, b"image at 5")), &entries(6, 10, 1))
        );
        for stale in [snapshot(4, 1, b"old"), snapshot(0, 0, b"")] {
            let r = s.save_snapshot(&stale).await;
            assert!(matches!(r, Err(RaftStoreError::Invalid(_))), "{r:?}");
        }
        // The leader's log has another term at 8: everything after the snapshot diverged.
        s.save_snapshot(&snapshot(8, 2, b"image at 8"))
            .await
            .expect("leader");
        assert!(matches!(
            s.save(&entries(10, 10, 2), None).await,
            Err(RaftStoreError::Invalid(_))
        ));
        s.save(&entries(9, 9, 2), Some(&hard(2, 3, 8)))
            .await
            .expect("after it");
        drop(s);
        let (mut s, v) = reopen(&sim).await;
        assert_eq!(
            v,
            view_of((2, 3, 8), Some((8, 2, b"image at 8")), &entries(9, 9, 2))
        );
        // A snapshot past the end of the log leaves no entry either.
        s.save_snapshot(&snapshot(20, 3, b"image at 20"))
            .await
            .expect("ahead");
        drop(s);
        let (_, v) = reopen(&sim).await;
        assert_eq!(v, view_of((2, 3, 8), Some((20, 3, b"image at 20")), &[]));
        let snaps: Vec<String> = files(&sim)
            .into_iter()
            .filter(|n| n.ends_with(".snapshot"))
            .collect();
        assert_eq!(
            snaps,
            vec![format!("{:020}.snapshot", 3)],
            "older snapshots are removed"
        );
    });
}

#[test]
fn compaction_rewrites_the_log_without_what_the_snapshot_covers() {
    block_on(async {
        let sim = SimStorage::new(8);
        let (mut s, _) = reopen(&sim).await;
        s.set_compact_bytes_min(0);
        for round in 0..10u64 {
            // Rewrites of the same indexes leave dead frames behind.
            s.save(
                &entries(round * 5 + 1, round * 5 + 20, round + 1),
                Some(&hard(round + 1, 1, round * 5)),
            )
            .await
            .expect("save");
        }
        // Entry 40 was last written in round 7: a local snapshot of it keeps what follows.
        s.save_snapshot(&snapshot(40, 8, b"image"))
            .await
            .expect("snapshot");
        assert!(matches!(
            s.compact(41).await,
            Err(RaftStoreError::Invalid(_))
        ));
        let (before_len, before_gen) = (s.log_len, s.log_gen);
        s.compact(40).await.expect("compact");
        assert_eq!(s.log_gen, before_gen + 1);
        assert!(s.log_len * 4 < before_len, "{} of {before_len}", s.log_len);
        s.save(&entries(66, 66, 11), Some(&hard(11, 2, 60)))
            .await
            .expect("save after");
        let files_now = files(&sim);
        assert_eq!(
            files_now.iter().filter(|n| n.ends_with(".raftlog")).count(),
            1,
            "{files_now:?}"
        );
        drop(s);
        let (mut s, v) = reopen(&sim).await;
        let mut want = entries(41, 45, 9);
        want.extend(entries(46, 65, 10));
        want.extend(entries(66, 66, 11));
        assert_eq!(v, view_of((11, 2, 60), Some((40, 8, b"image")), &want));
        // Below the threshold, nothing is rewritten.
        s.set_compact_bytes_min(u64::MAX);
        let gen_before = s.log_gen;
        s.compact(40).await.expect("no-op");
        assert_eq!(s.log_gen, gen_before);
    });
}

#[test]
fn a_save_past_the_frame_bound_spans_several_frames_and_huge_entries_are_refused() {
    block_on(async {
        let sim = SimStorage::new(12);
        let (mut s, _) = reopen(&sim).await;
        s.frame_body_max = 200;
        let es = entries(1, 30, 1);
        s.save(&es, Some(&hard(1, 1, 30)))
            .await
            .expect("split save");
        let len = s.log_len;
        let syncs = sim.syncs();
        let r = s.save(&[entry(31, 1, &[0; 300])], None).await;
        assert!(matches!(r, Err(RaftStoreError::TooLarge { .. })), "{r:?}");
        assert_eq!((s.log_len, sim.syncs()), (len, syncs), "nothing written");
        drop(s);
        let (_, v) = reopen(&sim).await;
        assert_eq!(v, view_of((1, 1, 30), None, &es));
    });
}

#[test]
fn every_error_maps_to_a_kafka_code() {
    use crate::protocol::code;
    let cases = [
        (
            RaftStoreError::Io(io::Error::other("x")),
            code::KAFKA_STORAGE_ERROR,
        ),
        (
            RaftStoreError::Corrupt("x".into()),
            code::KAFKA_STORAGE_ERROR,
        ),
        (RaftStoreError::Failed, code::KAFKA_STORAGE_ERROR),
        (
            RaftStoreError::Invalid("x".into()),
            code::UNKNOWN_SERVER_ERROR,
        ),
        (
            RaftStoreError::TooLarge { bytes: 2, max: 1 },
            code::UNKNOWN_SERVER_ERROR,
        ),
    ];
    for (e, c) in cases {
        assert_eq!(e.code(), c, "{e}");
    }
}

#[test]
fn names_parse_strictly() {
    assert_eq!(
        parse_name(&format!("{:020}.raftlog", 7)),
        Some(Name::Log(7))
    );
    assert_eq!(
        parse_name(&format!("{:020}.snapshot", 9)),
        Some(Name::Snapshot(9))
    );
    assert_eq!(
        parse_name(&format!("{:020}.raftlog.tmp", 7)),
        Some(Name::Tmp)
    );
    for other in [
        "7.raftlog",
        "notes.tmp",
        "0000000000000000000x.raftlog",
        "x",
        "",
    ] {
        assert_eq!(parse_name(other), None, "{other}");
    }
    assert_eq!(
        parse_name(&format!("{}.raftlog", "9".repeat(20))),
        None,
        "past u64"
    );
}

#[test]
fn the_store_runs_on_glommio_files() {
    let tmp = tempfile::tempdir().expect("temp dir");
    let dir = tmp.path().join("cluster");
    glommio::LocalExecutorBuilder::default()
        .io_memory(256 << 10)
        .spawn(move || async move {
            let disk = crate::storage::GlommioStorage;
            let (mut s, rec) = RaftStore::open(disk.clone(), dir.clone())
                .await
                .expect("open");
            assert_eq!(view(&rec), view_of((0, 0, 0), None, &[]));
            s.set_compact_bytes_min(0);
            for round in 0..4u64 {
                let es = entries(round * 2 + 1, round * 2 + 8, round + 1);
                s.save(&es, Some(&hard(round + 1, 1, round)))
                    .await
                    .expect("save");
            }
            s.save_snapshot(&snapshot(5, 3, b"image"))
                .await
                .expect("snapshot");
            s.compact(5).await.expect("compact");
            s.save(&entries(15, 15, 4), None).await.expect("save after");
            let log = file_path(&dir, s.log_gen, LOG_EXT);
            drop(s);
            let mut want = entries(6, 6, 3);
            want.extend(entries(7, 15, 4));
            let want = view_of((4, 1, 3), Some((5, 3, b"image")), &want);
            let (_, rec) = RaftStore::open(disk.clone(), dir.clone())
                .await
                .expect("reopen");
            assert_eq!(view(&rec), want);
            // A torn tail on a real file is cut as on the simulated one.
            let good = std::fs::metadata(&log).expect("log").len();
            let mut bytes = std::fs::read(&log).expect("read");
            bytes.extend_from_slice(&[0x5a; 700]);
            std::fs::write(&log, bytes).expect("write");
            let (_, rec) = RaftStore::open(disk.clone(), dir.clone())
                .await
                .expect("reopen");
            assert_eq!(view(&rec), want);
            assert_eq!(std::fs::metadata(&log).expect("log").len(), good);
            let mut names: Vec<String> = std::fs::read_dir(&dir)
                .expect("dir")
                .map(|e| e.expect("entry").file_name().to_string_lossy().into_owned())
                .collect();
            names.sort();
            assert_eq!(
                names,
                vec![format!("{:020}.snapshot", 1), format!("{:020}.raftlog", 2)]
            );
        })
        .expect("executor")
        .join()
        .expect("test on glommio");
}
