//! What DescribeConfigs reports: each topic config's value (override or broker default),
//! the broker setting it falls back to, and the broker's own settings.

use super::broker::BrokerConfig;
use super::log::LogConfig;
use super::topic::TOPIC_KEYS;
pub use super::topic_keys::{is_list, topic_key_info, topic_value};
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
