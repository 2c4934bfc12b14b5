//! Dynamic broker configs: the broker defaults of topic configs that AlterConfigs and
//! IncrementalAlterConfigs may change at run time, cluster-wide (Kafka's resource name
//! `""`) or for one broker (its id), kept in the metadata.
//!
//! The log defaults in force are the static configuration, then the cluster-wide dynamic
//! overrides, then this broker's own. Values are parsed by [`BrokerConfig::set`], the same
//! rules as the configuration file.

use super::broker::BrokerConfig;
use super::parse::{ConfigError, bad};
use super::topic::{ConfigOp, SEGMENT_BYTES_MIN, SEGMENT_MS_MIN};
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kafka's ConfigSource values the broker layers report.
pub const DYNAMIC_BROKER_CONFIG: i8 = 2;
pub const DYNAMIC_DEFAULT_BROKER_CONFIG: i8 = 3;
pub const STATIC_BROKER_CONFIG: i8 = 4;
pub const DEFAULT_CONFIG: i8 = 5;

/// The broker keys that may change at run time: the defaults of the topic configs a live
/// log takes (Kafka's `DynamicLogConfig`), and `log.flush`, ringbroker's flush policy.
/// `log.io` is not among them: an open segment keeps its file mode.
pub const DYNAMIC_KEYS: &[&str] = &[
    "log.flush",
    "log.flush.interval.ms",
    "log.flush.interval.bytes",
    "log.segment.bytes",
    "log.segment.ms",
    "log.retention.bytes",
    "log.retention.ms",
    "log.index.interval.bytes",
    "log.cleanup.policy",
    "log.cleaner.min.cleanable.ratio",
    "log.cleaner.min.compaction.lag.ms",
    "log.cleaner.max.compaction.lag.ms",
    "log.cleaner.delete.retention.ms",
    "log.message.timestamp.type",
    "log.message.timestamp.before.max.ms",
    "log.message.timestamp.after.max.ms",
    "message.max.bytes",
    "min.insync.replicas",
    "unclean.leader.election.enable",
];

pub fn is_dynamic(key: &str) -> bool {
    DYNAMIC_KEYS.contains(&key)
}

/// The dynamic overrides of the cluster (or of a broker alone), as the metadata holds them.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct DynamicBrokerConfigs {
    /// Cluster-wide (resource name `""`).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub default: BTreeMap<String, String>,
    /// Per broker, keyed by the broker id as text (TOML keys are strings).
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub brokers: BTreeMap<String, BTreeMap<String, String>>,
}

impl DynamicBrokerConfigs {
    /// The overrides of one resource: `None` is the cluster-wide default.
    pub fn of(&self, broker: Option<i32>) -> Option<&BTreeMap<String, String>> {
        match broker {
            None => Some(&self.default),
            Some(id) => self.brokers.get(&id.to_string()),
        }
    }

    /// Replaces all overrides of one resource.
    pub fn set(&mut self, broker: Option<i32>, configs: BTreeMap<String, String>) {
        match broker {
            None => self.default = configs,
            Some(id) if configs.is_empty() => {
                self.brokers.remove(&id.to_string());
            }
            Some(id) => {
                self.brokers.insert(id.to_string(), configs);
            }
        }
    }

    /// The configuration broker `node` runs with: `base` (its static configuration) with the
    /// cluster-wide overrides, then its own. An override that no longer parses (a
    /// hand-edited metadata file) is skipped with a warning.
    pub fn effective(&self, base: &BrokerConfig, node: i32) -> BrokerConfig {
        let mut config = base.clone();
        let layers = [Some(&self.default), self.brokers.get(&node.to_string())];
        for (k, v) in layers.into_iter().flatten().flatten() {
            if !is_dynamic(k) {
                tracing::warn!("ignoring dynamic broker config {k}: not dynamic");
                continue;
            }
            if let Err(e) = config.set(k, v) {
                tracing::warn!("ignoring dynamic broker config: {e}");
            }
        }
        config
    }
}

/// Checks a resource's new overrides: every key dynamic, every value one the configuration
/// file would accept, within the bounds topic configs have. `base` is the configuration
/// the overrides apply on (static, plus the cluster-wide layer for a per-broker resource).
pub fn validate(
    base: &BrokerConfig,
    overrides: &BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    let known: Vec<&str> = BrokerConfig::keys().collect();
    let mut fixed = Vec::new();
    for k in overrides.keys() {
        if !known.contains(&k.as_str()) {
            return Err(ConfigError::UnknownKey(k.clone()));
        }
        if !is_dynamic(k) {
            fixed.push(k.clone());
        }
    }
    if !fixed.is_empty() {
        return Err(ConfigError::NotDynamic(fixed.join(", ")));
    }
    let mut c = base.clone();
    for (k, v) in overrides {
        c.set(k, v)?;
        let out_of_range = match k.as_str() {
            "log.segment.bytes" if c.log.segment_bytes < SEGMENT_BYTES_MIN => {
                Some(format!("must be at least {SEGMENT_BYTES_MIN}"))
            }
            "log.segment.bytes" if c.log.segment_bytes > i32::MAX as u64 => {
                Some("must fit a 32-bit file position".to_string())
            }
            "log.segment.ms" if c.log.segment_ms < SEGMENT_MS_MIN => {
                Some(format!("must be at least {SEGMENT_MS_MIN}"))
            }
            "message.max.bytes" if c.message_max_bytes > c.socket_request_max_bytes => {
                Some(format!(
                    "must not exceed socket.request.max.bytes ({})",
                    c.socket_request_max_bytes
                ))
            }
            "log.cleanup.policy" if v.trim().is_empty() => Some("must not be empty".to_string()),
            _ => None,
        };
        if let Some(reason) = out_of_range {
            return Err(bad(k, v, &reason));
        }
    }
    Ok(())
}

/// A resource's overrides after IncrementalAlterConfigs `ops`, in order. DELETE drops the
/// override (the value below it applies again); APPEND and SUBTRACT work on the list key
/// `log.cleanup.policy`, starting from the value `now` (the configuration in force). The
/// result still needs [`validate`].
pub fn apply_ops(
    now: &BrokerConfig,
    current: &BTreeMap<String, String>,
    ops: &[(String, ConfigOp, Option<String>)],
) -> Result<BTreeMap<String, String>, ConfigError> {
    let mut next = current.clone();
    for (key, op, value) in ops {
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
                if key != "log.cleanup.policy" {
                    return Err(bad(
                        key,
                        &value_of()?,
                        "APPEND and SUBTRACT need a list config",
                    ));
                }
                let start = next
                    .get(key)
                    .cloned()
                    .unwrap_or_else(|| now.log.cleanup_policy().to_string());
                next.insert(
                    key.clone(),
                    super::topic::edit_list(&start, *op, &value_of()?),
                );
            }
        }
    }
    Ok(next)
}

/// Where each broker setting's value comes from, for DescribeConfigs: the dynamic layers
/// of one broker (or of the cluster-wide resource), then the static configuration.
pub struct Layers {
    mine: BTreeMap<String, String>,
    default: BTreeMap<String, String>,
    statics: BTreeMap<&'static str, String>,
    builtin: BTreeMap<&'static str, String>,
}

impl Layers {
    /// `node` is the broker described; `None` describes the cluster-wide resource, which
    /// has no per-broker layer.
    pub fn new(base: &BrokerConfig, dynamic: &DynamicBrokerConfigs, node: Option<i32>) -> Layers {
        Layers {
            mine: node
                .and_then(|n| dynamic.of(Some(n)))
                .cloned()
                .unwrap_or_default(),
            default: dynamic.default.clone(),
            statics: super::describe::broker_entries(base).into_iter().collect(),
            builtin: super::describe::broker_entries(&BrokerConfig::default())
                .into_iter()
                .collect(),
        }
    }

    /// A broker key's values, most specific first (Kafka's synonym order), each with its
    /// source: this broker's dynamic value, the cluster-wide one, then the static value
    /// (STATIC_BROKER_CONFIG when the configuration sets it, else DEFAULT_CONFIG).
    pub fn synonyms(&self, key: &str) -> Vec<(String, i8)> {
        let mut out = Vec::new();
        if let Some(v) = self.mine.get(key) {
            out.push((v.clone(), DYNAMIC_BROKER_CONFIG));
        }
        if let Some(v) = self.default.get(key) {
            out.push((v.clone(), DYNAMIC_DEFAULT_BROKER_CONFIG));
        }
        if let Some(v) = self.statics.get(key) {
            let source = if self.builtin.get(key) == Some(v) {
                DEFAULT_CONFIG
            } else {
                STATIC_BROKER_CONFIG
            };
            out.push((v.clone(), source));
        }
        out
    }
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
    fn per_broker_beats_cluster_wide_beats_static() {
        let mut base = BrokerConfig::default();
        base.set("log.retention.ms", "5000").unwrap();
        base.set("log.segment.bytes", "2000000").unwrap();
        let mut d = DynamicBrokerConfigs::default();
        d.set(
            None,
            map(&[("log.retention.ms", "1000"), ("message.max.bytes", "5000")]),
        );
        d.set(Some(1), map(&[("log.retention.ms", "2000")]));
        let one = d.effective(&base, 1);
        assert_eq!(one.log.retention_ms, Some(2000));
        assert_eq!(one.log.max_batch_bytes, 5000);
        assert_eq!(one.log.segment_bytes, 2_000_000);
        let two = d.effective(&base, 2);
        assert_eq!(two.log.retention_ms, Some(1000));
        // Deleting the cluster-wide value restores the static one.
        d.set(None, BTreeMap::new());
        assert_eq!(d.effective(&base, 2).log.retention_ms, Some(5000));
        d.set(Some(1), BTreeMap::new());
        assert!(d.brokers.is_empty());
    }

    #[test]
    fn only_dynamic_keys_with_good_values_pass() {
        let base = BrokerConfig::default();
        validate(
            &base,
            &map(&[("log.retention.ms", "-1"), ("log.flush", "fsync")]),
        )
        .unwrap();
        assert_eq!(
            validate(&base, &map(&[("log.io", "direct"), ("listen", "a:1")])),
            Err(ConfigError::NotDynamic("listen, log.io".into()))
        );
        assert!(matches!(
            validate(&base, &map(&[("nope", "1")])),
            Err(ConfigError::UnknownKey(_))
        ));
        for (k, v) in [
            ("log.retention.ms", "x"),
            ("log.segment.bytes", "1000"),
            ("log.segment.ms", "1"),
            ("message.max.bytes", "999999999999"),
            ("log.cleanup.policy", ""),
            ("log.flush", "sometimes"),
        ] {
            assert!(validate(&base, &map(&[(k, v)])).is_err(), "{k}={v}");
        }
    }

    #[test]
    fn incremental_ops_on_broker_overrides() {
        use ConfigOp::*;
        let base = BrokerConfig::default();
        let op = |k: &str, o, v: Option<&str>| (k.to_string(), o, v.map(str::to_string));
        let cur = map(&[("log.retention.ms", "1000")]);
        let next = apply_ops(
            &base,
            &cur,
            &[
                op("log.retention.ms", Delete, None),
                op("log.cleanup.policy", Append, Some("compact")),
            ],
        )
        .unwrap();
        assert_eq!(next, map(&[("log.cleanup.policy", "delete,compact")]));
        assert!(apply_ops(&base, &cur, &[op("log.retention.ms", Append, Some("1"))]).is_err());
        assert!(apply_ops(&base, &cur, &[op("log.retention.ms", Set, None)]).is_err());
    }

    #[test]
    fn synonyms_name_every_layer_most_specific_first() {
        let mut base = BrokerConfig::default();
        base.set("log.segment.bytes", "2000000").unwrap();
        let mut d = DynamicBrokerConfigs::default();
        d.set(None, map(&[("log.retention.ms", "1000")]));
        d.set(Some(0), map(&[("log.retention.ms", "2000")]));
        let l = Layers::new(&base, &d, Some(0));
        assert_eq!(
            l.synonyms("log.retention.ms"),
            vec![
                ("2000".to_string(), DYNAMIC_BROKER_CONFIG),
                ("1000".to_string(), DYNAMIC_DEFAULT_BROKER_CONFIG),
                ("604800000".to_string(), DEFAULT_CONFIG),
            ]
        );
        assert_eq!(
            l.synonyms("log.segment.bytes"),
            vec![("2000000".to_string(), STATIC_BROKER_CONFIG)]
        );
        let cluster = Layers::new(&base, &d, None);
        assert_eq!(
            cluster.synonyms("log.retention.ms")[0].1,
            DYNAMIC_DEFAULT_BROKER_CONFIG
        );
    }

    #[test]
    fn old_metadata_without_dynamic_configs_loads() {
        let d: DynamicBrokerConfigs = serde_json::from_str("{}").unwrap();
        assert_eq!(d, DynamicBrokerConfigs::default());
    }
}
