//! Producer state snapshots under the real binary: librdkafka's idempotent producer writes
//! a log that rolls many small segments (each roll writes `<offset>.snapshot`), plain
//! batches push its last batches below the newest snapshot, and the broker restarts. The
//! producer state comes back from the snapshot: DescribeProducers shows the producer as
//! before, retries of its last batches (sent again byte for byte) are answered as
//! duplicates with their original offsets, and the same librdkafka producer goes on
//! writing after the restart with every message in the log exactly once, in order.

mod common;

use std::path::Path;
use std::time::Duration;

use common::Broker;
use common::RawClient;
use common::kafka::*;
use kafka_protocol::messages::describe_producers_request as dp;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, DescribeProducersRequest, FetchRequest, FetchResponse};
use rdkafka::config::ClientConfig;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use ringbroker::protocol::batch::{self, BatchHeader, testing::build_batch};

const TOPIC: &str = "snaps";

/// (producer id, epoch, last sequence) of each producer DescribeProducers shows.
fn producers(c: &mut RawClient) -> Vec<(i64, i32, i32)> {
    let req = DescribeProducersRequest::default().with_topics(vec![
        dp::TopicRequest::default()
            .with_name(topic_name(TOPIC))
            .with_partition_indexes(vec![0]),
    ]);
    let resp = c.call(0, &req);
    let p = &resp.topics[0].partitions[0];
    assert_eq!(p.error_code, NONE);
    p.active_producers
        .iter()
        .map(|a| (a.producer_id.0, a.producer_epoch, a.last_sequence))
        .collect()
}

/// Every batch of the partition as stored: (header, bytes).
fn stored_batches(c: &mut RawClient) -> Vec<(BatchHeader, Vec<u8>)> {
    let mut out = Vec::new();
    let mut next = 0;
    loop {
        let req = FetchRequest::default()
            .with_replica_id(BrokerId(-1))
            .with_max_wait_ms(0)
            .with_min_bytes(0)
            .with_max_bytes(8 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                FetchTopic::default()
                    .with_topic(topic_name(TOPIC))
                    .with_partitions(vec![
                        FetchPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(-1)
                            .with_fetch_offset(next)
                            .with_last_fetched_epoch(-1)
                            .with_log_start_offset(-1)
                            .with_partition_max_bytes(1 << 20),
                    ]),
            ]);
        let resp: FetchResponse = c.call(12, &req);
        let p = &resp.responses[0].partitions[0];
        assert_eq!(p.error_code, NONE);
        let bytes = p.records.clone().unwrap_or_default();
        if bytes.is_empty() {
            return out;
        }
        let batches = batch::validate_batches(&bytes).expect("whole batches");
        for (h, range) in batches {
            next = h.last_offset() + 1;
            out.push((h, bytes[range].to_vec()));
        }
    }
}

fn snapshot_offsets(dir: &Path) -> Vec<i64> {
    let mut out: Vec<i64> = std::fs::read_dir(dir)
        .expect("partition dir")
        .flatten()
        .filter_map(|e| {
            let name = e.file_name().to_string_lossy().to_string();
            name.strip_suffix(".snapshot")?.parse().ok()
        })
        .collect();
    out.sort_unstable();
    out
}

fn send_all(producer: &ThreadedProducer<DefaultProducerContext>, from: usize, to: usize) {
    for i in from..to {
        let payload = format!("m-{i:06}-{}", "p".repeat(80));
        let mut record = BaseRecord::<(), _>::to(TOPIC)
            .partition(0)
            .payload(&payload);
        loop {
            match producer.send(record) {
                Ok(()) => break,
                Err((_, r)) => {
                    record = r;
                    std::thread::sleep(Duration::from_millis(5));
                }
            }
        }
        if i % 200 == 0 {
            // Many small produce requests, so the producer has many batches.
            std::thread::sleep(Duration::from_millis(10));
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("every message delivered");
}

#[test]
fn an_idempotent_producer_is_deduplicated_after_a_restart_from_a_snapshot() {
    let _heavy = common::heavy_lock();
    let mut broker = Broker::start(&["log.segment.bytes=16384"]);
    let mut c = RawClient::connect(broker.addr());
    create_topic(&mut c, TOPIC, 1);
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("acks", "all")
        .set("linger.ms", "2")
        .set("batch.num.messages", "50")
        .set("message.timeout.ms", "60000")
        .create()
        .expect("create producer");
    send_all(&producer, 0, 2_000);

    // Plain batches after it: the producer's last batches end up below the newest
    // snapshot, so the open does not read them and only the snapshot can know them.
    let ts = common::recent_ts();
    let filler = vec![b'f'; 2_000];
    for _ in 0..40 {
        let (err, _) = produce_one(&mut c, TOPIC, 0, build_batch(&[&filler, &filler], ts));
        assert_eq!(err, NONE);
    }
    let end = latest_offset(&mut c, TOPIC, 0);
    let before = producers(&mut c);
    assert_eq!(before.len(), 1, "{before:?}");
    let (pid, epoch, last_seq) = before[0];
    let mine: Vec<(BatchHeader, Vec<u8>)> = stored_batches(&mut c)
        .into_iter()
        .filter(|(h, _)| h.producer_id == pid)
        .collect();
    assert!(mine.len() > 20, "librdkafka sent {} batches", mine.len());
    let last = &mine[mine.len() - 1];
    let older = &mine[mine.len() - 3];
    assert_eq!(last.0.base_sequence + last.0.last_offset_delta, last_seq);
    let dir = broker.data_dir().join(format!("{TOPIC}-0"));
    let snaps = snapshot_offsets(&dir);
    assert!(!snaps.is_empty() && snaps.len() <= 3, "{snaps:?}");
    let newest = *snaps.last().expect("a snapshot");
    assert!(
        newest > last.0.last_offset(),
        "the newest snapshot ({newest}) is past the producer's last batch"
    );
    drop(c);

    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(latest_offset(&mut c, TOPIC, 0), end);
    assert_eq!(producers(&mut c), vec![(pid, epoch, last_seq)]);
    // Retries of its batches, byte for byte as the broker stored them: duplicates,
    // answered with their offsets, nothing appended.
    for (h, bytes) in [last, older] {
        assert_eq!(
            produce_one(&mut c, TOPIC, 0, bytes.clone()),
            (NONE, h.base_offset),
            "a retry of the batch at {} after the restart",
            h.base_offset
        );
    }
    assert_eq!(latest_offset(&mut c, TOPIC, 0), end);
    // A sequence gap is still refused: the broker knows where the producer is.
    let mut gap = build_batch(&[b"gap"], ts);
    batch::set_producer(&mut gap, pid, epoch as i16, last_seq + 5);
    assert_eq!(
        produce_one(&mut c, TOPIC, 0, gap).0,
        45,
        "OUT_OF_ORDER_SEQUENCE"
    );

    // The same librdkafka producer goes on after the restart.
    send_all(&producer, 2_000, 2_500);
    drop(producer);
    let values: Vec<String> = fetch_all(&mut c, TOPIC, 0, 0)
        .into_iter()
        .filter_map(|r| r.value.map(|v| String::from_utf8_lossy(&v).to_string()))
        .filter(|v| v.starts_with("m-"))
        .collect();
    let want: Vec<String> = (0..2_500)
        .map(|i| format!("m-{i:06}-{}", "p".repeat(80)))
        .collect();
    assert_eq!(values.len(), want.len(), "each message once");
    assert!(values == want, "in order");
}
