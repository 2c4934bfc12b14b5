//! Crashes: at every IO step of a snapshot install, a compaction and a recovery, and at
//! random writes of a random workload checked against a model of Raft's storage. After each
//! crash, several crash images (durable bytes plus arbitrary, possibly torn, subsets of the
//! unsynced writes) must open to the state before or after the interrupted call, and to the
//! state after it whenever the call returned Ok.

use super::tests::{View, dir, entries, entry, hard, log_path, open, reopen, snapshot, view_of};
use super::*;
use crate::storage::sim::SimStorage;
use futures_lite::future::block_on;
use rand::rngs::StdRng;
use rand::{RngExt, SeedableRng};
use std::future::Future;
use std::pin::pin;
use std::task::{Context, Poll, Waker};

const IMAGES: u64 = 6;

/// Runs `fut` to its end on the simulated disk, which crashes after `step` polls. Every
/// IO of the simulated disk yields once before it acts, so the crash lands right before
/// the `step`-th IO (the ones that do not yield, such as a rename, run with the step
/// before them).
fn run_crashing_after<F: Future>(sim: &SimStorage, step: usize, fut: F) -> F::Output {
    let mut fut = pin!(fut);
    let mut cx = Context::from_waker(Waker::noop());
    let mut polls = 0;
    loop {
        if polls == step {
            sim.crash_now();
        }
        if let Poll::Ready(v) = fut.as_mut().poll(&mut cx) {
            return v;
        }
        polls += 1;
    }
}

/// Opens crash images of `sim` and checks each recovers to `before` or `after` (only
/// `after` when `acked`), opens again to the same state, and takes a new save.
fn check_images(sim: &SimStorage, before: &View, after: &View, acked: bool, what: &str) {
    for seed in 0..IMAGES {
        let img = sim.crash_image(seed);
        block_on(async {
            let (s, v) = open(&img)
                .await
                .unwrap_or_else(|e| panic!("{what}, image {seed}: {e}"));
            assert!(
                v == *after || (!acked && v == *before),
                "{what}, image {seed}: {v:?}\nbefore {before:?}\nafter {after:?}"
            );
            drop(s);
            let (mut s2, again) = reopen(&img).await;
            assert_eq!(again, v, "{what}, image {seed}: a second open");
            let next = v
                .snapshot
                .as_ref()
                .map_or(0, |x| x.0)
                .max(v.entries.last().map_or(0, |e| e.0))
                + 1;
            s2.save(&[entry(next, 99, b"after the crash")], None)
                .await
                .expect("save after recovery");
            drop(s2);
            let (_, last) = reopen(&img).await;
            assert_eq!(
                last.entries.last().map(|e| e.0),
                Some(next),
                "{what}, image {seed}"
            );
        });
    }
}

/// The state every step test starts from: entries 1..=12 of term 1 (multi-sector frames),
/// a hard state, and an installed snapshot at 3, so there is an old snapshot to replace.
fn setup(seed: u64) -> (SimStorage, RaftStore<SimStorage>) {
    block_on(async {
        let sim = SimStorage::new(seed);
        let (mut s, _) = reopen(&sim).await;
        s.set_compact_bytes_min(0);
        let big: Vec<Entry> = (1..=12).map(|i| entry(i, 1, &vec![i as u8; 700])).collect();
        s.save(&big, Some(&hard(1, 1, 9))).await.expect("save");
        s.save(&entries(6, 12, 1), None)
            .await
            .expect("rewrite, leaving dead bytes");
        s.save_snapshot(&snapshot(3, 1, b"old image"))
            .await
            .expect("snapshot");
        (sim, s)
    })
}

fn current(sim: &SimStorage) -> View {
    block_on(reopen(&sim.crash_image(0))).1
}

/// Runs `op` on a fresh setup with a crash after every number of steps, and with a torn
/// write at every write, until it completes untouched.
fn every_step<F>(what: &str, op: F)
where
    F: for<'a> Fn(
        &'a mut RaftStore<SimStorage>,
    ) -> std::pin::Pin<Box<dyn Future<Output = Result<(), RaftStoreError>> + 'a>>,
{
    let (sim, s) = setup(1);
    let before = current(&sim);
    drop(s);
    let after = {
        let (sim, mut s) = setup(1);
        block_on(op(&mut s)).expect("the call without a crash");
        current(&sim)
    };
    assert_ne!(before, after, "{what}: the call changes the state");
    for step in 0.. {
        let (sim, mut s) = setup(1);
        let r = run_crashing_after(&sim, step, op(&mut s));
        drop(s);
        check_images(
            &sim,
            &before,
            &after,
            r.is_ok(),
            &format!("{what}, crash at step {step}"),
        );
        if !sim.has_crashed() || step > 50 {
            assert!(r.is_ok() && step < 50, "{what}: finishes");
            break;
        }
    }
    for write in 1..=4 {
        let (sim, mut s) = setup(1);
        sim.crash_at_write(write);
        let r = block_on(op(&mut s));
        drop(s);
        check_images(
            &sim,
            &before,
            &after,
            r.is_ok(),
            &format!("{what}, torn write {write}"),
        );
    }
}

#[test]
fn a_local_snapshot_install_is_atomic_at_every_step() {
    every_step("local snapshot", |s| {
        Box::pin(async move { s.save_snapshot(&snapshot(8, 1, b"image at 8")).await })
    });
}

#[test]
fn a_leader_snapshot_install_is_atomic_at_every_step() {
    every_step("leader snapshot", |s| {
        Box::pin(async move { s.save_snapshot(&snapshot(10, 2, b"leader image")).await })
    });
}

#[test]
fn a_compaction_is_invisible_at_every_step() {
    // A compaction changes no content: the state after it is the one after the snapshot.
    every_step("snapshot and compaction", |s| {
        Box::pin(async move {
            s.save_snapshot(&snapshot(8, 1, b"image at 8")).await?;
            let gen_before = s.log_gen;
            s.compact(8).await?;
            assert_eq!(s.log_gen, gen_before + 1, "the log was rewritten");
            Ok(())
        })
    });
}

#[test]
fn a_crash_during_recovery_is_recovered_again() {
    // A torn tail to cut and a snapshot the log does not know yet: open writes twice.
    let (sim, mut s) = setup(2);
    let path = log_path(&s);
    block_on(s.save(&entries(13, 13, 1), None)).expect("save");
    drop(s);
    let mut bytes = sim.file_bytes(&path).expect("log");
    bytes.truncate(bytes.len() - 3);
    sim.set_file_bytes(&path, bytes);
    let snap = snapshot(10, 2, b"image");
    let mut f = Frames::new(SNAPSHOT_BYTES_MAX);
    f.push(KIND_SNAPSHOT, &snap.write_to_bytes().expect("encode"))
        .expect("frame");
    let snap_bytes = f.finish().expect("frame").concat();
    sim.set_file_bytes(&file_path(&dir(), 7, SNAPSHOT_EXT), snap_bytes);
    let after = current(&sim);
    assert_eq!(after, view_of((1, 1, 9), Some((10, 2, b"image")), &[]));
    for step in 0..20 {
        let img = sim.crash_image(0);
        let r = run_crashing_after(&img, step, RaftStore::open(img.clone(), dir()));
        let done = r.is_ok();
        drop(r);
        check_images(
            &img,
            &after,
            &after,
            done,
            &format!("open, crash at step {step}"),
        );
        if !img.has_crashed() {
            return;
        }
    }
    panic!("open did not finish in 20 steps");
}

/// Raft's storage as the model of what the store must recover.
#[derive(Clone, Default)]
struct Model {
    hs: (u64, u64, u64),
    base: (u64, u64),
    snap: Option<(u64, u64, Vec<u8>)>,
    entries: Vec<(u64, u64, Vec<u8>)>,
}

impl Model {
    fn view(&self) -> View {
        View {
            hard_state: self.hs,
            snapshot: self.snap.clone(),
            entries: self.entries.clone(),
        }
    }

    fn last(&self) -> u64 {
        self.entries.last().map_or(self.base.0, |e| e.0)
    }

    fn save(&mut self, es: &[Entry], hs: Option<(u64, u64, u64)>) {
        for e in es {
            self.entries.retain(|x| x.0 < e.index);
            self.entries.push((e.index, e.term, e.data.to_vec()));
        }
        if let Some(h) = hs {
            self.hs = h;
        }
    }

    fn install(&mut self, index: u64, term: u64, data: &[u8]) {
        let continues =
            self.base == (index, term) || self.entries.iter().any(|e| (e.0, e.1) == (index, term));
        self.entries.retain(|e| continues && e.0 > index);
        self.base = (index, term);
        self.snap = Some((index, term, data.to_vec()));
    }
}

enum Op {
    Save(Vec<Entry>, Option<(u64, u64, u64)>),
    Snapshot(u64, u64, Vec<u8>),
    Compact(u64),
}

fn random_op(rng: &mut StdRng, m: &Model, term: &mut u64) -> Op {
    let roll = rng.random_range(0..100);
    if roll < 12 && m.last() > m.base.0 {
        let index = rng.random_range(m.base.0 + 1..=m.last());
        let t = m.entries.iter().find(|e| e.0 == index).map_or(0, |e| e.1);
        return Op::Snapshot(index, t, format!("local {index}").into_bytes());
    }
    if roll < 18 {
        *term += 1;
        let index = rng.random_range(m.base.0 + 1..=m.last() + 3);
        return Op::Snapshot(index, *term, format!("leader {index}").into_bytes());
    }
    if roll < 30 {
        return Op::Compact(m.base.0);
    }
    if rng.random_bool(0.1) {
        *term += 1;
    }
    let first = if rng.random_bool(0.7) {
        m.last() + 1
    } else {
        rng.random_range(m.base.0 + 1..=m.last() + 1)
    };
    let n = rng.random_range(0..5u64);
    let es = (first..first + n)
        .map(|i| {
            entry(
                i,
                *term,
                &vec![b'a' + (i % 26) as u8; rng.random_range(0..1500)],
            )
        })
        .collect();
    let hs = rng
        .random_bool(0.6)
        .then(|| (*term, rng.random_range(0..4), first.saturating_sub(1)));
    Op::Save(es, hs)
}

async fn run_op(s: &mut RaftStore<SimStorage>, op: &Op) -> Result<(), RaftStoreError> {
    match op {
        Op::Save(es, hs) => {
            let h = hs.map(|(t, v, c)| hard(t, v, c));
            s.save(es, h.as_ref()).await
        }
        Op::Snapshot(i, t, d) => s.save_snapshot(&snapshot(*i, *t, d)).await,
        Op::Compact(i) => s.compact(*i).await,
    }
}

fn apply_op(m: &mut Model, op: &Op) {
    match op {
        Op::Save(es, hs) => m.save(es, *hs),
        Op::Snapshot(i, t, d) => m.install(*i, *t, d),
        Op::Compact(_) => {}
    }
}

#[test]
fn a_random_workload_recovers_to_the_model_with_and_without_crashes() {
    for seed in 0..100u64 {
        let mut rng = StdRng::seed_from_u64(seed);
        let sim = SimStorage::new(seed);
        let crash = seed % 4 != 0;
        let crash_at = rng.random_range(1..150);
        let mut acked = Model::default();
        let mut term = 1;
        let in_flight = block_on(async {
            let (mut s, _) = reopen(&sim).await;
            s.set_compact_bytes_min(rng.random_range(0..20_000));
            if crash {
                sim.crash_at_write(crash_at);
            }
            for i in 0..200 {
                let op = random_op(&mut rng, &acked, &mut term);
                let mut next = acked.clone();
                apply_op(&mut next, &op);
                if run_op(&mut s, &op).await.is_err() {
                    return Some(next);
                }
                acked = next;
                if i % 40 == 39 && !crash {
                    drop(s);
                    let (again, v) = reopen(&sim).await;
                    assert_eq!(v, acked.view(), "seed {seed}, reopen after op {i}");
                    s = again;
                }
            }
            None
        });
        assert_eq!(in_flight.is_some(), crash, "seed {seed}: the crash came");
        let after = in_flight.unwrap_or_else(|| acked.clone()).view();
        check_images(
            &sim,
            &acked.view(),
            &after,
            false,
            &format!("workload seed {seed}"),
        );
        if !crash {
            assert_eq!(block_on(reopen(&sim)).1, acked.view(), "seed {seed}");
        }
    }
}
