//! The consumer path with a real client (librdkafka): 1 GiB read across partitions while
//! producers write, byte for byte, in both io modes; the broker's counters show which path
//! carried the bytes (sendfile in `io=buffered`, the batch cache in `io=direct`); and a
//! consumer waiting at the log end is woken by a produce (its latency is printed, not
//! asserted).

mod common;

use common::Broker;
use rdkafka::ClientConfig;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseProducer, BaseRecord, Producer};
use rdkafka::{Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const PARTITIONS: i32 = 4;
const VALUE_BYTES: usize = 64 * 1024 - 100;
/// Total bytes produced and consumed per run.
const TOTAL_BYTES: usize = 1 << 30;

fn config(broker: &Broker) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", broker.bootstrap());
    c
}

fn create_topic(broker: &Broker, topic: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = config(broker).create().expect("admin");
    let rt = futures::executor::block_on(admin.create_topics(
        &[NewTopic::new(topic, partitions, TopicReplication::Fixed(1))],
        &AdminOptions::new().operation_timeout(Some(Duration::from_secs(10))),
    ))
    .expect("create topics");
    for r in rt {
        r.expect("topic created");
    }
}

/// Deterministic value of message `seq` of `partition`: a header naming both, then bytes
/// from a xorshift stream, so corruption or misplacement anywhere is caught.
fn value(partition: i32, seq: u64) -> Vec<u8> {
    let mut v = Vec::with_capacity(VALUE_BYTES);
    v.extend_from_slice(&(partition as u64).to_be_bytes());
    v.extend_from_slice(&seq.to_be_bytes());
    let mut x = (partition as u64 + 1).wrapping_mul(0x9e37_79b9_7f4a_7c15)
        ^ seq.wrapping_mul(0xbf58_476d_1ce4_e5b9);
    while v.len() < VALUE_BYTES {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        v.extend_from_slice(&x.to_le_bytes());
    }
    v.truncate(VALUE_BYTES);
    v
}

/// Sums the last reported counters of each shard from the broker's log.
fn counters(log: &str) -> BTreeMap<String, u64> {
    let mut last_per_shard: BTreeMap<String, &str> = BTreeMap::new();
    for line in log.lines() {
        if let Some(at) = line.find("bytes sent by path:") {
            let shard = line[..at]
                .rsplit("shard ")
                .next()
                .unwrap_or("")
                .trim_end_matches(": ")
                .to_string();
            last_per_shard.insert(shard, &line[at..]);
        }
    }
    let mut sum = BTreeMap::new();
    for line in last_per_shard.values() {
        for field in line.split_whitespace() {
            let field = field.trim_matches(|c| c == '(' || c == ')' || c == ';');
            if let Some((k, v)) = field.split_once('=')
                && let Ok(n) = v.parse::<u64>()
            {
                *sum.entry(k.to_string()).or_insert(0) += n;
            }
        }
    }
    sum
}

fn stream_gigabyte(io: &str) {
    let mut broker = Broker::start(&[&format!("log.io={io}")]);
    let topic = "stream";
    create_topic(&broker, topic, PARTITIONS);
    let per_partition = (TOTAL_BYTES / VALUE_BYTES) as u64 / PARTITIONS as u64;

    let producer_broker = broker.bootstrap();
    let producer = std::thread::spawn(move || {
        let p: BaseProducer = ClientConfig::new()
            .set("bootstrap.servers", &producer_broker)
            .set("acks", "1")
            .set("linger.ms", "5")
            .set("batch.size", "1000000")
            .set("queue.buffering.max.kbytes", "262144")
            .create()
            .expect("producer");
        for seq in 0..per_partition {
            for partition in 0..PARTITIONS {
                let key = seq.to_be_bytes();
                let v = value(partition, seq);
                let mut record = BaseRecord::to(topic)
                    .partition(partition)
                    .key(&key[..])
                    .payload(&v);
                loop {
                    match p.send(record) {
                        Ok(()) => break,
                        Err((_, r)) => {
                            // Queue full: let deliveries drain, then retry.
                            record = r;
                            p.poll(Duration::from_millis(5));
                        }
                    }
                }
            }
            p.poll(Duration::ZERO);
        }
        p.flush(Duration::from_secs(120)).expect("all delivered");
    });

    let consumer: BaseConsumer = config(&broker)
        .set("group.id", "zero-copy-test")
        .set("enable.auto.commit", "false")
        .set("fetch.max.bytes", "16777216")
        .set("max.partition.fetch.bytes", "4194304")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(topic, p, Offset::Beginning)
            .expect("assign");
    }
    consumer.assign(&tpl).expect("assign");
    let mut next = vec![0u64; PARTITIONS as usize];
    let mut received = 0u64;
    let mut bytes = 0u64;
    let want = per_partition * PARTITIONS as u64;
    let start = Instant::now();
    let deadline = start + Duration::from_secs(300);
    while received < want {
        assert!(
            Instant::now() < deadline,
            "consumed {received} of {want} messages in time"
        );
        let Some(m) = consumer.poll(Duration::from_millis(200)) else {
            continue;
        };
        let m = m.expect("consume");
        let p = m.partition();
        let seq = u64::from_be_bytes(m.key().expect("key").try_into().expect("8-byte key"));
        assert_eq!(
            seq, next[p as usize],
            "partition {p} delivers in order, no gaps"
        );
        assert_eq!(m.offset() as u64, seq, "offsets follow produce order");
        let payload = m.payload().expect("payload");
        assert!(
            payload == value(p, seq).as_slice(),
            "partition {p} message {seq} is byte-for-byte equal"
        );
        next[p as usize] += 1;
        received += 1;
        bytes += payload.len() as u64;
    }
    producer.join().expect("producer thread");
    let secs = start.elapsed().as_secs_f64();
    println!(
        "io={io}: consumed {} MiB in {secs:.1} s ({:.0} MiB/s) while producing",
        bytes >> 20,
        bytes as f64 / secs / (1 << 20) as f64
    );
    drop(consumer);
    broker.stop();
    let c = counters(&broker.log());
    println!("io={io}: broker counters {c:?}");
    let get = |k: &str| c.get(k).copied().unwrap_or(0);
    assert!(
        get("sendfile") + get("writev") + get("fallback") >= bytes,
        "counted what was sent"
    );
    match io {
        "buffered" => assert!(
            get("sendfile") > get("fallback") && get("sendfile") > bytes / 2,
            "sendfile carries most fetched bytes in io=buffered: {c:?}"
        ),
        _ => assert!(
            get("cache_hit") > get("cache_miss") && get("cache_hit") > bytes / 2,
            "the batch cache serves most hot reads in io=direct: {c:?}"
        ),
    }
}

#[test]
fn one_gigabyte_while_producing_buffered() {
    let _heavy = common::heavy_lock();
    stream_gigabyte("buffered");
}

#[test]
fn one_gigabyte_while_producing_direct() {
    let _heavy = common::heavy_lock();
    stream_gigabyte("direct");
}

/// A consumer parked at the log end (long poll) gets a new message soon after its produce
/// is acknowledged. The latency is reported, not asserted.
#[test]
fn long_poll_wakes_a_waiting_consumer() {
    let _heavy = common::heavy_lock();
    let broker = Broker::start(&[]);
    let topic = "tail";
    create_topic(&broker, topic, 1);
    let consumer: BaseConsumer = config(&broker)
        .set("group.id", "tail-test")
        .set("enable.auto.commit", "false")
        // A long wait: the broker must answer on arrival, not at the timer.
        .set("fetch.wait.max.ms", "5000")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::End)
        .expect("assign");
    consumer.assign(&tpl).expect("assign");
    let producer: BaseProducer = config(&broker)
        .set("acks", "all")
        .set("linger.ms", "0")
        .create()
        .expect("producer");
    // Let the consumer reach the end and park its fetch.
    let _ = consumer.poll(Duration::from_millis(1500));
    let mut latencies_us = Vec::new();
    for i in 0..30u32 {
        let payload = i.to_be_bytes();
        producer
            .send(BaseRecord::<(), _>::to(topic).payload(&payload[..]))
            .map_err(|(e, _)| e)
            .expect("send");
        producer
            .flush(Duration::from_secs(10))
            .expect("acknowledged");
        let acked = Instant::now();
        let m = loop {
            if let Some(m) = consumer.poll(Duration::from_millis(100)) {
                break m.expect("consume");
            }
            assert!(
                acked.elapsed() < Duration::from_secs(20),
                "message {i} arrived"
            );
        };
        latencies_us.push(acked.elapsed().as_micros() as u64);
        assert_eq!(m.payload(), Some(&payload[..]));
    }
    latencies_us.sort_unstable();
    println!(
        "long-poll wake-up after the produce ack: p50 {} us, p90 {} us, max {} us (fetch.wait.max.ms = 5000)",
        latencies_us[latencies_us.len() / 2],
        latencies_us[latencies_us.len() * 9 / 10],
        latencies_us[latencies_us.len() - 1]
    );
}

/// A consumer that asks for a large fetch and then stops reading must not stall its
/// shard: the socket fills, sendfile would block, and with one shard every other client
/// would hang behind it. The writer has to wait for room without blocking the reactor.
/// When the slow consumer reads again, its response is whole and byte-exact, and the
/// counters show the waits.
#[test]
fn a_consumer_that_stops_reading_does_not_stall_the_shard() {
    use common::RawClient;
    use common::kafka::{self, NONE};
    use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
    use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
    use kafka_protocol::protocol::Decodable;
    use ringbroker::protocol::batch::testing::batch_of_size;
    use std::io::Read;

    let _heavy = common::heavy_lock();
    let mut broker = Broker::start_with_args(vec!["--shards".into(), "1".into()]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "stall", 1);
    // 32 MiB: far more than the slow client's receive buffer plus the broker's send buffer.
    let mut produced = Vec::new();
    for i in 0..64 {
        let batch = batch_of_size(512 << 10, 16, common::recent_ts() + i);
        let (err, _) = kafka::produce_one(&mut c, "stall", 0, batch.clone());
        assert_eq!(err, NONE);
        produced.push(batch);
    }

    let mut slow = RawClient::connect(broker.addr());
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(1)
        .with_max_bytes(64 << 20)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(kafka::topic_name("stall"))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(0)
                        .with_partition_max_bytes(64 << 20),
                ]),
        ]);
    let version = 11;
    slow.send(version, &req);
    // Give the broker time to fill the socket and get stuck, if it would.
    std::thread::sleep(Duration::from_millis(500));

    // Another client on the same (only) shard is still served: a produce and a fetch of it.
    let mut other = RawClient::connect(broker.addr());
    kafka::create_topic(&mut other, "other", 1);
    let (err, base) = kafka::produce_one(
        &mut other,
        "other",
        0,
        ringbroker::protocol::batch::testing::build_batch(&[b"still served"], common::recent_ts()),
    );
    assert_eq!(err, NONE);
    let got = kafka::fetch(&mut other, "other", &[(0, base)]);
    assert_eq!(got[0].1, NONE);
    assert_eq!(got[0].3.len(), 1, "the other client's record is fetched");

    // The slow consumer now reads its whole response; every batch is intact.
    let mut len = [0u8; 4];
    slow.stream.read_exact(&mut len).expect("response length");
    let mut frame = vec![0u8; u32::from_be_bytes(len) as usize];
    slow.stream.read_exact(&mut frame).expect("response body");
    let mut body = bytes::Bytes::from(frame);
    body = body.slice(4..); // correlation id (v11 has a v0 response header)
    let resp = FetchResponse::decode(&mut body, version).expect("fetch response decodes");
    let records = resp.responses[0].partitions[0]
        .records
        .clone()
        .expect("records");
    let mut expected = Vec::new();
    let mut offset = 0i64;
    for b in &produced {
        let mut b = b.clone();
        ringbroker::protocol::batch::set_base_offset(&mut b, offset);
        offset += 16;
        expected.extend_from_slice(&b);
    }
    assert_eq!(records.len(), expected.len(), "whole log returned");
    assert!(
        records[..] == expected[..],
        "fetched bytes equal the produced batches"
    );

    broker.stop();
    let sums = counters(&broker.log());
    assert!(
        sums.get("fallbacks").copied().unwrap_or(0) >= 1,
        "the writer waited for a full socket at least once: {sums:?}"
    );
    assert!(
        sums.get("sendfile").copied().unwrap_or(0) >= expected.len() as u64 - (1 << 20),
        "the file bytes went by sendfile: {sums:?}"
    );
}
