//! Consumer-group coordinator settings (Kafka's names and defaults).

use super::parse::{ConfigError, bad, parse_num, parse_positive};

/// Settings of the group coordinators and of the `__consumer_offsets` topic.
#[derive(Debug, Clone, PartialEq)]
pub struct GroupConfig {
    /// Partitions of `__consumer_offsets`, used only when the topic is created; an existing
    /// topic keeps its count, because the group -> partition mapping depends on it.
    pub offsets_topic_partitions: i32,
    /// `segment.bytes` of `__consumer_offsets`, used only when the topic is created: the
    /// cleaner compacts sealed segments, so this bounds what stays uncleaned.
    pub offsets_topic_segment_bytes: u64,
    /// Committed offsets of an empty group are dropped this long after the later of their
    /// commit and the moment the group became empty.
    pub offsets_retention_ms: u64,
    /// How often expired offsets are looked for.
    pub offsets_retention_check_interval_ms: u64,
    /// Bounds on the session timeout a member may ask for.
    pub min_session_timeout_ms: u64,
    pub max_session_timeout_ms: u64,
    /// How long the first rebalance of an empty group waits for more members, so that a
    /// consumer fleet starting together is balanced in one round instead of many.
    pub initial_rebalance_delay_ms: u64,
}

impl Default for GroupConfig {
    fn default() -> Self {
        GroupConfig {
            offsets_topic_partitions: 50,
            offsets_topic_segment_bytes: 100 << 20,
            offsets_retention_ms: 10_080 * 60 * 1000,
            offsets_retention_check_interval_ms: 600_000,
            min_session_timeout_ms: 6_000,
            max_session_timeout_ms: 1_800_000,
            initial_rebalance_delay_ms: 3_000,
        }
    }
}

impl GroupConfig {
    pub const KEYS: &'static [&'static str] = &[
        "offsets.topic.num.partitions",
        "offsets.topic.segment.bytes",
        "offsets.retention.minutes",
        "offsets.retention.ms",
        "offsets.retention.check.interval.ms",
        "group.min.session.timeout.ms",
        "group.max.session.timeout.ms",
        "group.initial.rebalance.delay.ms",
    ];

    /// Sets one of [`Self::KEYS`]; `Ok(false)` when the key is not a group setting.
    pub fn set(&mut self, key: &str, value: &str) -> Result<bool, ConfigError> {
        match key {
            "offsets.topic.num.partitions" => {
                let n: i32 = parse_num(key, value)?;
                if !(1..=1000).contains(&n) {
                    return Err(bad(key, value, "must be in 1..=1000"));
                }
                self.offsets_topic_partitions = n;
            }
            "offsets.topic.segment.bytes" => {
                let n = parse_positive(key, value)?;
                if n < crate::config::topic::SEGMENT_BYTES_MIN {
                    return Err(bad(key, value, "must be at least 1 MiB (1048576)"));
                }
                self.offsets_topic_segment_bytes = n;
            }
            "offsets.retention.minutes" => {
                self.offsets_retention_ms = parse_positive(key, value)?.saturating_mul(60_000)
            }
            // Not a Kafka key: the same in milliseconds (the later of the two set wins).
            "offsets.retention.ms" => self.offsets_retention_ms = parse_positive(key, value)?,
            "offsets.retention.check.interval.ms" => {
                self.offsets_retention_check_interval_ms = parse_positive(key, value)?
            }
            "group.min.session.timeout.ms" => {
                self.min_session_timeout_ms = parse_positive(key, value)?
            }
            "group.max.session.timeout.ms" => {
                self.max_session_timeout_ms = parse_positive(key, value)?
            }
            "group.initial.rebalance.delay.ms" => {
                self.initial_rebalance_delay_ms = parse_num(key, value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}
