//! `ringbroker-bench drain`: reads every partition of a topic from its first offset to the
//! high watermark it had at the start, once, and reports the bytes and the time. It
//! measures the fetch path alone (the data is already there), so two runs over different
//! listeners (say, PLAINTEXT and SSL) read the same bytes and compare fairly.

use crate::args::split_kv;
use rdkafka::consumer::{BaseConsumer, Consumer};
use rdkafka::{ClientConfig, Message, Offset, TopicPartitionList};
use serde::Serialize;
use std::path::PathBuf;
use std::time::{Duration, Instant};

/// Read a topic from its start to its current end with one librdkafka consumer.
#[derive(clap::Args, Debug, Clone)]
pub struct DrainArgs {
    /// Bootstrap broker, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to read.
    #[arg(long)]
    pub topic: String,
    /// Extra librdkafka consumer property (repeatable KEY=VALUE), e.g.
    /// `security.protocol=SSL`, `ssl.ca.location=ca.pem`.
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub set: Vec<String>,
    /// Give up after this many seconds.
    #[arg(long, default_value_t = 300.0)]
    pub timeout: f64,
    /// Write the result as JSON to this file (it is printed either way).
    #[arg(long)]
    pub json: Option<PathBuf>,
}

#[derive(Debug, Serialize)]
pub struct Drained {
    pub bytes: u64,
    pub messages: u64,
    pub seconds: f64,
    pub mb_per_s: f64,
}

/// Reads the topic; errors when it cannot connect or does not finish within the timeout.
pub fn run(args: &DrainArgs) -> anyhow::Result<Drained> {
    let mut config = ClientConfig::new();
    config
        .set("bootstrap.servers", &args.bootstrap)
        .set("group.id", "ringbroker-bench-drain")
        .set("enable.auto.commit", "false")
        .set("enable.partition.eof", "false");
    for kv in &args.set {
        let (k, v) = split_kv(kv).map_err(anyhow::Error::msg)?;
        config.set(k, v);
    }
    let consumer: BaseConsumer = config.create()?;
    let metadata = consumer.fetch_metadata(Some(&args.topic), Duration::from_secs(10))?;
    let partitions: Vec<i32> = metadata
        .topics()
        .iter()
        .flat_map(|t| t.partitions().iter().map(|p| p.id()))
        .collect();
    anyhow::ensure!(
        !partitions.is_empty(),
        "topic {} has no partitions",
        args.topic
    );
    let mut tpl = TopicPartitionList::new();
    // The end to reach per partition (index: partition id).
    let mut ends = Vec::new();
    for &p in &partitions {
        let (low, high) = consumer.fetch_watermarks(&args.topic, p, Duration::from_secs(10))?;
        tpl.add_partition_offset(&args.topic, p, Offset::Offset(low))?;
        ends.push((p, high));
    }
    let started = Instant::now();
    consumer.assign(&tpl)?;
    let deadline = started + Duration::from_secs_f64(args.timeout);
    let mut unfinished: Vec<(i32, i64)> = ends.into_iter().filter(|(_, h)| *h > 0).collect();
    let (mut bytes, mut messages) = (0u64, 0u64);
    while !unfinished.is_empty() {
        anyhow::ensure!(
            Instant::now() < deadline,
            "not done after {} s: {unfinished:?} left",
            args.timeout
        );
        match consumer.poll(Duration::from_millis(100)) {
            None => {}
            Some(Err(e)) => anyhow::bail!("consume error: {e}"),
            Some(Ok(m)) => {
                let len = m.payload_len() + m.key().map_or(0, <[u8]>::len);
                bytes += len as u64;
                messages += 1;
                let (p, next) = (m.partition(), m.offset() + 1);
                unfinished.retain(|(q, high)| *q != p || next < *high);
            }
        }
    }
    let seconds = started.elapsed().as_secs_f64();
    Ok(Drained {
        bytes,
        messages,
        seconds,
        mb_per_s: bytes as f64 / seconds / 1e6,
    })
}
