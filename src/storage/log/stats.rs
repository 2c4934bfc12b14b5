//! What one partition log counts for the metrics: bytes and records appended and read,
//! its fdatasyncs and the size of its group-commit writes. `Cell`s of the owning shard.

use crate::stats::{COUNT, Histogram, LATENCY_US, add};
use std::cell::Cell;

pub struct LogStats {
    pub bytes_in: Cell<u64>,
    pub records_in: Cell<u64>,
    /// Record bytes handed to readers (fetches).
    pub bytes_out: Cell<u64>,
    /// Records in the batches handed to readers, by the batch headers' counts.
    pub records_out: Cell<u64>,
    /// fdatasync latency, in microseconds; its count is the number of fdatasyncs.
    pub sync_us: Histogram,
    /// Appends carried by each gathered write of the writer (group commit).
    pub write_batch: Histogram,
    /// Cleaner runs that rewrote this log (compaction).
    pub cleaner_runs: Cell<u64>,
    pub cleaner_bytes_read: Cell<u64>,
    pub cleaner_bytes_written: Cell<u64>,
    /// Records compaction removed (superseded, keyless, expired tombstones).
    pub cleaner_records_removed: Cell<u64>,
}

impl Default for LogStats {
    fn default() -> LogStats {
        LogStats {
            bytes_in: Cell::new(0),
            records_in: Cell::new(0),
            bytes_out: Cell::new(0),
            records_out: Cell::new(0),
            sync_us: Histogram::new(LATENCY_US),
            write_batch: Histogram::new(COUNT),
            cleaner_runs: Cell::new(0),
            cleaner_bytes_read: Cell::new(0),
            cleaner_bytes_written: Cell::new(0),
            cleaner_records_removed: Cell::new(0),
        }
    }
}

impl LogStats {
    pub fn appended(&self, bytes: u64, records: u64) {
        add(&self.bytes_in, bytes);
        add(&self.records_in, records);
    }

    pub fn cleaned(&self, report: &crate::storage::clean::CleanReport) {
        add(&self.cleaner_runs, 1);
        add(&self.cleaner_bytes_read, report.bytes_read);
        add(&self.cleaner_bytes_written, report.bytes_written);
        add(&self.cleaner_records_removed, report.records_removed);
    }

    pub fn read(&self, bytes: u64, records: u64) {
        add(&self.bytes_out, bytes);
        add(&self.records_out, records);
    }
}
