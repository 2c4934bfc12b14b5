//! A full disk and a failing one, under the real broker binary, on the power-cut
//! filesystem (`powercut/`) with injected faults:
//!
//! - ENOSPC on writes: appends get KAFKA_STORAGE_ERROR, reads (Fetch, ListOffsets) keep
//!   working and see every acknowledged record; once space is back, appends resume in the
//!   same process, no restart, and every acknowledged record is still at its offset (also
//!   after a restart). For `io=buffered` and `io=direct`.
//! - EIO on a write, and EIO on an fdatasync: the log fails and stays failed (appends get
//!   KAFKA_STORAGE_ERROR even after the device works again, since after a failed
//!   fdatasync the kernel may have dropped dirty pages), reads keep working, and a restart
//!   (recovery) brings it back with every acknowledged record.
//!
//! Needs root and /dev/fuse, like tests/power_cut.rs.

mod common;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use ringbroker::protocol::batch::testing::build_batch;

const TOPIC: &str = "full";
const KAFKA_STORAGE_ERROR: i16 = 56;

fn value(p: i32, i: usize) -> Vec<u8> {
    format!("p{p} batch {i} {}", "x".repeat(300)).into_bytes()
}

/// Produces batch `i` (one record) to partition `p`: (error, base offset).
fn produce(c: &mut RawClient, p: i32, i: usize) -> (i16, i64) {
    kafka::produce_one(
        c,
        TOPIC,
        p,
        build_batch(&[&value(p, i)], common::recent_ts()),
    )
}

/// Every record of partition `p`, checked: contiguous offsets from 0, each a value the test
/// sent, and each acknowledged `(offset, i)` there.
fn check_partition(c: &mut RawClient, p: i32, acked: &[(i64, usize)]) -> usize {
    let end = kafka::latest_offset(c, TOPIC, p);
    let recs = kafka::fetch_all(c, TOPIC, p, 0);
    assert_eq!(recs.len() as i64, end, "partition {p}: records up to {end}");
    for (n, r) in recs.iter().enumerate() {
        assert_eq!(r.offset, n as i64, "partition {p}: contiguous offsets");
        let v = r.value.as_deref().unwrap_or_default();
        assert!(
            (0..1000).any(|i| v == value(p, i).as_slice()),
            "partition {p} offset {}: a value nobody sent",
            r.offset
        );
    }
    for &(offset, i) in acked {
        assert_eq!(
            recs.get(offset as usize).and_then(|r| r.value.as_deref()),
            Some(value(p, i).as_slice()),
            "partition {p}: acknowledged batch {i} at offset {offset}"
        );
    }
    recs.len()
}

struct Setup {
    // Field order: the broker goes before the filesystem is unmounted.
    broker: Broker,
    fs: ringbroker_powercut::Mounted,
    _tmp: tempfile::TempDir,
}

fn setup(sets: &[&str]) -> Setup {
    let tmp = common::disk_tempdir("diskfull-");
    let backing = tmp.path().join("backing");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&backing).expect("backing dir");
    std::fs::create_dir(&mnt).expect("mount point");
    let fs = ringbroker_powercut::mount(&backing, &mnt).expect("mount the power-cut filesystem");
    let broker = Broker::start_on(&mnt, sets);
    Setup {
        broker,
        fs,
        _tmp: tmp,
    }
}

fn full_disk(io: &str, flush: &str) {
    let _serial = common::heavy_lock();
    let io_set = format!("log.io={io}");
    let flush_set = format!("log.flush={flush}");
    let mut s = setup(&[&io_set, &flush_set]);
    let mut c = RawClient::connect(s.broker.addr());
    kafka::create_topic(&mut c, TOPIC, 2);
    let mut acked: Vec<Vec<(i64, usize)>> = vec![Vec::new(), Vec::new()];
    let mut next = 0usize;
    for _ in 0..10 {
        for p in 0..2 {
            let (err, offset) = produce(&mut c, p, next);
            assert_eq!(err, NONE);
            acked[p as usize].push((offset, next));
        }
        next += 1;
    }
    let pid = s.broker.pid();

    s.fs.fail_writes(Some(libc::ENOSPC));
    for p in 0..2 {
        for _ in 0..3 {
            assert_eq!(
                produce(&mut c, p, next).0,
                KAFKA_STORAGE_ERROR,
                "{io}/{flush}: produce to partition {p} on a full disk"
            );
            next += 1;
        }
    }
    // Reads go on, and see every acknowledged record.
    for p in 0..2 {
        assert_eq!(kafka::list_offset(&mut c, TOPIC, p, -2), (NONE, 0));
        check_partition(&mut c, p, &acked[p as usize]);
    }
    let log = s.broker.log();
    assert!(
        log.contains("No space left on device") && log.contains("until space is freed"),
        "the broker says why appends stop:\n{log}"
    );

    // Space is back: appends resume in the same process.
    s.fs.fail_writes(None);
    for p in 0..2 {
        let (err, offset) = produce(&mut c, p, next);
        assert_eq!(err, NONE, "{io}/{flush}: produce to {p} once space is back");
        acked[p as usize].push((offset, next));
        next += 1;
    }
    assert_eq!(s.broker.pid(), pid, "no restart");
    // Said once per partition, however often the retries met the full disk.
    let log = s.broker.log();
    let said = log
        .lines()
        .filter(|l| l.contains("until space is freed"))
        .count();
    assert_eq!(said, 2, "one line per partition:\n{log}");
    let resumed = log.lines().filter(|l| l.contains("appends resume")).count();
    assert_eq!(resumed, 2, "one line per partition:\n{log}");
    for p in 0..2 {
        check_partition(&mut c, p, &acked[p as usize]);
    }
    drop(c);
    s.broker.restart();
    let mut c = RawClient::connect(s.broker.addr());
    for p in 0..2 {
        check_partition(&mut c, p, &acked[p as usize]);
        let (err, _) = produce(&mut c, p, next);
        assert_eq!(err, NONE, "produce after the restart");
    }
    drop(c);
    s.broker.stop();
}

#[test]
fn a_full_disk_stops_appends_keeps_reads_and_appends_resume_once_space_is_back_buffered() {
    full_disk("buffered", "fsync");
}

#[test]
fn a_full_disk_stops_appends_keeps_reads_and_appends_resume_once_space_is_back_direct() {
    full_disk("direct", "none");
}

#[test]
fn a_failed_write_or_fdatasync_fails_the_log_until_restart() {
    let _serial = common::heavy_lock();
    for fault in ["write", "fdatasync"] {
        let mut s = setup(&["log.flush=fsync"]);
        let mut c = RawClient::connect(s.broker.addr());
        kafka::create_topic(&mut c, TOPIC, 2);
        let mut acked: Vec<(i64, usize)> = Vec::new();
        for i in 0..10 {
            let (err, offset) = produce(&mut c, 0, i);
            assert_eq!(err, NONE);
            acked.push((offset, i));
        }
        match fault {
            "write" => s.fs.fail_writes(Some(libc::EIO)),
            _ => s.fs.fail_syncs(Some(libc::EIO)),
        }
        assert_eq!(produce(&mut c, 0, 10).0, KAFKA_STORAGE_ERROR, "{fault} EIO");
        s.fs.fail_writes(None);
        s.fs.fail_syncs(None);
        // The device works again, the log does not: fail-stop until a restart.
        assert_eq!(
            produce(&mut c, 0, 11).0,
            KAFKA_STORAGE_ERROR,
            "{fault}: the log stays failed"
        );
        check_partition(&mut c, 0, &acked);
        let (err, _) = produce(&mut c, 1, 0);
        assert_eq!(err, NONE, "{fault}: another partition's log did not fail");
        assert!(
            s.broker.log().contains("until restart"),
            "the broker says the log failed"
        );
        drop(c);
        s.broker.restart();
        let mut c = RawClient::connect(s.broker.addr());
        check_partition(&mut c, 0, &acked);
        let (err, offset) = produce(&mut c, 0, 12);
        assert_eq!(err, NONE, "{fault}: appends after the restart");
        acked.push((offset, 12));
        check_partition(&mut c, 0, &acked);
        drop(c);
        s.broker.stop();
        drop(s);
    }
}
