//! `__consumer_offsets` as tools read it, against the real broker binary: a group commits
//! through librdkafka, a separate reader consumes `__consumer_offsets` and decodes its
//! records with the decoder below, written from Kafka's schemas (`OffsetCommitKey`,
//! `OffsetCommitValue`, `GroupMetadataKey`, `GroupMetadataValue`) and independent of the
//! broker's code (and kafka-python does the same with `tests/python/read_consumer_offsets.py`);
//! DescribeConfigs reports the topic compacted; and a data directory
//! written in ringbroker's legacy value format keeps its offsets and its group.

mod common;

use bytes::Bytes;
use common::{Broker, RawClient};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};
use kafka_protocol::protocol::StrBytes;
use kafka_protocol::records::{
    Compression, Record, RecordBatchEncoder, RecordEncodeOptions, TimestampType,
};
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

const OFFSETS: &str = "__consumer_offsets";
const PARTITIONS: i32 = 4;

fn start() -> Broker {
    Broker::start(&[
        "offsets.topic.num.partitions=4",
        "group.initial.rebalance.delay.ms=0",
        "group.min.session.timeout.ms=500",
    ])
}

/// A big-endian reader over one key or value, as Kafka's generated readers read them.
struct Cursor<'a>(&'a [u8]);

impl Cursor<'_> {
    fn take(&mut self, n: usize) -> &[u8] {
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        head
    }
    fn i16(&mut self) -> i16 {
        i16::from_be_bytes(self.take(2).try_into().unwrap())
    }
    fn i32(&mut self) -> i32 {
        i32::from_be_bytes(self.take(4).try_into().unwrap())
    }
    fn i64(&mut self) -> i64 {
        i64::from_be_bytes(self.take(8).try_into().unwrap())
    }
    fn nullable_string(&mut self) -> Option<String> {
        let n = self.i16();
        (n >= 0).then(|| String::from_utf8(self.take(n as usize).to_vec()).unwrap())
    }
    fn string(&mut self) -> String {
        self.nullable_string().expect("a non-null string")
    }
    fn bytes(&mut self) -> Vec<u8> {
        let n = self.i32();
        self.take(n as usize).to_vec()
    }
}

#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
enum Key {
    /// OffsetCommitKey (key versions 0 and 1): group, topic, partition.
    Offset(String, String, i32),
    /// GroupMetadataKey (key version 2): group.
    Group(String),
}

fn decode_key(bytes: &[u8]) -> Key {
    let mut c = Cursor(bytes);
    match c.i16() {
        0 | 1 => Key::Offset(c.string(), c.string(), c.i32()),
        2 => Key::Group(c.string()),
        v => panic!("key version {v}"),
    }
}

#[derive(Debug)]
struct OffsetCommit {
    version: i16,
    offset: i64,
    leader_epoch: i32,
    metadata: String,
    commit_timestamp: i64,
}

/// OffsetCommitValue v0..=v3.
fn decode_offset(bytes: &[u8]) -> OffsetCommit {
    let mut c = Cursor(bytes);
    let version = c.i16();
    assert!((0..=3).contains(&version), "offset value version {version}");
    let offset = c.i64();
    let leader_epoch = if version >= 3 { c.i32() } else { -1 };
    let metadata = c.string();
    let commit_timestamp = c.i64();
    if version == 1 {
        c.i64();
    }
    assert!(
        c.0.is_empty(),
        "bytes left after OffsetCommitValue v{version}"
    );
    OffsetCommit {
        version,
        offset,
        leader_epoch,
        metadata,
        commit_timestamp,
    }
}

#[derive(Debug)]
struct Member {
    member_id: String,
    client_id: String,
    client_host: String,
    session_timeout: i32,
    subscription: Vec<u8>,
    assignment: Vec<u8>,
}

#[derive(Debug)]
struct GroupMetadata {
    version: i16,
    protocol_type: String,
    generation: i32,
    protocol: Option<String>,
    leader: Option<String>,
    members: Vec<Member>,
}

/// GroupMetadataValue v0..=v3.
fn decode_group(bytes: &[u8]) -> GroupMetadata {
    let mut c = Cursor(bytes);
    let version = c.i16();
    assert!((0..=3).contains(&version), "group value version {version}");
    let protocol_type = c.string();
    let generation = c.i32();
    let protocol = c.nullable_string();
    let leader = c.nullable_string();
    if version >= 2 {
        c.i64(); // currentStateTimestamp
    }
    let members = (0..c.i32())
        .map(|_| {
            let member_id = c.string();
            if version >= 3 {
                c.nullable_string(); // groupInstanceId
            }
            let client_id = c.string();
            let client_host = c.string();
            if version >= 1 {
                c.i32(); // rebalanceTimeout
            }
            Member {
                member_id,
                client_id,
                client_host,
                session_timeout: c.i32(),
                subscription: c.bytes(),
                assignment: c.bytes(),
            }
        })
        .collect();
    assert!(
        c.0.is_empty(),
        "bytes left after GroupMetadataValue v{version}"
    );
    GroupMetadata {
        version,
        protocol_type,
        generation,
        protocol,
        leader,
        members,
    }
}

/// Consumes every partition of `__consumer_offsets` from the beginning, as a tool does,
/// until `done` is satisfied by the records read so far (in read order, per partition).
fn read_offsets_topic(
    addr: &str,
    done: impl Fn(&[(Key, Option<Vec<u8>>)]) -> bool,
) -> Vec<(Key, Option<Vec<u8>>)> {
    let reader: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", "offsets-reader")
        .set("enable.auto.commit", "false")
        .create()
        .unwrap();
    let mut tpl = TopicPartitionList::new();
    for p in 0..PARTITIONS {
        tpl.add_partition_offset(OFFSETS, p, Offset::Beginning)
            .unwrap();
    }
    reader.assign(&tpl).unwrap();
    let mut seen = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(30);
    while !done(&seen) {
        assert!(
            Instant::now() < deadline,
            "timed out reading {OFFSETS}; read {seen:?}"
        );
        if let Some(m) = reader.poll(Duration::from_millis(100)) {
            let m = m.expect("fetch __consumer_offsets");
            let key = decode_key(m.key().expect("every record has a key"));
            seen.push((key, m.payload().map(<[u8]>::to_vec)));
        }
    }
    seen
}

fn latest(records: &[(Key, Option<Vec<u8>>)], key: &Key) -> Option<Vec<u8>> {
    records
        .iter()
        .rev()
        .find(|(k, _)| k == key)
        .and_then(|(_, v)| v.clone())
}

fn produce(addr: &str, topic: &str, per_partition: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    for p in 0..2 {
        for i in 0..per_partition {
            let v = format!("v{i}");
            producer
                .send(BaseRecord::<(), _>::to(topic).partition(p).payload(&v))
                .map_err(|(e, _)| e)
                .unwrap();
        }
    }
    producer.flush(Duration::from_secs(20)).unwrap();
}

fn group_consumer(addr: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("client.id", "offsets-format-test")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .create()
        .unwrap()
}

/// Subscribes and polls until the consumer has its assignment and has read `count`
/// messages.
fn join_and_consume(consumer: &BaseConsumer, topic: &str, count: usize) {
    consumer.subscribe(&[topic]).unwrap();
    let deadline = Instant::now() + Duration::from_secs(30);
    let mut read = 0;
    while read < count {
        assert!(Instant::now() < deadline, "consumed {read} of {count}");
        if let Some(m) = consumer.poll(Duration::from_millis(100)) {
            m.expect("consume");
            read += 1;
        }
    }
}

fn describe_offsets_topic(c: &mut RawClient) -> BTreeMap<String, String> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(StrBytes::from_static_str(OFFSETS))
            .with_configuration_keys(None),
    ]);
    let resp: DescribeConfigsResponse = c.call(1, &req);
    assert_eq!(resp.results[0].error_code, 0);
    resp.results[0]
        .configs
        .iter()
        .map(|c| {
            let v = c.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (c.name.to_string(), v)
        })
        .collect()
}

/// Runs `tests/python/read_consumer_offsets.py` (kafka-python) and returns its lines.
fn kafka_python_read(addr: &str, group: &str, expected_offsets: usize) -> Vec<String> {
    let has_kafka = || {
        Command::new("python3")
            .args(["-c", "import kafka"])
            .status()
            .is_ok_and(|s| s.success())
    };
    assert!(
        has_kafka(),
        "kafka-python is not installed (scripts/setup.sh installs it)"
    );
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "python",
        "read_consumer_offsets.py",
    ]
    .iter()
    .collect();
    let out = Command::new("python3")
        .arg(&script)
        .args([
            addr,
            group,
            &PARTITIONS.to_string(),
            &expected_offsets.to_string(),
        ])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).to_string();
    assert!(out.status.success(), "python failed: {stdout}");
    stdout.lines().map(str::to_string).collect()
}

#[test]
fn a_tool_reads_committed_offsets_and_group_metadata_from_consumer_offsets() {
    let broker = start();
    let addr = broker.bootstrap();
    let mut raw = RawClient::connect(broker.addr());
    common::kafka::create_topic(&mut raw, "events", 2);
    produce(&addr, "events", 10);
    let consumer = group_consumer(&addr, "tool-group");
    join_and_consume(&consumer, "events", 20);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset("events", 0, Offset::Offset(7))
        .unwrap();
    tpl.add_partition_offset("events", 1, Offset::Offset(10))
        .unwrap();
    if let Some(mut e) = tpl.find_partition("events", 0) {
        e.set_metadata("checkpoint-a");
    }
    consumer.commit(&tpl, CommitMode::Sync).unwrap();

    let p0 = Key::Offset("tool-group".into(), "events".into(), 0);
    let p1 = Key::Offset("tool-group".into(), "events".into(), 1);
    let group = Key::Group("tool-group".into());
    let records = read_offsets_topic(&addr, |seen| {
        latest(seen, &p0).is_some()
            && latest(seen, &p1).is_some()
            && latest(seen, &group).is_some_and(|v| !decode_group(&v).members.is_empty())
    });

    let o0 = decode_offset(&latest(&records, &p0).unwrap());
    let o1 = decode_offset(&latest(&records, &p1).unwrap());
    assert_eq!(
        (o0.version, o0.offset, o0.metadata.as_str()),
        (3, 7, "checkpoint-a")
    );
    assert_eq!((o1.version, o1.offset, o1.metadata.as_str()), (3, 10, ""));
    assert!(o0.leader_epoch >= -1);
    assert!((now_ms() - o0.commit_timestamp).abs() < 120_000, "{o0:?}");

    let g = decode_group(&latest(&records, &group).unwrap());
    assert_eq!(g.version, 3, "{g:?}");
    assert_eq!(g.protocol_type, "consumer");
    assert!(g.generation >= 1);
    let protocol = g.protocol.clone().expect("a stable group has a protocol");
    assert!(["range", "roundrobin", "cooperative-sticky"].contains(&protocol.as_str()));
    assert_eq!(g.members.len(), 1, "{g:?}");
    let m = &g.members[0];
    assert_eq!(g.leader.as_deref(), Some(m.member_id.as_str()));
    assert_eq!(m.client_id, "offsets-format-test");
    assert!(m.client_host.contains("127.0.0.1"), "{}", m.client_host);
    assert_eq!(m.session_timeout, 6000);
    // The consumer protocol's subscription and assignment name the topic.
    let names = |b: &[u8]| b.windows(6).any(|w| w == b"events");
    assert!(names(&m.subscription) && names(&m.assignment), "{m:?}");

    // A second client library reads the same records: kafka-python, decoding in Python.
    let lines = kafka_python_read(&addr, "tool-group", 2);
    let has = |l: &str| lines.iter().any(|x| x == l);
    assert!(has("OFFSET events 0 3 7 checkpoint-a"), "{lines:?}");
    assert!(has("OFFSET events 1 3 10 -"), "{lines:?}");
    let group_line = format!(
        "GROUP 3 consumer {} {protocol} {} 1",
        g.generation, m.member_id
    );
    assert!(has(&group_line), "{lines:?}");
    let member_line = format!("MEMBER {} offsets-format-test /127.0.0.1 6000", m.member_id);
    assert!(has(&member_line), "{lines:?}");
    drop(consumer);

    // The topic is compacted, as Kafka's is, and DescribeConfigs says so.
    let configs = describe_offsets_topic(&mut raw);
    assert_eq!(configs["cleanup.policy"], "compact");
    assert_eq!(configs["segment.bytes"], "104857600");
    assert_eq!(configs["retention.ms"], "-1");
    assert_eq!(configs["retention.bytes"], "-1");
}

/// Now, in ms: legacy records carry it, so that offset expiry (7 days after the commit of
/// an empty group) leaves them alone.
fn now_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_millis() as i64
}

/// ringbroker's value layouts before Kafka's: offset, leader epoch, nullable metadata,
/// commit timestamp; protocol type, generation, protocol, timestamp.
fn legacy_offset(offset: i64, metadata: Option<&str>) -> Vec<u8> {
    let mut v = [
        1i16.to_be_bytes().as_slice(),
        &offset.to_be_bytes(),
        &5i32.to_be_bytes(),
    ]
    .concat();
    match metadata {
        Some(m) => {
            v.extend_from_slice(&(m.len() as i16).to_be_bytes());
            v.extend_from_slice(m.as_bytes());
        }
        None => v.extend_from_slice(&(-1i16).to_be_bytes()),
    }
    v.extend_from_slice(&now_ms().to_be_bytes());
    v
}

fn legacy_group(generation: i32) -> Vec<u8> {
    let s = |s: &str| [(s.len() as i16).to_be_bytes().as_slice(), s.as_bytes()].concat();
    [
        1i16.to_be_bytes().as_slice(),
        &s("consumer"),
        &generation.to_be_bytes(),
        &s(""),
        &now_ms().to_be_bytes(),
    ]
    .concat()
}

fn key_bytes(key: &Key) -> Vec<u8> {
    let s = |s: &str| [(s.len() as i16).to_be_bytes().as_slice(), s.as_bytes()].concat();
    match key {
        Key::Offset(g, t, p) => [&1i16.to_be_bytes()[..], &s(g), &s(t), &p.to_be_bytes()].concat(),
        Key::Group(g) => [&2i16.to_be_bytes()[..], &s(g)].concat(),
    }
}

/// A record at its offset: key and value (`None`: a tombstone).
type AtOffset = (i64, Vec<u8>, Option<Vec<u8>>);

/// One v2 batch of `records` (offset, key, value; `None`: a tombstone) at their own
/// offsets, written by the `kafka-protocol` crate: holes between offsets are what a log
/// cleaner leaves.
fn batch(records: &[AtOffset]) -> Vec<u8> {
    let records: Vec<Record> = records
        .iter()
        .map(|(offset, k, v)| Record {
            transactional: false,
            control: false,
            delete_horizon: false,
            partition_leader_epoch: 0,
            producer_id: -1,
            producer_epoch: -1,
            timestamp_type: TimestampType::Creation,
            offset: *offset,
            // The encoder keeps records in one batch while offset - sequence is constant:
            // this keeps records with holes between their offsets in one batch.
            sequence: *offset as i32,
            timestamp: now_ms(),
            key: Some(Bytes::from(k.clone())),
            value: v.clone().map(Bytes::from),
            headers: Default::default(),
        })
        .collect();
    let mut out = bytes::BytesMut::new();
    let options = RecordEncodeOptions {
        version: 2,
        compression: Compression::None,
    };
    RecordBatchEncoder::encode(&mut out, &records, &options).unwrap();
    out.to_vec()
}

#[test]
fn a_data_dir_in_the_legacy_format_keeps_its_offsets_and_group() {
    let mut broker = start();
    broker.stop();
    // Make the data dir an older ringbroker's: the topic's configs as it created them
    // (retention.ms only) and the group's records in its value format.
    let dir = broker.data_dir().to_path_buf();
    let meta_path = dir.join("__ringbroker_meta.toml");
    let mut meta: toml::Table = std::fs::read_to_string(&meta_path)
        .unwrap()
        .parse()
        .unwrap();
    let configs = meta
        .get_mut("topics")
        .and_then(|t| t.get_mut(OFFSETS))
        .and_then(|t| t.get_mut("configs"))
        .and_then(|c| c.as_table_mut())
        .unwrap();
    configs.retain(|k, _| k == "retention.ms");
    std::fs::write(&meta_path, toml::to_string(&meta).unwrap()).unwrap();
    let group = "legacy-group";
    let p = ringbroker::group::offsets_partition(group, PARTITIONS);
    let part_dir = dir.join(format!("{OFFSETS}-{p}"));
    // As a cleaner leaves a log: a sealed segment whose first batch lost its middle record
    // (offset 1), a hole between segments (4..=99), and a deleted group ("ghost") whose
    // commit and tombstone are both still there. Batches stay contiguous inside a segment,
    // as a cleaner keeps each batch's base and last offset.
    let offset_key = |g: &str, p| key_bytes(&Key::Offset(g.into(), "events".into(), p));
    let mut first = batch(&[
        (
            0,
            offset_key(group, 0),
            Some(legacy_offset(3, Some("old-meta"))),
        ),
        (2, offset_key(group, 1), Some(legacy_offset(4, None))),
    ]);
    first.extend(batch(&[(
        3,
        offset_key("ghost", 0),
        Some(legacy_offset(9, None)),
    )]));
    let mut second = batch(&[(
        100,
        key_bytes(&Key::Group(group.into())),
        Some(legacy_group(5)),
    )]);
    second.extend(batch(&[(101, offset_key("ghost", 0), None)]));
    for ext in ["index", "timeindex"] {
        let _ = std::fs::remove_file(part_dir.join(format!("00000000000000000000.{ext}")));
    }
    std::fs::write(part_dir.join("00000000000000000000.log"), first).unwrap();
    std::fs::write(part_dir.join("00000000000000000100.log"), second).unwrap();

    broker.start_again();
    let addr = broker.bootstrap();
    let mut raw = RawClient::connect(broker.addr());
    // The older topic gained the configs it lacked.
    assert_eq!(
        describe_offsets_topic(&mut raw)["cleanup.policy"],
        "compact"
    );
    common::kafka::create_topic(&mut raw, "events", 2);
    let consumer = group_consumer(&addr, group);
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("events", 0);
    tpl.add_partition("events", 1);
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    let got: Vec<(Offset, String)> = committed
        .elements()
        .iter()
        .map(|e| (e.offset(), e.metadata().to_string()))
        .collect();
    assert_eq!(
        got,
        [
            (Offset::Offset(3), "old-meta".to_string()),
            (Offset::Offset(4), String::new())
        ]
    );
    // The tombstone deleted the ghost's offset; the broker kept every batch.
    let ghost = group_consumer(&addr, "ghost");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition("events", 0);
    let committed = ghost
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    assert_eq!(committed.elements()[0].offset(), Offset::Invalid);
    assert!(!broker.log().contains("truncating"), "{}", broker.log());

    // The group rejoins above its legacy generation, and its new record is Kafka's.
    // From the committed offsets: 2 of partition 0's 5 records and 1 of partition 1's.
    produce(&addr, "events", 5);
    join_and_consume(&consumer, "events", 3);
    let key = Key::Group(group.into());
    let records = read_offsets_topic(&addr, |seen| {
        latest(seen, &key).is_some_and(|v| v[..2] == [0, 3])
    });
    let g = decode_group(&latest(&records, &key).unwrap());
    assert_eq!(g.generation, 6, "{g:?}");
}
