//! The records of one stored batch, read and rewritten for compaction.
//!
//! Everything here reads bytes from the disk, so nothing is trusted: every length and
//! varint is checked, and a batch whose framing does not hold is an error, never a panic.
//! A rewritten batch keeps its base offset, last offset delta and producer fields (the
//! producer state is rebuilt from them), so records keep their offsets and a batch's
//! offset span is unchanged; only the record count, the records, maybe the base
//! timestamp (the delete horizon, as Kafka's KIP-534 does), the length and the CRC change.

use crate::compression::{self, Codec};
use crate::protocol::batch::{self, BatchHeader, HEADER_BYTES, LOG_OVERHEAD, put_varlong};

/// Attribute bit of a batch whose base timestamp holds the time after which its
/// tombstones may be removed (Kafka's `DELETE_HORIZON_FLAG_MASK`).
pub const ATTR_DELETE_HORIZON: i16 = 0x40;

/// One record of a batch, pointing into the decompressed records.
pub struct Record<'a> {
    pub attributes: u8,
    pub timestamp_delta: i64,
    pub offset_delta: i64,
    /// `None` for a record without a key.
    pub key: Option<&'a [u8]>,
    /// `None` for a null value.
    pub value: Option<&'a [u8]>,
    /// A tombstone: a key with a null value.
    pub tombstone: bool,
    /// From the key length to the end of the headers, kept as it is.
    tail: &'a [u8],
}

/// Why a stored batch's records cannot be read.
#[derive(Debug, thiserror::Error)]
pub enum RecordsError {
    #[error("batch at offset {0}: {1}")]
    Bad(i64, String),
}

fn bad(header: &BatchHeader, what: impl Into<String>) -> RecordsError {
    RecordsError::Bad(header.base_offset, what.into())
}

/// Decompresses (within `limit`) the records of a CRC-checked batch.
pub fn records_of(
    header: &BatchHeader,
    batch: &[u8],
    limit: usize,
) -> Result<Vec<u8>, RecordsError> {
    let payload = batch
        .get(HEADER_BYTES..)
        .ok_or_else(|| bad(header, "shorter than its header"))?;
    let codec =
        Codec::from_attributes(header.attributes).map_err(|e| bad(header, e.to_string()))?;
    if codec == Codec::None {
        return Ok(payload.to_vec());
    }
    compression::decompress(codec, payload, limit).map_err(|e| bad(header, e.to_string()))
}

/// Splits decompressed records into [`Record`]s; exactly `header.record_count` of them
/// with nothing after.
pub fn parse<'a>(header: &BatchHeader, records: &'a [u8]) -> Result<Vec<Record<'a>>, RecordsError> {
    let count = usize::try_from(header.record_count).map_err(|_| bad(header, "negative count"))?;
    let mut out = Vec::with_capacity(count.min(records.len()));
    let mut pos = 0usize;
    let sized = |pos: &mut usize,
                 what: &str|
     -> Result<Option<std::ops::Range<usize>>, RecordsError> {
        let len = batch::read_varlong(records, pos).ok_or_else(|| bad(header, what.to_string()))?;
        if len == -1 {
            return Ok(None);
        }
        let len = usize::try_from(len).map_err(|_| bad(header, format!("negative {what}")))?;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= records.len())
            .ok_or_else(|| bad(header, format!("{what} runs past the records")))?;
        let r = *pos..end;
        *pos = end;
        Ok(Some(r))
    };
    for _ in 0..count {
        let len =
            batch::read_varlong(records, &mut pos).ok_or_else(|| bad(header, "record length"))?;
        let len = usize::try_from(len).map_err(|_| bad(header, "negative record length"))?;
        let end = pos
            .checked_add(len)
            .filter(|&e| e <= records.len())
            .ok_or_else(|| bad(header, "record runs past the batch"))?;
        let body = &records[..end];
        let attributes = *body
            .get(pos)
            .ok_or_else(|| bad(header, "record attributes"))?;
        pos += 1;
        let timestamp_delta =
            batch::read_varlong(body, &mut pos).ok_or_else(|| bad(header, "timestamp delta"))?;
        let offset_delta =
            batch::read_varlong(body, &mut pos).ok_or_else(|| bad(header, "offset delta"))?;
        let tail_start = pos;
        let key = sized(&mut pos, "key length")?;
        let value = sized(&mut pos, "value length")?;
        if pos > end {
            return Err(bad(header, "key or value runs past the record"));
        }
        let key = key.map(|r| &records[r]);
        out.push(Record {
            attributes,
            timestamp_delta,
            offset_delta,
            tombstone: key.is_some() && value.is_none(),
            key,
            value: value.map(|r| &records[r]),
            tail: &records[tail_start..end],
        });
        pos = end;
    }
    if pos != records.len() {
        return Err(bad(header, "bytes after the last record"));
    }
    Ok(out)
}

impl Record<'_> {
    /// The record's offset within a batch whose base offset is `base`.
    pub fn offset(&self, base: i64) -> Option<i64> {
        base.checked_add(self.offset_delta)
    }
}

/// Encodes a batch of `kept` records of the batch `header`, compressed again with its
/// codec, its base timestamp moved to `horizon` (and the horizon bit set) when given.
/// An empty `kept` gives the empty, uncompressed batch Kafka keeps for a producer's
/// last batch.
pub fn encode(
    header: &BatchHeader,
    original: &[u8],
    kept: &[&Record<'_>],
    horizon: Option<i64>,
) -> Result<Vec<u8>, RecordsError> {
    let codec =
        Codec::from_attributes(header.attributes).map_err(|e| bad(header, e.to_string()))?;
    let new_base_ts = horizon.unwrap_or(header.base_timestamp);
    let mut records = Vec::new();
    let mut body = Vec::new();
    for r in kept {
        // The record's own timestamp stays what it was: only its delta moves.
        let delta = if horizon.is_some() {
            header
                .base_timestamp
                .checked_add(r.timestamp_delta)
                .and_then(|ts| ts.checked_sub(new_base_ts))
                .ok_or_else(|| bad(header, "timestamp overflows"))?
        } else {
            r.timestamp_delta
        };
        body.clear();
        body.push(r.attributes);
        put_varlong(&mut body, delta);
        put_varlong(&mut body, r.offset_delta);
        body.extend_from_slice(r.tail);
        put_varlong(&mut records, body.len() as i64);
        records.extend_from_slice(&body);
    }
    let (payload, codec) = if kept.is_empty() {
        (Vec::new(), Codec::None)
    } else {
        (compression::compress(codec, &records), codec)
    };
    let mut out = Vec::with_capacity(HEADER_BYTES + payload.len());
    out.extend_from_slice(
        original
            .get(..HEADER_BYTES)
            .ok_or_else(|| bad(header, "shorter than its header"))?,
    );
    out.extend_from_slice(&payload);
    let count = i32::try_from(kept.len()).map_err(|_| bad(header, "too many records"))?;
    out[HEADER_BYTES - 4..HEADER_BYTES].copy_from_slice(&count.to_be_bytes());
    out[27..35].copy_from_slice(&new_base_ts.to_be_bytes());
    let length = i32::try_from(out.len() - LOG_OVERHEAD).map_err(|_| bad(header, "too large"))?;
    let mut attributes = (header.attributes & !batch::ATTR_COMPRESSION_MASK) | codec as i16;
    if horizon.is_some() {
        attributes |= ATTR_DELETE_HORIZON;
    }
    batch::set_length_attributes_and_crc(&mut out, length, attributes);
    Ok(out)
}

/// The delete horizon of a batch cleaned before, if it has one.
pub fn delete_horizon(header: &BatchHeader) -> Option<i64> {
    (header.attributes & ATTR_DELETE_HORIZON != 0).then_some(header.base_timestamp)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::testing::keyed;
    use crate::protocol::batch::validate_stored_batch;

    #[test]
    fn records_round_trip_and_keep_offsets_and_timestamps() {
        let b = keyed(
            &[
                (Some(b"a"), Some(b"1")),
                (Some(b"b"), None),
                (None, Some(b"x")),
                (Some(b"a"), Some(b"2")),
            ],
            1000,
        );
        let h = batch::validate_batch(&b).unwrap();
        let recs = records_of(&h, &b, 1 << 20).unwrap();
        let parsed = parse(&h, &recs).unwrap();
        assert_eq!(parsed.len(), 4);
        assert!(parsed[1].tombstone && parsed[2].key.is_none());
        let kept = [&parsed[1], &parsed[3]];
        for codec in compression::ALL_CODECS {
            let mut c = b.clone();
            let payload = compression::compress(codec, &recs);
            c.truncate(HEADER_BYTES);
            c.extend_from_slice(&payload);
            let len = (c.len() - LOG_OVERHEAD) as i32;
            batch::set_length_attributes_and_crc(&mut c, len, codec as i16);
            let ch = batch::validate_batch(&c).unwrap();
            let out = encode(&ch, &c, &kept, Some(5000)).unwrap();
            let oh = validate_stored_batch(&out).unwrap();
            assert_eq!(oh.compression(), codec as i16, "{codec:?} kept");
            assert_eq!((oh.record_count, oh.last_offset_delta), (2, 3));
            assert_eq!(delete_horizon(&oh), Some(5000));
            let times = batch::record_timestamps_in(&oh, &records_of(&oh, &out, 1 << 20).unwrap());
            assert_eq!(times, Some(vec![(1, 1001), (3, 1003)]), "{codec:?}");
        }
        let empty = encode(&h, &b, &[], None).unwrap();
        let eh = validate_stored_batch(&empty).unwrap();
        assert_eq!(
            (eh.record_count, eh.last_offset_delta, eh.length),
            (0, 3, 49)
        );
    }

    #[test]
    fn damaged_records_are_errors() {
        let b = keyed(&[(Some(b"key"), Some(b"value"))], 1);
        let h = batch::validate_batch(&b).unwrap();
        let recs = b[HEADER_BYTES..].to_vec();
        for cut in 0..recs.len() {
            assert!(parse(&h, &recs[..cut]).is_err(), "cut at {cut}");
        }
        for at in 0..recs.len() {
            let mut m = recs.clone();
            m[at] ^= 0xff;
            let _ = parse(&h, &m);
        }
    }
}
