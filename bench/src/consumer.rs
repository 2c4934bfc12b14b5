//! A consumer thread: receives the run's records and measures end-to-end latency.

use crate::args::{BenchArgs, split_kv};
use crate::record;
use crate::stats::Stats;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering::Relaxed};
use std::time::Duration;

/// Creates consumer `index` of `args.consumers`. Without `--group` it is assigned partitions
/// `index, index + consumers, ...` from their current end, so it needs no group support
/// from the broker; with `--group` it subscribes and reads from the earliest offset (records
/// of earlier runs are skipped by run id).
pub fn create(args: &BenchArgs, index: usize, partitions: i32) -> anyhow::Result<BaseConsumer> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("enable.auto.commit", "false")
        .set("auto.offset.reset", "earliest");
    if args.transactional > 0 {
        config.set("isolation.level", "read_committed");
    }
    match &args.group {
        Some(group) => config.set("group.id", group),
        // librdkafka wants a group id even for manual assignment; it is never used.
        None => config.set("group.id", "ringbroker-bench-direct"),
    };
    for kv in &args.consumer_set {
        if let Ok((k, v)) = split_kv(kv) {
            config.set(k, v);
        }
    }
    let consumer: BaseConsumer = config.create()?;
    match &args.group {
        Some(_) => consumer.subscribe(&[&args.topic])?,
        None => {
            let mut tpl = TopicPartitionList::new();
            for p in (index as i32..partitions).step_by(args.consumers.max(1)) {
                let (_, high) =
                    consumer.fetch_watermarks(&args.topic, p, Duration::from_secs(10))?;
                tpl.add_partition_offset(&args.topic, p, Offset::Offset(high))?;
            }
            consumer.assign(&tpl)?;
        }
    }
    Ok(consumer)
}

/// Polls until `stop`; publishes its number of assigned partitions in `assigned`.
pub fn run(
    consumer: BaseConsumer,
    stats: Arc<Stats>,
    run_id: u64,
    stop: &AtomicBool,
    assigned: &AtomicUsize,
) {
    let mut polls = 0u64;
    while !stop.load(Relaxed) {
        // Group assignments change on rebalances; look about once a second.
        if polls.is_multiple_of(10)
            && let Ok(tpl) = consumer.assignment()
        {
            assigned.store(tpl.count(), Relaxed);
        }
        polls += 1;
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(_)) => {
                stats.consume_errors.fetch_add(1, Relaxed);
            }
            Some(Ok(message)) => {
                if let Some((scheduled_ns, id)) = message.payload().and_then(record::parse)
                    && id == run_id
                {
                    stats.on_receive(scheduled_ns);
                }
            }
        }
    }
}
