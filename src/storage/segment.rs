//! One segment of a partition log: the `.log` file of whole v2 batches and its two sparse
//! indexes. The scans that walk its batch headers are in `super::scanner`.

use super::error::{Result, StorageError};
use super::index::{OffsetIndex, TIME_ENTRY_BYTES, TimeIndex};
use super::io::{FileKind, Storage, StorageFile, segment_path};
pub use super::scanner::{BatchPos, Scanner};
use crate::protocol::batch::{self, HEADER_BYTES};
use std::path::Path;
use std::rc::Rc;

/// Bytes of a batch header a scan reads: the whole fixed header, so the producer fields are
/// there for rebuilding producer state.
const PEEK_BYTES: usize = HEADER_BYTES;

/// A segment. `size`, `next_offset` and `max_timestamp` cover every batch queued into it,
/// including those the writer has not written yet; the log bounds reads separately.
pub struct Segment<F> {
    pub base_offset: i64,
    /// The partition directory (for the paths in damage reports).
    pub dir: std::path::PathBuf,
    pub log: Rc<F>,
    pub index_file: Rc<F>,
    pub time_file: Rc<F>,
    pub index: OffsetIndex,
    pub time_index: TimeIndex,
    pub size: u64,
    pub next_offset: i64,
    /// Largest batch max timestamp in the segment, -1 when empty.
    pub max_timestamp: i64,
    pub bytes_since_index: u64,
    /// Broker clock when the first batch arrived (or the segment was opened): `segment.ms`.
    pub created_ms: i64,
    /// Set at open when a sealed segment's index or time index claims more than its log
    /// holds: either the log was cut short or the index is damaged. The log tells which
    /// (whether the next segment follows on); the index is rebuilt either way.
    pub index_claim: Option<String>,
}

impl<F: StorageFile> Segment<F> {
    /// Opens (or, with `create_log`, creates) the three files of the segment at
    /// `base_offset`; the indexes are always created if missing. Nothing is read yet.
    async fn open_files<S: Storage<File = F>>(
        storage: &S,
        dir: &Path,
        base_offset: i64,
        kind: FileKind,
        create_log: bool,
        now_ms: i64,
    ) -> Result<Segment<F>> {
        let log = storage
            .open(&segment_path(dir, base_offset, "log"), kind, create_log)
            .await?;
        let index_file = storage
            .open(
                &segment_path(dir, base_offset, "index"),
                FileKind::Buffered,
                true,
            )
            .await?;
        let time_file = storage
            .open(
                &segment_path(dir, base_offset, "timeindex"),
                FileKind::Buffered,
                true,
            )
            .await?;
        Ok(Segment {
            base_offset,
            dir: dir.to_path_buf(),
            log: Rc::new(log),
            index_file: Rc::new(index_file),
            time_file: Rc::new(time_file),
            index: OffsetIndex::default(),
            time_index: TimeIndex::default(),
            size: 0,
            next_offset: base_offset,
            max_timestamp: -1,
            bytes_since_index: 0,
            created_ms: now_ms,
            index_claim: None,
        })
    }

    /// Creates the files of a new, empty segment.
    pub async fn create<S: Storage<File = F>>(
        storage: &S,
        dir: &Path,
        base_offset: i64,
        kind: FileKind,
        now_ms: i64,
    ) -> Result<Segment<F>> {
        let seg = Segment::open_files(storage, dir, base_offset, kind, true, now_ms).await?;
        if !seg.log.is_empty() {
            // A leftover of an earlier life at this base offset (e.g. a crash right after
            // retention emptied the log): it holds nothing the log still counts.
            seg.log.truncate(0).await?;
        }
        seg.index_file.truncate(0).await?;
        seg.time_file.truncate(0).await?;
        Ok(seg)
    }

    /// Opens an existing segment. `tail` segments get every batch after the last index
    /// entry verified (length, magic, CRC) and are truncated at the first torn or corrupt
    /// batch; damaged or missing indexes are rebuilt from the log.
    pub async fn open<S: Storage<File = F>>(
        storage: &S,
        dir: &Path,
        base_offset: i64,
        kind: FileKind,
        tail: bool,
        now_ms: i64,
        index_interval_bytes: u64,
    ) -> Result<Segment<F>> {
        let mut seg = Segment::open_files(storage, dir, base_offset, kind, false, now_ms).await?;
        seg.recover(tail, index_interval_bytes).await?;
        Ok(seg)
    }

    /// Loads the index files. `Ok(false)` when they are missing or unusable (they are
    /// rebuilt from the log); for a sealed segment, an entry that points past the end of
    /// the log is also noted in `index_claim`.
    async fn load_indexes(&mut self, sealed: bool) -> Result<bool> {
        let file_len = self.log.len();
        let raw = self
            .index_file
            .read_at(0, self.index_file.len() as usize)
            .await?;
        let Some(index) = OffsetIndex::decode(&raw) else {
            return Ok(false);
        };
        let raw = self
            .time_file
            .read_at(0, self.time_file.len() as usize)
            .await?;
        let Some(time_index) = TimeIndex::decode(&raw) else {
            return Ok(false);
        };
        // Every entry must point inside the log, at a batch with the indexed offset.
        if let Some((rel, pos)) = index.last() {
            if pos as u64 + PEEK_BYTES as u64 > file_len {
                if sealed {
                    self.index_claim = Some(format!(
                        "{}: the entry for offset {} points at position {pos}, past the end \
                         of the segment's {file_len} bytes",
                        self.path("index").display(),
                        self.base_offset.saturating_add(i64::from(rel))
                    ));
                }
                return Ok(false);
            }
            let h = self.log.read_at(pos as u64, PEEK_BYTES).await?;
            match batch::peek_offset_and_size(&h) {
                Some((base, _)) if base == self.base_offset + rel as i64 => {}
                _ => return Ok(false),
            }
        }
        self.index = index;
        self.time_index = time_index;
        Ok(true)
    }

    /// The path of one of the segment's files (`log`, `index`, `timeindex`).
    pub fn path(&self, ext: &str) -> std::path::PathBuf {
        segment_path(&self.dir, self.base_offset, ext)
    }

    /// Whether `[from, file_len)` is the zero padding of a direct-IO segment's last page:
    /// closing a segment trims it, but a crash may keep the size from before the trim.
    async fn is_padding(&self, from: u64, file_len: u64) -> Result<bool> {
        const PAGE: u64 = 4096;
        if file_len - from >= PAGE || !file_len.is_multiple_of(PAGE) {
            return Ok(false);
        }
        let rest = self.log.read_at(from, (file_len - from) as usize).await?;
        Ok(rest.len() as u64 == file_len - from && rest.iter().all(|&b| b == 0))
    }

    async fn recover(&mut self, tail: bool, index_interval_bytes: u64) -> Result<()> {
        let file_len = self.log.len();
        if !self.load_indexes(!tail).await? {
            tracing::warn!(
                segment = self.base_offset,
                "rebuilding damaged or missing index"
            );
            self.index = OffsetIndex::default();
            self.time_index = TimeIndex::default();
        }
        // What the time index says the segment held when it was sealed.
        let sealed_end = self
            .time_index
            .entries()
            .last()
            .map(|&(_, rel)| self.base_offset.saturating_add(i64::from(rel)));
        // Scan what the index does not cover. For the tail segment every batch is verified
        // (length, magic, CRC) and the log ends at the first one that fails.
        let (start_rel, start_pos) = self.index.last().unwrap_or((0, 0));
        self.next_offset = self.base_offset.saturating_add(i64::from(start_rel));
        self.size = start_pos as u64;
        self.max_timestamp = self.time_index.entries().last().map_or(-1, |&(t, _)| t);
        let mut stopped = self
            .scan(
                start_pos as u64,
                file_len,
                tail,
                !tail,
                index_interval_bytes,
            )
            .await?;
        let mut valid_end = self.size;
        self.index.truncate_to_position(valid_end);
        let next_rel = (self.next_offset - self.base_offset) as u32;
        self.time_index
            .truncate_to_offset(next_rel.saturating_add(1));
        let sealed = self
            .time_index
            .entries()
            .last()
            .is_some_and(|&(_, rel)| self.base_offset + rel as i64 == self.next_offset);
        if !sealed && start_pos > 0 {
            // The time index does not record the segment's largest timestamp (an unclean
            // shutdown): rebuild both indexes from the headers of the whole segment.
            self.index = OffsetIndex::default();
            self.time_index = TimeIndex::default();
            self.size = 0;
            self.next_offset = self.base_offset;
            self.max_timestamp = -1;
            self.bytes_since_index = 0;
            if let Some(why) = self
                .scan(0, valid_end, false, !tail, index_interval_bytes)
                .await?
            {
                stopped = Some(why);
            }
            valid_end = self.size;
        }
        // A sealed segment was fsynced whole when it was rolled: bytes after its last
        // readable batch are damage, not a torn write. They are reported, not cut (the
        // CRC of every batch is checked by the walk that rebuilds the producer state).
        if !tail && valid_end < file_len && !self.is_padding(valid_end, file_len).await? {
            return Err(StorageError::corrupt(
                &self.path("log"),
                format!(
                    "sealed segment is damaged at position {valid_end} (after offset {}): {}; \
                     {} bytes follow that are not readable batches",
                    self.next_offset.saturating_sub(1),
                    stopped.unwrap_or_else(|| "unreadable data".into()),
                    file_len - valid_end
                ),
            ));
        }
        if !tail
            && let Some(sealed_end) = sealed_end
            && sealed_end > self.next_offset
        {
            self.index_claim = Some(format!(
                "{}: says the segment was sealed at offset {sealed_end}, but its batches end \
                 at offset {}",
                self.path("timeindex").display(),
                self.next_offset
            ));
        }
        if valid_end < file_len {
            tracing::warn!(
                segment = self.base_offset,
                valid_end,
                file_len,
                "truncating torn or corrupt tail of segment"
            );
            self.log.truncate(valid_end).await?;
        }
        if self.index_claim.is_some() {
            // Left as it is until the log's open decides whether the log or the index is
            // damaged (`PartitionLog::open` rewrites it, or reports the damage).
            return Ok(());
        }
        self.rewrite_indexes().await
    }

    /// Indexes the batches from `from` (where `self.size` and `self.next_offset` are) up to
    /// `end`, stopping at the first that is malformed (or, with `verify`, fails its CRC)
    /// or does not continue the offsets: the broker assigns them without gaps from the
    /// segment's base on, so a batch with another base offset is damaged (the CRC does
    /// not cover it), and a gap or a jump would leave offsets no read can reach. Sealed
    /// segments (`gaps`) may have been compacted: there, offsets only have to increase.
    async fn scan(
        &mut self,
        from: u64,
        end: u64,
        verify: bool,
        gaps: bool,
        interval: u64,
    ) -> Result<Option<String>> {
        let log = self.log.clone();
        let mut scanner = Scanner::new(log.as_ref(), from, end, verify);
        while let Some(b) = scanner.next().await? {
            let in_order = if gaps {
                b.base_offset >= self.next_offset
            } else {
                b.base_offset == self.next_offset
            };
            if !in_order || b.last_offset - self.base_offset > i32::MAX as i64 {
                return Ok(Some(format!(
                    "the batch at position {} has base offset {}, after offset {}",
                    b.position,
                    b.base_offset,
                    self.next_offset.saturating_sub(1)
                )));
            }
            let (pos, size, max_ts) = (b.position, b.size, b.max_timestamp);
            self.index_batch(pos, b.base_offset, b.last_offset, size, max_ts, interval);
        }
        Ok(scanner.stopped)
    }

    /// Accounts a batch appended at `position` and adds index entries by Kafka's rule:
    /// an entry goes before a batch once `index_interval_bytes` were appended since the
    /// last one. The time entry added with it holds the largest timestamp before the batch.
    pub fn index_batch(
        &mut self,
        position: u64,
        base_offset: i64,
        last_offset: i64,
        size: u64,
        max_timestamp: i64,
        index_interval_bytes: u64,
    ) {
        debug_assert_eq!(position, self.size);
        let rel = (base_offset - self.base_offset) as u32;
        let after_last = self.index.last().is_none_or(|(r, _)| rel > r);
        if position > 0 && after_last && self.bytes_since_index >= index_interval_bytes {
            self.index.push(rel, position as u32);
            if self.max_timestamp >= 0 {
                self.time_index.maybe_push(self.max_timestamp, rel);
            }
            self.bytes_since_index = 0;
        }
        self.bytes_since_index += size;
        self.max_timestamp = self.max_timestamp.max(max_timestamp);
        self.size = position + size;
        self.next_offset = last_offset + 1;
    }

    /// Records the segment's largest timestamp as the last time index entry, so a reopen
    /// knows it without scanning. Called when the segment is rolled or the log closed.
    pub fn seal(&mut self) {
        if self.next_offset > self.base_offset && self.max_timestamp >= 0 {
            let rel = (self.next_offset - self.base_offset) as u32;
            self.time_index.seal(self.max_timestamp, rel);
        }
    }

    /// Truncates index files to the in-memory entries and writes what is missing.
    pub async fn rewrite_indexes(&mut self) -> Result<()> {
        let want = (self.index.len() * 8) as u64;
        let persisted_ok = self.index_file.len() == want;
        if !persisted_ok {
            self.index_file.truncate(0).await?;
            self.index.mark_persisted(0);
        }
        let want_t = (self.time_index.len() * TIME_ENTRY_BYTES) as u64;
        if self.time_file.len() != want_t {
            self.time_file.truncate(0).await?;
            self.time_index.mark_persisted(0);
        }
        self.persist_indexes().await
    }

    /// Writes index entries not yet in the files.
    pub async fn persist_indexes(&mut self) -> Result<()> {
        for job in self.index_jobs(u64::MAX, i64::MAX) {
            job.run().await?;
        }
        Ok(())
    }

    /// Takes the index entries not yet in the files that describe bytes below
    /// `written_pos` / offsets below `written_offset`, and marks them persisted. The caller
    /// runs the jobs (without holding any borrow of the segment across the writes).
    pub fn index_jobs(&mut self, written_pos: u64, written_offset: i64) -> Vec<IndexJob<F>> {
        let mut jobs = Vec::new();
        if let Some((pos, bytes, n)) = self.index.unpersisted_below(written_pos) {
            self.index.mark_persisted(n);
            jobs.push(IndexJob {
                file: self.index_file.clone(),
                position: pos,
                bytes,
            });
        }
        let rel = (written_offset - self.base_offset).clamp(0, u32::MAX as i64) as u32;
        if let Some((pos, bytes, n)) = self.time_index.unpersisted_upto(rel) {
            self.time_index.mark_persisted(n);
            jobs.push(IndexJob {
                file: self.time_file.clone(),
                position: pos,
                bytes,
            });
        }
        jobs
    }
}

/// A pending write of index entries.
pub struct IndexJob<F> {
    file: Rc<F>,
    position: u64,
    bytes: Vec<u8>,
}

impl<F: StorageFile> IndexJob<F> {
    pub async fn run(self) -> Result<()> {
        self.file
            .write_at(self.position, &[self.bytes.into()])
            .await?;
        Ok(())
    }

    pub async fn run_and_sync(self) -> Result<()> {
        self.file
            .write_at(self.position, &[self.bytes.into()])
            .await?;
        self.file.sync_data().await?;
        Ok(())
    }
}
