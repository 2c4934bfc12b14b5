//! Records the fuzz corpus (`tests/fuzz/corpus/`) from real clients: a broker behind an
//! in-process recording TCP proxy (Metadata advertises the proxy, so every connection goes
//! through it), driven by librdkafka (the `rdkafka` crate), kafka-python at several
//! protocol levels, and kcat when it is installed. Every request frame is written,
//! without its length prefix, to `tests/fuzz/corpus/<api>-v<version>-<n>.bin`: at most
//! [`PER_SLOT`] distinct frames per (api, version) (per codec for Produce), the whole
//! corpus under [`MAX_TOTAL`] bytes.
//!
//! Not part of the suite (it rewrites the committed corpus):
//! `cargo test --release --test fuzz_capture -- --ignored`

mod common;

use common::Broker;
use kafka_protocol::messages::{ApiKey, ProduceRequest, RequestHeader};
use kafka_protocol::protocol::Decodable;
use rdkafka::admin::{AdminClient, AdminOptions, NewTopic, TopicReplication};
use rdkafka::client::DefaultClientContext;
use rdkafka::consumer::{BaseConsumer, CommitMode, Consumer};
use rdkafka::message::{Header, OwnedHeaders};
use rdkafka::producer::{BaseRecord, DefaultProducerContext, Producer, ThreadedProducer};
use rdkafka::{ClientConfig, Message, TopicPartitionList};
use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

/// Distinct frames kept per (api, version, codec of the first batch for Produce).
const PER_SLOT: usize = 8;
/// Frames larger than this are passed on but not recorded.
const MAX_FRAME: usize = 16 * 1024;
/// The whole corpus stays under this.
const MAX_TOTAL: usize = 1000 * 1024;
const CODECS: [&str; 5] = ["none", "gzip", "snappy", "lz4", "zstd"];

fn corpus_dir() -> PathBuf {
    PathBuf::from(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fuzz/corpus"))
}

/// The file-name form of an api key: `ListOffsets` → `list_offsets`.
fn api_name(key: i16) -> String {
    let Ok(api) = ApiKey::try_from(key) else {
        return format!("api{key}");
    };
    let mut out = String::new();
    for (i, ch) in format!("{api:?}").chars().enumerate() {
        if ch.is_ascii_uppercase() && i > 0 {
            out.push('_');
        }
        out.push(ch.to_ascii_lowercase());
    }
    out
}

/// The codec of the first batch of a Produce frame (0-4), or 9 when there is none.
fn produce_codec(frame: &[u8], version: i16) -> u8 {
    let mut buf = bytes::Bytes::copy_from_slice(frame);
    let hv = ApiKey::Produce.request_header_version(version);
    let decoded =
        RequestHeader::decode(&mut buf, hv).and_then(|_| ProduceRequest::decode(&mut buf, version));
    let first = decoded.ok().and_then(|r| {
        r.topic_data
            .first()
            .and_then(|t| t.partition_data.first())
            .and_then(|p| p.records.clone())
    });
    match first {
        Some(b) if b.len() > 22 => b[22] & 7,
        _ => 9,
    }
}

#[derive(Default)]
struct Recorder {
    slots: BTreeMap<(i16, i16, u8), usize>,
    files: BTreeMap<(i16, i16), usize>,
    seen: HashSet<Vec<u8>>,
    total: usize,
    frames: usize,
}

impl Recorder {
    fn record(&mut self, frame: &[u8]) {
        self.frames += 1;
        if frame.len() < 8 || frame.len() > MAX_FRAME || self.total + frame.len() > MAX_TOTAL {
            return;
        }
        let key = i16::from_be_bytes([frame[0], frame[1]]);
        let version = i16::from_be_bytes([frame[2], frame[3]]);
        // Frames that differ only in their correlation id are one frame.
        let mut norm = frame.to_vec();
        norm[4..8].fill(0);
        if !self.seen.insert(norm) {
            return;
        }
        let sub = if key == ApiKey::Produce as i16 {
            produce_codec(frame, version)
        } else {
            0
        };
        let slot = self.slots.entry((key, version, sub)).or_default();
        if *slot >= PER_SLOT {
            return;
        }
        *slot += 1;
        let n = self.files.entry((key, version)).or_default();
        let path = corpus_dir().join(format!("{}-v{version}-{n}.bin", api_name(key)));
        *n += 1;
        std::fs::write(&path, frame).expect("write corpus file");
        self.total += frame.len();
    }
}

/// Forwards client → broker frame by frame, recording each.
fn pump_requests(mut from: TcpStream, mut to: TcpStream, rec: Arc<Mutex<Recorder>>) {
    loop {
        let mut len = [0u8; 4];
        if from.read_exact(&mut len).is_err() {
            break;
        }
        let n = i32::from_be_bytes(len);
        let Ok(n) = usize::try_from(n) else { break };
        let mut frame = vec![0u8; n];
        if from.read_exact(&mut frame).is_err() {
            break;
        }
        rec.lock().expect("recorder").record(&frame);
        if to
            .write_all(&len)
            .and_then(|_| to.write_all(&frame))
            .is_err()
        {
            break;
        }
    }
    let _ = to.shutdown(Shutdown::Write);
}

fn pump_responses(mut from: TcpStream, mut to: TcpStream) {
    let _ = std::io::copy(&mut from, &mut to);
    let _ = to.shutdown(Shutdown::Both);
}

struct Proxy {
    port: u16,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl Proxy {
    /// Listens now; forwards to `127.0.0.1:<broker_port>` once clients connect.
    fn start(broker_port: Arc<Mutex<u16>>, rec: Arc<Mutex<Recorder>>) -> Proxy {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind proxy");
        let port = listener.local_addr().expect("addr").port();
        listener.set_nonblocking(true).expect("nonblocking");
        let stop = Arc::new(AtomicBool::new(false));
        let flag = stop.clone();
        let thread = std::thread::spawn(move || {
            while !flag.load(Ordering::SeqCst) {
                let client = match listener.accept() {
                    Ok((c, _)) => c,
                    Err(_) => {
                        std::thread::sleep(Duration::from_millis(5));
                        continue;
                    }
                };
                client.set_nonblocking(false).expect("blocking");
                let target = *broker_port.lock().expect("port");
                let Ok(server) = TcpStream::connect(("127.0.0.1", target)) else {
                    continue;
                };
                let _ = client.set_nodelay(true);
                let _ = server.set_nodelay(true);
                let (c2, s2) = (
                    client.try_clone().expect("clone"),
                    server.try_clone().expect("clone"),
                );
                let rec = rec.clone();
                std::thread::spawn(move || pump_requests(client, server, rec));
                std::thread::spawn(move || pump_responses(s2, c2));
            }
        });
        Proxy {
            port,
            stop,
            thread: Some(thread),
        }
    }
}

impl Drop for Proxy {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

fn admin(bootstrap: &str) -> AdminClient<DefaultClientContext> {
    ClientConfig::new()
        .set("bootstrap.servers", bootstrap)
        .create()
        .expect("admin client")
}

fn block<F: std::future::Future>(f: F) -> F::Output {
    futures_lite::future::block_on(f)
}

/// librdkafka: topics made and removed by an AdminClient, an idempotent acks=all producer
/// per codec, two consumer groups (dynamic and static members) committing, offsets by
/// time, watermarks and group listing.
fn drive_rdkafka(bootstrap: &str) -> usize {
    let a = admin(bootstrap);
    let opts = AdminOptions::new().operation_timeout(Some(Duration::from_secs(10)));
    let names: Vec<String> = CODECS.iter().map(|c| format!("rk-{c}")).collect();
    let mut topics: Vec<NewTopic> = names
        .iter()
        .map(|n| NewTopic::new(n, 2, TopicReplication::Fixed(1)))
        .collect();
    topics.push(
        NewTopic::new("rk-scratch", 3, TopicReplication::Fixed(1))
            .set("retention.ms", "3600000")
            .set("compression.type", "lz4"),
    );
    for r in block(a.create_topics(&topics, &opts)).expect("create topics") {
        r.expect("topic created");
    }
    let mut produced = 0;
    for (codec, topic) in CODECS.iter().zip(&names) {
        let p: ThreadedProducer<DefaultProducerContext> = ClientConfig::new()
            .set("bootstrap.servers", bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("compression.codec", *codec)
            .set("linger.ms", "20")
            .create()
            .expect("producer");
        for round in 0..3 {
            for i in 0..8 {
                let value = format!("{codec} value {round}-{i} {}", "abc".repeat(i));
                let key = format!("key-{i}");
                let headers = OwnedHeaders::new().insert(Header {
                    key: "h",
                    value: Some("v"),
                });
                let rec = BaseRecord::to(topic)
                    .partition(i32::from(i % 2 == 0))
                    .key(&key)
                    .payload(&value)
                    .headers(headers);
                p.send(rec).map_err(|(e, _)| e).expect("send");
                produced += 1;
            }
            p.flush(Duration::from_secs(20)).expect("flush");
        }
    }
    for (g, instance) in [("rk-group", None), ("rk-static", Some("member-1"))] {
        let mut cfg = ClientConfig::new();
        cfg.set("bootstrap.servers", bootstrap)
            .set("group.id", g)
            .set("enable.auto.commit", "false")
            .set("auto.offset.reset", "earliest")
            .set("session.timeout.ms", "6000")
            .set("heartbeat.interval.ms", "500");
        if let Some(id) = instance {
            cfg.set("group.instance.id", id);
        }
        let c: BaseConsumer = cfg.create().expect("consumer");
        let subscribed: Vec<&str> = names.iter().map(|s| s.as_str()).collect();
        c.subscribe(&subscribed).expect("subscribe");
        let mut seen = 0;
        let deadline = Instant::now() + Duration::from_secs(60);
        while seen < produced && Instant::now() < deadline {
            if let Some(Ok(m)) = c.poll(Duration::from_millis(200)) {
                seen += 1;
                if m.offset() % 5 == 0 {
                    c.commit_message(&m, CommitMode::Sync).expect("commit");
                }
            }
        }
        assert_eq!(seen, produced, "group {g} consumed everything");
        c.commit_consumer_state(CommitMode::Sync).expect("commit");
        let mut tpl = TopicPartitionList::new();
        for t in &names {
            tpl.add_partition(t, 0);
            tpl.add_partition(t, 1);
        }
        c.committed_offsets(tpl.clone(), Duration::from_secs(10))
            .expect("committed offsets");
        for e in tpl.elements() {
            let _ = c.fetch_watermarks(e.topic(), e.partition(), Duration::from_secs(5));
        }
        let times = c
            .offsets_for_timestamp(common::now_ms() - 60_000, Duration::from_secs(10))
            .ok();
        drop(times);
        let _ = c.fetch_group_list(None, Duration::from_secs(10));
        let _ = c.fetch_group_list(Some(g), Duration::from_secs(10));
        c.unsubscribe();
    }
    // Group and topic deletion.
    let _ = block(a.delete_groups(&["rk-group"], &opts));
    let deleted = block(a.delete_topics(&["rk-scratch"], &opts)).expect("delete topics");
    for r in deleted {
        r.expect("topic deleted");
    }
    produced
}

/// kafka-python at several protocol levels; returns how many levels round-tripped.
fn drive_python(bootstrap: &str) -> Option<usize> {
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/python/fuzz_clients.py");
    let out = Command::new("python3")
        .arg(script)
        .arg(bootstrap)
        .stderr(Stdio::inherit())
        .output()
        .ok()?;
    let stdout = String::from_utf8_lossy(&out.stdout);
    eprintln!("kafka-python:\n{stdout}");
    stdout
        .lines()
        .find_map(|l| l.strip_prefix("levels ok: "))
        .and_then(|n| n.trim().parse().ok())
}

/// Runs kcat with `args` (and `input` on stdin), killed after 20 s.
fn kcat(args: &[&str], input: &str) -> bool {
    let Ok(mut child) = Command::new("kcat")
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
    else {
        return false;
    };
    if let Some(mut stdin) = child.stdin.take() {
        let _ = stdin.write_all(input.as_bytes());
    }
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Ok(Some(st)) = child.try_wait() {
            return st.success();
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return false;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// kcat (Debian's links an older librdkafka): metadata, produce with snappy and gzip,
/// consume to the end, offsets by time.
fn drive_kcat(bootstrap: &str) -> bool {
    if !kcat(&["-V"], "") {
        return false;
    }
    let lines: String = (0..10).map(|i| format!("k{i}:kcat value {i}\n")).collect();
    let b = bootstrap;
    kcat(&["-b", b, "-L"], "")
        && kcat(&["-b", b, "-P", "-t", "kc", "-K:", "-z", "snappy"], &lines)
        && kcat(&["-b", b, "-P", "-t", "kc", "-K:", "-z", "gzip"], &lines)
        && kcat(&["-b", b, "-C", "-t", "kc", "-e", "-o", "beginning"], "")
        && kcat(&["-b", b, "-Q", "-t", "kc:0:1000"], "")
}

#[test]
#[ignore = "rewrites tests/fuzz/corpus; run with --ignored"]
fn capture_real_client_traffic() {
    let dir = corpus_dir();
    std::fs::create_dir_all(&dir).expect("corpus dir");
    for e in std::fs::read_dir(&dir).expect("read corpus dir").flatten() {
        if e.path().extension().is_some_and(|x| x == "bin") {
            std::fs::remove_file(e.path()).expect("remove old corpus file");
        }
    }
    let rec = Arc::new(Mutex::new(Recorder::default()));
    let target = Arc::new(Mutex::new(0u16));
    let proxy = Proxy::start(target.clone(), rec.clone());
    let advertised = format!("127.0.0.1:{}", proxy.port);
    let broker = Broker::start_with_args(
        [
            "--shards",
            "2",
            "--advertised",
            &advertised,
            "--set",
            "group.initial.rebalance.delay.ms=200",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect(),
    );
    *target.lock().expect("port") = broker.port;

    let produced = drive_rdkafka(&advertised);
    let python = drive_python(&advertised);
    let kcat_ok = drive_kcat(&advertised);
    drop(proxy);

    let rec = rec.lock().expect("recorder");
    let apis: Vec<String> = rec
        .files
        .iter()
        .map(|((k, v), n)| format!("{}-v{v}×{n}", api_name(*k)))
        .collect();
    eprintln!(
        "librdkafka produced {produced}; kafka-python levels ok: {python:?}; kcat: {kcat_ok}\n\
         {} frames seen, {} files, {} bytes: {}",
        rec.frames,
        rec.files.values().sum::<usize>(),
        rec.total,
        apis.join(" ")
    );
    // What the fuzzers rely on: every api the clients use, and produce in every codec.
    for api in [
        ApiKey::ApiVersions,
        ApiKey::Metadata,
        ApiKey::CreateTopics,
        ApiKey::DeleteTopics,
        ApiKey::InitProducerId,
        ApiKey::Produce,
        ApiKey::Fetch,
        ApiKey::ListOffsets,
        ApiKey::FindCoordinator,
        ApiKey::JoinGroup,
        ApiKey::SyncGroup,
        ApiKey::Heartbeat,
        ApiKey::OffsetCommit,
        ApiKey::OffsetFetch,
        ApiKey::LeaveGroup,
        ApiKey::ListGroups,
        ApiKey::DescribeGroups,
        ApiKey::DeleteGroups,
    ] {
        assert!(
            rec.files.keys().any(|(k, _)| *k == api as i16),
            "no {api:?} request captured"
        );
    }
    for codec in 0..5u8 {
        assert!(
            rec.slots
                .keys()
                .any(|(k, _, c)| *k == ApiKey::Produce as i16 && *c == codec),
            "no Produce with codec {codec}"
        );
    }
    assert!(
        python.is_some_and(|n| n >= 2),
        "kafka-python round-tripped at two protocol levels at least"
    );
}
