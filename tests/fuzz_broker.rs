//! Socket-level fuzzer of the real binary: frames of the captured corpus
//! (`tests/fuzz/corpus`), mutated with a seeded RNG, sent pipelined over several
//! concurrent connections, while a canary client produces acknowledged records.
//!
//! Properties, checked throughout and at the end:
//! - the broker process stays alive and logs no contained panic ("bug: ...");
//! - every response answers an outstanding request of its connection, in request order;
//! - the canary is served (each produce within [`CANARY_MAX`]) and reads back, byte for
//!   byte, every batch it had acknowledged, before and after a restart;
//! - resident memory stays below what it was after the warm-up plus [`RSS_SLACK`];
//! - SIGTERM ends the broker with exit status 0.
//!
//! Short run (part of the suite): `cargo test --test fuzz_broker`. Long run:
//! `FUZZ_ITERS=200000 FUZZ_SEED=7 cargo test --test fuzz_broker -- --nocapture`
//! (`FUZZ_ITERS` counts pipelined rounds over all workers). On failure the last frames of
//! every worker are written to `target/fuzz-failures/broker-<seed>/` and the seed printed;
//! `FUZZ_REPLAY=<that dir>` sends those files, in name order, to a fresh broker.

mod common;
mod fuzz_support;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use fuzz_support::{Rng, Seed, env_or, mutate, rng, save_failure};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Message};
use rand::RngExt;
use ringbroker::protocol::batch::{self, testing::build_batch};
use std::collections::VecDeque;
use std::io::{ErrorKind, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Mutex;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

/// Pipelined rounds (1-4 frames each) over all workers in the default run.
const DEFAULT_ITERS: u64 = 6_000;
const DEFAULT_SEED: u64 = 0xf022_b40c;
const WORKERS: u64 = 4;
/// How long a worker waits for responses before sending more.
const READ_WAIT: Duration = Duration::from_millis(60);
/// Slowest acceptable canary produce.
const CANARY_MAX: Duration = Duration::from_secs(10);
/// Resident memory may grow this much past the warm-up.
const RSS_SLACK: u64 = 384 << 20;
/// Frames of each worker kept for a failure report.
const RECENT: usize = 48;

/// What the workers and the canary share.
struct Shared {
    stop: AtomicBool,
    sent: AtomicU64,
    answered: AtomicU64,
    closed: AtomicU64,
    recent: Vec<Mutex<VecDeque<Vec<u8>>>>,
    failure: Mutex<Option<String>>,
}

impl Shared {
    fn fail(&self, why: String) {
        self.failure.lock().expect("failure").get_or_insert(why);
        self.stop.store(true, Ordering::SeqCst);
    }
}

/// A fuzzing connection: bytes in, frames cut, correlation ids awaited in order.
struct Conn {
    stream: TcpStream,
    inbuf: Vec<u8>,
    /// (correlation id, api key, version) of requests awaiting a response.
    outstanding: VecDeque<(i32, i16, i16)>,
}

enum Poll {
    Open,
    Closed,
}

impl Conn {
    fn open(addr: SocketAddr) -> Option<Conn> {
        let stream = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).ok()?;
        stream.set_read_timeout(Some(READ_WAIT)).ok()?;
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .ok()?;
        stream.set_nodelay(true).ok()?;
        Some(Conn {
            stream,
            inbuf: Vec::new(),
            outstanding: VecDeque::new(),
        })
    }

    /// Reads what arrives within the wait; checks each response's correlation id.
    fn poll(&mut self, shared: &Shared) -> Poll {
        let deadline = Instant::now() + READ_WAIT;
        let mut chunk = [0u8; 64 * 1024];
        while !self.outstanding.is_empty() && Instant::now() < deadline {
            match self.stream.read(&mut chunk) {
                Ok(0) => return Poll::Closed,
                Ok(n) => self.inbuf.extend_from_slice(&chunk[..n]),
                Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {
                    break;
                }
                Err(_) => return Poll::Closed,
            }
            while self.inbuf.len() >= 8 {
                let len = i32::from_be_bytes(self.inbuf[..4].try_into().expect("4 bytes"));
                let Ok(len) = usize::try_from(len) else {
                    shared.fail(format!("response frame length {len}"));
                    return Poll::Closed;
                };
                if self.inbuf.len() < 4 + len {
                    break;
                }
                let id = i32::from_be_bytes(self.inbuf[4..8].try_into().expect("4 bytes"));
                let frame: Vec<u8> = self.inbuf.drain(..4 + len).skip(4).collect();
                shared.answered.fetch_add(1, Ordering::Relaxed);
                // Requests before it that got nothing sent none (acks=0 produce).
                match self.outstanding.iter().position(|o| o.0 == id) {
                    Some(p) => {
                        let (_, api, version) = self.outstanding[p];
                        self.outstanding.drain(..=p);
                        if let Err(e) = decode_response(api, version, frame) {
                            shared.fail(format!(
                                "the response to api {api} v{version} (id {id:#x}) does not \
                                 decode: {e:#}"
                            ));
                        }
                    }
                    None => shared.fail(format!(
                        "response with correlation id {id:#x} answers no outstanding request \
                         (outstanding {:x?})",
                        self.outstanding
                    )),
                }
            }
        }
        Poll::Open
    }
}

/// Decodes a response as a client of `api` at `version` would, to its last byte.
fn decode_response(api: i16, version: i16, frame: Vec<u8>) -> anyhow::Result<()> {
    let api = ApiKey::try_from(api).map_err(|_| anyhow::anyhow!("unknown api key answered"))?;
    // ApiVersions at a version the broker lacks is answered at v0 (KIP-511).
    let version = match api {
        ApiKey::ApiVersions if !(0..=3).contains(&version) => 0,
        _ => version,
    };
    let mut buf = bytes::Bytes::from(frame);
    ResponseHeader::decode(&mut buf, api.response_header_version(version))?;
    // Only the APIs the broker advertises may be answered; any other closes the connection.
    anyhow::ensure!(
        ringbroker::protocol::versions::SUPPORTED
            .iter()
            .any(|(k, _, _)| *k == api),
        "{api:?} is not an api the broker serves, yet answered"
    );
    fn body<T: Decodable + Message>(buf: &mut bytes::Bytes, v: i16) -> anyhow::Result<()> {
        // Versions the crate lacks (Produce v0-2, answered by hand) are not checked.
        if v < T::VERSIONS.min || v > T::VERSIONS.max {
            buf.clear();
            return Ok(());
        }
        T::decode(buf, v).map(drop)
    }
    let b = &mut buf;
    let v = version;
    match api {
        ApiKey::Produce => body::<ProduceResponse>(b, v)?,
        ApiKey::Fetch => body::<FetchResponse>(b, v)?,
        ApiKey::ListOffsets => body::<ListOffsetsResponse>(b, v)?,
        ApiKey::Metadata => body::<MetadataResponse>(b, v)?,
        ApiKey::ApiVersions => body::<ApiVersionsResponse>(b, v)?,
        ApiKey::CreateTopics => body::<CreateTopicsResponse>(b, v)?,
        ApiKey::DeleteTopics => body::<DeleteTopicsResponse>(b, v)?,
        ApiKey::CreatePartitions => body::<CreatePartitionsResponse>(b, v)?,
        ApiKey::DeleteRecords => body::<DeleteRecordsResponse>(b, v)?,
        ApiKey::DescribeLogDirs => body::<DescribeLogDirsResponse>(b, v)?,
        ApiKey::DescribeCluster => body::<DescribeClusterResponse>(b, v)?,
        ApiKey::DescribeProducers => body::<DescribeProducersResponse>(b, v)?,
        ApiKey::DescribeConfigs => body::<DescribeConfigsResponse>(b, v)?,
        ApiKey::AlterConfigs => body::<AlterConfigsResponse>(b, v)?,
        ApiKey::IncrementalAlterConfigs => body::<IncrementalAlterConfigsResponse>(b, v)?,
        ApiKey::InitProducerId => body::<InitProducerIdResponse>(b, v)?,
        ApiKey::FindCoordinator => body::<FindCoordinatorResponse>(b, v)?,
        ApiKey::JoinGroup => body::<JoinGroupResponse>(b, v)?,
        ApiKey::SyncGroup => body::<SyncGroupResponse>(b, v)?,
        ApiKey::Heartbeat => body::<HeartbeatResponse>(b, v)?,
        ApiKey::LeaveGroup => body::<LeaveGroupResponse>(b, v)?,
        ApiKey::OffsetCommit => body::<OffsetCommitResponse>(b, v)?,
        ApiKey::OffsetFetch => body::<OffsetFetchResponse>(b, v)?,
        ApiKey::ListGroups => body::<ListGroupsResponse>(b, v)?,
        ApiKey::DescribeGroups => body::<DescribeGroupsResponse>(b, v)?,
        ApiKey::DeleteGroups => body::<DeleteGroupsResponse>(b, v)?,
        ApiKey::OffsetDelete => body::<OffsetDeleteResponse>(b, v)?,
        ApiKey::SaslHandshake => body::<SaslHandshakeResponse>(b, v)?,
        ApiKey::SaslAuthenticate => body::<SaslAuthenticateResponse>(b, v)?,
        ApiKey::CreateAcls => body::<CreateAclsResponse>(b, v)?,
        ApiKey::DescribeAcls => body::<DescribeAclsResponse>(b, v)?,
        ApiKey::DeleteAcls => body::<DeleteAclsResponse>(b, v)?,
        ApiKey::DescribeUserScramCredentials => body::<DescribeUserScramCredentialsResponse>(b, v)?,
        ApiKey::AlterUserScramCredentials => body::<AlterUserScramCredentialsResponse>(b, v)?,
        ApiKey::AddPartitionsToTxn => body::<AddPartitionsToTxnResponse>(b, v)?,
        ApiKey::AddOffsetsToTxn => body::<AddOffsetsToTxnResponse>(b, v)?,
        ApiKey::EndTxn => body::<EndTxnResponse>(b, v)?,
        ApiKey::TxnOffsetCommit => body::<TxnOffsetCommitResponse>(b, v)?,
        ApiKey::WriteTxnMarkers => body::<WriteTxnMarkersResponse>(b, v)?,
        ApiKey::DescribeTransactions => body::<DescribeTransactionsResponse>(b, v)?,
        ApiKey::ListTransactions => body::<ListTransactionsResponse>(b, v)?,
        other => anyhow::bail!("the test cannot decode {other:?}: add it here"),
    }
    anyhow::ensure!(buf.is_empty(), "{} bytes left over", buf.len());
    Ok(())
}

/// Where a request header ends (v1+: api, version, id, client id), or 8.
fn header_len(f: &[u8]) -> usize {
    match f.get(8..10) {
        Some(l) => 10 + usize::try_from(i16::from_be_bytes([l[0], l[1]])).unwrap_or(0),
        None => 8,
    }
    .min(f.len())
}

fn be16(f: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([f[at], f[at + 1]])
}

/// A corpus frame, mutated 1-5 times, mostly once. A frame that does not decode closes its
/// connection, so whatever is pipelined behind it is never read: one in ten frames, and
/// half of those not last in their pipeline, go unchanged.
fn make_frame(rng: &mut Rng, corpus: &[Seed], versions: &[(i16, i16)], last: bool) -> Vec<u8> {
    let base = &corpus[rng.random_range(0..corpus.len())];
    let mut f = base.frame.clone();
    if rng.random_ratio(1, 10) || (!last && rng.random_bool(0.5)) {
        return f;
    }
    let times = match rng.random_range(0..8) {
        0..=4 => 1,
        5 | 6 => 2,
        _ => rng.random_range(3..=5),
    };
    for _ in 0..times {
        if rng.random_ratio(1, 8) && f.len() >= 4 {
            // Any advertised api and version, over a body of another.
            let (api, v) = versions[rng.random_range(0..versions.len())];
            f[..2].copy_from_slice(&api.to_be_bytes());
            f[2..4].copy_from_slice(&v.to_be_bytes());
        } else {
            let keep = if rng.random_bool(0.85) {
                header_len(&f)
            } else {
                0
            };
            let other = &corpus[rng.random_range(0..corpus.len())].frame;
            mutate(rng, &mut f, keep, other);
        }
    }
    f
}

fn worker(
    w: u64,
    seed: u64,
    rounds: u64,
    addr: SocketAddr,
    corpus: &[Seed],
    versions: &[(i16, i16)],
    shared: &Shared,
) {
    let mut rng = rng(seed.wrapping_add(w.wrapping_mul(0x9e37_79b9)));
    let mut conn: Option<Conn> = None;
    let mut next_id: i32 = 0;
    for _ in 0..rounds {
        if shared.stop.load(Ordering::SeqCst) {
            return;
        }
        if conn.is_none() {
            conn = Conn::open(addr);
        }
        let Some(c) = conn.as_mut() else {
            shared.fail(format!("worker {w}: cannot connect"));
            return;
        };
        let mut wire = Vec::new();
        let mut desynced = false;
        let k = rng.random_range(1..=4);
        for j in 0..k {
            let mut f = make_frame(&mut rng, corpus, versions, j + 1 == k);
            next_id = next_id.wrapping_add(1);
            let id = ((w as i32) << 24) | (next_id & 0xff_ffff);
            if f.len() >= 8 {
                f[4..8].copy_from_slice(&id.to_be_bytes());
                let (api, version) = (be16(&f, 0), be16(&f, 2));
                c.outstanding.push_back((id, api, version));
            }
            let mut len = f.len() as i32;
            if rng.random_ratio(1, 40) {
                // A lying length prefix: the rest of the stream is out of step.
                len = [len + 1, len - 1, len * 2, -1, i32::MAX][rng.random_range(0..5)];
                desynced = true;
            }
            wire.extend_from_slice(&len.to_be_bytes());
            wire.extend_from_slice(&f);
            let mut recent = shared.recent[w as usize].lock().expect("recent");
            if recent.len() == RECENT {
                recent.pop_front();
            }
            let mut framed = len.to_be_bytes().to_vec();
            framed.extend_from_slice(&f);
            recent.push_back(framed);
            shared.sent.fetch_add(1, Ordering::Relaxed);
            if desynced {
                break;
            }
        }
        let closed = c.stream.write_all(&wire).is_err() || matches!(c.poll(shared), Poll::Closed);
        if closed || desynced || c.outstanding.len() > 64 || rng.random_ratio(1, 30) {
            if closed {
                shared.closed.fetch_add(1, Ordering::Relaxed);
            }
            conn = None;
        }
    }
}

/// Every batch of `topic`-0 from offset 0, raw, as Fetch returns them.
fn fetch_raw(c: &mut RawClient, topic: &str) -> Vec<Vec<u8>> {
    let mut out = Vec::new();
    let mut next = 0i64;
    for _ in 0..10_000 {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(kafka::topic_name(topic))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_current_leader_epoch(-1)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_fetch_offset(next)
                            .with_partition_max_bytes(8 << 20),
                    ]),
            ]);
        let r: FetchResponse = c.call(12, &req);
        let p = &r.responses[0].partitions[0];
        assert_eq!(p.error_code, NONE, "canary fetch at {next}");
        if next >= p.high_watermark {
            return out;
        }
        let bytes = p.records.clone().unwrap_or_default();
        let batches = batch::validate_batches(&bytes).expect("canary batches are valid");
        for (h, range) in batches {
            next = h.last_offset() + 1;
            out.push(bytes[range].to_vec());
        }
    }
    panic!("canary fetch did not reach the high watermark");
}

/// Produces canary batches until the workers finish; returns the acknowledged batches
/// (base offset set), the peak RSS and the slowest produce.
fn canary(
    broker: &mut Broker,
    topic: &str,
    shared: &Shared,
    rss_limit: u64,
) -> (Vec<Vec<u8>>, u64, Duration) {
    let mut c = RawClient::connect(broker.addr());
    let (mut acked, mut peak, mut slowest) = (Vec::new(), 0u64, Duration::ZERO);
    let mut n = 0u64;
    while !shared.stop.load(Ordering::SeqCst) {
        std::thread::sleep(Duration::from_millis(150));
        if !broker.is_running() {
            shared.fail("the broker process died".into());
            break;
        }
        let rss = broker.rss_bytes();
        peak = peak.max(rss);
        if rss > rss_limit {
            shared.fail(format!("RSS {rss} B above the bound {rss_limit} B"));
            break;
        }
        let values: Vec<Vec<u8>> = (0..=n % 3)
            .map(|i| format!("canary {n}.{i} {}", "x".repeat((n % 50) as usize)).into_bytes())
            .collect();
        let refs: Vec<&[u8]> = values.iter().map(|v| v.as_slice()).collect();
        let mut b = build_batch(&refs, common::recent_ts());
        let t = Instant::now();
        let (err, base) = kafka::produce_one(&mut c, topic, 0, b.clone());
        slowest = slowest.max(t.elapsed());
        if err != NONE || t.elapsed() > CANARY_MAX {
            shared.fail(format!(
                "canary produce: error {err} after {:?}",
                t.elapsed()
            ));
            break;
        }
        batch::set_base_offset(&mut b, base);
        acked.push(b);
        n += 1;
        if n.is_multiple_of(20) {
            let got = fetch_raw(&mut c, topic);
            if got != acked {
                shared.fail(format!(
                    "canary read back {} batches, not the {} acked",
                    got.len(),
                    acked.len()
                ));
            }
        }
    }
    (acked, peak, slowest)
}

fn start_broker() -> Broker {
    Broker::start(&[
        "socket.frame.timeout.ms=2000",
        "topic.partitions.max=16",
        "broker.partitions.max=600",
        "group.initial.rebalance.delay.ms=100",
        "log.segment.bytes=1048576",
    ])
}

/// Sends every corpus frame once, unchanged (topics, groups and producers come to exist).
fn warm_up(broker: &Broker, corpus: &[Seed], shared: &Shared) {
    let mut conn = Conn::open(broker.addr());
    for s in corpus {
        let Some(c) = conn.as_mut() else {
            conn = Conn::open(broker.addr());
            continue;
        };
        let mut wire = (s.frame.len() as i32).to_be_bytes().to_vec();
        wire.extend_from_slice(&s.frame);
        let id = i32::from_be_bytes(s.frame[4..8].try_into().expect("id"));
        c.outstanding.push_back((id, s.api, s.version));
        shared.sent.fetch_add(1, Ordering::Relaxed);
        if c.stream.write_all(&wire).is_err() || matches!(c.poll(shared), Poll::Closed) {
            conn = None;
        } else if !c.outstanding.is_empty() {
            c.outstanding.clear();
            conn = None;
        }
    }
}

#[test]
fn mutated_client_traffic_cannot_crash_starve_or_corrupt_the_broker() {
    if let Ok(dir) = std::env::var("FUZZ_REPLAY") {
        return replay(&dir);
    }
    let seed = env_or("FUZZ_SEED", DEFAULT_SEED);
    let iters = env_or("FUZZ_ITERS", DEFAULT_ITERS);
    let corpus = fuzz_support::corpus();
    let mut broker = start_broker();
    let mut c = RawClient::connect(broker.addr());
    let versions: Vec<(i16, i16)> = c
        .versions()
        .into_iter()
        .flat_map(|(api, (lo, hi))| (lo..=hi + 1).map(move |v| (api, v)))
        .collect();
    let topic = format!("canary-{seed:x}");
    kafka::create_topic(&mut c, &topic, 1);
    let shared = Shared {
        stop: AtomicBool::new(false),
        sent: AtomicU64::new(0),
        answered: AtomicU64::new(0),
        closed: AtomicU64::new(0),
        recent: (0..WORKERS).map(|_| Mutex::default()).collect(),
        failure: Mutex::new(None),
    };
    let started = Instant::now();
    warm_up(&broker, &corpus, &shared);
    let rss_limit = broker.rss_bytes() + RSS_SLACK;
    let addr = broker.addr();
    let (acked, peak, slowest) = std::thread::scope(|s| {
        let handles: Vec<_> = (0..WORKERS)
            .map(|w| {
                let (corpus, versions, shared) = (&corpus, &versions, &shared);
                s.spawn(move || worker(w, seed, iters / WORKERS, addr, corpus, versions, shared))
            })
            .collect();
        let done = s.spawn(|| {
            for h in handles {
                if h.join().is_err() {
                    shared.fail("a worker panicked".into());
                }
            }
            shared.stop.store(true, Ordering::SeqCst);
        });
        let r = canary(&mut broker, &topic, &shared, rss_limit);
        let _ = done.join();
        r
    });
    let secs = started.elapsed().as_secs_f64();
    let sent = shared.sent.load(Ordering::Relaxed);
    eprintln!(
        "seed {seed:#x}: {sent} frames in {secs:.1} s ({:.0}/s), {} responses, {} closes by \
         the broker; {} canary batches, slowest {slowest:?}; peak RSS {} MiB (bound {} MiB)",
        sent as f64 / secs,
        shared.answered.load(Ordering::Relaxed),
        shared.closed.load(Ordering::Relaxed),
        acked.len(),
        peak >> 20,
        rss_limit >> 20,
    );
    let log = broker.log();
    if let Some(line) = log
        .lines()
        .find(|l| l.contains("bug:") || l.contains("panicked"))
    {
        shared.fail(format!("the broker logged: {line}"));
    }
    if let Some(why) = shared.failure.lock().expect("failure").clone() {
        let frames: Vec<(String, Vec<u8>)> = shared
            .recent
            .iter()
            .enumerate()
            .flat_map(|(w, r)| {
                let r = r.lock().expect("recent").clone();
                r.into_iter()
                    .enumerate()
                    .map(move |(i, f)| (format!("w{w}-{i:02}.bin"), f))
            })
            .collect();
        let dir = save_failure("broker", seed, &frames);
        panic!(
            "FUZZ_SEED={seed:#x}: {why}\nthe last frames of each worker (with their length \
             prefix) are in {}",
            dir.display()
        );
    }
    assert!(
        acked.len() >= 5,
        "the canary produced {} batches",
        acked.len()
    );
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(
        fetch_raw(&mut c, &topic),
        acked,
        "canary before the restart"
    );
    broker.stop();
    broker.start_again();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(fetch_raw(&mut c, &topic), acked, "canary after the restart");
}

/// Sends saved frames (each with its length prefix) in file-name order to a fresh broker.
fn replay(dir: &str) {
    let mut broker = start_broker();
    let mut files: Vec<_> = std::fs::read_dir(dir)
        .expect("replay dir")
        .filter_map(|e| e.ok().map(|e| e.path()))
        .collect();
    files.sort();
    let mut s = TcpStream::connect(broker.addr()).expect("connect");
    for f in &files {
        let bytes = std::fs::read(f).expect("read frame");
        eprintln!("replaying {} ({} bytes)", f.display(), bytes.len());
        if s.write_all(&bytes).is_err() {
            s = TcpStream::connect(broker.addr()).expect("reconnect");
            let _ = s.write_all(&bytes);
        }
        std::thread::sleep(Duration::from_millis(50));
        assert!(broker.is_running(), "the broker died on {}", f.display());
    }
    std::thread::sleep(Duration::from_secs(1));
    assert!(broker.is_running(), "the broker died:\n{}", broker.log());
    assert!(!broker.log().contains("bug:"), "{}", broker.log());
    broker.stop();
}
