//! The bytes on disk, and the scan that reads a log file back.
//!
//! A file is a sequence of frames; one frame is one write:
//!
//! ```text
//! frame  := body_len u32 | body_crc u32 | header_crc u32 | body      (little endian)
//! body   := record+                    body_crc = crc32c(body), header_crc = crc32c(first 8 bytes)
//! record := kind u8 | len u32 | payload
//! ```
//!
//! The header has its own CRC so the scan past a damaged frame (below) can test every byte
//! position cheaply, and a header of zeros never passes. Every number read here is
//! untrusted: lengths are bounded before anything is sized by them.

use super::RaftStoreError;
use super::state::{LiveEntry, LogState};
use crate::storage::StorageFile;
use bytes::Bytes;
use protobuf::Message;
use raft::eraftpb::{Entry, HardState};
use std::io;

pub(super) const FRAME_HEADER: usize = 12;
pub(super) const RECORD_HEADER: usize = 5;

/// First record of a log file, alone in the first frame: magic, version and `initial_len`.
pub(super) const KIND_FILE_HEADER: u8 = 1;
/// A raft-rs `Entry` (protobuf).
pub(super) const KIND_ENTRY: u8 = 2;
/// A raft-rs `HardState` (protobuf); the last one wins.
pub(super) const KIND_HARD_STATE: u8 = 3;
/// `index u64 | term u64`: the log continues after this snapshot (`LogState::set_base`).
pub(super) const KIND_BASE: u8 = 4;
/// A raft-rs `Snapshot` (protobuf), the only record of a snapshot file.
pub(super) const KIND_SNAPSHOT: u8 = 5;

const MAGIC: [u8; 8] = *b"ringraft";
const VERSION: u32 = 1;
const FILE_HEADER_PAYLOAD: usize = 8 + 4 + 8;
/// The first frame of a log file.
pub(super) const HEADER_FRAME_BYTES: usize = FRAME_HEADER + RECORD_HEADER + FILE_HEADER_PAYLOAD;

/// Bytes read from a file at once while scanning it.
const READ_WINDOW: usize = 1 << 20;

fn u32_at(b: &[u8], at: usize) -> Option<u32> {
    let s = b.get(at..at.checked_add(4)?)?;
    Some(u32::from_le_bytes(s.try_into().ok()?))
}

fn u64_at(b: &[u8], at: usize) -> Option<u64> {
    let s = b.get(at..at.checked_add(8)?)?;
    Some(u64::from_le_bytes(s.try_into().ok()?))
}

/// Builds frames of at most `body_max` body bytes from records; a record never spans two.
pub(super) struct Frames {
    body_max: usize,
    body: Vec<u8>,
    done: Vec<Bytes>,
}

impl Frames {
    pub fn new(body_max: usize) -> Frames {
        Frames {
            body_max,
            body: Vec::new(),
            done: Vec::new(),
        }
    }

    pub fn push(&mut self, kind: u8, payload: &[u8]) -> Result<(), RaftStoreError> {
        let too_large = || RaftStoreError::TooLarge {
            bytes: payload.len() as u64,
            max: self.body_max as u64,
        };
        let need = payload
            .len()
            .checked_add(RECORD_HEADER)
            .filter(|n| *n <= self.body_max)
            .ok_or_else(too_large)?;
        let len = u32::try_from(payload.len()).map_err(|_| too_large())?;
        if self.body.len().saturating_add(need) > self.body_max {
            self.seal()?;
        }
        self.body.push(kind);
        self.body.extend_from_slice(&len.to_le_bytes());
        self.body.extend_from_slice(payload);
        Ok(())
    }

    /// Ends the current frame: the next record starts a new one.
    pub fn seal(&mut self) -> Result<(), RaftStoreError> {
        if self.body.is_empty() {
            return Ok(());
        }
        let body_len = u32::try_from(self.body.len()).map_err(|_| RaftStoreError::TooLarge {
            bytes: self.body.len() as u64,
            max: u64::from(u32::MAX),
        })?;
        let mut out = Vec::with_capacity(FRAME_HEADER.saturating_add(self.body.len()));
        out.extend_from_slice(&body_len.to_le_bytes());
        out.extend_from_slice(&crc32c::crc32c(&self.body).to_le_bytes());
        let header_crc = crc32c::crc32c(&out);
        out.extend_from_slice(&header_crc.to_le_bytes());
        out.append(&mut self.body);
        self.done.push(Bytes::from(out));
        Ok(())
    }

    pub fn finish(mut self) -> Result<Vec<Bytes>, RaftStoreError> {
        self.seal()?;
        Ok(self.done)
    }
}

/// The first frame of a log file whose first `initial_len` bytes are written and synced
/// before the file gets its name: no crash can tear them.
pub(super) fn header_frame(initial_len: u64) -> Result<Bytes, RaftStoreError> {
    let mut payload = Vec::with_capacity(FILE_HEADER_PAYLOAD);
    payload.extend_from_slice(&MAGIC);
    payload.extend_from_slice(&VERSION.to_le_bytes());
    payload.extend_from_slice(&initial_len.to_le_bytes());
    let mut f = Frames::new(FILE_HEADER_PAYLOAD + RECORD_HEADER);
    f.push(KIND_FILE_HEADER, &payload)?;
    let mut out = f.finish()?;
    out.pop()
        .ok_or_else(|| RaftStoreError::Corrupt("no header frame".into()))
}

pub(super) fn base_payload(index: u64, term: u64) -> [u8; 16] {
    let mut p = [0u8; 16];
    p[..8].copy_from_slice(&index.to_le_bytes());
    p[8..].copy_from_slice(&term.to_le_bytes());
    p
}

/// `(body_len, body_crc)` of a frame header whose own CRC holds and whose length is in
/// `1..=body_max`.
fn parse_header(h: &[u8], body_max: usize) -> Option<(usize, u32)> {
    let len = u32_at(h, 0)?;
    let body_crc = u32_at(h, 4)?;
    let header_crc = u32_at(h, 8)?;
    if crc32c::crc32c(h.get(..8)?) != header_crc {
        return None;
    }
    let len = usize::try_from(len)
        .ok()
        .filter(|n| (1..=body_max).contains(n))?;
    Some((len, body_crc))
}

/// The body of `bytes` if it is exactly one whole, valid frame (a snapshot file).
pub(super) fn whole_frame(bytes: &[u8], body_max: usize) -> Option<&[u8]> {
    let (len, crc) = parse_header(bytes.get(..FRAME_HEADER)?, body_max)?;
    let body = bytes.get(FRAME_HEADER..)?;
    (body.len() == len && crc32c::crc32c(body) == crc).then_some(body)
}

/// The records of a body: `(kind, payload)`, or what is wrong with the framing.
pub(super) fn records(body: &[u8]) -> Result<Vec<(u8, &[u8])>, String> {
    let mut out = Vec::new();
    let mut at = 0usize;
    while at < body.len() {
        let kind = body[at];
        let len = u32_at(body, at.saturating_add(1))
            .and_then(|n| usize::try_from(n).ok())
            .ok_or_else(|| format!("record header cut at {at}"))?;
        let start = at.saturating_add(RECORD_HEADER);
        let payload = start
            .checked_add(len)
            .and_then(|end| body.get(start..end))
            .ok_or_else(|| format!("record at {at} of {len} bytes overruns its frame"))?;
        out.push((kind, payload));
        at = start.saturating_add(len);
    }
    Ok(out)
}

/// Reads a file through a window, so a scan makes few reads and never holds the file.
struct Reader<'a, F> {
    file: &'a F,
    len: u64,
    start: u64,
    buf: Vec<u8>,
}

impl<F: StorageFile> Reader<'_, F> {
    /// Up to `n` bytes at `pos` (fewer only at end of file).
    async fn get(&mut self, pos: u64, n: usize) -> io::Result<&[u8]> {
        let end = pos.saturating_add(n as u64).min(self.len);
        let have = self.start.saturating_add(self.buf.len() as u64);
        if pos < self.start || end > have {
            let want = n.max(READ_WINDOW);
            self.buf = self.file.read_at(pos, want).await?;
            self.start = pos;
        }
        let from = usize::try_from(pos.saturating_sub(self.start)).unwrap_or(usize::MAX);
        let to = usize::try_from(end.saturating_sub(self.start)).unwrap_or(usize::MAX);
        Ok(self.buf.get(from..to).unwrap_or(&[]))
    }

    /// The body of the frame at `pos` and where the frame ends, if it is whole and valid.
    async fn frame(&mut self, pos: u64, body_max: usize) -> io::Result<Option<(Vec<u8>, u64)>> {
        let Some((len, crc)) = parse_header(self.get(pos, FRAME_HEADER).await?, body_max) else {
            return Ok(None);
        };
        let start = pos.saturating_add(FRAME_HEADER as u64);
        let end = start.saturating_add(len as u64);
        if end > self.len {
            return Ok(None);
        }
        let body = self.get(start, len).await?;
        if body.len() != len || crc32c::crc32c(body) != crc {
            return Ok(None);
        }
        Ok(Some((body.to_vec(), end)))
    }

    /// The first position in `from..len` where a whole, valid frame starts.
    async fn next_valid_frame(&mut self, from: u64, body_max: usize) -> io::Result<Option<u64>> {
        let mut pos = from;
        while pos.saturating_add(FRAME_HEADER as u64) <= self.len {
            let header_ok = parse_header(self.get(pos, FRAME_HEADER).await?, body_max).is_some();
            if header_ok && self.frame(pos, body_max).await?.is_some() {
                return Ok(Some(pos));
            }
            pos = pos.saturating_add(1);
        }
        Ok(None)
    }
}

/// What the scan of a log file found.
pub(super) struct Replayed {
    pub state: LogState,
    /// The end of the last valid frame: a torn tail after it is to be cut off.
    pub valid_len: u64,
}

/// Replays a log file. A save is one frame written and synced before the next one starts,
/// so a crash can damage only the last frame: a damaged frame with nothing valid after it
/// is a torn tail and the scan stops there. A damaged frame followed by a valid one, or
/// damage inside the file's initial part (synced before the file was named), is not a
/// torn write: the file is corrupt.
pub(super) async fn replay<F: StorageFile>(
    file: &F,
    body_max: usize,
) -> Result<Replayed, RaftStoreError> {
    let corrupt = |at: u64, why: &str| RaftStoreError::Corrupt(format!("log at byte {at}: {why}"));
    let len = file.len();
    let mut r = Reader {
        file,
        len,
        start: 0,
        buf: Vec::new(),
    };
    let (first, mut pos) = r
        .frame(0, body_max)
        .await?
        .ok_or_else(|| corrupt(0, "the file header frame is damaged"))?;
    let initial_len = match records(&first).map_err(|e| corrupt(0, &e))?.as_slice() {
        [(KIND_FILE_HEADER, p)] if p.len() == FILE_HEADER_PAYLOAD && p[..8] == MAGIC => {
            if u32_at(p, 8) != Some(VERSION) {
                return Err(corrupt(0, "unknown format version"));
            }
            u64_at(p, 12).unwrap_or(0)
        }
        _ => return Err(corrupt(0, "no file header")),
    };
    if initial_len < pos || initial_len > len {
        return Err(corrupt(
            0,
            &format!("initial length {initial_len} outside [{pos}, {len}]"),
        ));
    }
    let mut state = LogState::default();
    while pos < len {
        match r.frame(pos, body_max).await? {
            Some((body, end)) => {
                apply(&mut state, &body).map_err(|e| corrupt(pos, &e))?;
                pos = end;
            }
            None if pos < initial_len => {
                return Err(corrupt(pos, "damaged frame in the synced initial part"));
            }
            None => {
                if let Some(next) = r.next_valid_frame(pos.saturating_add(1), body_max).await? {
                    return Err(corrupt(
                        pos,
                        &format!("damaged frame followed by a valid frame at {next}"),
                    ));
                }
                break;
            }
        }
    }
    Ok(Replayed {
        state,
        valid_len: pos,
    })
}

/// Applies the records of one valid frame, with the rules the writer follows.
fn apply(state: &mut LogState, body: &[u8]) -> Result<(), String> {
    for (kind, payload) in records(body)? {
        match kind {
            KIND_ENTRY => {
                let e = Entry::parse_from_bytes(payload).map_err(|e| format!("entry: {e}"))?;
                state.check_entry(e.index)?;
                state.push(LiveEntry {
                    index: e.index,
                    term: e.term,
                    payload: Bytes::copy_from_slice(payload),
                });
            }
            KIND_HARD_STATE => {
                state.hard_state =
                    HardState::parse_from_bytes(payload).map_err(|e| format!("hard state: {e}"))?;
            }
            KIND_BASE => {
                let (Some(index), Some(term), 16) =
                    (u64_at(payload, 0), u64_at(payload, 8), payload.len())
                else {
                    return Err(format!("base record of {} bytes", payload.len()));
                };
                state.set_base(index, term)?;
            }
            other => return Err(format!("unexpected record kind {other}")),
        }
    }
    Ok(())
}
