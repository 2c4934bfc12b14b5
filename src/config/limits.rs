//! Limits that keep one client from crashing or starving the broker (DESIGN §8): request
//! memory, connections, idle and half-sent frames, partitions.
//!
//! Kafka's names where Kafka has the setting; where Kafka's default is "unlimited" and an
//! unlimited value lets one client hurt the others, the default here is a bound that fits a
//! small machine (2 cores, 24 GiB) and is stated in the README.

use super::parse::{ConfigError, bad, parse_num, parse_positive};

#[derive(Debug, Clone, PartialEq)]
pub struct LimitsConfig {
    /// Request bytes held in memory across the broker (frames read and not yet answered),
    /// Kafka's `queued.max.request.bytes`. When spent, the broker stops reading sockets.
    pub queued_max_request_bytes: u64,
    /// Connections across the broker; 0 derives it from the file-descriptor limit.
    pub max_connections: usize,
    /// Connections from one IP address.
    pub max_connections_per_ip: usize,
    /// A connection with nothing read, nothing in flight and nothing sent for this long is
    /// closed (Kafka's `connections.max.idle.ms`).
    pub connections_max_idle_ms: u64,
    /// A frame whose bytes have not all arrived this long after its length did closes its
    /// connection (a half-sent frame holds request memory).
    pub socket_frame_timeout_ms: u64,
    /// Partitions one topic may have.
    pub topic_partitions_max: i32,
    /// Partitions this broker may hold in all (internal topics included).
    pub broker_partitions_max: i64,
    /// Incremental fetch sessions (KIP-227) the broker keeps, Kafka's
    /// `max.incremental.fetch.session.cache.slots`; split evenly over the shards. 0 turns
    /// sessions off (every fetch is a full one). The sessions of a shard hold at most
    /// `broker_partitions_max` partitions together.
    pub fetch_session_cache_slots: usize,
    /// A fetch session idle this long may be evicted by any new one, and a session this
    /// old may be evicted by a larger one (Kafka's
    /// `min.incremental.fetch.session.eviction.ms`).
    pub fetch_session_eviction_ms: u64,
}

impl Default for LimitsConfig {
    fn default() -> Self {
        LimitsConfig {
            queued_max_request_bytes: 512 << 20,
            max_connections: 0,
            max_connections_per_ip: i32::MAX as usize,
            connections_max_idle_ms: 600_000,
            socket_frame_timeout_ms: 30_000,
            topic_partitions_max: 10_000,
            broker_partitions_max: 100_000,
            fetch_session_cache_slots: 1000,
            fetch_session_eviction_ms: 120_000,
        }
    }
}

impl LimitsConfig {
    pub const KEYS: &'static [&'static str] = &[
        "queued.max.request.bytes",
        "max.connections",
        "max.connections.per.ip",
        "connections.max.idle.ms",
        "socket.frame.timeout.ms",
        "topic.partitions.max",
        "broker.partitions.max",
        "max.incremental.fetch.session.cache.slots",
        "min.incremental.fetch.session.eviction.ms",
    ];

    /// Sets one of [`Self::KEYS`]; `Ok(false)` when the key is not a limit.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "queued.max.request.bytes" => {
                self.queued_max_request_bytes = parse_positive(key, value)?
            }
            "max.connections" => self.max_connections = parse_num(key, value)?,
            "max.connections.per.ip" => {
                self.max_connections_per_ip = parse_positive(key, value)? as usize
            }
            "connections.max.idle.ms" => self.connections_max_idle_ms = parse_positive(key, value)?,
            "socket.frame.timeout.ms" => self.socket_frame_timeout_ms = parse_positive(key, value)?,
            "topic.partitions.max" => {
                let v = parse_positive(key, value)?;
                self.topic_partitions_max = i32::try_from(v)
                    .map_err(|_| bad(key, value, "must fit a partition count (i32)"))?;
            }
            "broker.partitions.max" => {
                let v = parse_positive(key, value)?;
                self.broker_partitions_max =
                    i64::try_from(v).map_err(|_| bad(key, value, "too large"))?;
            }
            "max.incremental.fetch.session.cache.slots" => {
                self.fetch_session_cache_slots = parse_num(key, value)?
            }
            "min.incremental.fetch.session.eviction.ms" => {
                self.fetch_session_eviction_ms = parse_num(key, value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }

    /// The connection cap: the configured one, or what the descriptor budget allows. Each
    /// connection holds two descriptors (a reader and a writer); half the descriptors are
    /// kept for segment files, the metadata and the rings.
    pub fn effective_max_connections(&self, nofile: u64) -> usize {
        if self.max_connections > 0 {
            return self.max_connections;
        }
        usize::try_from(nofile / 4).unwrap_or(usize::MAX).max(16)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn limits_parse_and_reject_nonsense() {
        let mut l = LimitsConfig::default();
        assert_eq!(l.set("max.connections", "100"), Ok(true));
        assert_eq!(l.max_connections, 100);
        assert_eq!(l.set("log.flush", "fsync"), Ok(false));
        assert!(l.set("queued.max.request.bytes", "0").is_err());
        assert!(l.set("topic.partitions.max", "3000000000").is_err());
        assert!(l.set("connections.max.idle.ms", "-1").is_err());
    }

    #[test]
    fn connection_cap_follows_descriptors_unless_set() {
        let mut l = LimitsConfig::default();
        assert_eq!(l.effective_max_connections(1_048_576), 262_144);
        assert_eq!(l.effective_max_connections(20), 16);
        l.max_connections = 7;
        assert_eq!(l.effective_max_connections(1_048_576), 7);
    }
}
