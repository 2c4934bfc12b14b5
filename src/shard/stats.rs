//! Counters of the fetch path of one shard, logged every 10 s when they move.

use std::cell::Cell;

/// Bytes each path carried, per shard. Logged periodically and at shutdown.
#[derive(Default)]
pub struct FetchStats {
    /// File bytes sent by sendfile (zero-copy).
    pub sendfile_bytes: Cell<u64>,
    /// Memory bytes sent by writev: every encoded response (not only Fetch) and cached
    /// batches.
    pub writev_bytes: Cell<u64>,
    /// Bytes sent by copying writes: one byte each time the socket was full (to wait for
    /// room), or everything when zero-copy is off or sendfile refused the descriptor.
    pub fallback_bytes: Cell<u64>,
    pub fallback_count: Cell<u64>,
    /// Record bytes served from the direct-IO batch cache / from segment files.
    pub cache_hit_bytes: Cell<u64>,
    pub cache_miss_bytes: Cell<u64>,
    /// File bytes not in the page cache, read into it on the blocking thread pool before
    /// being sent (so the reactor never waits for the disk).
    pub cold_fill_bytes: Cell<u64>,
}

/// Adds `n` to a counter.
pub fn add(c: &Cell<u64>, n: u64) {
    c.set(c.get() + n);
}

impl FetchStats {
    pub fn summary(&self) -> String {
        format!(
            "bytes sent by path: sendfile={} writev={} fallback={} (fallbacks={}); fetched from cache: cache_hit={} cache_miss={}",
            self.sendfile_bytes.get(),
            self.writev_bytes.get(),
            self.fallback_bytes.get(),
            self.fallback_count.get(),
            self.cache_hit_bytes.get(),
            self.cache_miss_bytes.get(),
        )
    }

    /// Bytes sent on all paths.
    pub fn total(&self) -> u64 {
        self.sendfile_bytes.get() + self.writev_bytes.get() + self.fallback_bytes.get()
    }

    /// Changes whenever any counter does (to log only when something moved).
    pub fn version(&self) -> u64 {
        self.total() + self.cache_hit_bytes.get() + self.cache_miss_bytes.get()
    }
}
