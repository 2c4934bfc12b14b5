//! What DescribeConfigs reports: each topic config's value (override or broker default),
//! the broker setting it falls back to, and the broker's own settings.

use super::broker::BrokerConfig;
use super::log::LogConfig;
use super::topic::TOPIC_KEYS;
use std::collections::BTreeMap;

/// One topic config as DescribeConfigs shows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicEntry {
    pub name: &'static str,
    /// The value in force: the override if there is one, else the broker default.
    pub value: String,
    /// The topic overrides it (Kafka's DYNAMIC_TOPIC_CONFIG).
    pub overridden: bool,
    /// The broker setting the topic falls back to (Kafka's synonym).
    pub broker_key: &'static str,
    /// The broker's value for it.
    pub broker_value: String,
    /// The broker's value is the built-in default (DEFAULT_CONFIG), not one set in the
    /// broker's configuration (STATIC_BROKER_CONFIG).
    pub builtin: bool,
    /// Kafka's config type (ConfigEntry.ConfigType): 1 boolean, 2 string, 3 int, 5 long,
    /// 6 double, 7 list.
    pub config_type: i8,
    pub doc: &'static str,
}

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

/// Every topic config the broker knows, for a topic with `overrides` on a broker whose
/// log defaults are `defaults`.
pub fn topic_entries(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
) -> Vec<TopicEntry> {
    let builtin_log = LogConfig::default();
    TOPIC_KEYS
        .iter()
        .map(|&name| {
            let (broker_key, config_type, doc) = topic_key_info(name);
            let broker_value = topic_value(defaults, name);
            let builtin = broker_value == topic_value(&builtin_log, name);
            let (value, overridden) = match overrides.get(name) {
                Some(v) => (v.clone(), true),
                None => (broker_value.clone(), false),
            };
            TopicEntry {
                name,
                value,
                overridden,
                broker_key,
                broker_value,
                builtin,
                config_type,
                doc,
            }
        })
        .collect()
}

/// The broker's settings as DescribeConfigs shows them for a BROKER resource.
pub fn broker_entries(config: &BrokerConfig) -> Vec<(&'static str, String)> {
    let log = &config.log;
    let mut out = vec![
        ("listen", config.listen.clone()),
        ("data.dir", config.data_dir.display().to_string()),
        ("shards", config.shards.to_string()),
        (
            "auto.create.topics.enable",
            config.auto_create_topics_enable.to_string(),
        ),
        ("num.partitions", config.num_partitions.to_string()),
        ("message.max.bytes", config.message_max_bytes.to_string()),
        (
            "socket.request.max.bytes",
            config.socket_request_max_bytes.to_string(),
        ),
        (
            "max.inflight.requests",
            config.max_inflight_requests.to_string(),
        ),
        ("log.preallocate.bytes", log.preallocate_bytes.to_string()),
        ("node.id", config.cluster.node_id.unwrap_or(-1).to_string()),
        (
            "default.replication.factor",
            config.cluster.default_replication_factor.to_string(),
        ),
    ];
    for key in TOPIC_KEYS {
        let (broker_key, _, _) = topic_key_info(key);
        if !broker_key.is_empty()
            && broker_key != "message.max.bytes"
            && broker_key != "compression.type"
        {
            out.push((broker_key, topic_value(log, key)));
        }
    }
    out.push(("compression.type", "producer".to_string()));
    let cleaner = &config.cleaner;
    out.push(("log.cleaner.enable", cleaner.enable.to_string()));
    out.push((
        "log.cleaner.io.max.bytes.per.second",
        cleaner
            .io_max_bytes_per_second
            .map_or_else(|| "1.7976931348623157E308".to_string(), |v| v.to_string()),
    ));
    out.push(("log.cleaner.backoff.ms", cleaner.backoff_ms.to_string()));
    out.push((
        "log.cleaner.dedupe.buffer.size",
        cleaner.dedupe_buffer_bytes.to_string(),
    ));
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_topic_key_has_a_broker_synonym_and_a_default() {
        let d = LogConfig::default();
        // Kafka's throttled-replica lists have no broker setting and default to empty.
        let no_broker_setting = [
            "leader.replication.throttled.replicas",
            "follower.replication.throttled.replicas",
        ];
        for e in topic_entries(&d, &BTreeMap::new()) {
            if no_broker_setting.contains(&e.name) {
                assert!(e.broker_key.is_empty() && e.value.is_empty(), "{}", e.name);
                continue;
            }
            assert!(!e.broker_key.is_empty(), "{}", e.name);
            assert!(!e.value.is_empty(), "{}", e.name);
            assert!(e.builtin && !e.overridden, "{}", e.name);
            // The default value is one the topic config itself accepts.
            let one = [(e.name.to_string(), e.value.clone())].into();
            super::super::topic::validate(&d, &one, u64::MAX).unwrap_or_else(|err| panic!("{err}"));
        }
    }

    #[test]
    fn overrides_and_broker_settings_are_told_apart() {
        let d = LogConfig {
            segment_bytes: 1 << 24,
            ..LogConfig::default()
        };
        let o = [("retention.ms".to_string(), "1000".to_string())].into();
        let entries = topic_entries(&d, &o);
        let get = |k: &str| entries.iter().find(|e| e.name == k).cloned().unwrap();
        let r = get("retention.ms");
        assert!(r.overridden);
        assert_eq!(
            (r.value.as_str(), r.broker_value.as_str()),
            ("1000", "604800000")
        );
        let s = get("segment.bytes");
        assert!(!s.overridden && !s.builtin);
        assert_eq!(s.value, (1u64 << 24).to_string());
    }
}
