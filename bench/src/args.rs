//! Command-line parameters of `ringbroker-bench` (one run), `ringbroker-bench sweep` and
//! `ringbroker-bench combine`.

use clap::ValueEnum;
use serde::{Deserialize, Serialize};
use std::path::PathBuf;

/// The codec the producers compress batches with (`compression.type`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Compression {
    None,
    Gzip,
    Snappy,
    Lz4,
    Zstd,
}

impl Compression {
    pub const ALL: [Compression; 5] = [
        Compression::None,
        Compression::Gzip,
        Compression::Snappy,
        Compression::Lz4,
        Compression::Zstd,
    ];

    pub fn name(self) -> &'static str {
        match self {
            Compression::None => "none",
            Compression::Gzip => "gzip",
            Compression::Snappy => "snappy",
            Compression::Lz4 => "lz4",
            Compression::Zstd => "zstd",
        }
    }
}

/// How many replicas must have the batch before the broker answers (`acks`).
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
pub enum Acks {
    #[value(name = "0")]
    #[serde(rename = "0")]
    None,
    #[value(name = "1")]
    #[serde(rename = "1")]
    Leader,
    #[value(name = "all")]
    #[serde(rename = "all")]
    All,
}

impl Acks {
    pub fn name(self) -> &'static str {
        match self {
            Acks::None => "0",
            Acks::Leader => "1",
            Acks::All => "all",
        }
    }
}

/// Which key each record carries, and so how librdkafka spreads records over partitions.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum KeyDistribution {
    /// No key: librdkafka's default partitioner picks a random partition.
    None,
    /// A random 8-byte key per record.
    Random,
    /// The record's sequence number as an 8-byte key: partitions in turn (by hash).
    Sequential,
}

/// One benchmark run against a Kafka-compatible broker.
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct BenchArgs {
    /// Bootstrap broker, HOST:PORT.
    #[arg(long, default_value = "127.0.0.1:9092")]
    pub bootstrap: String,
    /// Topic to produce to and consume from; created with --partitions if missing.
    #[arg(long, default_value = "ringbroker-bench")]
    pub topic: String,
    /// Partitions of the topic when the bench creates it.
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    /// Replicas of each partition when the bench creates the topic (a cluster's brokers).
    #[arg(long, default_value_t = 1)]
    pub replication_factor: i32,
    /// Producer clients, each on its own thread.
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    /// Consumer clients, each on its own thread (0 = no end-to-end measurement).
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    /// Value size of each record in bytes (at least 16: a timestamp and a run id lead it).
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    /// Producer `batch.size` in bytes.
    #[arg(long, default_value_t = 131_072)]
    pub batch_size: usize,
    /// Producer `linger.ms`.
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    #[arg(long, value_enum, default_value_t = Compression::None)]
    pub compression: Compression,
    #[arg(long, value_enum, default_value_t = Acks::All)]
    pub acks: Acks,
    /// Offered load in records per second over all producers; 0 = closed loop, as fast as
    /// possible (latency is then measured from the send, not from a schedule).
    #[arg(long, default_value_t = 10_000)]
    pub rate: u64,
    /// Seconds run before measuring; their results are discarded.
    #[arg(long, default_value_t = 2.0)]
    pub warmup: f64,
    /// Seconds measured after the warm-up.
    #[arg(long, default_value_t = 10.0)]
    pub duration: f64,
    #[arg(long, value_enum, default_value_t = KeyDistribution::None)]
    pub key_distribution: KeyDistribution,
    /// Produce in transactions of this many records per producer (each producer has its
    /// own `transactional.id`; the consumers read with `isolation.level=read_committed`, so
    /// end-to-end latency includes the commit). 0: no transactions.
    #[arg(long, default_value_t = 0)]
    pub transactional: u64,
    /// Consume through this consumer group (needs a broker with group support); without it
    /// each consumer is assigned its share of the partitions directly.
    #[arg(long)]
    pub group: Option<String>,
    /// Seconds the consumers may take, after the producers stop, to receive every record.
    #[arg(long, default_value_t = 10.0)]
    pub drain_timeout: f64,
    /// Label of the broker's configuration, copied into the report (repeatable KEY=VALUE).
    #[arg(long = "broker-config", value_name = "KEY=VALUE")]
    pub broker_config: Vec<String>,
    /// Extra librdkafka producer property (repeatable KEY=VALUE).
    #[arg(long = "producer-set", value_name = "KEY=VALUE")]
    pub producer_set: Vec<String>,
    /// Extra librdkafka consumer property (repeatable KEY=VALUE).
    #[arg(long = "consumer-set", value_name = "KEY=VALUE")]
    pub consumer_set: Vec<String>,
    /// Write the JSON report to this file.
    #[arg(long)]
    #[serde(skip)]
    pub json: Option<PathBuf>,
    /// No progress line on stderr.
    #[arg(long)]
    #[serde(skip)]
    pub quiet: bool,
}

impl BenchArgs {
    /// Checks what clap cannot: sizes and durations that would make the run meaningless.
    pub fn validate(&self) -> Result<(), String> {
        if self.record_size < crate::record::HEADER_BYTES {
            return Err(format!(
                "--record-size must be at least {} bytes",
                crate::record::HEADER_BYTES
            ));
        }
        if self.producers == 0 {
            return Err("--producers must be at least 1".into());
        }
        if self.partitions < 1 {
            return Err("--partitions must be at least 1".into());
        }
        if !(self.duration > 0.0 && self.warmup >= 0.0 && self.drain_timeout >= 0.0) {
            return Err("--duration must be > 0, --warmup and --drain-timeout >= 0".into());
        }
        for kv in self
            .broker_config
            .iter()
            .chain(&self.producer_set)
            .chain(&self.consumer_set)
        {
            split_kv(kv)?;
        }
        Ok(())
    }
}

/// Splits `KEY=VALUE`.
pub fn split_kv(kv: &str) -> Result<(&str, &str), String> {
    kv.split_once('=')
        .filter(|(k, _)| !k.is_empty())
        .ok_or_else(|| format!("expected KEY=VALUE, got {kv:?}"))
}

/// `ringbroker-bench sweep`: the matrix of settings and how long each point runs.
#[derive(clap::Args, Clone, Debug, Serialize)]
pub struct SweepArgs {
    /// The ringbroker binary started for each broker setting (default: `ringbroker` next to
    /// this executable, else on PATH).
    #[arg(long)]
    pub broker_bin: Option<PathBuf>,
    /// Bench an already-running Kafka-compatible broker instead; only client settings vary.
    #[arg(long)]
    pub bootstrap: Option<String>,
    /// Shell command starting the other broker (listening on --bootstrap); stopped at the end.
    #[arg(long, requires = "bootstrap")]
    pub peer: Option<String>,
    /// Name of the other broker in the reports.
    #[arg(long, default_value = "peer")]
    pub peer_name: String,
    /// ringbroker io:flush pairs, each on a fresh broker.
    #[arg(
        long,
        value_delimiter = ',',
        default_value = "buffered:none,buffered:interval,buffered:fsync,direct:none,direct:interval,direct:fsync"
    )]
    pub pairs: Vec<String>,
    /// Codecs (the first is the base of the other settings).
    #[arg(
        long,
        value_enum,
        value_delimiter = ',',
        default_value = "none,gzip,snappy,lz4,zstd"
    )]
    pub codecs: Vec<Compression>,
    /// Producer batch sizes in bytes (the first is the base).
    #[arg(long, value_delimiter = ',', default_value = "131072,16384,4096")]
    pub batch_sizes: Vec<usize>,
    /// acks settings (the first is the base).
    #[arg(long, value_enum, value_delimiter = ',', default_value = "1,all")]
    pub acks: Vec<Acks>,
    /// Offered loads in records/s; each setting runs at each (0 = closed loop).
    #[arg(long, value_delimiter = ',', default_value = "5000,20000")]
    pub rates: Vec<u64>,
    #[arg(long, default_value_t = 1024)]
    pub record_size: usize,
    #[arg(long, default_value_t = 6)]
    pub partitions: i32,
    #[arg(long, default_value_t = 1)]
    pub producers: usize,
    #[arg(long, default_value_t = 1)]
    pub consumers: usize,
    #[arg(long, default_value_t = 5)]
    pub linger_ms: u64,
    /// Seconds measured per point.
    #[arg(long, default_value_t = 3.0)]
    pub duration: f64,
    /// Seconds of warm-up per point.
    #[arg(long, default_value_t = 1.0)]
    pub warmup: f64,
    /// Shards of each ringbroker.
    #[arg(long, default_value_t = 2)]
    pub shards: usize,
    /// Extra broker setting for every ringbroker (repeatable KEY=VALUE).
    #[arg(long = "set", value_name = "KEY=VALUE")]
    pub broker_set: Vec<String>,
    /// Output directory (default perf/results/<UTC date>).
    #[arg(long)]
    pub out: Option<PathBuf>,
    /// Where the brokers' data directories and the disk limit tests go (default: temp dir).
    #[arg(long)]
    pub data_root: Option<PathBuf>,
    /// Seconds for each network limit test.
    #[arg(long, default_value_t = 3.0)]
    pub limits_s: f64,
    /// Skip measuring the machine limits.
    #[arg(long)]
    pub no_limits: bool,
}

/// `ringbroker-bench combine`: one table and one set of plots from several sweeps (say,
/// ringbroker and another broker, run one after the other with the same client settings).
#[derive(clap::Args, Clone, Debug)]
pub struct CombineArgs {
    /// sweep.json files to combine (repeatable); their points keep their setting labels.
    #[arg(long = "input", required = true)]
    pub inputs: Vec<PathBuf>,
    /// Output directory for combined.md, ack-p99.svg and e2e-p99.svg.
    #[arg(long)]
    pub out: PathBuf,
}
