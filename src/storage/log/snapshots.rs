//! The producer state of a log (idempotent producers, leader epochs, transactions) at open
//! and at roll: a snapshot written at each roll ([`crate::storage::snapshot`]), and at open
//! the newest usable snapshot plus a walk of the batches after it, or the walk of every
//! batch when no snapshot is usable.
//!
//! The walk verifies the sealed segments it reads (see [`walk`]). The sealed segments
//! below the snapshot are not read at open: [`PartitionLog::unverified_below`] names them,
//! and the shard's scrubber checks them soon after. Damage in the segments from the
//! snapshot on, and in the active segment, is still found at open.

use super::open::SealedCheck;
use super::{Inner, PartitionLog};
use crate::producer::{PartitionTxns, ProducerBatch, ProducerStates};
use crate::storage::epochs::EpochCache;
use crate::storage::error::Result;
use crate::storage::io::{Storage, StorageFile};
use crate::storage::segment::{Scanner, Segment};
use crate::storage::snapshot::{self, Snapshot};
use std::path::Path;

/// How the open rebuilt the state: from which snapshot, and how much of the log it read.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct OpenReport {
    /// The offset of the snapshot used; `None` for a walk of the whole log.
    pub snapshot: Option<i64>,
    /// Bytes of the segments the walk read.
    pub walked_bytes: u64,
    /// The sealed segments below this offset were not read (the snapshot stood for them).
    pub unverified_below: Option<i64>,
}

/// Applies the batches of `segments` from offset `from` on to `state`. Segments that end
/// at or before `from` are skipped; every segment read is walked from its start, and
/// batches below `from` (in a segment compaction merged across `from`) only checked. The
/// walk verifies every batch of the sealed segments it reads (CRC-32C, increasing offsets,
/// the segment filled exactly): they were fsynced whole when they were rolled, so
/// anything else is damage, reported ([`crate::storage::StorageError::Corrupt`]) and
/// left as it is. Returns the bytes read and the base of the first segment read.
pub(super) async fn walk<F: StorageFile>(
    segments: &[Segment<F>],
    from: i64,
    state: &mut Snapshot,
) -> Result<(u64, Option<i64>)> {
    let mut walked: u64 = 0;
    let mut first = None;
    for (i, seg) in segments.iter().enumerate() {
        let sealed = i + 1 < segments.len();
        if segments.get(i + 1).is_some_and(|n| n.base_offset <= from) {
            continue;
        }
        first.get_or_insert(seg.base_offset);
        walked = walked.saturating_add(seg.size);
        let mut scanner = Scanner::new(seg.log.as_ref(), 0, seg.size, sealed);
        let path = seg.path("log");
        let mut check = SealedCheck::new(seg.base_offset, &path);
        while let Some(b) = scanner.next().await? {
            if sealed {
                check.batch(&b)?;
            }
            if b.base_offset >= from {
                apply(state, &b);
            }
        }
        if sealed {
            check.end(&mut scanner, seg.size)?;
        }
    }
    Ok((walked, first))
}

fn apply(state: &mut Snapshot, b: &crate::storage::scanner::BatchPos) {
    state.epochs.assign(b.leader_epoch, b.base_offset);
    if b.producer_id < 0 {
        return;
    }
    if let Some(kind) = b.control {
        let commit = kind == crate::protocol::batch::CONTROL_COMMIT;
        state.txns.marker(b.producer_id, b.base_offset, commit);
        state.producers.fence(b.producer_id, b.producer_epoch);
        return;
    }
    if b.is_transactional() {
        state.txns.data(b.producer_id, b.base_offset);
    }
    // The scanner refused batches whose last offset delta is negative or overflows.
    let delta = i32::try_from(b.last_offset.saturating_sub(b.base_offset)).unwrap_or(i32::MAX);
    let pb = ProducerBatch {
        producer_id: b.producer_id,
        epoch: b.producer_epoch,
        first_seq: b.base_sequence,
        last_offset_delta: delta,
    };
    state
        .producers
        .commit(&pb, b.base_offset, b.last_offset, b.max_timestamp);
}

fn empty(offset: i64) -> Snapshot {
    Snapshot {
        offset,
        producers: ProducerStates::default(),
        epochs: EpochCache::default(),
        txns: PartitionTxns::default(),
    }
}

/// The state of the log of `segments` in `dir` (`names`: its listing): the newest
/// snapshot at or below the log end whose offset the segments still hold, then the walk
/// of the batches from there. A snapshot that cannot be read is skipped with a warning
/// (the one before it, or the full walk, gives the same state). Snapshots the log cannot
/// use (below its first segment, above its end: a truncation or a crash took the offsets
/// they describe) and `.tmp` files are removed.
pub(super) async fn load<S: Storage>(
    storage: &S,
    dir: &Path,
    names: &[String],
    segments: &[Segment<S::File>],
) -> Result<(Snapshot, OpenReport)> {
    let first_base = segments.first().map_or(0, |s| s.base_offset);
    let end = segments.last().map_or(0, |s| s.next_offset);
    let offsets = snapshot::offsets(names);
    let stale = offsets.iter().any(|&o| o < first_base || o > end);
    if stale || names.iter().any(|n| snapshot::is_tmp(n)) {
        // Before anything is appended: a snapshot above the end describes offsets that
        // new batches will take.
        snapshot::remove_where(storage, dir, |o| o < first_base || o > end).await?;
    }
    let mut state = None;
    for &offset in offsets.iter().rev() {
        if offset < first_base || offset > end {
            continue;
        }
        match snapshot::read(storage, dir, offset).await {
            Ok(Ok(s)) => {
                state = Some(s);
                break;
            }
            Ok(Err(why)) => tracing::warn!(
                "ignoring {}: {why}; using an older snapshot or the whole log",
                snapshot::path(dir, offset).display()
            ),
            Err(e) => tracing::warn!(
                "cannot read {}: {e}; using an older snapshot or the whole log",
                snapshot::path(dir, offset).display()
            ),
        }
    }
    let used = state.as_ref().map(|s| s.offset);
    let mut state = state.unwrap_or_else(|| empty(first_base));
    let from = state.offset;
    let (walked_bytes, first_read) = walk(segments, from, &mut state).await?;
    let unverified_below = first_read.filter(|&f| f > first_base);
    // The aborted transactions and leader epochs wholly in segments that retention or
    // DeleteRecords removed go, as a walk of the whole log would not know them. The
    // producers stay: the running log kept them when the segments went, and so does
    // Kafka (KIP-360), so that a producer whose batches were all deleted can still be
    // told from a duplicate and is not answered UNKNOWN_PRODUCER_ID.
    state.txns.trim_below(first_base);
    state.epochs.truncate_before(first_base);
    state.offset = end;
    Ok((
        state,
        OpenReport {
            snapshot: used,
            walked_bytes,
            unverified_below,
        },
    ))
}

impl<S: Storage> PartitionLog<S> {
    /// How the open rebuilt the producer state (tests and diagnostics).
    pub fn open_report(&self) -> OpenReport {
        self.inner.opened.get()
    }

    /// The sealed segments with a base offset below this were not read at open (a
    /// snapshot stood for them): the scrubber checks them. `None` once checked.
    pub fn unverified_below(&self) -> Option<i64> {
        self.inner.unverified_below.get()
    }

    /// The scrubber checked the segments [`Self::unverified_below`] named.
    pub fn mark_verified(&self) {
        self.inner.unverified_below.set(None);
    }

    /// The state as of the log end, as a snapshot would hold it.
    fn current_state(inner: &Inner<S>, offset: i64) -> Snapshot {
        Snapshot {
            offset,
            producers: inner.producers.borrow().clone(),
            epochs: inner.epochs.borrow().clone(),
            txns: inner.txns.borrow().clone(),
        }
    }

    /// Writes the snapshot as of `offset`, the base of the segment a roll just started,
    /// and keeps only the newest few. Call with `assign_lock` held, so the state is the
    /// state as of `offset`. A failure is a warning: the snapshot is a shortcut for the
    /// next open, and the log is whole without it.
    pub(super) async fn snapshot_at_roll(&self, offset: i64) {
        let state = Self::current_state(&self.inner, offset);
        let (storage, dir) = (&self.inner.storage, &self.inner.dir);
        if let Err(e) = snapshot::write(storage, dir, &state).await {
            tracing::warn!(
                "cannot write the producer snapshot {}: {e}; the next open reads more of \
                 the log",
                snapshot::path(dir, offset).display()
            );
            return;
        }
        self.prune_snapshots().await;
    }

    /// Removes the snapshots below the first segment (retention or DeleteRecords removed
    /// the segments they lead into) and all but the newest few.
    pub(super) async fn prune_snapshots(&self) {
        let first = self.inner.state.borrow().segments[0].base_offset;
        let (storage, dir) = (&self.inner.storage, &self.inner.dir);
        if let Err(e) = snapshot::prune(storage, dir, first).await {
            tracing::warn!(
                "cannot remove old producer snapshots in {}: {e}",
                dir.display()
            );
        }
    }
}
