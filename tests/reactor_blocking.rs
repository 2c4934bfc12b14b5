//! No shard thread waits for the disk on the cold read and deletion paths (issue 17): the
//! broker counts, per shard, every blocking file call made on a reactor thread
//! (`ringbroker_reactor_blocking_file_calls_total`, from a seam in `os::pagecache`), and
//! how many cold bytes it read into the page cache on the blocking thread pool first
//! (`ringbroker_cold_read_bytes_total`).
//!
//! A consumer reads a log whose pages the test has dropped from the page cache
//! (fdatasync, then POSIX_FADV_DONTNEED: cachestat confirms they are gone), over plain TCP
//! (sendfile; the TLS path warms its ranges the same way); retention deletes segments and a topic is
//! deleted. The counter of blocking calls must stay 0 while the cold bytes are counted, and
//! every deleted segment file's last close (which frees its blocks) is counted as made on
//! the blocking pool (`ringbroker_deleted_files_released_total`, `storage::release`). With
//! the range warming removed from `server::response`, the unlink put back on the reactor
//! in `storage::glommio_io`, or the hold of deleted files in its `Drop` removed (or their
//! close moved onto the reactor), this test fails.

mod common;

use common::kafka::{self, NONE};
use common::{Broker, RawClient, free_port};
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use ringbroker::protocol::batch::testing::build_batch;
use std::io::{Read, Write};
use std::os::fd::AsRawFd;
use std::path::Path;
use std::time::{Duration, Instant};

const VALUE_BYTES: usize = 10_000;
const BATCHES: usize = 300;

fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("request");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The sum over shards of metric `name` (a counter without other labels).
fn total(text: &str, name: &str) -> u64 {
    text.lines()
        .filter(|l| l.starts_with(name) && !l.starts_with('#'))
        .filter_map(|l| l.rsplit_once(' ')?.1.parse::<f64>().ok())
        .map(|v| v as u64)
        .sum()
}

/// Pages of `path` not in the page cache, from cachestat(2); `None` on a kernel without
/// it (before 6.5).
fn uncached(path: &Path) -> Option<u64> {
    let f = std::fs::File::open(path).expect("open segment");
    let len = f.metadata().expect("stat").len();
    let range: [u64; 2] = [0, len.div_ceil(4096) * 4096];
    let mut stat = [0u64; 5];
    // SAFETY: cachestat reads `range` and writes `stat`, both live for the call.
    let r = unsafe { libc::syscall(451, f.as_raw_fd(), range.as_ptr(), stat.as_mut_ptr(), 0) };
    (r == 0).then(|| len.div_ceil(4096).saturating_sub(stat[0]))
}

/// Syncs every segment of `dir` and drops its pages from the page cache; returns the
/// pages of them still uncached (all of them, on a real disk), `None` without cachestat.
fn drop_cache(dir: &Path) -> Option<u64> {
    let mut cold = 0;
    for e in std::fs::read_dir(dir).expect("partition dir").flatten() {
        let path = e.path();
        if path.extension().is_some_and(|x| x == "log") {
            let f = std::fs::OpenOptions::new()
                .read(true)
                .write(true)
                .open(&path)
                .expect("open segment");
            f.sync_all().expect("fdatasync");
            // SAFETY: fadvise on our own descriptor.
            unsafe { libc::posix_fadvise(f.as_raw_fd(), 0, 0, libc::POSIX_FADV_DONTNEED) };
            cold += uncached(&path)?;
        }
    }
    Some(cold)
}

fn produce(c: &mut RawClient, topic: &str) {
    let value = vec![b'c'; VALUE_BYTES];
    for _ in 0..BATCHES {
        let batch = build_batch(&[value.as_slice(); 10], common::recent_ts());
        let (err, _) = kafka::produce_one(c, topic, 0, batch);
        assert_eq!(err, NONE);
    }
}

/// Reads the cold log back whole: its bytes are read into the page cache off the shard
/// thread, and no shard thread reads an uncached page itself.
fn cold_read(c: &mut RawClient, mport: u16, cold_pages: u64) {
    assert!(
        cold_pages > 1000,
        "the segments' pages did not leave the page cache ({cold_pages} uncached)"
    );
    let records = kafka::fetch_all(c, "cold", 0, 0);
    assert_eq!(records.len(), BATCHES * 10, "every record read back");
    let after = scrape(mport);
    let filled = total(&after, "ringbroker_cold_read_bytes_total");
    assert!(
        filled >= (BATCHES * 10 * VALUE_BYTES) as u64 / 2,
        "the cold log was not read into the page cache off the reactor ({filled} bytes)"
    );
    assert_eq!(
        total(&after, "ringbroker_reactor_blocking_file_calls_total"),
        0,
        "a shard thread read cold data itself"
    );
}

#[test]
fn cold_reads_and_deletions_stay_off_the_reactor() {
    let mport = free_port();
    let broker = Broker::start(&[
        &format!("metrics.listen=127.0.0.1:{mport}"),
        "log.io=buffered",
    ]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "cold", 1);
    produce(&mut c, "cold");
    let before = scrape(mport);
    assert_eq!(total(&before, "ringbroker_cold_read_bytes_total"), 0);

    match drop_cache(&broker.data_dir().join("cold-0")) {
        Some(cold_pages) => cold_read(&mut c, mport, cold_pages),
        None => eprintln!("no cachestat on this kernel: the cold read path is not checked"),
    }

    // Deletions: retention removes old segments of a topic, then the topic is deleted.
    let (err, _) = kafka::create_topic_with(
        &mut c,
        "doomed",
        1,
        &[
            ("segment.bytes", Some("1048576")),
            ("retention.bytes", Some("1048576")),
        ],
    );
    assert_eq!(err, NONE);
    produce(&mut c, "doomed");
    let dir = broker.data_dir().join("doomed-0");
    let segments = || {
        std::fs::read_dir(&dir)
            .map(|d| {
                d.flatten()
                    .filter(|e| e.path().extension().is_some_and(|x| x == "log"))
                    .count()
            })
            .unwrap_or(0)
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while segments() > 2 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(segments() <= 2, "retention did not delete segments");
    let r: DeleteTopicsResponse = c.call(
        4,
        &DeleteTopicsRequest::default()
            .with_topic_names(vec![kafka::topic_name("doomed")])
            .with_timeout_ms(10_000),
    );
    assert_eq!(r.responses[0].error_code, NONE);
    let deadline = Instant::now() + Duration::from_secs(30);
    while dir.exists() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        !dir.exists(),
        "the deleted topic's directory is still there"
    );
    let end = scrape(mport);
    assert_eq!(
        total(&end, "ringbroker_reactor_blocking_file_calls_total"),
        0,
        "a shard thread made a blocking file call while deleting"
    );

    // The last close of each deleted segment file (which frees its blocks: hundreds of ms
    // for a large one) was made on the blocking pool, and none is left open.
    let deadline = Instant::now() + Duration::from_secs(30);
    let released = || total(&scrape(mport), "ringbroker_deleted_files_released_total");
    while (released() < DELETED_SEGMENTS || !deleted_open(&broker).is_empty())
        && Instant::now() < deadline
    {
        std::thread::sleep(Duration::from_millis(200));
    }
    assert!(
        released() >= DELETED_SEGMENTS,
        "only {} deleted files were closed on the blocking pool",
        released()
    );
    assert_eq!(
        deleted_open(&broker),
        Vec::<String>::new(),
        "deleted files left open"
    );
}

/// The `doomed` topic is about 30 MB of 1 MiB segments: at least this many of them are
/// deleted (by retention, then with the topic).
const DELETED_SEGMENTS: u64 = 25;

/// Descriptors of the broker still open on deleted files of its data directory.
fn deleted_open(broker: &Broker) -> Vec<String> {
    let pid = broker.pid().expect("broker running");
    let data = broker.data_dir().to_string_lossy().to_string();
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("/proc/PID/fd")
        .flatten()
        .filter_map(|e| std::fs::read_link(e.path()).ok())
        .map(|t| t.to_string_lossy().to_string())
        .filter(|t| t.starts_with(&data) && t.ends_with(" (deleted)"))
        .collect()
}
