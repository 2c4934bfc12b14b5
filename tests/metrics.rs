//! The Prometheus endpoint against the real binary: after a known produce and fetch, the
//! scraped counters (parsed by a Prometheus text parser) show exactly what was produced;
//! bad HTTP does not take the endpoint down; with `metrics.listen` unset nothing listens;
//! the fetch queue gauge counts a parked long poll and both queue gauges return to zero.

mod common;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{GroupId, OffsetCommitRequest, OffsetCommitResponse, TopicName};
use kafka_protocol::protocol::StrBytes;
use prometheus_parse::{Scrape, Value};
use ringbroker::protocol::batch::testing::build_batch;
use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

const TOPIC: &str = "scraped";
const BATCHES: usize = 20;
const RECORDS_PER_BATCH: usize = 5;
const VALUE_BYTES: usize = 300;

/// Sends `request` and returns the whole answer (the server closes after one).
fn http(port: u16, request: &[u8]) -> String {
    let mut s = TcpStream::connect(("127.0.0.1", port)).expect("connect to metrics");
    s.set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    // The server may close before taking all of an oversized request.
    let _ = s.write_all(request);
    let mut out = Vec::new();
    let _ = s.read_to_end(&mut out);
    String::from_utf8_lossy(&out).into_owned()
}

fn scrape(port: u16) -> Scrape {
    let answer = http(port, b"GET /metrics HTTP/1.1\r\nHost: x\r\n\r\n");
    let (head, body) = answer.split_once("\r\n\r\n").expect("an HTTP answer");
    assert!(head.starts_with("HTTP/1.1 200"), "{head}");
    assert!(head.contains("text/plain; version=0.0.4"), "{head}");
    Scrape::parse(body.lines().map(|l| Ok(l.to_string()))).expect("Prometheus text")
}

/// Sum of the samples of `name` whose labels include all of `labels`.
fn sum(s: &Scrape, name: &str, labels: &[(&str, &str)]) -> f64 {
    s.samples
        .iter()
        .filter(|x| x.metric == name)
        .filter(|x| labels.iter().all(|(k, v)| x.labels.get(k) == Some(*v)))
        .map(|x| match &x.value {
            Value::Counter(v) | Value::Gauge(v) | Value::Untyped(v) => *v,
            other => panic!("{name} is not a number: {other:?}"),
        })
        .sum()
}

#[test]
fn counters_match_what_was_produced_and_fetched() {
    let mport = common::free_port();
    let listen = format!("metrics.listen=127.0.0.1:{mport}");
    let broker = Broker::start(&[&listen, "log.flush=fsync"]);
    let before = scrape(mport);
    assert_eq!(sum(&before, "ringbroker_fdatasyncs_total", &[]), 0.0);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, TOPIC, 2);
    let value = vec![b'v'; VALUE_BYTES];
    let values: Vec<&[u8]> = (0..RECORDS_PER_BATCH).map(|_| value.as_slice()).collect();
    let mut bytes = [0u64; 2];
    let mut produces = 0.0;
    for i in 0..BATCHES {
        let p = (i % 2) as i32;
        let batch = build_batch(&values, common::recent_ts());
        bytes[i % 2] += batch.len() as u64;
        let (err, _) = kafka::produce_one(&mut c, TOPIC, p, batch);
        assert_eq!(err, NONE);
        produces += 1.0;
    }
    let mut fetched = [0u64; 2];
    let mut fetches = 0.0;
    for p in 0..2 {
        let r = kafka::fetch(&mut c, TOPIC, &[(p, 0)]);
        fetches += 1.0;
        assert_eq!(r[0].1, NONE);
        assert_eq!(r[0].3.len(), BATCHES / 2 * RECORDS_PER_BATCH);
        fetched[p as usize] = bytes[p as usize];
    }
    // A group commits offset 3 of partition 0 (a simple commit, no membership).
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(StrBytes::from_static_str("lagging")))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(StrBytes::from_static_str(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(3),
                ]),
        ]);
    let r: OffsetCommitResponse = c.call(7, &commit);
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);

    let s = scrape(mport);
    let group = [("group", "lagging"), ("topic", TOPIC), ("partition", "0")];
    assert_eq!(sum(&s, "ringbroker_group_committed_offset", &group), 3.0);
    assert_eq!(
        sum(&s, "ringbroker_group_lag", &group),
        (BATCHES / 2 * RECORDS_PER_BATCH - 3) as f64
    );
    for p in 0..2usize {
        let part = p.to_string();
        let l = [("topic", TOPIC), ("partition", part.as_str())];
        assert_eq!(
            sum(&s, "ringbroker_partition_in_bytes_total", &l),
            bytes[p] as f64,
            "bytes in of partition {p}"
        );
        assert_eq!(
            sum(&s, "ringbroker_partition_in_records_total", &l),
            (BATCHES / 2 * RECORDS_PER_BATCH) as f64
        );
        assert!(sum(&s, "ringbroker_partition_out_bytes_total", &l) >= fetched[p] as f64);
        // One fetch from offset 0 read every batch of the partition once.
        assert_eq!(
            sum(&s, "ringbroker_partition_out_records_total", &l),
            (BATCHES / 2 * RECORDS_PER_BATCH) as f64,
            "records out of partition {p}"
        );
        assert_eq!(
            sum(&s, "ringbroker_partition_log_end_offset", &l),
            (BATCHES / 2 * RECORDS_PER_BATCH) as f64
        );
        assert!(sum(&s, "ringbroker_partition_log_size_bytes", &l) >= bytes[p] as f64);
        assert_eq!(sum(&s, "ringbroker_partition_segments", &l), 1.0);
    }
    let moved = |name: &str, api: &str| {
        sum(&s, name, &[("api", api)]) - sum(&before, name, &[("api", api)])
    };
    assert!(moved("ringbroker_requests_total", "Produce") >= produces);
    assert!(moved("ringbroker_requests_total", "Fetch") >= fetches);
    let latency = s
        .samples
        .iter()
        .find(|x| {
            x.metric == "ringbroker_request_duration_seconds"
                && x.labels.get("api") == Some("Produce")
        })
        .expect("a Produce latency histogram");
    match &latency.value {
        Value::Histogram(b) => assert!(b.last().expect("+Inf").count >= 1.0),
        other => panic!("not a histogram: {other:?}"),
    }
    // Every acknowledged append under log.flush=fsync waited for an fdatasync.
    assert!(sum(&s, "ringbroker_fdatasyncs_total", &[]) >= 1.0);
    assert!(sum(&s, "ringbroker_connections", &[]) >= 1.0);
    drop(c);
}

#[test]
fn bad_requests_do_not_take_the_endpoint_down() {
    let mport = common::free_port();
    let listen = format!("metrics.listen=127.0.0.1:{mport}");
    let _broker = Broker::start(&[&listen]);
    let not_found = http(mport, b"GET /nope HTTP/1.1\r\n\r\n");
    assert!(not_found.starts_with("HTTP/1.1 404"), "{not_found}");
    let post = http(mport, b"POST /metrics HTTP/1.1\r\n\r\n");
    assert!(post.starts_with("HTTP/1.1 405"), "{post}");
    let garbage = http(mport, b"\x00\x01garbage\xff\r\n\r\n");
    assert!(garbage.starts_with("HTTP/1.1 400"), "{garbage}");
    // Headers that never end: closed once past the size bound.
    let mut endless = b"GET /metrics HTTP/1.1\r\nX: ".to_vec();
    endless.resize(64 << 10, b'a');
    let big = http(mport, &endless);
    assert!(big.is_empty() || big.starts_with("HTTP/1.1 400"), "{big}");
    // A client that sends half a request and goes away.
    {
        let mut s = TcpStream::connect(("127.0.0.1", mport)).expect("connect");
        s.write_all(b"GET /met").expect("send");
    }
    let s = scrape(mport);
    assert!(!s.samples.is_empty());
}

/// The TCP ports process `pid` listens on (its sockets in LISTEN state).
fn listening_ports(pid: u32) -> Vec<u16> {
    let inodes: Vec<String> = std::fs::read_dir(format!("/proc/{pid}/fd"))
        .expect("fds")
        .filter_map(|e| std::fs::read_link(e.ok()?.path()).ok())
        .filter_map(|l| {
            let l = l.to_string_lossy().into_owned();
            Some(l.strip_prefix("socket:[")?.strip_suffix(']')?.to_string())
        })
        .collect();
    let mut ports = Vec::new();
    for table in ["/proc/net/tcp", "/proc/net/tcp6"] {
        let text = std::fs::read_to_string(table).unwrap_or_default();
        for line in text.lines().skip(1) {
            let f: Vec<&str> = line.split_whitespace().collect();
            // local address, state 0A (LISTEN), inode
            if f.len() > 9 && f[3] == "0A" && inodes.iter().any(|i| i == f[9]) {
                let port = f[1].rsplit(':').next().expect("port");
                ports.push(u16::from_str_radix(port, 16).expect("hex port"));
            }
        }
    }
    ports.sort_unstable();
    ports
}

#[test]
fn nothing_listens_without_metrics_listen() {
    let off = Broker::start(&[]);
    let ports = listening_ports(off.pid().expect("running"));
    assert!(
        !ports.is_empty() && ports.iter().all(|p| *p == off.port),
        "{ports:?}"
    );
    // The same check sees the endpoint when it is on.
    let mport = common::free_port();
    let listen = format!("metrics.listen=127.0.0.1:{mport}");
    let on = Broker::start(&[&listen]);
    let ports = listening_ports(on.pid().expect("running"));
    assert!(
        ports.contains(&mport) && ports.contains(&on.port),
        "{ports:?}"
    );
}

/// A long-poll fetch on an empty partition is counted in `ringbroker_fetch_waiting` while
/// it waits, and both queue gauges are back to zero once everything is answered.
#[test]
fn queue_gauges_count_a_parked_fetch_and_empty_out() {
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest};
    let mport = common::free_port();
    let listen = format!("metrics.listen=127.0.0.1:{mport}");
    let broker = Broker::start(&[&listen]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "parked", 1);
    let gauge = |name: &str| sum(&scrape(mport), name, &[]);
    assert_eq!(gauge("ringbroker_fetch_waiting"), 0.0);
    assert_eq!(gauge("ringbroker_produce_in_flight"), 0.0);

    let addr = broker.addr();
    let poller = std::thread::spawn(move || {
        let mut c = RawClient::connect(addr);
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(4000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(kafka::topic_name("parked"))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_fetch_offset(0)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let v = c.pick_version::<FetchRequest>(12);
        c.call(v, &req)
    });
    let deadline = std::time::Instant::now() + Duration::from_secs(3);
    let mut seen = 0.0;
    while seen < 1.0 && std::time::Instant::now() < deadline {
        seen = gauge("ringbroker_fetch_waiting");
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(seen, 1.0, "the parked fetch is counted while it waits");
    // A produce wakes it; then nothing is queued.
    let batch = build_batch(&[b"wake"], common::recent_ts());
    assert_eq!(kafka::produce_one(&mut c, "parked", 0, batch).0, NONE);
    let resp = poller.join().expect("poller");
    assert_eq!(resp.responses[0].partitions[0].error_code, NONE);
    assert_eq!(gauge("ringbroker_fetch_waiting"), 0.0);
    assert_eq!(gauge("ringbroker_produce_in_flight"), 0.0);
}
