//! Data replication against three real brokers (`node.id` 1-3 on 127.0.0.1, one shard
//! each, the cluster harness of `tests/common/cluster.rs`): topics with replication factor
//! 3 and `min.insync.replicas=2`, an idempotent `acks=all` producer (librdkafka) writing
//! to every partition while the test breaks the cluster, then a checker that reads every
//! partition from the beginning at its leader:
//!
//! - every acknowledged record is there, at the offset it was acknowledged with;
//! - each partition holds each producer sequence at most once, in the order sent, and
//!   nothing that was never sent;
//! - the in-sync replicas' logs are byte-identical below the high watermark (the batches
//!   read from each broker's segment files);
//! - the producer saw no failed delivery.
//!
//! Faults: a leader SIGKILLed and restarted; a leader SIGSTOPped past
//! `replica.lag.time.max.ms` and the session timeout, then resumed (a zombie that must not
//! acknowledge anything later lost); a leader cut off from the controller quorum and
//! healed; a rolling restart of every broker (SIGTERM, controlled shutdown). The suite runs
//! each once; the long run repeats them:
//!
//! ```sh
//! REPLICATION_ROUNDS=10 cargo test --release --test replication -- --nocapture --test-threads 1
//! ```

#[path = "common/cluster_clients.rs"]
mod clients;
#[path = "common/cluster.rs"]
mod cluster;
mod common;

use std::path::Path;
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use clients::{Deliveries, DeliveryLog, client_config, send};
use cluster::*;
use rdkafka::producer::{Producer, ThreadedProducer};

const PARTITIONS: i32 = 3;
const LAG_MS: u64 = 2_000;

fn rounds() -> usize {
    std::env::var("REPLICATION_ROUNDS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1)
}

fn start() -> Cluster {
    Cluster::start(Options {
        proxies: true,
        sets: vec![
            format!("replica.lag.time.max.ms={LAG_MS}"),
            "min.insync.replicas=2".to_string(),
        ],
        ..Options::default()
    })
}

/// An idempotent acks=all producer thread writing `{partition}-{seq}` to every partition,
/// counting what it sent per partition.
struct Writer {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    log: Arc<DeliveryLog>,
    sent: Arc<Vec<AtomicU64>>,
}

impl Writer {
    fn start(bootstrap: &str, topic: &str) -> Writer {
        let log = Arc::new(DeliveryLog::default());
        let p: ThreadedProducer<Deliveries> = client_config(bootstrap)
            .set("acks", "all")
            .set("enable.idempotence", "true")
            .set("linger.ms", "5")
            .set("message.timeout.ms", "120000")
            .set("retry.backoff.ms", "100")
            .create_with_context(Deliveries(log.clone()))
            .expect("create producer");
        let stop = Arc::new(AtomicBool::new(false));
        let sent: Arc<Vec<AtomicU64>> =
            Arc::new((0..PARTITIONS).map(|_| AtomicU64::new(0)).collect());
        let (s, counts, topic) = (stop.clone(), sent.clone(), topic.to_string());
        let thread = std::thread::spawn(move || {
            let mut seq = 0u64;
            while !s.load(Ordering::SeqCst) {
                for part in 0..PARTITIONS {
                    send(&p, &topic, part, &format!("{part}-{seq:09}"));
                    counts[part as usize].store(seq + 1, Ordering::SeqCst);
                }
                seq += 1;
                std::thread::sleep(Duration::from_millis(4));
            }
            let _ = p.flush(Duration::from_secs(120));
        });
        Writer {
            stop,
            thread: Some(thread),
            log,
            sent,
        }
    }

    /// Waits until every partition has an acknowledgement newer than `t`.
    fn wait_progress(&self, t: Instant, what: &str) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            let since = self.log.delivered_since(t);
            if (0..PARTITIONS).all(|p| since.contains_key(&p)) {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{what}: no acknowledgement on some partition within 60 s ({since:?}); {}",
                failures(&self.log)
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    fn finish(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("writer thread");
        }
    }
}

impl Drop for Writer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// The producer's failed deliveries, the first few of them.
fn failures(log: &DeliveryLog) -> String {
    let all = log.failures();
    let first: Vec<&String> = all.iter().take(5).collect();
    format!("{} failed deliveries, the first: {first:?}", all.len())
}

/// The batches of a replica's log below `hw`, as stored: read from its segment files.
fn stored_batches(dir: &Path, hw: i64) -> Vec<(i64, Vec<u8>)> {
    let mut names: Vec<_> = std::fs::read_dir(dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .flatten()
        .map(|e| e.path())
        .filter(|p| p.extension().is_some_and(|x| x == "log"))
        .collect();
    names.sort();
    let mut out = Vec::new();
    for path in names {
        let bytes = std::fs::read(&path).expect("read segment");
        let mut pos = 0usize;
        while pos + 61 <= bytes.len() {
            let base = i64::from_be_bytes(bytes[pos..pos + 8].try_into().expect("8 bytes"));
            let len = i32::from_be_bytes(bytes[pos + 8..pos + 12].try_into().expect("4 bytes"));
            let Ok(len) = usize::try_from(len) else { break };
            if len < 49 || pos + 12 + len > bytes.len() || base >= hw {
                break;
            }
            out.push((base, bytes[pos..pos + 12 + len].to_vec()));
            pos += 12 + len;
        }
    }
    out
}

/// Waits until every partition of `topic` lists all live nodes in its ISR; returns the view.
fn wait_isr_full(c: &Cluster, topic: &str) -> View {
    let live = c.live();
    c.wait(
        &format!("the ISRs of {topic} to hold {live:?}"),
        Duration::from_secs(60),
        || {
            let v = c.try_view(live[0], &[topic])?;
            let parts = v.topic(topic);
            let full = parts.len() == PARTITIONS as usize
                && parts.values().all(|p| {
                    let mut isr = p.isr.clone();
                    isr.sort_unstable();
                    isr == live && live.contains(&p.leader)
                });
            if full { Ok(v) } else { Err(v.summary()) }
        },
    )
}

/// Reads every partition from its leader and checks it against what was acknowledged and
/// sent, then compares the replicas' stored batches. Returns the records acknowledged.
fn check(c: &Cluster, topic: &str, w: &Writer) -> usize {
    assert!(w.log.failures().is_empty(), "{}", failures(&w.log));
    let view = wait_isr_full(c, topic);
    let acked = w.log.delivered();
    for p in 0..PARTITIONS {
        let part = &view.topic(topic)[&p];
        let leader = part.leader;
        // The high watermark moves once the followers' next fetches report their ends.
        let hw = c.wait(
            &format!("{topic}-{p}: the high watermark to reach the log end"),
            Duration::from_secs(30),
            || {
                let (err, hw) = c.latest_offset(leader, topic, p)?;
                let (_, _, rest) = c.fetch(leader, topic, p, hw.max(0))?;
                if err == NONE && rest.is_empty() {
                    Ok(hw)
                } else {
                    Err(format!("{err} {hw}"))
                }
            },
        );
        let mut values: Vec<String> = Vec::new();
        while (values.len() as i64) < hw {
            let (err, _, got) = c
                .fetch(leader, topic, p, values.len() as i64)
                .unwrap_or_else(|e| panic!("fetch {topic}-{p}: {e}"));
            assert_eq!(err, NONE, "fetch {topic}-{p} at {}", values.len());
            assert!(
                !got.is_empty(),
                "{topic}-{p}: nothing at {} below {hw}",
                values.len()
            );
            values.extend(got);
        }
        // Each sequence at most once, in the order sent, and only what was sent.
        let sent = w.sent[p as usize].load(Ordering::SeqCst);
        let mut last: Option<u64> = None;
        for (offset, v) in values.iter().enumerate() {
            let seq: u64 = v
                .strip_prefix(&format!("{p}-"))
                .and_then(|s| s.parse().ok())
                .unwrap_or_else(|| panic!("{topic}-{p} offset {offset}: foreign value {v:?}"));
            assert!(
                seq < sent,
                "{topic}-{p} offset {offset}: {v} was never sent"
            );
            assert!(
                last.is_none_or(|l| seq > l),
                "{topic}-{p} offset {offset}: {v} after sequence {last:?} (duplicate or reorder)"
            );
            last = Some(seq);
        }
        // Every acknowledged record, where it was acknowledged.
        for d in acked.iter().filter(|d| d.partition == p) {
            let at = usize::try_from(d.offset).expect("acknowledged offset");
            assert_eq!(
                values.get(at),
                Some(&d.value),
                "{topic}-{p}: acknowledged {} at offset {} is not there",
                d.value,
                d.offset
            );
        }
        // The replicas agree byte for byte below the high watermark.
        let leader_batches = stored_batches(
            &c.node(leader)
                .broker
                .data_dir()
                .join(format!("{topic}-{p}")),
            hw,
        );
        let covered = leader_batches.last().map_or(0, |(base, b)| {
            base + 1 + i64::from(i32::from_be_bytes(b[23..27].try_into().expect("delta")))
        });
        assert_eq!(
            covered, hw,
            "{topic}-{p}: the leader's stored batches end at the high watermark"
        );
        for r in &part.replicas {
            let theirs = stored_batches(
                &c.node(*r).broker.data_dir().join(format!("{topic}-{p}")),
                hw,
            );
            assert!(
                theirs == leader_batches,
                "{topic}-{p}: replica {r} differs from leader {leader} below {hw} ({} vs {} batches)",
                theirs.len(),
                leader_batches.len()
            );
        }
    }
    acked.len()
}

/// OffsetForLeaderEpoch at partition 0's leader and at a follower, against the leader's
/// own stored batches: the latest epoch ends at the log end, an older one where the next
/// begins; a stale `current_leader_epoch` is fenced, a follower refuses.
fn check_epoch_ends(c: &Cluster, topic: &str) {
    use kafka_protocol::messages::OffsetForLeaderEpochRequest;
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let part = c.view(c.live()[0], &[topic]).topic(topic)[&0].clone();
    let dir = c
        .node(part.leader)
        .broker
        .data_dir()
        .join(format!("{topic}-0"));
    let batches = stored_batches(&dir, i64::MAX);
    // Where each epoch starts in the leader's log.
    let mut starts: Vec<(i32, i64)> = Vec::new();
    for (base, b) in &batches {
        let epoch = i32::from_be_bytes(b[12..16].try_into().expect("epoch"));
        if starts.last().is_none_or(|(e, _)| epoch > *e) {
            starts.push((epoch, *base));
        }
    }
    let end = batches.last().map_or(0, |(base, b)| {
        base + 1 + i64::from(i32::from_be_bytes(b[23..27].try_into().expect("delta")))
    });
    assert!(
        starts.len() > 1,
        "{topic}-0 holds one epoch only: {starts:?}"
    );
    let ask = |node: i32, current: i32, epoch: i32| {
        let req = OffsetForLeaderEpochRequest::default()
            .with_replica_id(kafka_protocol::messages::BrokerId(-1))
            .with_topics(vec![
                OffsetForLeaderTopic::default()
                    .with_topic(common::kafka::topic_name(topic))
                    .with_partitions(vec![
                        OffsetForLeaderPartition::default()
                            .with_partition(0)
                            .with_current_leader_epoch(current)
                            .with_leader_epoch(epoch),
                    ]),
            ]);
        let (_, resp) = c.call(node, 4, &req).expect("OffsetForLeaderEpoch");
        let p = &resp.topics[0].partitions[0];
        (p.error_code, p.leader_epoch, p.end_offset)
    };
    let (latest, _) = *starts.last().expect("an epoch");
    assert_eq!(ask(part.leader, part.epoch, latest), (NONE, latest, end));
    for w in starts.windows(2) {
        let ((older, _), (_, next_start)) = (w[0], w[1]);
        assert_eq!(
            ask(part.leader, part.epoch, older),
            (NONE, older, next_start)
        );
    }
    assert_eq!(
        ask(part.leader, part.epoch - 1, latest).0,
        74,
        "FENCED_LEADER_EPOCH"
    );
    let follower = *part
        .replicas
        .iter()
        .find(|r| **r != part.leader)
        .expect("a follower");
    assert_eq!(
        ask(follower, part.epoch, latest).0,
        6,
        "NOT_LEADER_OR_FOLLOWER"
    );
}

/// The leader of partition 0 of `topic`, as node `from` sees it.
fn leader_of(c: &Cluster, topic: &str) -> i32 {
    let from = c.live()[0];
    c.view(from, &[topic]).topic(topic)[&0].leader
}

fn signal(c: &Cluster, id: i32, sig: &str) {
    let pid = c.node(id).broker.pid().expect("running broker");
    let ok = std::process::Command::new("kill")
        .args([sig, &pid.to_string()])
        .status()
        .expect("kill")
        .success();
    assert!(ok, "kill {sig} {pid}");
}

#[test]
fn acknowledged_writes_survive_leader_failures() {
    let mut c = start();
    let topic = "repl";
    c.create_topic_ok(1, topic, PARTITIONS, 3);
    let mut w = Writer::start(&c.bootstrap_all(), topic);
    w.wait_progress(Instant::now(), "before any fault");
    let mut faults = Vec::new();
    for round in 0..rounds() {
        // A leader killed and started again.
        let gone = leader_of(&c, topic);
        let t = Instant::now();
        c.kill(gone);
        w.wait_progress(t, "after killing the leader");
        c.restart(gone);
        wait_isr_full(&c, topic);
        faults.push(format!("round {round}: SIGKILL {gone}"));

        // A leader paused past the lag and session timeouts: a zombie when it resumes.
        let paused = leader_of(&c, topic);
        let t = Instant::now();
        signal(&c, paused, "-STOP");
        std::thread::sleep(Duration::from_millis(LAG_MS + 2 * SESSION_TIMEOUT_MS));
        w.wait_progress(t, "while the leader is stopped");
        signal(&c, paused, "-CONT");
        wait_isr_full(&c, topic);
        faults.push(format!("round {round}: SIGSTOP {paused}"));

        // A leader cut off from the controller quorum, then healed.
        let cut = leader_of(&c, topic);
        let t = Instant::now();
        c.isolate(cut);
        w.wait_progress(t, "while the leader is isolated");
        std::thread::sleep(Duration::from_millis(SESSION_TIMEOUT_MS));
        c.heal(cut);
        wait_isr_full(&c, topic);
        faults.push(format!("round {round}: isolate {cut}"));
    }
    w.finish();
    let acked = check(&c, topic, &w);
    check_epoch_ends(&c, topic);
    println!("{acked} records acknowledged; faults: {faults:?}");
    assert!(acked > 0);
}

#[test]
fn a_rolling_restart_loses_nothing_acknowledged() {
    let mut c = start();
    let topic = "rolling";
    c.create_topic_ok(1, topic, PARTITIONS, 3);
    let mut w = Writer::start(&c.bootstrap_all(), topic);
    w.wait_progress(Instant::now(), "before the restarts");
    for _ in 0..rounds() {
        for id in c.ids() {
            c.stop(id);
            let t = Instant::now();
            w.wait_progress(t, &format!("while node {id} is down"));
            c.restart(id);
            wait_isr_full(&c, topic);
        }
    }
    w.finish();
    let acked = check(&c, topic, &w);
    println!(
        "{acked} records acknowledged over {} rolling restarts",
        rounds()
    );
}
