//! Power cuts under the real broker binary. The broker runs on the power-cut filesystem
//! (`powercut/`: a FUSE pass-through that keeps in memory what was not made durable by
//! fsync/fdatasync of a file or, for names, of their directory); writers stream acks=all
//! produces and a committer commits group offsets; at a seeded random moment the power is
//! cut (everything not durable is dropped, sometimes with one write torn at a byte or page
//! boundary), the broker is killed, and it is started again on what survived, on a fresh
//! mount of the same directory. Then:
//!
//! - the broker starts, and every batch it returns decodes (CRC checked) and is one that a
//!   writer sent, at contiguous offsets;
//! - what survived is a prefix of what was acknowledged: an acknowledged record below the
//!   recovered end is there, at its offset;
//! - under `log.flush=fsync`, every acknowledged record (at or above the log start) and
//!   the last committed offset survive; under `none`/`interval` the loss is counted and
//!   printed;
//! - one writer is an idempotent producer: its last acknowledged batch per partition, sent
//!   again after the restart, is answered as a duplicate with its original offset whenever
//!   it survived (always under `fsync`): the producer state is rebuilt from what survived.
//!
//! Each io × flush pair runs the seeds of `POWER_CUT_SEEDS` (`1-200` or `3,17,40`; default
//! two seeds). The long run, with a release broker:
//!
//! ```sh
//! cargo build --release && RINGBROKER_BIN=target/release/ringbroker \
//!   POWER_CUT_SEEDS=1-100 cargo test --test power_cut -- --nocapture --test-threads 1
//! ```
//!
//! Needs root and /dev/fuse (the filesystem is mounted with mount(2), no fusermount).
//! `POWER_CUT_KEEP=1` keeps each run's directories (`backing/` holds what survived).

mod common;

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicI64, Ordering};
use std::time::Duration;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::{
    GroupId, InitProducerIdRequest, OffsetCommitRequest, OffsetFetchRequest, ProducerId, TopicName,
    offset_commit_request, offset_fetch_request,
};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::Record;
use ringbroker::protocol::batch::set_producer;
use ringbroker::protocol::batch::testing::build_batch;
use ringbroker_powercut::{PAGE, Tear};

const TOPIC: &str = "cut";
const GROUP: &str = "cut-group";
const PARTITIONS: i32 = 2;
const WRITERS: usize = 2;

/// splitmix64: the seed decides every random choice of a run.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 = self.0.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = self.0;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^ (z >> 31)
    }

    fn below(&mut self, n: u64) -> u64 {
        self.next() % n
    }
}

fn seeds() -> Vec<u64> {
    let Ok(spec) = std::env::var("POWER_CUT_SEEDS") else {
        return vec![1, 2];
    };
    let mut out = Vec::new();
    for part in spec.split(',').map(str::trim).filter(|p| !p.is_empty()) {
        match part.split_once('-') {
            Some((a, b)) => {
                let (a, b): (u64, u64) = (a.parse().expect("seed"), b.parse().expect("seed"));
                out.extend(a..=b);
            }
            None => out.push(part.parse().expect("seed")),
        }
    }
    out
}

fn value(writer: usize, seq: usize, record: usize) -> Vec<u8> {
    format!("w{writer} s{seq} r{record} {}", "p".repeat(50 + seq % 400)).into_bytes()
}

/// Is `v` a value some writer could have sent (acknowledged or not)?
fn well_formed(v: &[u8]) -> bool {
    let Ok(s) = std::str::from_utf8(v) else {
        return false;
    };
    let mut it = s.splitn(4, ' ');
    let (Some(w), Some(seq), Some(r), Some(pad)) = (it.next(), it.next(), it.next(), it.next())
    else {
        return false;
    };
    let (Some(w), Some(seq), Some(r)) = (
        w.strip_prefix('w').and_then(|x| x.parse::<usize>().ok()),
        seq.strip_prefix('s').and_then(|x| x.parse::<usize>().ok()),
        r.strip_prefix('r').and_then(|x| x.parse::<usize>().ok()),
    ) else {
        return false;
    };
    value(w, seq, r) == v && pad.len() == 50 + seq % 400
}

/// (partition, base offset, seq, records) of each acknowledged batch.
type Acked = Vec<(i32, i64, usize, usize)>;

/// The last acknowledged batch of the idempotent writer in each partition: (partition,
/// base offset, the batch as sent).
type LastIdempotent = Vec<(i32, i64, Vec<u8>)>;

/// InitProducerId for a fresh idempotent producer: (producer id, epoch).
fn init_producer_id(c: &mut RawClient) -> Option<(i64, i16)> {
    let v = c.pick_version::<InitProducerIdRequest>(4);
    let req = InitProducerIdRequest::default()
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(-1))
        .with_producer_epoch(-1);
    let (_, resp) = c.request(v, &req).ok()?;
    (resp.error_code == NONE).then_some((resp.producer_id.0, resp.producer_epoch))
}

/// Writer `w` produces until the cut; writer 1 is an idempotent producer (producer id,
/// epoch and a sequence per partition in every batch).
fn writer(addr: std::net::SocketAddr, w: usize, stop: Arc<AtomicBool>) -> (Acked, LastIdempotent) {
    let mut acked = Vec::new();
    let mut last: LastIdempotent = Vec::new();
    let Ok(mut c) = RawClient::try_connect(addr) else {
        return (acked, last);
    };
    let producer = if w == 1 {
        match init_producer_id(&mut c) {
            Some(p) => Some(p),
            None => return (acked, last),
        }
    } else {
        None
    };
    let mut sequences = [0i32; PARTITIONS as usize];
    let ts = common::recent_ts();
    let v = 9;
    for seq in 0..1_000_000 {
        if stop.load(Ordering::Relaxed) {
            break;
        }
        let p = ((w + seq) % PARTITIONS as usize) as i32;
        let n = 1 + seq % 4;
        let vals: Vec<Vec<u8>> = (0..n).map(|r| value(w, seq, r)).collect();
        let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
        let mut batch = build_batch(&refs, ts + seq as i64);
        if let Some((pid, epoch)) = producer {
            set_producer(&mut batch, pid, epoch, sequences[p as usize]);
        }
        let req = kafka::produce_request(&[(TOPIC, p, batch.clone())]);
        // After the cut every request fails: stop at the first error.
        let id = c.send(v, &req);
        let Ok((_, resp)) = c.recv::<kafka_protocol::messages::ProduceRequest>(v, id) else {
            break;
        };
        let r = kafka::flatten_produce(&resp);
        if r.len() != 1 || r[0].2 != NONE {
            break;
        }
        acked.push((p, r[0].3, seq, n));
        if producer.is_some() {
            sequences[p as usize] += n as i32;
            last.retain(|l| l.0 != p);
            last.push((p, r[0].3, batch));
        }
    }
    (acked, last)
}

fn commit_request(offset: i64) -> OffsetCommitRequest {
    let parts = (0..PARTITIONS)
        .map(|p| {
            offset_commit_request::OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(offset)
        })
        .collect();
    OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(parts),
        ])
}

/// Commits 1, 2, 3… for every partition (standalone commits, no membership); `acked`
/// holds the last one answered without error, `sent` the last one sent.
fn committer(
    addr: std::net::SocketAddr,
    stop: Arc<AtomicBool>,
    acked: Arc<AtomicI64>,
    sent: Arc<AtomicI64>,
) {
    let Ok(mut c) = RawClient::try_connect(addr) else {
        return;
    };
    for offset in 1.. {
        if stop.load(Ordering::Relaxed) {
            return;
        }
        sent.store(offset, Ordering::SeqCst);
        let Ok((_, resp)) = c.request(7, &commit_request(offset)) else {
            return;
        };
        let ok = resp
            .topics
            .iter()
            .flat_map(|t| &t.partitions)
            .all(|p| p.error_code == NONE);
        if !ok {
            return;
        }
        acked.store(offset, Ordering::SeqCst);
        std::thread::sleep(Duration::from_millis(10));
    }
}

/// The committed offset of each partition after the restart (-1: none).
fn committed(c: &mut RawClient) -> Vec<i64> {
    let req = OffsetFetchRequest::default().with_groups(vec![
        offset_fetch_request::OffsetFetchRequestGroup::default()
            .with_group_id(GroupId(StrBytes::from_static_str(GROUP)))
            .with_topics(None),
    ]);
    let resp = c.call(8, &req);
    let g = &resp.groups[0];
    assert_eq!(g.error_code, NONE, "OffsetFetch after the restart");
    (0..PARTITIONS)
        .map(|p| {
            g.topics
                .iter()
                .filter(|t| t.name.0.as_str() == TOPIC)
                .flat_map(|t| &t.partitions)
                .find(|x| x.partition_index == p)
                .map_or(-1, |x| x.committed_offset)
        })
        .collect()
}

/// If the restarted broker has not answered within 20 s, prints where its threads wait in
/// the kernel (a FUSE request the filesystem never answered shows as `fuse_*`/
/// `request_wait_answer`), to tell a hung filesystem from a hung broker.
fn stuck_start_report(pid: u32, started: &AtomicBool) {
    for _ in 0..200 {
        if started.load(Ordering::SeqCst) {
            return;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let Ok(tasks) = std::fs::read_dir(format!("/proc/{pid}/task")) else {
        return;
    };
    for t in tasks.flatten() {
        let p = t.path();
        let read = |f: &str| std::fs::read_to_string(p.join(f)).unwrap_or_default();
        eprintln!(
            "broker thread {} ({}): wchan {}\n{}",
            t.file_name().to_string_lossy(),
            read("comm").trim(),
            read("wchan"),
            read("stack")
        );
    }
}

/// `(log start, log end, every record between)` of partition `p` after the restart. A cut
/// can bring back segments retention had deleted, and the restarted broker's first
/// maintenance tick deletes them again: when the start moves under the read (a fetch
/// answers OFFSET_OUT_OF_RANGE, or the start differs at the end), read again from the new
/// start.
fn read_partition(c: &mut RawClient, p: i32, seed: u64) -> (i64, i64, Vec<Record>) {
    const OFFSET_OUT_OF_RANGE: i16 = 1;
    'again: for _ in 0..10 {
        let (err, start) = kafka::list_offset(c, TOPIC, p, -2);
        assert_eq!(err, NONE, "seed {seed}: earliest offset of partition {p}");
        let end = kafka::latest_offset(c, TOPIC, p);
        let mut recs: Vec<Record> = Vec::new();
        let mut next = start;
        let mut idle = 0;
        while next < end {
            let r = kafka::fetch(c, TOPIC, &[(p, next)]);
            let Some((_, err, _, records)) = r.into_iter().next() else {
                panic!("seed {seed}: no partition in the Fetch response");
            };
            if err == OFFSET_OUT_OF_RANGE {
                continue 'again;
            }
            assert_eq!(err, NONE, "seed {seed}: Fetch of partition {p} at {next}");
            let before = next;
            for rec in records {
                // A fetch may start mid-batch: skip records before the requested offset.
                if rec.offset >= next {
                    next = rec.offset + 1;
                    recs.push(rec);
                }
            }
            idle = if next == before { idle + 1 } else { 0 };
            assert!(
                idle < 50,
                "seed {seed}: partition {p} returns nothing at {next}"
            );
        }
        if kafka::list_offset(c, TOPIC, p, -2) == (NONE, start) {
            return (start, end, recs);
        }
    }
    panic!("seed {seed}: the log start of partition {p} keeps moving");
}

/// What one run saw.
#[derive(Default)]
struct Outcome {
    acked_records: usize,
    lost_records: usize,
    commits_acked: i64,
    commits_lost: bool,
}

fn run(io: &str, flush: &str, seed: u64) -> Outcome {
    let mut rng = Rng(seed ^ 0x5eed);
    let mut sets = vec![
        format!("log.io={io}"),
        format!("log.flush={flush}"),
        "log.flush.interval.ms=100".to_string(),
        "log.flush.interval.bytes=65536".to_string(),
    ];
    let small_segments = rng.below(2) == 0;
    if small_segments {
        sets.push("log.segment.bytes=65536".into());
        if rng.below(2) == 0 {
            sets.push("log.retention.bytes=262144".into());
        }
        if rng.below(3) == 0 {
            sets.push("log.segment.ms=200".into());
        }
    }
    let write_ms = 200 + rng.below(1500);
    let tear = match rng.below(4) {
        0 => None,
        // Byte tears mostly land inside the last write (a few batches), page tears in
        // the first pages of it.
        t => Some(Tear {
            suffix: Some(".log".into()),
            keep: if t == 2 {
                rng.below(3 * PAGE)
            } else {
                rng.below(700)
            },
            align: if t == 2 { PAGE } else { 1 },
            size_survives: t == 3,
        }),
    };
    eprintln!(
        "seed {seed}: io={io} flush={flush} {sets:?}, cut after {write_ms} ms, tear {tear:?}"
    );

    let mut tmp = common::disk_tempdir("powercut-");
    // POWER_CUT_KEEP=1 keeps the directories (backing/: what survived) for a look after.
    if std::env::var_os("POWER_CUT_KEEP").is_some() {
        tmp.disable_cleanup(true);
        eprintln!("seed {seed}: keeping {}", tmp.path().display());
    }
    let backing = tmp.path().join("backing");
    let mnt = tmp.path().join("mnt");
    std::fs::create_dir(&backing).expect("backing dir");
    std::fs::create_dir(&mnt).expect("mount point");
    // Declared before the broker, so that a failing test kills the broker before it
    // unmounts (an unmount under a running broker would leave the mount behind).
    let mut fs =
        Some(ringbroker_powercut::mount(&backing, &mnt).expect("mount the power-cut filesystem"));
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut broker = Broker::start_on(&mnt, &refs);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, TOPIC, PARTITIONS);
    let addr = broker.addr();

    let stop = Arc::new(AtomicBool::new(false));
    let writers: Vec<_> = (0..WRITERS)
        .map(|w| {
            let stop = stop.clone();
            std::thread::spawn(move || writer(addr, w, stop))
        })
        .collect();
    let (commit_acked, commit_sent) = (Arc::new(AtomicI64::new(0)), Arc::new(AtomicI64::new(0)));
    let committer = {
        let (stop, a, s) = (stop.clone(), commit_acked.clone(), commit_sent.clone());
        std::thread::spawn(move || committer(addr, stop, a, s))
    };
    std::thread::sleep(Duration::from_millis(write_ms));
    // log.io=direct really is O_DIRECT on the mount (FUSE hands such writes to the
    // filesystem uncached), and buffered is not.
    let open = broker.open_files(".log");
    assert!(
        open.iter()
            .any(|(_, flags)| flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32),
        "seed {seed}: no segment open for writing: {open:?}"
    );
    // glommio opens a DMA file and then sets O_DIRECT with fcntl: a segment caught
    // between the two (rolled right then) is looked at again.
    let writable = |f: &u32| f & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32;
    let wrong = |open: &[(std::path::PathBuf, u32)]| -> Vec<(std::path::PathBuf, u32)> {
        open.iter()
            .filter(|(_, f)| writable(f) && (f & libc::O_DIRECT as u32 != 0) != (io == "direct"))
            .cloned()
            .collect()
    };
    let first = wrong(&open);
    if !first.is_empty() {
        let again = wrong(&broker.open_files(".log"));
        if let Some((path, flags)) = again.iter().find(|(p, _)| first.iter().any(|f| &f.0 == p)) {
            panic!(
                "seed {seed}: {} opened with flags {flags:o} (io={io})",
                path.display()
            );
        }
    }
    let report = fs.as_ref().expect("mounted").cut(tear.as_ref());
    broker.kill();
    stop.store(true, Ordering::Relaxed);
    let (acked, last_idempotent): (Vec<Acked>, Vec<LastIdempotent>) = writers
        .into_iter()
        .map(|h| h.join().expect("writer thread"))
        .unzip();
    let last_idempotent: LastIdempotent = last_idempotent.into_iter().flatten().collect();
    committer.join().expect("committer thread");
    fs.take().expect("mounted").unmount().expect("unmount");
    assert!(
        report.errors.is_empty(),
        "seed {seed}: the cut could not undo: {:?}",
        report.errors
    );
    eprintln!(
        "seed {seed}: cut with {} bytes of {} files not synced, undone {:?}, torn {:?}, after {:?} (file, dir) syncs",
        report.bytes_dropped,
        report.reverted.iter().filter(|r| r.2 > 0).count(),
        report.undone,
        report.torn,
        report.syncs
    );

    // Power back: a fresh mount of what survived, and the broker must start on it.
    fs = Some(ringbroker_powercut::mount(&backing, &mnt).expect("mount again"));
    broker.launch_again();
    let started = Arc::new(AtomicBool::new(false));
    let watchdog = {
        let (started, pid) = (started.clone(), broker.pid().expect("broker pid"));
        std::thread::spawn(move || stuck_start_report(pid, &started))
    };
    broker.wait_ready();
    started.store(true, Ordering::SeqCst);
    watchdog.join().expect("watchdog");
    let mut c = RawClient::connect(broker.addr());
    let must_survive = flush == "fsync";
    let mut out = Outcome {
        acked_records: acked.iter().flatten().map(|a| a.3).sum(),
        commits_acked: commit_acked.load(Ordering::SeqCst),
        ..Outcome::default()
    };
    assert!(
        out.acked_records > 0,
        "seed {seed}: nothing acknowledged before the cut"
    );
    for p in 0..PARTITIONS {
        let (start, end, recs) = read_partition(&mut c, p, seed);
        assert_eq!(
            recs.len() as i64,
            end - start,
            "seed {seed} partition {p}: records from {start} to {end}"
        );
        for (i, r) in recs.iter().enumerate() {
            assert_eq!(
                r.offset,
                start + i as i64,
                "seed {seed} partition {p}: contiguous offsets"
            );
            let v = r.value.as_deref().unwrap_or_default();
            assert!(
                well_formed(v),
                "seed {seed} partition {p} offset {}: a value no writer sent",
                r.offset
            );
        }
        let mut lost_bytes = 0usize;
        for (w, list) in acked.iter().enumerate() {
            for &(_, base, seq, n) in list.iter().filter(|a| a.0 == p) {
                if base >= end {
                    let vals: Vec<Vec<u8>> = (0..n).map(|r| value(w, seq, r)).collect();
                    let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
                    lost_bytes += build_batch(&refs, 0).len();
                }
                for r in 0..n {
                    let at = base + r as i64;
                    if at < start {
                        continue; // deleted by retention
                    }
                    if at >= end && !must_survive {
                        out.lost_records += 1;
                        continue;
                    }
                    let got = recs
                        .get((at - start) as usize)
                        .and_then(|x| x.value.as_deref());
                    assert_eq!(
                        got,
                        Some(value(w, seq, r).as_slice()),
                        "seed {seed} partition {p} offset {at}: acknowledged record (writer {w} seq {seq}) after the power cut (log {start}..{end})"
                    );
                }
            }
        }
        // Under `interval` the writer fsyncs once `log.flush.interval.bytes` (64 KiB) are
        // written and unsynced, so a cut takes at most that much acknowledged data per
        // partition, plus the write round that crossed it (a few batches): a bound in bytes,
        // which no timing can upset.
        if flush == "interval" {
            assert!(
                lost_bytes <= 65536 + 16384,
                "seed {seed} partition {p}: {lost_bytes} acknowledged bytes lost under interval"
            );
        }
    }
    let sent = commit_sent.load(Ordering::SeqCst);
    for (p, got) in committed(&mut c).into_iter().enumerate() {
        if must_survive {
            assert!(
                got >= out.commits_acked && got <= sent,
                "seed {seed} partition {p}: committed offset {got} after the cut; {} was acknowledged, {sent} sent",
                out.commits_acked
            );
        } else {
            assert!(
                got <= sent,
                "seed {seed} partition {p}: committed offset {got}, only {sent} sent"
            );
            out.commits_lost |= got < out.commits_acked;
        }
    }
    // The idempotent producer's state was rebuilt from the recovered log: its last
    // acknowledged batch in each partition, sent again, is a duplicate answered with its
    // original offset (under `fsync` it always survived; otherwise when it did).
    for (p, base, batch) in &last_idempotent {
        let end = kafka::latest_offset(&mut c, TOPIC, *p);
        let (_, start) = kafka::list_offset(&mut c, TOPIC, *p, -2);
        if *base < start {
            continue; // deleted by retention
        }
        if *base >= end {
            assert!(
                !must_survive,
                "seed {seed}: under fsync the batch at {base} survives"
            );
            continue;
        }
        assert_eq!(
            kafka::produce_one(&mut c, TOPIC, *p, batch.clone()),
            (NONE, *base),
            "seed {seed} partition {p}: the idempotent producer's last batch sent again"
        );
        assert_eq!(
            kafka::latest_offset(&mut c, TOPIC, *p),
            end,
            "seed {seed} partition {p}: a duplicate is not appended"
        );
    }
    // The recovered log takes new writes right after its end.
    let end = kafka::latest_offset(&mut c, TOPIC, 0);
    assert_eq!(
        kafka::produce_one(
            &mut c,
            TOPIC,
            0,
            build_batch(&[b"after"], common::recent_ts())
        ),
        (NONE, end),
        "seed {seed}: append after the restart"
    );
    broker.stop();
    drop(c);
    fs.take().expect("mounted").unmount().expect("unmount");
    eprintln!(
        "seed {seed}: io={io} flush={flush}: {} records acknowledged, {} lost; {} commits acknowledged{}",
        out.acked_records,
        out.lost_records,
        out.commits_acked,
        if out.commits_lost {
            ", the last ones lost"
        } else {
            ""
        }
    );
    out
}

fn pair(io: &str, flush: &str) {
    let _serial = common::heavy_lock();
    let (mut acked, mut lost, mut cuts) = (0, 0, 0);
    for seed in seeds() {
        let o = run(io, flush, seed);
        cuts += 1;
        acked += o.acked_records;
        lost += o.lost_records;
    }
    eprintln!(
        "io={io} flush={flush}: {cuts} power cuts, {acked} records acknowledged, {lost} lost"
    );
    if flush == "fsync" {
        assert_eq!(lost, 0);
    }
}

#[test]
fn buffered_none() {
    pair("buffered", "none");
}

#[test]
fn buffered_interval() {
    pair("buffered", "interval");
}

#[test]
fn buffered_fsync_keeps_every_acknowledged_batch_and_commit() {
    pair("buffered", "fsync");
}

#[test]
fn direct_none() {
    pair("direct", "none");
}

#[test]
fn direct_interval() {
    pair("direct", "interval");
}

#[test]
fn direct_fsync_keeps_every_acknowledged_batch_and_commit() {
    pair("direct", "fsync");
}

/// The time side of `log.flush=interval`: with the byte threshold out of reach
/// (1 GiB), only `log.flush.interval.ms` (300 ms) can make appends durable. Records
/// acknowledged, then left for ten intervals before the power is cut, must all survive;
/// the generous margin (3 s) is for a loaded machine, and the assertion is about
/// durability, not speed. Without the timed flush nothing would have been synced and the
/// cut would take them all.
fn interval_time_bound(io: &str) {
    let _serial = common::heavy_lock();
    let tmp = common::disk_tempdir("powercut-interval-");
    let (backing, mnt) = (tmp.path().join("backing"), tmp.path().join("mnt"));
    std::fs::create_dir(&backing).expect("backing dir");
    std::fs::create_dir(&mnt).expect("mount point");
    let mut fs =
        Some(ringbroker_powercut::mount(&backing, &mnt).expect("mount the power-cut filesystem"));
    let sets = [
        format!("log.io={io}"),
        "log.flush=interval".to_string(),
        "log.flush.interval.ms=300".to_string(),
        "log.flush.interval.bytes=1073741824".to_string(),
    ];
    let refs: Vec<&str> = sets.iter().map(String::as_str).collect();
    let mut broker = Broker::start_on(&mnt, &refs);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, TOPIC, 1);
    let mut acked = Vec::new();
    for seq in 0..40 {
        let v = value(0, seq, 0);
        let (err, offset) = kafka::produce_one(
            &mut c,
            TOPIC,
            0,
            build_batch(&[v.as_slice()], common::recent_ts()),
        );
        assert_eq!(err, NONE, "produce {seq}");
        acked.push((offset, v));
    }
    std::thread::sleep(Duration::from_secs(3));
    let report = fs.as_ref().expect("mounted").cut(None);
    broker.kill();
    fs.take().expect("mounted").unmount().expect("unmount");
    assert!(report.errors.is_empty(), "the cut: {:?}", report.errors);
    fs = Some(ringbroker_powercut::mount(&backing, &mnt).expect("mount again"));
    broker.launch_again();
    broker.wait_ready();
    let mut c = RawClient::connect(broker.addr());
    let (_, end, records) = read_partition(&mut c, 0, 0);
    let lost: Vec<i64> = acked
        .iter()
        .filter(|(offset, v)| {
            !records
                .iter()
                .any(|r| r.offset == *offset && r.value.as_deref() == Some(v.as_slice()))
        })
        .map(|(offset, _)| *offset)
        .collect();
    eprintln!(
        "io={io} flush=interval (300 ms): {} records acknowledged 3 s before the cut, {} lost; \
         {} bytes unsynced at the cut; log end {end}",
        acked.len(),
        lost.len(),
        report.bytes_dropped
    );
    assert!(
        lost.is_empty(),
        "records acknowledged 3 s (10 intervals) before the cut were lost: offsets {lost:?}"
    );
    broker.kill();
    fs.take().expect("mounted").unmount().expect("unmount");
}

#[test]
fn buffered_interval_syncs_within_the_interval() {
    interval_time_bound("buffered");
}

#[test]
fn direct_interval_syncs_within_the_interval() {
    interval_time_bound("direct");
}
