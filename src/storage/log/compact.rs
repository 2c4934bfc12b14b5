//! Compaction of one log (see [`crate::storage::clean`] for the algorithm): which
//! segments are cleanable, the key map over the dirty section, and the rewrite of the
//! segments below its end, each group swapped in by `swap`.

use super::{PartitionLog, file_kind, swap};
use crate::config::LogConfig;
use crate::protocol::batch::{self, ATTR_CONTROL};
use crate::storage::clean::records::{self, Record};
use crate::storage::clean::{CleanReport, Cleanable, KeyMap, Pace};
use crate::storage::error::{Result, StorageError};
use crate::storage::io::{FileKind, Storage, StorageFile};
use crate::storage::segment::{BatchPos, Scanner, Segment};
use bytes::Bytes;
use std::rc::Rc;

/// Cleaned bytes gathered before one write.
const WRITE_CHUNK_BYTES: usize = 256 * 1024;

/// A sealed segment as the cleaner sees it.
struct Sealed<F> {
    base: i64,
    file: Rc<F>,
    size: u64,
    max_timestamp: i64,
}

/// The sealed segments, the offset the dirty section starts at, and the index of the
/// first segment past the cleanable range (too young for `min.compaction.lag.ms`, or the
/// active one).
struct Plan<F> {
    sealed: Vec<Sealed<F>>,
    first_dirty: usize,
    end: usize,
    /// Base of the segment after each sealed one (the active segment's for the last).
    next_bases: Vec<i64>,
}

impl<S: Storage> PartitionLog<S> {
    async fn plan(&self, config: &LogConfig, now: i64) -> Result<Plan<S::File>> {
        let checkpoint = swap::read_checkpoint(&self.inner.storage, &self.inner.dir).await?;
        let st = self.inner.state.borrow();
        let n = st.segments.len().saturating_sub(1);
        let sealed: Vec<Sealed<S::File>> = st.segments[..n]
            .iter()
            .map(|s| Sealed {
                base: s.base_offset,
                file: s.log.clone(),
                size: s.size,
                max_timestamp: s.max_timestamp,
            })
            .collect();
        let next_bases = st.segments[1..].iter().map(|s| s.base_offset).collect();
        let checkpoint = checkpoint.unwrap_or(0).max(st.log_start_offset);
        let first_dirty = sealed.partition_point(|s| s.base < checkpoint);
        let lag = i64::try_from(config.min_compaction_lag_ms).unwrap_or(i64::MAX);
        // As Kafka: with no lag, timestamps do not matter (a producer's clock may be ahead).
        let young = |s: &Sealed<S::File>| lag > 0 && now.saturating_sub(s.max_timestamp) < lag;
        let end = first_dirty
            + sealed[first_dirty..]
                .iter()
                .take_while(|s| !young(s))
                .count();
        Ok(Plan {
            sealed,
            first_dirty,
            end,
            next_bases,
        })
    }

    /// Whether this log would be cleaned now, and why; `None` when it is not compacted or
    /// holds nothing to clean.
    pub async fn cleanable(&self, now: i64) -> Result<Option<Cleanable>> {
        let config = self.config();
        if !config.cleanup_compact {
            return Ok(None);
        }
        let plan = self.plan(&config, now).await?;
        let size = |r: std::ops::Range<usize>| plan.sealed[r].iter().map(|s| s.size).sum::<u64>();
        let clean_bytes = size(0..plan.first_dirty);
        let dirty_bytes = size(plan.first_dirty..plan.end);
        let max_lag = i64::try_from(config.max_compaction_lag_ms).unwrap_or(i64::MAX);
        let lagging = plan.sealed[plan.first_dirty..plan.end]
            .first()
            .is_some_and(|s| now.saturating_sub(s.max_timestamp) > max_lag);
        let horizon_passed = self.inner.tombstone_due_ms.get().is_some_and(|t| now >= t);
        if dirty_bytes == 0 && !horizon_passed {
            return Ok(None);
        }
        let total = clean_bytes + dirty_bytes;
        let dirty_ratio = if total == 0 {
            0.0
        } else {
            dirty_bytes as f64 / total as f64
        };
        Ok(Some(Cleanable {
            dirty_ratio,
            dirty_bytes,
            overdue: lagging || horizon_passed,
        }))
    }

    /// Cleans the log now (whatever its dirty ratio): see [`crate::storage::clean`].
    /// `map_bytes` bounds the key map. Returns `None` when there was nothing to clean.
    pub async fn clean<P: Pace>(
        &self,
        now: i64,
        map_bytes: u64,
        pace: &P,
    ) -> Result<Option<CleanReport>> {
        let config = self.config();
        if !config.cleanup_compact {
            return Ok(None);
        }
        let plan = self.plan(&config, now).await?;
        let horizon_passed = self.inner.tombstone_due_ms.get().is_some_and(|t| now >= t);
        if plan.first_dirty == plan.end && !horizon_passed {
            return Ok(None);
        }
        let limit = crate::compression::decompressed_limit(config.max_batch_bytes);
        let mut report = CleanReport {
            segments_before: plan.sealed.len(),
            ..CleanReport::default()
        };
        // The key map over the dirty section, a whole segment at a time.
        let mut map = KeyMap::new(map_bytes);
        let mut end = plan.first_dirty;
        'segments: for seg in &plan.sealed[plan.first_dirty..plan.end] {
            let mut scanner = Scanner::new(seg.file.as_ref(), 0, seg.size, false);
            while let Some(b) = scanner.next().await? {
                let bytes = self.read_batch(seg.file.as_ref(), &b, limit).await?;
                report.bytes_read += b.size;
                pace.pace(b.size).await;
                let h = self.check_batch(&bytes)?;
                if h.attributes & ATTR_CONTROL != 0 {
                    continue;
                }
                let recs = records::records_of(&h, &bytes, limit).map_err(|e| self.bad(e))?;
                for r in records::parse(&h, &recs).map_err(|e| self.bad(e))? {
                    let (Some(key), Some(offset)) = (r.key, r.offset(h.base_offset)) else {
                        continue;
                    };
                    if !map.put(key, offset) {
                        if end == plan.first_dirty {
                            // Kafka's answer too: this log needs a larger map.
                            return Err(StorageError::Io(std::io::Error::other(format!(
                                "the keys of segment {} do not fit \
                                 log.cleaner.dedupe.buffer.size ({map_bytes} bytes)",
                                seg.base
                            ))));
                        }
                        break 'segments;
                    }
                }
            }
            end += 1;
        }
        let cleaned_to = if end == 0 {
            plan.sealed.first().map_or(0, |s| s.base)
        } else {
            plan.next_bases[end - 1]
        };
        // Rewrite everything below the end of the mapped section, in groups.
        let mut due: Option<i64> = None;
        let mut i = 0;
        while i < end {
            let first = plan.sealed[i].base;
            let mut j = i + 1;
            let mut bytes = plan.sealed[i].size;
            while j < end
                && bytes + plan.sealed[j].size <= config.segment_bytes
                && plan.next_bases[j] - first <= i64::from(i32::MAX)
            {
                bytes += plan.sealed[j].size;
                j += 1;
            }
            let group_end = plan.next_bases[j - 1];
            let ctx = GroupCtx {
                map: &map,
                now,
                limit,
                delete_retention_ms: config.delete_retention_ms,
            };
            let written = self
                .write_group(&plan.sealed[i..j], &ctx, &mut report, &mut due, pace)
                .await;
            if let Err(e) = written {
                let cleaned = swap::cleaned_path(&self.inner.dir, first);
                let _ = self.inner.storage.remove_file(&cleaned).await;
                return Err(e);
            }
            if !self
                .swap_group(&plan.sealed[i..j], first, group_end, now)
                .await?
            {
                // The log moved under us (retention, close): try again next time.
                return Ok(Some(report));
            }
            i = j;
        }
        swap::write_checkpoint(&self.inner.storage, &self.inner.dir, cleaned_to).await?;
        self.inner.tombstone_due_ms.set(due);
        report.cleaned_to = cleaned_to;
        report.segments_after = self.inner.state.borrow().segments.len().saturating_sub(1);
        self.inner.stats.cleaned(&report);
        Ok(Some(report))
    }

    fn bad(&self, e: records::RecordsError) -> StorageError {
        StorageError::corrupt(&self.inner.dir, e.to_string())
    }

    /// The whole batch `b` found by a scan. Its length comes from the disk: one larger
    /// than any batch the log could have taken (`limit`, the decompression bound) is
    /// damage, not a reason to allocate it.
    async fn read_batch(&self, file: &S::File, b: &BatchPos, limit: usize) -> Result<Vec<u8>> {
        let size = usize::try_from(b.size)
            .ok()
            .filter(|&s| s <= limit)
            .ok_or_else(|| {
                StorageError::corrupt(
                    &self.inner.dir,
                    format!(
                        "cleaner: batch at offset {} claims {} bytes",
                        b.base_offset, b.size
                    ),
                )
            })?;
        let bytes = file.read_at(b.position, size).await?;
        if bytes.len() != size {
            return Err(StorageError::corrupt(
                &self.inner.dir,
                "cleaner: segment ends mid-batch",
            ));
        }
        Ok(bytes)
    }

    fn check_batch(&self, bytes: &[u8]) -> Result<batch::BatchHeader> {
        batch::validate_stored_batch(bytes)
            .map_err(|e| StorageError::corrupt(&self.inner.dir, format!("cleaner: {e}")))
    }

    /// Writes the cleaned records of `group` to `<base>.log.cleaned`, synced.
    async fn write_group<P: Pace>(
        &self,
        group: &[Sealed<S::File>],
        ctx: &GroupCtx<'_>,
        report: &mut CleanReport,
        due: &mut Option<i64>,
        pace: &P,
    ) -> Result<()> {
        let Some(first) = group.first() else {
            return Ok(());
        };
        let storage = &self.inner.storage;
        let path = swap::cleaned_path(&self.inner.dir, first.base);
        let out = storage.open(&path, FileKind::Buffered, true).await?;
        out.truncate(0).await?;
        let mut buf: Vec<u8> = Vec::new();
        let mut pos = 0u64;
        for seg in group {
            let mut scanner = Scanner::new(seg.file.as_ref(), 0, seg.size, false);
            while let Some(b) = scanner.next().await? {
                let bytes = self.read_batch(seg.file.as_ref(), &b, ctx.limit).await?;
                report.bytes_read += b.size;
                let h = self.check_batch(&bytes)?;
                match self.clean_batch(&h, &bytes, ctx, report, due)? {
                    Some(cleaned) => buf.extend_from_slice(&cleaned),
                    None if h.attributes & ATTR_CONTROL != 0 => buf.extend_from_slice(&bytes),
                    None => report.batches_removed += 1,
                }
                if buf.len() >= WRITE_CHUNK_BYTES {
                    let n = buf.len() as u64;
                    out.write_at(pos, &[Bytes::from(std::mem::take(&mut buf))])
                        .await?;
                    pos += n;
                    report.bytes_written += n;
                }
                pace.pace(b.size).await;
            }
        }
        if !buf.is_empty() {
            let n = buf.len() as u64;
            out.write_at(pos, &[Bytes::from(buf)]).await?;
            report.bytes_written += n;
        }
        out.sync_data().await?;
        out.close().await?;
        Ok(())
    }

    /// The batch as it is to be stored: `None` to drop it.
    fn clean_batch(
        &self,
        h: &batch::BatchHeader,
        bytes: &[u8],
        ctx: &GroupCtx<'_>,
        report: &mut CleanReport,
        due: &mut Option<i64>,
    ) -> Result<Option<Vec<u8>>> {
        if h.attributes & ATTR_CONTROL != 0 {
            return Ok(None);
        }
        let recs = records::records_of(h, bytes, ctx.limit).map_err(|e| self.bad(e))?;
        let parsed = records::parse(h, &recs).map_err(|e| self.bad(e))?;
        let horizon = records::delete_horizon(h);
        let mut kept: Vec<&Record<'_>> = Vec::with_capacity(parsed.len());
        for r in &parsed {
            let latest = match (r.key, r.offset(h.base_offset)) {
                (Some(key), Some(offset)) => ctx.map.get(key).is_none_or(|o| offset >= o),
                // Kafka drops records without a key from compacted logs.
                _ => false,
            };
            let expired = r.tombstone && horizon.is_some_and(|t| ctx.now >= t);
            if latest && !expired {
                kept.push(r);
            } else {
                report.records_removed += 1;
                if latest {
                    report.tombstones_removed += 1;
                }
            }
        }
        let has_tombstone = kept.iter().any(|r| r.tombstone);
        let new_horizon = match horizon {
            None if has_tombstone => Some(
                ctx.now
                    .saturating_add(i64::try_from(ctx.delete_retention_ms).unwrap_or(i64::MAX)),
            ),
            _ => None,
        };
        if has_tombstone && let Some(t) = new_horizon.or(horizon) {
            *due = Some(due.map_or(t, |d: i64| d.min(t)));
        }
        if kept.is_empty() {
            let last_of_producer = h.producer_id >= 0
                && self
                    .inner
                    .producers
                    .borrow()
                    .last_batch(h.producer_id)
                    .is_some_and(|(_, meta)| meta.last_offset == h.last_offset());
            if !last_of_producer {
                return Ok(None);
            }
        }
        if kept.len() == parsed.len() && new_horizon.is_none() {
            return Ok(Some(bytes.to_vec()));
        }
        records::encode(h, bytes, &kept, new_horizon)
            .map(Some)
            .map_err(|e| self.bad(e))
    }

    /// Swaps the cleaned file in for `group` if the log still holds those segments;
    /// `false` (and the cleaned file removed) when it does not.
    async fn swap_group(
        &self,
        group: &[Sealed<S::File>],
        base: i64,
        end: i64,
        now: i64,
    ) -> Result<bool> {
        let guard = self.inner.assign_lock.lock().await;
        let (start, still_there) = {
            let st = self.inner.state.borrow();
            let start = st.segments.partition_point(|s| s.base_offset < base);
            let same = !st.closed
                && st.failed.is_none()
                && start + group.len() < st.segments.len()
                && group
                    .iter()
                    .zip(&st.segments[start..])
                    .all(|(g, s)| g.base == s.base_offset && g.size == s.size);
            (start, same)
        };
        let storage = &self.inner.storage;
        let dir = &self.inner.dir;
        if !still_there {
            drop(guard);
            let _ = storage.remove_file(&swap::cleaned_path(dir, base)).await;
            return Ok(false);
        }
        let swapped = async {
            swap::swap_in(storage, dir, base, end).await?;
            let config = self.config();
            let kind = file_kind(config.io);
            let interval = config.index_interval_bytes;
            let mut seg = Segment::open(storage, dir, base, kind, false, now, interval).await?;
            seg.seal();
            seg.rewrite_indexes().await?;
            Ok::<_, StorageError>(seg)
        }
        .await;
        let result = match swapped {
            Ok(seg) => {
                let mut st = self.inner.state.borrow_mut();
                st.segments.splice(start..start + group.len(), [seg]);
                Ok(true)
            }
            Err(StorageError::Io(e)) => {
                // Past the commit point the disk holds the new segment and maybe not all
                // of the old ones: stop the log; a reopen finishes the swap.
                self.fail("cleaner swap", &e);
                Err(StorageError::Io(e))
            }
            Err(e) => Err(e),
        };
        // Cached batches of the replaced segments may sit at positions that now hold
        // others.
        if let Some((cache, id)) = self.inner.cache.borrow().as_ref() {
            cache.borrow_mut().forget_segments(*id, base, end);
        }
        self.inner.notify.notify_all();
        drop(guard);
        result
    }
}

struct GroupCtx<'a> {
    map: &'a KeyMap,
    now: i64,
    limit: usize,
    delete_retention_ms: u64,
}

#[cfg(test)]
#[path = "compact_tests.rs"]
mod tests;

#[cfg(test)]
#[path = "compact_crash_tests.rs"]
mod crash_tests;
