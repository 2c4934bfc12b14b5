//! The scans of a segment file that recovery, reads and the cleaner use to walk batch
//! headers.

use super::error::Result;
use super::io::StorageFile;
use crate::protocol::batch::{self, HEADER_BYTES, LOG_OVERHEAD};

/// Bytes of a batch header a scan reads: the whole fixed header, so the producer fields are
/// there for rebuilding producer state.
const PEEK_BYTES: usize = HEADER_BYTES;

/// The header fields of a batch found by a scan, with its position in the file.
#[derive(Debug, Clone, Copy)]
pub struct BatchPos {
    pub position: u64,
    pub base_offset: i64,
    pub last_offset: i64,
    pub size: u64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    /// The epoch of the leader that appended the batch (-1 when none stamped it).
    pub leader_epoch: i32,
    /// The header's record count (0 if negative: only counted, never trusted).
    pub records: u64,
    pub attributes: i16,
    /// A control batch's record type (commit or abort marker; see
    /// [`batch::control_type`]), `None` for data batches.
    pub control: Option<i16>,
}

impl BatchPos {
    pub fn is_transactional(&self) -> bool {
        self.attributes & batch::ATTR_TRANSACTIONAL != 0
    }
}

impl BatchPos {
    pub fn end(&self) -> u64 {
        self.position + self.size
    }
}

/// Walks batch headers of `file` from `position` up to `end`, reading in chunks so small
/// batches cost few reads and large ones cost one small read each. Stops at the first
/// header that is cut off or malformed (length, magic); `verify` also reads each whole
/// batch and checks its CRC. Returns the batches and where the walk stopped.
pub struct Scanner<'a, F: StorageFile> {
    file: &'a F,
    pub position: u64,
    end: u64,
    verify: bool,
    chunk: Vec<u8>,
    chunk_pos: u64,
    small_batches: bool,
    /// Why the walk stopped before `end`, when it met data that is not a valid batch.
    pub stopped: Option<String>,
}

impl<'a, F: StorageFile> Scanner<'a, F> {
    pub fn new(file: &'a F, position: u64, end: u64, verify: bool) -> Self {
        Scanner {
            file,
            position,
            end,
            verify,
            chunk: Vec::new(),
            chunk_pos: 0,
            small_batches: true,
            stopped: None,
        }
    }

    fn stop(&mut self, why: String) -> Result<Option<BatchPos>> {
        self.stopped = Some(why);
        Ok(None)
    }

    async fn bytes_at(&mut self, pos: u64, len: usize) -> Result<Option<&[u8]>> {
        if pos + len as u64 > self.end {
            return Ok(None);
        }
        let have =
            pos >= self.chunk_pos && pos + len as u64 <= self.chunk_pos + self.chunk.len() as u64;
        if !have {
            let want = if self.small_batches {
                32 * 1024
            } else {
                PEEK_BYTES
            };
            let want = (want.max(len) as u64).min(self.end - pos) as usize;
            self.chunk = self.file.read_at(pos, want).await?;
            self.chunk_pos = pos;
            if self.chunk.len() < len {
                return Ok(None);
            }
        }
        let at = (pos - self.chunk_pos) as usize;
        Ok(Some(&self.chunk[at..at + len]))
    }

    /// The next valid batch, or `None` at the end or at the first invalid batch (then
    /// `self.position` is where the valid log ends and `self.stopped` says what was wrong).
    pub async fn next(&mut self) -> Result<Option<BatchPos>> {
        let pos = self.position;
        if pos >= self.end {
            return Ok(None);
        }
        let Some(h) = self.bytes_at(pos, PEEK_BYTES).await? else {
            let left = self.end - pos;
            return self.stop(format!(
                "{left} bytes at the end are too few for a batch header"
            ));
        };
        let header = match batch::BatchHeader::parse(h) {
            Ok(header) => header,
            Err(e) => return self.stop(e.to_string()),
        };
        let batch::BatchHeader {
            base_offset,
            length,
            magic,
            last_offset_delta,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            record_count,
            partition_leader_epoch,
            attributes,
            ..
        } = header;
        if length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
            return self.stop(format!("batch length {length} is too small"));
        }
        if magic != 2 {
            return self.stop(format!("batch magic {magic} is not 2"));
        }
        if last_offset_delta < 0 || base_offset < 0 {
            return self.stop(format!(
                "batch base offset {base_offset} / last offset delta {last_offset_delta} \
                 is negative"
            ));
        }
        // The base offset is not covered by the CRC: a damaged one may be anything.
        let Some(last_offset) = base_offset
            .checked_add(i64::from(last_offset_delta))
            .filter(|&l| l < i64::MAX)
        else {
            return self.stop(format!("batch base offset {base_offset} overflows"));
        };
        let size = length as u64 + LOG_OVERHEAD as u64;
        if pos + size > self.end {
            let left = self.end - pos;
            return self.stop(format!(
                "batch of {size} bytes (offset {base_offset}) is cut off: {left} bytes left"
            ));
        }
        if self.verify {
            let in_chunk =
                pos >= self.chunk_pos && pos + size <= self.chunk_pos + self.chunk.len() as u64;
            let checked = if in_chunk {
                let at = (pos - self.chunk_pos) as usize;
                batch::validate_stored_batch(&self.chunk[at..at + size as usize]).map(|_| ())
            } else {
                let whole = self.file.read_at(pos, size as usize).await?;
                if whole.len() as u64 != size {
                    return self.stop(format!(
                        "batch of {size} bytes (offset {base_offset}) is cut off by the end of \
                         the file"
                    ));
                }
                batch::validate_stored_batch(&whole).map(|_| ())
            };
            if let Err(e) = checked {
                return self.stop(format!("batch at offset {base_offset}: {e}"));
            }
        }
        // A marker's type is in its first record, just past the header.
        let control = if attributes & batch::ATTR_CONTROL != 0 {
            let len = (size as usize).min(HEADER_BYTES + 32);
            match self.bytes_at(pos, len).await? {
                Some(b) => Some(batch::control_type(b).unwrap_or(-1)),
                None => Some(-1),
            }
        } else {
            None
        };
        self.small_batches = size < 4096;
        self.position = pos + size;
        Ok(Some(BatchPos {
            position: pos,
            base_offset,
            last_offset,
            size,
            max_timestamp,
            producer_id,
            producer_epoch,
            base_sequence,
            leader_epoch: partition_leader_epoch,
            records: u64::try_from(record_count).unwrap_or(0),
            attributes,
            control,
        }))
    }
}
