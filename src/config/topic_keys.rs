//! What each topic config key is: the broker setting behind it, Kafka's type for it, a
//! one-line doc, and the value it takes from a set of log settings. Used by the topic
//! configs (validation, defaults) and by DescribeConfigs.

use super::log::LogConfig;

/// The broker setting behind each topic key, Kafka's type for it, and a one-line doc.
pub fn topic_key_info(key: &str) -> (&'static str, i8, &'static str) {
    match key {
        "io" => (
            "log.io",
            2,
            "buffered (page cache) or direct (O_DIRECT) segment writes",
        ),
        "flush" => (
            "log.flush",
            2,
            "when an acknowledged batch is durable: none, interval, fsync",
        ),
        "flush.ms" => (
            "log.flush.interval.ms",
            5,
            "with flush=interval: longest wait before fdatasync",
        ),
        "flush.bytes" => (
            "log.flush.interval.bytes",
            5,
            "with flush=interval: unsynced bytes before fdatasync",
        ),
        "segment.bytes" => (
            "log.segment.bytes",
            3,
            "roll the active segment at this size",
        ),
        "segment.ms" => ("log.segment.ms", 5, "roll the active segment at this age"),
        "retention.bytes" => (
            "log.retention.bytes",
            5,
            "delete oldest segments beyond this size (-1: no limit)",
        ),
        "retention.ms" => (
            "log.retention.ms",
            5,
            "delete segments older than this (-1: no limit)",
        ),
        "max.message.bytes" => (
            "message.max.bytes",
            3,
            "largest record batch a produce may carry",
        ),
        "message.timestamp.type" => (
            "log.message.timestamp.type",
            2,
            "CreateTime or LogAppendTime",
        ),
        "message.timestamp.before.max.ms" => (
            "log.message.timestamp.before.max.ms",
            5,
            "how far in the past a CreateTime timestamp may be",
        ),
        "message.timestamp.after.max.ms" => (
            "log.message.timestamp.after.max.ms",
            5,
            "how far in the future a CreateTime timestamp may be",
        ),
        "index.interval.bytes" => (
            "log.index.interval.bytes",
            3,
            "log bytes between two index entries",
        ),
        "cleanup.policy" => (
            "log.cleanup.policy",
            7,
            "delete (retention), compact (latest record per key), or both",
        ),
        "min.cleanable.dirty.ratio" => (
            "log.cleaner.min.cleanable.ratio",
            6,
            "clean a compacted log once this share of it is uncleaned",
        ),
        "min.compaction.lag.ms" => (
            "log.cleaner.min.compaction.lag.ms",
            5,
            "records younger than this are not compacted",
        ),
        "max.compaction.lag.ms" => (
            "log.cleaner.max.compaction.lag.ms",
            5,
            "records older than this are compacted whatever the dirty ratio",
        ),
        "delete.retention.ms" => (
            "log.cleaner.delete.retention.ms",
            5,
            "how long a tombstone is kept after its batch was first cleaned",
        ),
        "compression.type" => (
            "compression.type",
            2,
            "producer, uncompressed, gzip, snappy, lz4 or zstd",
        ),
        "min.insync.replicas" => (
            "min.insync.replicas",
            3,
            "in-sync replicas acks=all needs (accepted; not enforced until data replication)",
        ),
        "unclean.leader.election.enable" => (
            "unclean.leader.election.enable",
            1,
            "may a replica outside the ISR lead (accepted; no data replication yet)",
        ),
        "leader.replication.throttled.replicas" => (
            "",
            7,
            "replicas throttled on the leader side (accepted; no replication throttles yet)",
        ),
        "follower.replication.throttled.replicas" => (
            "",
            7,
            "replicas throttled on the follower side (accepted; no replication throttles yet)",
        ),
        _ => ("", 2, ""),
    }
}

/// Whether a topic config holds a comma-separated list (IncrementalAlterConfigs APPEND
/// and SUBTRACT apply only to these).
pub fn is_list(key: &str) -> bool {
    topic_key_info(key).1 == 7
}

fn limit(v: Option<u64>) -> String {
    v.map_or_else(|| "-1".to_string(), |v| v.to_string())
}

/// The value a topic key takes from the log settings `log`.
pub fn topic_value(log: &LogConfig, key: &str) -> String {
    match key {
        "io" => log.io.to_string(),
        "flush" => log.flush.to_string(),
        "flush.ms" => log.flush_interval_ms.to_string(),
        "flush.bytes" => log.flush_interval_bytes.to_string(),
        "segment.bytes" => log.segment_bytes.to_string(),
        "segment.ms" => log.segment_ms.to_string(),
        "retention.bytes" => limit(log.retention_bytes),
        "retention.ms" => limit(log.retention_ms),
        "max.message.bytes" => log.max_batch_bytes.to_string(),
        "message.timestamp.type" if log.log_append_time => "LogAppendTime".to_string(),
        "message.timestamp.type" => "CreateTime".to_string(),
        // Kafka's "no bound" is Long.MAX_VALUE.
        "message.timestamp.before.max.ms" => log
            .timestamp_before_max_ms
            .map_or_else(|| i64::MAX.to_string(), |v| v.to_string()),
        "message.timestamp.after.max.ms" => log
            .timestamp_after_max_ms
            .map_or_else(|| i64::MAX.to_string(), |v| v.to_string()),
        "index.interval.bytes" => log.index_interval_bytes.to_string(),
        "cleanup.policy" => log.cleanup_policy().to_string(),
        "min.cleanable.dirty.ratio" => log.min_cleanable_dirty_ratio.to_string(),
        "min.compaction.lag.ms" => log.min_compaction_lag_ms.to_string(),
        "max.compaction.lag.ms" => log.max_compaction_lag_ms.to_string(),
        "delete.retention.ms" => log.delete_retention_ms.to_string(),
        "min.insync.replicas" => log.min_insync_replicas.to_string(),
        "unclean.leader.election.enable" => log.unclean_leader_election.to_string(),
        "leader.replication.throttled.replicas" => log.leader_throttled_replicas.clone(),
        "follower.replication.throttled.replicas" => log.follower_throttled_replicas.clone(),
        "compression.type" => log
            .compression
            .map_or("producer", |c| {
                if c.name() == "none" {
                    "uncompressed"
                } else {
                    c.name()
                }
            })
            .to_string(),
        _ => String::new(),
    }
}
