//! Kafka read and write semantics a client relies on, through the raw client: whole batches
//! from a fetch that starts mid-batch, the edges of the log (high watermark, out of range),
//! ListOffsets corner cases, acks=0, and Metadata for all topics.

mod common;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequest;
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, FetchRequest, FetchResponse, ListOffsetsRequest,
    ListOffsetsResponse, ProduceRequest,
};
use kafka_protocol::records::RecordBatchDecoder;
use ringbroker::protocol::batch::testing::build_batch;

const OFFSET_OUT_OF_RANGE: i16 = 1;

/// One fetch of one partition with the given per-partition byte limit; returns
/// (error, high watermark, log start offset, [(batch base offset, record offsets)]).
fn fetch_batches(
    c: &mut RawClient,
    topic: &str,
    partition: i32,
    offset: i64,
    partition_max_bytes: i32,
) -> (i16, i64, i64, Vec<(i64, Vec<i64>)>) {
    let v = c.pick_version::<FetchRequest>(12);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(64 * 1024 * 1024)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(kafka::topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(partition)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(offset)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(partition_max_bytes),
                ]),
        ]);
    let resp: FetchResponse = c.call(v, &req);
    assert_eq!(resp.error_code, NONE);
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(resp.responses[0].partitions.len(), 1);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.partition_index, partition);
    let mut batches = Vec::new();
    if let Some(bytes) = &p.records {
        let mut b = bytes.clone();
        for set in RecordBatchDecoder::decode_all(&mut b).expect("decode fetched batches") {
            let offsets: Vec<i64> = set.records.iter().map(|r| r.offset).collect();
            batches.push((offsets.first().copied().unwrap_or(-1), offsets));
        }
    }
    (p.error_code, p.high_watermark, p.log_start_offset, batches)
}

fn values(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

fn batch(vals: &[Vec<u8>], ts: i64) -> Vec<u8> {
    let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
    build_batch(&refs, ts)
}

#[test]
fn fetch_returns_whole_batches_and_respects_the_log_edges() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "reads", 1);

    // Empty partition: fetch at 0 is empty, not an error; past it is out of range.
    let (err, hw, start, batches) = fetch_batches(&mut c, "reads", 0, 0, 1 << 20);
    assert_eq!(
        (err, hw, start, batches.len()),
        (NONE, 0, 0, 0),
        "empty partition"
    );
    let (err, ..) = fetch_batches(&mut c, "reads", 0, 1, 1 << 20);
    assert_eq!(
        err, OFFSET_OUT_OF_RANGE,
        "fetch past the end of an empty partition"
    );

    // Batches of 3, 4 and 5 records: offsets 0-2, 3-6, 7-11.
    let ts = common::recent_ts();
    for (i, n) in [3usize, 4, 5].into_iter().enumerate() {
        let base = [0, 3, 7][i];
        assert_eq!(
            kafka::produce_one(
                &mut c,
                "reads",
                0,
                batch(&values("b", n), ts + i as i64 * 10)
            ),
            (NONE, base)
        );
    }

    // A fetch that starts mid-batch returns that whole batch first.
    let (err, hw, _, batches) = fetch_batches(&mut c, "reads", 0, 5, 1 << 20);
    assert_eq!((err, hw), (NONE, 12));
    assert_eq!(
        batches,
        vec![(3, vec![3, 4, 5, 6]), (7, vec![7, 8, 9, 10, 11])],
        "fetch at offset 5"
    );
    // A per-partition limit smaller than the first batch still returns that batch whole
    // (KIP-74), so a consumer always makes progress.
    let (err, _, _, batches) = fetch_batches(&mut c, "reads", 0, 0, 10);
    assert_eq!(err, NONE);
    assert!(
        !batches.is_empty(),
        "a tiny partition_max_bytes returned nothing"
    );
    assert_eq!(batches[0], (0, vec![0, 1, 2]), "the first batch, whole");
    // At the high watermark: empty, no error. Past it: out of range.
    let (err, hw, _, batches) = fetch_batches(&mut c, "reads", 0, 12, 1 << 20);
    assert_eq!(
        (err, hw, batches.len()),
        (NONE, 12, 0),
        "fetch at the high watermark"
    );
    let (err, ..) = fetch_batches(&mut c, "reads", 0, 13, 1 << 20);
    assert_eq!(err, OFFSET_OUT_OF_RANGE, "fetch past the high watermark");
    let (err, ..) = fetch_batches(&mut c, "reads", 0, -5, 1 << 20);
    assert_eq!(err, OFFSET_OUT_OF_RANGE, "fetch at a negative offset");
    // The connection still works after out-of-range answers.
    assert_eq!(kafka::latest_offset(&mut c, "reads", 0), 12);
}

/// ListOffsets for one partition at `timestamp`; returns (error, timestamp, offset).
fn list_offsets_full(c: &mut RawClient, topic: &str, timestamp: i64) -> (i16, i64, i64) {
    let v = c.pick_version::<ListOffsetsRequest>(7);
    let req = ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_topics(vec![
            ListOffsetsTopic::default()
                .with_name(kafka::topic_name(topic))
                .with_partitions(vec![
                    ListOffsetsPartition::default()
                        .with_partition_index(0)
                        .with_current_leader_epoch(-1)
                        .with_timestamp(timestamp),
                ]),
        ]);
    let resp: ListOffsetsResponse = c.call(v, &req);
    let p = &resp.topics[0].partitions[0];
    (p.error_code, p.timestamp, p.offset)
}

#[test]
fn list_offsets_by_timestamp_edges() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "times", 1);

    // Empty partition: earliest = latest = 0; any timestamp finds nothing (-1).
    assert_eq!(list_offsets_full(&mut c, "times", -2).2, 0);
    assert_eq!(list_offsets_full(&mut c, "times", -1).2, 0);
    assert_eq!(
        list_offsets_full(&mut c, "times", common::recent_ts()),
        (NONE, -1, -1),
        "timestamp lookup on an empty partition"
    );

    // Two batches: records at ts, ts+1, ts+2 (offsets 0-2) and ts+100.. (offsets 3-5).
    let ts = common::recent_ts();
    assert_eq!(
        kafka::produce_one(&mut c, "times", 0, batch(&values("a", 3), ts)),
        (NONE, 0)
    );
    assert_eq!(
        kafka::produce_one(&mut c, "times", 0, batch(&values("b", 3), ts + 100)),
        (NONE, 3)
    );

    for round in ["before restart", "after restart"] {
        for (probe, want_ts, want_off) in [
            (ts - 1_000, ts, 0),
            (ts, ts, 0),
            (ts + 1, ts + 1, 1),
            (ts + 2, ts + 2, 2),
            (ts + 3, ts + 100, 3),
            (ts + 101, ts + 101, 4),
            (ts + 102, ts + 102, 5),
        ] {
            assert_eq!(
                list_offsets_full(&mut c, "times", probe),
                (NONE, want_ts, want_off),
                "{round}: ListOffsets at ts{:+} -> (error, timestamp, offset)",
                probe - ts
            );
        }
        assert_eq!(
            list_offsets_full(&mut c, "times", ts + 103),
            (NONE, -1, -1),
            "{round}: a timestamp after every record"
        );
        assert_eq!(
            list_offsets_full(&mut c, "times", -2).2,
            0,
            "{round}: earliest"
        );
        assert_eq!(
            list_offsets_full(&mut c, "times", -1).2,
            6,
            "{round}: latest"
        );
        if round == "before restart" {
            broker.restart();
            c = RawClient::connect(broker.addr());
        }
    }
}

#[test]
fn acks_zero_gets_no_response_but_is_appended() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "fire-and-forget", 1);
    let pv = c.pick_version::<ProduceRequest>(12);

    let mut req = kafka::produce_request(&[(
        "fire-and-forget",
        0,
        batch(&values("x", 2), common::recent_ts()),
    )]);
    req.acks = 0;
    c.send(pv, &req);
    // The next response on this connection must be the ApiVersions one: a broker that
    // answers acks=0 would shift every later response by one.
    let id = c.send(3, &ApiVersionsRequest::default());
    let (header, resp) = c
        .recv::<ApiVersionsRequest>(3, id)
        .expect("the first response after an acks=0 produce answers the next request");
    assert_eq!(header.correlation_id, id);
    assert_eq!(resp.error_code, NONE);
    assert_eq!(kafka::latest_offset(&mut c, "fire-and-forget", 0), 2);
}

#[test]
fn metadata_for_all_topics_lists_every_topic() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let topics = [("alpha", 1), ("beta", 3), ("gamma", 8)];
    for (t, n) in topics {
        kafka::create_topic(&mut c, t, n);
    }
    for round in ["before restart", "after restart"] {
        let v = c.pick_version::<MetadataRequest>(12);
        // Null topic list: all topics (empty list would mean none).
        let md = c.call(v, &MetadataRequest::default().with_topics(None));
        // Internal topics are listed too (as Kafka does), flagged as internal.
        for t in &md.topics {
            let name = t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default();
            assert_eq!(t.is_internal, name.starts_with("__"), "{name} is_internal");
        }
        let mut got: Vec<(String, usize)> = md
            .topics
            .iter()
            .filter(|t| !t.is_internal)
            .map(|t| {
                assert_eq!(t.error_code, NONE);
                (
                    t.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                    t.partitions.len(),
                )
            })
            .collect();
        got.sort();
        let want: Vec<(String, usize)> = topics
            .iter()
            .map(|(t, n)| (t.to_string(), *n as usize))
            .collect();
        assert_eq!(got, want, "{round}");

        let md = c.call(v, &MetadataRequest::default().with_topics(Some(vec![])));
        assert!(
            md.topics.is_empty(),
            "{round}: an empty topic list asks for no topics"
        );
        if round == "before restart" {
            broker.restart();
            c = RawClient::connect(broker.addr());
        }
    }
}
