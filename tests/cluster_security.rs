//! Security across a cluster of three real brokers: each broker has a PLAINTEXT listener,
//! a SASL_PLAINTEXT listener for clients (CLIENT) and a SASL_SSL listener the brokers use
//! between themselves (BROKER, `inter.broker.listener.name`), with the authorizer on and
//! only the brokers' own user (`User:broker`) and an administrator as super users.
//!
//! What it shows:
//! - each listener's Metadata lists every broker at that listener's address;
//! - replication (follower fetches) runs over the authenticated TLS listener: a topic with
//!   three replicas and `min.insync.replicas=2` takes `acks=all` writes and keeps all three
//!   replicas in sync, which only brokers logged in as a super user can do;
//! - SCRAM users and ACLs live in the replicated metadata: a user created through one
//!   broker and an ACL created through another let that user write and read through any
//!   broker, also after a broker restarts;
//! - a principal without CLUSTER_ACTION cannot fetch as a replica or write transaction
//!   markers;
//! - the controller port (`CONTROLLER:SSL`) is mutual TLS: the quorum forms over it, and a
//!   peer that sends a plain frame (a forged broker heartbeat) is cut off unheard.

mod common;
#[path = "common/pki.rs"]
mod pki;

use common::{Broker, RawClient, disk_tempdir, free_port, heavy_lock, run_python, users_add};
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    BrokerId, FetchRequest, MetadataRequest, ProducerId, TopicName, WriteTxnMarkersRequest,
};
use kafka_protocol::protocol::StrBytes;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use std::collections::BTreeSet;
use std::path::Path;
use std::time::{Duration, Instant};

const TOPIC: &str = "secured";
const TOPIC_AUTHORIZATION_FAILED: i16 = 29;
const CLUSTER_AUTHORIZATION_FAILED: i16 = 31;

struct Node {
    id: i32,
    broker: Broker,
    _data: tempfile::TempDir,
    plain: u16,
    client: u16,
    controller: u16,
}

/// Starts the three brokers together and waits until each answers.
fn start(dir: &Path) -> Vec<Node> {
    let (ca_params, ca_key, ca_pem) = pki::ca("cluster test CA");
    let (cert, key) = pki::leaf(&["localhost", "127.0.0.1"], &ca_params, &ca_key);
    let (ca, keystore) = (dir.join("ca.pem"), dir.join("broker.pem"));
    std::fs::write(&ca, ca_pem).expect("write CA");
    std::fs::write(&keystore, format!("{key}{cert}")).expect("write keystore");
    let ports: Vec<[u16; 4]> = (0..3)
        .map(|_| [free_port(), free_port(), free_port(), free_port()])
        .collect();
    let voters: Vec<String> = ports
        .iter()
        .enumerate()
        .map(|(i, p)| format!("{}@127.0.0.1:{}", i + 1, p[3]))
        .collect();
    let mut nodes = Vec::new();
    for (i, [plain, client, repl, ctrl]) in ports.into_iter().enumerate() {
        let id = i as i32 + 1;
        let data = disk_tempdir("rb-cluster-sec-");
        users_add(data.path(), "SCRAM-SHA-256", "broker", "broker-secret");
        users_add(data.path(), "SCRAM-SHA-256", "admin", "admin-secret");
        let sets = [
            format!(
                "listeners=PLAINTEXT://127.0.0.1:{plain},CLIENT://127.0.0.1:{client},\
                 BROKER://127.0.0.1:{repl}"
            ),
            "listener.security.protocol.map=PLAINTEXT:PLAINTEXT,CLIENT:SASL_PLAINTEXT,\
             BROKER:SASL_SSL,CONTROLLER:SSL"
                .to_string(),
            "inter.broker.listener.name=BROKER".to_string(),
            "sasl.mechanism.inter.broker.protocol=SCRAM-SHA-256".to_string(),
            "listener.name.broker.scram-sha-256.sasl.jaas.config=org.apache.kafka.common.\
             security.scram.ScramLoginModule required username=\"broker\" \
             password=\"broker-secret\";"
                .to_string(),
            format!("ssl.keystore.location={}", keystore.display()),
            format!("ssl.truststore.location={}", ca.display()),
            "authorizer.enabled=true".to_string(),
            "super.users=User:broker;User:admin".to_string(),
            format!("node.id={id}"),
            format!("controller.quorum.voters={}", voters.join(",")),
            format!("controller.listen=127.0.0.1:{ctrl}"),
            "broker.session.timeout.ms=3000".to_string(),
            "broker.heartbeat.interval.ms=500".to_string(),
            "offsets.topic.num.partitions=2".to_string(),
        ];
        let mut extra = vec!["--shards".to_string(), "1".to_string()];
        for s in sets {
            extra.push("--set".to_string());
            extra.push(s);
        }
        let broker =
            Broker::launch_with_listeners(data.path(), plain, extra, &format!("node {id}"));
        nodes.push(Node {
            id,
            broker,
            _data: data,
            plain,
            client,
            controller: ctrl,
        });
    }
    for n in &mut nodes {
        n.broker.wait_ready();
    }
    nodes
}

fn wait_for<T>(what: &str, timeout: Duration, mut probe: impl FnMut() -> Result<T, String>) -> T {
    let start = Instant::now();
    loop {
        match probe() {
            Ok(v) => return v,
            Err(seen) if start.elapsed() > timeout => {
                panic!("timed out after {timeout:?} waiting for {what}; last seen: {seen}")
            }
            Err(_) => std::thread::sleep(Duration::from_millis(200)),
        }
    }
}

/// The brokers' ports a PLAINTEXT Metadata request of `node` lists.
fn plaintext_brokers(node: &Node) -> Result<BTreeSet<u16>, String> {
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], node.plain));
    let mut c = RawClient::try_connect(addr).map_err(|e| e.to_string())?;
    let r = c.call(
        12,
        &MetadataRequest::default().with_topics(Some(Vec::new())),
    );
    Ok(r.brokers.iter().map(|b| b.port as u16).collect())
}

fn admin_consumer(node: &Node) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", format!("127.0.0.1:{}", node.client))
        .set("security.protocol", "SASL_PLAINTEXT")
        .set("sasl.mechanisms", "SCRAM-SHA-256")
        .set("sasl.username", "admin")
        .set("sasl.password", "admin-secret")
        .set("group.id", "unused")
        .create()
        .expect("admin client")
}

/// (brokers' ports, ISR of the topic's partition 0) as the admin sees them on CLIENT.
fn client_view(node: &Node) -> Result<(BTreeSet<u16>, Vec<i32>), String> {
    let md = admin_consumer(node)
        .fetch_metadata(Some(TOPIC), Duration::from_secs(5))
        .map_err(|e| e.to_string())?;
    let ports = md.brokers().iter().map(|b| b.port() as u16).collect();
    let mut isr = md
        .topics()
        .first()
        .and_then(|t| t.partitions().first())
        .map(|p| p.isr().to_vec())
        .unwrap_or_default();
    isr.sort();
    Ok((ports, isr))
}

#[test]
fn users_acls_and_replication_are_secured_across_the_cluster() {
    let _serial = heavy_lock();
    let dir = disk_tempdir("rb-cluster-sec-pki-");
    let mut nodes = start(dir.path());
    let plain_ports: BTreeSet<u16> = nodes.iter().map(|n| n.plain).collect();
    let client_ports: BTreeSet<u16> = nodes.iter().map(|n| n.client).collect();
    for n in &nodes {
        wait_for(
            &format!(
                "node {}'s PLAINTEXT Metadata to list every broker there",
                n.id
            ),
            Duration::from_secs(60),
            || match plaintext_brokers(n)? {
                seen if seen == plain_ports => Ok(()),
                seen => Err(format!("{seen:?}, want {plain_ports:?}")),
            },
        );
    }
    let boots: Vec<String> = nodes
        .iter()
        .map(|n| format!("127.0.0.1:{}", n.client))
        .collect();
    let boot = |i: usize| boots[i].clone();
    run_python("cluster_security.py", &["create", &boot(0), TOPIC]);
    wait_for(
        "every broker at its CLIENT address and three in-sync replicas",
        Duration::from_secs(60),
        || match client_view(&nodes[0])? {
            (ports, isr) if ports == client_ports && isr == [1, 2, 3] => Ok(()),
            seen => Err(format!("{seen:?}")),
        },
    );

    // Alice is created through node 2 and granted through node 3; she writes through node 1
    // (acks=all: the followers must fetch through the SASL_SSL listener to acknowledge).
    run_python("cluster_security.py", &["add-user", &boot(1), TOPIC]);
    run_python("cluster_security.py", &["grant", &boot(2), TOPIC]);
    run_python("cluster_security.py", &["produce", &boot(0), TOPIC, "200"]);
    run_python("cluster_security.py", &["refused", &boot(1), "other-topic"]);
    wait_for(
        "three in-sync replicas after the writes",
        Duration::from_secs(30),
        || match client_view(&nodes[1])? {
            (_, isr) if isr == [1, 2, 3] => Ok(()),
            seen => Err(format!("{seen:?}")),
        },
    );

    // Anonymous on PLAINTEXT has no CLUSTER_ACTION: no replica fetch, no markers.
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], nodes[0].plain));
    let mut raw = RawClient::connect(addr);
    let fetch = FetchRequest::default()
        .with_replica_id(BrokerId(2))
        .with_max_wait_ms(0)
        .with_topics(vec![
            FetchTopic::default()
                .with_topic(TopicName(StrBytes::from_static_str(TOPIC)))
                .with_partitions(vec![
                    FetchPartition::default()
                        .with_partition(0)
                        .with_partition_max_bytes(1 << 20),
                ]),
        ]);
    let r = raw.call(12, &fetch);
    let codes: Vec<i16> = r
        .responses
        .iter()
        .flat_map(|t| t.partitions.iter().map(|p| p.error_code))
        .collect();
    assert_eq!(
        codes,
        [TOPIC_AUTHORIZATION_FAILED],
        "a replica fetch as ANONYMOUS"
    );
    let markers = WriteTxnMarkersRequest::default().with_markers(vec![
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(7))
            .with_producer_epoch(0)
            .with_transaction_result(false)
            .with_topics(vec![
                WritableTxnMarkerTopic::default()
                    .with_name(TopicName(StrBytes::from_static_str(TOPIC)))
                    .with_partition_indexes(vec![0]),
            ]),
    ]);
    let r = raw.call(1, &markers);
    let codes: Vec<i16> = r
        .markers
        .iter()
        .flat_map(|m| m.topics.iter().flat_map(|t| t.partitions.iter()))
        .map(|p| p.error_code)
        .collect();
    assert_eq!(
        codes,
        [CLUSTER_AUTHORIZATION_FAILED],
        "markers as ANONYMOUS"
    );

    // A forged heartbeat in plain TCP to a controller port: the TLS server takes it for a
    // broken ClientHello and closes the connection; broker 9 is never registered.
    for n in &nodes {
        use std::io::{Read, Write};
        let body = br#"{"id":9,"host":"127.0.0.1","port":1,"incarnation":1,"shutting_down":false}"#;
        let mut frame = ((body.len() + 1) as u32).to_be_bytes().to_vec();
        frame.push(2);
        frame.extend_from_slice(body);
        let mut s = std::net::TcpStream::connect(("127.0.0.1", n.controller)).expect("connect");
        s.set_read_timeout(Some(Duration::from_secs(10)))
            .expect("timeout");
        let _ = s.write_all(&frame);
        let mut buf = [0u8; 512];
        let closed = loop {
            match s.read(&mut buf) {
                Ok(0) => break true,
                Ok(_) => continue, // a TLS alert, then the close
                Err(e) if e.kind() == std::io::ErrorKind::ConnectionReset => break true,
                Err(_) => break false,
            }
        };
        assert!(
            closed,
            "node {}'s controller port kept a plain connection open",
            n.id
        );
    }
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(plaintext_brokers(&nodes[0]).expect("metadata"), plain_ports);

    // The user and the ACL come back with a restarted broker (from the metadata log), and
    // its replica catches up over the secured listener again.
    nodes[2].broker.stop();
    nodes[2].broker.launch_again();
    nodes[2].broker.wait_ready();
    run_python("cluster_security.py", &["consume", &boot(2), TOPIC, "200"]);
    wait_for(
        "three in-sync replicas after the restart",
        Duration::from_secs(60),
        || match client_view(&nodes[2])? {
            (_, isr) if isr == [1, 2, 3] => Ok(()),
            seen => Err(format!("{seen:?}")),
        },
    );
}
