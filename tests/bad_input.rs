//! Hand-crafted bad requests through the raw client: each gets the Kafka error code a Kafka
//! broker would give, nothing of a rejected batch is appended, and a broken connection never
//! takes the broker (or other clients) down with it.

mod common;

use bytes::{Buf, BufMut, Bytes, BytesMut};
use common::kafka::{self, *};
use common::{Broker, RawClient};
use kafka_protocol::messages::{
    ApiKey, ApiVersionsRequest, ApiVersionsResponse, MetadataRequest, ResponseHeader,
};
use kafka_protocol::protocol::{Decodable, Encodable, StrBytes};
use ringbroker::protocol::batch::testing::build_batch;

/// Offset of the CRC field in a v2 batch; it covers everything from offset 21 on.
const CRC_AT: usize = 17;

fn values(prefix: &str, n: usize) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| format!("{prefix}-{i}").into_bytes())
        .collect()
}

fn batch(vals: &[Vec<u8>], ts: i64) -> Vec<u8> {
    let refs: Vec<&[u8]> = vals.iter().map(Vec::as_slice).collect();
    build_batch(&refs, ts)
}

/// The broker is still up and answers Metadata to a fresh connection.
fn assert_alive(broker: &mut Broker, topic: &str) {
    assert!(broker.is_running(), "broker process died");
    let mut c = RawClient::connect(broker.addr());
    let md = kafka::metadata(&mut c, &[topic]);
    assert_eq!(md.topics.len(), 1);
    assert_eq!(
        md.topics[0].error_code, NONE,
        "Metadata {topic} after the bad request"
    );
}

#[test]
fn corrupt_crc_is_rejected_and_nothing_is_appended() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "crc", 2);

    let good = values("good", 3);
    assert_eq!(
        kafka::produce_one(&mut c, "crc", 0, batch(&good, common::recent_ts() + 1_000)),
        (NONE, 0)
    );
    assert_eq!(kafka::latest_offset(&mut c, "crc", 0), 3);

    // A flipped bit in the last record's value: CRC mismatch.
    let mut bad = batch(&values("bad", 4), common::recent_ts() + 2_000);
    let last = bad.len() - 1;
    bad[last] ^= 0x01;
    let (err, _) = kafka::produce_one(&mut c, "crc", 0, bad);
    assert_eq!(err, CORRUPT_MESSAGE, "payload bit flip");
    // The same connection answers the next request, and nothing was appended.
    assert_eq!(kafka::latest_offset(&mut c, "crc", 0), 3);

    // A damaged CRC field itself.
    let mut bad = batch(&values("bad", 2), common::recent_ts() + 3_000);
    bad[CRC_AT] ^= 0x80;
    assert_eq!(
        kafka::produce_one(&mut c, "crc", 0, bad).0,
        CORRUPT_MESSAGE,
        "CRC field"
    );
    assert_eq!(kafka::latest_offset(&mut c, "crc", 0), 3);

    // A damaged attributes field (covered by the CRC).
    let mut bad = batch(&values("bad", 2), common::recent_ts() + 3_000);
    bad[CRC_AT + 5] ^= 0x04;
    assert_eq!(
        kafka::produce_one(&mut c, "crc", 0, bad).0,
        CORRUPT_MESSAGE,
        "attributes"
    );
    assert_eq!(kafka::latest_offset(&mut c, "crc", 0), 3);

    // Two batches in one records field, the second corrupt: neither is appended.
    let mut two = batch(&values("first-of-two", 2), common::recent_ts() + 4_000);
    let mut second = batch(&values("second-of-two", 2), common::recent_ts() + 4_010);
    let mid = second.len() / 2 + 30;
    second[mid] ^= 0xff;
    two.extend_from_slice(&second);
    assert_eq!(
        kafka::produce_one(&mut c, "crc", 0, two).0,
        CORRUPT_MESSAGE,
        "second of two batches"
    );
    assert_eq!(kafka::latest_offset(&mut c, "crc", 0), 3);

    // One request, two partitions: the corrupt one fails, the good one is appended.
    let mut bad = batch(&values("bad", 2), common::recent_ts() + 5_000);
    bad[70] ^= 0x10;
    let mut r = kafka::produce(
        &mut c,
        &[
            ("crc", 0, bad),
            (
                "crc",
                1,
                batch(&values("p1", 2), common::recent_ts() + 5_000),
            ),
        ],
    );
    r.sort();
    assert_eq!(r.len(), 2, "{r:?}");
    assert_eq!((r[0].1, r[0].2), (0, CORRUPT_MESSAGE), "{r:?}");
    assert_eq!((r[1].1, r[1].2, r[1].3), (1, NONE, 0), "{r:?}");
    assert_eq!(kafka::latest_offset(&mut c, "crc", 0), 3);
    assert_eq!(kafka::latest_offset(&mut c, "crc", 1), 2);

    // A good batch continues right after the last good one, and the log holds only good data.
    let more = values("more", 2);
    assert_eq!(
        kafka::produce_one(&mut c, "crc", 0, batch(&more, common::recent_ts() + 6_000)),
        (NONE, 3)
    );
    let recs = kafka::fetch_all(&mut c, "crc", 0, 0);
    let got: Vec<(i64, Vec<u8>)> = recs
        .iter()
        .map(|r| {
            (
                r.offset,
                r.value.clone().map(|b| b.to_vec()).unwrap_or_default(),
            )
        })
        .collect();
    let want: Vec<(i64, Vec<u8>)> = good
        .iter()
        .chain(more.iter())
        .enumerate()
        .map(|(i, v)| (i as i64, v.clone()))
        .collect();
    assert_eq!(got, want);
}

#[test]
fn oversized_batch_is_message_too_large() {
    let mut broker = Broker::start(&["message.max.bytes=10000"]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "big", 1);

    let big = ringbroker::protocol::batch::testing::batch_of_size(20_000, 4, common::recent_ts());
    assert!(big.len() > 10_000);
    assert_eq!(
        kafka::produce_one(&mut c, "big", 0, big).0,
        MESSAGE_TOO_LARGE
    );
    assert_eq!(
        kafka::latest_offset(&mut c, "big", 0),
        0,
        "nothing appended"
    );

    // Just under the limit is fine.
    let ok = ringbroker::protocol::batch::testing::batch_of_size(9_000, 4, common::recent_ts());
    assert!(ok.len() <= 10_000, "{}", ok.len());
    assert_eq!(kafka::produce_one(&mut c, "big", 0, ok), (NONE, 0));
    assert_eq!(kafka::latest_offset(&mut c, "big", 0), 4);
    assert_alive(&mut broker, "big");
}

#[test]
fn unknown_topic_or_partition_without_auto_create() {
    let mut broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut c = RawClient::connect(broker.addr());

    let (err, _) = kafka::produce_one(
        &mut c,
        "missing",
        0,
        batch(&values("x", 1), common::recent_ts() + 1),
    );
    assert_eq!(
        err, UNKNOWN_TOPIC_OR_PARTITION,
        "produce to a missing topic"
    );
    let md = kafka::metadata(&mut c, &["missing"]);
    assert_eq!(md.topics.len(), 1);
    assert_eq!(
        md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION,
        "the produce must not have created the topic"
    );

    kafka::create_topic(&mut c, "two", 2);
    let (err, _) = kafka::produce_one(
        &mut c,
        "two",
        2,
        batch(&values("x", 1), common::recent_ts() + 1),
    );
    assert_eq!(
        err, UNKNOWN_TOPIC_OR_PARTITION,
        "partition index past the count"
    );
    let (err, _) = kafka::produce_one(
        &mut c,
        "two",
        -1,
        batch(&values("x", 1), common::recent_ts() + 1),
    );
    assert_eq!(err, UNKNOWN_TOPIC_OR_PARTITION, "negative partition index");
    assert_eq!(
        kafka::produce_one(
            &mut c,
            "two",
            1,
            batch(&values("x", 1), common::recent_ts() + 1)
        ),
        (NONE, 0)
    );
    let (err, _) = kafka::list_offset(&mut c, "two", 7, -1);
    assert_eq!(
        err, UNKNOWN_TOPIC_OR_PARTITION,
        "ListOffsets past the partition count"
    );
    assert_alive(&mut broker, "two");
}

#[test]
fn auto_create_is_on_by_default() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(
        kafka::produce_one(
            &mut c,
            "autocreated",
            0,
            batch(&values("x", 2), common::recent_ts() + 1)
        ),
        (NONE, 0)
    );
    let md = kafka::metadata(&mut c, &["autocreated"]);
    assert_eq!(md.topics[0].error_code, NONE);
    assert_eq!(
        md.topics[0].partitions.len(),
        1,
        "num.partitions defaults to 1"
    );
}

#[test]
fn create_topics_rejects_bad_names_and_duplicates() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let too_long = "a".repeat(250);
    let bad = [
        "bad name!",
        "..",
        ".",
        "",
        "slash/name",
        "tab\tname",
        "ünïcode",
        too_long.as_str(),
    ];
    let mut req: Vec<(&str, i32)> = bad.iter().map(|n| (*n, 1)).collect();
    req.push(("ok.name_-1", 3));
    let longest_ok = "b".repeat(249);
    req.push((longest_ok.as_str(), 1));
    let res = kafka::create_topics(&mut c, &req);
    assert_eq!(res.len(), req.len(), "one result per topic: {res:?}");
    for (name, err) in &res {
        let want = if bad.contains(&name.as_str()) {
            INVALID_TOPIC_EXCEPTION
        } else {
            NONE
        };
        assert_eq!(*err, want, "CreateTopics {name:?}");
    }
    let md = kafka::metadata(&mut c, &["ok.name_-1"]);
    assert_eq!(md.topics[0].error_code, NONE);
    assert_eq!(md.topics[0].partitions.len(), 3);

    // The same topic again.
    assert_eq!(
        kafka::create_topics(&mut c, &[("ok.name_-1", 3)]),
        vec![("ok.name_-1".to_string(), TOPIC_ALREADY_EXISTS)]
    );
    // The same name twice in one request is an invalid request (as in Kafka), and creates
    // nothing.
    let res = kafka::create_topics(&mut c, &[("twice", 1), ("twice", 1)]);
    assert!(!res.is_empty(), "{res:?}");
    for (name, err) in &res {
        assert_eq!((name.as_str(), *err), ("twice", INVALID_REQUEST), "{res:?}");
    }
    let md = kafka::metadata(&mut c, &["twice"]);
    assert_eq!(md.topics[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);

    // Topics persist across a restart, and still cannot be created twice.
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    let md = kafka::metadata(&mut c, &["ok.name_-1"]);
    assert_eq!(md.topics[0].error_code, NONE);
    assert_eq!(md.topics[0].partitions.len(), 3);
    assert_eq!(
        kafka::create_topics(&mut c, &[("ok.name_-1", 1)]),
        vec![("ok.name_-1".to_string(), TOPIC_ALREADY_EXISTS)]
    );
}

#[test]
fn api_versions_unsupported_version_keeps_the_connection() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());

    // ApiVersions v99 with a v3 body: the broker answers in the v0 layout with error 35 and
    // its own version ranges.
    let mut body = BytesMut::new();
    ApiVersionsRequest::default()
        .with_client_software_name(StrBytes::from_static_str("future-client"))
        .with_client_software_version(StrBytes::from_static_str("99"))
        .encode(&mut body, 3)
        .expect("encode");
    let id = c.send_raw(ApiKey::ApiVersions as i16, 99, &body);
    let (header, resp) = c
        .recv::<ApiVersionsRequest>(0, id)
        .expect("a v0 ApiVersions response to v99");
    assert_eq!(header.correlation_id, id);
    assert_eq!(resp.error_code, UNSUPPORTED_VERSION);
    let find = |resp: &ApiVersionsResponse, key: ApiKey| {
        resp.api_keys
            .iter()
            .find(|k| k.api_key == key as i16)
            .map(|k| (k.min_version, k.max_version))
    };
    let av = find(&resp, ApiKey::ApiVersions).expect("ApiVersions listed");
    assert!(av.0 == 0 && av.1 >= 3, "ApiVersions range {av:?}");
    let produce = find(&resp, ApiKey::Produce).expect("Produce listed");
    assert_eq!(
        produce.0, 0,
        "Produce advertised from v0 (librdkafka compression)"
    );
    assert!(produce.1 >= 7, "Produce range {produce:?}");
    for key in [
        ApiKey::Metadata,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::CreateTopics,
    ] {
        assert!(find(&resp, key).is_some(), "{key:?} listed");
    }

    // The connection is still usable.
    let (_, ok): (ResponseHeader, ApiVersionsResponse) = c
        .request(3, &ApiVersionsRequest::default())
        .expect("ApiVersions v3 on the same connection");
    assert_eq!(ok.error_code, NONE);
    assert_eq!(find(&ok, ApiKey::Produce), Some(produce));
    kafka::create_topic(&mut c, "after-v99", 1);
    assert_alive(&mut broker, "after-v99");
}

/// Hand-encodes a Produce v2 request body (the crate only encodes v3+).
fn produce_v2_body(topic: &str, partition: i32, records: &[u8]) -> Vec<u8> {
    let mut b = BytesMut::new();
    b.put_i16(-1); // acks
    b.put_i32(10_000); // timeout
    b.put_i32(1); // topics
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(1); // partitions
    b.put_i32(partition);
    b.put_i32(records.len() as i32);
    b.put_slice(records);
    b.to_vec()
}

#[test]
fn produce_v2_is_unsupported_version() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "old", 1);

    let id = c.send_raw(
        ApiKey::Produce as i16,
        2,
        &produce_v2_body("old", 0, &batch(&values("v2", 2), common::recent_ts() + 1)),
    );
    let frame = c.read_frame().expect("a response to Produce v2");
    // Produce v2 response: header v0, [topic [partition error base_offset log_append_time]]
    // throttle_time_ms.
    let mut b = Bytes::from(frame);
    let header = ResponseHeader::decode(&mut b, 0).expect("response header");
    assert_eq!(header.correlation_id, id);
    assert_eq!(b.get_i32(), 1, "one topic");
    let n = b.get_i16() as usize;
    assert_eq!(&b.split_to(n)[..], b"old");
    assert_eq!(b.get_i32(), 1, "one partition");
    assert_eq!(b.get_i32(), 0, "partition index");
    assert_eq!(b.get_i16(), UNSUPPORTED_VERSION);
    let _base_offset = b.get_i64();
    let _log_append_time = b.get_i64();
    let _throttle = b.get_i32();
    assert!(!b.has_remaining(), "{} trailing bytes", b.remaining());

    assert_eq!(
        kafka::latest_offset(&mut c, "old", 0),
        0,
        "nothing appended"
    );
    assert_alive(&mut broker, "old");
}

#[test]
fn oversized_frame_closes_only_that_connection() {
    let mut broker = Broker::start(&["socket.request.max.bytes=1048576"]);
    let mut other = RawClient::connect(broker.addr());
    kafka::create_topic(&mut other, "frames", 1);

    // One byte over the limit; the broker must not wait for (or allocate) the body.
    let mut c = RawClient::connect(broker.addr());
    c.send_bytes(&(1_048_577i32).to_be_bytes()).expect("send");
    c.send_bytes(&[0u8; 64]).expect("send");
    c.expect_closed("frame of 1048577 bytes with socket.request.max.bytes=1048576");
    let md = kafka::metadata(&mut other, &["frames"]);
    assert_eq!(
        md.topics[0].error_code, NONE,
        "the other connection still works"
    );

    // A huge and a negative length prefix.
    for len in [i32::MAX, -1, i32::MIN] {
        let mut c = RawClient::connect(broker.addr());
        c.send_bytes(&len.to_be_bytes()).expect("send");
        c.expect_closed(&format!("length prefix {len}"));
    }

    // A frame exactly at the limit is read and answered.
    let mut c = RawClient::connect(broker.addr());
    let body = produce_v3_body_of_frame_size("frames", 1_048_576);
    let frame = RawClient::encode_raw(ApiKey::Produce as i16, 3, 77, &body);
    assert_eq!(frame.len(), 1_048_576);
    c.send_frame(&frame).expect("send");
    let resp = c.read_frame().expect("a response to a frame at the limit");
    assert_eq!(&resp[..4], &77i32.to_be_bytes(), "correlation id");

    assert_alive(&mut broker, "frames");
    assert_eq!(
        kafka::metadata(&mut other, &["frames"]).topics[0].error_code,
        NONE
    );
}

/// A Produce v3 body whose whole frame payload (header included) is `frame_size` bytes.
fn produce_v3_body_of_frame_size(topic: &str, frame_size: usize) -> Vec<u8> {
    let header_len = RawClient::encode_raw(ApiKey::Produce as i16, 3, 77, &[]).len();
    // transactional id (null) + acks + timeout + topic array + name + partition array +
    // index + records length.
    let fixed = 2 + 2 + 4 + 4 + 2 + topic.len() + 4 + 4 + 4;
    let records_len = frame_size - header_len - fixed;
    let mut b = BytesMut::new();
    b.put_i16(-1);
    b.put_i16(-1);
    b.put_i32(10_000);
    b.put_i32(1);
    b.put_i16(topic.len() as i16);
    b.put_slice(topic.as_bytes());
    b.put_i32(1);
    b.put_i32(0);
    // One record whose value length makes the batch exactly records_len bytes.
    let probe = build_batch(&[&vec![b'y'; records_len - 100]], common::recent_ts());
    let value_len = records_len - 100 + records_len - probe.len();
    let exact = build_batch(&[&vec![b'y'; value_len]], common::recent_ts());
    assert_eq!(exact.len(), records_len, "batch size arithmetic");
    b.put_i32(exact.len() as i32);
    b.put_slice(&exact);
    b.to_vec()
}

#[test]
fn garbage_closes_only_that_connection() {
    let mut broker = Broker::start(&[]);
    let mut other = RawClient::connect(broker.addr());
    kafka::create_topic(&mut other, "garbage", 1);

    let metadata_v9_header = RawClient::encode_raw(ApiKey::Metadata as i16, 9, 5, &[]);
    let cases: Vec<(&str, Vec<u8>)> = vec![
        (
            "random bytes",
            (0..40u32).map(|i| (i * 73 + 11) as u8 | 0x80).collect(),
        ),
        ("unknown api key", {
            let mut f = vec![0x7f, 0x00, 0x00, 0x01, 0x00, 0x00, 0x00, 0x05];
            f.extend_from_slice(&[0xff; 16]);
            f
        }),
        ("frame shorter than a header", vec![0x00, 0x03]),
        ("empty frame", vec![]),
        ("valid Metadata v9 header, garbage body", {
            let mut f = metadata_v9_header.clone();
            f.extend_from_slice(&[0xff; 9]);
            f
        }),
        ("Metadata v1 claiming 2^31 topics in a 4-byte body", {
            // The decoder reserves room for the claimed count before reading any element;
            // the broker must turn that into a closed connection, not an aborted process.
            let mut f = RawClient::encode_raw(ApiKey::Metadata as i16, 1, 6, &[]);
            f.extend_from_slice(&i32::MAX.to_be_bytes());
            f
        }),
        ("CreateTopics v4 claiming 2^31 topics", {
            let mut f = RawClient::encode_raw(ApiKey::CreateTopics as i16, 4, 7, &[]);
            f.extend_from_slice(&i32::MAX.to_be_bytes());
            f
        }),
        ("valid Metadata v9 header, truncated body", {
            let mut body = BytesMut::new();
            MetadataRequest::default()
                .with_topics(Some(vec![
                    kafka_protocol::messages::metadata_request::MetadataRequestTopic::default()
                        .with_name(Some(kafka::topic_name("garbage"))),
                ]))
                .encode(&mut body, 9)
                .expect("encode");
            let mut f = metadata_v9_header.clone();
            f.extend_from_slice(&body[..body.len() - 4]);
            f
        }),
    ];
    for (what, payload) in cases {
        let mut c = RawClient::connect(broker.addr());
        c.send_frame(&payload).expect("send");
        c.expect_closed(what);
        assert_alive(&mut broker, "garbage");
        assert_eq!(
            kafka::metadata(&mut other, &["garbage"]).topics[0].error_code,
            NONE,
            "the other connection still works after: {what}"
        );
    }
    // The broker still takes writes.
    assert_eq!(
        kafka::produce_one(
            &mut other,
            "garbage",
            0,
            batch(&values("after", 2), common::recent_ts() + 1)
        ),
        (NONE, 0)
    );
}

#[test]
fn malformed_batches_and_acks_are_rejected_without_appending() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "malformed", 1);
    let good = || batch(&values("ok", 3), common::recent_ts());
    assert_eq!(
        kafka::produce_one(&mut c, "malformed", 0, good()),
        (NONE, 0)
    );

    // acks other than -1, 0, 1: INVALID_REQUIRED_ACKS, as in Kafka.
    let pv = c.pick_version::<kafka_protocol::messages::ProduceRequest>(12);
    let mut req = kafka::produce_request(&[("malformed", 0, good())]);
    req.acks = 2;
    let resp = c.call(pv, &req);
    let r = kafka::flatten_produce(&resp);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_eq!(r[0].2, 21, "acks=2 -> INVALID_REQUIRED_ACKS");
    assert_eq!(kafka::latest_offset(&mut c, "malformed", 0), 3);

    let mut cases: Vec<(&str, Vec<u8>)> = Vec::new();
    let mut b = good();
    b[16] = 1; // magic (not covered by the CRC)
    cases.push(("magic 1", b));
    let b = good();
    cases.push(("truncated by 5 bytes", b[..b.len() - 5].to_vec()));
    let b = good();
    cases.push(("only the 61-byte header", b[..61].to_vec()));
    let mut b = good();
    b.extend_from_slice(&[0, 0, 0]);
    cases.push(("3 trailing bytes", b));
    cases.push(("empty records", Vec::new()));
    let mut b = good();
    b[8..12].copy_from_slice(&(i32::MAX).to_be_bytes());
    cases.push(("batch length i32::MAX", b));
    let mut b = good();
    b[8..12].copy_from_slice(&(-1i32).to_be_bytes());
    cases.push(("batch length -1", b));
    for (what, records) in cases {
        let (err, _) = kafka::produce_one(&mut c, "malformed", 0, records);
        assert_ne!(err, NONE, "{what}: accepted");
        assert_eq!(
            kafka::latest_offset(&mut c, "malformed", 0),
            3,
            "{what}: appended"
        );
    }

    // Null records: refused, nothing appended, connection usable.
    let mut req = kafka::produce_request(&[("malformed", 0, Vec::new())]);
    req.topic_data[0].partition_data[0].records = None;
    let resp = c.call(pv, &req);
    let r = kafka::flatten_produce(&resp);
    assert_eq!(r.len(), 1, "{r:?}");
    assert_ne!(r[0].2, NONE, "null records accepted");
    assert_eq!(kafka::latest_offset(&mut c, "malformed", 0), 3);

    // The log holds exactly the good batch, and takes the next one at offset 3.
    assert_eq!(
        kafka::produce_one(&mut c, "malformed", 0, good()),
        (NONE, 3)
    );
    assert_eq!(kafka::fetch_all(&mut c, "malformed", 0, 0).len(), 6);
    assert_alive(&mut broker, "malformed");
}
