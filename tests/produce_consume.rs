//! End-to-end with a real Kafka client (librdkafka through `rdkafka`): create a topic,
//! produce 100,000 keyed messages with headers and explicit timestamps (acks=all), read them
//! all back per partition, restart the broker on the same data dir, read them again, then
//! check ListOffsets by timestamp and the watermarks. Run once per write-path setting.

mod common;

use std::collections::BTreeMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use common::Broker;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::{ClientContext, DefaultClientContext};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{Header, Headers, Message, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, Timestamp, TopicPartitionList};

const PARTITIONS: i32 = 6;
const MESSAGES: usize = 100_000;
const TIMEOUT: Duration = Duration::from_secs(30);

/// One message as produced and as it must come back.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Expected {
    key: Vec<u8>,
    value: Option<Vec<u8>>,
    headers: Vec<(String, Option<Vec<u8>>)>,
    timestamp: i64,
}

/// Deterministic content of message `i`: which partition, key, value, headers, timestamp.
fn message(i: usize, base_ts: i64) -> (i32, Expected) {
    let partition = (i % PARTITIONS as usize) as i32;
    let key = format!("key-{i:06}").into_bytes();
    // Every 997th message is a tombstone (null value); the rest vary in length.
    let value = if i % 997 == 5 {
        None
    } else {
        let len = 1 + (i * 7919) % 300;
        let mut v = format!("value-{i}-").into_bytes();
        v.extend((0..len).map(|j| b'a' + ((i + j) % 26) as u8));
        Some(v)
    };
    let mut headers = vec![
        ("idx".to_string(), Some(i.to_string().into_bytes())),
        ("part".to_string(), Some(vec![partition as u8])),
    ];
    if i.is_multiple_of(5) {
        headers.push(("null-header".to_string(), None));
    }
    if i.is_multiple_of(11) {
        headers.push(("empty".to_string(), Some(Vec::new())));
    }
    let timestamp = base_ts + i as i64;
    (
        partition,
        Expected {
            key,
            value,
            headers,
            timestamp,
        },
    )
}

/// Per partition, the expected messages in offset order.
fn expected(base_ts: i64) -> BTreeMap<i32, Vec<Expected>> {
    let mut by_part: BTreeMap<i32, Vec<Expected>> = BTreeMap::new();
    for i in 0..MESSAGES {
        let (p, m) = message(i, base_ts);
        by_part.entry(p).or_default().push(m);
    }
    by_part
}

fn client_config(broker: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap())
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "30000");
    c
}

fn create_topic(broker: &Broker, topic: &str) -> AdminClient<DefaultClientContext> {
    let admin: AdminClient<DefaultClientContext> =
        client_config(broker).create().expect("create AdminClient");
    let opts = AdminOptions::new().operation_timeout(Some(TIMEOUT));
    let res = futures_lite::future::block_on(admin.create_topics(
        &[NewTopic::new(topic, PARTITIONS, TopicReplication::Fixed(1))],
        &opts,
    ))
    .expect("CreateTopics request");
    assert_eq!(res.len(), 1);
    match &res[0] {
        Ok(name) => assert_eq!(name, topic),
        Err((name, code)) => panic!("CreateTopics {name}: {code:?}"),
    }
    admin
}

/// Records every delivery report: (partition, offset, key) or an error.
#[derive(Default)]
struct Deliveries {
    ok: Mutex<Vec<(i32, i64, Vec<u8>)>>,
    failed: Mutex<Vec<String>>,
}

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        match result {
            Ok(m) => self.ok.lock().expect("lock").push((
                m.partition(),
                m.offset(),
                m.key().unwrap_or_default().to_vec(),
            )),
            Err((e, m)) => self.failed.lock().expect("lock").push(format!(
                "partition {} key {:?}: {e}",
                m.partition(),
                m.key().map(String::from_utf8_lossy)
            )),
        }
    }
}

fn produce_all(broker: &Broker, topic: &str, base_ts: i64, compression: &str) {
    let producer: ThreadedProducer<Deliveries> = client_config(broker)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("queue.buffering.max.messages", "200000")
        .set("queue.buffering.max.kbytes", "1048576")
        .set("message.timeout.ms", "120000")
        .set("compression.type", compression)
        .create_with_context(Deliveries::default())
        .expect("create producer");
    let started = Instant::now();
    for i in 0..MESSAGES {
        let (p, m) = message(i, base_ts);
        let mut headers = OwnedHeaders::new_with_capacity(m.headers.len());
        for (k, v) in &m.headers {
            headers = headers.insert(Header {
                key: k,
                value: v.as_ref(),
            });
        }
        let mut record = BaseRecord::to(topic)
            .partition(p)
            .key(&m.key)
            .timestamp(m.timestamp)
            .headers(headers);
        if let Some(v) = &m.value {
            record = record.payload(v);
        }
        // The queue is sized for all messages; retry only if librdkafka says it is full.
        let mut record = record;
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((e, r)) => {
                    assert!(
                        started.elapsed() < Duration::from_secs(120),
                        "producer queue stayed full: {e}"
                    );
                    record = r;
                    std::thread::sleep(Duration::from_millis(10));
                }
            }
        }
    }
    producer
        .flush(Duration::from_secs(120))
        .expect("flush all messages within 120 s");
    eprintln!("produced {MESSAGES} messages in {:?}", started.elapsed());

    let ctx = producer.context();
    let failed = ctx.failed.lock().expect("lock");
    assert!(
        failed.is_empty(),
        "{} deliveries failed, first: {:?}",
        failed.len(),
        failed.first()
    );
    let ok = ctx.ok.lock().expect("lock");
    assert_eq!(ok.len(), MESSAGES, "delivery reports");
    // Each partition's messages got offsets 0.. in the order they were produced.
    let mut offsets: BTreeMap<i32, Vec<(usize, i64)>> = BTreeMap::new();
    for (p, off, key) in ok.iter() {
        let i: usize = std::str::from_utf8(&key[4..])
            .expect("utf8 key")
            .parse()
            .expect("key index");
        assert_eq!(
            *p,
            message(i, base_ts).0,
            "message {i} went to partition {p}"
        );
        offsets.entry(*p).or_default().push((i, *off));
    }
    for (p, mut v) in offsets {
        v.sort();
        for (k, (i, off)) in v.iter().enumerate() {
            assert_eq!(
                *off, k as i64,
                "partition {p}: message {i}, the {k}th produced, was acknowledged at offset {off}"
            );
        }
    }
}

fn consumer(broker: &Broker) -> BaseConsumer {
    client_config(broker)
        .set("group.id", "ringbroker-tests")
        .set("enable.auto.commit", "false")
        .set("enable.auto.offset.store", "false")
        .set("enable.partition.eof", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("create consumer")
}

/// Reads every partition from offset 0 (assign, no group) and checks every message.
fn consume_and_check(broker: &Broker, topic: &str, want: &BTreeMap<i32, Vec<Expected>>) {
    let consumer = consumer(broker);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");

    let started = Instant::now();
    let mut got: BTreeMap<i32, Vec<(i64, Expected)>> = BTreeMap::new();
    let mut total = 0usize;
    while total < MESSAGES {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "consumed only {total} of {MESSAGES} messages in 120 s: {:?}",
            got.iter().map(|(p, v)| (*p, v.len())).collect::<Vec<_>>()
        );
        let Some(res) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = res.expect("consumer error");
        assert_eq!(m.topic(), topic);
        let have = got.get(&m.partition()).map_or(0, Vec::len) as i64;
        assert_eq!(
            m.offset(),
            have,
            "partition {}: offsets must be contiguous from 0 (gap, repeat or reorder)",
            m.partition()
        );
        let headers = m
            .headers()
            .map(|h| {
                h.iter()
                    .map(|h| (h.key.to_string(), h.value.map(<[u8]>::to_vec)))
                    .collect()
            })
            .unwrap_or_default();
        let ts = match m.timestamp() {
            Timestamp::CreateTime(t) => t,
            other => panic!(
                "partition {} offset {}: timestamp {other:?}",
                m.partition(),
                m.offset()
            ),
        };
        got.entry(m.partition()).or_default().push((
            m.offset(),
            Expected {
                key: m.key().unwrap_or_default().to_vec(),
                value: m.payload().map(<[u8]>::to_vec),
                headers,
                timestamp: ts,
            },
        ));
        total += 1;
    }
    eprintln!("consumed {total} messages in {:?}", started.elapsed());

    for (p, want_p) in want {
        let got_p = got.get(p).map(Vec::as_slice).unwrap_or_default();
        assert_eq!(got_p.len(), want_p.len(), "partition {p}: message count");
        for (k, ((off, g), w)) in got_p.iter().zip(want_p).enumerate() {
            assert_eq!(
                *off, k as i64,
                "partition {p}: offsets must be contiguous from 0"
            );
            assert_eq!(g, w, "partition {p} offset {off}");
        }
    }
    // Nothing more arrives after the last message.
    if let Some(Ok(m)) = consumer.poll(Duration::from_millis(1000)) {
        panic!(
            "unexpected extra message at partition {} offset {}",
            m.partition(),
            m.offset()
        );
    }
}

/// ListOffsets by timestamp and the watermarks, through librdkafka.
fn check_offsets(broker: &Broker, topic: &str, want: &BTreeMap<i32, Vec<Expected>>) {
    let consumer = consumer(broker);
    for (p, w) in want {
        let (low, high) = consumer
            .fetch_watermarks(topic, *p, TIMEOUT)
            .expect("fetch_watermarks");
        assert_eq!((low, high), (0, w.len() as i64), "partition {p} watermarks");
    }

    // Probes: (timestamp for partition p, expected offset) per partition.
    type Probe = fn(&[Expected]) -> (i64, Offset);
    let probes: [(&str, Probe); 6] = [
        ("before the first", |w| {
            (w[0].timestamp - 10_000, Offset::Offset(0))
        }),
        ("the first", |w| (w[0].timestamp, Offset::Offset(0))),
        ("just after the first", |w| {
            (w[0].timestamp + 1, Offset::Offset(1))
        }),
        ("exactly a middle one", |w| {
            let k = w.len() / 2;
            (w[k].timestamp, Offset::Offset(k as i64))
        }),
        ("the last", |w| {
            let k = w.len() - 1;
            (w[k].timestamp, Offset::Offset(k as i64))
        }),
        ("after the last", |w| {
            (w[w.len() - 1].timestamp + 1, Offset::End)
        }),
    ];
    for (what, probe) in probes {
        let mut tpl = TopicPartitionList::new();
        let mut expect = BTreeMap::new();
        for (p, w) in want {
            let (ts, off) = probe(w);
            tpl.add_partition_offset(topic, *p, Offset::Offset(ts))
                .expect("add partition");
            expect.insert(*p, off);
        }
        let res = consumer
            .offsets_for_times(tpl, TIMEOUT)
            .expect("offsets_for_times");
        for e in res.elements() {
            assert_eq!(
                e.error(),
                Ok(()),
                "offsets_for_times partition {}",
                e.partition()
            );
            assert_eq!(
                e.offset(),
                expect[&e.partition()],
                "offsets_for_times({what}) partition {}",
                e.partition()
            );
        }
        assert_eq!(
            res.count(),
            want.len(),
            "offsets_for_times answered all partitions"
        );
    }
}

/// `compression`: the producer's `compression.type`; the broker stores batches as sent.
/// The settings really took effect: Kafka's directory layout, segments rolled at
/// `log.segment.bytes`, and the segment files opened with O_DIRECT exactly when
/// `log.io=direct`.
fn check_files(broker: &Broker, topic: &str, sets: &[&str]) {
    let segment_bytes: Option<u64> = sets
        .iter()
        .find_map(|s| s.strip_prefix("log.segment.bytes="))
        .map(|v| v.parse().expect("segment bytes"));
    for p in 0..PARTITIONS {
        let dir = broker.data_dir().join(format!("{topic}-{p}"));
        let mut logs: Vec<(String, u64)> = std::fs::read_dir(&dir)
            .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
            .flatten()
            .filter_map(|e| {
                let name = e.file_name().to_string_lossy().to_string();
                let len = e.metadata().ok()?.len();
                name.ends_with(".log").then_some((name, len))
            })
            .collect();
        logs.sort();
        assert!(!logs.is_empty(), "{}: no .log segment", dir.display());
        assert_eq!(
            logs[0].0, "00000000000000000000.log",
            "first segment of partition {p}"
        );
        for (name, _) in &logs {
            let stem = name.trim_end_matches(".log");
            assert!(
                stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()),
                "segment name {name}"
            );
        }
        if let Some(max) = segment_bytes {
            assert!(
                logs.len() >= 3,
                "partition {p}: ~4 MB with log.segment.bytes={max} should make several segments, found {logs:?}"
            );
        }
    }
    let direct = sets.contains(&"log.io=direct");
    let open = broker.open_files(".log");
    // The descriptors the broker writes through; read-only ones may use the page cache.
    let writable: Vec<_> = open
        .iter()
        .filter(|(_, flags)| flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32)
        .collect();
    assert!(
        !writable.is_empty(),
        "the broker has no .log file open for writing: {open:?}"
    );
    if !direct {
        for (path, flags) in &open {
            assert_eq!(
                flags & libc::O_DIRECT as u32,
                0,
                "{} opened with O_DIRECT under log.io=buffered",
                path.display()
            );
        }
    }
    for (path, flags) in writable {
        assert_eq!(
            flags & libc::O_DIRECT as u32 != 0,
            direct,
            "{} opened with flags {flags:o}; log.io=direct is {direct}",
            path.display()
        );
    }
}

fn run(sets: &[&str], compression: &str, crash_too: bool) {
    let _serial = common::heavy_lock();
    let mut broker = Broker::start(sets);
    let topic = "events";
    // An hour ago: well inside any retention, and clearly not the broker's append time.
    let base_ts = common::now_ms() - 3_600_000;
    let want = expected(base_ts);

    let admin = create_topic(&broker, topic);
    produce_all(&broker, topic, base_ts, compression);
    check_files(&broker, topic, sets);
    consume_and_check(&broker, topic, &want);
    check_offsets(&broker, topic, &want);

    // Graceful restart with a client still connected: everything is still there.
    broker.restart();
    drop(admin);
    consume_and_check(&broker, topic, &want);
    check_offsets(&broker, topic, &want);

    if crash_too {
        // A crash (SIGKILL) after a graceful restart loses nothing already acknowledged.
        broker.kill();
        broker.start_again();
        consume_and_check(&broker, topic, &want);
        check_offsets(&broker, topic, &want);
    }
    broker.stop();
}

#[test]
fn buffered_io() {
    run(&["log.io=buffered"], "none", false);
}

/// Small segments: about 25 rolls, reads and timestamp lookups across segment boundaries.
#[test]
fn direct_io_small_segments() {
    run(
        &["log.io=direct", "log.segment.bytes=1048576"],
        "none",
        false,
    );
}

/// Written, restarted gracefully, then SIGKILLed with nothing in flight: the data read back
/// through a second recovery is the same. SIGKILL keeps the page cache, so this checks
/// recovery of a cleanly written log, not fsync; power loss is `tests/power_cut.rs`.
#[test]
fn direct_io_recovers_after_restart_and_sigkill() {
    run(&["log.io=direct", "log.flush=fsync"], "none", true);
}

/// lz4-compressed batches from librdkafka, stored as sent; ListOffsets by timestamp must
/// still find the exact record inside a compressed batch.
#[test]
fn buffered_io_lz4_batches() {
    run(&["log.io=buffered", "log.flush=interval"], "lz4", false);
}

/// A consumer tails the partitions while a producer writes (read-while-write: long polls
/// woken by appends, the unflushed tail, segment rolls under a reader), with direct I/O.
#[test]
fn live_tail_direct_io() {
    const LIVE: usize = 30_000;
    let _serial = common::heavy_lock();
    let broker = Broker::start(&["log.io=direct", "log.segment.bytes=524288"]);
    let topic = "live";
    let _admin = create_topic(&broker, topic);
    let base_ts = common::now_ms() - 60_000;

    let consumer = consumer(&broker);
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");

    let bootstrap = broker.bootstrap();
    let producer_thread = std::thread::spawn(move || {
        let producer: ThreadedProducer<Deliveries> = ClientConfig::new()
            .set("bootstrap.servers", &bootstrap)
            .set("broker.address.family", "v4")
            .set("acks", "all")
            .set("linger.ms", "1")
            .set("enable.idempotence", "false")
            .create_with_context(Deliveries::default())
            .expect("create producer");
        for i in 0..LIVE {
            let (p, m) = message(i, base_ts);
            let mut record = BaseRecord::to(topic)
                .partition(p)
                .key(&m.key)
                .timestamp(m.timestamp);
            if let Some(v) = &m.value {
                record = record.payload(v);
            }
            producer.send(record).map_err(|(e, _)| e).expect("enqueue");
            // Trickle rather than burst, so the consumer really reads a moving tail.
            if i % 500 == 499 {
                producer.flush(Duration::from_secs(60)).expect("flush");
            }
        }
        producer.flush(Duration::from_secs(60)).expect("flush");
        let failed = producer.context().failed.lock().expect("lock").len();
        assert_eq!(failed, 0, "failed deliveries");
    });

    let started = Instant::now();
    let mut next: BTreeMap<i32, i64> = BTreeMap::new();
    let mut total = 0;
    while total < LIVE {
        assert!(
            started.elapsed() < Duration::from_secs(120),
            "tailed only {total} of {LIVE} messages in 120 s: {next:?}"
        );
        let Some(res) = consumer.poll(Duration::from_millis(500)) else {
            continue;
        };
        let m = res.expect("consumer error");
        let p = m.partition();
        let want_off = next.entry(p).or_insert(0);
        assert_eq!(
            m.offset(),
            *want_off,
            "partition {p}: contiguous while tailing"
        );
        // The k-th message of partition p is message p + k * PARTITIONS.
        let i = p as usize + (*want_off as usize) * PARTITIONS as usize;
        let (_, want) = message(i, base_ts);
        assert_eq!(
            m.key(),
            Some(want.key.as_slice()),
            "partition {p} offset {want_off}"
        );
        assert_eq!(
            m.payload().map(<[u8]>::to_vec),
            want.value,
            "partition {p} offset {want_off}"
        );
        *want_off += 1;
        total += 1;
    }
    producer_thread.join().expect("producer thread");
}
