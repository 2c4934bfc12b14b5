//! Opening a log: recovery of its segments, and the idempotent producer state from the
//! newest snapshot and the batch headers after it (`super::snapshots`).

use super::{Inner, PartitionLog, State, file_kind, wall_clock_ms};
use crate::config::LogConfig;
use crate::storage::error::{Result, StorageError};
use crate::storage::io::{Storage, StorageFile, segment_path};
use crate::storage::notify::{FifoLock, Notify};
use crate::storage::segment::{Scanner, Segment};
use std::cell::{Cell, RefCell};
use std::collections::VecDeque;
use std::path::PathBuf;
use std::rc::Rc;

fn parse_segment_name(name: &str) -> Option<(i64, &str)> {
    let (stem, ext) = name.split_once('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    Some((stem.parse().ok()?, ext))
}

/// The checks every batch of a sealed segment passes, besides its CRC-32C (which the
/// scanner verifies): offsets that only increase, and batches that fill the segment
/// exactly. Sealed segments were fsynced whole when they were rolled, so anything else is
/// damage.
pub(super) struct SealedCheck<'a> {
    next: i64,
    path: &'a std::path::Path,
}

impl<'a> SealedCheck<'a> {
    pub(super) fn new(base_offset: i64, path: &'a std::path::Path) -> SealedCheck<'a> {
        SealedCheck {
            next: base_offset,
            path,
        }
    }

    pub(super) fn batch(&mut self, b: &crate::storage::scanner::BatchPos) -> Result<()> {
        if b.base_offset < self.next {
            return Err(StorageError::corrupt(
                self.path,
                format!(
                    "the batch at position {} has base offset {}, below offset {} that the \
                     batches before it reach",
                    b.position, b.base_offset, self.next
                ),
            ));
        }
        self.next = b.last_offset.saturating_add(1);
        Ok(())
    }

    /// After the scanner stopped: it must have reached the segment's end.
    pub(super) fn end<F: StorageFile>(
        &self,
        scanner: &mut Scanner<'_, F>,
        size: u64,
    ) -> Result<()> {
        if scanner.position < size {
            return Err(StorageError::corrupt(
                self.path,
                format!(
                    "sealed segment is damaged at position {} (after offset {}): {}",
                    scanner.position,
                    self.next.saturating_sub(1),
                    scanner
                        .stopped
                        .take()
                        .unwrap_or_else(|| "unreadable data".into())
                ),
            ));
        }
        Ok(())
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
        super::swap::recover_swaps(&storage, &dir).await?;
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
                        &segment_path(&dir, prev.base_offset, "log"),
                        format!(
                            "segment {} ends at offset {} past the next segment's base {}",
                            prev.base_offset, prev.next_offset, seg.base_offset
                        ),
                    ));
                }
                // The broker assigns offsets without gaps and rolls a segment only once it
                // is fsynced whole; only compaction leaves gaps between segments. A gap
                // elsewhere is a segment missing or cut short.
                if prev.next_offset < seg.base_offset && !config.cleanup_compact {
                    let claim = prev
                        .index_claim
                        .as_ref()
                        .map(|c| format!("; {c}"))
                        .unwrap_or_default();
                    return Err(StorageError::corrupt(
                        &segment_path(&dir, prev.base_offset, "log"),
                        format!(
                            "offsets {}..{} are missing: the segment ends at offset {} and the \
                             next one ({:020}.log) starts at {} (a segment missing or cut \
                             short){claim}",
                            prev.next_offset,
                            seg.base_offset,
                            prev.next_offset,
                            seg.base_offset,
                            seg.base_offset
                        ),
                    ));
                }
                // An index that claims more than the log holds, while the log follows on
                // into the next segment: the index is what is damaged, and it is rebuilt
                // once the whole log checks out. In a compacted log gaps are normal, so
                // nothing tells the log is whole: that is damage.
                if let Some(claim) = &prev.index_claim {
                    if config.cleanup_compact {
                        return Err(StorageError::corrupt(
                            &segment_path(&dir, prev.base_offset, "log"),
                            format!("the log may have been cut short: {claim}"),
                        ));
                    }
                    tracing::warn!(
                        "{claim}; the log is whole (it runs on into the next segment), so \
                         the index is rebuilt from it"
                    );
                }
            }
            segments.push(seg);
        }
        // An empty tail segment after a roll is fine; a log with no segment gets one.
        if segments.is_empty() {
            segments.push(Segment::create(&storage, &dir, 0, kind, now).await?);
            storage.sync_dir(&dir).await?;
        }
        let (state, report) = super::snapshots::load(&storage, &dir, &names, &segments).await?;
        let active = segments.last().expect("at least one segment");
        let (pos, next) = (active.size, active.next_offset);
        // DeleteRecords may have moved the start inside a segment (or past segments a
        // crash kept from being deleted); never past the recovered end.
        let first = segments[0].base_offset;
        let log_start_offset = super::start::read_checkpoint(&storage, &dir)
            .await?
            .map_or(first, |c| c.min(next).max(first));
        // The indexes found damaged in segments whose log is whole are rewritten now that
        // the whole log checked out.
        for seg in &mut segments {
            if seg.index_claim.take().is_some() {
                seg.rewrite_indexes().await?;
            }
        }
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
                no_space: None,
                no_space_reported: false,
                closed: false,
            }),
            notify: Rc::new(Notify::default()),
            assign_lock: FifoLock::default(),
            producers: RefCell::new(state.producers),
            txns: RefCell::new(state.txns),
            clock: Cell::new(clock),
            cache: RefCell::new(None),
            issued_ids: RefCell::new(None),
            stats: super::stats::LogStats::default(),
            tombstone_due_ms: Cell::new(None),
            epochs: RefCell::new(state.epochs),
            opened: Cell::new(report),
            unverified_below: Cell::new(report.unverified_below),
            stamp_epoch: Cell::new(None),
            hw_limit: Cell::new(None),
        };
        let log = PartitionLog {
            inner: Rc::new(inner),
        };
        log.trim_below_start().await?;
        Ok(log)
    }
}
