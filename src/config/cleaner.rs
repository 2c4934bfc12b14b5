//! The log cleaner's broker settings (Kafka's `log.cleaner.*`), the broker defaults of
//! the compaction topic configs, and the scrubber's (`log.scrub.*`, ringbroker's own).

use super::log::LogConfig;
use super::parse::{ConfigError, bad, parse_num, parse_positive};
use super::topic::{parse_ms, parse_ratio};

#[derive(Debug, Clone, PartialEq)]
pub struct CleanerConfig {
    /// `log.cleaner.enable`: run a cleaner on every shard.
    pub enable: bool,
    /// `log.cleaner.io.max.bytes.per.second`: read plus written bytes per second of one
    /// shard's cleaner; `None` is unbounded (Kafka's default, Double.MAX).
    pub io_max_bytes_per_second: Option<u64>,
    /// `log.cleaner.backoff.ms`: how long a cleaner sleeps when no log needs cleaning.
    pub backoff_ms: u64,
    /// `log.cleaner.dedupe.buffer.size`: memory for the key map of one shard's cleaner.
    /// Kafka splits it over its cleaner threads; here each shard gets this share.
    pub dedupe_buffer_bytes: u64,
    /// `log.scrub.interval.ms`: how often every sealed segment is read again and checked
    /// (CRC-32C, offsets, length) while the broker runs; 0 turns the periodic passes off
    /// (the one check of the segments an open skipped still runs).
    pub scrub_interval_ms: u64,
    /// `log.scrub.io.max.bytes.per.second`: the bytes one shard's scrubber reads per second.
    pub scrub_io_max_bytes_per_second: u64,
}

impl Default for CleanerConfig {
    fn default() -> Self {
        CleanerConfig {
            enable: true,
            io_max_bytes_per_second: None,
            backoff_ms: 15_000,
            dedupe_buffer_bytes: 128 << 20,
            scrub_interval_ms: 7 * 24 * 3_600_000,
            scrub_io_max_bytes_per_second: 32 << 20,
        }
    }
}

impl CleanerConfig {
    pub const KEYS: &'static [&'static str] = &[
        "log.cleaner.enable",
        "log.cleaner.io.max.bytes.per.second",
        "log.cleaner.backoff.ms",
        "log.cleaner.dedupe.buffer.size",
        "log.cleanup.policy",
        "log.cleaner.min.cleanable.ratio",
        "log.cleaner.min.compaction.lag.ms",
        "log.cleaner.max.compaction.lag.ms",
        "log.cleaner.delete.retention.ms",
        "log.scrub.interval.ms",
        "log.scrub.io.max.bytes.per.second",
    ];

    /// Sets one of [`Self::KEYS`] (the topic defaults go to `log`); `Ok(false)` when the
    /// key is not the cleaner's.
    pub fn set(
        &mut self,
        log: &mut LogConfig,
        key: &str,
        value: &str,
    ) -> Result<bool, ConfigError> {
        match key {
            "log.cleaner.enable" => {
                self.enable = match value {
                    "true" => true,
                    "false" => false,
                    _ => return Err(bad(key, value, "expected true or false")),
                }
            }
            "log.cleaner.io.max.bytes.per.second" => {
                // Kafka's default is Double.MAX_VALUE; any huge or negative value is "none".
                let v: f64 = parse_num(key, value)?;
                self.io_max_bytes_per_second = if (1.0..1e18).contains(&v) {
                    Some(v as u64)
                } else if v > 0.0 {
                    None
                } else {
                    return Err(bad(key, value, "must be positive"));
                };
            }
            "log.cleaner.backoff.ms" => self.backoff_ms = parse_positive(key, value)?,
            "log.cleaner.dedupe.buffer.size" => {
                let v = parse_positive(key, value)?;
                if v < 1 << 20 {
                    return Err(bad(key, value, "must be at least 1 MiB"));
                }
                self.dedupe_buffer_bytes = v;
            }
            "log.cleanup.policy" => log
                .set_cleanup_policy(value)
                .map_err(|r| bad(key, value, &r))?,
            "log.cleaner.min.cleanable.ratio" => {
                log.min_cleanable_dirty_ratio = parse_ratio(key, value)?
            }
            "log.cleaner.min.compaction.lag.ms" => {
                log.min_compaction_lag_ms = parse_ms(key, value)?
            }
            "log.cleaner.max.compaction.lag.ms" => {
                log.max_compaction_lag_ms = parse_positive(key, value)?
            }
            "log.cleaner.delete.retention.ms" => log.delete_retention_ms = parse_ms(key, value)?,
            "log.scrub.interval.ms" => self.scrub_interval_ms = parse_num(key, value)?,
            "log.scrub.io.max.bytes.per.second" => {
                self.scrub_io_max_bytes_per_second = parse_positive(key, value)?
            }
            _ => return Ok(false),
        }
        Ok(true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cleaner_settings_parse_and_bad_ones_are_refused() {
        let mut c = CleanerConfig::default();
        let mut log = LogConfig::default();
        assert!(c.set(&mut log, "log.cleaner.enable", "false").unwrap());
        assert!(!c.enable);
        c.set(&mut log, "log.cleaner.io.max.bytes.per.second", "1048576")
            .unwrap();
        assert_eq!(c.io_max_bytes_per_second, Some(1 << 20));
        c.set(
            &mut log,
            "log.cleaner.io.max.bytes.per.second",
            "1.7976931348623157E308",
        )
        .unwrap();
        assert_eq!(c.io_max_bytes_per_second, None);
        c.set(&mut log, "log.cleanup.policy", "compact").unwrap();
        assert!(log.cleanup_compact && !log.cleanup_delete);
        assert!(!c.set(&mut log, "log.flush", "none").unwrap());
        for (k, v) in [
            ("log.cleaner.enable", "yes"),
            ("log.cleaner.backoff.ms", "0"),
            ("log.cleaner.dedupe.buffer.size", "10"),
            ("log.cleaner.io.max.bytes.per.second", "-1"),
            ("log.cleaner.min.cleanable.ratio", "2"),
        ] {
            assert!(c.set(&mut log, k, v).is_err(), "{k}={v}");
        }
    }
}
