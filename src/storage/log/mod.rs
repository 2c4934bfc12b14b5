//! A partition log: ordered segments, the append pipeline with its flush policy, roll,
//! retention, reads and recovery.
//!
//! [`PartitionLog`] is the one type; its methods are split by job: `open` (recovery),
//! `snapshots` (the producer state from a snapshot and the batches after it, snapshots
//! written at roll), `append` (admission and offset assignment),
//! `writer` (the group-commit writer), `maintenance` (tick, roll, retention, flush, close),
//! `start` (DeleteRecords' log start and its checkpoint), `read` (reads and timestamp
//! lookups), `compact` (the cleaner's work on one log) and `swap` (swapping cleaned
//! segments in crash-safely).
//!
//! # The append contract
//!
//! [`PartitionLog::append`] validates the batches (length, magic 2, CRC-32C), assigns
//! offsets in call order, queues the bytes, and resolves when the configured point of
//! durability is reached. For each `io` × `flush` pair, when the future resolves `Ok`:
//!
//! | io \ flush | `none` | `interval` | `fsync` |
//! |---|---|---|---|
//! | `buffered` | in the page cache: survives a process crash, not a power loss | as `none`, and on disk within `flush.ms` / `flush.bytes` | on disk (fdatasync returned) |
//! | `direct` | written to the device by O_DIRECT: survives a process crash; a power loss may drop it from a volatile device cache or lose the file size update | as `none`, and durable within `flush.ms` / `flush.bytes` | on disk (fdatasync returned, device cache flushed) |
//!
//! Under `fsync`, appends that arrive while a write or fdatasync is in flight are written
//! together and covered by one fdatasync (group commit). Readers see a batch once it is
//! written (`none`, `interval`) or once it is durable (`fsync`): under `fsync` a consumer
//! never reads a batch that a crash could take back.
//!
//! After a failed write or fdatasync the log fails: pending and later appends get
//! [`StorageError::Failed`] and nothing more is acknowledged, because after a failed
//! fdatasync Linux may already have dropped the dirty pages. Reads keep working. Only a
//! reopen (which runs recovery) brings the log back.
//!
//! One failure is not fatal: a write (not an fdatasync) that fails with ENOSPC or EDQUOT.
//! Nothing of that write was acknowledged (acknowledgement follows a completed write), and
//! the page cache holds no dirty page that a later fdatasync could have lost, so it is safe
//! to go on once space is back. The waiting appends get [`StorageError::NoSpace`]; their
//! bytes stay queued, in their place. Every later append (and every `tick`) first tries to
//! resume: it cuts the file back to the end of the last completed write (dropping what the
//! failed write may have left), verifies the batches from the last index entry to there
//! (length, magic, CRC, ending exactly there), and writes the queue again. While that fails
//! the append is refused with `NoSpace` before it gets an offset; reads keep working. A
//! refused append may still be written when space comes back, as after a timeout: an
//! idempotent producer's retry is recognised as a duplicate and answered with its offsets.
//!
//! The place in line is taken when `append` is called, not when its future is first
//! polled: offsets follow call order even when the futures are awaited by other tasks, in
//! any order. An append future dropped before its offsets are assigned appends nothing
//! and gives up its place. One dropped after that (a client went away) leaves its bytes
//! queued, and another append, a `flush`, `tick` or `close` writes them.

mod append;
mod compact;
mod maintenance;
mod open;
mod read;
mod replica;
mod scrub;
#[cfg(test)]
mod snapshot_tests;
mod snapshots;
mod start;
mod stats;
mod swap;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod txn_tests;
mod writer;

pub use append::AppendInfo;
pub use read::{FileRegion, ReadSlice};
pub use replica::{restart_closed_at, truncate_closed};
pub use snapshots::OpenReport;
pub use start::START_CHECKPOINT;
pub(crate) use start::parse_checkpoint;
pub use stats::LogStats;

use super::error::{Result, StorageError};
use super::io::{FileKind, Storage};
use super::notify::{FifoLock, Listen, Notify};
use super::segment::Segment;
use crate::config::{FlushMode, IoMode, LogConfig};
use crate::producer::ProducerStates;
use bytes::Bytes;
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::{Path, PathBuf};
use std::rc::Rc;

struct State<F> {
    segments: Vec<Segment<F>>,
    log_start_offset: i64,
    /// Bytes queued for the active segment, starting at `written_pos`.
    pending: VecDeque<Bytes>,
    /// `(end position, next offset)` of each queued append, to turn a written position
    /// back into an offset.
    marks: VecDeque<(u64, i64)>,
    written_pos: u64,
    written_offset: i64,
    synced_pos: u64,
    synced_offset: i64,
    /// The next offset some waiter needs durable.
    sync_wanted: i64,
    /// Broker clock when the oldest unsynced byte was written (`flush = interval`).
    unsynced_since_ms: Option<i64>,
    writer_active: bool,
    failed: Option<String>,
    /// Set while the disk is full (see [`StorageError::NoSpace`]).
    no_space: Option<String>,
    /// The full disk was reported in the broker's log (once, until appends resume).
    no_space_reported: bool,
    closed: bool,
}

impl<F> State<F> {
    fn active(&self) -> &Segment<F> {
        self.segments
            .last()
            .expect("a log always has an active segment")
    }
    fn active_mut(&mut self) -> &mut Segment<F> {
        self.segments
            .last_mut()
            .expect("a log always has an active segment")
    }
    fn next_offset(&self) -> i64 {
        self.active().next_offset
    }
}

struct Inner<S: Storage> {
    storage: S,
    dir: PathBuf,
    config: RefCell<LogConfig>,
    state: RefCell<State<S::File>>,
    /// Wakes appenders waiting for their bytes to be written or synced, and readers
    /// waiting for the high watermark to move.
    notify: Rc<Notify>,
    /// Serialises offset assignment with segment rolls and retention, first come first
    /// served (see [`FifoLock`]).
    assign_lock: FifoLock,
    /// Idempotent producer state, checked and updated under `assign_lock`.
    producers: RefCell<ProducerStates>,
    /// Open and aborted transactions, updated under `assign_lock` with `producers`.
    txns: RefCell<crate::producer::PartitionTxns>,
    clock: Cell<fn() -> i64>,
    /// The shard's batch cache and this log's id in it (`io = direct` only).
    cache: RefCell<Option<(Rc<RefCell<super::cache::BatchCache>>, u64)>>,
    /// Producer ids below this were issued by the broker; `None` checks nothing (tests).
    issued_ids: RefCell<Option<std::sync::Arc<std::sync::atomic::AtomicI64>>>,
    /// Counters for the metrics.
    stats: stats::LogStats,
    /// The earliest delete horizon of a tombstone the last clean kept: once it passes,
    /// the log is due for a clean whatever its dirty ratio.
    tombstone_due_ms: Cell<Option<i64>>,
    /// The leader epochs of the batches in the log (see [`super::epochs`]).
    epochs: RefCell<super::epochs::EpochCache>,
    /// In a cluster, the epoch this broker leads the partition in: stamped into every
    /// batch it appends. `None` alone (batches keep the epoch the client sent).
    stamp_epoch: Cell<Option<i32>>,
    /// With replicas: the replicated high watermark (the leader's lowest in-sync log end,
    /// or what a follower last heard from its leader). Consumers read below it. `None`
    /// when this log is its only in-sync copy: its own end is the high watermark.
    hw_limit: Cell<Option<i64>>,
    /// How the open rebuilt the producer state.
    opened: Cell<snapshots::OpenReport>,
    /// Sealed segments below this base were not checked at open (see `snapshots`).
    unverified_below: Cell<Option<i64>>,
}

/// One partition's log. Cloning is cheap and shares the log. Not `Send`: a log belongs to
/// the shard that opened it.
pub struct PartitionLog<S: Storage> {
    inner: Rc<Inner<S>>,
}

impl<S: Storage> Clone for PartitionLog<S> {
    fn clone(&self) -> Self {
        PartitionLog {
            inner: self.inner.clone(),
        }
    }
}

pub use crate::rt::wall_clock_ms;

fn file_kind(io: IoMode) -> FileKind {
    match io {
        IoMode::Buffered => FileKind::Buffered,
        IoMode::Direct => FileKind::Direct,
    }
}

impl<S: Storage> PartitionLog<S> {
    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// This log's counters (bytes and records in and out, fdatasyncs, write batches).
    pub fn stats(&self) -> &LogStats {
        &self.inner.stats
    }

    /// Refuses batches of producer ids at or above `issued_below` (UNKNOWN_PRODUCER_ID).
    pub fn use_issued_ids(&self, issued_below: std::sync::Arc<std::sync::atomic::AtomicI64>) {
        *self.inner.issued_ids.borrow_mut() = Some(issued_below);
    }

    /// Makes written batches go to the shard's batch cache, and reads that it covers come
    /// from it. For `io = direct` logs, whose bytes the page cache does not keep.
    pub fn use_cache(&self, cache: Rc<RefCell<super::cache::BatchCache>>) {
        let id = cache.borrow_mut().register();
        *self.inner.cache.borrow_mut() = Some((cache, id));
    }

    fn forget_cache(&self) {
        if let Some((cache, id)) = self.inner.cache.borrow_mut().take() {
            cache.borrow_mut().forget_log(id);
        }
    }

    pub fn config(&self) -> LogConfig {
        self.inner.config.borrow().clone()
    }

    /// Changes the settings. `io` takes effect at the next reopen; everything else at once.
    pub fn set_config(&self, config: LogConfig) {
        *self.inner.config.borrow_mut() = config;
        self.inner.notify.notify_all();
    }

    fn now(&self) -> i64 {
        (self.inner.clock.get())()
    }

    /// The offset after the last batch consumers may read: the end of what is written
    /// (or synced, under `fsync`), bounded by the replicated high watermark when there is
    /// one.
    pub fn high_watermark(&self) -> i64 {
        let st = self.inner.state.borrow();
        self.bounded(self.visible(&st).1)
    }

    /// The last stable offset: the high watermark, or the first offset of the earliest
    /// open transaction if that is lower. `read_committed` consumers read below it.
    pub fn last_stable_offset(&self) -> i64 {
        let hw = self.high_watermark();
        match self.inner.txns.borrow().first_unstable() {
            Some(first) => first.min(hw),
            None => hw,
        }
    }

    /// The aborted transactions a read_committed fetch of `[from, upto)` must report.
    pub fn aborted_between(&self, from: i64, upto: i64) -> Vec<crate::producer::AbortedTxn> {
        self.inner.txns.borrow().aborted_between(from, upto)
    }

    /// Whether `producer_id` has an open transaction in this partition.
    pub fn has_open_transaction(&self, producer_id: i64) -> bool {
        self.inner.txns.borrow().is_open(producer_id)
    }

    /// The open transactions of this partition: (producer id, first offset).
    pub fn open_transactions(&self) -> Vec<(i64, i64)> {
        self.inner.txns.borrow().open()
    }

    /// The end of what this copy has written (synced, under `fsync`): what a follower may
    /// fetch from its leader, and what a replica reports as its log end.
    pub fn local_end(&self) -> i64 {
        let st = self.inner.state.borrow();
        self.visible(&st).1
    }

    fn bounded(&self, end: i64) -> i64 {
        match self.inner.hw_limit.get() {
            Some(limit) => end.min(limit),
            None => end,
        }
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
    }

    /// The idempotent producers with batches in this log (DescribeProducers).
    pub fn active_producers(&self) -> Vec<crate::producer::ActiveProducer> {
        let mut active = self.inner.producers.borrow().active();
        let txns = self.inner.txns.borrow();
        for (producer_id, first) in txns.open() {
            if let Some(a) = active.iter_mut().find(|a| a.producer_id == producer_id) {
                a.txn_start_offset = first;
            }
        }
        active
    }

    /// The offset the next appended record gets.
    pub fn log_end_offset(&self) -> i64 {
        self.inner.state.borrow().next_offset()
    }

    /// Bytes in all segments, including queued ones.
    pub fn size_bytes(&self) -> u64 {
        self.inner
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| s.size)
            .sum()
    }

    pub fn segment_count(&self) -> usize {
        self.inner.state.borrow().segments.len()
    }

    /// Base offsets of the segments, oldest first.
    pub fn segment_bases(&self) -> Vec<i64> {
        self.inner
            .state
            .borrow()
            .segments
            .iter()
            .map(|s| s.base_offset)
            .collect()
    }

    /// A future that resolves at the next change of the log (high watermark advance,
    /// failure, close): long-polling fetches wait on it and re-check.
    pub fn changed(&self) -> Listen {
        self.inner.notify.listen()
    }

    /// (visible position in the active segment, high watermark).
    fn visible(&self, st: &State<S::File>) -> (u64, i64) {
        if self.inner.config.borrow().flush == FlushMode::Fsync {
            (st.synced_pos, st.synced_offset)
        } else {
            (st.written_pos, st.written_offset)
        }
    }

    fn check_open(&self, st: &State<S::File>) -> Result<()> {
        if st.closed {
            return Err(StorageError::Closed);
        }
        if let Some(reason) = &st.failed {
            return Err(StorageError::Failed(reason.clone()));
        }
        Ok(())
    }

    /// Whether appends are stalled on a full disk.
    pub fn out_of_space(&self) -> bool {
        self.inner.state.borrow().no_space.is_some()
    }
}
