//! What a shard counts for the Prometheus endpoint, and the snapshot of it that a scrape
//! gathers from every shard over the mesh (`ShardRequest::Metrics`). Counting is `Cell`
//! adds on the shard's own thread; only a scrape walks the logs and copies the numbers.

use super::Shard;
pub use super::snapshot::{ApiSnapshot, ClusterSnapshot, PartitionSnapshot, ShardSnapshot};
use crate::stats::{Histogram, LATENCY_US, add};
use std::cell::{Cell, RefCell};
use std::collections::BTreeMap;

/// Kafka API keys are small numbers; one slot each.
const API_SLOTS: usize = 128;

pub struct ApiStats {
    pub requests: Cell<u64>,
    /// Requests that could not be answered (the connection is closed), by reason.
    pub failures: RefCell<BTreeMap<&'static str, u64>>,
    pub latency_us: Histogram,
}

/// One shard's counters that are not a log's (those are in `storage::LogStats`).
pub struct ShardMetrics {
    apis: Box<[ApiStats]>,
    /// Partition results answered with an error, by (API key, error code).
    pub partition_errors: RefCell<BTreeMap<(i16, i16), u64>>,
    pub connections_open: Cell<u64>,
    pub connections_accepted: Cell<u64>,
    /// Mesh requests this shard sent, by destination shard.
    pub mesh_sent: Box<[Cell<u64>]>,
    /// Produce work on this shard's partitions not answered yet (appending, or waiting
    /// for its durability under the flush policy): the produce queue depth.
    pub produce_in_flight: Cell<u64>,
    /// Long-poll fetches parked on this shard's partitions: the fetch queue depth.
    pub fetch_waiting: Cell<u64>,
    /// Incremental fetch sessions held by this shard (Kafka's NumIncrementalFetchSessions).
    pub fetch_sessions: Cell<u64>,
    /// Fetch sessions evicted to make room for new ones (Kafka's
    /// IncrementalFetchSessionEvictionsPerSec, as a counter).
    pub fetch_session_evictions: Cell<u64>,
}

/// One unit of a gauge, held while alive (a produce in flight, a parked fetch).
pub struct Held<'a>(&'a Cell<u64>);

impl<'a> Held<'a> {
    pub fn new(gauge: &'a Cell<u64>) -> Held<'a> {
        add(gauge, 1);
        Held(gauge)
    }
}

impl Drop for Held<'_> {
    fn drop(&mut self) {
        self.0.set(self.0.get().saturating_sub(1));
    }
}

impl ShardMetrics {
    pub fn new(nshards: usize) -> ShardMetrics {
        ShardMetrics {
            apis: (0..API_SLOTS)
                .map(|_| ApiStats {
                    requests: Cell::new(0),
                    failures: RefCell::new(BTreeMap::new()),
                    latency_us: Histogram::new(LATENCY_US),
                })
                .collect(),
            partition_errors: RefCell::new(BTreeMap::new()),
            connections_open: Cell::new(0),
            connections_accepted: Cell::new(0),
            mesh_sent: (0..nshards).map(|_| Cell::new(0)).collect(),
            produce_in_flight: Cell::new(0),
            fetch_waiting: Cell::new(0),
            fetch_sessions: Cell::new(0),
            fetch_session_evictions: Cell::new(0),
        }
    }

    /// The slot of an API key; `None` for a key no API has (answered by closing).
    pub fn api(&self, key: i16) -> Option<&ApiStats> {
        self.apis.get(usize::try_from(key).ok()?)
    }

    pub fn partition_error(&self, api: i16, code: i16) {
        *self
            .partition_errors
            .borrow_mut()
            .entry((api, code))
            .or_insert(0) += 1;
    }

    pub fn mesh_sent_to(&self, shard: usize) {
        if let Some(c) = self.mesh_sent.get(shard) {
            add(c, 1);
        }
    }

    pub fn connection_opened(&self) {
        add(&self.connections_accepted, 1);
        add(&self.connections_open, 1);
    }

    pub fn connection_closed(&self) {
        self.connections_open
            .set(self.connections_open.get().saturating_sub(1));
    }
}

impl Shard {
    /// Copies this shard's counters (for a scrape).
    pub fn metrics_snapshot(&self) -> ShardSnapshot {
        let m = &self.metrics;
        let partitions = self
            .all_logs()
            .into_iter()
            .map(|(topic, partition, log)| {
                let s = log.stats();
                PartitionSnapshot {
                    topic,
                    partition,
                    bytes_in: s.bytes_in.get(),
                    records_in: s.records_in.get(),
                    bytes_out: s.bytes_out.get(),
                    records_out: s.records_out.get(),
                    size_bytes: log.size_bytes(),
                    segments: log.segment_count() as u64,
                    log_start_offset: log.log_start_offset(),
                    log_end_offset: log.log_end_offset(),
                    high_watermark: log.high_watermark(),
                    sync_us: s.sync_us.snapshot(),
                    write_batch: s.write_batch.snapshot(),
                    cleaner_runs: s.cleaner_runs.get(),
                    cleaner_bytes_read: s.cleaner_bytes_read.get(),
                    cleaner_bytes_written: s.cleaner_bytes_written.get(),
                    cleaner_records_removed: s.cleaner_records_removed.get(),
                }
            })
            .collect();
        let apis = m
            .apis
            .iter()
            .enumerate()
            .filter(|(_, a)| a.requests.get() > 0)
            .filter_map(|(key, a)| {
                Some(ApiSnapshot {
                    key: i16::try_from(key).ok()?,
                    requests: a.requests.get(),
                    failures: a.failures.borrow().iter().map(|(k, v)| (*k, *v)).collect(),
                    latency_us: a.latency_us.snapshot(),
                })
            })
            .collect();
        let cluster = (self.id == 0)
            .then(|| {
                let meta = self.meta();
                let c = meta.meta.cluster.as_ref()?;
                let leaders = meta
                    .meta
                    .topics
                    .values()
                    .flat_map(|t| t.assignment.iter())
                    .filter(|a| a.leader == c.node)
                    .count() as u64;
                Some(ClusterSnapshot {
                    node: c.node,
                    is_controller: c.controller == Some(c.node),
                    fenced: !c.brokers.contains_key(&c.node),
                    lease: c.lease,
                    leaders,
                })
            })
            .flatten();
        let f = &self.fetch_stats;
        ShardSnapshot {
            shard: self.id,
            partitions,
            apis,
            partition_errors: m
                .partition_errors
                .borrow()
                .iter()
                .map(|((a, c), n)| (*a, *c, *n))
                .collect(),
            connections_open: m.connections_open.get(),
            connections_accepted: m.connections_accepted.get(),
            mesh_sent: m.mesh_sent.iter().map(Cell::get).collect(),
            produce_in_flight: m.produce_in_flight.get(),
            fetch_waiting: m.fetch_waiting.get(),
            fetch_sessions: m.fetch_sessions.get(),
            fetch_session_evictions: m.fetch_session_evictions.get(),
            sendfile_bytes: f.sendfile_bytes.get(),
            writev_bytes: f.writev_bytes.get(),
            fallback_bytes: f.fallback_bytes.get(),
            cache_hit_bytes: f.cache_hit_bytes.get(),
            cache_miss_bytes: f.cache_miss_bytes.get(),
            cold_fill_bytes: f.cold_fill_bytes.get(),
            reactor_blocking_calls: crate::os::pagecache::blocking_calls_here(),
            deleted_files_released: crate::storage::release::released_here(),
            cluster,
            committed: self.groups.committed_offsets(),
        }
    }

    /// Every shard's snapshot, gathered over the mesh (a scrape, on shard 0). A shard
    /// that does not answer (the broker is stopping) is left out.
    pub async fn gather_metrics(self: &std::rc::Rc<Self>) -> Vec<ShardSnapshot> {
        let mut out = Vec::with_capacity(self.nshards);
        for shard in 0..self.nshards {
            if shard == self.id {
                out.push(self.metrics_snapshot());
                continue;
            }
            if let Some(super::messages::ShardReply::Metrics(s)) = self
                .call(shard, super::messages::ShardRequest::Metrics)
                .await
            {
                out.push(*s);
            }
        }
        out
    }
}
