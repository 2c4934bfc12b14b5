//! Process crash while producing: several writers stream acks=all produces, the broker is
//! killed with SIGKILL mid-stream, restarted on the same data dir, and every acknowledged
//! batch must be there, intact, at the offset it was acknowledged with; anything after the
//! last acknowledged batch may or may not be there, but the log stays contiguous and valid.
//!
//! SIGKILL does not drop the page cache, and O_DIRECT writes are in the device once they
//! complete, so after a process crash every acknowledged batch must be there whatever
//! `log.flush` says: these tests check that with `flush=none` (the weakest setting), and
//! say nothing about fsync. What `fsync` adds, durability across a power loss, is checked by
//! `tests/power_cut.rs` on a filesystem that drops what was not synced.

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use ringbroker::protocol::batch::testing::build_batch;

const PARTITIONS: i32 = 4;
const WRITERS: usize = 4;

fn value(writer: usize, seq: usize, record: usize) -> Vec<u8> {
    format!("w{writer} s{seq} r{record} {}", "z".repeat(seq % 97)).into_bytes()
}

/// What one writer got acknowledged: (partition, base offset, seq, records).
type Acked = Vec<(i32, i64, usize, usize)>;

fn writer(addr: std::net::SocketAddr, w: usize, stop: Arc<AtomicBool>) -> Acked {
    let mut acked = Vec::new();
    let Ok(mut c) = RawClient::try_connect(addr) else {
        return acked;
    };
    let ts = common::recent_ts();
    let Some(&(_, max)) = c.versions().get(&0) else {
        return acked;
    };
    let v = max.min(12);
    for seq in 0.. {
        if stop.load(Ordering::Relaxed) || seq > 100_000 {
            break;
        }
        let p = ((w + seq) % PARTITIONS as usize) as i32;
        let n = 1 + seq % 5;
        let vals: Vec<Vec<u8>> = (0..n).map(|r| value(w, seq, r)).collect();
        let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
        let req = kafka::produce_request(&[("crashy", p, build_batch(&refs, ts + seq as i64))]);
        // After the kill every read fails: stop at the first error.
        let id = c.send(v, &req);
        let Ok((_, resp)) = c.recv::<kafka_protocol::messages::ProduceRequest>(v, id) else {
            break;
        };
        let r = kafka::flatten_produce(&resp);
        if r.len() != 1 || r[0].2 != NONE {
            break;
        }
        acked.push((p, r[0].3, seq, n));
    }
    acked
}

/// Every acknowledged batch must be there after the restart, at its offset.
/// `graceful`: SIGTERM instead of SIGKILL; a clean shutdown under load must keep every
/// acknowledged batch whatever the flush setting.
fn crash_while_producing(sets: &[&str], graceful: bool) {
    let _serial = common::heavy_lock();
    let mut broker = Broker::start(sets);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "crashy", PARTITIONS);
    let addr = broker.addr();

    let stop = Arc::new(AtomicBool::new(false));
    let handles: Vec<_> = (0..WRITERS)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || writer(addr, w, stop))
        })
        .collect();
    // Let the writers get going (scheduling only, nothing is asserted about time), then
    // crash the broker under them.
    std::thread::sleep(Duration::from_millis(1500));
    if graceful {
        broker.stop();
    } else {
        broker.kill();
    }
    stop.store(true, Ordering::Relaxed);
    let acked: Vec<Acked> = handles
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .collect();
    let total: usize = acked.iter().map(Vec::len).sum();
    assert!(total > 0, "no produce was acknowledged before the stop");
    eprintln!("{total} batches acknowledged before the stop");

    broker.start_again();
    let mut c = RawClient::connect(broker.addr());
    for p in 0..PARTITIONS {
        let latest = kafka::latest_offset(&mut c, "crashy", p);
        let recs = kafka::fetch_all(&mut c, "crashy", p, 0);
        assert_eq!(
            recs.len() as i64,
            latest,
            "partition {p}: records up to the latest offset"
        );
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.offset, i as i64,
                "partition {p}: contiguous offsets after recovery"
            );
        }
        for (w, list) in acked.iter().enumerate() {
            for &(_, base, seq, n) in list.iter().filter(|a| a.0 == p) {
                for r in 0..n {
                    let at = (base + r as i64) as usize;
                    let got = recs.get(at).and_then(|rec| rec.value.as_deref());
                    assert_eq!(
                        got,
                        Some(value(w, seq, r).as_slice()),
                        "partition {p} offset {at}: acknowledged record (writer {w} seq {seq}) after the crash"
                    );
                }
            }
        }
    }
    // The recovered log takes new writes right after its end.
    let latest = kafka::latest_offset(&mut c, "crashy", 0);
    assert_eq!(
        kafka::produce_one(
            &mut c,
            "crashy",
            0,
            build_batch(&[b"after"], common::recent_ts())
        ),
        (NONE, latest)
    );
    broker.stop();
}

/// Buffered writes sit in the page cache, which a process crash does not touch: with no
/// fsync at all, SIGKILL loses nothing acknowledged.
#[test]
fn buffered_no_flush_keeps_every_acknowledged_batch_on_sigkill() {
    crash_while_producing(
        &[
            "log.io=buffered",
            "log.flush=none",
            "log.segment.bytes=262144",
        ],
        false,
    );
}

/// O_DIRECT writes are in the device once they complete, and `none` acknowledges only
/// completed writes: with no fsync at all, SIGKILL loses nothing acknowledged (the README's
/// durability table: "survives a process crash").
#[test]
fn direct_no_flush_keeps_every_acknowledged_batch_on_sigkill() {
    crash_while_producing(
        &[
            "log.io=direct",
            "log.flush=none",
            "log.segment.bytes=262144",
        ],
        false,
    );
}

/// The group-commit path (appends waiting on an fdatasync) under a process crash.
#[test]
fn direct_fsync_keeps_every_acknowledged_batch_on_sigkill() {
    crash_while_producing(&["log.io=direct", "log.flush=fsync"], false);
}

#[test]
fn sigterm_under_load_keeps_every_acknowledged_batch() {
    for io in ["log.io=buffered", "log.io=direct"] {
        crash_while_producing(&[io, "log.flush=none", "log.segment.bytes=262144"], true);
    }
}
