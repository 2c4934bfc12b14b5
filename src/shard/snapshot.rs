//! A copy of one shard's counters for a scrape: what a shard sends over the mesh and the
//! Prometheus endpoint renders. Plain data, so the mesh messages can carry it without
//! depending on the shard's metrics code.

use crate::stats::HistogramSnapshot;

/// One partition log's numbers at a scrape.
#[derive(Debug, Clone, Default)]
pub struct PartitionSnapshot {
    pub topic: String,
    pub partition: i32,
    pub bytes_in: u64,
    pub records_in: u64,
    pub bytes_out: u64,
    pub records_out: u64,
    pub size_bytes: u64,
    pub segments: u64,
    pub log_start_offset: i64,
    pub log_end_offset: i64,
    pub high_watermark: i64,
    pub sync_us: HistogramSnapshot,
    pub write_batch: HistogramSnapshot,
    /// Compaction: cleaner runs, bytes it read and wrote, records it removed.
    pub cleaner_runs: u64,
    pub cleaner_bytes_read: u64,
    pub cleaner_bytes_written: u64,
    pub cleaner_records_removed: u64,
}

#[derive(Debug, Clone, Default)]
pub struct ApiSnapshot {
    pub key: i16,
    pub requests: u64,
    pub failures: Vec<(&'static str, u64)>,
    pub latency_us: HistogramSnapshot,
}

/// This broker's place in its cluster, from shard 0's metadata copy.
#[derive(Debug, Clone, Default)]
pub struct ClusterSnapshot {
    pub node: i32,
    pub is_controller: bool,
    pub fenced: bool,
    pub lease: bool,
    pub leaders: u64,
}

/// Everything one shard tells a scrape; `Send`, it crosses the mesh.
#[derive(Debug, Clone, Default)]
pub struct ShardSnapshot {
    pub shard: usize,
    pub partitions: Vec<PartitionSnapshot>,
    pub apis: Vec<ApiSnapshot>,
    pub partition_errors: Vec<(i16, i16, u64)>,
    pub connections_open: u64,
    pub connections_accepted: u64,
    pub mesh_sent: Vec<u64>,
    pub produce_in_flight: u64,
    pub fetch_waiting: u64,
    pub fetch_sessions: u64,
    pub fetch_session_evictions: u64,
    pub sendfile_bytes: u64,
    pub writev_bytes: u64,
    pub fallback_bytes: u64,
    pub cache_hit_bytes: u64,
    pub cache_miss_bytes: u64,
    pub cold_fill_bytes: u64,
    /// Blocking file calls made on this shard's reactor thread (0 unless a path misses the
    /// blocking thread pool).
    pub reactor_blocking_calls: u64,
    /// Deleted files closed for the last time on the blocking pool (`storage::release`).
    pub deleted_files_released: u64,
    pub cluster: Option<ClusterSnapshot>,
    /// (group, topic, partition, committed offset) of the groups this shard coordinates.
    pub committed: Vec<(String, String, i32, i64)>,
}
