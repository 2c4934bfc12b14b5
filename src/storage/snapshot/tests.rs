//! Snapshot files on the simulated disk: written crash-safely, read back, listed, pruned.

use super::*;
use crate::producer::{PartitionTxns, ProducerBatch, ProducerStates};
use crate::storage::epochs::EpochCache;
use crate::storage::sim::SimStorage;
use futures_lite::future::block_on;

fn state(offset: i64) -> Snapshot {
    let mut producers = ProducerStates::default();
    let b = ProducerBatch {
        producer_id: 9,
        epoch: 1,
        first_seq: 0,
        last_offset_delta: 2,
    };
    producers.commit(&b, offset - 3, offset - 1, 77);
    let mut epochs = EpochCache::default();
    epochs.assign(1, 0);
    let mut txns = PartitionTxns::default();
    txns.data(9, offset - 3);
    Snapshot {
        offset,
        producers,
        epochs,
        txns,
    }
}

fn names(sim: &SimStorage, dir: &Path) -> Vec<String> {
    let mut n = block_on(sim.list_dir(dir)).expect("list");
    n.sort();
    n
}

#[test]
fn a_written_snapshot_reads_back_and_names_its_offset() {
    block_on(async {
        let sim = SimStorage::new(1);
        let dir = PathBuf::from("/d/s-0");
        sim.create_dir_all(&dir).await.expect("dir");
        write(&sim, &dir, &state(100)).await.expect("write");
        assert_eq!(names(&sim, &dir), vec!["00000000000000000100.snapshot"]);
        assert_eq!(read(&sim, &dir, 100).await.expect("read"), Ok(state(100)));
        // A file renamed to another offset is not taken for that offset's state.
        sim.rename(&path(&dir, 100), &path(&dir, 200))
            .await
            .expect("rename");
        let why = read(&sim, &dir, 200)
            .await
            .expect("read")
            .expect_err("wrong");
        assert!(why.contains("as of offset 100"), "{why}");
        assert_eq!(
            offsets(&["00000000000000000007.snapshot".into(), "x.snapshot".into()]),
            vec![7]
        );
    });
}

#[test]
fn a_crash_at_any_step_of_the_write_leaves_no_snapshot_or_a_whole_one() {
    // A write is at most 7 changing operations (remove, create, truncate, write, sync,
    // rename, directory sync): a crash at each in turn, and none.
    for crash_at in 1..=12 {
        for seed in 0..4 {
            block_on(async {
                let sim = SimStorage::new(2);
                let dir = PathBuf::from("/d/s-0");
                sim.create_dir_all(&dir).await.expect("dir");
                sim.sync_dir(Path::new("/d")).await.expect("sync");
                write(&sim, &dir, &state(50)).await.expect("first");
                sim.crash_at_op(crash_at);
                let finished = write(&sim, &dir, &state(90)).await.is_ok();
                let disk = sim.crash_image(seed);
                let after = offsets(&names(&disk, &dir));
                // The older snapshot is always there and whole.
                assert_eq!(read(&disk, &dir, 50).await.expect("read"), Ok(state(50)));
                if after.contains(&90) {
                    assert_eq!(
                        read(&disk, &dir, 90).await.expect("read"),
                        Ok(state(90)),
                        "crash at op {crash_at}, seed {seed}: a torn snapshot under its name"
                    );
                } else {
                    assert!(!finished, "a finished write is durable (op {crash_at})");
                }
                // What is left over goes with the next prune.
                prune(&disk, &dir, 0).await.expect("prune");
                assert!(names(&disk, &dir).iter().all(|n| !is_tmp(n)));
            });
        }
    }
}

#[test]
fn pruning_keeps_the_newest_and_none_below_the_first_segment() {
    block_on(async {
        let sim = SimStorage::new(3);
        let dir = PathBuf::from("/d/s-0");
        sim.create_dir_all(&dir).await.expect("dir");
        for o in [10, 20, 30, 40, 50] {
            write(&sim, &dir, &state(o)).await.expect("write");
        }
        prune(&sim, &dir, 0).await.expect("prune");
        assert_eq!(offsets(&names(&sim, &dir)), vec![30, 40, 50]);
        prune(&sim, &dir, 41).await.expect("prune");
        assert_eq!(offsets(&names(&sim, &dir)), vec![50]);
        remove_where(&sim, &dir, |o| o > 45).await.expect("remove");
        assert!(offsets(&names(&sim, &dir)).is_empty());
    });
}
