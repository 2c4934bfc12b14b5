//! Log compaction against the real broker: a `cleanup.policy=compact` topic with small
//! segments (rolled by `segment.ms`), many updates per key and tombstones produced with
//! librdkafka (idempotent), read back after the cleaner ran: the latest value per key at
//! the offset it was produced at, deleted keys gone after `delete.retention.ms`, keyless
//! records refused with INVALID_RECORD; a topic switched from delete to compact with
//! IncrementalAlterConfigs is cleaned without a restart; a restart reads the same.
//! Waits poll with generous deadlines: nothing here asserts how fast the cleaner is.

mod common;

use common::kafka::{self, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::incremental_alter_configs_request as iac;
use kafka_protocol::messages::{
    DescribeConfigsRequest, DescribeConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::Message;
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};
use ringbroker::protocol::batch::testing::build_batch;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const INVALID_RECORD: i16 = 87;
const KEYS: usize = 20;
const ROUNDS: usize = 5;
const DEADLINE: Duration = Duration::from_secs(120);

/// (offset, key, value) as a consumer reads them.
type Rec = (i64, String, Option<String>);

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn create(c: &mut RawClient, name: &str, configs: &[(&str, &str)]) {
    let configs: Vec<(&str, Option<&str>)> = configs.iter().map(|(k, v)| (*k, Some(*v))).collect();
    let (err, msg) = kafka::create_topic_with(c, name, 1, &configs);
    assert_eq!(err, NONE, "create {name}: {msg:?}");
}

fn producer(broker: &Broker) -> ThreadedProducer<DefaultProducerContext> {
    ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .set("enable.idempotence", "true")
        .set("linger.ms", "5")
        .create()
        .expect("producer")
}

/// Produces `ROUNDS` values of every key, one round a little over a second apart so that
/// `segment.ms = 1000` rolls segments between them, then tombstones for `deleted` keys.
/// Returns every record in production order (its offset is its index: one idempotent
/// producer, one partition).
fn produce_updates(
    broker: &Broker,
    topic: &str,
    deleted: &[usize],
) -> Vec<(String, Option<String>)> {
    let p = producer(broker);
    let mut sent = Vec::new();
    let mut send = |key: String, value: Option<String>| {
        let mut r = BaseRecord::to(topic).partition(0).key(&key);
        if let Some(v) = &value {
            r = r.payload(v);
        }
        p.send(r).map_err(|(e, _)| e).expect("enqueue");
        sent.push((key.clone(), value.clone()));
    };
    for round in 0..ROUNDS {
        for k in 0..KEYS {
            send(
                format!("key-{k}"),
                Some(format!("round-{round}-key-{k}-{}", "v".repeat(k * 10))),
            );
        }
        p.flush(Duration::from_secs(30)).expect("flush");
        std::thread::sleep(Duration::from_millis(1200));
    }
    for k in deleted {
        send(format!("key-{k}"), None);
    }
    p.flush(Duration::from_secs(30)).expect("flush");
    sent
}

/// What a compacted log must read as once everything was cleaned: the latest record of
/// every key, at its offset, without the deleted keys' tombstones.
fn latest(sent: &[(String, Option<String>)]) -> Vec<Rec> {
    let mut last: BTreeMap<&str, usize> = BTreeMap::new();
    for (i, (k, _)) in sent.iter().enumerate() {
        last.insert(k, i);
    }
    let mut out: Vec<Rec> = last
        .values()
        .filter(|&&i| sent[i].1.is_some())
        .map(|&i| (i as i64, sent[i].0.clone(), sent[i].1.clone()))
        .collect();
    out.sort();
    out
}

fn read_all(c: &mut RawClient, topic: &str) -> Vec<Rec> {
    let recs = kafka::fetch_all(c, topic, 0, 0);
    let mut last = -1;
    recs.into_iter()
        .map(|r| {
            assert!(
                r.offset > last,
                "offsets increase: {} after {last}",
                r.offset
            );
            last = r.offset;
            let s = |b: Option<bytes::Bytes>| b.map(|b| String::from_utf8_lossy(&b).to_string());
            (r.offset, s(r.key).unwrap_or_default(), s(r.value))
        })
        .collect()
}

/// Polls until `topic` reads as `want`; fails with what it last read.
fn wait_for(c: &mut RawClient, topic: &str, want: &[Rec]) {
    let deadline = Instant::now() + DEADLINE;
    loop {
        let got = read_all(c, topic);
        if got == want {
            return;
        }
        assert!(
            Instant::now() < deadline,
            "{topic} never read as compacted: {} records, want {}; first: {:?}",
            got.len(),
            want.len(),
            got.first()
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// A record after the others, so the segment holding the last round and the tombstones
/// is sealed by `segment.ms` and becomes cleanable; returns its offset.
fn seal_with_filler(broker: &Broker, topic: &str) {
    std::thread::sleep(Duration::from_millis(1500));
    let p = producer(broker);
    p.send(
        BaseRecord::to(topic)
            .partition(0)
            .key("filler")
            .payload("x"),
    )
    .map_err(|(e, _)| e)
    .expect("enqueue");
    p.flush(Duration::from_secs(30)).expect("flush");
}

fn set_configs(c: &mut RawClient, topic: &str, configs: &[(&str, &str)]) {
    let req = IncrementalAlterConfigsRequest::default().with_resources(vec![
        iac::AlterConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(topic))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        iac::AlterableConfig::default()
                            .with_name(sb(k))
                            .with_config_operation(0)
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            ),
    ]);
    let v = c.pick_version::<IncrementalAlterConfigsRequest>(1);
    let resp: IncrementalAlterConfigsResponse = c.call(v, &req);
    assert_eq!(
        resp.responses[0].error_code, NONE,
        "{:?}",
        resp.responses[0].error_message
    );
}

/// A topic config's value as DescribeConfigs reports it.
fn described(c: &mut RawClient, topic: &str, key: &str) -> Option<String> {
    let req = DescribeConfigsRequest::default().with_resources(vec![
        DescribeConfigsResource::default()
            .with_resource_type(2)
            .with_resource_name(sb(topic))
            .with_configuration_keys(Some(vec![sb(key)])),
    ]);
    let v = c.pick_version::<DescribeConfigsRequest>(4);
    let resp: DescribeConfigsResponse = c.call(v, &req);
    let r = &resp.results[0];
    assert_eq!(r.error_code, NONE, "describe {topic}");
    r.configs
        .iter()
        .find(|e| e.name.as_str() == key)
        .and_then(|e| e.value.as_ref().map(|v| v.to_string()))
}

fn rdkafka_read(broker: &Broker, topic: &str, want: usize) -> Vec<Rec> {
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
    while out.len() < want && Instant::now() < deadline {
        if let Some(m) = consumer.poll(Duration::from_millis(200)) {
            let m = m.expect("consume");
            let s = |b: Option<&[u8]>| b.map(|b| String::from_utf8_lossy(b).to_string());
            out.push((m.offset(), s(m.key()).unwrap_or_default(), s(m.payload())));
        }
    }
    out
}

#[test]
fn compacted_topics_keep_the_latest_value_per_key() {
    let _heavy = common::heavy_lock();
    let mut broker = Broker::start(&["log.cleaner.backoff.ms=200"]);
    let mut c = RawClient::connect(broker.addr());
    let compact = [
        ("cleanup.policy", "compact"),
        ("segment.ms", "1000"),
        ("min.cleanable.dirty.ratio", "0.01"),
        ("delete.retention.ms", "3000"),
    ];
    create(&mut c, "cmp", &compact);
    assert_eq!(
        described(&mut c, "cmp", "cleanup.policy").as_deref(),
        Some("compact")
    );
    assert_eq!(
        described(&mut c, "cmp", "delete.retention.ms").as_deref(),
        Some("3000")
    );

    // Keyless records: refused, nothing appended.
    let end = kafka::latest_offset(&mut c, "cmp", 0);
    let (err, _) = kafka::produce_one(
        &mut c,
        "cmp",
        0,
        build_batch(&[b"no key"], common::recent_ts()),
    );
    assert_eq!(err, INVALID_RECORD);
    assert_eq!(
        kafka::latest_offset(&mut c, "cmp", 0),
        end,
        "nothing appended"
    );

    let deleted = [0, 1, 2];
    let mut sent = produce_updates(&broker, "cmp", &deleted);
    seal_with_filler(&broker, "cmp");
    sent.push(("filler".to_string(), Some("x".to_string())));
    let high_watermark = kafka::latest_offset(&mut c, "cmp", 0);
    assert_eq!(
        high_watermark,
        sent.len() as i64,
        "one offset per record sent"
    );
    let want = latest(&sent);
    assert!(want.len() < sent.len() / 3);
    wait_for(&mut c, "cmp", &want);
    assert_eq!(
        kafka::latest_offset(&mut c, "cmp", 0),
        high_watermark,
        "high watermark kept"
    );
    assert_eq!(
        kafka::list_offset(&mut c, "cmp", 0, -2),
        (NONE, 0),
        "log start kept"
    );
    // librdkafka reads the cleaned log too (gaps, rewritten and empty batches).
    assert_eq!(rdkafka_read(&broker, "cmp", want.len()), want);

    // A topic that starts with delete and is switched to compact live.
    create(&mut c, "conv", &[("segment.ms", "1000")]);
    let mut sent = produce_updates(&broker, "conv", &[]);
    seal_with_filler(&broker, "conv");
    sent.push(("filler".to_string(), Some("x".to_string())));
    std::thread::sleep(Duration::from_millis(1500));
    assert_eq!(
        read_all(&mut c, "conv").len(),
        sent.len(),
        "delete policy: nothing cleaned"
    );
    set_configs(
        &mut c,
        "conv",
        &[
            ("cleanup.policy", "compact"),
            ("min.cleanable.dirty.ratio", "0.01"),
        ],
    );
    assert_eq!(
        described(&mut c, "conv", "cleanup.policy").as_deref(),
        Some("compact")
    );
    wait_for(&mut c, "conv", &latest(&sent));

    // A restart reads the same.
    let before = (read_all(&mut c, "cmp"), read_all(&mut c, "conv"));
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!((read_all(&mut c, "cmp"), read_all(&mut c, "conv")), before);
    assert!(broker.log().contains("cleaner: cmp-0 clean up to offset"));
}

/// Kafka names every keyless record of a refused batch in ProduceResponse v8+
/// `record_errors` (librdkafka fails exactly those with INVALID_RECORD and the rest of the
/// batch with `_INVALID_DIFFERENT_RECORD`); older versions get the error code alone.
#[test]
fn produce_v8_and_later_name_each_keyless_record() {
    use kafka_protocol::messages::{ProduceRequest, ProduceResponse};
    use ringbroker::protocol::batch::testing::{KeyValue, keyed};
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    create(&mut c, "named", &[("cleanup.policy", "compact")]);
    let records: Vec<KeyValue<'_>> = (0..20)
        .map(|i| {
            let key: Option<&[u8]> = if i % 10 == 3 { None } else { Some(b"k") };
            (key, Some(&b"v"[..]))
        })
        .collect();
    let batch = keyed(&records, common::now_ms());
    let max = c.pick_version::<ProduceRequest>(12);
    let message = "Compacted topic cannot accept message without key in topic partition named-0";
    for v in [7, 8, 9, max] {
        let resp: ProduceResponse =
            c.call(v, &kafka::produce_request(&[("named", 0, batch.clone())]));
        let p = &resp.responses[0].partition_responses[0];
        assert_eq!(p.error_code, INVALID_RECORD, "v{v}");
        let named: Vec<(i32, Option<String>)> = p
            .record_errors
            .iter()
            .map(|e| {
                let m = e.batch_index_error_message.as_ref().map(|m| m.to_string());
                (e.batch_index, m)
            })
            .collect();
        if v >= 8 {
            let want = vec![
                (3, Some(message.to_string())),
                (13, Some(message.to_string())),
            ];
            assert_eq!(named, want, "v{v}");
            assert_eq!(
                p.error_message.as_ref().map(|m| m.to_string()),
                Some(format!(
                    "One or more records have been rejected due to 2 record errors in total, \
                     and only showing the first three errors at most: \
                     [RecordError(batchIndex=3, message='{message}'), \
                     RecordError(batchIndex=13, message='{message}')]"
                )),
                "v{v}"
            );
        } else {
            assert!(named.is_empty(), "v{v}: {named:?}");
        }
    }
    // Nothing of the refused batches was written.
    assert_eq!(kafka::latest_offset(&mut c, "named", 0), 0);
}
