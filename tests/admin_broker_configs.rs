//! Dynamic broker configs through Kafka's admin APIs against the real binary: a
//! cluster-wide `log.*` default set with IncrementalAlterConfigs is reported by
//! DescribeConfigs of the broker (DYNAMIC_DEFAULT_BROKER_CONFIG) and of a topic without an
//! override, takes effect on live logs (retention deletes segments, a lowered
//! `message.max.bytes` refuses a produce), loses to a topic override, loses to a
//! per-broker value, is removed by DELETE (the static value again), survives a restart;
//! non-dynamic keys are refused and change nothing; kafka-python's admin client; and a
//! change made through one broker of a cluster is read back from every broker.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use common::kafka::{self, MESSAGE_TOO_LARGE, NONE};
use common::{Broker, RawClient};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResourceResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_request as ac,
    incremental_alter_configs_request as iac,
};
use kafka_protocol::protocol::StrBytes;
use ringbroker::protocol::batch::testing::batch_of_size;
use std::time::{Duration, Instant};

const INVALID_CONFIG: i16 = 40;
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const DYNAMIC_BROKER_CONFIG: i8 = 2;
const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

/// One config of one resource as DescribeConfigs (v4, with synonyms) reports it:
/// (value, source, synonyms as (name, value, source)).
type Described = (String, i8, Vec<(String, String, i8)>);

fn describe(c: &mut RawClient, resource_type: i8, name: &str, key: &str) -> Described {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_resources(vec![
            DescribeConfigsResource::default()
                .with_resource_type(resource_type)
                .with_resource_name(sb(name))
                .with_configuration_keys(Some(vec![sb(key)])),
        ]);
    let resp: DescribeConfigsResponse = c.call(4, &req);
    let r = &resp.results[0];
    assert_eq!(r.error_code, NONE, "describe {name}: {:?}", r.error_message);
    let e: &DescribeConfigsResourceResult = r
        .configs
        .iter()
        .find(|e| e.name.as_str() == key)
        .unwrap_or_else(|| panic!("{name} lists no {key}"));
    let text = |v: &Option<StrBytes>| v.as_ref().map(|v| v.to_string()).unwrap_or_default();
    (
        text(&e.value),
        e.config_source,
        e.synonyms
            .iter()
            .map(|s| (s.name.to_string(), text(&s.value), s.source))
            .collect(),
    )
}

/// (value, source) of a key.
fn value_of(c: &mut RawClient, resource_type: i8, name: &str, key: &str) -> (String, i8) {
    let (v, s, _) = describe(c, resource_type, name, key);
    (v, s)
}

fn incremental(
    c: &mut RawClient,
    name: &str,
    ops: &[(&str, i8, Option<&str>)],
    validate_only: bool,
) -> i16 {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            iac::AlterConfigsResource::default()
                .with_resource_type(BROKER)
                .with_resource_name(sb(name))
                .with_configs(
                    ops.iter()
                        .map(|(k, op, v)| {
                            iac::AlterableConfig::default()
                                .with_name(sb(k))
                                .with_config_operation(*op)
                                .with_value(v.map(sb))
                        })
                        .collect(),
                ),
        ]);
    let resp: IncrementalAlterConfigsResponse = c.call(1, &req);
    assert_eq!(resp.responses.len(), 1);
    resp.responses[0].error_code
}

fn alter(c: &mut RawClient, name: &str, configs: &[(&str, &str)]) -> i16 {
    let req = AlterConfigsRequest::default().with_resources(vec![
        ac::AlterConfigsResource::default()
            .with_resource_type(BROKER)
            .with_resource_name(sb(name))
            .with_configs(
                configs
                    .iter()
                    .map(|(k, v)| {
                        ac::AlterableConfig::default()
                            .with_name(sb(k))
                            .with_value(Some(sb(v)))
                    })
                    .collect(),
            ),
    ]);
    let resp: AlterConfigsResponse = c.call(2, &req);
    resp.responses[0].error_code
}

fn earliest(c: &mut RawClient, topic: &str) -> i64 {
    let (err, off) = kafka::list_offset(c, topic, 0, -2);
    assert_eq!(err, NONE);
    off
}

fn s(v: &str) -> String {
    v.to_string()
}

#[test]
fn cluster_wide_and_per_broker_defaults_reach_topics_and_live_logs() {
    let mut broker = Broker::start(&["log.retention.ms=86400000", "log.segment.bytes=1048576"]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "plain", 1);
    let own = [
        ("retention.bytes", Some("-1")),
        ("max.message.bytes", Some("500000")),
    ];
    assert_eq!(kafka::create_topic_with(&mut c, "own", 1, &own).0, NONE);
    let ts = common::recent_ts();
    for topic in ["plain", "own"] {
        for _ in 0..32 {
            let (err, _) = kafka::produce_one(&mut c, topic, 0, batch_of_size(100_000, 10, ts));
            assert_eq!(err, NONE);
        }
    }

    // Cluster-wide log.retention.ms: the broker and a topic without override report it.
    let ops = [("log.retention.ms", SET, Some("3600000"))];
    assert_eq!(incremental(&mut c, "", &ops, false), NONE);
    let (v, src, syn) = describe(&mut c, BROKER, "0", "log.retention.ms");
    assert_eq!(
        (v.as_str(), src),
        ("3600000", DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(
        syn,
        vec![
            (
                s("log.retention.ms"),
                s("3600000"),
                DYNAMIC_DEFAULT_BROKER_CONFIG
            ),
            (s("log.retention.ms"), s("86400000"), STATIC_BROKER_CONFIG),
        ]
    );
    let (v, src, syn) = describe(&mut c, TOPIC, "plain", "retention.ms");
    assert_eq!(
        (v.as_str(), src),
        ("3600000", DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(
        syn[0],
        (
            s("log.retention.ms"),
            s("3600000"),
            DYNAMIC_DEFAULT_BROKER_CONFIG
        )
    );

    // A lowered retention.bytes default deletes old segments of the topic without
    // override; the topic whose override keeps everything keeps everything.
    assert_eq!(earliest(&mut c, "plain"), 0);
    let ops = [("log.retention.bytes", SET, Some("1048576"))];
    assert_eq!(incremental(&mut c, "", &ops, false), NONE);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut start = 0;
    while Instant::now() < deadline && start == 0 {
        std::thread::sleep(Duration::from_millis(50));
        start = earliest(&mut c, "plain");
    }
    assert!(start >= 100, "log start of plain moved to {start}");
    assert_eq!(earliest(&mut c, "own"), 0, "the topic override wins");
    assert_eq!(
        value_of(&mut c, TOPIC, "own", "retention.bytes"),
        (s("-1"), DYNAMIC_TOPIC_CONFIG)
    );

    // A lowered message.max.bytes for this broker refuses a larger batch, except where the
    // topic overrides max.message.bytes.
    let big = batch_of_size(20_000, 4, ts);
    assert_eq!(kafka::produce_one(&mut c, "plain", 0, big.clone()).0, NONE);
    assert_eq!(
        incremental(
            &mut c,
            "0",
            &[("message.max.bytes", SET, Some("10000"))],
            false
        ),
        NONE
    );
    assert_eq!(
        kafka::produce_one(&mut c, "plain", 0, big.clone()).0,
        MESSAGE_TOO_LARGE
    );
    assert_eq!(kafka::produce_one(&mut c, "own", 0, big.clone()).0, NONE);

    // Per-broker beats cluster-wide; the cluster-wide resource shows its own layer.
    let ops = [("log.retention.ms", SET, Some("7200000"))];
    assert_eq!(incremental(&mut c, "0", &ops, false), NONE);
    let (v, src, syn) = describe(&mut c, BROKER, "0", "log.retention.ms");
    assert_eq!((v.as_str(), src), ("7200000", DYNAMIC_BROKER_CONFIG));
    let sources: Vec<i8> = syn.iter().map(|x| x.2).collect();
    assert_eq!(
        sources,
        vec![
            DYNAMIC_BROKER_CONFIG,
            DYNAMIC_DEFAULT_BROKER_CONFIG,
            STATIC_BROKER_CONFIG
        ]
    );
    assert_eq!(
        value_of(&mut c, BROKER, "", "log.retention.ms"),
        (s("3600000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(
        value_of(&mut c, TOPIC, "plain", "retention.ms"),
        (s("7200000"), DYNAMIC_BROKER_CONFIG)
    );

    // Non-dynamic keys are refused with INVALID_CONFIG, and nothing of the request applies.
    for key in ["log.io", "listen", "data.dir", "node.id"] {
        let ops = [
            ("log.retention.ms", SET, Some("1000")),
            (key, SET, Some("x:1")),
        ];
        assert_eq!(
            incremental(&mut c, "", &ops, false),
            INVALID_CONFIG,
            "{key}"
        );
    }
    assert_eq!(
        incremental(&mut c, "", &[("log.retention.ms", SET, Some("x"))], false),
        INVALID_CONFIG
    );
    assert_eq!(
        incremental(&mut c, "", &[("log.segment.bytes", SET, Some("7"))], false),
        INVALID_CONFIG
    );
    assert_eq!(
        value_of(&mut c, BROKER, "", "log.retention.ms"),
        (s("3600000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    // validate_only checks and changes nothing.
    assert_eq!(
        incremental(&mut c, "", &[("log.retention.ms", SET, Some("1000"))], true),
        NONE
    );
    assert_eq!(
        value_of(&mut c, BROKER, "", "log.retention.ms").0,
        "3600000"
    );
    // APPEND on the list key.
    assert_eq!(
        incremental(
            &mut c,
            "",
            &[("log.cleanup.policy", APPEND, Some("compact"))],
            false
        ),
        NONE
    );
    assert_eq!(
        value_of(&mut c, TOPIC, "plain", "cleanup.policy"),
        (s("compact,delete"), DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    // ... which compacts the topic at once: a keyless record is refused (INVALID_RECORD).
    let keyless = batch_of_size(2_000, 2, ts);
    assert_eq!(
        kafka::produce_one(&mut c, "plain", 0, keyless.clone()).0,
        87
    );
    let ops = [("log.cleanup.policy", SUBTRACT, Some("compact"))];
    assert_eq!(incremental(&mut c, "", &ops, false), NONE);
    assert_eq!(kafka::produce_one(&mut c, "plain", 0, keyless).0, NONE);

    // A restart keeps them.
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(
        value_of(&mut c, BROKER, "0", "log.retention.ms"),
        (s("7200000"), DYNAMIC_BROKER_CONFIG)
    );
    assert_eq!(
        value_of(&mut c, BROKER, "0", "message.max.bytes"),
        (s("10000"), DYNAMIC_BROKER_CONFIG)
    );
    assert_eq!(
        value_of(&mut c, BROKER, "", "log.retention.bytes"),
        (s("1048576"), DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(
        kafka::produce_one(&mut c, "plain", 0, big.clone()).0,
        MESSAGE_TOO_LARGE
    );

    // DELETE restores the layer below: the cluster-wide value, then the static one.
    assert_eq!(
        incremental(
            &mut c,
            "0",
            &[
                ("log.retention.ms", DELETE, None),
                ("message.max.bytes", DELETE, None)
            ],
            false
        ),
        NONE
    );
    assert_eq!(
        value_of(&mut c, TOPIC, "plain", "retention.ms"),
        (s("3600000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(kafka::produce_one(&mut c, "plain", 0, big).0, NONE);
    assert_eq!(
        incremental(&mut c, "", &[("log.retention.ms", DELETE, None)], false),
        NONE
    );
    assert_eq!(
        value_of(&mut c, BROKER, "0", "log.retention.ms"),
        (s("86400000"), STATIC_BROKER_CONFIG)
    );
    assert_eq!(
        value_of(&mut c, TOPIC, "plain", "retention.ms"),
        (s("86400000"), STATIC_BROKER_CONFIG)
    );

    // AlterConfigs replaces every dynamic config of the resource.
    assert_eq!(alter(&mut c, "", &[("log.segment.ms", "3600000")]), NONE);
    assert_eq!(
        value_of(&mut c, BROKER, "", "log.segment.ms"),
        (s("3600000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
    );
    assert_eq!(
        value_of(&mut c, BROKER, "", "log.retention.bytes"),
        (s("-1"), DEFAULT_CONFIG)
    );
    assert_eq!(
        value_of(&mut c, BROKER, "", "log.cleanup.policy"),
        (s("delete"), DEFAULT_CONFIG)
    );
    assert_eq!(
        alter(&mut c, "", &[("listen", "127.0.0.1:1")]),
        INVALID_CONFIG
    );
    assert_eq!(value_of(&mut c, BROKER, "", "log.segment.ms").0, "3600000");
}

#[test]
fn kafka_python_admin_alters_broker_configs() {
    common::ensure_kafka_python();
    let broker = Broker::start(&[]);
    let script: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "python",
        "admin_broker_configs.py",
    ]
    .iter()
    .collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .arg(broker.bootstrap())
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed: {stdout}");
    assert!(stdout.ends_with("OK\n"), "{stdout}");
    // What kafka-python changed is what the raw client reads.
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(
        value_of(&mut c, BROKER, "0", "log.segment.ms"),
        (s("7200000"), DYNAMIC_BROKER_CONFIG)
    );
    assert_eq!(
        value_of(&mut c, BROKER, "0", "log.retention.ms"),
        (s("604800000"), DEFAULT_CONFIG)
    );
}

#[test]
fn cluster_wide_change_through_one_broker_is_read_back_from_every_broker() {
    let mut c = cluster::Cluster::start3();
    let controller = c.wait_formed(&[1, 2, 3]);
    let other = c
        .ids()
        .into_iter()
        .find(|id| *id != controller)
        .unwrap_or(controller);
    c.create_topic_ok(other, "dyn", 3, 3);
    let mut raw = RawClient::connect(c.broker(other).addr());
    assert_eq!(
        incremental(
            &mut raw,
            "",
            &[("log.retention.ms", SET, Some("3600000"))],
            false
        ),
        NONE
    );
    assert_eq!(
        incremental(&mut raw, "", &[("log.io", SET, Some("direct"))], false),
        INVALID_CONFIG
    );
    for id in c.ids() {
        let mut r = RawClient::connect(c.broker(id).addr());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let b = value_of(&mut r, BROKER, &id.to_string(), "log.retention.ms");
            let t = value_of(&mut r, TOPIC, "dyn", "retention.ms");
            let want = (s("3600000"), DYNAMIC_DEFAULT_BROKER_CONFIG);
            if b == want && t == want {
                break;
            }
            assert!(Instant::now() < deadline, "broker {id} shows {b:?} / {t:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        assert_eq!(value_of(&mut r, BROKER, "", "log.io").1, DEFAULT_CONFIG);
    }

    // A per-broker value for `other`, set through the controller's broker: `other` takes
    // it (on itself and its topic), the others keep the cluster-wide value.
    let mut via = RawClient::connect(c.broker(controller).addr());
    let name = other.to_string();
    let ops = [("log.retention.ms", SET, Some("7200000"))];
    assert_eq!(incremental(&mut via, &name, &ops, false), NONE);
    for id in c.ids() {
        let mut r = RawClient::connect(c.broker(id).addr());
        let want = if id == other {
            (s("7200000"), DYNAMIC_BROKER_CONFIG)
        } else {
            (s("3600000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let b = value_of(&mut r, BROKER, &id.to_string(), "log.retention.ms");
            let t = value_of(&mut r, TOPIC, "dyn", "retention.ms");
            if b == want && t == want {
                break;
            }
            assert!(
                Instant::now() < deadline,
                "broker {id} shows {b:?} / {t:?}, want {want:?}"
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    // Restarted, `other` has both layers again from the metadata log.
    c.stop(other);
    c.restart(other);
    c.wait_formed(&[1, 2, 3]);
    let mut r = RawClient::connect(c.broker(other).addr());
    let deadline = Instant::now() + Duration::from_secs(10);
    loop {
        let b = value_of(&mut r, BROKER, &name, "log.retention.ms");
        let d = value_of(&mut r, BROKER, "", "log.retention.ms");
        if b == (s("7200000"), DYNAMIC_BROKER_CONFIG)
            && d == (s("3600000"), DYNAMIC_DEFAULT_BROKER_CONFIG)
        {
            break;
        }
        assert!(
            Instant::now() < deadline,
            "restarted broker {other} shows {b:?} / {d:?}"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
}
