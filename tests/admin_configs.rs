//! Topic configs through Kafka's admin APIs against the real binary: DescribeConfigs of
//! topics and the broker (sources, defaults, overrides, key filter, unknown topic),
//! IncrementalAlterConfigs (SET, DELETE, APPEND, SUBTRACT) and AlterConfigs read back,
//! persisted across a restart, `validate_only`, refusals that change nothing, changes that
//! take effect on a live topic (retention deletes segments, a lowered `max.message.bytes`
//! refuses a produce), librdkafka's admin client, and a change made through a
//! non-controller broker of a cluster read back from every broker.

#[path = "common/cluster.rs"]
mod cluster;
mod common;

use common::kafka::{self, INVALID_REQUEST, MESSAGE_TOO_LARGE, NONE, UNKNOWN_TOPIC_OR_PARTITION};
use common::{Broker, RawClient};
use kafka_protocol::messages::describe_configs_request::DescribeConfigsResource;
use kafka_protocol::messages::describe_configs_response::DescribeConfigsResult;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, DescribeConfigsRequest, DescribeConfigsResponse,
    IncrementalAlterConfigsRequest, IncrementalAlterConfigsResponse, alter_configs_request as ac,
    incremental_alter_configs_request as iac,
};
use kafka_protocol::protocol::StrBytes;
use ringbroker::protocol::batch::testing::batch_of_size;
use std::collections::BTreeMap;
use std::time::{Duration, Instant};

const INVALID_CONFIG: i16 = 40;
const TOPIC: i8 = 2;
const BROKER: i8 = 4;
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;
/// Every topic config the broker knows (`config::topic::TOPIC_KEYS`).
const TOPIC_KEY_COUNT: usize = 23;

fn sb(s: &str) -> StrBytes {
    StrBytes::from_string(s.to_string())
}

fn describe_at(
    c: &mut RawClient,
    version: i16,
    resources: &[(i8, &str, Option<&[&str]>)],
) -> Vec<DescribeConfigsResult> {
    let req = DescribeConfigsRequest::default()
        .with_include_synonyms(true)
        .with_include_documentation(version >= 3)
        .with_resources(
            resources
                .iter()
                .map(|(t, n, keys)| {
                    DescribeConfigsResource::default()
                        .with_resource_type(*t)
                        .with_resource_name(sb(n))
                        .with_configuration_keys(keys.map(|k| k.iter().map(|k| sb(k)).collect()))
                })
                .collect(),
        );
    let resp: DescribeConfigsResponse = c.call(version, &req);
    assert_eq!(resp.results.len(), resources.len());
    resp.results
}

/// A topic's configs: name → (value, source).
fn topic_configs(c: &mut RawClient, topic: &str) -> BTreeMap<String, (String, i8)> {
    let r = describe_at(c, 4, &[(TOPIC, topic, None)]).remove(0);
    assert_eq!(
        r.error_code, NONE,
        "describe {topic}: {:?}",
        r.error_message
    );
    r.configs
        .iter()
        .map(|e| {
            let v = e.value.as_ref().map(|v| v.to_string()).unwrap_or_default();
            (e.name.to_string(), (v, e.config_source))
        })
        .collect()
}

type Op<'a> = (&'a str, i8, Option<&'a str>);

/// IncrementalAlterConfigs of one topic; returns its error code.
fn incremental(c: &mut RawClient, topic: &str, ops: &[Op], validate_only: bool) -> i16 {
    incremental_typed(c, TOPIC, topic, ops, validate_only)
}

fn incremental_typed(
    c: &mut RawClient,
    resource_type: i8,
    name: &str,
    ops: &[Op],
    validate_only: bool,
) -> i16 {
    let req = IncrementalAlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            iac::AlterConfigsResource::default()
                .with_resource_type(resource_type)
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
    let v = c.pick_version::<IncrementalAlterConfigsRequest>(1);
    let resp: IncrementalAlterConfigsResponse = c.call(v, &req);
    assert_eq!(resp.responses.len(), 1);
    assert_eq!(resp.responses[0].resource_name.as_str(), name);
    resp.responses[0].error_code
}

/// AlterConfigs (replace every override) of one topic; returns its error code.
fn alter(c: &mut RawClient, topic: &str, configs: &[(&str, &str)], validate_only: bool) -> i16 {
    let req = AlterConfigsRequest::default()
        .with_validate_only(validate_only)
        .with_resources(vec![
            ac::AlterConfigsResource::default()
                .with_resource_type(TOPIC)
                .with_resource_name(sb(topic))
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
    let v = c.pick_version::<AlterConfigsRequest>(2);
    let resp: AlterConfigsResponse = c.call(v, &req);
    resp.responses[0].error_code
}

const SET: i8 = 0;
const DELETE: i8 = 1;
const APPEND: i8 = 2;
const SUBTRACT: i8 = 3;

#[test]
fn describe_reports_topic_and_broker_configs_with_sources() {
    let broker = Broker::start(&["log.segment.bytes=2097152"]);
    let mut c = RawClient::connect(broker.addr());
    let (err, _) = kafka::create_topic_with(&mut c, "desc", 1, &[("retention.ms", Some("1000"))]);
    assert_eq!(err, NONE);

    for version in 1..=4 {
        let r = describe_at(&mut c, version, &[(TOPIC, "desc", None)]).remove(0);
        assert_eq!(r.error_code, NONE, "v{version}");
        assert_eq!(
            r.configs.len(),
            TOPIC_KEY_COUNT,
            "v{version}: every topic config"
        );
        let get = |k: &str| r.configs.iter().find(|e| e.name.as_str() == k).unwrap();
        // An override: its own value, DYNAMIC_TOPIC_CONFIG, and the broker's as a synonym.
        let ret = get("retention.ms");
        assert_eq!(ret.value.as_deref(), Some("1000"));
        assert_eq!(ret.config_source, DYNAMIC_TOPIC_CONFIG);
        assert!(!ret.read_only && !ret.is_sensitive);
        let syn: Vec<(String, i8)> = ret
            .synonyms
            .iter()
            .map(|s| (s.name.to_string(), s.source))
            .collect();
        assert_eq!(
            syn,
            vec![
                ("retention.ms".to_string(), DYNAMIC_TOPIC_CONFIG),
                ("log.retention.ms".to_string(), DEFAULT_CONFIG)
            ]
        );
        // Set in the broker's configuration: STATIC_BROKER_CONFIG with the broker's value.
        let seg = get("segment.bytes");
        assert_eq!(seg.value.as_deref(), Some("2097152"));
        assert_eq!(seg.config_source, STATIC_BROKER_CONFIG);
        // Built in: DEFAULT_CONFIG.
        let max = get("max.message.bytes");
        assert_eq!(max.value.as_deref(), Some("1048588"));
        assert_eq!(max.config_source, DEFAULT_CONFIG);
        assert_eq!(get("cleanup.policy").value.as_deref(), Some("delete"));
        if version >= 3 {
            assert_eq!(ret.config_type, 5, "LONG");
            assert_eq!(get("cleanup.policy").config_type, 7, "LIST");
            assert!(ret.documentation.is_some());
        }
    }

    // The key filter is honoured; unknown keys are simply absent.
    let keys: &[&str] = &["retention.ms", "flush", "no.such.key"];
    let r = describe_at(&mut c, 4, &[(TOPIC, "desc", Some(keys))]).remove(0);
    let names: Vec<&str> = r.configs.iter().map(|e| e.name.as_str()).collect();
    assert_eq!(names, vec!["flush", "retention.ms"]);

    // Unknown topic, the broker (by id and as the default), another broker, unknown type.
    let rs = describe_at(
        &mut c,
        4,
        &[
            (TOPIC, "nope", None),
            (BROKER, "0", None),
            (
                BROKER,
                "",
                Some(&["log.segment.bytes", "message.max.bytes"]),
            ),
            (BROKER, "7", None),
            (99, "x", None),
        ],
    );
    assert_eq!(rs[0].error_code, UNKNOWN_TOPIC_OR_PARTITION);
    assert_eq!(rs[1].error_code, NONE);
    let seg = rs[1]
        .configs
        .iter()
        .find(|e| e.name.as_str() == "log.segment.bytes")
        .expect("broker lists log.segment.bytes");
    assert_eq!(seg.value.as_deref(), Some("2097152"));
    assert_eq!(seg.config_source, STATIC_BROKER_CONFIG);
    assert!(
        !seg.read_only,
        "log.segment.bytes is a dynamic broker config"
    );
    let listen = rs[1]
        .configs
        .iter()
        .find(|e| e.name.as_str() == "listen")
        .expect("broker lists listen");
    assert!(listen.read_only, "listen cannot change at run time");
    assert!(rs[1].configs.len() > 10);
    assert_eq!(rs[2].error_code, NONE);
    assert_eq!(rs[2].configs.len(), 2);
    assert_eq!(rs[3].error_code, INVALID_REQUEST);
    assert_eq!(rs[4].error_code, INVALID_REQUEST);
}

#[test]
fn alterations_read_back_persist_and_refusals_change_nothing() {
    let mut broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "alt", 2);
    let fresh = topic_configs(&mut c, "alt");
    assert!(fresh.values().all(|(_, s)| *s == DEFAULT_CONFIG));

    // SET, and APPEND to a list config.
    let ops: &[Op] = &[
        ("retention.ms", SET, Some("5000")),
        ("segment.bytes", SET, Some("2000000")),
        ("cleanup.policy", APPEND, Some("delete")),
    ];
    assert_eq!(incremental(&mut c, "alt", ops, false), NONE);
    let now = topic_configs(&mut c, "alt");
    assert_eq!(now["retention.ms"], ("5000".into(), DYNAMIC_TOPIC_CONFIG));
    assert_eq!(
        now["segment.bytes"],
        ("2000000".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        now["cleanup.policy"],
        ("delete".into(), DYNAMIC_TOPIC_CONFIG)
    );

    // DELETE goes back to the default.
    assert_eq!(
        incremental(&mut c, "alt", &[("retention.ms", DELETE, None)], false),
        NONE
    );
    let now = topic_configs(&mut c, "alt");
    assert_eq!(now["retention.ms"], ("604800000".into(), DEFAULT_CONFIG));

    // validate_only accepts and changes nothing.
    let before = topic_configs(&mut c, "alt");
    assert_eq!(
        incremental(&mut c, "alt", &[("flush", SET, Some("fsync"))], true),
        NONE
    );
    assert_eq!(alter(&mut c, "alt", &[("flush", "fsync")], true), NONE);
    assert_eq!(topic_configs(&mut c, "alt"), before);

    // Bad values and ops: INVALID_CONFIG, nothing changed (not even the good op beside).
    for ops in [
        &[("segment.bytes", SET, Some("14"))][..],
        &[
            ("retention.ms", SET, Some("1")),
            ("segment.ms", SET, Some("5")),
        ][..],
        &[("retention.ms", APPEND, Some("5"))][..],
        &[("cleanup.policy", SUBTRACT, Some("delete"))][..],
        &[("no.such.key", SET, Some("1"))][..],
        &[("io", SET, Some("direct"))][..],
        &[("retention.ms", SET, None)][..],
    ] {
        assert_eq!(
            incremental(&mut c, "alt", ops, false),
            INVALID_CONFIG,
            "{ops:?}"
        );
    }
    assert_eq!(
        alter(&mut c, "alt", &[("max.message.bytes", "-3")], false),
        INVALID_CONFIG
    );
    assert_eq!(topic_configs(&mut c, "alt"), before);

    // Unknown topic, internal topic, a topic key on the broker resource, unknown op,
    // duplicate key.
    let set: &[Op] = &[("retention.ms", SET, Some("1000"))];
    assert_eq!(
        incremental(&mut c, "ghost", set, false),
        UNKNOWN_TOPIC_OR_PARTITION
    );
    assert_eq!(
        incremental(&mut c, "__consumer_offsets", set, false),
        INVALID_REQUEST
    );
    assert_eq!(
        incremental_typed(&mut c, BROKER, "0", set, false),
        INVALID_CONFIG
    );
    assert_eq!(
        incremental(&mut c, "alt", &[("retention.ms", 9, Some("1"))], false),
        INVALID_REQUEST
    );
    let dup: &[Op] = &[
        ("retention.ms", SET, Some("1000")),
        ("retention.ms", SET, Some("2000")),
    ];
    assert_eq!(incremental(&mut c, "alt", dup, false), INVALID_REQUEST);
    assert_eq!(topic_configs(&mut c, "alt"), before);

    // AlterConfigs replaces every override.
    assert_eq!(
        alter(&mut c, "alt", &[("max.message.bytes", "5000")], false),
        NONE
    );
    let replaced = topic_configs(&mut c, "alt");
    assert_eq!(
        replaced["max.message.bytes"],
        ("5000".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(replaced["segment.bytes"].1, DEFAULT_CONFIG);
    assert_eq!(replaced["cleanup.policy"].1, DEFAULT_CONFIG);

    // Persisted: the same after a restart.
    drop(c);
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    assert_eq!(topic_configs(&mut c, "alt"), replaced);
}

/// The replication settings tools set on their topics (Kafka Connect, Streams, Schema
/// Registry) are accepted at creation and by the alter APIs, checked as Kafka checks them,
/// and reported: with their broker default, or their built-in default when Kafka has no
/// broker setting for them (the throttled-replica lists).
#[test]
fn replication_settings_tools_set_are_accepted_checked_and_reported() {
    let mut broker = Broker::start(&["min.insync.replicas=2"]);
    let mut c = RawClient::connect(broker.addr());
    let (err, msg) = kafka::create_topic_with(
        &mut c,
        "repl",
        1,
        &[
            ("min.insync.replicas", Some("1")),
            ("unclean.leader.election.enable", Some("true")),
        ],
    );
    assert_eq!(err, NONE, "{msg:?}");
    let got = topic_configs(&mut c, "repl");
    assert_eq!(
        got["min.insync.replicas"],
        ("1".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        got["unclean.leader.election.enable"],
        ("true".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(
        got["leader.replication.throttled.replicas"],
        (String::new(), DEFAULT_CONFIG)
    );
    // A topic without overrides follows the broker's setting.
    kafka::create_topic(&mut c, "repl-default", 1);
    let got = topic_configs(&mut c, "repl-default");
    assert_eq!(
        got["min.insync.replicas"],
        ("2".into(), STATIC_BROKER_CONFIG)
    );

    const SET: i8 = 0;
    const APPEND: i8 = 2;
    let ops: &[Op] = &[
        ("leader.replication.throttled.replicas", SET, Some("0:0")),
        (
            "follower.replication.throttled.replicas",
            APPEND,
            Some("0:1"),
        ),
    ];
    assert_eq!(incremental(&mut c, "repl", ops, false), NONE);
    for (k, v) in [
        ("min.insync.replicas", "0"),
        ("unclean.leader.election.enable", "maybe"),
        ("leader.replication.throttled.replicas", "everything"),
    ] {
        let bad: &[Op] = &[(k, SET, Some(v))];
        assert_eq!(
            incremental(&mut c, "repl", bad, false),
            INVALID_CONFIG,
            "{k}={v}"
        );
    }
    // Kept across a restart, refusals changed nothing.
    broker.restart();
    let mut c = RawClient::connect(broker.addr());
    let got = topic_configs(&mut c, "repl");
    assert_eq!(got["min.insync.replicas"].0, "1");
    assert_eq!(got["unclean.leader.election.enable"].0, "true");
    assert_eq!(got["leader.replication.throttled.replicas"].0, "0:0");
    assert_eq!(got["follower.replication.throttled.replicas"].0, "0:1");
}

fn earliest(c: &mut RawClient, topic: &str) -> i64 {
    let (err, off) = kafka::list_offset(c, topic, 0, -2);
    assert_eq!(err, NONE);
    off
}

#[test]
fn altered_configs_take_effect_on_the_live_topic() {
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    let (err, _) =
        kafka::create_topic_with(&mut c, "live", 1, &[("segment.bytes", Some("1048576"))]);
    assert_eq!(err, NONE);
    let ts = common::recent_ts();
    for _ in 0..32 {
        let (err, _) = kafka::produce_one(&mut c, "live", 0, batch_of_size(100_000, 10, ts));
        assert_eq!(err, NONE);
    }
    let end = kafka::latest_offset(&mut c, "live", 0);
    assert_eq!(end, 320);
    std::thread::sleep(Duration::from_millis(500));
    assert_eq!(
        earliest(&mut c, "live"),
        0,
        "nothing deleted before the change"
    );

    // Retention lowered on the live topic: the next retention ticks delete old segments.
    let ops: &[Op] = &[("retention.bytes", SET, Some("1048576"))];
    assert_eq!(incremental(&mut c, "live", ops, false), NONE);
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut start = 0;
    while Instant::now() < deadline {
        start = earliest(&mut c, "live");
        if start > 0 {
            break;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    assert!(
        start >= 100,
        "log start offset moved to {start} after retention.bytes=1 MiB"
    );
    assert_eq!(
        kafka::latest_offset(&mut c, "live", 0),
        end,
        "the end stays"
    );

    // max.message.bytes lowered: a batch above it is refused; deleted, it is accepted.
    let big = batch_of_size(20_000, 4, ts);
    assert_eq!(kafka::produce_one(&mut c, "live", 0, big.clone()).0, NONE);
    let ops: &[Op] = &[("max.message.bytes", SET, Some("10000"))];
    assert_eq!(incremental(&mut c, "live", ops, false), NONE);
    assert_eq!(
        kafka::produce_one(&mut c, "live", 0, big.clone()).0,
        MESSAGE_TOO_LARGE
    );
    assert_eq!(
        kafka::produce_one(&mut c, "live", 0, batch_of_size(2_000, 2, ts)).0,
        NONE
    );
    let ops: &[Op] = &[("max.message.bytes", DELETE, None)];
    assert_eq!(incremental(&mut c, "live", ops, false), NONE);
    assert_eq!(kafka::produce_one(&mut c, "live", 0, big).0, NONE);
}

#[test]
fn librdkafka_admin_alters_and_describes_configs() {
    use rdkafka::admin::{
        AdminClient, AdminOptions, AlterConfig, ConfigSource, OwnedResourceSpecifier,
        ResourceSpecifier,
    };
    use rdkafka::client::DefaultClientContext;
    use rdkafka::config::ClientConfig;
    let broker = Broker::start(&[]);
    let mut c = RawClient::connect(broker.addr());
    kafka::create_topic(&mut c, "rdk", 1);
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", broker.bootstrap())
        .create()
        .expect("admin client");
    let opts = AdminOptions::new().request_timeout(Some(Duration::from_secs(10)));

    let change = AlterConfig::new(ResourceSpecifier::Topic("rdk"))
        .set("retention.ms", "123456")
        .set("max.message.bytes", "50000");
    let out = futures_lite::future::block_on(admin.alter_configs([&change], &opts))
        .expect("alter_configs");
    assert_eq!(out.len(), 1);
    assert_eq!(
        out[0].as_ref().ok(),
        Some(&OwnedResourceSpecifier::Topic("rdk".into()))
    );

    let bad = AlterConfig::new(ResourceSpecifier::Topic("rdk")).set("segment.bytes", "7");
    let out =
        futures_lite::future::block_on(admin.alter_configs([&bad], &opts)).expect("alter_configs");
    // rdkafka 0.39 reports every resource of an AlterConfigs as Ok, whatever its error
    // code; the describe below shows the refusal: had it been applied, AlterConfigs would
    // have replaced retention.ms too.
    assert_eq!(out.len(), 1);

    let out = futures_lite::future::block_on(admin.describe_configs(
        [
            &ResourceSpecifier::Topic("rdk"),
            &ResourceSpecifier::Broker(0),
        ],
        &opts,
    ))
    .expect("describe_configs");
    let topic = out[0].as_ref().expect("topic described");
    let ret = topic.get("retention.ms").expect("retention.ms");
    assert_eq!(ret.value.as_deref(), Some("123456"));
    assert_eq!(ret.source, ConfigSource::DynamicTopic);
    let seg = topic.get("segment.bytes").expect("segment.bytes");
    assert_eq!(seg.source, ConfigSource::Default);
    assert_eq!(seg.value.as_deref(), Some("1073741824"));
    assert_eq!(topic.entries.len(), TOPIC_KEY_COUNT);
    let b = out[1].as_ref().expect("broker described");
    let flush = b.get("log.flush").expect("log.flush");
    assert_eq!(flush.value.as_deref(), Some("none"));
    // Not set in the broker's configuration: the built-in default.
    assert_eq!(flush.source, ConfigSource::Default);

    // What librdkafka changed is what the raw client reads.
    let now = topic_configs(&mut c, "rdk");
    assert_eq!(
        now["max.message.bytes"],
        ("50000".into(), DYNAMIC_TOPIC_CONFIG)
    );
}

#[test]
fn cluster_alters_through_a_non_controller_and_every_broker_reads_it_back() {
    let c = cluster::Cluster::start3();
    let controller = c.wait_formed(&[1, 2, 3]);
    let other = c.ids().into_iter().find(|id| *id != controller).unwrap();
    c.create_topic_ok(other, "clu", 3, 3);
    let mut raw = RawClient::connect(c.broker(other).addr());
    let ops: &[Op] = &[
        ("retention.ms", SET, Some("77000")),
        ("cleanup.policy", APPEND, Some("delete")),
    ];
    assert_eq!(incremental(&mut raw, "clu", ops, false), NONE);
    assert_eq!(
        incremental(&mut raw, "clu", &[("segment.bytes", SET, Some("9"))], false),
        INVALID_CONFIG
    );
    for id in c.ids() {
        let mut r = RawClient::connect(c.broker(id).addr());
        let deadline = Instant::now() + Duration::from_secs(10);
        loop {
            let got = topic_configs(&mut r, "clu");
            if got["retention.ms"] == ("77000".to_string(), DYNAMIC_TOPIC_CONFIG) {
                assert_eq!(got["cleanup.policy"].1, DYNAMIC_TOPIC_CONFIG);
                assert_eq!(got["segment.bytes"].1, DEFAULT_CONFIG, "the refused change");
                break;
            }
            assert!(Instant::now() < deadline, "broker {id} still shows {got:?}");
            std::thread::sleep(Duration::from_millis(50));
        }
        // The broker resource is named by the node id in a cluster.
        let rs = describe_at(&mut r, 4, &[(BROKER, &id.to_string(), Some(&["node.id"]))]);
        assert_eq!(rs[0].error_code, NONE);
        assert_eq!(
            rs[0].configs[0].value.as_deref(),
            Some(id.to_string().as_str())
        );
    }
}

#[test]
fn kafka_python_admin_alters_and_describes_configs() {
    common::ensure_kafka_python();
    let broker = Broker::start(&[]);
    let script: std::path::PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "python",
        "admin_configs.py",
    ]
    .iter()
    .collect();
    let out = std::process::Command::new("python3")
        .arg(&script)
        .args([broker.bootstrap().as_str(), "py-admin"])
        .stderr(std::process::Stdio::inherit())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed: {stdout}");
    assert!(stdout.ends_with("OK\n"), "{stdout}");
    // What kafka-python changed is what the raw client reads.
    let mut c = RawClient::connect(broker.addr());
    let now = topic_configs(&mut c, "py-admin");
    assert_eq!(
        now["max.message.bytes"],
        ("50000".into(), DYNAMIC_TOPIC_CONFIG)
    );
    assert_eq!(now["segment.bytes"].1, DEFAULT_CONFIG);
}
