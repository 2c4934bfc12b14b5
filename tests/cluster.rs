//! Cluster mode against real brokers: three `ringbroker` processes, each a voter of the
//! controller quorum (combined mode, `node.id` 1-3), started by `tests/common/cluster.rs`
//! with short liveness timeouts (session 3 s, heartbeat 0.5 s) and one shard each. Tests
//! take the cluster one at a time (the harness holds the binary's heavy lock).
//!
//! This file: the cluster forms, spreads leaders, serves librdkafka and kafka-python
//! through every leader, refuses what it must; a broker without `node.id` runs alone.
//! `cluster/faults.rs`: kills, controlled shutdown, controller loss, network partitions,
//! and the soak (`#[ignore]`):
//! `CLUSTER_SOAK_ROUNDS=40 cargo test --test cluster -- --ignored cluster_soak --nocapture`
//! (`CLUSTER_SOAK_FAULTS=sigterm,isolate` to take only some kinds of fault).
//!
//! A failing test prints the cluster's wiring (ports, proxies, bytes carried) and the tail
//! of every broker's log (`RINGBROKER_TEST_LOG_TAIL=N` for more lines).

#[path = "common/cluster_clients.rs"]
mod clients;
#[path = "common/cluster.rs"]
mod cluster;
mod common;
#[path = "cluster/faults.rs"]
mod faults;

use std::collections::{BTreeMap, BTreeSet};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::time::Duration;

use cluster::*;
use faults::{victim, wait_failed_over};
use kafka_protocol::messages::MetadataRequest;
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use rdkafka::consumer::{CommitMode, Consumer};
use rdkafka::producer::Producer;
use rdkafka::{Offset, TopicPartitionList};

/// Counts of leaders per broker among the partitions of `topic` in `view`.
pub(crate) fn leader_counts(view: &View, topic: &str) -> BTreeMap<i32, usize> {
    let mut out = BTreeMap::new();
    for leader in view.leaders(topic).values() {
        *out.entry(*leader).or_insert(0) += 1;
    }
    out
}

#[test]
fn three_brokers_form_a_cluster_and_agree() {
    let c = Cluster::start3();
    let expected: BTreeMap<i32, String> =
        c.ids().iter().map(|id| (*id, c.bootstrap(*id))).collect();
    let mut controllers = BTreeSet::new();
    for id in c.ids() {
        let v = c.view(id, &[]);
        assert_eq!(
            v.brokers,
            expected,
            "node {id} lists other brokers or addresses:\n{}",
            v.summary()
        );
        controllers.insert(v.controller);
    }
    assert_eq!(
        controllers.len(),
        1,
        "the nodes name different controllers: {controllers:?}"
    );
    let controller = *controllers.first().expect("one controller");
    assert!(
        c.ids().contains(&controller),
        "controller {controller} is not a node"
    );

    // FindCoordinator, asked of any broker, names the leader of the group's partition of
    // __consumer_offsets (which may be created on the first lookup).
    let groups: Vec<String> = (0..24).map(|i| format!("cluster-group-{i}")).collect();
    let mut coordinators = BTreeSet::new();
    for group in &groups {
        let p = ringbroker::group::offsets_partition(group, OFFSETS_PARTITIONS);
        for id in c.ids() {
            let (node, addr) = c.wait(
                &format!("node {id} to find the coordinator of {group}"),
                TOPIC_TIMEOUT,
                || match c.find_coordinator(id, group)? {
                    (NONE, node, addr) => Ok((node, addr)),
                    other => Err(format!("FindCoordinator from node {id}: {other:?}")),
                },
            );
            let view = c.view(id, &[OFFSETS_TOPIC]);
            let leader = view.leaders(OFFSETS_TOPIC).get(&p).copied();
            assert_eq!(
                Some(node),
                leader,
                "node {id}: coordinator of {group} (offsets partition {p}) is {node}, not \
                 the partition's leader:\n{}",
                view.summary()
            );
            assert_eq!(
                addr,
                c.bootstrap(node),
                "node {id}: coordinator {node}'s address"
            );
            coordinators.insert(node);
        }
    }
    // (Where __consumer_offsets is led is the placement's business; every broker must name
    // the same leader, so one that answers "me" is caught on the other two.)
    eprintln!("24 groups coordinated by nodes {coordinators:?}");
}

#[test]
fn topic_leaders_spread_over_all_brokers() {
    let c = Cluster::start(Options {
        sets: vec![
            "default.replication.factor=2".into(),
            "num.partitions=3".into(),
        ],
        ..Options::default()
    });
    let controller = c.controller();
    let other = c
        .ids()
        .into_iter()
        .find(|id| *id != controller)
        .expect("a follower");
    // Created through a node that is not the controller: forwarded through the quorum.
    c.create_topic_ok(other, "spread-rf1", 6, 1);
    c.create_topic_ok(controller, "spread-rf3", 3, 3);
    for (topic, partitions, rf) in [("spread-rf1", 6usize, 1usize), ("spread-rf3", 3, 3)] {
        let views: Vec<View> = c.ids().iter().map(|id| c.view(*id, &[topic])).collect();
        let v = &views[0];
        for other in &views[1..] {
            assert_eq!(
                other.topic(topic),
                v.topic(topic),
                "nodes disagree on {topic}:\n{}\n{}",
                v.summary(),
                other.summary()
            );
        }
        let parts = v.topic(topic);
        assert_eq!(parts.len(), partitions, "{topic}:\n{}", v.summary());
        for (p, part) in &parts {
            let distinct: BTreeSet<i32> = part.replicas.iter().copied().collect();
            assert_eq!(
                distinct.len(),
                rf,
                "{topic}-{p}: replicas {:?}",
                part.replicas
            );
            assert!(
                distinct.iter().all(|r| c.ids().contains(r)),
                "{topic}-{p}: replicas {:?}",
                part.replicas
            );
            assert!(
                part.replicas.contains(&part.leader),
                "{topic}-{p}: leader not a replica"
            );
            let isr: BTreeSet<i32> = part.isr.iter().copied().collect();
            assert_eq!(
                isr, distinct,
                "{topic}-{p}: ISR of a healthy cluster is every replica"
            );
            assert!(part.epoch >= 0, "{topic}-{p}: leader epoch {}", part.epoch);
        }
        let counts = leader_counts(v, topic);
        let each = partitions / c.ids().len();
        let want: BTreeMap<i32, usize> = c.ids().iter().map(|id| (*id, each)).collect();
        assert_eq!(
            counts,
            want,
            "{topic}: leaders not spread evenly:\n{}",
            v.summary()
        );
    }
    // Auto-created topics (and RF -1) get default.replication.factor replicas.
    let auto = MetadataRequest::default()
        .with_allow_auto_topic_creation(true)
        .with_topics(Some(vec![
            MetadataRequestTopic::default()
                .with_name(Some(common::kafka::topic_name("spread-auto"))),
        ]));
    c.call(other, 12, &auto)
        .unwrap_or_else(|e| panic!("auto-creating Metadata: {e}"));
    c.wait_topic("spread-auto", 3, 2);
    let (err, msg) = c.create_topic(controller, "spread-default", 3, -1);
    assert_eq!(err, NONE, "CreateTopics with RF -1: {msg}");
    c.wait_topic("spread-default", 3, 2);
}

#[test]
fn rdkafka_produces_and_consumes_through_every_leader() {
    const PER_PARTITION: usize = 200;
    let c = Cluster::start3();
    let topic = "rk-cluster";
    let view = c.create_topic_ok(2, topic, 6, 3);
    assert_eq!(
        leader_counts(&view, topic).len(),
        3,
        "leaders not on all brokers:\n{}",
        view.summary()
    );

    // The producer knows only node 1; the consumers only node 2.
    let (producer, log) = clients::producer(&c.bootstrap(1));
    let mut want = BTreeSet::new();
    for i in 0..PER_PARTITION {
        for p in 0..6 {
            let value = format!("rk-{p}-{i}");
            clients::send(&producer, topic, p, &value);
            want.insert((p, value));
        }
    }
    producer
        .flush(Duration::from_secs(60))
        .expect("flush within 60 s");
    assert_eq!(log.failures(), Vec::<String>::new(), "failed deliveries");
    let delivered = log.delivered();
    assert_eq!(delivered.len(), want.len(), "delivery reports");
    for p in 0..6 {
        let leader = view.leaders(topic)[&p];
        let end = c
            .latest_offset(leader, topic, p)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            end,
            (NONE, PER_PARTITION as i64),
            "end offset of {topic}-{p} at its leader {leader}"
        );
    }

    let consumer = clients::group_consumer(&c.bootstrap(2), "rk-cluster-group");
    consumer.subscribe(&[topic]).expect("subscribe");
    let got = clients::poll_messages(
        &consumer,
        want.len(),
        Duration::from_secs(90),
        "group consumer",
    );
    let got_set: BTreeSet<(i32, String)> = got.iter().map(|(p, _, v)| (*p, v.clone())).collect();
    assert_eq!(got.len(), got_set.len(), "duplicates consumed");
    assert_eq!(
        got_set, want,
        "consumed messages differ from those produced"
    );
    consumer
        .commit_consumer_state(CommitMode::Sync)
        .expect("commit to the group coordinator");
    let mut tpl = TopicPartitionList::new();
    for p in 0..6 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(20))
        .expect("OffsetFetch");
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(PER_PARTITION as i64),
            "committed offset of partition {}",
            e.partition()
        );
    }
}

#[test]
fn non_leaders_answer_not_leader_or_follower() {
    let c = Cluster::start3();
    for (topic, rf) in [("nl-rf1", 1), ("nl-rf3", 3)] {
        let view = c.create_topic_ok(1, topic, 3, rf);
        for (p, leader) in view.leaders(topic) {
            for id in c.ids() {
                let produced = c
                    .produce(id, topic, p, &["nl-value"])
                    .unwrap_or_else(|e| panic!("{e}"));
                let fetched = c.fetch(id, topic, p, 0).unwrap_or_else(|e| panic!("{e}"));
                let listed = c
                    .latest_offset(id, topic, p)
                    .unwrap_or_else(|e| panic!("{e}"));
                if id == leader {
                    assert_eq!(
                        produced,
                        (NONE, 0),
                        "Produce to {topic}-{p} at its leader {id}"
                    );
                    assert_eq!(
                        fetched,
                        (NONE, 1, vec!["nl-value".to_string()]),
                        "Fetch {topic}-{p} at its leader {id}"
                    );
                    assert_eq!(
                        listed,
                        (NONE, 1),
                        "ListOffsets {topic}-{p} at its leader {id}"
                    );
                } else {
                    let what = format!("{topic}-{p} (leader {leader}) at node {id}");
                    assert_eq!(produced.0, NOT_LEADER_OR_FOLLOWER, "Produce {what}");
                    assert_eq!(fetched.0, NOT_LEADER_OR_FOLLOWER, "Fetch {what}");
                    assert_eq!(listed.0, NOT_LEADER_OR_FOLLOWER, "ListOffsets {what}");
                }
            }
        }
    }
}

/// A topic deleted and created again (through other brokers, at once) starts empty on
/// every leader: no broker keeps the old topic's logs under the new one.
#[test]
fn a_deleted_topic_created_again_starts_empty() {
    let c = Cluster::start3();
    let topic = "reborn";
    let view = c.create_topic_ok(1, topic, 3, 3);
    for (p, leader) in view.leaders(topic) {
        let produced = c
            .produce(leader, topic, p, &["old"])
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            produced,
            (NONE, 0),
            "Produce {topic}-{p} at its leader {leader}"
        );
    }
    assert_eq!(
        c.delete_topic(2, topic),
        NONE,
        "DeleteTopics through node 2"
    );
    let view = c.create_topic_ok(3, topic, 3, 3);
    for (p, leader) in view.leaders(topic) {
        let fetched = c
            .fetch(leader, topic, p, 0)
            .unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            fetched,
            (NONE, 0, Vec::new()),
            "{topic}-{p} created again must be empty at its leader {leader}"
        );
    }
}

#[test]
fn replication_factor_above_live_brokers_is_refused() {
    let mut c = Cluster::start3();
    for id in c.ids() {
        let (err, msg) = c.create_topic(id, &format!("rf4-via-{id}"), 1, 4);
        assert_eq!(
            err, INVALID_REPLICATION_FACTOR,
            "RF 4 on 3 brokers through node {id}: {msg}"
        );
        let v = c.view(id, &[&format!("rf4-via-{id}")]);
        assert_eq!(
            v.topics.values().copied().collect::<Vec<_>>(),
            vec![UNKNOWN_TOPIC_OR_PARTITION],
            "a refused topic exists: {}",
            v.summary()
        );
    }
    let before = c.create_topic_ok(1, "rf-probe", 3, 3);
    let gone = victim(&c, "rf-probe");
    c.kill(gone);
    wait_failed_over(&c, gone, "rf-probe", &before);
    let live = c.live();
    let (err, msg) = c.create_topic(live[0], "rf3-two-alive", 1, 3);
    assert_eq!(
        err, INVALID_REPLICATION_FACTOR,
        "RF 3 with node {gone} dead: {msg}"
    );
    c.create_topic_ok(live[1], "rf2-two-alive", 2, 2);
}

#[test]
fn kafka_python_clients_across_leaders() {
    common::ensure_kafka_python();
    let c = Cluster::start3();
    let topic = "py-cluster";
    let view = c.create_topic_ok(3, topic, 6, 1);
    assert_eq!(leader_counts(&view, topic).len(), 3, "{}", view.summary());
    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "python",
        "cluster_clients.py",
    ]
    .iter()
    .collect();
    let out = Command::new("python3")
        .arg(&script)
        .args([&c.bootstrap(1), topic, "py-cluster-group", "300", "3"])
        .stderr(Stdio::inherit())
        .output()
        .expect("run python3");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && stdout.contains("OK"),
        "cluster_clients.py failed ({}): {stdout}",
        out.status
    );
}

#[test]
fn without_node_id_a_broker_runs_alone() {
    // Not next to a cluster being started: its ports are free until its brokers bind them.
    let _serial = common::heavy_lock();
    // The cluster keys other than node.id are accepted and change nothing.
    let b = common::Broker::start_with_args(
        [
            "--shards",
            "1",
            "--set",
            "default.replication.factor=3",
            "--set",
            "broker.session.timeout.ms=3000",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    );
    let mut raw = common::RawClient::connect(b.addr());
    common::kafka::create_topic(&mut raw, "alone", 2);
    let md = common::kafka::metadata(&mut raw, &["alone"]);
    let brokers: Vec<(i32, String, i32)> = md
        .brokers
        .iter()
        .map(|x| (x.node_id.0, x.host.to_string(), x.port))
        .collect();
    assert_eq!(
        brokers,
        vec![(0, "127.0.0.1".to_string(), i32::from(b.port))],
        "a broker alone lists itself, node 0"
    );
    assert_eq!(md.controller_id.0, 0, "controller of a broker alone");
    for p in &md.topics[0].partitions {
        assert_eq!(
            (p.error_code, p.leader_id.0),
            (NONE, 0),
            "partition {}",
            p.partition_index
        );
        assert_eq!(
            p.replica_nodes.iter().map(|r| r.0).collect::<Vec<_>>(),
            vec![0]
        );
        assert_eq!(p.isr_nodes.iter().map(|r| r.0).collect::<Vec<_>>(), vec![0]);
    }
    let batch = ringbroker::protocol::batch::testing::build_batch(&[b"solo"], common::recent_ts());
    assert_eq!(
        common::kafka::produce_one(&mut raw, "alone", 1, batch),
        (NONE, 0)
    );
}

#[test]
fn cluster_settings_are_checked_at_start() {
    let dir = common::disk_tempdir("rb-cluster-cfg-");
    let data = dir.path().to_str().expect("utf-8 path").to_string();
    let listen = format!("127.0.0.1:{}", common::free_port());
    for (sets, expect) in [
        (vec!["node.id=1"], "controller.quorum.voters"),
        (
            vec![
                "node.id=4",
                "controller.quorum.voters=1@127.0.0.1:1,2@127.0.0.1:2",
            ],
            "node.id 4",
        ),
        (
            vec![
                "node.id=1",
                "controller.quorum.voters=1@127.0.0.1:1",
                "broker.heartbeat.interval.ms=3000",
                "broker.session.timeout.ms=3000",
            ],
            "broker.heartbeat.interval.ms",
        ),
        (
            vec!["controller.quorum.voters=1@nohost"],
            "controller.quorum.voters",
        ),
    ] {
        let mut args = vec!["serve", "--listen", &listen, "--data-dir", &data];
        for s in &sets {
            args.extend(["--set", s]);
        }
        let (status, stderr) = common::run_to_exit(&args, Duration::from_secs(30));
        assert!(!status.success(), "{sets:?} was accepted");
        assert!(
            stderr.contains(expect),
            "{sets:?}: the refusal does not name {expect:?}:\n{stderr}"
        );
    }
}
