//! A partition log: ordered segments, the append pipeline with its flush policy, roll,
//! retention, reads and recovery.
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
//! Append futures may be dropped (a client went away): the bytes stay queued and another
//! append, a `flush`, `tick` or `close` writes them.

use super::admit;
use super::error::{Result, StorageError};
use super::io::{FileKind, Storage, StorageFile, segment_path};
use super::notify::{FifoLock, Listen, Notify};
use super::segment::{Scanner, Segment};
use crate::compression::{self, Codec};
use crate::config::{FlushMode, IoMode, LogConfig};
use crate::producer::{ProducerBatch, ProducerStates, Verdict};
use crate::protocol::batch;
use bytes::{Bytes, BytesMut};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::io;
use std::os::fd::RawFd;
use std::path::{Path, PathBuf};
use std::rc::Rc;

/// What an append was given.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AppendInfo {
    pub base_offset: i64,
    pub last_offset: i64,
    /// The broker timestamp stamped on the batches, or -1 for `CreateTime` topics.
    pub log_append_time: i64,
    pub log_start_offset: i64,
}

/// A contiguous range of whole batches in one segment file, to be sent with sendfile or
/// read. The file stays open while the region lives, even if retention deletes it.
pub struct FileRegion<F> {
    pub file: Rc<F>,
    pub position: u64,
    pub len: u64,
    /// The same bytes from the direct-IO batch cache, when it holds all of them.
    pub cached: Option<Vec<Bytes>>,
}

impl<F: StorageFile> FileRegion<F> {
    pub async fn read(&self) -> io::Result<Vec<u8>> {
        if let Some(chunks) = &self.cached {
            return Ok(chunks.iter().flat_map(|c| c.iter().copied()).collect());
        }
        let bytes = self.file.read_at(self.position, self.len as usize).await?;
        if bytes.len() as u64 != self.len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                "segment shorter than the region read from it",
            ));
        }
        Ok(bytes)
    }

    pub fn raw_fd(&self) -> Option<RawFd> {
        self.file.raw_fd()
    }
}

/// The answer to a read: whole batches, and the log's bounds at the time of the read.
pub struct ReadSlice<F> {
    pub regions: Vec<FileRegion<F>>,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl<F> ReadSlice<F> {
    pub fn bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.len).sum()
    }
}

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
    clock: Cell<fn() -> i64>,
    /// The shard's batch cache and this log's id in it (`io = direct` only).
    cache: RefCell<Option<(Rc<RefCell<super::cache::BatchCache>>, u64)>>,
    /// Producer ids below this were issued by the broker; `None` checks nothing (tests).
    issued_ids: RefCell<Option<std::sync::Arc<std::sync::atomic::AtomicI64>>>,
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

pub fn wall_clock_ms() -> i64 {
    std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis() as i64)
        .unwrap_or(0)
}

fn file_kind(io: IoMode) -> FileKind {
    match io {
        IoMode::Buffered => FileKind::Buffered,
        IoMode::Direct => FileKind::Direct,
    }
}

fn parse_segment_name(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// (offset, timestamp) of every record of a batch, decompressing (bounded by `limit`) when
/// it is compressed; `None` if the records cannot be read.
fn record_times(batch_bytes: &[u8], limit: usize) -> Option<Vec<(i64, i64)>> {
    let header = batch::BatchHeader::parse(batch_bytes).ok()?;
    let payload = batch_bytes.get(batch::HEADER_BYTES..)?;
    if header.compression() == 0 {
        return batch::record_timestamps_in(&header, payload);
    }
    let codec = Codec::from_attributes(header.attributes).ok()?;
    let records = crate::compression::decompress(codec, payload, limit).ok()?;
    batch::record_timestamps_in(&header, &records)
}

/// Walks whole batches held in memory (cache chunks starting at file position `pos`) and
/// returns the region a read of `offset` answers with: `Some(Some((position, len)))`,
/// `Some(None)` when no batch reaches `offset`, `None` when the bytes are not whole
/// batches (the caller then reads the file).
fn scan_memory(
    chunks: &[Bytes],
    pos: u64,
    offset: i64,
    max_bytes: u64,
) -> Option<Option<(u64, u64)>> {
    let mut at = pos;
    let mut first: Option<u64> = None;
    let mut region_end = 0u64;
    for chunk in chunks {
        let mut i = 0usize;
        while i < chunk.len() {
            let rest = &chunk[i..];
            if rest.len() < 27 {
                return None;
            }
            let (base, length) = batch::peek_offset_and_size(rest)?;
            let delta = i32::from_be_bytes([rest[23], rest[24], rest[25], rest[26]]);
            if length < (batch::HEADER_BYTES - batch::LOG_OVERHEAD) as i32 || delta < 0 {
                return None;
            }
            let size = length as usize + batch::LOG_OVERHEAD;
            if size > rest.len() {
                return None;
            }
            let last = base + delta as i64;
            let end = at + size as u64;
            match first {
                None if last < offset => {}
                None => {
                    first = Some(at);
                    region_end = end;
                }
                Some(start) => {
                    if end - start > max_bytes {
                        return Some(Some((start, region_end - start)));
                    }
                    region_end = end;
                }
            }
            at = end;
            i += size;
        }
    }
    Some(first.map(|start| (start, region_end - start)))
}

/// `len` bytes from `skip` bytes into the concatenation of `chunks`, as slices.
fn slice_chunks(chunks: &[Bytes], mut skip: u64, mut len: u64) -> Vec<Bytes> {
    let mut out = Vec::new();
    for c in chunks {
        if len == 0 {
            break;
        }
        let clen = c.len() as u64;
        if skip >= clen {
            skip -= clen;
            continue;
        }
        let take = (clen - skip).min(len);
        out.push(c.slice(skip as usize..(skip + take) as usize));
        len -= take;
        skip = 0;
    }
    out
}

fn producer_batch(h: &batch::BatchHeader) -> ProducerBatch {
    ProducerBatch {
        producer_id: h.producer_id,
        epoch: h.producer_epoch,
        first_seq: h.base_sequence,
        last_offset_delta: h.last_offset_delta,
    }
}

/// Checks every batch's records (bounded decompression) and rewrites those not in `target`.
/// Returns the new bytes, or `None` when every batch is already stored as `target`.
fn recompress(
    headers: &[(batch::BatchHeader, std::ops::Range<usize>)],
    batches: &[u8],
    target: Codec,
    config: &LogConfig,
) -> Result<Option<Vec<u8>>> {
    let limit = compression::decompressed_limit(config.max_batch_bytes);
    let mut rewritten: Vec<Option<Vec<u8>>> = Vec::with_capacity(headers.len());
    for (h, range) in headers {
        rewritten.push(compression::recompress_batch(
            h,
            &batches[range.clone()],
            target,
            limit,
        )?);
    }
    if rewritten.iter().all(Option::is_none) {
        return Ok(None);
    }
    let mut out = Vec::new();
    for ((_, range), new) in headers.iter().zip(rewritten) {
        match new {
            Some(b) => out.extend_from_slice(&b),
            None => out.extend_from_slice(&batches[range.clone()]),
        }
    }
    Ok(Some(out))
}

/// Rebuilds the idempotent producer state of a log from the headers of all its batches.
async fn rebuild_producer_states<F: StorageFile>(
    segments: &[Segment<F>],
) -> Result<ProducerStates> {
    let mut states = ProducerStates::default();
    for seg in segments {
        let mut scanner = Scanner::new(seg.log.as_ref(), 0, seg.size, false);
        while let Some(b) = scanner.next().await? {
            if b.producer_id < 0 {
                continue;
            }
            let pb = ProducerBatch {
                producer_id: b.producer_id,
                epoch: b.producer_epoch,
                first_seq: b.base_sequence,
                last_offset_delta: (b.last_offset - b.base_offset) as i32,
            };
            states.commit(&pb, b.base_offset, b.last_offset);
        }
    }
    Ok(states)
}

/// Resets `writer_active` if the writer's future is dropped mid-flight, so another task
/// takes over the queued bytes.
struct WriterGuard<'a, S: Storage>(&'a Inner<S>);

impl<S: Storage> Drop for WriterGuard<'_, S> {
    fn drop(&mut self) {
        self.0.state.borrow_mut().writer_active = false;
        self.0.notify.notify_all();
    }
}

impl<S: Storage> PartitionLog<S> {
    /// Opens the log in `dir` (created if missing) and recovers it: every segment's index
    /// is checked and rebuilt if damaged, and the tail segment is verified batch by batch
    /// after its last index entry and truncated at the first torn or corrupt batch.
    pub async fn open(storage: S, dir: PathBuf, config: LogConfig) -> Result<Self> {
        Self::open_with_clock(storage, dir, config, wall_clock_ms).await
    }

    /// As [`PartitionLog::open`], with the clock used for `segment.ms`, retention and
    /// interval flushes (tests move time by hand).
    pub async fn open_with_clock(
        storage: S,
        dir: PathBuf,
        config: LogConfig,
        clock: fn() -> i64,
    ) -> Result<Self> {
        storage.create_dir_all(&dir).await?;
        let now = clock();
        let mut bases = Vec::new();
        let names = storage.list_dir(&dir).await?;
        for name in &names {
            match parse_segment_name(name) {
                Some((base, "log")) => bases.push(base),
                Some((base, "index" | "timeindex"))
                    if !names.contains(&format!("{base:020}.log")) =>
                {
                    // An index whose log was deleted (a crash in the middle of retention).
                    storage.remove_file(&dir.join(name)).await?;
                }
                _ => {}
            }
        }
        bases.sort_unstable();
        let kind = file_kind(config.io);
        let mut segments = Vec::with_capacity(bases.len().max(1));
        for (i, &base) in bases.iter().enumerate() {
            let tail = i + 1 == bases.len();
            let seg = Segment::open(
                &storage,
                &dir,
                base,
                kind,
                tail,
                now,
                config.index_interval_bytes,
            )
            .await?;
            if let Some(prev) = segments.last() {
                let prev: &Segment<S::File> = prev;
                if prev.next_offset > seg.base_offset {
                    return Err(StorageError::corrupt(
                        &dir,
                        format!(
                            "segment {} ends at offset {} past the next segment's base {}",
                            prev.base_offset, prev.next_offset, seg.base_offset
                        ),
                    ));
                }
            }
            segments.push(seg);
        }
        // An empty tail segment after a roll is fine; a log with no segment gets one.
        if segments.is_empty() {
            segments.push(Segment::create(&storage, &dir, 0, kind, now).await?);
            storage.sync_dir(&dir).await?;
        }
        let producers = rebuild_producer_states(&segments).await?;
        let log_start_offset = segments[0].base_offset;
        let active = segments.last().expect("at least one segment");
        let (pos, next) = (active.size, active.next_offset);
        let inner = Inner {
            storage,
            dir,
            config: RefCell::new(config),
            state: RefCell::new(State {
                segments,
                log_start_offset,
                pending: VecDeque::new(),
                marks: VecDeque::new(),
                written_pos: pos,
                written_offset: next,
                synced_pos: pos,
                synced_offset: next,
                sync_wanted: next,
                unsynced_since_ms: None,
                writer_active: false,
                failed: None,
                closed: false,
            }),
            notify: Rc::new(Notify::default()),
            assign_lock: FifoLock::default(),
            producers: RefCell::new(producers),
            clock: Cell::new(clock),
            cache: RefCell::new(None),
            issued_ids: RefCell::new(None),
        };
        Ok(PartitionLog {
            inner: Rc::new(inner),
        })
    }

    pub fn dir(&self) -> &Path {
        &self.inner.dir
    }

    /// Makes written batches go to the shard's batch cache, and reads that it covers come
    /// from it. For `io = direct` logs, whose bytes the page cache does not keep.
    /// Refuses batches of producer ids at or above `issued_below` (UNKNOWN_PRODUCER_ID).
    pub fn use_issued_ids(&self, issued_below: std::sync::Arc<std::sync::atomic::AtomicI64>) {
        *self.inner.issued_ids.borrow_mut() = Some(issued_below);
    }

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

    /// The offset after the last batch consumers may read.
    pub fn high_watermark(&self) -> i64 {
        let st = self.inner.state.borrow();
        self.visible(&st).1
    }

    pub fn log_start_offset(&self) -> i64 {
        self.inner.state.borrow().log_start_offset
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

    /// Appends one or more v2 batches (a produce request's records). See the module
    /// documentation for what is durable when this resolves.
    pub async fn append(&self, batches: Bytes) -> Result<AppendInfo> {
        // The place in line is taken before anything can wait: offsets follow call order.
        let ticket = self.inner.assign_lock.ticket();
        let config = self.config();
        let size = batches.len() as u64;
        if size > config.max_batch_bytes || size > config.segment_bytes.min(u32::MAX as u64) {
            return Err(StorageError::BatchTooLarge {
                size,
                max: config.max_batch_bytes.min(config.segment_bytes),
            });
        }
        let mut headers = batch::validate_batches(&batches)?;
        let checked_at = self.now();
        let issued = self
            .inner
            .issued_ids
            .borrow()
            .as_ref()
            .map(|a| a.load(std::sync::atomic::Ordering::Acquire));
        admit::check_headers(&headers, &config, checked_at, issued)?;
        let mut batches = batches;
        let mut rewritten = None;
        let inline = admit::WalkBudget {
            bytes: admit::INLINE_WALK_BYTES,
            is_inline: true,
        };
        // Recompression is heavy anyway: it always runs off the reactor, walk included.
        // Otherwise the walk stays inline unless a batch needs more than the inline budget.
        if config.compression.is_some()
            || !admit::walk_all(&headers, &batches, &config, checked_at, inline)?
        {
            let (hs, bs, cfg) = (headers.clone(), batches.clone(), config.clone());
            let work = move || -> Result<Option<Vec<u8>>> {
                let full = admit::WalkBudget {
                    bytes: compression::decompressed_limit(cfg.max_batch_bytes) as u64,
                    is_inline: false,
                };
                admit::walk_all(&hs, &bs, &cfg, checked_at, full)?;
                match cfg.compression {
                    Some(target) => recompress(&hs, &bs, target, &cfg),
                    None => Ok(None),
                }
            };
            rewritten = self.inner.storage.offload(work).await.ok_or_else(|| {
                StorageError::InvalidRecord("checking the batch failed (a bug)".into())
            })??;
        }
        if let Some(rewritten) = rewritten {
            let size = rewritten.len() as u64;
            if size > config.max_batch_bytes || size > config.segment_bytes {
                return Err(StorageError::BatchTooLarge {
                    size,
                    max: config.max_batch_bytes.min(config.segment_bytes),
                });
            }
            headers = batch::validate_batches(&rewritten)?;
            batches = Bytes::from(rewritten);
        }
        let size = batches.len() as u64;
        let records: i64 = headers.iter().map(|(h, _)| h.record_count as i64).sum();
        let producer_batches: Vec<ProducerBatch> =
            headers.iter().map(|(h, _)| producer_batch(h)).collect();
        let idempotent = producer_batches.iter().any(|b| b.producer_id >= 0);
        let mut buf = match batches.try_into_mut() {
            Ok(b) => b,
            Err(shared) => BytesMut::from(shared.as_ref()),
        };

        let guard = ticket.acquire().await;
        self.check_open(&self.inner.state.borrow())?;
        // The producer checks and the state update happen under the lock that assigns
        // offsets, so two appends of one producer cannot both pass the check.
        let verdict = if idempotent {
            self.inner.producers.borrow().check(&producer_batches)?
        } else {
            Verdict::Append
        };
        if let Verdict::Duplicate(meta) = verdict {
            drop(guard);
            // A retry of a batch already in the log: answer with its offsets once it is
            // as durable as the original's acknowledgement would have needed.
            let durable = config.flush == FlushMode::Fsync;
            self.wait_for(meta.last_offset + 1, durable).await?;
            return Ok(AppendInfo {
                base_offset: meta.base_offset,
                last_offset: meta.last_offset,
                log_append_time: -1,
                log_start_offset: self.log_start_offset(),
            });
        }
        let now = self.now();
        self.maybe_roll(&config, size, records, now).await?;
        let append_time = if config.log_append_time { now } else { -1 };
        let info = {
            let mut st = self.inner.state.borrow_mut();
            let mut producers = self.inner.producers.borrow_mut();
            let base_offset = st.next_offset();
            let log_start_offset = st.log_start_offset;
            let seg = st.active_mut();
            if seg.size == 0 {
                seg.created_ms = now;
            }
            let mut offset = base_offset;
            for (header, range) in &headers {
                let bytes = &mut buf[range.clone()];
                batch::set_base_offset(bytes, offset);
                let max_ts = if config.log_append_time {
                    batch::set_log_append_time(bytes, now);
                    now
                } else {
                    header.max_timestamp
                };
                let last = offset + header.last_offset_delta as i64;
                if idempotent {
                    producers.commit(&producer_batch(header), offset, last);
                }
                let position = seg.size;
                seg.index_batch(
                    position,
                    offset,
                    last,
                    range.len() as u64,
                    max_ts,
                    config.index_interval_bytes,
                );
                offset = last + 1;
            }
            let end_pos = seg.size;
            st.pending.push_back(buf.freeze());
            st.marks.push_back((end_pos, offset));
            AppendInfo {
                base_offset,
                last_offset: offset - 1,
                log_append_time: append_time,
                log_start_offset,
            }
        };
        drop(guard);

        let durable = config.flush == FlushMode::Fsync;
        self.wait_for(info.last_offset + 1, durable).await?;
        Ok(info)
    }

    /// Waits until every batch before `offset` is written (and synced if `durable`),
    /// becoming the writer if nobody is.
    async fn wait_for(&self, offset: i64, durable: bool) -> Result<()> {
        if durable {
            let mut st = self.inner.state.borrow_mut();
            st.sync_wanted = st.sync_wanted.max(offset);
        }
        loop {
            let listen = {
                let st = self.inner.state.borrow();
                if let Some(reason) = &st.failed {
                    return Err(StorageError::Failed(reason.clone()));
                }
                let reached = if durable {
                    st.synced_offset
                } else {
                    st.written_offset
                };
                if reached >= offset {
                    return Ok(());
                }
                if st.writer_active {
                    Some(self.inner.notify.listen())
                } else {
                    None
                }
            };
            match listen {
                Some(l) => l.await,
                None => self.run_writer().await,
            }
        }
    }

    fn fail(&self, what: &str, err: &io::Error) {
        let reason = format!("{what} failed in {}: {err}", self.inner.dir.display());
        tracing::error!("{reason}; the log stops accepting appends until restart");
        self.inner.state.borrow_mut().failed = Some(reason);
        self.inner.notify.notify_all();
    }

    /// The writer: writes queued bytes in as few writes as possible and issues the
    /// fdatasyncs waiters need, until nothing is left to do. Only one runs at a time.
    async fn run_writer(&self) {
        {
            let mut st = self.inner.state.borrow_mut();
            if st.writer_active || st.failed.is_some() {
                return;
            }
            st.writer_active = true;
        }
        let _guard = WriterGuard(&self.inner);
        loop {
            // Let every task that is ready run first: appenders just woken by the last
            // sync queue their next batches, and this round carries all of them. Without
            // this, rounds alternate between one batch and all the others.
            futures_lite::future::yield_now().await;
            let config = self.config();
            // Write everything queued, in one gathered write. The bytes stay queued until
            // the write completes, so a dropped writer loses nothing.
            let job = {
                let st = self.inner.state.borrow();
                if st.failed.is_some() {
                    return;
                }
                (!st.pending.is_empty()).then(|| {
                    let bufs: Vec<Bytes> = st.pending.iter().cloned().collect();
                    (st.active().log.clone(), st.written_pos, bufs)
                })
            };
            if let Some((file, pos, bufs)) = job {
                let n = bufs.len();
                let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
                if let Err(e) = file.write_at(pos, &bufs).await {
                    self.fail("write", &e);
                    return;
                }
                if let Some((cache, id)) = self.inner.cache.borrow().as_ref() {
                    let base = self.inner.state.borrow().active().base_offset;
                    let mut c = cache.borrow_mut();
                    let mut at = pos;
                    for b in &bufs {
                        c.insert(*id, base, at, b.clone());
                        at += b.len() as u64;
                    }
                }
                let mut st = self.inner.state.borrow_mut();
                st.pending.drain(..n);
                st.written_pos = pos + len;
                while let Some(&(end, next)) = st.marks.front() {
                    if end > st.written_pos {
                        break;
                    }
                    st.written_offset = next;
                    st.marks.pop_front();
                }
                if st.unsynced_since_ms.is_none() {
                    st.unsynced_since_ms = Some(self.now());
                }
                drop(st);
                self.inner.notify.notify_all();
            }
            // Sync when a waiter needs it, or when `interval` says it is due by bytes.
            let sync = {
                let st = self.inner.state.borrow();
                let unsynced = st.written_pos - st.synced_pos;
                let wanted =
                    st.sync_wanted > st.synced_offset && st.written_offset > st.synced_offset;
                let by_bytes =
                    config.flush == FlushMode::Interval && unsynced >= config.flush_interval_bytes;
                ((wanted || by_bytes) && unsynced > 0)
                    .then(|| (st.active().log.clone(), st.written_pos, st.written_offset))
            };
            if let Some((file, pos, offset)) = sync {
                if let Err(e) = file.sync_data().await {
                    self.fail("fdatasync", &e);
                    return;
                }
                let mut st = self.inner.state.borrow_mut();
                st.synced_pos = st.synced_pos.max(pos);
                st.synced_offset = st.synced_offset.max(offset);
                if st.synced_pos == st.written_pos {
                    st.unsynced_since_ms = None;
                }
                drop(st);
                self.inner.notify.notify_all();
                continue;
            }
            if self.inner.state.borrow().pending.is_empty() {
                return;
            }
        }
    }

    /// Rolls to a new segment if this append would not fit the active one.
    async fn maybe_roll(
        &self,
        config: &LogConfig,
        size: u64,
        records: i64,
        now: i64,
    ) -> Result<()> {
        let roll = {
            let st = self.inner.state.borrow();
            let seg = st.active();
            seg.size > 0
                && (seg.size + size > config.segment_bytes
                    || seg.size + size > u32::MAX as u64
                    || seg.next_offset + records - seg.base_offset > i32::MAX as i64
                    || now - seg.created_ms >= config.segment_ms as i64)
        };
        if roll { self.roll(now).await } else { Ok(()) }
    }

    /// Seals the active segment (all of it written and synced, indexes persisted and the
    /// largest timestamp recorded) and starts a new one. Call with `assign_lock` held.
    ///
    /// The new segment's files are created first: running out of file descriptors (or
    /// any failure to create them) leaves the active segment as it was and fails only this
    /// append, which the client retries; it does not fail the log. Once the old segment is
    /// being sealed, an IO error fails the log as any write error does.
    async fn roll(&self, now: i64) -> Result<()> {
        let next = self.inner.state.borrow().next_offset();
        self.wait_for(next, true).await?;
        let kind = file_kind(self.config().io);
        let dir = &self.inner.dir;
        let seg = match Segment::create(&self.inner.storage, dir, next, kind, now).await {
            Ok(seg) => seg,
            Err(e) => {
                // Leftover files at `next` would claim offsets the active segment is about
                // to take: remove them, or stop the log if that is impossible.
                for ext in ["log", "index", "timeindex"] {
                    let path = segment_path(dir, next, ext);
                    if self.inner.storage.exists(&path)
                        && let Err(rm) = self.inner.storage.remove_file(&path).await
                    {
                        self.fail("removing a half-created segment", &rm);
                        return Err(StorageError::Io(rm));
                    }
                }
                tracing::warn!(
                    "cannot start a new segment in {}: {e}; the append is refused and the \
                     active segment stays",
                    dir.display()
                );
                return Err(e);
            }
        };
        let (log, jobs) = {
            let mut st = self.inner.state.borrow_mut();
            let active = st.active_mut();
            active.seal();
            (active.log.clone(), active.index_jobs(u64::MAX, i64::MAX))
        };
        let io = async {
            for job in jobs {
                job.run_and_sync().await?;
            }
            log.close().await?;
            // The new files' directory entries must survive a crash before anything
            // acknowledged lands in them.
            self.inner.storage.sync_dir(dir).await?;
            Ok(())
        };
        match io.await {
            Ok(()) => {
                let mut st = self.inner.state.borrow_mut();
                st.segments.push(seg);
                st.written_pos = 0;
                st.synced_pos = 0;
                Ok(())
            }
            Err(StorageError::Io(e)) => {
                self.fail("segment roll", &e);
                Err(StorageError::Io(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Makes everything appended so far durable.
    pub async fn flush(&self) -> Result<()> {
        let next = self.inner.state.borrow().next_offset();
        self.wait_for(next, true).await?;
        self.persist_indexes().await
    }

    async fn persist_indexes(&self) -> Result<()> {
        // Index entries are written lazily, since recovery rebuilds what is missing, and
        // only for bytes an fdatasync already covered. Recovery verifies batches after the
        // last index entry only, so an entry on disk must imply that everything before it
        // is durable: written-but-unsynced bytes may come back torn after a crash.
        let jobs = {
            let mut st = self.inner.state.borrow_mut();
            let (pos, off) = (st.synced_pos, st.synced_offset);
            st.active_mut().index_jobs(pos, off)
        };
        for job in jobs {
            job.run().await?;
        }
        Ok(())
    }

    /// Periodic work, called by the shard every ~100 ms: the `interval` flush, the
    /// `segment.ms` roll, retention, and lazy index writes. `now_ms` must come from the
    /// clock the log was opened with (the wall clock for [`PartitionLog::open`]).
    pub async fn tick(&self, now_ms: i64) -> Result<()> {
        let config = self.config();
        let now = now_ms;
        {
            let st = self.inner.state.borrow();
            if st.closed || st.failed.is_some() {
                return Ok(());
            }
        }
        if config.flush == FlushMode::Interval {
            let due = self
                .inner
                .state
                .borrow()
                .unsynced_since_ms
                .is_some_and(|t| now - t >= config.flush_interval_ms as i64);
            if due {
                let written = self.inner.state.borrow().written_offset;
                self.wait_for(written, true).await?;
            }
        }
        {
            let guard = self.inner.assign_lock.lock().await;
            let roll = {
                let st = self.inner.state.borrow();
                let seg = st.active();
                seg.size > 0 && now - seg.created_ms >= config.segment_ms as i64
            };
            if roll {
                self.roll(now).await?;
            }
            self.enforce_retention(&config, now).await?;
            drop(guard);
        }
        self.persist_indexes().await
    }

    /// Deletes whole segments from the front by `retention.ms` and `retention.bytes`. The
    /// active segment is rolled first if everything in it has expired. Call with
    /// `assign_lock` held.
    async fn enforce_retention(&self, config: &LogConfig, now: i64) -> Result<usize> {
        if let Some(ms) = config.retention_ms {
            let (all_expired, nonempty) = {
                let st = self.inner.state.borrow();
                let seg = st.active();
                let expired = st
                    .segments
                    .iter()
                    .all(|s| s.size == 0 || now - s.max_timestamp > ms as i64);
                (expired, seg.size > 0)
            };
            if all_expired && nonempty {
                self.roll(now).await?;
            }
        }
        let doomed: Vec<Segment<S::File>> = {
            let mut st = self.inner.state.borrow_mut();
            let mut total: u64 = st.segments.iter().map(|s| s.size).sum();
            let mut n = 0;
            while n + 1 < st.segments.len() {
                let seg = &st.segments[n];
                let by_time = config
                    .retention_ms
                    .is_some_and(|ms| now - seg.max_timestamp > ms as i64);
                let by_size = config
                    .retention_bytes
                    .is_some_and(|max| total.saturating_sub(seg.size) >= max);
                if !(by_time || by_size) {
                    break;
                }
                total -= seg.size;
                n += 1;
            }
            let doomed: Vec<_> = st.segments.drain(..n).collect();
            if n > 0 {
                let first = st.segments[0].base_offset;
                st.log_start_offset = st.log_start_offset.max(first);
            }
            doomed
        };
        let count = doomed.len();
        for seg in doomed {
            // The .log goes first: an index without its log is removed on the next open.
            for ext in ["log", "index", "timeindex"] {
                let path = segment_path(&self.inner.dir, seg.base_offset, ext);
                if let Err(e) = self.inner.storage.remove_file(&path).await
                    && e.kind() != io::ErrorKind::NotFound
                {
                    return Err(e.into());
                }
            }
        }
        if count > 0 {
            self.inner.notify.notify_all();
        }
        Ok(count)
    }

    /// Runs retention now (tests and admin tools); `tick` runs it periodically.
    pub async fn apply_retention(&self) -> Result<usize> {
        let config = self.config();
        let now = self.now();
        let guard = self.inner.assign_lock.lock().await;
        let r = self.enforce_retention(&config, now).await;
        drop(guard);
        r
    }

    /// Rolls the active segment now if it holds anything.
    pub async fn force_roll(&self) -> Result<()> {
        let guard = self.inner.assign_lock.lock().await;
        let nonempty = self.inner.state.borrow().active().size > 0;
        let r = if nonempty {
            self.roll(self.now()).await
        } else {
            Ok(())
        };
        drop(guard);
        r
    }

    /// Whole batches starting with the one that contains `offset`, up to `max_bytes`
    /// (at least one batch, however large, so a consumer never stalls), from one segment.
    pub async fn read(&self, offset: i64, max_bytes: u64) -> Result<ReadSlice<S::File>> {
        let (hw, start) = {
            let st = self.inner.state.borrow();
            (self.visible(&st).1, st.log_start_offset)
        };
        if offset < start || offset > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                high_watermark: hw,
            });
        }
        let mut slice = ReadSlice {
            regions: Vec::new(),
            high_watermark: hw,
            log_start_offset: start,
        };
        if offset == hw {
            return Ok(slice);
        }
        // Walk forward from the segment that should hold `offset`; an offset past a
        // segment's last batch is in the next one.
        let mut seg_base = None;
        loop {
            let found = {
                let st = self.inner.state.borrow();
                let i = match seg_base {
                    None => st
                        .segments
                        .partition_point(|s| s.base_offset <= offset)
                        .saturating_sub(1),
                    Some(prev) => st.segments.partition_point(|s| s.base_offset <= prev),
                };
                st.segments.get(i).map(|seg| {
                    let active = i + 1 == st.segments.len();
                    let end = if active {
                        self.visible(&st).0
                    } else {
                        seg.size
                    };
                    let rel = (offset - seg.base_offset).clamp(0, u32::MAX as i64) as u32;
                    let (indexed, pos) = seg.index.lookup(rel).unwrap_or((0, 0));
                    let indexed = seg.base_offset.saturating_add(i64::from(indexed));
                    (seg.base_offset, seg.log.clone(), pos as u64, end, indexed)
                })
            };
            let Some((base, file, pos, end, indexed)) = found else {
                return Ok(slice);
            };
            // Direct-IO logs: when the batch cache holds the whole range, find the batches
            // in memory instead of reading headers from the device.
            let in_memory = self.inner.cache.borrow().as_ref().and_then(|(cache, id)| {
                let chunks = cache.borrow().lookup(*id, base, pos, end - pos)?;
                scan_memory(&chunks, pos, offset, max_bytes).map(|found| (found, chunks))
            });
            if let Some((found, chunks)) = in_memory {
                if let Some((start_pos, len)) = found {
                    let cached = slice_chunks(&chunks, start_pos - pos, len);
                    slice.regions.push(FileRegion {
                        file,
                        position: start_pos,
                        len,
                        cached: Some(cached),
                    });
                    return Ok(slice);
                }
                seg_base = Some(base);
                continue;
            }
            let mut scanner = Scanner::new(file.as_ref(), pos, end, false);
            let mut first: Option<u64> = None;
            let mut region_end = 0u64;
            // An index loaded from disk is checked only at its last entry: one damaged in
            // the middle may point between batches or at another batch. Reads check the
            // entry they start from, and scan the segment from its start if it is wrong.
            let mut checked = pos == 0;
            loop {
                let Some(b) = scanner.next().await? else {
                    if checked {
                        break;
                    }
                    checked = true;
                    tracing::warn!(segment = base, pos, "index entry points at no batch");
                    scanner = Scanner::new(file.as_ref(), 0, end, false);
                    continue;
                };
                if !checked {
                    checked = true;
                    if b.base_offset != indexed {
                        tracing::warn!(segment = base, pos, "index entry points at another batch");
                        scanner = Scanner::new(file.as_ref(), 0, end, false);
                        continue;
                    }
                }
                match first {
                    None if b.last_offset < offset => continue,
                    None => {
                        first = Some(b.position);
                        region_end = b.end();
                    }
                    Some(start_pos) => {
                        if b.end() - start_pos > max_bytes {
                            break;
                        }
                        region_end = b.end();
                    }
                }
            }
            if let Some(start_pos) = first {
                let len = region_end - start_pos;
                let cached = self
                    .inner
                    .cache
                    .borrow()
                    .as_ref()
                    .and_then(|(cache, id)| cache.borrow().lookup(*id, base, start_pos, len));
                slice.regions.push(FileRegion {
                    file,
                    position: start_pos,
                    len,
                    cached,
                });
                return Ok(slice);
            }
            seg_base = Some(base);
        }
    }

    /// The first record with timestamp `>= timestamp`: `(offset, its timestamp)`, or `None`
    /// when every record is older. Compressed batches are decompressed (bounded by the
    /// topic's decompression limit) to find the record.
    pub async fn offset_for_timestamp(&self, timestamp: i64) -> Result<Option<(i64, i64)>> {
        let candidates: Vec<(Rc<S::File>, u64, u64, i64)> = {
            let st = self.inner.state.borrow();
            let (vis_pos, _) = self.visible(&st);
            let n = st.segments.len();
            st.segments
                .iter()
                .enumerate()
                .filter(|(_, s)| s.max_timestamp >= timestamp)
                .map(|(i, s)| {
                    let end = if i + 1 == n { vis_pos } else { s.size };
                    let pos = s
                        .time_index
                        .lookup_before(timestamp)
                        .and_then(|(_, rel)| s.index.lookup(rel))
                        .map_or(0, |(_, p)| p as u64);
                    (s.log.clone(), pos, end, s.base_offset)
                })
                .collect()
        };
        let log_start = self.log_start_offset();
        let limit = crate::compression::decompressed_limit(self.config().max_batch_bytes);
        for (file, pos, end, _base) in candidates {
            let mut scanner = Scanner::new(file.as_ref(), pos, end, false);
            while let Some(b) = scanner.next().await? {
                if b.max_timestamp < timestamp || b.last_offset < log_start {
                    continue;
                }
                let bytes = file.read_at(b.position, b.size as usize).await?;
                let hit = match record_times(&bytes, limit) {
                    Some(records) => records
                        .into_iter()
                        .find(|&(off, ts)| ts >= timestamp && off >= log_start),
                    // Records that cannot be read (corrupt, or past the decompression
                    // limit): the batch's first offset and largest timestamp.
                    None => Some((b.base_offset.max(log_start), b.max_timestamp)),
                };
                if hit.is_some() {
                    return Ok(hit);
                }
            }
        }
        Ok(None)
    }

    /// Writes and syncs everything, seals the active segment's indexes and trims its
    /// files. Later appends get [`StorageError::Closed`].
    pub async fn close(&self) -> Result<()> {
        let guard = self.inner.assign_lock.lock().await;
        if self.inner.state.borrow().closed {
            return Ok(());
        }
        let result = async {
            if self.inner.state.borrow().failed.is_none() {
                self.flush().await?;
                self.inner.state.borrow_mut().active_mut().seal();
                self.persist_indexes().await?;
            }
            let files: Vec<Rc<S::File>> = self
                .inner
                .state
                .borrow()
                .segments
                .iter()
                .map(|s| s.log.clone())
                .collect();
            for f in files {
                f.close().await?;
            }
            Ok(())
        }
        .await;
        self.inner.state.borrow_mut().closed = true;
        self.forget_cache();
        self.inner.notify.notify_all();
        drop(guard);
        result
    }

    /// Closes the log and deletes its directory (DeleteTopics).
    pub async fn delete(&self) -> Result<()> {
        let _ = self.close().await;
        self.inner.storage.remove_dir_all(&self.inner.dir).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::testing::build_batch;
    use crate::storage::sim::SimStorage;
    use futures_lite::future::block_on;

    fn cfg(flush: FlushMode) -> LogConfig {
        LogConfig {
            flush,
            segment_bytes: 4096,
            index_interval_bytes: 256,
            ..LogConfig::default()
        }
    }

    fn batch(i: usize, n: usize) -> Bytes {
        let v = format!("value-{i:06}-{}", "x".repeat(i % 50));
        let vals: Vec<&[u8]> = (0..n).map(|_| v.as_bytes()).collect();
        Bytes::from(build_batch(&vals, 1_000 + i as i64 * 10))
    }

    async fn read_all(log: &PartitionLog<SimStorage>, from: i64) -> Vec<(i64, Vec<u8>)> {
        let mut out = Vec::new();
        let mut next = from;
        loop {
            let slice = log.read(next, 1000).await.expect("read");
            if slice.regions.is_empty() {
                return out;
            }
            for r in &slice.regions {
                let bytes = r.read().await.expect("region");
                for (h, range) in batch::validate_batches(&bytes).expect("whole valid batches") {
                    out.push((h.base_offset, bytes[range].to_vec()));
                    next = h.last_offset() + 1;
                }
            }
        }
    }

    #[test]
    fn append_assigns_offsets_and_reads_back_across_rolls_and_reopen() {
        block_on(async {
            let sim = SimStorage::new(1);
            let dir = PathBuf::from("/d/t-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            let mut expect_next = 0;
            for i in 0..100 {
                let info = log.append(batch(i, 1 + i % 3)).await.expect("append");
                assert_eq!(info.base_offset, expect_next);
                expect_next = info.last_offset + 1;
            }
            assert!(log.segment_count() > 3, "small segments roll");
            assert_eq!(log.high_watermark(), expect_next);
            let before = read_all(&log, 0).await;
            assert_eq!(before.len(), 100);
            // A read from the middle of a batch returns that whole batch.
            let mid = before[10].0 + 1;
            let s = log.read(mid, 1).await.expect("read");
            assert_eq!(s.regions.len(), 1);
            let got = s.regions[0].read().await.expect("bytes");
            assert_eq!(
                got, before[10].1,
                "one whole batch even when max_bytes is tiny"
            );
            log.close().await.expect("close");
            assert!(matches!(
                log.append(batch(0, 1)).await,
                Err(StorageError::Closed)
            ));

            let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            assert_eq!(log.log_end_offset(), expect_next);
            assert_eq!(read_all(&log, 0).await, before);
            let info = log.append(batch(7, 2)).await.expect("append after reopen");
            assert_eq!(info.base_offset, expect_next);
        });
    }

    /// Found by tests/fuzz_segments.rs: the base offset is outside the CRC, and recovery
    /// took a batch whose base offset jumped ahead (a gap reads could not explain) or came
    /// so close to i64::MAX that its last offset overflowed.
    #[test]
    fn recovery_truncates_at_a_damaged_base_offset() {
        block_on(async {
            for (damaged, bad) in [(0usize, 87i64), (3, 87), (3, i64::MAX - 1), (3, 2)] {
                let sim = SimStorage::new(7);
                let dir = PathBuf::from("/d/t-0");
                let config = LogConfig {
                    index_interval_bytes: 1 << 20,
                    ..cfg(FlushMode::None)
                };
                let log = PartitionLog::open(sim.clone(), dir.clone(), config.clone())
                    .await
                    .expect("open");
                let mut positions = Vec::new();
                let mut end = 0;
                for i in 0..6 {
                    let b = batch(i, 2);
                    positions.push(end);
                    end += b.len();
                    log.append(b).await.expect("append");
                }
                log.close().await.expect("close");
                let path = segment_path(&dir, 0, "log");
                let mut bytes = sim.file_bytes(&path).expect("segment");
                let at = positions[damaged];
                bytes[at..at + 8].copy_from_slice(&bad.to_be_bytes());
                sim.set_file_bytes(&path, bytes);
                let log = PartitionLog::open(sim, dir, config)
                    .await
                    .expect("recovers");
                assert_eq!(
                    log.log_end_offset(),
                    2 * damaged as i64,
                    "damage at {damaged}"
                );
                let kept = read_all(&log, 0).await;
                assert_eq!(kept.len(), damaged);
                let info = log.append(batch(9, 1)).await.expect("append");
                assert_eq!(info.base_offset, 2 * damaged as i64);
            }
            // Before the last index entry, reached when a missing time index makes
            // recovery rebuild the indexes from the whole segment: it overflowed there.
            let sim = SimStorage::new(8);
            let dir = PathBuf::from("/d/t-1");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::None))
                .await
                .expect("open");
            let mut at = 0;
            for i in 0..12 {
                let b = batch(i, 2);
                if i == 1 {
                    at = log.size_bytes() as usize;
                }
                log.append(b).await.expect("append");
            }
            log.close().await.expect("close");
            assert_eq!(log.segment_count(), 1);
            let path = segment_path(&dir, 0, "log");
            let mut bytes = sim.file_bytes(&path).expect("segment");
            bytes[at..at + 8].copy_from_slice(&(i64::MAX - 1).to_be_bytes());
            sim.set_file_bytes(&path, bytes);
            sim.set_file_bytes(&segment_path(&dir, 0, "timeindex"), Vec::new());
            let log = PartitionLog::open(sim, dir, cfg(FlushMode::None))
                .await
                .expect("recovers");
            assert_eq!(log.log_end_offset(), 2);
            assert_eq!(read_all(&log, 0).await.len(), 1);
        });
    }

    /// Found by tests/fuzz_segments.rs: an index entry damaged in the middle of the file
    /// (still increasing, so it loads) sent reads between batches or to another batch,
    /// and a consumer at those offsets got nothing, or later batches.
    #[test]
    fn reads_survive_a_wrong_index_entry() {
        block_on(async {
            // (entry, damage): 0 moves its position into its batch, 1 gives it a smaller
            // offset than its batch has (a read there would skip batches).
            for (entry, damage) in [(1usize, 0), (2, 0), (1, 1), (2, 1)] {
                let sim = SimStorage::new(3);
                let dir = PathBuf::from("/d/t-0");
                let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::None))
                    .await
                    .expect("open");
                for i in 0..40 {
                    log.append(batch(i, 2)).await.expect("append");
                }
                let before = read_all(&log, 0).await;
                log.close().await.expect("close");
                let path = segment_path(&dir, 0, "index");
                let mut index = sim.file_bytes(&path).expect("index");
                assert!(index.len() >= 4 * 8, "entries to damage");
                let u32_at =
                    |b: &[u8], at: usize| u32::from_be_bytes(b[at..at + 4].try_into().unwrap());
                let at = entry * 8;
                if damage == 0 {
                    let pos = u32_at(&index, at + 4) + 1;
                    index[at + 4..at + 8].copy_from_slice(&pos.to_be_bytes());
                } else {
                    let rel = u32_at(&index, at - 8) + 1;
                    assert!(rel < u32_at(&index, at));
                    index[at..at + 4].copy_from_slice(&rel.to_be_bytes());
                }
                sim.set_file_bytes(&path, index);
                let log = PartitionLog::open(sim, dir, cfg(FlushMode::None))
                    .await
                    .expect("reopen");
                assert_eq!(
                    read_all(&log, 0).await,
                    before,
                    "entry {entry} damage {damage}"
                );
                for (offset, bytes) in &before {
                    let s = log.read(*offset, 1).await.expect("read");
                    let got = s.regions[0].read().await.expect("bytes");
                    assert_eq!(&got, bytes, "read at {offset}");
                }
            }
        });
    }

    fn idem_batch(i: usize, pid: i64, epoch: i16, seq: i32, n: usize) -> Bytes {
        let mut b = batch(i, n).to_vec();
        batch::set_producer(&mut b, pid, epoch, seq);
        Bytes::from(b)
    }

    #[test]
    fn producer_state_deduplicates_concurrent_retries_and_survives_reopen() {
        block_on(async {
            let sim = SimStorage::new(3);
            let dir = PathBuf::from("/d/idem-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            let mut seq = 0;
            let mut sent = Vec::new();
            for i in 0..60 {
                let n = 1 + i % 3;
                let b = idem_batch(i, 5, 0, seq, n);
                // The batch and its retry race: one append, the same offsets for both.
                let (a, r) =
                    futures_lite::future::zip(log.append(b.clone()), log.append(b.clone())).await;
                let (a, r) = (a.expect("append"), r.expect("retry"));
                assert_eq!(
                    (a.base_offset, a.last_offset),
                    (r.base_offset, r.last_offset)
                );
                sent.push((b, a.base_offset));
                seq += n as i32;
            }
            let end = log.log_end_offset();
            assert_eq!(read_all(&log, 0).await.len(), 60);
            assert!(log.segment_count() > 1);
            let gap = idem_batch(99, 5, 0, seq + 1, 1);
            assert!(matches!(
                log.append(gap.clone()).await,
                Err(StorageError::Producer(
                    crate::producer::ProducerError::OutOfOrder { .. }
                ))
            ));
            log.close().await.expect("close");

            let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            // The last five batches are still known after the state is rebuilt.
            for (b, base) in &sent[55..] {
                let info = log.append(b.clone()).await.expect("retry after reopen");
                assert_eq!(info.base_offset, *base);
            }
            assert!(
                log.append(sent[50].0.clone()).await.is_err(),
                "too old to tell"
            );
            assert!(log.append(gap).await.is_err());
            let stale = idem_batch(1, 5, -1, 0, 1);
            assert!(matches!(
                log.append(stale).await,
                Err(StorageError::Producer(
                    crate::producer::ProducerError::StaleEpoch { .. }
                ))
            ));
            assert_eq!(log.log_end_offset(), end);
            let next = log
                .append(idem_batch(100, 5, 0, seq, 1))
                .await
                .expect("in sequence");
            assert_eq!(next.base_offset, end);
        });
    }

    #[test]
    fn topic_compression_recompresses_and_unknown_codecs_are_refused() {
        use crate::compression::{Codec, compress, decompress};
        block_on(async {
            let sim = SimStorage::new(4);
            let config = LogConfig {
                compression: Some(Codec::Zstd),
                ..cfg(FlushMode::None)
            };
            let log = PartitionLog::open(sim, PathBuf::from("/d/z-0"), config)
                .await
                .expect("open");
            let plain = batch(3, 4).to_vec();
            let records = &plain[batch::HEADER_BYTES..];
            let mut lz4 = plain[..batch::HEADER_BYTES].to_vec();
            lz4.extend_from_slice(&compress(Codec::Lz4, records));
            let len = (lz4.len() - batch::LOG_OVERHEAD) as i32;
            batch::set_length_attributes_and_crc(&mut lz4, len, Codec::Lz4 as i16);
            let info = log.append(Bytes::from(lz4.clone())).await.expect("append");
            assert_eq!((info.base_offset, info.last_offset), (0, 3));
            let stored = read_all(&log, 0).await;
            let h = batch::BatchHeader::parse(&stored[0].1).expect("header");
            assert_eq!(h.compression(), Codec::Zstd as i16);
            assert_eq!(
                decompress(Codec::Zstd, &stored[0].1[batch::HEADER_BYTES..], 1 << 20).unwrap(),
                records
            );
            let mut bad = plain.clone();
            batch::set_length_attributes_and_crc(&mut bad, len_of(&plain), 6);
            assert!(matches!(
                log.append(Bytes::from(bad)).await,
                Err(StorageError::Compression(
                    crate::compression::CompressionError::Unsupported(6)
                ))
            ));
            assert_eq!(log.log_end_offset(), 4);
        });
    }

    fn len_of(b: &[u8]) -> i32 {
        (b.len() - batch::LOG_OVERHEAD) as i32
    }

    #[test]
    fn bad_batches_write_nothing() {
        block_on(async {
            let sim = SimStorage::new(2);
            let log = PartitionLog::open(sim, PathBuf::from("/d/t-0"), cfg(FlushMode::None))
                .await
                .expect("open");
            log.append(batch(1, 1)).await.expect("good");
            let mut bad = batch(2, 2).to_vec();
            let last = bad.len() - 1;
            bad[last] ^= 1;
            assert!(matches!(
                log.append(Bytes::from(bad)).await,
                Err(StorageError::InvalidBatch(batch::BatchError::BadCrc { .. }))
            ));
            let big = Bytes::from(vec![0u8; 5000]);
            assert!(matches!(
                log.append(big).await,
                Err(StorageError::BatchTooLarge { .. })
            ));
            assert_eq!(log.log_end_offset(), 1);
            assert_eq!(log.size_bytes(), batch(1, 1).len() as u64);
            assert!(matches!(
                log.read(5, 100).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
        });
    }

    #[test]
    fn failed_fsync_fails_the_log_and_acknowledges_nothing_more() {
        block_on(async {
            let sim = SimStorage::new(3);
            let dir = PathBuf::from("/d/t-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            log.append(batch(1, 1)).await.expect("first");
            sim.fail_sync_at(1);
            assert!(log.append(batch(2, 1)).await.is_err(), "not acknowledged");
            assert!(matches!(
                log.append(batch(3, 1)).await,
                Err(StorageError::Failed(_))
            ));
            assert_eq!(log.high_watermark(), 1, "unsynced batch never visible");
            let reopened = PartitionLog::open(sim.crash_image(9), dir, cfg(FlushMode::Fsync))
                .await
                .expect("recovers");
            assert_eq!(read_all(&reopened, 0).await.len(), 1);
        });
    }

    #[test]
    fn group_commit_shares_fsyncs_among_concurrent_appends() {
        block_on(async {
            let sim = SimStorage::new(4);
            let log = PartitionLog::open(
                sim.clone(),
                PathBuf::from("/d/t-0"),
                LogConfig {
                    flush: FlushMode::Fsync,
                    ..LogConfig::default()
                },
            )
            .await
            .expect("open");
            let appends = (0..16).map(|i| {
                let log = log.clone();
                async move { log.append(batch(i, 1)).await.expect("append") }
            });
            let infos = futures::future::join_all(appends).await;
            let mut offsets: Vec<i64> = infos.iter().map(|i| i.base_offset).collect();
            offsets.sort_unstable();
            assert_eq!(offsets, (0..16).collect::<Vec<_>>());
            assert_eq!(log.high_watermark(), 16);
            // 16 appends waiting together need far fewer than 16 fdatasyncs.
            assert!(
                sim.syncs() <= 4,
                "{} fdatasyncs for 16 appends",
                sim.syncs()
            );
        });
    }

    thread_local! {
        static NOW: Cell<i64> = const { Cell::new(1_000_000) };
    }

    fn fake_now() -> i64 {
        NOW.with(|n| n.get())
    }

    fn advance(ms: i64) {
        NOW.with(|n| n.set(n.get() + ms));
    }

    #[test]
    fn retention_by_time_deletes_expired_segments_and_moves_log_start() {
        block_on(async {
            let sim = SimStorage::new(5);
            let dir = PathBuf::from("/d/t-0");
            let config = LogConfig {
                retention_ms: Some(60_000),
                ..cfg(FlushMode::None)
            };
            let log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), config, fake_now)
                .await
                .expect("open");
            // Old records: timestamps a minute and a half ago.
            let old = fake_now() - 90_000;
            for i in 0..20 {
                let v = vec![b'o'; 400];
                log.append(Bytes::from(build_batch(&[&v], old + i)))
                    .await
                    .expect("append");
            }
            let fresh_from = log.log_end_offset();
            for i in 0..20 {
                let v = vec![b'n'; 400];
                log.append(Bytes::from(build_batch(&[&v], fake_now() + i)))
                    .await
                    .expect("append");
            }
            let segments = log.segment_count();
            log.tick(fake_now()).await.expect("tick");
            assert!(log.segment_count() < segments, "expired segments deleted");
            let start = log.log_start_offset();
            assert!(
                start > 0 && start <= fresh_from,
                "log start moved to a kept segment"
            );
            assert!(matches!(
                log.read(0, 100).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            // Deleted segments are gone from the disk too.
            let names = sim.list_dir(&dir).await.expect("list");
            assert!(!names.contains(&format!("{:020}.log", 0)));
            // Once everything expires, the active segment rolls and goes too; offsets go on.
            advance(120_000);
            let end = log.log_end_offset();
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.log_start_offset(), end);
            assert_eq!(log.segment_count(), 1);
            let info = log.append(batch(1, 1)).await.expect("append");
            assert_eq!(info.base_offset, end);
            log.close().await.expect("close");
            let reopened = PartitionLog::open_with_clock(sim, dir, cfg(FlushMode::None), fake_now)
                .await
                .expect("reopen");
            assert_eq!(reopened.log_start_offset(), end);
            assert_eq!(reopened.log_end_offset(), end + 1);
        });
    }

    #[test]
    fn segment_ms_rolls_the_active_segment() {
        block_on(async {
            let sim = SimStorage::new(6);
            let config = LogConfig {
                segment_ms: 10_000,
                segment_bytes: 1 << 30,
                ..cfg(FlushMode::None)
            };
            let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/t-0"), config, fake_now)
                .await
                .expect("open");
            log.append(batch(1, 1)).await.expect("append");
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.segment_count(), 1);
            advance(10_000);
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.segment_count(), 2, "rolled by age");
            assert_eq!(log.segment_bases(), vec![0, 1]);
            // An empty active segment does not roll again.
            advance(10_000);
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.segment_count(), 2);
        });
    }

    #[test]
    fn interval_flush_syncs_by_time_and_by_bytes() {
        block_on(async {
            let sim = SimStorage::new(7);
            let config = LogConfig {
                flush_interval_ms: 1_000,
                flush_interval_bytes: 10_000,
                ..cfg(FlushMode::Interval)
            };
            let log = PartitionLog::open_with_clock(
                sim.clone(),
                PathBuf::from("/d/t-0"),
                config,
                fake_now,
            )
            .await
            .expect("open");
            log.append(batch(1, 1)).await.expect("append");
            let syncs = sim.syncs();
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(sim.syncs(), syncs, "not due yet");
            advance(1_000);
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(sim.syncs(), syncs + 1, "due by time");
            let before = sim.syncs();
            for i in 0..40 {
                log.append(batch(i, 3)).await.expect("append");
            }
            assert!(sim.syncs() > before, "due by bytes without a tick");
        });
    }
}
