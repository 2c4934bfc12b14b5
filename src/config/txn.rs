//! Transaction coordinator settings (Kafka's names and defaults).

use super::parse::{ConfigError, bad, parse_num, parse_positive};

#[derive(Debug, Clone, PartialEq)]
pub struct TxnConfig {
    /// The longest `transaction.timeout.ms` a producer may ask for.
    pub max_timeout_ms: i32,
    /// Partitions of `__transaction_state`, used only when the topic is created: the
    /// transactional id -> partition mapping depends on it.
    pub state_partitions: i32,
    /// Replicas of `__transaction_state` (fewer when fewer brokers are alive).
    pub state_replication_factor: i16,
    /// `segment.bytes` of `__transaction_state`, used only when the topic is created.
    pub state_segment_bytes: u64,
    /// How often open transactions are checked against their timeout.
    pub abort_check_interval_ms: u64,
    /// A transactional id with no transaction open and no request for this long is
    /// forgotten (a tombstone in `__transaction_state`).
    pub id_expiration_ms: u64,
}

impl Default for TxnConfig {
    fn default() -> Self {
        TxnConfig {
            max_timeout_ms: 900_000,
            state_partitions: 50,
            state_replication_factor: 3,
            state_segment_bytes: 100 << 20,
            abort_check_interval_ms: 10_000,
            id_expiration_ms: 604_800_000,
        }
    }
}

impl TxnConfig {
    pub const KEYS: &'static [&'static str] = &[
        "transaction.max.timeout.ms",
        "transaction.state.log.num.partitions",
        "transaction.state.log.replication.factor",
        "transaction.state.log.segment.bytes",
        "transaction.abort.timed.out.transaction.cleanup.interval.ms",
        "transactional.id.expiration.ms",
    ];

    /// Sets one of [`Self::KEYS`]; `Ok(false)` when the key is not a transaction setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "transaction.max.timeout.ms" => {
                let n: i32 = parse_num(key, value)?;
                if n < 1 {
                    return Err(bad(key, value, "must be at least 1"));
                }
                self.max_timeout_ms = n;
            }
            "transaction.state.log.num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if !(1..=1000).contains(&n) {
                    return Err(bad(key, value, "must be in 1..=1000"));
                }
                self.state_partitions = n;
            }
            "transaction.state.log.replication.factor" => {
                let n: i16 = parse_num(key, value)?;
                if n < 1 {
                    return Err(bad(key, value, "must be at least 1"));
                }
                self.state_replication_factor = n;
            }
            "transaction.state.log.segment.bytes" => {
                let n = parse_positive(key, value)?;
                if n < crate::config::topic::SEGMENT_BYTES_MIN {
                    return Err(bad(key, value, "must be at least 1 MiB (1048576)"));
                }
                self.state_segment_bytes = n;
            }
            "transaction.abort.timed.out.transaction.cleanup.interval.ms" => {
                self.abort_check_interval_ms = parse_positive(key, value)?
            }
            "transactional.id.expiration.ms" => self.id_expiration_ms = parse_positive(key, value)?,
            _ => return Ok(false),
        }
        Ok(true)
    }
}
