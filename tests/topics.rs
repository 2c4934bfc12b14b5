//! Topic administration through the raw client: per-topic config overrides take effect,
//! invalid configs are refused without creating anything, and deleted topics are gone (also
//! after a restart) and can be created afresh.

mod common;

use common::kafka::{self, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use common::{Broker, RawClient};
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};
use ringbroker::protocol::batch::testing::build_batch;

const INVALID_CONFIG: i16 = 40;

/// CreateTopics for one topic with configs (a `None` value is a null config value); returns
/// the topic's error code.
fn create_with_configs(
    c: &mut RawClient,
    name: &str,
    partitions: i32,
    configs: &[(&str, Option<&str>)],
) -> i16 {
    kafka::create_topic_with(c, name, partitions, configs).0
}

fn delete_topics(c: &mut RawClient, names: &[&str]) -> Vec<(String, i16)> {
    let v = c.pick_version::<DeleteTopicsRequest>(5);
    let req = DeleteTopicsRequest::default()
        .with_timeout_ms(10_000)
        .with_topic_names(names.iter().map(|n| kafka::topic_name(n)).collect());
    let resp: DeleteTopicsResponse = c.call(v, &req);
    let mut out: Vec<(String, i16)> = resp
        .responses
        .iter()
        .map(|r| {
            (
                r.name.as_ref().map(|n| n.0.to_string()).unwrap_or_default(),
                r.error_code,
            )
        })
        .collect();
    out.sort();
    out
}

fn topic_error(c: &mut RawClient, name: &str) -> i16 {
    kafka::metadata(c, &[name]).topics[0].error_code
}

#[test]
fn per_topic_io_override_takes_effect() {
    let broker = Broker::start(&["log.io=buffered"]);
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(
        create_with_configs(
            &mut c,
            "t-direct",
            1,
            &[("io", Some("direct")), ("flush", Some("fsync"))]
        ),
        NONE
    );
    assert_eq!(create_with_configs(&mut c, "t-default", 1, &[]), NONE);
    for t in ["t-direct", "t-default"] {
        let ts = common::recent_ts();
        assert_eq!(
            kafka::produce_one(&mut c, t, 0, build_batch(&[b"a", b"b"], ts)),
            (NONE, 0)
        );
        let got = kafka::fetch_all(&mut c, t, 0, 0);
        assert_eq!(got.len(), 2, "{t}");
    }
    let open = broker.open_files(".log");
    let writable_direct = |topic: &str| -> Vec<bool> {
        open.iter()
            .filter(|(p, flags)| {
                p.parent()
                    .and_then(|d| d.file_name())
                    .map(|n| n.to_string_lossy().to_string())
                    == Some(format!("{topic}-0"))
                    && flags & libc::O_ACCMODE as u32 != libc::O_RDONLY as u32
            })
            .map(|(_, flags)| flags & libc::O_DIRECT as u32 != 0)
            .collect::<Vec<bool>>()
    };
    // A segment has more than one writable descriptor (the file and a duplicate the
    // blocking pool writes through): all of them must agree.
    let writable_direct = |topic: &str| -> Vec<bool> {
        let mut kinds = writable_direct(topic);
        kinds.sort_unstable();
        kinds.dedup();
        kinds
    };
    assert_eq!(
        writable_direct("t-direct"),
        vec![true],
        "topic io=direct: {open:?}"
    );
    assert_eq!(
        writable_direct("t-default"),
        vec![false],
        "broker default buffered: {open:?}"
    );
}

#[test]
fn invalid_topic_configs_create_nothing() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    for (name, configs) in [
        ("bad-io", vec![("io", Some("mmap"))]),
        ("bad-flush", vec![("flush", Some("sometimes"))]),
        ("bad-number", vec![("segment.bytes", Some("lots"))]),
        ("unknown-key", vec![("no.such.config", Some("1"))]),
        ("null-value", vec![("io", None)]),
    ] {
        assert_eq!(
            create_with_configs(&mut c, name, 1, &configs),
            INVALID_CONFIG,
            "CreateTopics {name} with {configs:?}"
        );
        assert_eq!(
            topic_error(&mut c, name),
            UNKNOWN_TOPIC_OR_PARTITION,
            "a refused CreateTopics must not create {name}"
        );
    }
}

#[test]
fn deleted_topics_are_gone_and_can_be_recreated() {
    let mut broker = Broker::start(&["auto.create.topics.enable=false"]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "doomed", 2);
    kafka::create_topic(&mut c, "kept", 1);
    let ts = common::recent_ts();
    for p in 0..2 {
        assert_eq!(
            kafka::produce_one(&mut c, "doomed", p, build_batch(&[b"old-1", b"old-2"], ts)),
            (NONE, 0)
        );
    }
    assert_eq!(
        kafka::produce_one(&mut c, "kept", 0, build_batch(&[b"k"], ts)),
        (NONE, 0)
    );

    assert_eq!(
        delete_topics(&mut c, &["doomed", "never-existed"]),
        vec![
            ("doomed".to_string(), NONE),
            ("never-existed".to_string(), UNKNOWN_TOPIC_OR_PARTITION)
        ]
    );
    assert_eq!(topic_error(&mut c, "doomed"), UNKNOWN_TOPIC_OR_PARTITION);
    let (err, _) = kafka::produce_one(&mut c, "doomed", 0, build_batch(&[b"x"], ts));
    assert_eq!(
        err, UNKNOWN_TOPIC_OR_PARTITION,
        "produce to a deleted topic"
    );

    // Still gone after a restart; the other topic is intact.
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(
        topic_error(&mut c, "doomed"),
        UNKNOWN_TOPIC_OR_PARTITION,
        "after restart"
    );
    assert_eq!(kafka::latest_offset(&mut c, "kept", 0), 1);

    // Created again it starts empty, with the new partition count.
    kafka::create_topic(&mut c, "doomed", 3);
    for p in 0..3 {
        assert_eq!(
            kafka::latest_offset(&mut c, "doomed", p),
            0,
            "recreated partition {p}"
        );
        assert!(kafka::fetch_all(&mut c, "doomed", p, 0).is_empty());
    }
    assert_eq!(
        kafka::produce_one(&mut c, "doomed", 0, build_batch(&[b"new"], ts)),
        (NONE, 0)
    );
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    let recs = kafka::fetch_all(&mut c, "doomed", 0, 0);
    let values: Vec<_> = recs.iter().map(|r| r.value.clone()).collect();
    assert_eq!(values, vec![Some(bytes::Bytes::from_static(b"new"))]);
    assert_eq!(
        kafka::metadata(&mut c, &["doomed"]).topics[0]
            .partitions
            .len(),
        3
    );
}
