//! Consumer groups against the real broker binary: rebalances with librdkafka (join, a
//! member killed without leaving), exactly-once consumption with synchronous commits,
//! committed offsets across a restart, kafka-python as a second client, and the error
//! codes of bad group requests sent as raw frames.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use kafka_protocol::messages::*;
use kafka_protocol::protocol::{Decodable, Encodable, HeaderVersion, StrBytes};
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::TcpStream;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

const SESSION_TIMEOUT_MS: &str = "2000";

struct Broker {
    child: Child,
    addr: String,
}

impl Broker {
    /// Starts the broker on a free port with small group timeouts, so rebalances and
    /// session expiry take seconds.
    fn start(dir: &Path) -> Broker {
        Broker::start_with(dir, &[])
    }

    /// As [`Broker::start`], with more `--set KEY=VALUE` pairs.
    fn start_with(dir: &Path, sets: &[&str]) -> Broker {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let addr = format!("127.0.0.1:{port}");
        let child = Command::new(env!("CARGO_BIN_EXE_ringbroker"))
            .args(["serve", "--listen", &addr, "--data-dir"])
            .arg(dir)
            .args(["--shards", "2"])
            .args(["--set", "group.min.session.timeout.ms=500"])
            .args(["--set", "group.initial.rebalance.delay.ms=1000"])
            .args(["--set", "offsets.topic.num.partitions=8"])
            .args(sets.iter().flat_map(|kv| ["--set", kv]))
            .stdout(Stdio::null())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start ringbroker");
        let deadline = Instant::now() + Duration::from_secs(20);
        while TcpStream::connect(&addr).is_err() {
            assert!(Instant::now() < deadline, "broker did not start listening");
            std::thread::sleep(Duration::from_millis(20));
        }
        Broker { child, addr }
    }

    /// SIGTERM, and waits for the graceful stop.
    fn stop(&mut self) {
        unsafe { libc::kill(self.child.id() as i32, libc::SIGTERM) };
        let deadline = Instant::now() + Duration::from_secs(15);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Broker {
    fn drop(&mut self) {
        self.stop();
    }
}

fn data_dir() -> tempfile::TempDir {
    tempfile::tempdir_in(env!("CARGO_TARGET_TMPDIR")).unwrap()
}

fn create_topic(addr: &str, name: &str, partitions: i32) {
    let admin: AdminClient<DefaultClientContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .create()
        .unwrap();
    let topic = NewTopic::new(name, partitions, TopicReplication::Fixed(1));
    let r = futures_lite::future::block_on(admin.create_topics([&topic], &AdminOptions::new()))
        .unwrap();
    assert!(r[0].is_ok(), "{r:?}");
}

/// Produces `count` messages spread over `partitions`, valued `tag-i`.
fn produce(addr: &str, topic: &str, partitions: i32, tag: &str, count: usize) {
    let producer: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("linger.ms", "5")
        .create()
        .unwrap();
    for i in 0..count {
        let value = format!("{tag}-{i}");
        let record = BaseRecord::<(), _>::to(topic)
            .partition((i % partitions as usize) as i32)
            .payload(&value);
        producer.send(record).map_err(|(e, _)| e).unwrap();
    }
    producer.flush(Duration::from_secs(20)).unwrap();
}

fn group_consumer(addr: &str, group: &str) -> BaseConsumer {
    ClientConfig::new()
        .set("bootstrap.servers", addr)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", SESSION_TIMEOUT_MS)
        .set("heartbeat.interval.ms", "300")
        .set("max.poll.interval.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .create()
        .unwrap()
}

/// What the consumers of a test saw: per consumer, its assignment; and every message
/// consumed (value, who), recorded after its offset was committed synchronously.
#[derive(Default)]
struct Seen {
    assignments: BTreeMap<String, BTreeSet<i32>>,
    messages: Vec<(String, String)>,
}

fn wait_until(what: &str, timeout: Duration, mut f: impl FnMut() -> bool) {
    let deadline = Instant::now() + timeout;
    while !f() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Polls a subscribed consumer until `stop`, committing each message synchronously
/// before recording it, and publishing its assignment.
fn consume_loop(
    name: String,
    consumer: BaseConsumer,
    topic: &str,
    seen: Arc<Mutex<Seen>>,
    stop: Arc<AtomicBool>,
    on_message: impl Fn(&str),
) {
    consumer.subscribe(&[topic]).unwrap();
    while !stop.load(Ordering::SeqCst) {
        let polled = consumer.poll(Duration::from_millis(100));
        let assigned: BTreeSet<i32> = consumer
            .assignment()
            .map(|tpl| tpl.elements().iter().map(|e| e.partition()).collect())
            .unwrap_or_default();
        seen.lock()
            .unwrap()
            .assignments
            .insert(name.clone(), assigned);
        let Some(Ok(m)) = polled else { continue };
        let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
        match consumer.commit_message(&m, CommitMode::Sync) {
            Ok(()) => {
                on_message(&value);
                seen.lock().unwrap().messages.push((value, name.clone()));
            }
            Err(e) => panic!("{name}: commit of {value} failed: {e}"),
        }
    }
    consumer.unsubscribe();
    drop(consumer);
}

/// The child side of `rdkafka_group_rebalances_and_consumes_exactly_once`: one group
/// member in its own process, so the test can SIGKILL it (no LeaveGroup, no heartbeats).
/// Reports on stdout: `CG assigned 1,2` and `CG msg <value>`.
#[test]
#[ignore = "run by the rebalance test as a child process"]
fn child_consumer() {
    let Ok(addr) = std::env::var("CG_CHILD_ADDR") else {
        return;
    };
    let group = std::env::var("CG_CHILD_GROUP").unwrap();
    let topic = std::env::var("CG_CHILD_TOPIC").unwrap();
    let consumer = group_consumer(&addr, &group);
    consumer.subscribe(&[topic.as_str()]).unwrap();
    let mut last = String::new();
    loop {
        let polled = consumer.poll(Duration::from_millis(100));
        let assigned: Vec<String> = consumer
            .assignment()
            .map(|tpl| {
                tpl.elements()
                    .iter()
                    .map(|e| e.partition().to_string())
                    .collect()
            })
            .unwrap_or_default();
        let assigned = assigned.join(",");
        if assigned != last {
            println!("CG assigned {assigned}");
            last = assigned;
        }
        if let Some(Ok(m)) = polled {
            let value = String::from_utf8(m.payload().unwrap_or_default().to_vec()).unwrap();
            consumer.commit_message(&m, CommitMode::Sync).unwrap();
            println!("CG msg {value}");
        }
        std::io::stdout().flush().unwrap();
    }
}

fn spawn_child_consumer(addr: &str, group: &str, topic: &str, seen: Arc<Mutex<Seen>>) -> Child {
    let mut child = Command::new(std::env::current_exe().unwrap())
        .args(["--exact", "child_consumer", "--ignored", "--nocapture"])
        .env("CG_CHILD_ADDR", addr)
        .env("CG_CHILD_GROUP", group)
        .env("CG_CHILD_TOPIC", topic)
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let out = child.stdout.take().unwrap();
    std::thread::spawn(move || {
        for line in BufReader::new(out).lines() {
            let Ok(line) = line else { break };
            let mut s = seen.lock().unwrap();
            if let Some(a) = line.strip_prefix("CG assigned ") {
                let set = a.split(',').filter_map(|p| p.parse().ok()).collect();
                s.assignments.insert("child".into(), set);
            } else if let Some(v) = line.strip_prefix("CG msg ") {
                s.messages.push((v.to_string(), "child".into()));
            }
        }
    });
    child
}

fn balanced(seen: &Seen, members: &[&str], partitions: i32, min: usize, max: usize) -> bool {
    let mut union = BTreeSet::new();
    let mut total = 0;
    for m in members {
        let Some(a) = seen.assignments.get(*m) else {
            return false;
        };
        if a.len() < min || a.len() > max {
            return false;
        }
        total += a.len();
        union.extend(a.iter().copied());
    }
    total == partitions as usize && union.len() == partitions as usize
}

#[test]
fn rdkafka_group_rebalances_and_consumes_exactly_once() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let (topic, group) = ("cg-events", "cg-group");
    create_topic(&broker.addr, topic, 6);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let names = ["c0", "c1", "c2"];
    let mut threads = Vec::new();
    for name in names {
        let consumer = group_consumer(&broker.addr, group);
        let (seen, stop) = (seen.clone(), stop.clone());
        threads.push(std::thread::spawn(move || {
            consume_loop(name.into(), consumer, topic, seen, stop, |_| {})
        }));
    }
    // Three members, six partitions: two each.
    wait_until(
        "3 members with 2 partitions each",
        Duration::from_secs(30),
        || balanced(&seen.lock().unwrap(), &names, 6, 2, 2),
    );
    produce(&broker.addr, topic, 6, "a", 120);
    wait_until("first batch consumed", Duration::from_secs(20), || {
        seen.lock().unwrap().messages.len() >= 120
    });

    // A fourth member joins: everyone has 1 or 2, and together all six.
    let mut child = spawn_child_consumer(&broker.addr, group, topic, seen.clone());
    let four = ["c0", "c1", "c2", "child"];
    wait_until("rebalance to 4 members", Duration::from_secs(30), || {
        balanced(&seen.lock().unwrap(), &four, 6, 1, 2)
    });
    produce(&broker.addr, topic, 6, "b", 120);
    wait_until("second batch consumed", Duration::from_secs(20), || {
        seen.lock().unwrap().messages.len() >= 240
    });
    assert!(
        seen.lock()
            .unwrap()
            .messages
            .iter()
            .any(|(_, who)| who == "child"),
        "the fourth member consumed nothing"
    );

    // The child dies without leaving: after its session times out, its partitions move.
    let killed_at = Instant::now();
    child.kill().unwrap();
    child.wait().unwrap();
    wait_until(
        "partitions of the killed member to move",
        Duration::from_secs(30),
        || balanced(&seen.lock().unwrap(), &names, 6, 2, 2),
    );
    assert!(
        killed_at.elapsed() >= Duration::from_millis(1500),
        "partitions moved before the session timeout"
    );
    produce(&broker.addr, topic, 6, "c", 120);
    wait_until("third batch consumed", Duration::from_secs(20), || {
        seen.lock().unwrap().messages.len() >= 360
    });
    std::thread::sleep(Duration::from_millis(500));
    stop.store(true, Ordering::SeqCst);
    for t in threads {
        t.join().unwrap();
    }

    // Exactly once: every produced value once, nothing else.
    let seen = seen.lock().unwrap();
    let mut values: Vec<&str> = seen.messages.iter().map(|(v, _)| v.as_str()).collect();
    values.sort();
    let mut expected: Vec<String> = ["a", "b", "c"]
        .iter()
        .flat_map(|t| (0..120).map(move |i| format!("{t}-{i}")))
        .collect();
    expected.sort();
    assert_eq!(
        values,
        expected.iter().map(String::as_str).collect::<Vec<_>>()
    );
}

#[test]
fn committed_offsets_survive_a_restart() {
    let dir = data_dir();
    let mut broker = Broker::start(dir.path());
    let (topic, group) = ("rs-events", "rs-group");
    create_topic(&broker.addr, topic, 3);
    produce(&broker.addr, topic, 3, "old", 30);

    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let consumer = group_consumer(&broker.addr, group);
    let t = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || consume_loop("c".into(), consumer, topic, seen, stop, |_| {}))
    };
    wait_until("30 messages consumed", Duration::from_secs(30), || {
        seen.lock().unwrap().messages.len() >= 30
    });
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();

    broker.stop();
    let broker = Broker::start(dir.path());

    // The committed offsets are back (OffsetFetch through librdkafka's committed()).
    let consumer = group_consumer(&broker.addr, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..3 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(10),
            "partition {}",
            e.partition()
        );
    }

    // A consumer of the group resumes from them: it sees only what came after.
    produce(&broker.addr, topic, 3, "new", 6);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let stop = Arc::new(AtomicBool::new(false));
    let t = {
        let (seen, stop) = (seen.clone(), stop.clone());
        std::thread::spawn(move || consume_loop("c".into(), consumer, topic, seen, stop, |_| {}))
    };
    wait_until("6 new messages consumed", Duration::from_secs(30), || {
        seen.lock().unwrap().messages.len() >= 6
    });
    std::thread::sleep(Duration::from_millis(1000));
    stop.store(true, Ordering::SeqCst);
    t.join().unwrap();
    let mut values: Vec<String> = seen
        .lock()
        .unwrap()
        .messages
        .iter()
        .map(|(v, _)| v.clone())
        .collect();
    values.sort();
    let mut expected: Vec<String> = (0..6).map(|i| format!("new-{i}")).collect();
    expected.sort();
    assert_eq!(values, expected);
}

fn python_has_kafka() -> bool {
    Command::new("python3")
        .args(["-c", "import kafka"])
        .status()
        .is_ok_and(|s| s.success())
}

#[test]
fn kafka_python_group() {
    if !python_has_kafka() {
        // The test command runs scripts/setup.sh first; this covers a direct cargo test.
        let _ = Command::new("python3")
            .args(["-m", "pip", "install", "--quiet", "kafka-python"])
            .status();
        if !python_has_kafka() {
            let _ = Command::new("python3")
                .args([
                    "-m",
                    "pip",
                    "install",
                    "--quiet",
                    "--break-system-packages",
                    "kafka-python",
                ])
                .status();
        }
    }
    assert!(python_has_kafka(), "kafka-python is not installed");
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let (topic, group) = ("py-events", "py-group");
    create_topic(&broker.addr, topic, 4);

    let script: PathBuf = [
        env!("CARGO_MANIFEST_DIR"),
        "tests",
        "python",
        "group_consumers.py",
    ]
    .iter()
    .collect();
    let out = Command::new("python3")
        .arg(&script)
        .args([&broker.addr, topic, group, "200", "4"])
        .stderr(Stdio::inherit())
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(out.status.success(), "python failed: {stdout}");
    assert!(stdout.contains("OK"), "{stdout}");

    // What kafka-python committed is what librdkafka reads back.
    let consumer = group_consumer(&broker.addr, group);
    let mut tpl = TopicPartitionList::new();
    for p in 0..4 {
        tpl.add_partition(topic, p);
    }
    let committed = consumer
        .committed_offsets(tpl, Duration::from_secs(10))
        .unwrap();
    for e in committed.elements() {
        assert_eq!(
            e.offset(),
            Offset::Offset(50),
            "partition {}",
            e.partition()
        );
    }
}

/// A raw Kafka connection: one request at a time, answers decoded with the crate.
struct Raw {
    stream: TcpStream,
    correlation: i32,
}

impl Raw {
    fn connect(addr: &str) -> Raw {
        let stream = TcpStream::connect(addr).unwrap();
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .unwrap();
        Raw {
            stream,
            correlation: 0,
        }
    }

    fn call<Req, Resp>(&mut self, key: ApiKey, version: i16, req: &Req) -> Resp
    where
        Req: Encodable + HeaderVersion,
        Resp: Decodable + HeaderVersion,
    {
        self.correlation += 1;
        let header = RequestHeader::default()
            .with_request_api_key(key as i16)
            .with_request_api_version(version)
            .with_correlation_id(self.correlation)
            .with_client_id(Some(StrBytes::from_static_str("raw-test")));
        let mut body = BytesMut::new();
        header
            .encode(&mut body, Req::header_version(version))
            .unwrap();
        req.encode(&mut body, version).unwrap();
        let mut frame = BytesMut::new();
        frame.put_i32(body.len() as i32);
        frame.extend_from_slice(&body);
        self.stream.write_all(&frame).unwrap();
        let mut len = [0u8; 4];
        self.stream.read_exact(&mut len).unwrap();
        let mut buf = vec![0u8; i32::from_be_bytes(len) as usize];
        self.stream.read_exact(&mut buf).unwrap();
        let mut buf = Bytes::from(buf);
        let h = ResponseHeader::decode(&mut buf, Resp::header_version(version)).unwrap();
        assert_eq!(h.correlation_id, self.correlation);
        let resp = Resp::decode(&mut buf, version).unwrap();
        assert_eq!(buf.remaining(), 0, "trailing bytes in {key:?} v{version}");
        resp
    }
}

fn s(v: &str) -> StrBytes {
    StrBytes::from_string(v.to_string())
}

fn join_request(group: &str, member: &str) -> JoinGroupRequest {
    JoinGroupRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_session_timeout_ms(5000)
        .with_rebalance_timeout_ms(10000)
        .with_member_id(s(member))
        .with_protocol_type(s("consumer"))
        .with_protocols(vec![
            join_group_request::JoinGroupRequestProtocol::default()
                .with_name(s("range"))
                .with_metadata(Bytes::from_static(b"\0\0\0\0\0\0")),
        ])
}

/// JoinGroup v5 through the MEMBER_ID_REQUIRED round: returns the final response.
fn join(raw: &mut Raw, group: &str, member: &str) -> JoinGroupResponse {
    let r: JoinGroupResponse = raw.call(ApiKey::JoinGroup, 5, &join_request(group, member));
    if member.is_empty() {
        assert_eq!(r.error_code, 79, "MEMBER_ID_REQUIRED");
        assert!(!r.member_id.is_empty());
        return raw.call(
            ApiKey::JoinGroup,
            5,
            &join_request(group, r.member_id.as_str()),
        );
    }
    r
}

fn heartbeat(raw: &mut Raw, group: &str, member: &str, generation: i32) -> i16 {
    let r: HeartbeatResponse = raw.call(
        ApiKey::Heartbeat,
        3,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(generation)
            .with_member_id(s(member)),
    );
    r.error_code
}

fn commit(raw: &mut Raw, group: &str, member: &str, generation: i32, topic: &str) -> i16 {
    let req = OffsetCommitRequest::default()
        .with_group_id(GroupId(s(group)))
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(s(member))
        .with_topics(vec![
            offset_commit_request::OffsetCommitRequestTopic::default()
                .with_name(TopicName(s(topic)))
                .with_partitions(vec![
                    offset_commit_request::OffsetCommitRequestPartition::default()
                        .with_partition_index(0)
                        .with_committed_offset(7),
                ]),
        ]);
    let r: OffsetCommitResponse = raw.call(ApiKey::OffsetCommit, 7, &req);
    r.topics[0].partitions[0].error_code
}

#[test]
fn bad_group_requests_get_kafka_error_codes() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    create_topic(&broker.addr, "raw-events", 2);
    let group = "raw-group";
    let mut a = Raw::connect(&broker.addr);

    // FindCoordinator v4 (batched keys) names this broker.
    let fc: FindCoordinatorResponse = a.call(
        ApiKey::FindCoordinator,
        4,
        &FindCoordinatorRequest::default().with_coordinator_keys(vec![s(group)]),
    );
    assert_eq!(fc.coordinators.len(), 1);
    assert_eq!(fc.coordinators[0].error_code, 0);
    let port: i32 = broker.addr.rsplit(':').next().unwrap().parse().unwrap();
    assert_eq!(fc.coordinators[0].port, port);

    // Member A forms generation 1 alone and becomes Stable.
    let ja = join(&mut a, group, "");
    assert_eq!(ja.error_code, 0);
    let member_a = ja.member_id.to_string();
    assert_eq!(ja.leader.as_str(), member_a);
    assert_eq!(ja.generation_id, 1);
    let sync: SyncGroupResponse = a.call(
        ApiKey::SyncGroup,
        3,
        &SyncGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(1)
            .with_member_id(s(&member_a))
            .with_assignments(vec![
                sync_group_request::SyncGroupRequestAssignment::default()
                    .with_member_id(s(&member_a))
                    .with_assignment(Bytes::from_static(b"assigned")),
            ]),
    );
    assert_eq!(sync.error_code, 0);
    assert_eq!(&sync.assignment[..], b"assigned");
    assert_eq!(heartbeat(&mut a, group, &member_a, 1), 0);

    // Unknown member and illegal generation, on heartbeat and on commit.
    assert_eq!(heartbeat(&mut a, group, "nobody", 1), 25);
    assert_eq!(heartbeat(&mut a, group, &member_a, 7), 22);
    assert_eq!(commit(&mut a, group, "nobody", 1, "raw-events"), 25);
    assert_eq!(commit(&mut a, group, &member_a, 7, "raw-events"), 22);
    // A commit to a topic that does not exist.
    assert_eq!(commit(&mut a, group, &member_a, 1, "no-such-topic"), 3);
    assert_eq!(commit(&mut a, group, &member_a, 1, "raw-events"), 0);

    // Member B joins on its own connection (its JoinGroup waits for the rebalance); A's
    // heartbeat then says REBALANCE_IN_PROGRESS.
    let addr = broker.addr.clone();
    let b = std::thread::spawn(move || {
        let mut b = Raw::connect(&addr);
        join(&mut b, group, "")
    });
    wait_until("rebalance to start", Duration::from_secs(10), || {
        heartbeat(&mut a, group, &member_a, 1) == 27
    });
    // A rejoins: generation 2 with both members.
    let ja2 = join(&mut a, group, &member_a);
    assert_eq!(ja2.error_code, 0);
    assert_eq!(ja2.generation_id, 2);
    assert_eq!(ja2.members.len(), 2, "the leader sees every member");
    let jb = b.join().unwrap();
    assert_eq!(jb.error_code, 0);
    assert_eq!(jb.generation_id, 2);
    assert!(jb.members.is_empty());
    // The old generation is now illegal.
    assert_eq!(heartbeat(&mut a, group, &member_a, 1), 22);

    // Groups: listed, described, and not deletable while they have members.
    let lg: ListGroupsResponse = a.call(ApiKey::ListGroups, 4, &ListGroupsRequest::default());
    assert!(lg.groups.iter().any(|g| g.group_id.as_str() == group));
    let dg: DescribeGroupsResponse = a.call(
        ApiKey::DescribeGroups,
        5,
        &DescribeGroupsRequest::default().with_groups(vec![GroupId(s(group))]),
    );
    assert_eq!(dg.groups[0].group_state.as_str(), "CompletingRebalance");
    assert_eq!(dg.groups[0].members.len(), 2);
    let del: DeleteGroupsResponse = a.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default()
            .with_groups_names(vec![GroupId(s(group)), GroupId(s("never-was"))]),
    );
    assert_eq!(del.results[0].error_code, 68);
    assert_eq!(del.results[1].error_code, 69);

    // The committed offset is fetched back (v8, multi-group form).
    let of: OffsetFetchResponse = a.call(
        ApiKey::OffsetFetch,
        8,
        &OffsetFetchRequest::default().with_groups(vec![
            offset_fetch_request::OffsetFetchRequestGroup::default()
                .with_group_id(GroupId(s(group)))
                .with_topics(None),
        ]),
    );
    assert_eq!(of.groups[0].error_code, 0);
    assert_eq!(of.groups[0].topics[0].partitions[0].committed_offset, 7);

    // Leaving (v3+ batch form) empties the group, which can then be deleted.
    let leave: LeaveGroupResponse = a.call(
        ApiKey::LeaveGroup,
        4,
        &LeaveGroupRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_members(vec![
                leave_group_request::MemberIdentity::default().with_member_id(s(&member_a)),
                leave_group_request::MemberIdentity::default().with_member_id(jb.member_id.clone()),
                leave_group_request::MemberIdentity::default().with_member_id(s("ghost")),
            ]),
    );
    let codes: Vec<i16> = leave.members.iter().map(|m| m.error_code).collect();
    assert_eq!(codes, vec![0, 0, 25]);
    let del: DeleteGroupsResponse = a.call(
        ApiKey::DeleteGroups,
        2,
        &DeleteGroupsRequest::default().with_groups_names(vec![GroupId(s(group))]),
    );
    assert_eq!(del.results[0].error_code, 0);
}

#[test]
fn static_members_and_protocol_checks() {
    let dir = data_dir();
    let broker = Broker::start(dir.path());
    let group = "static-group";
    let mut a = Raw::connect(&broker.addr);
    let with_instance =
        |member: &str| join_request(group, member).with_group_instance_id(Some(s("instance-1")));

    // A static member needs no MEMBER_ID_REQUIRED round.
    let j1: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &with_instance(""));
    assert_eq!(j1.error_code, 0);
    let first_id = j1.member_id.to_string();
    assert_eq!(j1.generation_id, 1);

    // A member of another protocol type cannot join; neither can one without protocols.
    let other = join_request(group, "").with_protocol_type(s("connect"));
    let r: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &other);
    assert_eq!(r.error_code, 23);
    let none = join_request(group, "").with_protocols(vec![]);
    let r: JoinGroupResponse = a.call(ApiKey::JoinGroup, 3, &none);
    assert_eq!(r.error_code, 23);

    // The same instance restarts with a new member id: the old id is fenced.
    let j2: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &with_instance(""));
    assert_eq!(j2.error_code, 0);
    assert_ne!(j2.member_id.as_str(), first_id);
    let hb: HeartbeatResponse = a.call(
        ApiKey::Heartbeat,
        3,
        &HeartbeatRequest::default()
            .with_group_id(GroupId(s(group)))
            .with_generation_id(j2.generation_id)
            .with_member_id(s(&first_id))
            .with_group_instance_id(Some(s("instance-1"))),
    );
    assert_eq!(hb.error_code, 82, "FENCED_INSTANCE_ID");
    assert_eq!(heartbeat(&mut a, group, &first_id, j2.generation_id), 25);

    // An empty group id is invalid.
    let r: JoinGroupResponse = a.call(ApiKey::JoinGroup, 5, &join_request("", ""));
    assert_eq!(r.error_code, 24);
}

/// Offsets of an empty group expire after the offsets retention, and stay expired across a
/// restart (their tombstones are in `__consumer_offsets`). The retention is set in
/// milliseconds (`offsets.retention.ms`; Kafka's `offsets.retention.minutes` would make the
/// test take over a minute).
#[test]
fn offsets_of_empty_groups_expire() {
    let dir = data_dir();
    let sets = [
        "offsets.retention.ms=5000",
        "offsets.retention.check.interval.ms=500",
    ];
    let mut broker = Broker::start_with(dir.path(), &sets);
    let (topic, group) = ("exp-events", "exp-group");
    create_topic(&broker.addr, topic, 2);
    produce(&broker.addr, topic, 2, "x", 10);
    let committed = |addr: &str| -> Vec<Offset> {
        let c = group_consumer(addr, group);
        let mut tpl = TopicPartitionList::new();
        for p in 0..2 {
            tpl.add_partition(topic, p);
        }
        c.committed_offsets(tpl, Duration::from_secs(10))
            .expect("OffsetFetch")
            .elements()
            .iter()
            .map(|e| e.offset())
            .collect()
    };
    {
        // A consumer without group membership (assign) commits and goes away: the group
        // stays Empty, with offsets.
        let c = group_consumer(&broker.addr, group);
        let mut tpl = TopicPartitionList::new();
        for p in 0..2 {
            tpl.add_partition_offset(topic, p, Offset::Offset(4))
                .expect("offset");
        }
        c.commit(&tpl, rdkafka::consumer::CommitMode::Sync)
            .expect("commit");
    }
    assert_eq!(committed(&broker.addr), vec![Offset::Offset(4); 2]);
    wait_until("offsets expired", Duration::from_secs(150), || {
        committed(&broker.addr)
            .iter()
            .all(|o| *o == Offset::Invalid)
    });
    broker.stop();
    let broker = Broker::start_with(dir.path(), &sets);
    assert_eq!(
        committed(&broker.addr),
        vec![Offset::Invalid; 2],
        "expired offsets stay expired after a restart"
    );
}
