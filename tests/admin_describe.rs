//! Read-only admin APIs against the real binary: ListOffsets v7-v10 (the record with the
//! largest timestamp, the earliest local and latest tiered offsets), DescribeCluster v0-v2
//! and DescribeProducers, over the raw protocol and through kafka-python, which must read
//! the broker as a recent Kafka release from its ApiVersions.

mod common;

use common::kafka::{self, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use common::{Broker, RawClient};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::{
    BrokerId, DescribeClusterRequest, DescribeProducersRequest, InitProducerIdRequest,
    ListOffsetsRequest, ProducerId, describe_producers_request as dp,
};
use ringbroker::protocol::batch::{set_producer, testing::build_batch};

const MISMATCHED_ENDPOINT_TYPE: i16 = 114;
/// The cluster operations Kafka allows when no authorizer runs: CREATE, ALTER, DESCRIBE,
/// CLUSTER_ACTION, DESCRIBE_CONFIGS, ALTER_CONFIGS, IDEMPOTENT_WRITE.
const ALL_CLUSTER_OPERATIONS: i32 = 0b1_1111_1010_0000;

/// (error, offset, timestamp, leader epoch) of one partition at `spec`.
fn list_offsets(
    c: &mut RawClient,
    version: i16,
    topic: &str,
    partition: i32,
    spec: i64,
) -> (i16, i64, i64, i32) {
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_timeout_ms(5000)
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(kafka::topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(partition)
                        .with_timestamp(spec),
                ]),
        ]);
    let resp = c.call(version, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.offset, p.timestamp, p.leader_epoch)
}

#[test]
fn list_offsets_finds_the_largest_timestamp_and_answers_the_tiered_specs() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let (min, max) = c.versions()[&2];
    assert_eq!((min, max), (1, 10), "ListOffsets range");
    kafka::create_topic(&mut c, "stamps", 2);
    let t0 = common::recent_ts();
    // Offsets 0-3 at t0, t0+300, t0+200, t0+300 again, and offsets 4-5 in one batch at
    // t0+100 and t0+101 (a batch's records are a millisecond apart). The first record
    // that holds the largest timestamp is offset 1.
    for ts in [t0, t0 + 300, t0 + 200, t0 + 300] {
        let (err, _) = kafka::produce_one(&mut c, "stamps", 0, build_batch(&[b"a"], ts));
        assert_eq!(err, NONE);
    }
    let (err, _) = kafka::produce_one(&mut c, "stamps", 0, build_batch(&[b"a", b"b"], t0 + 100));
    assert_eq!(err, NONE);
    for v in 7..=10 {
        assert_eq!(
            list_offsets(&mut c, v, "stamps", 0, -3),
            (NONE, 1, t0 + 300, 0),
            "MAX_TIMESTAMP v{v}"
        );
        // An empty partition has no such record.
        assert_eq!(
            list_offsets(&mut c, v, "stamps", 1, -3),
            (NONE, -1, -1, -1),
            "MAX_TIMESTAMP of an empty partition v{v}"
        );
        assert_eq!(list_offsets(&mut c, v, "stamps", 0, -1).1, 6, "LATEST v{v}");
        assert_eq!(
            list_offsets(&mut c, v, "stamps", 0, -2).1,
            0,
            "EARLIEST v{v}"
        );
        assert_eq!(
            list_offsets(&mut c, v, "nope", 0, -3).0,
            UNKNOWN_TOPIC_OR_PARTITION
        );
    }
    for v in 8..=10 {
        // Every segment is local: the earliest local offset is the log start.
        assert_eq!(
            list_offsets(&mut c, v, "stamps", 0, -4),
            (NONE, 0, -1, 0),
            "EARLIEST_LOCAL v{v}"
        );
    }
    for v in 9..=10 {
        // Nothing is tiered, which Kafka answers with offset -1.
        assert_eq!(
            list_offsets(&mut c, v, "stamps", 0, -5),
            (NONE, -1, -1, -1),
            "LATEST_TIERED v{v}"
        );
    }
    // A plain timestamp still finds the first record at or after it, inside a batch too.
    assert_eq!(list_offsets(&mut c, 10, "stamps", 0, t0 + 250).1, 1);
    assert_eq!(list_offsets(&mut c, 10, "stamps", 0, t0 + 101).1, 1);
    assert_eq!(list_offsets(&mut c, 10, "stamps", 0, t0 + 301).1, -1);
}

#[test]
fn describe_cluster_names_the_broker_and_refuses_the_controller_endpoint() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let port = i32::from(broker.addr().port());
    for v in 0..=2 {
        let resp = c.call(
            v,
            &DescribeClusterRequest::default()
                .with_include_cluster_authorized_operations(v == 1)
                .with_endpoint_type(1)
                .with_include_fenced_brokers(v == 2),
        );
        assert_eq!(resp.error_code, NONE, "v{v}");
        assert_eq!(resp.cluster_id.as_str(), "ringbroker");
        assert_eq!(resp.controller_id, BrokerId(0));
        assert_eq!(resp.brokers.len(), 1, "v{v}: {:?}", resp.brokers);
        let b = &resp.brokers[0];
        assert_eq!(
            (b.broker_id, b.host.as_str(), b.port),
            (BrokerId(0), "127.0.0.1", port)
        );
        assert!(!b.is_fenced);
        let ops = if v == 1 {
            ALL_CLUSTER_OPERATIONS
        } else {
            i32::MIN
        };
        assert_eq!(resp.cluster_authorized_operations, ops, "v{v}");
    }
    // v1+ asks for an endpoint type: this listener serves brokers, not controllers.
    for v in 1..=2 {
        let resp = c.call(v, &DescribeClusterRequest::default().with_endpoint_type(2));
        assert_eq!(resp.error_code, MISMATCHED_ENDPOINT_TYPE, "v{v}");
        assert!(resp.error_message.is_some());
        assert!(resp.brokers.is_empty());
    }
    // The connection survived the refusal.
    assert_eq!(kafka::metadata(&mut c, &[]).brokers.len(), 1);
}

/// A producer as DescribeProducers shows it: (id, epoch, last sequence, last timestamp).
type Producer = (i64, i32, i32, i64);

/// (partition, error, its producers) for each partition asked.
fn producers(
    c: &mut RawClient,
    topic: &str,
    partitions: Vec<i32>,
) -> Vec<(i32, i16, Vec<Producer>)> {
    let req = DescribeProducersRequest::default().with_topics(vec![
        dp::TopicRequest::default()
            .with_name(kafka::topic_name(topic))
            .with_partition_indexes(partitions),
    ]);
    let resp = c.call(0, &req);
    resp.topics[0]
        .partitions
        .iter()
        .map(|p| {
            let list = p
                .active_producers
                .iter()
                .map(|a| {
                    // No transactions: no coordinator and no open transaction.
                    assert_eq!((a.coordinator_epoch, a.current_txn_start_offset), (-1, -1));
                    (
                        a.producer_id.0,
                        a.producer_epoch,
                        a.last_sequence,
                        a.last_timestamp,
                    )
                })
                .collect();
            (p.partition_index, p.error_code, list)
        })
        .collect()
}

#[test]
fn describe_producers_shows_each_idempotent_producer_and_survives_a_restart() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "ids", 3);
    let mut pids = Vec::new();
    for _ in 0..2 {
        let v = c.pick_version::<InitProducerIdRequest>(4);
        let resp = c.call(
            v,
            &InitProducerIdRequest::default()
                .with_transaction_timeout_ms(60_000)
                .with_producer_id(ProducerId(-1))
                .with_producer_epoch(-1),
        );
        assert_eq!(resp.error_code, NONE);
        pids.push((resp.producer_id.0, resp.producer_epoch));
    }
    let t0 = common::recent_ts();
    // Producer A: sequences 0-2 then 3-4 on partition 0; producer B: 0-1 on partition 0.
    // Partition 1 gets a plain (non-idempotent) batch, partition 2 nothing.
    let sends: [(usize, i32, usize, i64); 3] =
        [(0, 0, 3, t0), (1, 0, 2, t0 + 5), (0, 3, 2, t0 + 9)];
    for (who, seq, n, ts) in sends {
        let values: Vec<&[u8]> = (0..n).map(|_| b"v".as_slice()).collect();
        let mut b = build_batch(&values, ts);
        set_producer(&mut b, pids[who].0, pids[who].1, seq);
        assert_eq!(kafka::produce_one(&mut c, "ids", 0, b).0, NONE);
    }
    let (err, _) = kafka::produce_one(&mut c, "ids", 1, build_batch(&[b"plain"], t0));
    assert_eq!(err, NONE);

    // A batch's last timestamp is its largest: its records are a millisecond apart.
    let mut want_p0 = vec![
        (pids[0].0, i32::from(pids[0].1), 4, t0 + 10),
        (pids[1].0, i32::from(pids[1].1), 1, t0 + 6),
    ];
    want_p0.sort();
    let expected = vec![
        (0, NONE, want_p0),
        (1, NONE, vec![]),
        (2, NONE, vec![]),
        (7, UNKNOWN_TOPIC_OR_PARTITION, vec![]),
    ];
    assert_eq!(producers(&mut c, "ids", vec![0, 1, 2, 7]), expected);
    assert_eq!(
        producers(&mut c, "missing", vec![0]),
        vec![(0, UNKNOWN_TOPIC_OR_PARTITION, vec![])]
    );

    // The state is rebuilt from the log on restart, timestamps included.
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(producers(&mut c, "ids", vec![0, 1, 2, 7]), expected);
}

#[test]
fn kafka_python_reads_a_recent_kafka_and_uses_the_new_apis() {
    common::ensure_kafka_python();
    let broker = Broker::start(&[]);
    let out = common::run_python("admin_describe.py", &[&broker.bootstrap()]);
    assert!(out.contains("reads the broker as (4, 0)"), "{out}");
}

/// A second client family: confluent-kafka's AdminClient (librdkafka) describes the cluster,
/// alters and reads back a config, adds partitions and produces to one, finds the record
/// with the largest timestamp and deletes records.
#[test]
fn confluent_kafka_admin_client_describes_alters_grows_and_trims() {
    common::ensure_python_module("confluent_kafka", "confluent-kafka");
    let broker = Broker::start(&[]);
    common::run_python("admin_confluent.py", &[&broker.bootstrap()]);
}
