//! Per-topic configuration overrides (CreateTopics `configs`), persisted with the topic.
//!
//! A topic stores only the keys it overrides; everything else follows the broker's `log.*`
//! defaults at the time the log is opened, as in Kafka.

use super::log::{FlushMode, IoMode, LogConfig};
use super::parse::{
    ConfigError, bad, parse_optional_limit, parse_positive, parse_timestamp_bound,
    parse_timestamp_type,
};
use std::collections::BTreeMap;

/// Topic config keys we accept. Kafka's names where Kafka has one; `io`, `flush` and
/// `flush.bytes` are ringbroker's (see DESIGN §3).
pub const TOPIC_KEYS: &[&str] = &[
    "io",
    "flush",
    "flush.ms",
    "flush.bytes",
    "segment.bytes",
    "segment.ms",
    "retention.bytes",
    "retention.ms",
    "max.message.bytes",
    "message.timestamp.type",
    "message.timestamp.before.max.ms",
    "message.timestamp.after.max.ms",
    "index.interval.bytes",
    "cleanup.policy",
    "compression.type",
    "min.cleanable.dirty.ratio",
    "min.compaction.lag.ms",
    "max.compaction.lag.ms",
    "delete.retention.ms",
    "min.insync.replicas",
    "unclean.leader.election.enable",
    "leader.replication.throttled.replicas",
    "follower.replication.throttled.replicas",
];

/// Checks one topic config entry and applies it to `log`.
fn apply(log: &mut LogConfig, key: &str, value: &str) -> Result<(), ConfigError> {
    match key {
        "io" => log.io = value.parse::<IoMode>().map_err(|r| bad(key, value, &r))?,
        "flush" => {
            log.flush = value
                .parse::<FlushMode>()
                .map_err(|r| bad(key, value, &r))?
        }
        "flush.ms" => log.flush_interval_ms = parse_positive(key, value)?,
        "flush.bytes" => log.flush_interval_bytes = parse_positive(key, value)?,
        "segment.bytes" => log.segment_bytes = parse_positive(key, value)?,
        "segment.ms" => log.segment_ms = parse_positive(key, value)?,
        "retention.bytes" => log.retention_bytes = parse_optional_limit(key, value)?,
        "retention.ms" => log.retention_ms = parse_optional_limit(key, value)?,
        "max.message.bytes" => log.max_batch_bytes = parse_positive(key, value)?,
        "message.timestamp.type" => log.log_append_time = parse_timestamp_type(key, value)?,
        "message.timestamp.before.max.ms" => {
            log.timestamp_before_max_ms = parse_timestamp_bound(key, value)?
        }
        "message.timestamp.after.max.ms" => {
            log.timestamp_after_max_ms = parse_timestamp_bound(key, value)?
        }
        "index.interval.bytes" => log.index_interval_bytes = parse_positive(key, value)?,
        "cleanup.policy" => log
            .set_cleanup_policy(value)
            .map_err(|r| bad(key, value, &r))?,
        "min.cleanable.dirty.ratio" => log.min_cleanable_dirty_ratio = parse_ratio(key, value)?,
        "min.compaction.lag.ms" => log.min_compaction_lag_ms = parse_ms(key, value)?,
        "max.compaction.lag.ms" => log.max_compaction_lag_ms = parse_positive(key, value)?,
        "delete.retention.ms" => log.delete_retention_ms = parse_ms(key, value)?,
        "min.insync.replicas" => {
            log.min_insync_replicas = u32::try_from(parse_positive(key, value)?)
                .map_err(|_| bad(key, value, "must fit a 32-bit int"))?
        }
        "unclean.leader.election.enable" => {
            log.unclean_leader_election = match value.trim() {
                "true" => true,
                "false" => false,
                _ => return Err(bad(key, value, "expected true or false")),
            }
        }
        "leader.replication.throttled.replicas" => {
            log.leader_throttled_replicas = parse_throttled_replicas(key, value)?
        }
        "follower.replication.throttled.replicas" => {
            log.follower_throttled_replicas = parse_throttled_replicas(key, value)?
        }
        "compression.type" => {
            log.compression = crate::compression::Codec::from_topic_config(value)
                .map_err(|r| bad(key, value, &r))?
        }
        other => return Err(ConfigError::UnknownKey(other.to_string())),
    }
    Ok(())
}

/// A broker setting that is the default of a topic config of the same name
/// (`min.insync.replicas`, `unclean.leader.election.enable`).
pub(crate) fn apply_broker_default(
    log: &mut LogConfig,
    key: &str,
    value: &str,
) -> Result<(), ConfigError> {
    apply(log, key, value)
}

/// Kafka's throttled-replica list: empty, `*`, or `partition:broker` pairs separated by
/// commas (Kafka's `ThrottledReplicaListValidator`).
fn parse_throttled_replicas(key: &str, value: &str) -> Result<String, ConfigError> {
    let v = value.trim();
    if v.is_empty() || v == "*" {
        return Ok(v.to_string());
    }
    let pair = |p: &str| {
        let (partition, broker) = p.trim().split_once(':')?;
        partition.trim().parse::<u32>().ok()?;
        broker.trim().parse::<u32>().ok()
    };
    if v.split(',').all(|p| pair(p).is_some()) {
        Ok(v.to_string())
    } else {
        Err(bad(
            key,
            value,
            "must be *, empty, or a list of partition:broker pairs",
        ))
    }
}

/// A ratio in 0..=1 (`min.cleanable.dirty.ratio`).
pub(crate) fn parse_ratio(key: &str, value: &str) -> Result<f64, ConfigError> {
    match value.trim().parse::<f64>() {
        Ok(v) if (0.0..=1.0).contains(&v) => Ok(v),
        _ => Err(bad(key, value, "must be a number from 0 to 1")),
    }
}

/// A duration in ms that may be 0, at most Kafka's Long.MAX.
pub(crate) fn parse_ms(key: &str, value: &str) -> Result<u64, ConfigError> {
    match value.trim().parse::<i64>() {
        Ok(v) if v >= 0 => Ok(v as u64),
        _ => Err(bad(key, value, "must be a non-negative number of ms")),
    }
}

/// The smallest `segment.bytes` a client may give a topic (Kafka 4.0's bound): smaller
/// segments would let one client make a file set per batch.
pub const SEGMENT_BYTES_MIN: u64 = 1 << 20;
/// The shortest `segment.ms` a client may give a topic: at most one roll per second per
/// partition (Kafka accepts 1 ms; a roll per append is an amplification ringbroker refuses).
pub const SEGMENT_MS_MIN: u64 = 1000;

/// Validates a set of topic overrides (from a client) against the broker defaults.
/// `request_max_bytes` is the broker's `socket.request.max.bytes`: no batch larger than a
/// request can arrive, so a larger `max.message.bytes` is a mistake.
pub fn validate(
    defaults: &LogConfig,
    overrides: &BTreeMap<String, String>,
    request_max_bytes: u64,
) -> Result<(), ConfigError> {
    let mut log = defaults.clone();
    for (k, v) in overrides {
        apply(&mut log, k, v)?;
        let out_of_range = match k.as_str() {
            "segment.bytes" if log.segment_bytes < SEGMENT_BYTES_MIN => {
                Some(format!("must be at least {SEGMENT_BYTES_MIN}"))
            }
            "segment.bytes" if log.segment_bytes > i32::MAX as u64 => {
                Some("must fit a 32-bit file position".to_string())
            }
            "segment.ms" if log.segment_ms < SEGMENT_MS_MIN => {
                Some(format!("must be at least {SEGMENT_MS_MIN}"))
            }
            "max.message.bytes" if log.max_batch_bytes > request_max_bytes => Some(format!(
                "must not exceed socket.request.max.bytes ({request_max_bytes})"
            )),
            _ => None,
        };
        if let Some(reason) = out_of_range {
            return Err(bad(k, v, &reason));
        }
    }
    Ok(())
}

/// The log config of a topic: the broker defaults with the topic's overrides. Overrides were
/// validated when the topic was created; one that no longer parses (a hand-edited metadata
/// file) is skipped with a warning rather than keeping the partition offline.
pub fn effective(defaults: &LogConfig, overrides: &BTreeMap<String, String>) -> LogConfig {
    let mut log = defaults.clone();
    for (k, v) in overrides {
        if let Err(e) = apply(&mut log, k, v) {
            tracing::warn!("ignoring topic config: {e}");
        }
    }
    log
}

/// An IncrementalAlterConfigs operation (Kafka's OpType).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ConfigOp {
    Set,
    Delete,
    Append,
    Subtract,
}

impl ConfigOp {
    pub fn from_wire(op: i8) -> Option<ConfigOp> {
        match op {
            0 => Some(ConfigOp::Set),
            1 => Some(ConfigOp::Delete),
            2 => Some(ConfigOp::Append),
            3 => Some(ConfigOp::Subtract),
            _ => None,
        }
    }
}

/// The overrides after `ops`, applied in order to `current`. APPEND and SUBTRACT work on
/// list-typed configs only (`cleanup.policy`), starting from the value in force (the
/// override, else the broker default in `defaults`), as Kafka does. The result still needs
/// [`validate`].
pub fn apply_ops(
    defaults: &LogConfig,
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp, Option<String>)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = current.clone();
    for (key, op, value) in ops {
        if !TOPIC_KEYS.contains(&key.as_str()) {
            return Err(ConfigError::UnknownKey(key.clone()));
        }
        let value_of = || {
            value
                .clone()
                .ok_or_else(|| bad(key, "null", "this operation needs a value"))
        };
        match op {
            ConfigOp::Set => {
                next.insert(key.clone(), value_of()?);
            }
            ConfigOp::Delete => {
                next.remove(key);
            }
            ConfigOp::Append | ConfigOp::Subtract => {
                if !super::topic_keys::is_list(key) {
                    return Err(bad(
                        key,
                        &value_of()?,
                        "APPEND and SUBTRACT need a list config",
                    ));
                }
                let now = next
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| super::topic_keys::topic_value(defaults, key));
                next.insert(key.clone(), edit_list(&now, *op, &value_of()?));
            }
        }
    }
    Ok(next)
}

/// A comma-separated list after IncrementalAlterConfigs APPEND (items not there yet, in
/// order) or SUBTRACT (every given item removed); any other op leaves it as it is.
pub(crate) fn edit_list(current: &str, op: ConfigOp, given: &str) -> String {
    let mut items = split_list(current);
    let given = split_list(given);
    match op {
        ConfigOp::Append => {
            for g in given {
                if !items.contains(&g) {
                    items.push(g);
                }
            }
        }
        ConfigOp::Subtract => items.retain(|i| !given.contains(i)),
        ConfigOp::Set | ConfigOp::Delete => {}
    }
    items.join(",")
}

fn split_list(v: &str) -> Vec<String> {
    v.split(',')
        .map(str::trim)
        .filter(|s| !s.is_empty())
        .map(str::to_string)
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(kv: &[(&str, &str)]) -> BTreeMap<String, String> {
        kv.iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn overrides_apply_on_defaults() {
        let d = LogConfig::default();
        let o = map(&[
            ("flush", "fsync"),
            ("retention.ms", "-1"),
            ("message.timestamp.type", "LogAppendTime"),
            ("max.message.bytes", "100"),
            ("cleanup.policy", "delete"),
            ("compression.type", "producer"),
        ]);
        validate(&d, &o, 1 << 20).unwrap();
        let c = effective(&d, &o);
        assert_eq!(c.flush, FlushMode::Fsync);
        assert_eq!(c.retention_ms, None);
        assert!(c.log_append_time);
        assert_eq!(c.max_batch_bytes, 100);
        assert_eq!(c.segment_bytes, d.segment_bytes);
        assert_eq!(c.compression, None);
        let z = effective(&d, &map(&[("compression.type", "zstd")]));
        assert_eq!(z.compression, Some(crate::compression::Codec::Zstd));
        let u = effective(&d, &map(&[("compression.type", "uncompressed")]));
        assert_eq!(u.compression, Some(crate::compression::Codec::None));
    }

    #[test]
    fn bad_topic_configs_are_rejected() {
        let d = LogConfig::default();
        for kv in [
            ("nope", "1"),
            ("cleanup.policy", "compacted"),
            ("cleanup.policy", ""),
            ("min.cleanable.dirty.ratio", "1.5"),
            ("min.compaction.lag.ms", "-1"),
            ("max.compaction.lag.ms", "0"),
            ("delete.retention.ms", "x"),
            ("compression.type", "brotli"),
            ("segment.bytes", "0"),
            ("io", "mmap"),
            ("segment.bytes", "14"),
            ("segment.bytes", "4294967296"),
            ("segment.ms", "1"),
            ("max.message.bytes", "2000000"),
            ("message.timestamp.after.max.ms", "-5"),
        ] {
            assert!(validate(&d, &map(&[kv]), 1 << 20).is_err(), "{kv:?}");
        }
    }

    #[test]
    fn the_offsets_topic_configs_parse() {
        let d = LogConfig::default();
        for bad in ["", "nope", "compact,nope"] {
            assert!(
                apply(&mut d.clone(), "cleanup.policy", bad).is_err(),
                "{bad}"
            );
        }
        let offsets = map(&[
            ("cleanup.policy", "compact"),
            ("retention.ms", "-1"),
            ("retention.bytes", "-1"),
            ("segment.bytes", "104857600"),
        ]);
        let log = effective(&d, &offsets);
        assert_eq!((log.retention_ms, log.retention_bytes), (None, None));
        assert_eq!(log.segment_bytes, 100 << 20);
    }

    #[test]
    fn cleanup_policies_and_compaction_settings() {
        let d = LogConfig::default();
        assert_eq!(d.cleanup_policy(), "delete");
        for (v, delete, compact) in [
            ("delete", true, false),
            ("compact", false, true),
            ("compact,delete", true, true),
            ("delete, compact", true, true),
        ] {
            let o = map(&[("cleanup.policy", v)]);
            validate(&d, &o, 1 << 20).unwrap();
            let c = effective(&d, &o);
            assert_eq!(
                (c.cleanup_delete, c.cleanup_compact),
                (delete, compact),
                "{v}"
            );
        }
        let o = map(&[
            ("min.cleanable.dirty.ratio", "0.1"),
            ("min.compaction.lag.ms", "5"),
            ("max.compaction.lag.ms", "60000"),
            ("delete.retention.ms", "0"),
        ]);
        validate(&d, &o, 1 << 20).unwrap();
        let c = effective(&d, &o);
        assert_eq!(c.min_cleanable_dirty_ratio, 0.1);
        assert_eq!(
            (
                c.min_compaction_lag_ms,
                c.max_compaction_lag_ms,
                c.delete_retention_ms
            ),
            (5, 60000, 0)
        );
    }

    #[test]
    fn incremental_ops_set_delete_append_subtract() {
        use ConfigOp::*;
        let d = LogConfig::default();
        let cur = map(&[("retention.ms", "1000"), ("flush", "fsync")]);
        let op = |k: &str, o, v: Option<&str>| (k.to_string(), o, v.map(str::to_string));
        let next = apply_ops(
            &d,
            &cur,
            &[
                op("segment.bytes", Set, Some("2000000")),
                op("flush", Delete, None),
                op("cleanup.policy", Append, Some("delete")),
            ],
        )
        .unwrap();
        assert_eq!(
            next,
            map(&[
                ("retention.ms", "1000"),
                ("segment.bytes", "2000000"),
                ("cleanup.policy", "delete")
            ])
        );
        // APPEND starts from the default list and does not repeat an item.
        let appended = apply_ops(
            &d,
            &BTreeMap::new(),
            &[op("cleanup.policy", Append, Some("compact"))],
        )
        .unwrap();
        assert_eq!(appended["cleanup.policy"], "delete,compact");
        validate(&d, &appended, 1 << 20).unwrap();
        let c = effective(&d, &appended);
        assert!(c.cleanup_compact && c.cleanup_delete);
        let sub = apply_ops(&d, &next, &[op("cleanup.policy", Subtract, Some("delete"))]).unwrap();
        assert_eq!(sub["cleanup.policy"], "");
        assert!(
            validate(&d, &sub, 1 << 20).is_err(),
            "an empty policy is refused"
        );
        // APPEND/SUBTRACT on a non-list config, SET without a value and unknown keys fail.
        assert!(apply_ops(&d, &cur, &[op("retention.ms", Append, Some("5"))]).is_err());
        assert!(apply_ops(&d, &cur, &[op("retention.ms", Subtract, Some("5"))]).is_err());
        assert!(apply_ops(&d, &cur, &[op("retention.ms", Set, None)]).is_err());
        assert!(apply_ops(&d, &cur, &[op("nope", Delete, None)]).is_err());
        assert_eq!(ConfigOp::from_wire(4), None);
    }

    #[test]
    fn replication_settings_are_checked_and_kept() {
        let d = LogConfig::default();
        let o = map(&[
            ("min.insync.replicas", "2"),
            ("unclean.leader.election.enable", "true"),
            ("leader.replication.throttled.replicas", "0:1, 1:2"),
            ("follower.replication.throttled.replicas", "*"),
        ]);
        validate(&d, &o, 1 << 20).unwrap();
        let c = effective(&d, &o);
        assert_eq!(
            (c.min_insync_replicas, c.unclean_leader_election),
            (2, true)
        );
        assert_eq!(c.leader_throttled_replicas, "0:1, 1:2");
        assert_eq!(c.follower_throttled_replicas, "*");
        for (k, v) in [
            ("min.insync.replicas", "0"),
            ("min.insync.replicas", "-1"),
            ("unclean.leader.election.enable", "yes"),
            ("leader.replication.throttled.replicas", "0-1"),
            ("follower.replication.throttled.replicas", "a:1"),
            ("follower.replication.throttled.replicas", "1:"),
        ] {
            assert!(validate(&d, &map(&[(k, v)]), 1 << 20).is_err(), "{k}={v}");
        }
        // The lists take APPEND like Kafka's list configs.
        let appended = apply_ops(
            &d,
            &o,
            &[(
                "leader.replication.throttled.replicas".to_string(),
                ConfigOp::Append,
                Some("2:0".to_string()),
            )],
        )
        .unwrap();
        assert_eq!(
            appended["leader.replication.throttled.replicas"],
            "0:1,1:2,2:0"
        );
    }
}
