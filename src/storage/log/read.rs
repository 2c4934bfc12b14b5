//! Reads: whole batches from the segment holding an offset (from the batch cache when it
//! holds them), the lookup of the first record at or after a timestamp, and of the record
//! with the largest timestamp.

use super::PartitionLog;
use crate::compression::Codec;
use crate::protocol::batch;
use crate::storage::error::{Result, StorageError};
use crate::storage::io::{Storage, StorageFile};
use crate::storage::segment::Scanner;
use bytes::Bytes;
use std::io;
use std::os::fd::RawFd;
use std::rc::Rc;

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

    /// See [`StorageFile::send_pin`].
    pub fn send_pin(&self) -> Option<crate::storage::release::Pin> {
        self.file.send_pin()
    }
}

/// The answer to a read: whole batches, and the log's bounds at the time of the read.
pub struct ReadSlice<F> {
    pub regions: Vec<FileRegion<F>>,
    /// Records in the batches of `regions`, by their headers' counts (for metrics).
    pub records: u64,
    /// The offset after the last batch returned (the read's offset when none is).
    pub end_offset: i64,
    pub high_watermark: i64,
    pub log_start_offset: i64,
}

impl<F> ReadSlice<F> {
    pub fn bytes(&self) -> u64 {
        self.regions.iter().map(|r| r.len).sum()
    }
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
/// returns the region a read of `offset` answers with: `Some(Some((position, len,
/// records, last offset)))`,
/// `Some(None)` when no batch reaches `offset`, `None` when the bytes are not whole
/// batches (the caller then reads the file).
fn scan_memory(
    chunks: &[Bytes],
    pos: u64,
    offset: i64,
    max_bytes: u64,
    upto: i64,
) -> Option<Option<(u64, u64, u64, i64)>> {
    let mut at = pos;
    let mut first: Option<u64> = None;
    let mut region_end = 0u64;
    let mut records = 0u64;
    let mut region_last = -1i64;
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
            if base >= upto {
                break;
            }
            let last = base + delta as i64;
            let end = at + size as u64;
            // The batch is whole (its size was checked), so its header is too.
            let count = rest
                .get(57..61)
                .map_or(0, |c| i32::from_be_bytes([c[0], c[1], c[2], c[3]]));
            let count = u64::try_from(count).unwrap_or(0);
            match first {
                None if last < offset => {}
                None => {
                    first = Some(at);
                    region_end = end;
                    records = count;
                    region_last = last;
                }
                Some(start) => {
                    if end - start > max_bytes {
                        return Some(Some((start, region_end - start, records, region_last)));
                    }
                    region_end = end;
                    records = records.saturating_add(count);
                    region_last = last;
                }
            }
            at = end;
            i += size;
        }
    }
    Some(first.map(|start| (start, region_end - start, records, region_last)))
}

/// How far a read may go.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Bound {
    /// The log end (a follower).
    LogEnd,
    /// The high watermark (a read_uncommitted consumer).
    HighWatermark,
    /// The last stable offset (a read_committed consumer).
    LastStable,
}

impl<S: Storage> PartitionLog<S> {
    /// Whole batches starting with the one that contains `offset`, up to `max_bytes`
    /// (at least one batch, however large, so a consumer never stalls), from one segment.
    pub async fn read(&self, offset: i64, max_bytes: u64) -> Result<ReadSlice<S::File>> {
        self.read_below(offset, max_bytes, Bound::HighWatermark)
            .await
    }

    /// As [`PartitionLog::read`] for a `read_committed` consumer: only below the last
    /// stable offset (no batch of an open transaction).
    pub async fn read_committed(&self, offset: i64, max_bytes: u64) -> Result<ReadSlice<S::File>> {
        self.read_below(offset, max_bytes, Bound::LastStable).await
    }

    /// As [`PartitionLog::read`] for a follower replica: up to this copy's own end, past
    /// the high watermark (the follower's fetch is what moves it).
    pub async fn read_for_replica(
        &self,
        offset: i64,
        max_bytes: u64,
    ) -> Result<ReadSlice<S::File>> {
        self.read_below(offset, max_bytes, Bound::LogEnd).await
    }

    async fn read_below(
        &self,
        offset: i64,
        max_bytes: u64,
        bound: Bound,
    ) -> Result<ReadSlice<S::File>> {
        // A consumer may stand between the high watermark and the log end (a new leader's
        // high watermark can lag its predecessor's for a moment): it reads nothing there,
        // as in Kafka, rather than being told its offset is out of range.
        let (end, hw, start) = {
            let st = self.inner.state.borrow();
            let end = self.visible(&st).1;
            let hw = match bound {
                Bound::LogEnd => end,
                Bound::HighWatermark => self.bounded(end),
                Bound::LastStable => {
                    let hw = self.bounded(end);
                    self.inner
                        .txns
                        .borrow()
                        .first_unstable()
                        .map_or(hw, |first| first.min(hw))
                }
            };
            (end, hw, st.log_start_offset)
        };
        if offset < start || offset > end {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                high_watermark: hw,
            });
        }
        let mut slice = ReadSlice {
            regions: Vec::new(),
            records: 0,
            end_offset: offset,
            high_watermark: hw,
            log_start_offset: start,
        };
        if offset >= hw {
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
                scan_memory(&chunks, pos, offset, max_bytes, hw).map(|found| (found, chunks))
            });
            if let Some((found, chunks)) = in_memory {
                if let Some((start_pos, len, records, last)) = found {
                    slice.records = records;
                    slice.end_offset = last.saturating_add(1);
                    let cached = crate::storage::chunk::slice_chunks(&chunks, start_pos - pos, len);
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
            let mut records = 0u64;
            let mut region_last = -1i64;
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
                if b.base_offset >= hw {
                    break;
                }
                match first {
                    None if b.last_offset < offset => continue,
                    None => {
                        first = Some(b.position);
                        region_end = b.end();
                        records = b.records;
                        region_last = b.last_offset;
                    }
                    Some(start_pos) => {
                        if b.end() - start_pos > max_bytes {
                            break;
                        }
                        region_end = b.end();
                        records = records.saturating_add(b.records);
                        region_last = b.last_offset;
                    }
                }
            }
            if let Some(start_pos) = first {
                slice.records = records;
                slice.end_offset = region_last.saturating_add(1);
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

    /// The record with the largest timestamp among the visible records at or after the log
    /// start: `(offset, timestamp)`, the first such record when several share it (as
    /// ListOffsets' MAX_TIMESTAMP answers, KIP-734); `None` for an empty log.
    pub async fn max_timestamp_offset(&self) -> Result<Option<(i64, i64)>> {
        let max = {
            let st = self.inner.state.borrow();
            st.segments
                .iter()
                .map(|s| s.max_timestamp)
                .max()
                .unwrap_or(-1)
        };
        if max < 0 {
            return Ok(None);
        }
        // Usually the largest timestamp of any segment is visible and above the log start:
        // the first record that reaches it is the answer.
        if let Some(hit) = self.offset_for_timestamp(max).await? {
            return Ok(Some(hit));
        }
        // It is in a batch not visible yet, or below the log start: scan what is visible.
        let mut best: Option<(i64, i64)> = None;
        let mut best_ts = -1;
        let segments: Vec<(Rc<S::File>, u64)> = {
            let st = self.inner.state.borrow();
            let (vis_pos, _) = self.visible(&st);
            let n = st.segments.len();
            st.segments
                .iter()
                .enumerate()
                .map(|(i, s)| (s.log.clone(), if i + 1 == n { vis_pos } else { s.size }))
                .collect()
        };
        let log_start = self.log_start_offset();
        for (file, end) in segments {
            let mut scanner = Scanner::new(file.as_ref(), 0, end, false);
            while let Some(b) = scanner.next().await? {
                if b.last_offset >= log_start && b.max_timestamp > best_ts {
                    best_ts = b.max_timestamp;
                    best = Some((b.base_offset.max(log_start), b.max_timestamp));
                }
            }
        }
        if best_ts < 0 {
            return Ok(best);
        }
        // The first record of the log that reaches the largest visible timestamp.
        Ok(self.offset_for_timestamp(best_ts).await?.or(best))
    }
}
