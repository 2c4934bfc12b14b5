//! Codecs end to end: librdkafka producer → broker → librdkafka consumer for every codec,
//! broker-side recompression (checked on the stored batch via a raw Fetch), and
//! decompression bombs, unknown codecs and corrupt data rejected with bounded memory.

mod common;

use std::io::Write;
use std::time::{Duration, Instant};

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::{BrokerId, FetchRequest, FetchResponse};
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use ringbroker::protocol::batch::{
    self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD, testing::build_batch,
};

const CORRUPT_MESSAGE: i16 = 2;
const MESSAGE_TOO_LARGE: i16 = 10;
const INVALID_RECORD: i16 = 87;
const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
const MESSAGES: usize = 5_000;

fn create_with_configs(c: &mut RawClient, name: &str, configs: &[(&str, &str)]) {
    let configs: Vec<(&str, Option<&str>)> = configs.iter().map(|(k, v)| (*k, Some(*v))).collect();
    let (err, msg) = kafka::create_topic_with(c, name, 1, &configs);
    assert_eq!(err, NONE, "create {name}: {msg:?}");
}

/// The raw bytes of partition 0 from `offset`, as the broker stores them.
fn fetch_raw(c: &mut RawClient, topic: &str, offset: i64) -> Vec<u8> {
    let v = c.pick_version::<FetchRequest>(12);
    let req = FetchRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(0)
        .with_min_bytes(0)
        .with_max_bytes(16 << 20)
        .with_session_epoch(-1)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(kafka::topic_name(topic))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_current_leader_epoch(-1)
                        .with_fetch_offset(offset)
                        .with_last_fetched_epoch(-1)
                        .with_log_start_offset(-1)
                        .with_partition_max_bytes(16 << 20),
                ]),
        ]);
    let resp: FetchResponse = c.call(v, &req);
    let p = &resp.responses[0].partitions[0];
    assert_eq!(p.error_code, NONE);
    p.records.as_ref().map(|r| r.to_vec()).unwrap_or_default()
}

/// The codec bits of every stored batch of `topic`.
fn stored_codecs(c: &mut RawClient, topic: &str) -> Vec<i16> {
    let bytes = fetch_raw(c, topic, 0);
    let mut out = Vec::new();
    let mut pos = 0;
    while pos + HEADER_BYTES <= bytes.len() {
        let h = BatchHeader::parse(&bytes[pos..]).expect("header");
        if pos + h.total_bytes() > bytes.len() {
            break;
        }
        batch::validate_batch(&bytes[pos..pos + h.total_bytes()]).expect("stored batch valid");
        out.push(h.compression());
        pos += h.total_bytes();
    }
    out
}

fn produce_all(broker: &Broker, topic: &str, codec: &str) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("compression.type", codec)
        // Long enough that all messages are enqueued before the first batch leaves, even
        // on a loaded machine: librdkafka sends a batch uncompressed when compressing does
        // not make it smaller, which a batch of a few records may not, and the test checks
        // the stored codec of every batch.
        .set("linger.ms", "1000")
        .set("acks", "all")
        .create()
        .expect("producer");
    let mut lines = ringbroker_bench::loglines::LogLines::new(42);
    for i in 0..MESSAGES {
        let line = lines.next_line();
        let key = i.to_string();
        producer
            .send(BaseRecord::to(topic).partition(0).key(&key).payload(&line))
            .map_err(|(e, _)| e)
            .expect("enqueue");
    }
    producer.flush(Duration::from_secs(60)).expect("flush");
}

fn consume_all(broker: &Broker, topic: &str) -> Vec<(String, String)> {
    let consumer: BaseConsumer = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("group.id", format!("check-{topic}"))
        .set("enable.auto.commit", "false")
        .create()
        .expect("consumer");
    let mut tpl = TopicPartitionList::new();
    tpl.add_partition_offset(topic, 0, Offset::Beginning)
        .expect("tpl");
    consumer.assign(&tpl).expect("assign");
    let mut out = Vec::new();
    let deadline = Instant::now() + Duration::from_secs(60);
    while out.len() < MESSAGES && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let key = String::from_utf8_lossy(m.key().unwrap_or_default()).to_string();
            let value = String::from_utf8_lossy(m.payload().unwrap_or_default()).to_string();
            out.push((key, value));
        }
    }
    out
}

fn expected() -> Vec<(String, String)> {
    let mut lines = ringbroker_bench::loglines::LogLines::new(42);
    (0..MESSAGES)
        .map(|i| (i.to_string(), lines.next_line()))
        .collect()
}

#[test]
fn every_codec_round_trips_through_librdkafka_and_the_broker_recompresses() {
    let _heavy = common::heavy_lock();
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let cases = [
        // (producer codec, topic compression.type, codec stored)
        ("none", "producer", 0),
        ("gzip", "producer", 1),
        ("snappy", "producer", 2),
        ("lz4", "producer", 3),
        ("zstd", "producer", 4),
        ("lz4", "zstd", 4),
        ("zstd", "gzip", 1),
        ("gzip", "snappy", 2),
        ("snappy", "lz4", 3),
        ("zstd", "uncompressed", 0),
    ];
    let want = expected();
    for (producer_codec, topic_codec, stored) in cases {
        let topic = format!("codec-{producer_codec}-{topic_codec}");
        create_with_configs(&mut c, &topic, &[("compression.type", topic_codec)]);
        produce_all(&broker, &topic, producer_codec);
        let codecs = stored_codecs(&mut c, &topic);
        assert!(!codecs.is_empty(), "{topic}: nothing stored");
        assert!(
            codecs.iter().all(|&k| k == stored),
            "{topic}: stored codecs {codecs:?}, expected {stored}"
        );
        let got = consume_all(&broker, &topic);
        assert_eq!(got.len(), want.len(), "{topic}: message count");
        assert!(got == want, "{topic}: messages differ");
    }
}

/// A batch of `record_count` records whose records field is `payload`, flagged `codec`.
fn batch_with_payload(payload: &[u8], codec: i16, record_count: i32) -> Vec<u8> {
    let values: Vec<&[u8]> = (0..record_count).map(|_| b"x".as_slice()).collect();
    let mut b = build_batch(&values, common::recent_ts());
    b.truncate(HEADER_BYTES);
    b.extend_from_slice(payload);
    let length = (b.len() - LOG_OVERHEAD) as i32;
    batch::set_length_attributes_and_crc(&mut b, length, codec);
    b
}

fn vm_hwm_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("status");
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .expect("VmHWM")
}

/// Decompression bombs, built cheaply: each codec's stream is a repetition of one
/// compressed chunk of zeros (gzip members, lz4 independent blocks, zstd frames and xerial
/// snappy blocks all concatenate). Snappy cannot compress better than ~21:1: its 1 GiB bomb
/// is 48 MiB on the wire, over the topic's 16 MiB batch limit, so it is refused by size
/// before any decompression; a 256 MiB one (12 MiB on the wire) reaches the decompression
/// limit.
fn bombs() -> Vec<(&'static str, i16, Vec<u8>)> {
    let mib = vec![0u8; 1 << 20];
    let gzip_member = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::best());
        e.write_all(&mib).unwrap();
        e.finish().unwrap()
    };
    let gzip = gzip_member.repeat(1024);
    let zstd_frame = zstd::bulk::compress(&mib, 3).unwrap();
    let zstd = zstd_frame.repeat(1024);
    // One lz4 frame: header, 16384 identical independent 64 KiB blocks, end mark.
    let one = {
        let mut e = lz4_flex::frame::FrameEncoder::new(Vec::new());
        e.write_all(&mib[..64 * 1024]).unwrap();
        e.finish().unwrap()
    };
    const LZ4_HEADER: usize = 7;
    let block = &one[LZ4_HEADER..one.len() - 4];
    let mut lz4 = one[..LZ4_HEADER].to_vec();
    for _ in 0..16 * 1024 {
        lz4.extend_from_slice(block);
    }
    lz4.extend_from_slice(&0u32.to_be_bytes());
    let xerial_one = ringbroker::compression::snappy::compress_xerial(&mib[..32 * 1024]);
    let snappy_of = |blocks: usize| {
        let mut out = xerial_one.clone();
        for _ in 1..blocks {
            out.extend_from_slice(&xerial_one[16..]);
        }
        out
    };
    vec![
        ("gzip", 1, gzip),
        ("snappy", 2, snappy_of(8 * 1024)),
        ("snappy-1g", 2, snappy_of(32 * 1024)),
        ("lz4", 3, lz4),
        ("zstd", 4, zstd),
    ]
}

/// A bomb whose record framing is valid: one record whose value claims 1 GiB of zeros,
/// zstd-compressed. The broker walks it until the decompression limit.
fn framed_bomb() -> Vec<u8> {
    let value_len: i64 = 1 << 30;
    let mut body = vec![0u8]; // attributes
    batch::put_varlong(&mut body, 0); // timestamp delta
    batch::put_varlong(&mut body, 0); // offset delta
    batch::put_varlong(&mut body, -1); // null key
    batch::put_varlong(&mut body, value_len);
    let mut head = Vec::new();
    batch::put_varlong(&mut head, body.len() as i64 + value_len + 1);
    head.extend_from_slice(&body);
    let mut e = zstd::stream::Encoder::new(Vec::new(), 1).unwrap();
    e.write_all(&head).unwrap();
    let mib = vec![0u8; 1 << 20];
    for _ in 0..1024 {
        e.write_all(&mib).unwrap();
    }
    e.write_all(&[0]).unwrap(); // no headers
    e.finish().unwrap()
}

#[test]
fn bombs_unknown_codecs_and_corrupt_data_are_rejected_with_bounded_memory() {
    let _heavy = common::heavy_lock();
    let broker = Broker::start(&[]);
    let pid = broker.pid().expect("running");
    let mut c = RawClient::connect(broker.addr());
    // The topic makes the broker decompress (to recompress); batches up to 16 MiB are
    // accepted on the wire, so the decompression limit is 64 MiB.
    create_with_configs(
        &mut c,
        "bombs",
        &[
            ("compression.type", "zstd"),
            ("max.message.bytes", "16777216"),
        ],
    );
    create_with_configs(&mut c, "asis", &[]);
    // Check the bombs really are bombs before sending them.
    for (name, codec, bomb) in bombs() {
        let total: u64 = match name {
            "snappy" => 256 << 20,
            _ => 1 << 30,
        };
        let mut sink = std::io::sink();
        let n = match name {
            "gzip" => std::io::copy(
                &mut flate2::read::MultiGzDecoder::new(bomb.as_slice()),
                &mut sink,
            ),
            "lz4" => std::io::copy(
                &mut lz4_flex::frame::FrameDecoder::new(bomb.as_slice()),
                &mut sink,
            ),
            "zstd" => std::io::copy(
                &mut zstd::stream::read::Decoder::new(bomb.as_slice()).unwrap(),
                &mut sink,
            ),
            _ => Ok(total),
        }
        .expect("bomb decodes");
        assert_eq!(n, total, "{name} bomb size");
        let before = vm_hwm_kib(pid);
        let r = kafka::produce_one(&mut c, "bombs", 0, batch_with_payload(&bomb, codec, 1));
        let after = vm_hwm_kib(pid);
        eprintln!(
            "{name} bomb: {} bytes on the wire, error {}, broker VmHWM {before} -> {after} KiB",
            bomb.len(),
            r.0
        );
        // Zeros are not records: the walk refuses the first one (as Kafka's does) long
        // before the limit; the 1 GiB snappy one is over the batch size.
        let expected = if name == "snappy-1g" {
            MESSAGE_TOO_LARGE
        } else {
            INVALID_RECORD
        };
        assert_eq!(r.0, expected, "{name} bomb");
        assert!(after < 512 * 1024, "{name}: broker peak RSS {after} KiB");
    }
    // Valid framing all the way: the walk stops at the decompression limit.
    let bomb = framed_bomb();
    for topic in ["bombs", "asis"] {
        let before = vm_hwm_kib(pid);
        let r = kafka::produce_one(&mut c, topic, 0, batch_with_payload(&bomb, 4, 1));
        let after = vm_hwm_kib(pid);
        eprintln!(
            "framed zstd bomb to {topic}: {} bytes on the wire, error {}, VmHWM {before} -> {after} KiB",
            bomb.len(),
            r.0
        );
        assert_eq!(r.0, MESSAGE_TOO_LARGE, "framed bomb to {topic}");
        assert!(
            after < 512 * 1024,
            "framed bomb: broker peak RSS {after} KiB"
        );
    }
    assert_eq!(
        kafka::latest_offset(&mut c, "bombs", 0),
        0,
        "nothing written"
    );

    // Codec bits 5-7 are refused on every topic; nothing is written.
    let plain = build_batch(&[b"a"], common::recent_ts());
    for bits in 5..8 {
        let mut b = plain.clone();
        let attrs = (BatchHeader::parse(&b).unwrap().attributes & !7) | bits;
        let len = (b.len() - LOG_OVERHEAD) as i32;
        batch::set_length_attributes_and_crc(&mut b, len, attrs);
        for topic in ["asis", "bombs"] {
            let r = kafka::produce_one(&mut c, topic, 0, b.clone());
            assert_eq!(r.0, UNSUPPORTED_COMPRESSION_TYPE, "{topic} codec {bits}");
        }
    }
    // Corrupt compressed data, and a stream whose records do not match the header.
    let records = &plain[HEADER_BYTES..];
    let mut gz = {
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
        e.write_all(records).unwrap();
        e.finish().unwrap()
    };
    let n = gz.len();
    gz[n - 6] ^= 0xff; // the CRC-32 of the gzip trailer
    assert_eq!(
        kafka::produce_one(&mut c, "bombs", 0, batch_with_payload(&gz, 1, 1)).0,
        CORRUPT_MESSAGE
    );
    let garbage = ringbroker::compression::snappy::compress_raw(&[0u8; 100]);
    // Snappy that decodes, to 100 zeros, which are not records.
    assert_eq!(
        kafka::produce_one(&mut c, "bombs", 0, batch_with_payload(&garbage, 2, 1)).0,
        INVALID_RECORD
    );
    assert_eq!(
        kafka::latest_offset(&mut c, "bombs", 0),
        0,
        "nothing written"
    );
    assert_eq!(
        kafka::latest_offset(&mut c, "asis", 0),
        0,
        "nothing written"
    );
    // A good batch still goes in, recompressed.
    let good = ringbroker::compression::compress(ringbroker::compression::Codec::Lz4, records);
    assert_eq!(
        kafka::produce_one(&mut c, "bombs", 0, batch_with_payload(&good, 3, 1)),
        (NONE, 0)
    );
    assert_eq!(stored_codecs(&mut c, "bombs"), vec![4]);
}
