//! librdkafka (the `rdkafka` crate) clients of the cluster tests: a producer that records
//! every delivery report, a producer thread that keeps sending while the test breaks the
//! cluster, and consumers (group and assigned) that read until they have what they want.
#![allow(dead_code)]

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use rdkafka::client::ClientContext;
use rdkafka::config::ClientConfig;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::message::{BorrowedMessage, Message};
use rdkafka::producer::{BaseRecord, DeliveryResult, Producer, ProducerContext, ThreadedProducer};
use rdkafka::{Offset, TopicPartitionList};

/// Settings every client of the cluster tests shares: IPv4, and metadata refreshed often so
/// a client finds a partition's new leader quickly.
pub fn client_config(bootstrap: &str) -> ClientConfig {
    let mut c = ClientConfig::new();
    c.set("bootstrap.servers", bootstrap)
        .set("broker.address.family", "v4")
        .set("socket.timeout.ms", "10000")
        .set("topic.metadata.refresh.interval.ms", "1000")
        .set("reconnect.backoff.max.ms", "1000");
    c
}

/// One acknowledged message.
#[derive(Debug, Clone)]
pub struct Delivered {
    pub partition: i32,
    pub offset: i64,
    pub value: String,
    pub at: Instant,
}

/// Every delivery report of a producer.
#[derive(Default)]
pub struct DeliveryLog {
    pub ok: Mutex<Vec<Delivered>>,
    pub failed: Mutex<Vec<String>>,
}

impl DeliveryLog {
    pub fn delivered(&self) -> Vec<Delivered> {
        self.ok.lock().unwrap_or_else(|p| p.into_inner()).clone()
    }

    pub fn failures(&self) -> Vec<String> {
        self.failed
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Per partition, how many messages were acknowledged after `t`.
    pub fn delivered_since(&self, t: Instant) -> BTreeMap<i32, usize> {
        let mut out = BTreeMap::new();
        for d in self.delivered().iter().filter(|d| d.at > t) {
            *out.entry(d.partition).or_insert(0) += 1;
        }
        out
    }
}

/// The producer's context: hands every delivery report to the shared log.
pub struct Deliveries(pub Arc<DeliveryLog>);

impl ClientContext for Deliveries {}

impl ProducerContext for Deliveries {
    type DeliveryOpaque = ();
    fn delivery(&self, result: &DeliveryResult<'_>, _: ()) {
        let value = |m: &BorrowedMessage<'_>| {
            String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned()
        };
        match result {
            Ok(m) => self
                .0
                .ok
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(Delivered {
                    partition: m.partition(),
                    offset: m.offset(),
                    value: value(m),
                    at: Instant::now(),
                }),
            Err((e, m)) => self
                .0
                .failed
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .push(format!("{} to partition {}: {e}", value(m), m.partition())),
        }
    }
}

/// An acks=all producer (no idempotence) that retries for up to `message.timeout.ms`.
pub fn producer(bootstrap: &str) -> (ThreadedProducer<Deliveries>, Arc<DeliveryLog>) {
    let log = Arc::new(DeliveryLog::default());
    let p = client_config(bootstrap)
        .set("acks", "all")
        .set("enable.idempotence", "false")
        .set("linger.ms", "5")
        .set("message.timeout.ms", "60000")
        .set("retry.backoff.ms", "100")
        .create_with_context(Deliveries(log.clone()))
        .expect("create producer");
    (p, log)
}

/// Queues one message for `partition`, waiting while librdkafka's queue is full.
pub fn send(p: &ThreadedProducer<Deliveries>, topic: &str, partition: i32, value: &str) {
    let deadline = Instant::now() + Duration::from_secs(60);
    let mut record = BaseRecord::<(), str>::to(topic)
        .partition(partition)
        .payload(value);
    loop {
        match p.send(record) {
            Ok(()) => return,
            Err((e, r)) => {
                assert!(
                    Instant::now() < deadline,
                    "producer queue stayed full for 60 s: {e}"
                );
                record = r;
                std::thread::sleep(Duration::from_millis(10));
            }
        }
    }
}

/// A producer thread sending `{tag}-{partition}-{i}` to every partition of `topic`, one
/// round every 20 ms, until stopped (then it flushes what is queued).
pub struct Background {
    stop: Arc<AtomicBool>,
    thread: Option<JoinHandle<()>>,
    pub log: Arc<DeliveryLog>,
}

impl Background {
    pub fn start(bootstrap: &str, topic: &str, partitions: i32, tag: &str) -> Background {
        let (p, log) = producer(bootstrap);
        let stop = Arc::new(AtomicBool::new(false));
        let s = stop.clone();
        let (topic, tag) = (topic.to_string(), tag.to_string());
        let thread = std::thread::spawn(move || {
            let mut i = 0u64;
            while !s.load(Ordering::SeqCst) {
                for part in 0..partitions {
                    send(&p, &topic, part, &format!("{tag}-{part}-{i}"));
                }
                i += 1;
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = p.flush(Duration::from_secs(30));
        });
        Background {
            stop,
            thread: Some(thread),
            log,
        }
    }

    /// Stops sending and waits until the queued messages are delivered (or fail).
    pub fn stop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            t.join().expect("background producer thread panicked");
        }
    }

    /// Waits until every partition of `0..partitions` has had a message acknowledged after
    /// `t`; fails naming the partitions that had none.
    pub fn wait_delivered_since(&self, t: Instant, partitions: i32, timeout: Duration, what: &str) {
        let deadline = Instant::now() + timeout;
        loop {
            let since = self.log.delivered_since(t);
            let missing: Vec<i32> = (0..partitions).filter(|p| !since.contains_key(p)).collect();
            if missing.is_empty() {
                return;
            }
            if Instant::now() > deadline {
                panic!(
                    "{what}: no message acknowledged to partitions {missing:?} within {timeout:?} \
                     (acknowledged per partition: {since:?}; failures: {:?})",
                    self.log.failures()
                );
            }
            std::thread::sleep(Duration::from_millis(100));
        }
    }
}

impl Drop for Background {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// A consumer of group `group` that starts from the beginning and never commits by itself.
pub fn group_consumer(bootstrap: &str, group: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", group)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest")
        .set("session.timeout.ms", "6000")
        .set("heartbeat.interval.ms", "500")
        .set("max.poll.interval.ms", "30000")
        .create()
        .expect("create group consumer")
}

/// A consumer outside any group (it is assigned partitions).
pub fn plain_consumer(bootstrap: &str) -> BaseConsumer {
    client_config(bootstrap)
        .set("group.id", "cluster-tests-unused")
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "error")
        .create()
        .expect("create consumer")
}

/// Polls until `want` messages arrived; returns (partition, offset, value) of each. Fails
/// with the count per partition on timeout or on a consumer error that is not transient.
pub fn poll_messages(
    c: &BaseConsumer,
    want: usize,
    timeout: Duration,
    what: &str,
) -> Vec<(i32, i64, String)> {
    let deadline = Instant::now() + timeout;
    let mut got = Vec::new();
    let mut errors = Vec::new();
    while got.len() < want {
        if Instant::now() > deadline {
            let mut per: BTreeMap<i32, usize> = BTreeMap::new();
            for (p, _, _) in &got {
                *per.entry(*p).or_insert(0) += 1;
            }
            panic!(
                "{what}: {} of {want} messages within {timeout:?} (per partition {per:?}); \
                 consumer errors: {errors:?}",
                got.len()
            );
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => got.push((
                m.partition(),
                m.offset(),
                String::from_utf8_lossy(m.payload().unwrap_or_default()).into_owned(),
            )),
            // Leader changes and the like are retried by librdkafka; keep a record.
            Some(Err(e)) => errors.push(e.to_string()),
        }
    }
    got
}

/// Reads `topic` from the given offset of each partition (assigned, no group) until every
/// value of `want` has been seen; fails naming the missing ones.
pub fn read_values(
    bootstrap: &str,
    topic: &str,
    from: &BTreeMap<i32, i64>,
    want: &BTreeSet<String>,
    timeout: Duration,
) {
    let c = plain_consumer(bootstrap);
    let mut tpl = TopicPartitionList::new();
    for (p, off) in from {
        tpl.add_partition_offset(topic, *p, Offset::Offset(*off))
            .expect("add partition");
    }
    c.assign(&tpl).expect("assign");
    let deadline = Instant::now() + timeout;
    let mut missing = want.clone();
    let mut errors = Vec::new();
    while !missing.is_empty() {
        if Instant::now() > deadline {
            let first: Vec<&String> = missing.iter().take(5).collect();
            panic!(
                "read {topic} from {from:?}: {} of {} values missing after {timeout:?}, e.g. \
                 {first:?}; consumer errors: {errors:?}",
                missing.len(),
                want.len()
            );
        }
        match c.poll(Duration::from_millis(200)) {
            None => {}
            Some(Ok(m)) => {
                missing.remove(String::from_utf8_lossy(m.payload().unwrap_or_default()).as_ref());
            }
            Some(Err(e)) => errors.push(e.to_string()),
        }
    }
}
