//! The record framing inside a v2 batch, walked without keeping any of it.
//!
//! A record is `length varint, attributes i8, timestampDelta varlong, offsetDelta varint,
//! keyLength varint, key, valueLength varint, value, headerCount varint, headers` where each
//! header is `keyLength varint, key, valueLength varint, value`. Kafka checks that a batch's
//! records agree with its header before appending it (the count, each offset delta in
//! order, every length inside the record); so does [`walk`], on plain bytes or on a stream
//! of decompressed bytes, without allocating. A batch whose framing lies would otherwise be
//! stored and stop every consumer of its partition.

use std::io::Read;
use thiserror::Error;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum FramingError {
    #[error("records end early")]
    Truncated,
    #[error("record {index}: {what}")]
    Bad { index: i32, what: &'static str },
    #[error("{0} bytes follow the last record")]
    Trailing(u64),
    #[error("records decompress to more than {limit} bytes")]
    TooLarge { limit: u64 },
    #[error("corrupt compressed records: {0}")]
    Corrupt(String),
}

/// Where the walker takes bytes from.
pub trait Source {
    fn byte(&mut self) -> Result<u8, FramingError>;
    /// Skips `n` bytes.
    fn skip(&mut self, n: u64) -> Result<(), FramingError>;
    /// Whether no byte is left.
    fn at_end(&mut self) -> Result<bool, FramingError>;
    /// Bytes taken so far.
    fn taken(&self) -> u64;
}

/// Records held in memory (an uncompressed batch).
pub struct SliceSource<'a> {
    buf: &'a [u8],
    pos: usize,
}

impl<'a> SliceSource<'a> {
    pub fn new(buf: &'a [u8]) -> SliceSource<'a> {
        SliceSource { buf, pos: 0 }
    }
}

impl Source for SliceSource<'_> {
    fn byte(&mut self) -> Result<u8, FramingError> {
        let b = *self.buf.get(self.pos).ok_or(FramingError::Truncated)?;
        self.pos += 1;
        Ok(b)
    }
    fn skip(&mut self, n: u64) -> Result<(), FramingError> {
        let left = (self.buf.len() - self.pos) as u64;
        if n > left {
            return Err(FramingError::Truncated);
        }
        // n <= left, which fits usize.
        self.pos += n as usize;
        Ok(())
    }
    fn at_end(&mut self) -> Result<bool, FramingError> {
        Ok(self.pos == self.buf.len())
    }
    fn taken(&self) -> u64 {
        self.pos as u64
    }
}

/// Records coming out of a decompressor, read through a small buffer and cut off at a
/// limit of decompressed bytes, whatever the stream claims.
pub struct StreamSource<R> {
    inner: R,
    buf: Box<[u8]>,
    pos: usize,
    end: usize,
    taken: u64,
    limit: u64,
}

const STREAM_BUF_BYTES: usize = 32 * 1024;

impl<R: Read> StreamSource<R> {
    pub fn new(inner: R, limit: u64) -> StreamSource<R> {
        StreamSource {
            inner,
            buf: vec![0u8; STREAM_BUF_BYTES].into_boxed_slice(),
            pos: 0,
            end: 0,
            taken: 0,
            limit,
        }
    }

    /// Refills the buffer; `false` at the end of the stream.
    fn refill(&mut self) -> Result<bool, FramingError> {
        loop {
            match self.inner.read(&mut self.buf) {
                Ok(0) => return Ok(false),
                Ok(n) => {
                    self.pos = 0;
                    self.end = n;
                    return Ok(true);
                }
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                // A decompressor that stops at its own limit says so with this kind.
                Err(e) if e.kind() == std::io::ErrorKind::FileTooLarge => {
                    return Err(FramingError::TooLarge { limit: self.limit });
                }
                Err(e) => return Err(FramingError::Corrupt(e.to_string())),
            }
        }
    }

    fn count(&mut self, n: u64) -> Result<(), FramingError> {
        self.taken = self.taken.saturating_add(n);
        if self.taken > self.limit {
            return Err(FramingError::TooLarge { limit: self.limit });
        }
        Ok(())
    }
}

impl<R: Read> Source for StreamSource<R> {
    fn byte(&mut self) -> Result<u8, FramingError> {
        if self.pos == self.end && !self.refill()? {
            return Err(FramingError::Truncated);
        }
        let b = self.buf[self.pos];
        self.pos += 1;
        self.count(1)?;
        Ok(b)
    }
    fn skip(&mut self, mut n: u64) -> Result<(), FramingError> {
        while n > 0 {
            if self.pos == self.end && !self.refill()? {
                return Err(FramingError::Truncated);
            }
            let here = ((self.end - self.pos) as u64).min(n);
            // here <= end - pos, which fits usize.
            self.pos += here as usize;
            n -= here;
            self.count(here)?;
        }
        Ok(())
    }
    fn at_end(&mut self) -> Result<bool, FramingError> {
        Ok(self.pos == self.end && !self.refill()?)
    }
    fn taken(&self) -> u64 {
        self.taken
    }
}

/// Reads a zigzag varint of at most `max_bytes` bytes (5 for an int, 10 for a long).
fn zigzag<S: Source>(src: &mut S, max_bytes: u32) -> Result<i64, FramingError> {
    let mut value: u64 = 0;
    for i in 0..max_bytes {
        let b = src.byte()?;
        value |= u64::from(b & 0x7f) << (7 * i);
        if b & 0x80 == 0 {
            return Ok(((value >> 1) as i64) ^ -((value & 1) as i64));
        }
    }
    Err(FramingError::Bad {
        index: -1,
        what: "varint too long",
    })
}

/// What a walk saw of each record, for checks that need it (timestamps).
pub trait Visit {
    fn record(&mut self, index: i32, timestamp_delta: i64) -> Result<(), FramingError>;
    /// Whether the record has a key; called before [`Visit::record`].
    fn key(&mut self, _index: i32, _present: bool) -> Result<(), FramingError> {
        Ok(())
    }
}

impl<F: FnMut(i32, i64) -> Result<(), FramingError>> Visit for F {
    fn record(&mut self, index: i32, timestamp_delta: i64) -> Result<(), FramingError> {
        self(index, timestamp_delta)
    }
}

/// Walks exactly `count` records from `src` and checks that nothing follows them. Each
/// record's offset delta must be its index, each length must fit inside the record, and
/// the record's declared length must be what its fields take.
pub fn walk<S: Source>(
    src: &mut S,
    count: i32,
    visit: &mut impl Visit,
) -> Result<(), FramingError> {
    for index in 0..count {
        let bad = |what| FramingError::Bad { index, what };
        let len = zigzag(src, 5)?;
        let len = u64::try_from(len).map_err(|_| bad("negative record length"))?;
        let start = src.taken();
        src.byte()?; // attributes: unused in v2
        let timestamp_delta = zigzag(src, 10)?;
        let offset_delta = zigzag(src, 5)?;
        if offset_delta != i64::from(index) {
            return Err(bad("offset delta out of order"));
        }
        let key = zigzag(src, 5)?;
        skip_sized(src, key, true, bad("negative key length"))?;
        visit.key(index, key != -1)?;
        let value = zigzag(src, 5)?;
        skip_sized(src, value, true, bad("negative value length"))?;
        let headers = zigzag(src, 5)?;
        if headers < 0 {
            return Err(bad("negative header count"));
        }
        for _ in 0..headers {
            let k = zigzag(src, 5)?;
            skip_sized(src, k, false, bad("negative header key length"))?;
            let v = zigzag(src, 5)?;
            skip_sized(src, v, true, bad("negative header value length"))?;
            if src.taken().saturating_sub(start) > len {
                return Err(bad("headers run past the record"));
            }
        }
        if src.taken().saturating_sub(start) != len {
            return Err(bad("length disagrees with the fields"));
        }
        visit.record(index, timestamp_delta)?;
    }
    if !src.at_end()? {
        let mut extra = 0u64;
        while !src.at_end()? {
            src.byte()?;
            extra += 1;
        }
        return Err(FramingError::Trailing(extra));
    }
    Ok(())
}

/// Skips a length-prefixed field: -1 is null (where `nullable`), other negatives are
/// `negative`.
fn skip_sized<S: Source>(
    src: &mut S,
    len: i64,
    nullable: bool,
    negative: FramingError,
) -> Result<(), FramingError> {
    match u64::try_from(len) {
        Ok(n) => src.skip(n),
        Err(_) if len == -1 && nullable => Ok(()),
        Err(_) => Err(negative),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::{HEADER_BYTES, testing::build_batch};

    fn records_of(batch: &[u8]) -> &[u8] {
        &batch[HEADER_BYTES..]
    }

    fn none(_: i32, _: i64) -> Result<(), FramingError> {
        Ok(())
    }

    #[test]
    fn well_formed_records_pass_and_lies_do_not() {
        let b = build_batch(&[b"a", b"bb", b"ccc"], 10);
        let recs = records_of(&b);
        let mut seen = Vec::new();
        walk(&mut SliceSource::new(recs), 3, &mut |i, ts| {
            seen.push((i, ts));
            Ok(())
        })
        .unwrap();
        assert_eq!(seen, vec![(0, 0), (1, 1), (2, 2)]);
        // Fewer or more records than the header says.
        assert!(walk(&mut SliceSource::new(recs), 2, &mut none).is_err());
        assert_eq!(
            walk(&mut SliceSource::new(recs), 4, &mut none),
            Err(FramingError::Truncated)
        );
        // Every truncation is caught.
        for cut in 0..recs.len() {
            assert!(walk(&mut SliceSource::new(&recs[..cut]), 3, &mut none).is_err());
        }
        // A flipped byte anywhere is either caught or leaves the framing intact.
        for at in 0..recs.len() {
            let mut m = recs.to_vec();
            m[at] ^= 0x40;
            let _ = walk(&mut SliceSource::new(&m), 3, &mut none);
        }
    }

    #[test]
    fn out_of_order_offset_deltas_are_refused() {
        let b = build_batch(&[b"a", b"b"], 10);
        let mut recs = records_of(&b).to_vec();
        // Second record: length, attributes, timestamp delta, then the offset delta.
        let second = 1 + recs[0] as usize / 2;
        recs[second + 3] = 4; // zigzag(2)
        assert!(matches!(
            walk(&mut SliceSource::new(&recs), 2, &mut none),
            Err(FramingError::Bad { index: 1, .. })
        ));
    }

    #[test]
    fn streams_stop_at_their_limit() {
        let b = build_batch(&[&[7u8; 1000], &[8u8; 1000]], 10);
        let recs = records_of(&b).to_vec();
        let ok = StreamSource::new(std::io::Cursor::new(recs.clone()), 10_000);
        let mut ok = ok;
        walk(&mut ok, 2, &mut none).unwrap();
        let mut capped = StreamSource::new(std::io::Cursor::new(recs), 1500);
        assert_eq!(
            walk(&mut capped, 2, &mut none),
            Err(FramingError::TooLarge { limit: 1500 })
        );
    }
}
