//! Broker configuration: embedded defaults, then a TOML file, then `--set KEY=VALUE`
//! overrides, then explicit CLI flags.
//!
//! Keys are Kafka-style dotted names. A TOML file may write them flat and quoted
//! (`"log.flush" = "fsync"`) or as tables (`[log] flush = "fsync"`); tables are flattened to
//! dotted keys first, so both spellings go through the same [`BrokerConfig::set`]. Unknown
//! keys and bad values are errors: a typo must not silently run the broker with a default.

use super::log::{FlushMode, IoMode, LogConfig};
pub use super::parse::ConfigError;
use super::parse::{
    bad, parse_bool, parse_num, parse_optional_limit, parse_positive, parse_timestamp_bound,
    parse_timestamp_type,
};
use std::collections::BTreeMap;
use std::path::PathBuf;

/// Every setting of one broker process.
#[derive(Debug, Clone, PartialEq)]
pub struct BrokerConfig {
    /// Address the Kafka listener binds on every shard (SO_REUSEPORT).
    pub listen: String,
    /// `HOST:PORT` returned to clients in Metadata; `None` derives it from `listen`.
    pub advertised: Option<String>,
    /// `HOST:PORT` of the Prometheus endpoint (`GET /metrics`) on shard 0; `None` is off.
    pub metrics_listen: Option<String>,
    pub data_dir: PathBuf,
    /// Number of shards (executors); 0 means one per core.
    pub shards: usize,
    pub auto_create_topics_enable: bool,
    pub num_partitions: i32,
    /// The largest records field of one partition in a Produce request.
    pub message_max_bytes: u64,
    /// The largest request frame; a larger one closes its connection before allocating.
    pub socket_request_max_bytes: u64,
    /// Requests of one connection processed concurrently (pipelining depth).
    pub max_inflight_requests: usize,
    /// Congestion control set on every client socket (TCP_CONGESTION); `None` keeps the
    /// system's default (`net.ipv4.tcp_congestion_control`).
    pub socket_tcp_congestion: Option<String>,
    /// Locked io_uring buffer memory per shard; `None` sizes it from `ulimit -l`.
    pub io_memory_bytes: Option<usize>,
    /// Send fetched record bytes with sendfile/writev (true) or copying writes (false,
    /// for comparisons).
    pub fetch_zero_copy: bool,
    /// Per-shard memory for recently written batches of `io = direct` logs, which the page
    /// cache does not hold; `None` sizes it from the machine's memory.
    pub direct_cache_bytes: Option<u64>,
    /// Broker defaults of the per-topic log settings.
    pub log: LogConfig,
    /// Consumer-group coordinator settings.
    pub group: super::GroupConfig,
    pub txn: super::TxnConfig,
    /// Request memory, connections, timeouts and partition caps.
    pub limits: super::LimitsConfig,
    /// Node id, controller quorum and broker liveness; unset runs the broker alone.
    pub cluster: super::ClusterConfig,
    /// The log cleaner (compaction).
    pub cleaner: super::CleanerConfig,
    /// Listeners with their security protocols, TLS and SASL.
    pub security: super::SecurityConfig,
    /// Which listener of the other brokers a broker reaches, and its login there.
    pub inter_broker: super::inter_broker::InterBrokerConfig,
}

impl Default for BrokerConfig {
    fn default() -> Self {
        BrokerConfig {
            listen: "0.0.0.0:9092".to_string(),
            advertised: None,
            metrics_listen: None,
            data_dir: PathBuf::from("./data"),
            shards: 0,
            auto_create_topics_enable: true,
            num_partitions: 1,
            message_max_bytes: 1_048_588,
            socket_request_max_bytes: 104_857_600,
            max_inflight_requests: 32,
            socket_tcp_congestion: None,
            io_memory_bytes: None,
            fetch_zero_copy: true,
            direct_cache_bytes: None,
            log: LogConfig::default(),
            group: super::GroupConfig::default(),
            txn: super::TxnConfig::default(),
            limits: super::LimitsConfig::default(),
            cluster: super::ClusterConfig::default(),
            cleaner: super::CleanerConfig::default(),
            security: super::SecurityConfig::default(),
            inter_broker: Default::default(),
        }
    }
}

impl BrokerConfig {
    /// Memory of each shard's direct-IO batch cache: the configured size, or 1/32 of the
    /// machine's memory split over the shards, between 16 MiB and 1 GiB.
    pub fn direct_cache_bytes_per_shard(&self, shards: usize) -> u64 {
        if let Some(v) = self.direct_cache_bytes {
            return v;
        }
        // SAFETY: sysconf has no preconditions.
        let pages = unsafe { libc::sysconf(libc::_SC_PHYS_PAGES) };
        // SAFETY: as above.
        let page = unsafe { libc::sysconf(libc::_SC_PAGESIZE) };
        let total = if pages > 0 && page > 0 {
            pages as u64 * page as u64
        } else {
            4 << 30
        };
        (total / 32 / shards.max(1) as u64).clamp(16 << 20, 1 << 30)
    }

    /// Every key `set` accepts, for error messages and the documented defaults file.
    pub const KEYS: &'static [&'static str] = &[
        "listen",
        "advertised",
        "metrics.listen",
        "data.dir",
        "shards",
        "auto.create.topics.enable",
        "num.partitions",
        "message.max.bytes",
        "socket.request.max.bytes",
        "max.inflight.requests",
        "socket.tcp.congestion",
        "io.memory.bytes",
        "fetch.zero.copy",
        "log.direct.cache.bytes",
        "log.io",
        "log.flush",
        "log.flush.interval.ms",
        "log.flush.interval.bytes",
        "log.segment.bytes",
        "log.segment.ms",
        "log.retention.bytes",
        "log.retention.ms",
        "log.index.interval.bytes",
        "log.preallocate.bytes",
        "min.insync.replicas",
        "unclean.leader.election.enable",
        "log.message.timestamp.type",
        "log.message.timestamp.before.max.ms",
        "log.message.timestamp.after.max.ms",
    ];

    /// Sets one key from its textual value.
    pub fn set(&mut self, key: &str, value: &str) -> Result<(), ConfigError> {
        match key {
            "listen" => {
                check_host_port(key, value)?;
                self.listen = value.to_string();
            }
            "advertised" => {
                check_host_port(key, value)?;
                self.advertised = Some(value.to_string());
            }
            "metrics.listen" => {
                self.metrics_listen = if value.is_empty() {
                    None
                } else {
                    check_host_port(key, value)?;
                    Some(value.to_string())
                };
            }
            "data.dir" => {
                if value.is_empty() {
                    return Err(bad(key, value, "must not be empty"));
                }
                self.data_dir = PathBuf::from(value);
            }
            "shards" => {
                let n: usize = parse_num(key, value)?;
                if n > 1024 {
                    return Err(bad(key, value, "at most 1024 shards"));
                }
                self.shards = n;
            }
            "auto.create.topics.enable" => self.auto_create_topics_enable = parse_bool(key, value)?,
            "num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(bad(key, value, "must be at least 1"));
                }
                self.num_partitions = n;
            }
            "message.max.bytes" => {
                let v = parse_positive(key, value)?;
                self.message_max_bytes = v;
                self.log.max_batch_bytes = v;
            }
            "socket.request.max.bytes" => {
                let v = parse_positive(key, value)?;
                if v > i32::MAX as u64 {
                    return Err(bad(key, value, "must fit a Kafka frame length (i32)"));
                }
                self.socket_request_max_bytes = v;
            }
            "max.inflight.requests" => {
                self.max_inflight_requests = parse_positive(key, value)? as usize;
            }
            "socket.tcp.congestion" => {
                if value.is_empty() {
                    self.socket_tcp_congestion = None;
                } else {
                    crate::os::sockopt::probe_congestion(value).map_err(|e| {
                        bad(key, value, &format!("not available on this machine ({e}); see net.ipv4.tcp_available_congestion_control"))
                    })?;
                    self.socket_tcp_congestion = Some(value.to_string());
                }
            }
            "io.memory.bytes" => {
                self.io_memory_bytes = Some(parse_positive(key, value)? as usize);
            }
            "fetch.zero.copy" => self.fetch_zero_copy = parse_bool(key, value)?,
            "log.direct.cache.bytes" => self.direct_cache_bytes = Some(parse_num(key, value)?),
            "log.io" => {
                self.log.io = value
                    .parse::<IoMode>()
                    .map_err(|reason| bad(key, value, &reason))?
            }
            "log.flush" => {
                self.log.flush = value
                    .parse::<FlushMode>()
                    .map_err(|reason| bad(key, value, &reason))?
            }
            "log.flush.interval.ms" => self.log.flush_interval_ms = parse_positive(key, value)?,
            "log.flush.interval.bytes" => {
                self.log.flush_interval_bytes = parse_positive(key, value)?
            }
            "log.segment.bytes" => self.log.segment_bytes = parse_positive(key, value)?,
            "log.segment.ms" => self.log.segment_ms = parse_positive(key, value)?,
            "log.retention.bytes" => self.log.retention_bytes = parse_optional_limit(key, value)?,
            "log.retention.ms" => self.log.retention_ms = parse_optional_limit(key, value)?,
            "log.index.interval.bytes" => {
                self.log.index_interval_bytes = parse_positive(key, value)?
            }
            "log.preallocate.bytes" => self.log.preallocate_bytes = parse_num(key, value)?,
            "min.insync.replicas" | "unclean.leader.election.enable" => {
                crate::config::topic::apply_broker_default(&mut self.log, key, value)?
            }
            "log.message.timestamp.type" => {
                self.log.log_append_time = parse_timestamp_type(key, value)?
            }
            "log.message.timestamp.before.max.ms" => {
                self.log.timestamp_before_max_ms = parse_timestamp_bound(key, value)?
            }
            "log.message.timestamp.after.max.ms" => {
                self.log.timestamp_after_max_ms = parse_timestamp_bound(key, value)?
            }
            other => {
                if !self.limits.set(other, value)?
                    && !self.cluster.set(other, value)?
                    && !self.cleaner.set(&mut self.log, other, value)?
                    && !self.security.set(other, value)?
                    && !self.inter_broker.set(other, value)?
                    && !self.txn.set(other, value)?
                    && !self.group.set(other, value)?
                {
                    return Err(ConfigError::UnknownKey(other.to_string()));
                }
            }
        }
        Ok(())
    }

    /// The listeners to bind, resolved from `listeners` or from `listen`.
    pub fn listeners(&self) -> Result<Vec<super::security::Listener>, ConfigError> {
        self.security
            .listeners(&self.listen, self.advertised.as_deref())
    }

    /// The listener of the other brokers this broker reaches, and its login there.
    pub fn inter_broker_link(&self) -> Result<super::inter_broker::InterBroker, ConfigError> {
        self.inter_broker
            .resolve(&self.listeners()?, &self.security)
    }

    /// Every key `set` accepts.
    pub fn keys() -> impl Iterator<Item = &'static str> {
        Self::KEYS
            .iter()
            .chain(super::LimitsConfig::KEYS)
            .chain(super::ClusterConfig::KEYS)
            .chain(super::CleanerConfig::KEYS)
            .chain(super::SecurityConfig::KEYS)
            .chain(super::inter_broker::InterBrokerConfig::KEYS)
            .chain(super::TxnConfig::KEYS)
            .chain(super::GroupConfig::KEYS)
            .copied()
    }

    /// Checks what no single key can: settings that must agree with each other. Run once
    /// every source has been applied.
    pub fn validate(&self) -> Result<(), ConfigError> {
        self.cluster.validate()?;
        let listen_set = self.listen != BrokerConfig::default().listen || self.advertised.is_some();
        self.security
            .validate(&self.listen, self.advertised.as_deref(), listen_set)?;
        if self.cluster.node_id.is_some() {
            self.inter_broker_link()?;
            self.inter_broker.controller_tls(&self.security)?;
        }
        if self.limits.queued_max_request_bytes < self.socket_request_max_bytes {
            return Err(bad(
                "queued.max.request.bytes",
                &self.limits.queued_max_request_bytes.to_string(),
                "must be at least socket.request.max.bytes, or no largest request could be read",
            ));
        }
        Ok(())
    }

    /// Applies every key of a TOML document (flat dotted keys or tables).
    pub fn apply_toml(&mut self, text: &str) -> Result<(), ConfigError> {
        let table: toml::Table = text
            .parse()
            .map_err(|e: toml::de::Error| ConfigError::Toml(e.to_string()))?;
        let mut flat = BTreeMap::new();
        flatten("", &table, &mut flat)?;
        for (key, value) in flat {
            self.set(&key, &value)?;
        }
        Ok(())
    }

    pub fn apply_toml_file(&mut self, path: &std::path::Path) -> Result<(), ConfigError> {
        let text = std::fs::read_to_string(path).map_err(|e| ConfigError::Read {
            path: path.display().to_string(),
            reason: e.to_string(),
        })?;
        self.apply_toml(&text)
    }

    /// Applies one `KEY=VALUE` override from the command line.
    pub fn apply_override(&mut self, kv: &str) -> Result<(), ConfigError> {
        let (key, value) = kv
            .split_once('=')
            .ok_or_else(|| ConfigError::BadOverride(kv.to_string()))?;
        self.set(key.trim(), value.trim())
    }
}

fn check_host_port(key: &str, value: &str) -> Result<(), ConfigError> {
    let (host, port) = value
        .rsplit_once(':')
        .ok_or_else(|| bad(key, value, "expected HOST:PORT"))?;
    if host.is_empty() {
        return Err(bad(key, value, "expected HOST:PORT"));
    }
    parse_num::<u16>(key, port)?;
    Ok(())
}

/// Flattens nested tables into dotted keys, and scalar values into their text form.
fn flatten(
    prefix: &str,
    table: &toml::Table,
    out: &mut BTreeMap<String, String>,
) -> Result<(), ConfigError> {
    for (k, v) in table {
        let key = if prefix.is_empty() {
            k.clone()
        } else {
            format!("{prefix}.{k}")
        };
        let text = match v {
            toml::Value::Table(t) => {
                flatten(&key, t, out)?;
                continue;
            }
            toml::Value::String(s) => s.clone(),
            toml::Value::Integer(i) => i.to_string(),
            toml::Value::Boolean(b) => b.to_string(),
            toml::Value::Float(f) => f.to_string(),
            other => {
                return Err(bad(
                    &key,
                    &other.to_string(),
                    "expected a string, integer or boolean",
                ));
            }
        };
        if out.insert(key.clone(), text).is_some() {
            return Err(bad(&key, "", "key given twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flat_and_table_spellings_agree() {
        let mut a = BrokerConfig::default();
        a.apply_toml(
            r#"
            "log.flush" = "fsync"
            "num.partitions" = 3
            "auto.create.topics.enable" = false
            "#,
        )
        .unwrap();
        let mut b = BrokerConfig::default();
        b.apply_toml(
            r#"
            num.partitions = 3
            [log]
            flush = "fsync"
            [auto.create.topics]
            enable = false
            "#,
        )
        .unwrap();
        assert_eq!(a, b);
        assert_eq!(a.log.flush, FlushMode::Fsync);
        assert_eq!(a.num_partitions, 3);
        assert!(!a.auto_create_topics_enable);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_rejected() {
        let mut c = BrokerConfig::default();
        assert_eq!(
            c.apply_toml("\"log.flsh\" = \"fsync\""),
            Err(ConfigError::UnknownKey("log.flsh".into()))
        );
        assert!(matches!(
            c.apply_override("log.flush=sometimes"),
            Err(ConfigError::BadValue { .. })
        ));
        assert!(matches!(
            c.apply_override("num.partitions=0"),
            Err(ConfigError::BadValue { .. })
        ));
        assert!(matches!(
            c.apply_override("listen=nohost"),
            Err(ConfigError::BadValue { .. })
        ));
        assert!(matches!(
            c.apply_override("shards"),
            Err(ConfigError::BadOverride(_))
        ));
        assert!(c.apply_toml("x = 1.5").is_err());
    }

    #[test]
    fn metrics_listen_is_off_when_empty() {
        let mut c = BrokerConfig::default();
        assert_eq!(c.metrics_listen, None);
        c.apply_override("metrics.listen=127.0.0.1:9100").unwrap();
        assert_eq!(c.metrics_listen.as_deref(), Some("127.0.0.1:9100"));
        c.apply_override("metrics.listen=").unwrap();
        assert_eq!(c.metrics_listen, None);
        assert!(matches!(
            c.apply_override("metrics.listen=9100"),
            Err(ConfigError::BadValue { .. })
        ));
    }

    #[test]
    fn overrides_apply() {
        let mut c = BrokerConfig::default();
        c.apply_override("log.retention.bytes=-1").unwrap();
        assert_eq!(c.log.retention_bytes, None);
        c.apply_override("log.retention.ms=1000").unwrap();
        assert_eq!(c.log.retention_ms, Some(1000));
        c.apply_override("message.max.bytes=2000").unwrap();
        assert_eq!(c.log.max_batch_bytes, 2000);
        c.apply_override("log.io=direct").unwrap();
        assert_eq!(c.log.io, IoMode::Direct);
        c.apply_override("socket.tcp.congestion=reno").unwrap();
        assert_eq!(c.socket_tcp_congestion.as_deref(), Some("reno"));
        assert!(c.apply_override("socket.tcp.congestion=nonesuch").is_err());
        c.apply_override("socket.tcp.congestion=").unwrap();
        assert_eq!(c.socket_tcp_congestion, None);
    }

    #[test]
    fn every_documented_key_is_known() {
        let text = std::fs::read_to_string(concat!(
            env!("CARGO_MANIFEST_DIR"),
            "/configs/ringbroker.toml"
        ))
        .unwrap();
        let mut c = BrokerConfig::default();
        c.apply_toml(&text).unwrap();
        // The defaults file must not change the defaults.
        let d = BrokerConfig {
            advertised: c.advertised.clone(),
            io_memory_bytes: c.io_memory_bytes,
            ..Default::default()
        };
        assert_eq!(c, d);
        for key in BrokerConfig::keys() {
            assert!(text.contains(key), "configs/ringbroker.toml lacks {key}");
        }
    }
}
