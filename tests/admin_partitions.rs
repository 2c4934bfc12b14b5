//! CreatePartitions against the real binary: Kafka's refusals (not an increase, unknown
//! topic, bad manual assignments, duplicates, internal topics, the partition limit), each
//! with its message; `validate_only` changes nothing; new partitions take produces and
//! survive a restart; librdkafka's and kafka-python's admin clients add partitions and
//! librdkafka's producer writes to them and its consumer reads them; in a 3-broker cluster
//! the new partitions get leaders on every broker and take produces through their leaders.
//! CreateTopics with manual replica assignments (Kafka's rules for them) alone and in a
//! cluster.

#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "common/python.rs"]
mod python;

use common::kafka::{self, INVALID_REQUEST, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use common::{Broker, RawClient};
use kafka_protocol::messages::create_partitions_request::{
    CreatePartitionsAssignment, CreatePartitionsTopic,
};
use kafka_protocol::messages::create_topics_request::{CreatableReplicaAssignment, CreatableTopic};
use kafka_protocol::messages::{
    BrokerId, CreatePartitionsRequest, CreatePartitionsResponse, CreateTopicsRequest,
};
use ringbroker::protocol::batch::testing::build_batch;
use std::time::Duration;

const INVALID_PARTITIONS: i16 = 37;
const INVALID_REPLICA_ASSIGNMENT: i16 = 39;

/// One topic of a CreatePartitions request: name, new count, manual assignments.
type Grow<'a> = (&'a str, i32, Option<Vec<Vec<i32>>>);

fn request(topics: &[Grow], validate_only: bool) -> CreatePartitionsRequest {
    CreatePartitionsRequest::default()
        .with_timeout_ms(10_000)
        .with_validate_only(validate_only)
        .with_topics(
            topics
                .iter()
                .map(|(name, count, assignments)| {
                    CreatePartitionsTopic::default()
                        .with_name(kafka::topic_name(name))
                        .with_count(*count)
                        .with_assignments(assignments.as_ref().map(|a| {
                            a.iter()
                                .map(|r| {
                                    CreatePartitionsAssignment::default()
                                        .with_broker_ids(r.iter().map(|b| BrokerId(*b)).collect())
                                })
                                .collect()
                        }))
                })
                .collect(),
        )
}

/// CreatePartitions at `version`; returns (topic, error code, message) per answer.
fn grow_at(
    c: &mut RawClient,
    version: i16,
    topics: &[Grow],
    validate_only: bool,
) -> Vec<(String, i16, Option<String>)> {
    let resp: CreatePartitionsResponse = c.call(version, &request(topics, validate_only));
    resp.results
        .iter()
        .map(|r| {
            (
                r.name.0.to_string(),
                r.error_code,
                r.error_message.as_ref().map(|m| m.to_string()),
            )
        })
        .collect()
}

/// CreatePartitions of one topic at the newest version; returns (error code, message).
fn grow(c: &mut RawClient, topic: &str, count: i32) -> (i16, Option<String>) {
    let v = c.pick_version::<CreatePartitionsRequest>(3);
    let mut r = grow_at(c, v, &[(topic, count, None)], false);
    assert_eq!(r.len(), 1, "{r:?}");
    let (name, code, msg) = r.remove(0);
    assert_eq!(name, topic);
    (code, msg)
}

fn partitions(c: &mut RawClient, topic: &str) -> usize {
    let md = kafka::metadata(c, &[topic]);
    let t = md
        .topics
        .iter()
        .find(|t| t.name.as_ref().map(|n| n.0.as_str()) == Some(topic))
        .expect("topic in metadata");
    assert_eq!(t.error_code, NONE, "{topic} in metadata");
    t.partitions.len()
}

fn produce_value(c: &mut RawClient, topic: &str, partition: i32, value: &str) -> (i16, i64) {
    let batch = build_batch(&[value.as_bytes()], common::recent_ts());
    kafka::produce_one(c, topic, partition, batch)
}

#[test]
fn create_partitions_refuses_as_kafka_grows_persists_and_takes_produces() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "grow", 2);
    kafka::create_topic(&mut c, "other", 1);
    assert_eq!(c.versions().get(&37), Some(&(0, 3)), "advertised v0-3");

    // Refusals, at v0 (classic encoding) and v3 (flexible), each with Kafka's message.
    for v in [0, 3] {
        let r = grow_at(
            &mut c,
            v,
            &[
                ("grow", 2, None),
                ("grow", 2, None),
                ("other", 1, None),
                ("missing", 4, None),
                ("__consumer_offsets", 100, None),
                ("other", 1_000_000, None),
            ],
            false,
        );
        let codes: Vec<(&str, i16)> = r.iter().map(|(n, c, _)| (n.as_str(), *c)).collect();
        assert_eq!(
            codes,
            vec![
                ("grow", INVALID_REQUEST),
                ("other", INVALID_REQUEST),
                ("missing", UNKNOWN_TOPIC_OR_PARTITION),
                ("__consumer_offsets", INVALID_REQUEST),
            ],
            "v{v}: duplicates answered once with INVALID_REQUEST"
        );
        assert_eq!(r[0].2.as_deref(), Some("Duplicate topic name."));
    }
    assert_eq!(
        grow(&mut c, "grow", 2),
        (
            INVALID_PARTITIONS,
            Some("Topic already has 2 partition(s).".into())
        )
    );
    assert_eq!(
        grow(&mut c, "grow", 1),
        (
            INVALID_PARTITIONS,
            Some("The topic grow currently has 2 partition(s); 1 would not be an increase.".into())
        )
    );
    let (code, msg) = grow(&mut c, "grow", 1_000_000);
    assert_eq!(
        code, INVALID_PARTITIONS,
        "over topic.partitions.max: {msg:?}"
    );
    // Manual assignments: one per new partition, each naming this broker (node 0) once.
    for bad in [
        vec![vec![0]],
        vec![vec![0], vec![0, 0]],
        vec![vec![0], vec![3]],
        vec![vec![0], vec![]],
    ] {
        let r = grow_at(&mut c, 3, &[("grow", 4, Some(bad.clone()))], false);
        assert_eq!(r[0].1, INVALID_REPLICA_ASSIGNMENT, "{bad:?}: {r:?}");
        assert!(r[0].2.is_some(), "a message for {bad:?}");
    }
    // validate_only answers NONE and adds nothing.
    let r = grow_at(&mut c, 3, &[("grow", 5, None)], true);
    assert_eq!(r[0].1, NONE, "{r:?}");
    assert_eq!(partitions(&mut c, "grow"), 2, "validate_only added nothing");

    // The real thing: 2 -> 4 with a manual assignment, then 4 -> 5 placed by the broker.
    let r = grow_at(
        &mut c,
        3,
        &[("grow", 4, Some(vec![vec![0], vec![0]]))],
        false,
    );
    assert_eq!(r[0].1, NONE, "{r:?}");
    assert_eq!(grow(&mut c, "grow", 5), (NONE, None));
    assert_eq!(partitions(&mut c, "grow"), 5);
    for p in 0..5 {
        let (err, base) = produce_value(&mut c, "grow", p, &format!("v{p}"));
        assert_eq!((err, base), (NONE, 0), "produce to grow-{p}");
    }
    let got = kafka::fetch_all(&mut c, "grow", 4, 0);
    assert_eq!(got.len(), 1);
    assert!(broker.data_dir().join("grow-4").is_dir());

    // The count and the new partitions' records survive a restart.
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(partitions(&mut c, "grow"), 5, "count kept across restart");
    assert_eq!(kafka::latest_offset(&mut c, "grow", 4), 1);
    assert_eq!(produce_value(&mut c, "grow", 4, "after").0, NONE);
}

#[test]
fn librdkafka_adds_partitions_and_produces_to_them() {
    use rdkafka::admin::{AdminClient, AdminOptions, NewPartitions};
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "rdk-grow", 1);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));
    let out = futures_lite::future::block_on(
        admin.create_partitions([&NewPartitions::new("rdk-grow", 3)], &opts),
    )
    .expect("create_partitions");
    assert_eq!(out, vec![Ok("rdk-grow".to_string())]);
    let out = futures_lite::future::block_on(
        admin.create_partitions([&NewPartitions::new("rdk-grow", 2)], &opts),
    )
    .expect("create_partitions");
    assert!(
        matches!(&out[0], Err((t, code)) if t == "rdk-grow"
            && *code == rdkafka::types::RDKafkaErrorCode::InvalidPartitions),
        "{out:?}"
    );
    assert_eq!(partitions(&mut c, "rdk-grow"), 3);

    // librdkafka's producer learns of the new partitions from Metadata and writes to them.
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("topic.metadata.refresh.interval.ms", "500")
        .create()
        .expect("producer");
    for p in 0..3 {
        let value = format!("to-{p}");
        producer
            .send(
                BaseRecord::<(), _>::to("rdk-grow")
                    .partition(p)
                    .payload(&value),
            )
            .map_err(|(e, _)| e)
            .expect("queue record");
    }
    producer.flush(Duration::from_secs(20)).expect("flush");
    for p in 0..3 {
        let got = kafka::fetch_all(&mut c, "rdk-grow", p, 0);
        assert_eq!(got.len(), 1, "one record in rdk-grow-{p}");
    }
    // And librdkafka's consumer reads them back from every partition, old and new.
    use rdkafka::Message;
    use rdkafka::consumer::{BaseConsumer, Consumer};
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", "rdk-grow-readers")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false")
        .create()
        .expect("consumer");
    let mut tpl = rdkafka::TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition_offset("rdk-grow", p, rdkafka::Offset::Beginning)
            .expect("add partition");
    }
    consumer.assign(&tpl).expect("assign");
    let mut got = std::collections::BTreeMap::new();
    let deadline = std::time::Instant::now() + Duration::from_secs(30);
    while got.len() < 3 {
        assert!(
            std::time::Instant::now() < deadline,
            "consumed only {got:?}"
        );
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consumer error");
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            got.insert(m.partition(), value);
        }
    }
    let want: std::collections::BTreeMap<i32, String> =
        (0..3).map(|p| (p, format!("to-{p}"))).collect();
    assert_eq!(got, want);
}

#[test]
fn kafka_python_adds_partitions() {
    let broker = Broker::start(&[]);
    python::run_admin_script("partitions", &broker.bootstrap(), "py-grow");
    // What kafka-python added is what the raw client sees, and takes produces.
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(partitions(&mut c, "py-grow"), 4);
    assert_eq!(produce_value(&mut c, "py-grow", 3, "x").0, NONE);
}

/// CreateTopics of one topic with chosen replicas: `assignments[i]` for partition
/// `order[i]`, with the partition count and replication factor given.
fn manual_topic(
    name: &str,
    assignments: &[(i32, Vec<i32>)],
    partitions: i32,
    rf: i16,
) -> CreateTopicsRequest {
    CreateTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(kafka::topic_name(name))
                .with_num_partitions(partitions)
                .with_replication_factor(rf)
                .with_assignments(
                    assignments
                        .iter()
                        .map(|(p, replicas)| {
                            CreatableReplicaAssignment::default()
                                .with_partition_index(*p)
                                .with_broker_ids(replicas.iter().map(|b| BrokerId(*b)).collect())
                        })
                        .collect(),
                ),
        ])
}

#[test]
fn create_topics_takes_manual_assignments_as_kafka_checks_them() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let v = c.pick_version::<CreateTopicsRequest>(7);
    let create = |c: &mut RawClient, req: &CreateTopicsRequest| {
        let resp = c.call(v, req);
        (
            resp.topics[0].error_code,
            resp.topics[0].error_message.clone(),
        )
    };
    // Out of order in the request: partitions are taken by their index.
    let chosen = [(2, vec![0]), (0, vec![0]), (1, vec![0])];
    let (err, msg) = create(&mut c, &manual_topic("chosen", &chosen, -1, -1));
    assert_eq!(err, NONE, "{msg:?}");
    for (refused, want, what) in [
        (
            manual_topic("x1", &chosen, 3, -1),
            INVALID_REQUEST,
            "count and assignments",
        ),
        (
            manual_topic("x2", &chosen, -1, 1),
            INVALID_REQUEST,
            "factor and assignments",
        ),
        (
            manual_topic("x3", &[(0, vec![1])], -1, -1),
            INVALID_REPLICA_ASSIGNMENT,
            "not node 0",
        ),
        (
            manual_topic("x4", &[(0, vec![0]), (2, vec![0])], -1, -1),
            INVALID_REPLICA_ASSIGNMENT,
            "a gap",
        ),
        (
            manual_topic("x5", &[(0, vec![0]), (0, vec![0])], -1, -1),
            INVALID_REPLICA_ASSIGNMENT,
            "twice",
        ),
    ] {
        let (err, msg) = create(&mut c, &refused);
        assert_eq!(err, want, "{what}: {msg:?}");
        assert!(msg.is_some(), "{what}");
    }
    for p in 0..3 {
        assert_eq!(
            produce_value(&mut c, "chosen", p, "v").0,
            NONE,
            "chosen-{p}"
        );
    }
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(partitions(&mut c, "chosen"), 3);
    let names: Vec<String> = kafka::metadata(&mut c, &[])
        .topics
        .iter()
        .filter_map(|t| t.name.as_ref().map(|n| n.0.to_string()))
        .collect();
    assert!(
        !names.iter().any(|n| n.starts_with('x')),
        "refused topics exist: {names:?}"
    );
}

#[test]
fn cluster_adds_partitions_with_leaders_spread_and_produces_to_them() {
    let c = cluster::Cluster::start3();
    let controller = c.wait_formed(&[1, 2, 3]);
    let others: Vec<i32> = c.ids().into_iter().filter(|id| *id != controller).collect();
    c.create_topic_ok(others[0], "spread", 1, 2);
    // Sent to a broker that is not the controller: it proposes through the quorum.
    let req = request(&[("spread", 6, None)], false);
    let (_, resp) = c.call(others[1], 3, &req).expect("CreatePartitions");
    assert_eq!(resp.results.len(), 1);
    assert_eq!(resp.results[0].error_code, NONE, "{resp:?}");
    let view = c.wait_topic("spread", 6, 2);
    let leaders = view.leaders("spread");
    let distinct: std::collections::BTreeSet<i32> = leaders.values().copied().collect();
    assert_eq!(
        distinct,
        [1, 2, 3].into(),
        "leaders of the 6 partitions: {leaders:?}"
    );
    // Not an increase any more, through the controller this time.
    let (_, resp) = c
        .call(controller, 3, &request(&[("spread", 6, None)], false))
        .expect("CreatePartitions");
    assert_eq!(resp.results[0].error_code, INVALID_PARTITIONS);
    for (p, leader) in &leaders {
        let value = format!("p{p}");
        let (err, base) = c
            .produce(*leader, "spread", *p, &[value.as_str()])
            .expect("produce");
        assert_eq!((err, base), (NONE, 0), "produce to spread-{p} at {leader}");
    }
    // Every broker agrees on the count.
    for id in c.ids() {
        let v = c.view(id, &["spread"]);
        assert_eq!(v.topic("spread").len(), 6, "node {id}");
    }
    // CreateTopics with chosen replicas, through a non-controller: each partition is led by
    // its first replica; an unknown broker is refused.
    let chosen = [(0, vec![3, 1]), (1, vec![2, 3])];
    let (_, resp) = c
        .call(others[0], 5, &manual_topic("chosen", &chosen, -1, -1))
        .expect("CreateTopics");
    assert_eq!(resp.topics[0].error_code, NONE, "{resp:?}");
    let view = c.wait_topic("chosen", 2, 2);
    assert_eq!(
        view.leaders("chosen").into_iter().collect::<Vec<_>>(),
        vec![(0, 3), (1, 2)]
    );
    assert_eq!(
        c.produce(3, "chosen", 0, &["a"]).expect("produce"),
        (NONE, 0)
    );
    let (_, resp) = c
        .call(
            controller,
            5,
            &manual_topic("unknown", &[(0, vec![1, 9])], -1, -1),
        )
        .expect("CreateTopics");
    assert_eq!(
        resp.topics[0].error_code, INVALID_REPLICA_ASSIGNMENT,
        "{resp:?}"
    );
}

#[test]
fn every_advertised_create_partitions_version_grows_a_topic() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "vv", 1);
    for v in 0..=3 {
        let count = i32::from(v) + 2;
        let r = grow_at(&mut c, v, &[("vv", count, None)], false);
        assert_eq!(r, vec![("vv".to_string(), NONE, None)], "v{v}");
        assert_eq!(partitions(&mut c, "vv"), count as usize, "v{v}");
    }
}

#[test]
fn create_partitions_is_bounded_by_the_partition_limits() {
    const POLICY_VIOLATION: i16 = 44;
    // __consumer_offsets holds 50 partitions.
    let broker = Broker::start(&["topic.partitions.max=8", "broker.partitions.max=60"]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "cap", 2);
    kafka::create_topic(&mut c, "cap2", 1);
    assert_eq!(
        grow(&mut c, "cap", 9).0,
        INVALID_PARTITIONS,
        "over topic.partitions.max"
    );
    // 53 held: +6 fits (59), then +3 more in the same request would pass 60.
    let r = grow_at(&mut c, 3, &[("cap", 8, None), ("cap2", 4, None)], false);
    let codes: Vec<i16> = r.iter().map(|x| x.1).collect();
    assert_eq!(codes, vec![NONE, POLICY_VIOLATION], "{r:?}");
    assert_eq!(partitions(&mut c, "cap"), 8);
    assert_eq!(
        partitions(&mut c, "cap2"),
        1,
        "the refused topic is unchanged"
    );
    assert_eq!(grow(&mut c, "cap2", 2), (NONE, None), "one more fits");
}
