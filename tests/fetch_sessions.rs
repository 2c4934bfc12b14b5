//! Incremental fetch sessions (KIP-227) against the real broker, with raw Fetch v12 frames:
//! a full fetch with epoch 0 makes a session; incremental fetches answer only partitions
//! with records or moved offsets and never forgotten ones; wrong epochs, unknown ids and
//! closed sessions are answered with Kafka's errors; the cache keeps to its slots and
//! evicts by Kafka's rules; a long-poll incremental fetch wakes when a record arrives.
//! Followers fetch idle partitions incrementally: their requests stay a fraction of what
//! full fetches of the same partitions would carry.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use ringbroker::protocol::batch::testing::build_batch;
use std::io::{Read, Write};
use std::time::{Duration, Instant};

const FETCH_SESSION_ID_NOT_FOUND: i16 = 70;
const INVALID_FETCH_SESSION_EPOCH: i16 = 71;
const TOPIC: &str = "sessions";

/// A fetch of `TOPIC`'s `parts` (partition, offset) in session `id` at `epoch`, forgetting
/// `forget`; no waiting.
fn request(id: i32, epoch: i32, parts: &[(i32, i64)], forget: &[i32]) -> FetchRequest {
    let topics = if parts.is_empty() {
        Vec::new()
    } else {
        vec![
            FetchTopic::default()
                .with_topic(kafka::topic_name(TOPIC))
                .with_partitions(
                    parts
                        .iter()
                        .map(|(p, offset)| {
                            FetchPartition::default()
                                .with_partition(*p)
                                .with_current_leader_epoch(-1)
                                .with_fetch_offset(*offset)
                                .with_last_fetched_epoch(-1)
                                .with_log_start_offset(-1)
                                .with_partition_max_bytes(1 << 20)
                        })
                        .collect(),
                ),
        ]
    };
    let forgotten = if forget.is_empty() {
        Vec::new()
    } else {
        vec![
            ForgottenTopic::default()
                .with_topic(kafka::topic_name(TOPIC))
                .with_partitions(forget.to_vec()),
        ]
    };
    FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(64 << 20)
        .with_session_id(id)
        .with_session_epoch(epoch)
        .with_topics(topics)
        .with_forgotten_topics_data(forgotten)
}

/// What an answer said: error, session id, and per partition (index, high watermark,
/// record bytes).
#[derive(Debug)]
struct Answer {
    error: i16,
    session: i32,
    parts: Vec<(i32, i64, usize)>,
}

impl Answer {
    fn partitions(&self) -> Vec<i32> {
        self.parts.iter().map(|p| p.0).collect()
    }
}

fn fetch(c: &mut RawClient, req: &FetchRequest) -> Answer {
    let resp: FetchResponse = c.call(12, req);
    let mut parts = Vec::new();
    for t in &resp.responses {
        assert_eq!(t.topic.0.as_str(), TOPIC);
        for p in &t.partitions {
            assert_eq!(p.error_code, NONE, "partition {}", p.partition_index);
            let bytes = p.records.as_ref().map(|r| r.len()).unwrap_or(0);
            parts.push((p.partition_index, p.high_watermark, bytes));
        }
    }
    Answer {
        error: resp.error_code,
        session: resp.session_id,
        parts,
    }
}

fn produce(c: &mut RawClient, partition: i32, n: usize) {
    let values: Vec<Vec<u8>> = (0..n).map(|i| format!("v{i}").into_bytes()).collect();
    let refs: Vec<&[u8]> = values.iter().map(Vec::as_slice).collect();
    let (err, _) = kafka::produce_one(c, TOPIC, partition, build_batch(&refs, common::now_ms()));
    assert_eq!(err, NONE);
}

/// A broker with `TOPIC` of `partitions` partitions, two records in each.
fn setup(broker_args: &[&str], partitions: i32) -> (Broker, RawClient) {
    let broker = Broker::start_with_args(broker_args.iter().map(|s| s.to_string()).collect());
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, TOPIC, partitions);
    for p in 0..partitions {
        produce(&mut c, p, 2);
    }
    (broker, c)
}

/// A session of every partition at offset 0 (each answered with its two records).
fn open_session(c: &mut RawClient, partitions: i32) -> i32 {
    let all: Vec<(i32, i64)> = (0..partitions).map(|p| (p, 0)).collect();
    let a = fetch(c, &request(0, 0, &all, &[]));
    assert_eq!(a.error, NONE);
    assert_ne!(a.session, 0, "a full fetch with epoch 0 makes a session");
    assert_eq!(a.partitions(), (0..partitions).collect::<Vec<_>>());
    assert!(a.parts.iter().all(|(_, hw, bytes)| *hw == 2 && *bytes > 0));
    a.session
}

#[test]
fn incremental_fetches_answer_only_what_changed() {
    let (_broker, mut c) = setup(&["--shards", "2"], 4);
    let id = open_session(&mut c, 4);
    // Every position moves past the records: nothing new, nothing answered.
    let moved: Vec<(i32, i64)> = (0..4).map(|p| (p, 2)).collect();
    let a = fetch(&mut c, &request(id, 1, &moved, &[]));
    assert_eq!((a.error, a.session), (NONE, id));
    assert!(a.parts.is_empty(), "unchanged partitions omitted: {a:?}");
    let a = fetch(&mut c, &request(id, 2, &[], &[]));
    assert!(a.parts.is_empty(), "{a:?}");
    // New records in partition 1: it alone is answered, with them.
    produce(&mut c, 1, 3);
    let a = fetch(&mut c, &request(id, 3, &[], &[]));
    assert_eq!(a.parts.len(), 1, "{a:?}");
    assert_eq!((a.parts[0].0, a.parts[0].1), (1, 5));
    assert!(a.parts[0].2 > 0);
    // Records in 2 and 3, and a response limit of one byte: 2 carries its records, 3 only
    // its moved high watermark; both are answered.
    produce(&mut c, 2, 1);
    produce(&mut c, 3, 1);
    let a = fetch(&mut c, &request(id, 4, &[(1, 5)], &[]).with_max_bytes(1));
    assert_eq!(a.partitions(), vec![2, 3], "{a:?}");
    assert!(a.parts[0].2 > 0 && a.parts[0].1 == 3);
    assert_eq!((a.parts[1].1, a.parts[1].2), (3, 0), "high watermark only");
    // 2 moves on; 3 is still at 2 and is answered with its record.
    let a = fetch(&mut c, &request(id, 5, &[(2, 3)], &[]));
    assert_eq!(a.partitions(), vec![3], "{a:?}");
    assert!(a.parts[0].2 > 0);
}

#[test]
fn session_errors_and_closing() {
    let (_broker, mut c) = setup(&["--shards", "2"], 2);
    let id = open_session(&mut c, 2);
    // An epoch other than the next one.
    for epoch in [2, 7, -5] {
        let a = fetch(&mut c, &request(id, epoch, &[], &[]));
        assert_eq!((a.error, a.session), (INVALID_FETCH_SESSION_EPOCH, 0));
        assert!(a.parts.is_empty());
    }
    // An id no session has.
    let a = fetch(&mut c, &request(id.wrapping_add(2), 1, &[], &[]));
    assert_eq!((a.error, a.session), (FETCH_SESSION_ID_NOT_FOUND, 0));
    // The right epoch still works after the errors.
    let a = fetch(&mut c, &request(id, 1, &[(0, 2), (1, 2)], &[]));
    assert_eq!((a.error, a.session, a.parts.len()), (NONE, id, 0));
    // Epoch -1 closes it: a full answer without a session, and the id is gone.
    let a = fetch(&mut c, &request(id, -1, &[(0, 0)], &[]));
    assert_eq!((a.error, a.session, a.partitions()), (NONE, 0, vec![0]));
    let a = fetch(&mut c, &request(id, 2, &[], &[]));
    assert_eq!(a.error, FETCH_SESSION_ID_NOT_FOUND);
    // Epoch 0 with an id closes that session and makes another.
    let first = open_session(&mut c, 2);
    let a = fetch(&mut c, &request(first, 0, &[(0, 0), (1, 0)], &[]));
    assert_ne!(a.session, 0);
    assert_ne!(a.session, first);
    assert_eq!(
        fetch(&mut c, &request(first, 1, &[], &[])).error,
        FETCH_SESSION_ID_NOT_FOUND
    );
    assert_eq!(fetch(&mut c, &request(a.session, 1, &[], &[])).error, NONE);
    // Without sessions (epoch -1, id 0), as librdkafka fetches: full answers, id 0.
    let a = fetch(&mut c, &request(0, -1, &[(0, 2), (1, 2)], &[]));
    assert_eq!((a.error, a.session, a.partitions()), (NONE, 0, vec![0, 1]));
}

#[test]
fn forgotten_partitions_are_not_answered() {
    let (_broker, mut c) = setup(&["--shards", "2"], 3);
    let id = open_session(&mut c, 3);
    let a = fetch(&mut c, &request(id, 1, &[(1, 2), (2, 2)], &[0]));
    assert!(a.parts.is_empty(), "{a:?}");
    for p in 0..3 {
        produce(&mut c, p, 1);
    }
    let a = fetch(&mut c, &request(id, 2, &[], &[]));
    assert_eq!(
        a.partitions(),
        vec![1, 2],
        "partition 0 was forgotten: {a:?}"
    );
    // Forgetting the rest empties and closes the session.
    let a = fetch(&mut c, &request(id, 3, &[], &[1, 2]));
    assert_eq!((a.error, a.session, a.parts.len()), (NONE, 0, 0));
    assert_eq!(
        fetch(&mut c, &request(id, 4, &[], &[])).error,
        FETCH_SESSION_ID_NOT_FOUND
    );
}

/// The broker's Prometheus text.
fn scrape(port: u16) -> String {
    let mut s = std::net::TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    s.write_all(b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n")
        .expect("send");
    let mut out = String::new();
    let _ = s.read_to_string(&mut out);
    out
}

/// The value of an unlabelled-but-for-shard sample `name` (one shard).
fn sample(text: &str, name: &str) -> f64 {
    text.lines()
        .find(|l| l.starts_with(&format!("{name}{{")))
        .and_then(|l| l.rsplit(' ').next())
        .and_then(|v| v.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in the metrics"))
}

#[test]
fn the_cache_keeps_to_its_slots_and_evicts_as_kafka_does() {
    let mport = common::free_port();
    let listen = format!("metrics.listen=127.0.0.1:{mport}");
    let args = [
        "--shards",
        "1",
        "--set",
        "max.incremental.fetch.session.cache.slots=2",
        "--set",
        "min.incremental.fetch.session.eviction.ms=1500",
        "--set",
        &listen,
    ];
    let (_broker, mut c) = setup(&args, 3);
    let a = open_session(&mut c, 1);
    let b = open_session(&mut c, 2);
    assert_ne!(a, b);
    // Full, and neither is stale nor smaller than a consumer may evict while young: a full
    // answer without a session.
    let full = fetch(&mut c, &request(0, 0, &[(0, 0), (1, 0), (2, 0)], &[]));
    assert_eq!((full.error, full.session, full.parts.len()), (NONE, 0, 3));
    // A follower's session may evict a young consumer's: the smallest (a).
    let follower = request(0, 0, &[(0, 0), (1, 0)], &[]).with_replica_id(BrokerId(7));
    let f = fetch(&mut c, &follower);
    assert_ne!(f.session, 0, "a follower's session is privileged");
    assert_eq!(
        fetch(&mut c, &request(a, 1, &[], &[])).error,
        FETCH_SESSION_ID_NOT_FOUND
    );
    let m = scrape(mport);
    assert_eq!(sample(&m, "ringbroker_fetch_sessions"), 2.0);
    assert_eq!(sample(&m, "ringbroker_fetch_session_evictions_total"), 1.0);
    // b idles past the eviction time while f is used: the next session takes b's slot.
    let until = Instant::now() + Duration::from_millis(1800);
    let mut epoch = 1;
    while Instant::now() < until {
        let a = fetch(
            &mut c,
            &request(f.session, epoch, &[], &[]).with_replica_id(BrokerId(7)),
        );
        assert_eq!(a.error, NONE);
        epoch += 1;
        std::thread::sleep(Duration::from_millis(200));
    }
    let d = open_session(&mut c, 1);
    assert_ne!(d, 0, "a stale session is evicted for a new one");
    assert_eq!(
        fetch(&mut c, &request(b, 1, &[], &[])).error,
        FETCH_SESSION_ID_NOT_FOUND
    );
    let m = scrape(mport);
    assert_eq!(sample(&m, "ringbroker_fetch_sessions"), 2.0);
    assert_eq!(sample(&m, "ringbroker_fetch_session_evictions_total"), 2.0);
}

#[test]
fn a_long_poll_incremental_fetch_wakes_on_produce() {
    let (broker, mut c) = setup(&["--shards", "2"], 2);
    let id = open_session(&mut c, 2);
    let a = fetch(&mut c, &request(id, 1, &[(0, 2), (1, 2)], &[]));
    assert!(a.parts.is_empty());
    let addr = broker.addr();
    let producer = std::thread::spawn(move || {
        std::thread::sleep(Duration::from_millis(500));
        let mut c = RawClient::connect(addr);
        produce(&mut c, 1, 1);
    });
    let started = Instant::now();
    let poll = request(id, 2, &[], &[])
        .with_max_wait_ms(20_000)
        .with_min_bytes(1);
    let a = fetch(&mut c, &poll);
    let waited = started.elapsed();
    producer.join().expect("producer");
    assert_eq!((a.error, a.session), (NONE, id));
    assert_eq!(a.partitions(), vec![1], "{a:?}");
    assert!(a.parts[0].2 > 0, "the new record");
    assert!(
        waited >= Duration::from_millis(400) && waited < Duration::from_secs(10),
        "parked until the produce, not the deadline: {waited:?}"
    );
}

/// Smallest Fetch v12 partition entry: index, current leader epoch, fetch offset, last
/// fetched epoch, log start offset, partition max bytes, tagged fields.
const FULL_FETCH_PARTITION_BYTES: u64 = 4 + 4 + 8 + 4 + 8 + 4 + 1;

#[test]
fn followers_fetch_idle_partitions_incrementally() {
    const PARTITIONS: i32 = 120;
    const WINDOW: Duration = Duration::from_secs(4);
    let c = cluster::Cluster::start(cluster::Options {
        proxies: true,
        ..cluster::Options::default()
    });
    let topic = "idle";
    c.create_topic_ok(1, topic, PARTITIONS, 3);
    let live = c.live();
    c.wait("every replica in sync", Duration::from_secs(60), || {
        let v = c.try_view(live[0], &[topic])?;
        let parts = v.topic(topic);
        let full = parts.len() == PARTITIONS as usize && parts.values().all(|p| p.isr.len() == 3);
        if full { Ok(()) } else { Err(v.summary()) }
    });
    // Let the followers' first (full) fetches and the high watermarks settle.
    std::thread::sleep(Duration::from_secs(2));
    let traffic = || {
        live.iter()
            .map(|id| c.data_proxy_stats(*id).expect("a data proxy"))
            .fold((0, 0), |(up, down), s| {
                (up + s.bytes_up, down + s.bytes_down)
            })
    };
    let before = traffic();
    std::thread::sleep(WINDOW);
    let after = traffic();
    let (up, down) = (after.0 - before.0, after.1 - before.1);
    // Full fetches would name every followed partition at least once per
    // replica.fetch.wait.max.ms (500 ms) while nothing arrives.
    let rounds = WINDOW.as_millis() as u64 / 500;
    let full_at_least = rounds * PARTITIONS as u64 * 2 * FULL_FETCH_PARTITION_BYTES;
    eprintln!(
        "idle followers over {WINDOW:?}: {up} bytes of requests, {down} bytes of answers \
         (full fetches: at least {full_at_least} bytes of requests)"
    );
    assert!(
        up > 0 && up * 4 < full_at_least,
        "followers' requests carried {up} bytes in {WINDOW:?}; full fetches need at least \
         {full_at_least}\n{}",
        c.describe()
    );
}

/// Broker CPU time (user + system) so far, in microseconds, from /proc.
fn cpu_us(pid: u32) -> u64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).expect("broker stat");
    // Fields after the command name (which may hold spaces): state is field 3; utime and
    // stime are fields 14 and 15.
    let rest = stat.rsplit_once(") ").expect("stat format").1;
    let f: Vec<&str> = rest.split(' ').collect();
    let ticks: u64 = f[11].parse::<u64>().expect("utime") + f[12].parse::<u64>().expect("stime");
    // SAFETY: sysconf has no preconditions.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    ticks * 1_000_000 / hz
}

/// Sends `req` and returns (request frame bytes, response frame bytes), both with their
/// length prefix.
fn round(c: &mut RawClient, req: &FetchRequest) -> (usize, usize) {
    use bytes::BytesMut;
    use kafka_protocol::protocol::Encodable;
    let mut body = BytesMut::new();
    req.encode(&mut body, 12).expect("encode");
    let id = c.next_correlation_id();
    let frame = RawClient::encode_raw(1, 12, id, &body);
    c.send_frame(&frame).expect("send");
    let answer = c.read_frame().expect("answer");
    (frame.len() + 4, answer.len() + 4)
}

/// Bytes and broker CPU per fetch round of a client that follows N idle partitions, with
/// full fetches (session id 0, epoch -1: every fetch before sessions) and with an
/// incremental session. Run with a release broker:
/// `cargo build --release --bin ringbroker && RINGBROKER_BIN=$CARGO_TARGET_DIR/release/ringbroker
/// cargo test --release --test fetch_sessions measure -- --ignored --nocapture`.
#[test]
#[ignore = "a measurement (perf/README.md), not a check"]
fn measure_bytes_and_cpu_per_round() {
    println!(
        "| partitions | fetch | request bytes | response bytes | broker CPU µs/round | round trip µs |"
    );
    println!("| --- | --- | --- | --- | --- | --- |");
    for (n, rounds) in [(100i32, 4000u32), (1000, 1000)] {
        let broker = Broker::start(&["topic.partitions.max=10000"]);
        let pid = broker.pid().expect("running");
        let mut c = RawClient::connect(broker.addr());
        kafka::create_topic(&mut c, TOPIC, n);
        let all: Vec<(i32, i64)> = (0..n).map(|p| (p, 0)).collect();
        for replica in [-1, 7] {
            let who = if replica < 0 { "consumer" } else { "follower" };
            // Full fetches, every partition named and answered each round.
            let full = request(0, -1, &all, &[]).with_replica_id(BrokerId(replica));
            let measure = |c: &mut RawClient, make: &mut dyn FnMut(u32) -> FetchRequest| {
                for i in 0..50 {
                    round(c, &make(i));
                }
                let (cpu, t) = (cpu_us(pid), Instant::now());
                let mut bytes = (0, 0);
                for i in 50..50 + rounds {
                    bytes = round(c, &make(i));
                }
                let per = |x: u128| x / u128::from(rounds);
                (
                    bytes,
                    per(u128::from(cpu_us(pid) - cpu)),
                    per(t.elapsed().as_micros()),
                )
            };
            let (b, cpu, rt) = measure(&mut c, &mut |_| full.clone());
            println!("| {n} | full, {who} | {} | {} | {cpu} | {rt} |", b.0, b.1);
            let created = fetch(
                &mut c,
                &request(0, 0, &all, &[]).with_replica_id(BrokerId(replica)),
            );
            assert_ne!(created.session, 0);
            let id = created.session;
            let (b, cpu, rt) = measure(&mut c, &mut |i| {
                request(id, i32::try_from(i + 1).unwrap_or(1), &[], &[])
                    .with_replica_id(BrokerId(replica))
            });
            println!(
                "| {n} | incremental, {who} | {} | {} | {cpu} | {rt} |",
                b.0, b.1
            );
            let closed = fetch(&mut c, &request(id, -1, &[], &[]));
            assert_eq!(closed.error, NONE);
        }
    }
}
