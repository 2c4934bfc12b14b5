//! A producer thread: one librdkafka producer driven by the open-loop schedule.

use crate::args::{BenchArgs, KeyDistribution, split_kv};
use crate::record::{self, XorShift};
use crate::schedule::{self, Schedule, Sink};
use crate::stats::Stats;
use rdkafka::ClientConfig;
use rdkafka::client::ClientContext;
use rdkafka::error::KafkaError;
use rdkafka::producer::{BaseProducer, BaseRecord, DeliveryResult, Producer, ProducerContext};
use rdkafka::types::RDKafkaErrorCode;
use std::sync::Arc;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

/// Receives librdkafka's delivery reports; the opaque of each record is its scheduled time.
struct Context {
    stats: Arc<Stats>,
}

impl ClientContext for Context {}

impl ProducerContext for Context {
    type DeliveryOpaque = usize;

    fn delivery(&self, result: &DeliveryResult<'_>, scheduled_ns: usize) {
        match result {
            Ok(_) => self.stats.on_ack(scheduled_ns as u64),
            Err(_) => {
                self.stats.produce_errors.fetch_add(1, Relaxed);
            }
        }
    }
}

/// The librdkafka configuration of the bench's producers.
pub fn client_config(args: &BenchArgs) -> ClientConfig {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("batch.size", args.batch_size.to_string())
        .set("linger.ms", args.linger_ms.to_string())
        .set("compression.type", args.compression.name())
        .set("acks", args.acks.name())
        .set("queue.buffering.max.messages", "1000000")
        .set("queue.buffering.max.kbytes", "1048576");
    for kv in &args.producer_set {
        if let Ok((k, v)) = split_kv(kv) {
            config.set(k, v);
        }
    }
    config
}

struct KafkaSink<'a> {
    producer: BaseProducer<Context>,
    stats: &'a Stats,
    topic: &'a str,
    value: Vec<u8>,
    run_id: u64,
    keys: KeyDistribution,
    rng: XorShift,
    /// Records per transaction (0: none) and those sent in the open one.
    txn_records: u64,
    in_txn: u64,
}

/// How long a transaction's commit may take before it counts as failed.
const COMMIT_TIMEOUT: Duration = Duration::from_secs(30);

/// Serves delivery reports until nothing is in flight (or the commit timeout). The `rdkafka`
/// crate's `commit_transaction` flushes first by polling in 100 ms slices, which alone
/// would cap a producer at about ten transactions a second; polling in 1 ms slices here
/// leaves it nothing to wait for.
fn drain(producer: &BaseProducer<Context>) {
    let deadline = Instant::now() + COMMIT_TIMEOUT;
    while producer.in_flight_count() > 0 && Instant::now() < deadline {
        producer.poll(Duration::from_millis(1));
    }
}

impl KafkaSink<'_> {
    /// Commits the open transaction and begins the next; a failure counts as an error for
    /// each of its records.
    fn commit_and_begin(&mut self) {
        let records = std::mem::take(&mut self.in_txn);
        drain(&self.producer);
        let done = self
            .producer
            .commit_transaction(COMMIT_TIMEOUT)
            .and_then(|()| self.producer.begin_transaction());
        if done.is_err() {
            self.stats.produce_errors.fetch_add(records, Relaxed);
        }
    }
}

impl Sink for KafkaSink<'_> {
    fn send(&mut self, seq: u64, scheduled: Instant) {
        let scheduled_ns = self.stats.ns_of(scheduled);
        record::stamp(&mut self.value, scheduled_ns, self.run_id);
        let key = match self.keys {
            KeyDistribution::None => None,
            KeyDistribution::Random => Some(self.rng.next_u64().to_be_bytes()),
            KeyDistribution::Sequential => Some(seq.to_be_bytes()),
        };
        loop {
            let mut rec = BaseRecord::with_opaque_to(self.topic, scheduled_ns as usize)
                .payload(self.value.as_slice());
            if let Some(k) = &key {
                rec = rec.key(k.as_slice());
            }
            match self.producer.send(rec) {
                Ok(()) => {
                    self.stats.sent_total.fetch_add(1, Relaxed);
                    self.in_txn += 1;
                    break;
                }
                // The client's queue is full: serve acknowledgements, then retry. The record
                // keeps its scheduled time, so the wait counts in its latency.
                Err((KafkaError::MessageProduction(RDKafkaErrorCode::QueueFull), _)) => {
                    self.producer.poll(Duration::from_millis(1));
                }
                Err(_) => {
                    self.stats.produce_errors.fetch_add(1, Relaxed);
                    break;
                }
            }
        }
        self.producer.poll(Duration::ZERO);
        if self.txn_records > 0 && self.in_txn >= self.txn_records {
            self.commit_and_begin();
        }
    }

    fn wait_until(&mut self, deadline: Instant) {
        let wait = deadline.saturating_duration_since(Instant::now());
        if wait >= Duration::from_millis(1) {
            // Returns early when a delivery report is served.
            self.producer.poll(wait.min(Duration::from_millis(100)));
        } else {
            self.producer.poll(Duration::ZERO);
            std::thread::sleep(wait);
        }
    }
}

/// What one producer thread did.
pub struct ProducerOutcome {
    pub sent: u64,
    /// Records still unacknowledged when the final flush gave up.
    pub unflushed: u64,
}

/// Runs producer `index` of `count` at its share of the offered load until `end`.
#[allow(clippy::too_many_arguments)]
pub fn run(
    args: &BenchArgs,
    index: usize,
    stats: Arc<Stats>,
    run_id: u64,
    start: Instant,
    end: Instant,
    give_up: Instant,
) -> anyhow::Result<ProducerOutcome> {
    let mut config = client_config(args);
    if args.transactional > 0 {
        config.set(
            "transactional.id",
            format!("ringbroker-bench-{run_id:x}-{index}"),
        );
    }
    let producer: BaseProducer<Context> = config.create_with_context(Context {
        stats: stats.clone(),
    })?;
    if args.transactional > 0 {
        producer.init_transactions(COMMIT_TIMEOUT)?;
        producer.begin_transaction()?;
    }
    let rate = args.rate as f64 / args.producers as f64;
    // Producers interleave: producer k starts k / rate after the first.
    let offset = if rate > 0.0 {
        Duration::from_secs_f64(index as f64 / args.rate as f64)
    } else {
        Duration::ZERO
    };
    let schedule = Schedule::new(start + offset, rate);
    let mut sink = KafkaSink {
        producer,
        stats: &stats,
        topic: &args.topic,
        value: record::template(args.record_size, 0x5eed + index as u64),
        run_id,
        keys: args.key_distribution,
        rng: XorShift::new(run_id ^ (index as u64 + 1)),
        txn_records: args.transactional,
        in_txn: 0,
    };
    let sent = schedule::drive(&schedule, end, give_up, &mut sink);
    if args.transactional > 0 {
        let records = std::mem::take(&mut sink.in_txn);
        drain(&sink.producer);
        if sink.producer.commit_transaction(COMMIT_TIMEOUT).is_err() {
            stats.produce_errors.fetch_add(records, Relaxed);
        }
    }
    let flush_timeout = give_up.saturating_duration_since(Instant::now()) + Duration::from_secs(5);
    let _ = sink.producer.flush(flush_timeout);
    let unflushed = sink.producer.in_flight_count().max(0) as u64;
    Ok(ProducerOutcome { sent, unflushed })
}
