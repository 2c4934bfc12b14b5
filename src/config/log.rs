//! Per-log storage configuration: the broker defaults (`log.*` keys) with per-topic overrides.

use serde::{Deserialize, Serialize};
use std::str::FromStr;
use std::time::Duration;

/// How appended bytes reach the segment file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum IoMode {
    /// write() into the page cache (Kafka's way).
    #[default]
    Buffered,
    /// O_DIRECT writes of 4 KiB-aligned buffers, the partial tail page rewritten (Redpanda's way).
    Direct,
}

/// When an acknowledged append is durable.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum FlushMode {
    /// Whenever the kernel or device gets to it (Kafka's default).
    #[default]
    None,
    /// fdatasync every `flush_interval_ms` or `flush_interval_bytes`, whichever comes first.
    Interval,
    /// Before the append resolves; concurrent appends share one fdatasync (group commit).
    Fsync,
}

impl FromStr for IoMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "buffered" => Ok(IoMode::Buffered),
            "direct" => Ok(IoMode::Direct),
            other => Err(format!(
                "unknown io mode {other:?}: expected buffered or direct"
            )),
        }
    }
}

impl FromStr for FlushMode {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, String> {
        match s {
            "none" => Ok(FlushMode::None),
            "interval" => Ok(FlushMode::Interval),
            "fsync" => Ok(FlushMode::Fsync),
            other => Err(format!(
                "unknown flush mode {other:?}: expected none, interval or fsync"
            )),
        }
    }
}

impl std::fmt::Display for IoMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            IoMode::Buffered => "buffered",
            IoMode::Direct => "direct",
        })
    }
}

impl std::fmt::Display for FlushMode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            FlushMode::None => "none",
            FlushMode::Interval => "interval",
            FlushMode::Fsync => "fsync",
        })
    }
}

/// The settings one partition log runs with.
#[derive(Debug, Clone, PartialEq)]
pub struct LogConfig {
    pub io: IoMode,
    pub flush: FlushMode,
    /// With `flush = interval`: the longest time unsynced bytes may wait.
    pub flush_interval_ms: u64,
    /// With `flush = interval`: the most unsynced bytes before a sync is started.
    pub flush_interval_bytes: u64,
    /// Roll the active segment when it would grow past this size.
    pub segment_bytes: u64,
    /// Roll the active segment when its first batch is older than this.
    pub segment_ms: u64,
    /// Delete oldest segments while the log is larger than this; `None` keeps everything.
    pub retention_bytes: Option<u64>,
    /// Delete segments whose newest timestamp is older than this; `None` keeps everything.
    pub retention_ms: Option<u64>,
    /// Log bytes between two sparse index entries.
    pub index_interval_bytes: u64,
    /// The largest batch (request records field) one append may carry.
    pub max_batch_bytes: u64,
    /// Bytes of file space reserved ahead of the write position in `io = direct`.
    pub preallocate_bytes: u64,
    /// Stamp batches with the broker clock (`message.timestamp.type=LogAppendTime`).
    pub log_append_time: bool,
    /// Topic `compression.type`: `None` stores batches as the producer sent them; a codec
    /// makes the broker check and recompress every batch to it.
    pub compression: Option<crate::compression::Codec>,
    /// With CreateTime: how far in the past a batch's timestamps may be
    /// (`message.timestamp.before.max.ms`); `None` has no bound.
    pub timestamp_before_max_ms: Option<u64>,
    /// With CreateTime: how far in the future a batch's timestamps may be
    /// (`message.timestamp.after.max.ms`, Kafka 4.0's default of one hour). A far-future
    /// timestamp would otherwise keep its segment from ever expiring.
    pub timestamp_after_max_ms: Option<u64>,
    /// `cleanup.policy` has `delete`: retention by `retention.ms` / `retention.bytes`.
    pub cleanup_delete: bool,
    /// `cleanup.policy` has `compact`: the shard's cleaner keeps the latest record per key.
    pub cleanup_compact: bool,
    /// `min.cleanable.dirty.ratio`: clean once this share of the log is uncleaned.
    pub min_cleanable_dirty_ratio: f64,
    /// `min.compaction.lag.ms`: records younger than this are never cleaned.
    pub min_compaction_lag_ms: u64,
    /// `max.compaction.lag.ms`: a record older than this is cleaned whatever the ratio.
    pub max_compaction_lag_ms: u64,
    /// `delete.retention.ms`: how long a tombstone stays after its batch was first cleaned.
    pub delete_retention_ms: u64,
    /// `min.insync.replicas`: accepted and reported; there is no data replication yet, so
    /// every partition is its own only in-sync replica and this is not enforced.
    pub min_insync_replicas: u32,
    /// `unclean.leader.election.enable`: accepted and reported (no replication yet).
    pub unclean_leader_election: bool,
    /// `leader.replication.throttled.replicas` / `follower...`: Kafka's replica lists for
    /// replication throttles (`partition:broker,...` or `*`), accepted and reported.
    pub leader_throttled_replicas: String,
    pub follower_throttled_replicas: String,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            io: IoMode::Buffered,
            flush: FlushMode::None,
            flush_interval_ms: 1000,
            flush_interval_bytes: 1 << 20,
            segment_bytes: 1 << 30,
            segment_ms: 7 * 24 * 3600 * 1000,
            retention_bytes: None,
            retention_ms: Some(7 * 24 * 3600 * 1000),
            index_interval_bytes: 4096,
            max_batch_bytes: 1_048_588,
            preallocate_bytes: 32 << 20,
            log_append_time: false,
            compression: None,
            timestamp_before_max_ms: None,
            timestamp_after_max_ms: Some(3_600_000),
            cleanup_delete: true,
            cleanup_compact: false,
            min_cleanable_dirty_ratio: 0.5,
            min_compaction_lag_ms: 0,
            max_compaction_lag_ms: i64::MAX as u64,
            delete_retention_ms: 86_400_000,
            min_insync_replicas: 1,
            unclean_leader_election: false,
            leader_throttled_replicas: String::new(),
            follower_throttled_replicas: String::new(),
        }
    }
}

impl LogConfig {
    /// Sets `cleanup.policy` from its value: `delete`, `compact`, or both in any order.
    pub fn set_cleanup_policy(&mut self, value: &str) -> Result<(), String> {
        let (mut delete, mut compact) = (false, false);
        for p in value.split(',').map(str::trim) {
            match p {
                "delete" => delete = true,
                "compact" => compact = true,
                other => {
                    return Err(format!(
                        "unknown cleanup policy {other:?}: expected delete, compact or both"
                    ));
                }
            }
        }
        self.cleanup_delete = delete;
        self.cleanup_compact = compact;
        Ok(())
    }

    /// `cleanup.policy` as Kafka writes it.
    pub fn cleanup_policy(&self) -> &'static str {
        match (self.cleanup_delete, self.cleanup_compact) {
            (true, true) => "compact,delete",
            (false, true) => "compact",
            _ => "delete",
        }
    }

    pub fn flush_interval(&self) -> Duration {
        Duration::from_millis(self.flush_interval_ms)
    }
}
