//! Hostile and misbehaving clients against the real binary (DESIGN §8, README "Limits and
//! hostile input"): every attack gets Kafka's error or a closed connection, the broker keeps
//! serving everyone else, nothing acknowledged is lost, and memory stays within budget.

mod common;

use bytes::BytesMut;
use common::kafka::{self, *};
use common::{Broker, RawClient, ReadOutcome};
use kafka_protocol::messages::create_topics_request::CreatableTopic;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::{
    ApiKey, CreateTopicsRequest, CreateTopicsResponse, DeleteTopicsRequest, DeleteTopicsResponse,
    DescribeGroupsRequest, DescribeGroupsResponse, GroupId, JoinGroupRequest, JoinGroupResponse,
    MetadataRequest, MetadataResponse, OffsetCommitRequest, OffsetCommitResponse, SyncGroupRequest,
    SyncGroupResponse,
};
use kafka_protocol::protocol::{Encodable, StrBytes};
use ringbroker::protocol::batch::{self, testing::build_batch};
use std::io::Write;
use std::time::{Duration, Instant};

const INVALID_GROUP_ID: i16 = 24;
const INVALID_TIMESTAMP: i16 = 32;
const INVALID_PARTITIONS: i16 = 37;
const INVALID_CONFIG: i16 = 40;
const POLICY_VIOLATION: i16 = 44;
const UNKNOWN_PRODUCER_ID: i16 = 59;
const INVALID_RECORD: i16 = 87;
const OFFSETS: &str = "__consumer_offsets";
/// Every broker here runs with 4 GiB of address space, as `prlimit --as=4294967296` or a
/// host with strict overcommit gives it: an allocation by a forged count would abort it.
const ADDRESS_SPACE: u64 = 4 << 30;

/// A broker with two shards, `--set` pairs and extra environment, under [`ADDRESS_SPACE`].
fn start(sets: &[&str], env: &[(&str, &str)]) -> Broker {
    let mut args = vec!["--shards".to_string(), "2".to_string()];
    for kv in sets {
        args.push("--set".into());
        args.push(kv.to_string());
    }
    let env = env
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
    Broker::start_with_options(args, env, Some(ADDRESS_SPACE))
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn long(n: usize) -> StrBytes {
    StrBytes::from_string("g".repeat(n))
}

/// The broker still runs, answers a new connection, and `topic` still holds `values`.
fn assert_serving(broker: &mut Broker, topic: &str, values: &[&[u8]]) {
    assert!(
        broker.is_running(),
        "broker process died:\n{}",
        broker.log()
    );
    let mut c = RawClient::connect(broker.addr());
    let got: Vec<Vec<u8>> = kafka::fetch_all(&mut c, topic, 0, 0)
        .into_iter()
        .map(|r| r.value.map(|v| v.to_vec()).unwrap_or_default())
        .collect();
    let want: Vec<Vec<u8>> = values.iter().map(|v| v.to_vec()).collect();
    assert_eq!(got, want, "{topic} after the attack");
}

/// Creates `topic` and acknowledges three records into it.
fn seed(c: &mut RawClient, topic: &str) -> [&'static [u8]; 3] {
    kafka::create_topic(c, topic, 1);
    let values: [&[u8]; 3] = [b"one", b"two", b"three"];
    let (err, _) = kafka::produce_one(c, topic, 0, build_batch(&values, common::recent_ts()));
    assert_eq!(err, NONE);
    values
}

#[test]
fn long_group_ids_and_protocol_fields_are_refused() {
    let mut broker = start(&[], &[]);
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");

    // OffsetCommit v8 (compact strings: no 32 KiB limit on the wire) with a 40 kB group id.
    let commit = OffsetCommitRequest::default()
        .with_group_id(GroupId(long(40_000)))
        .with_generation_id_or_member_epoch(-1)
        .with_member_id(s(""))
        .with_topics(vec![
            OffsetCommitRequestTopic::default()
                .with_name(kafka::topic_name("held"))
                .with_partitions(vec![
                    OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(2),
                ]),
        ]);
    let r: OffsetCommitResponse = c.call(8, &commit);
    assert_eq!(r.topics[0].partitions[0].error_code, INVALID_GROUP_ID);

    // JoinGroup v6: a 40 kB group id, then a 40 kB protocol type.
    let join = |group: StrBytes, protocol_type: StrBytes| {
        JoinGroupRequest::default()
            .with_group_id(GroupId(group))
            .with_session_timeout_ms(10_000)
            .with_rebalance_timeout_ms(10_000)
            .with_member_id(s(""))
            .with_protocol_type(protocol_type)
            .with_protocols(vec![
                JoinGroupRequestProtocol::default()
                    .with_name(s("range"))
                    .with_metadata(vec![0, 1, 2].into()),
            ])
    };
    let r: JoinGroupResponse = c.call(6, &join(long(40_000), s("consumer")));
    assert_eq!(r.error_code, INVALID_GROUP_ID);
    let r: JoinGroupResponse = c.call(6, &join(s("g1"), long(40_000)));
    assert_eq!(r.error_code, INVALID_REQUEST);
    // SyncGroup v5 with a 40 kB group id and protocol type.
    let sync = SyncGroupRequest::default()
        .with_group_id(GroupId(long(40_000)))
        .with_generation_id(1)
        .with_member_id(s("m"))
        .with_protocol_type(Some(long(40_000)));
    let r: SyncGroupResponse = c.call(5, &sync);
    assert_eq!(r.error_code, INVALID_GROUP_ID);

    // A group at the bound still works, and survives a restart.
    let ok = commit.clone().with_group_id(GroupId(long(32_767)));
    let r: OffsetCommitResponse = c.call(8, &ok);
    assert_eq!(r.topics[0].partitions[0].error_code, NONE);
    assert_serving(&mut broker, "held", &values);
    broker.restart();
    assert_serving(&mut broker, "held", &values);
}

/// A 10-byte CreateTopics v5 frame whose topics array claims 2^31-1 entries.
fn forged_create_topics() -> Vec<u8> {
    let mut f = RawClient::encode_raw(ApiKey::CreateTopics as i16, 5, 7, &[]);
    // v5 is flexible: the topics array is a compact array; 2^31 as an unsigned varint.
    f.extend_from_slice(&[0x80, 0x80, 0x80, 0x80, 0x08]);
    f.extend_from_slice(&[0, 0, 0, 0, 0]);
    f
}

#[test]
fn forged_counts_cannot_abort_under_an_address_space_limit() {
    let mut broker = start(&[], &[]);
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");
    let mut frames = vec![forged_create_topics()];
    // Metadata v1 and v9 with lying topic counts, Produce v9 with a lying partition count.
    frames.push(RawClient::encode_raw(3, 1, 8, &[0x7f, 0xff, 0xff, 0xff]));
    frames.push(RawClient::encode_raw(
        3,
        9,
        9,
        &[0xff, 0xff, 0xff, 0xff, 0x0f, 0, 0, 0],
    ));
    frames.push(RawClient::encode_raw(
        0,
        9,
        10,
        // null transactional id, acks 1, timeout 30 s, one topic "h", 2^32-2 partitions.
        &[
            0, 0, 1, 0, 0, 0x75, 0x30, 2, 2, b'h', 0xff, 0xff, 0xff, 0xff, 0x0f,
        ],
    ));
    for f in &frames {
        let mut bad = RawClient::connect(broker.addr());
        bad.send_frame(f).expect("send");
        match bad.read_outcome() {
            ReadOutcome::Closed | ReadOutcome::Frame(_) => {}
            ReadOutcome::TimedOut => panic!("no answer and no close"),
        }
        assert!(broker.is_running(), "broker died:\n{}", broker.log());
    }
    assert_serving(&mut broker, "held", &values);
}

#[test]
fn internal_topics_belong_to_the_broker() {
    let mut broker = start(&[], &[]);
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");
    let before = kafka::latest_offset(&mut c, OFFSETS, 0);

    // Produce: refused, nothing appended.
    let forged = build_batch(&[b"forged offsets"], common::recent_ts());
    let (err, _) = kafka::produce_one(&mut c, OFFSETS, 0, forged);
    assert_eq!(err, INVALID_TOPIC_EXCEPTION);
    assert_eq!(kafka::latest_offset(&mut c, OFFSETS, 0), before);

    // DeleteTopics: refused; the topic is still there, after a restart too.
    let del = DeleteTopicsRequest::default()
        .with_topic_names(vec![kafka::topic_name(OFFSETS)])
        .with_timeout_ms(5000);
    let r: DeleteTopicsResponse = c.call(5, &del);
    assert_eq!(r.responses.len(), 1);
    assert_eq!(r.responses[0].error_code, INVALID_TOPIC_EXCEPTION);

    // CreateTopics of an internal name: refused.
    let create = CreateTopicsRequest::default()
        .with_timeout_ms(5000)
        .with_topics(vec![
            CreatableTopic::default()
                .with_name(kafka::topic_name("__transaction_state"))
                .with_num_partitions(1)
                .with_replication_factor(1),
        ]);
    let r: CreateTopicsResponse = c.call(7, &create);
    assert_eq!(r.topics[0].error_code, INVALID_REQUEST);
    // Nor does asking for it create it.
    let md: MetadataResponse = c.call(
        12,
        &MetadataRequest::default()
            .with_allow_auto_topic_creation(true)
            .with_topics(Some(vec![
                kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                    .with_name(Some(kafka::topic_name("__transaction_state"))),
            ])),
    );
    assert_eq!(md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    let md = kafka::metadata(&mut c, &[OFFSETS]);
    assert_eq!(md.topics[0].error_code, NONE);
    assert!(md.topics[0].is_internal);
    assert_eq!(kafka::latest_offset(&mut c, OFFSETS, 0), before);
    assert_serving(&mut broker, "held", &values);
}

#[test]
fn declared_frames_hold_no_memory_and_others_keep_being_served() {
    let mut broker = start(&["socket.frame.timeout.ms=3000"], &[]);
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");
    let rss_before = broker.rss_bytes();
    // 60 connections each declare a 100 MiB frame and send nothing more.
    let mut idle: Vec<RawClient> = (0..60)
        .map(|_| {
            let mut b = RawClient::connect(broker.addr());
            b.send_bytes(&(100i32 << 20).to_be_bytes()).expect("send");
            b
        })
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let rss = broker.rss_bytes();
    eprintln!("RSS before {rss_before} B, with 60 declared 100 MiB frames {rss} B");
    assert!(
        rss < rss_before + (64 << 20),
        "declared frames grew RSS from {rss_before} to {rss}"
    );
    // Everyone else is served at once, large requests included.
    let started = Instant::now();
    let big = build_batch(&[&[7u8; 900_000]], common::recent_ts());
    assert_eq!(kafka::produce_one(&mut c, "held", 0, big).0, NONE);
    assert!(
        started.elapsed() < Duration::from_secs(2),
        "a 900 kB produce waited {:?} behind the declared frames",
        started.elapsed()
    );
    // The half-sent frames are closed at socket.frame.timeout.ms.
    for b in &mut idle {
        b.stream
            .set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        assert_eq!(b.read_outcome(), ReadOutcome::Closed, "stalled frame");
    }
    // Idle connections hold no read buffer either: 500 of them cost little.
    let rss_before = broker.rss_bytes();
    let quiet: Vec<RawClient> = (0..500)
        .map(|_| RawClient::connect(broker.addr()))
        .collect();
    std::thread::sleep(Duration::from_millis(500));
    let rss = broker.rss_bytes();
    eprintln!("RSS before {rss_before} B, with 500 idle connections {rss} B");
    assert!(
        rss < rss_before + (16 << 20),
        "idle connections grew RSS from {rss_before} to {rss}"
    );
    drop(quiet);
    let mut all: Vec<&[u8]> = values.to_vec();
    let big_value = [7u8; 900_000];
    all.push(&big_value);
    assert_serving(&mut broker, "held", &all);
}

#[test]
fn connection_limits_refuse_new_connections_only() {
    let mut broker = start(
        &["max.connections.per.ip=3", "connections.max.idle.ms=1500"],
        &[],
    );
    // The harness's start-up probe connection counts until the broker has seen it close.
    std::thread::sleep(Duration::from_millis(300));
    let mut held: Vec<RawClient> = (0..3).map(|_| RawClient::connect(broker.addr())).collect();
    for c in &mut held {
        c.versions();
    }
    let mut refused = RawClient::connect(broker.addr());
    // The broker may have closed it before this write arrives.
    let _ = refused.send_bytes(&RawClient::encode_raw(18, 0, 1, &[]));
    assert_eq!(
        refused.read_outcome(),
        ReadOutcome::Closed,
        "4th connection"
    );
    // The three keep working; closing one makes room.
    let mut c = held.pop().expect("one");
    let values = seed(&mut c, "held");
    drop(c);
    std::thread::sleep(Duration::from_millis(200));
    let mut again = RawClient::connect(broker.addr());
    again.versions();
    // Idle connections are closed after connections.max.idle.ms...
    let mut quiet = held.pop().expect("one");
    quiet
        .stream
        .set_read_timeout(Some(Duration::from_secs(10)))
        .expect("timeout");
    let t = Instant::now();
    assert_eq!(quiet.read_outcome(), ReadOutcome::Closed, "idle connection");
    assert!(t.elapsed() < Duration::from_secs(5));
    // ...but not while a long poll is in flight.
    drop(held);
    drop(again);
    std::thread::sleep(Duration::from_millis(200));
    let mut poller = RawClient::connect(broker.addr());
    let v = poller.pick_version::<kafka_protocol::messages::FetchRequest>(12);
    let fetch = kafka_protocol::messages::FetchRequest::default()
        .with_max_wait_ms(3000)
        .with_min_bytes(1_000_000)
        .with_max_bytes(1 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            kafka_protocol::messages::fetch_request::FetchTopic::default()
                .with_topic(kafka::topic_name("held"))
                .with_partitions(vec![
                    kafka_protocol::messages::fetch_request::FetchPartition::default()
                        .with_partition(0)
                        .with_fetch_offset(3)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let t = Instant::now();
    let r = poller.call(v, &fetch);
    assert!(
        t.elapsed() >= Duration::from_millis(2900),
        "long poll waited"
    );
    assert_eq!(r.responses[0].partitions[0].error_code, NONE);
    assert_serving(&mut broker, "held", &values);
}

#[test]
fn a_panicking_request_costs_only_its_connection() {
    let mut broker = start(&[], &[("RINGBROKER_TEST_PANIC_CLIENT_ID", "boom")]);
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");
    let mut other = RawClient::connect(broker.addr());
    other.versions();
    // A Metadata request from client id "boom" panics in the handler.
    let mut body = BytesMut::new();
    MetadataRequest::default()
        .with_topics(None)
        .encode(&mut body, 1)
        .expect("encode");
    let mut frame = BytesMut::new();
    kafka_protocol::messages::RequestHeader::default()
        .with_request_api_key(3)
        .with_request_api_version(1)
        .with_correlation_id(5)
        .with_client_id(Some(s("boom")))
        .encode(&mut frame, 1)
        .expect("header");
    frame.extend_from_slice(&body);
    let mut doomed = RawClient::connect(broker.addr());
    doomed.send_frame(&frame).expect("send");
    assert_eq!(doomed.read_outcome(), ReadOutcome::Closed);
    assert!(
        broker.log().contains("bug: a request panicked"),
        "the panic is logged"
    );
    // Other connections, even on the same shard, go on; the data is all there.
    assert_eq!(
        kafka::metadata(&mut other, &["held"]).topics[0].error_code,
        NONE
    );
    assert_serving(&mut broker, "held", &values);
}

#[test]
fn a_panic_inside_shard_state_stops_the_broker_and_loses_nothing() {
    let mut broker = start(
        &["log.flush=fsync"],
        &[("RINGBROKER_TEST_PANIC_TOPIC", "doomed")],
    );
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");
    kafka::create_topic(&mut c, "doomed", 1);
    let v = c.pick_version::<kafka_protocol::messages::ProduceRequest>(9);
    c.send(
        v,
        &kafka::produce_request(&[("doomed", 0, build_batch(&[b"x"], common::recent_ts()))]),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let status = loop {
        if let Some(st) = broker.exit_status() {
            break st;
        }
        assert!(Instant::now() < deadline, "broker still running");
        std::thread::sleep(Duration::from_millis(20));
    };
    assert_eq!(status.code(), Some(101), "a fatal panic stops the process");
    broker.start_again();
    assert_serving(&mut broker, "held", &values);
}

#[test]
fn repeated_names_are_answered_once() {
    let mut broker = start(&[], &[]);
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");
    kafka::create_topic(&mut c, "wide", 100);
    // Metadata naming a 100-partition topic 5000 times: one entry.
    let md: MetadataResponse = c.call(
        12,
        &MetadataRequest::default().with_topics(Some(
            (0..5000)
                .map(|_| {
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(kafka::topic_name("wide")))
                })
                .collect(),
        )),
    );
    assert_eq!(md.topics.len(), 1);
    // Fetch naming one partition three times: one partition in the answer.
    let r = kafka::fetch(&mut c, "held", &[(0, 0), (0, 0), (0, 1)]);
    assert_eq!(r.len(), 1);
    assert_eq!(r[0].3.len(), 3);
    // ListOffsets and Produce: one entry, INVALID_REQUEST, nothing appended.
    let dup = build_batch(&[b"dup"], common::recent_ts());
    let r = kafka::produce(&mut c, &[("held", 0, dup.clone()), ("held", 0, dup)]);
    assert_eq!(r, vec![("held".to_string(), 0, INVALID_REQUEST, -1)]);
    // DescribeGroups of one group named twice.
    let d: DescribeGroupsResponse = c.call(
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s("g")), GroupId(s("g"))]),
    );
    assert_eq!(d.groups.len(), 1);
    assert_serving(&mut broker, "held", &values);
}

fn create_with(
    c: &mut RawClient,
    name: &str,
    partitions: i32,
    configs: &[(&str, &str)],
) -> (i16, Option<String>) {
    let configs: Vec<(&str, Option<&str>)> = configs.iter().map(|(k, v)| (*k, Some(*v))).collect();
    kafka::create_topic_with(c, name, partitions, &configs)
}

#[test]
fn topic_configs_and_partition_counts_are_bounded() {
    let broker = start(
        &["topic.partitions.max=64", "broker.partitions.max=200"],
        &[],
    );
    let mut c = RawClient::connect(broker.addr());
    for (k, v) in [
        ("segment.bytes", "1000"),
        ("segment.ms", "10"),
        ("max.message.bytes", "200000000"),
    ] {
        assert_eq!(
            create_with(&mut c, "t", 1, &[(k, v)]).0,
            INVALID_CONFIG,
            "{k}={v}"
        );
    }
    assert_eq!(create_with(&mut c, "t", 65, &[]).0, INVALID_PARTITIONS);
    // 50 offsets partitions + 64 + 64 = 178; 64 more would pass 200.
    assert_eq!(create_with(&mut c, "a", 64, &[]).0, NONE);
    assert_eq!(create_with(&mut c, "b", 64, &[]).0, NONE);
    let (err, msg) = create_with(&mut c, "c", 64, &[]);
    assert_eq!(err, POLICY_VIOLATION, "{msg:?}");
    assert_eq!(create_with(&mut c, "c", 22, &[]).0, NONE);
}

/// A batch of `values` with its attributes (bits above the codec) set to `attrs`.
fn with_attributes(values: &[&[u8]], attrs: i16) -> Vec<u8> {
    let mut b = build_batch(values, common::recent_ts());
    let len = (b.len() - batch::LOG_OVERHEAD) as i32;
    batch::set_length_attributes_and_crc(&mut b, len, attrs);
    b
}

#[test]
fn batches_are_validated_on_every_topic() {
    let mut broker = start(&[], &[]);
    let mut c = RawClient::connect(broker.addr());
    let values = seed(&mut c, "held");
    let mut refuse = |b: Vec<u8>, code: i16, what: &str| {
        assert_eq!(kafka::produce_one(&mut c, "held", 0, b).0, code, "{what}");
    };
    refuse(
        with_attributes(&[b"c"], 0x20),
        INVALID_RECORD,
        "control batch",
    );
    refuse(
        with_attributes(&[b"t"], 0x10),
        INVALID_RECORD,
        "transactional batch",
    );
    // Header and records disagree: the header says 3 records, 2 are there.
    let mut short = build_batch(&[b"a", b"b"], common::recent_ts());
    short[23..27].copy_from_slice(&2i32.to_be_bytes()); // last offset delta
    short[57..61].copy_from_slice(&3i32.to_be_bytes()); // record count
    let len = (short.len() - batch::LOG_OVERHEAD) as i32;
    batch::set_length_attributes_and_crc(&mut short, len, 0);
    refuse(short, INVALID_RECORD, "record count lie");
    // The same lie inside lz4.
    let plain = build_batch(&[b"a", b"b"], common::recent_ts());
    let mut lz = plain[..batch::HEADER_BYTES].to_vec();
    let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
    e.write_all(&plain[batch::HEADER_BYTES..]).expect("lz4");
    lz.extend_from_slice(&e.finish().expect("lz4"));
    lz[23..27].copy_from_slice(&2i32.to_be_bytes());
    lz[57..61].copy_from_slice(&3i32.to_be_bytes());
    let len = (lz.len() - batch::LOG_OVERHEAD) as i32;
    batch::set_length_attributes_and_crc(&mut lz, len, 3);
    refuse(lz, INVALID_RECORD, "record count lie in lz4");
    // Two hours in the future.
    let future = build_batch(&[b"f"], common::now_ms() + 7_200_000);
    refuse(future, INVALID_TIMESTAMP, "far-future timestamp");
    // An idempotent batch of a producer id never issued.
    let mut idem = build_batch(&[b"i"], common::recent_ts());
    batch::set_producer(&mut idem, 123_456, 0, 0);
    refuse(idem, UNKNOWN_PRODUCER_ID, "producer id never issued");
    assert_serving(&mut broker, "held", &values);
}

#[test]
fn an_answered_long_poll_cancels_its_waits_on_other_shards() {
    let broker = start(&[], &[("RUST_LOG", "info,ringbroker::shard=debug")]);
    let mut c = RawClient::connect(broker.addr());
    // Eight partitions land on both shards, so the fetch parks a wait on each.
    kafka::create_topic(&mut c, "polled", 8);
    let v = c.pick_version::<kafka_protocol::messages::FetchRequest>(12);
    // Each round polls every partition from its end, then one partition gets a record.
    // When that partition is on the connection's own shard, the wait parked on the other
    // shard must be cancelled (rather than sit there for 20 s).
    let mut next = [0i64; 8];
    let mut waits = 0;
    for round in 0..8usize {
        let fetch = kafka_protocol::messages::FetchRequest::default()
            .with_max_wait_ms(20_000)
            .with_min_bytes(1)
            .with_max_bytes(1 << 20)
            .with_session_epoch(-1)
            .with_topics(vec![
                kafka_protocol::messages::fetch_request::FetchTopic::default()
                    .with_topic(kafka::topic_name("polled"))
                    .with_partitions(
                        (0..8)
                            .map(|p| {
                                kafka_protocol::messages::fetch_request::FetchPartition::default()
                                    .with_partition(p as i32)
                                    .with_fetch_offset(next[p])
                                    .with_partition_max_bytes(1 << 20)
                            })
                            .collect(),
                    ),
            ]);
        let id = c.send(v, &fetch);
        std::thread::sleep(Duration::from_millis(300));
        let mut p = RawClient::connect(broker.addr());
        let batch = build_batch(&[b"wake"], common::recent_ts());
        let (err, _) = kafka::produce_one(&mut p, "polled", round as i32, batch);
        assert_eq!(err, NONE);
        next[round] += 1;
        let t = Instant::now();
        c.recv::<kafka_protocol::messages::FetchRequest>(v, id)
            .expect("fetch answered");
        assert!(
            t.elapsed() < Duration::from_secs(5),
            "the append woke the poll"
        );
        std::thread::sleep(Duration::from_millis(200));
        waits = broker.log().matches("long-poll wait").count();
        if waits > 0 {
            break;
        }
    }
    assert!(
        waits > 0,
        "no wait on another shard was cancelled; log:\n{}",
        broker.log()
    );
}
