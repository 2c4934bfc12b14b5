//! Kafka v2 record batch header: parsing, validation and in-place offset assignment.
//!
//! The broker never decodes record payloads on the hot path. It reads the 61-byte header,
//! checks the CRC-32C that covers everything from `attributes` to the end of the batch, and
//! rewrites the base offset (which the CRC does not cover) when it assigns offsets.

use thiserror::Error;

/// Size of the fixed v2 batch header.
pub const HEADER_BYTES: usize = 61;
/// Bytes before the `batchLength` field ends: base offset (8) + length (4).
pub const LOG_OVERHEAD: usize = 12;

const OFF_BASE_OFFSET: usize = 0;
const OFF_LENGTH: usize = 8;
const OFF_LEADER_EPOCH: usize = 12;
const OFF_MAGIC: usize = 16;
const OFF_CRC: usize = 17;
const OFF_ATTRIBUTES: usize = 21;
const OFF_LAST_OFFSET_DELTA: usize = 23;
const OFF_BASE_TIMESTAMP: usize = 27;
const OFF_MAX_TIMESTAMP: usize = 35;
const OFF_PRODUCER_ID: usize = 43;
const OFF_PRODUCER_EPOCH: usize = 51;
const OFF_BASE_SEQUENCE: usize = 53;
const OFF_RECORD_COUNT: usize = 57;

const _: () = assert!(OFF_RECORD_COUNT + 4 == HEADER_BYTES);
const _: () = assert!(OFF_CRC + 4 == OFF_ATTRIBUTES);

/// Attribute bits of a v2 batch.
pub const ATTR_COMPRESSION_MASK: i16 = 0x07;
pub const ATTR_TIMESTAMP_TYPE_LOG_APPEND: i16 = 0x08;
pub const ATTR_TRANSACTIONAL: i16 = 0x10;
pub const ATTR_CONTROL: i16 = 0x20;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum BatchError {
    #[error("record batch is truncated: need {needed} bytes, have {have}")]
    Truncated { needed: usize, have: usize },
    #[error("record batch length {0} is invalid")]
    BadLength(i32),
    #[error("unsupported record batch magic {0} (only v2 is accepted)")]
    BadMagic(i8),
    #[error("record batch CRC mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    BadCrc { stored: u32, computed: u32 },
    #[error("record batch has record count {count} but last offset delta {last_offset_delta}")]
    BadRecordCount { count: i32, last_offset_delta: i32 },
    #[error("produce request carries no record batch")]
    Empty,
}

/// The fields of a v2 batch header, as read from the wire or the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchHeader {
    pub base_offset: i64,
    /// `batchLength`: the bytes that follow the length field.
    pub length: i32,
    pub partition_leader_epoch: i32,
    pub magic: i8,
    pub crc: u32,
    pub attributes: i16,
    pub last_offset_delta: i32,
    pub base_timestamp: i64,
    pub max_timestamp: i64,
    pub producer_id: i64,
    pub producer_epoch: i16,
    pub base_sequence: i32,
    pub record_count: i32,
}

fn be_i16(b: &[u8], at: usize) -> i16 {
    i16::from_be_bytes([b[at], b[at + 1]])
}
fn be_i32(b: &[u8], at: usize) -> i32 {
    i32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}
fn be_i64(b: &[u8], at: usize) -> i64 {
    let mut a = [0u8; 8];
    a.copy_from_slice(&b[at..at + 8]);
    i64::from_be_bytes(a)
}

impl BatchHeader {
    /// Parses the 61-byte header at the start of `buf`. Checks only that the header is
    /// present; use [`validate_batch`] to check length, magic and CRC.
    pub fn parse(buf: &[u8]) -> Result<BatchHeader, BatchError> {
        if buf.len() < HEADER_BYTES {
            return Err(BatchError::Truncated {
                needed: HEADER_BYTES,
                have: buf.len(),
            });
        }
        Ok(BatchHeader {
            base_offset: be_i64(buf, OFF_BASE_OFFSET),
            length: be_i32(buf, OFF_LENGTH),
            partition_leader_epoch: be_i32(buf, OFF_LEADER_EPOCH),
            magic: buf[OFF_MAGIC] as i8,
            crc: be_i32(buf, OFF_CRC) as u32,
            attributes: be_i16(buf, OFF_ATTRIBUTES),
            last_offset_delta: be_i32(buf, OFF_LAST_OFFSET_DELTA),
            base_timestamp: be_i64(buf, OFF_BASE_TIMESTAMP),
            max_timestamp: be_i64(buf, OFF_MAX_TIMESTAMP),
            producer_id: be_i64(buf, OFF_PRODUCER_ID),
            producer_epoch: be_i16(buf, OFF_PRODUCER_EPOCH),
            base_sequence: be_i32(buf, OFF_BASE_SEQUENCE),
            record_count: be_i32(buf, OFF_RECORD_COUNT),
        })
    }

    /// Total bytes of the batch including the offset and length fields.
    pub fn total_bytes(&self) -> usize {
        self.length as usize + LOG_OVERHEAD
    }

    pub fn last_offset(&self) -> i64 {
        self.base_offset + self.last_offset_delta as i64
    }

    pub fn compression(&self) -> i16 {
        self.attributes & ATTR_COMPRESSION_MASK
    }

    pub fn is_log_append_time(&self) -> bool {
        self.attributes & ATTR_TIMESTAMP_TYPE_LOG_APPEND != 0
    }
}

/// Reads just the base offset and total size of the batch at the start of `buf` (needs
/// [`LOG_OVERHEAD`] bytes). Used by scans that skip from batch to batch.
pub fn peek_offset_and_size(buf: &[u8]) -> Option<(i64, i32)> {
    if buf.len() < LOG_OVERHEAD {
        return None;
    }
    Some((be_i64(buf, OFF_BASE_OFFSET), be_i32(buf, OFF_LENGTH)))
}

/// Validates one complete batch occupying exactly `buf` (length field, magic 2, CRC-32C
/// over attributes..end, record count consistent with the last offset delta).
pub fn validate_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    let header = BatchHeader::parse(buf)?;
    if header.length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
        return Err(BatchError::BadLength(header.length));
    }
    if header.total_bytes() != buf.len() {
        return Err(BatchError::Truncated {
            needed: header.total_bytes(),
            have: buf.len(),
        });
    }
    if header.magic != 2 {
        return Err(BatchError::BadMagic(header.magic));
    }
    let computed = crc32c::crc32c(&buf[OFF_ATTRIBUTES..]);
    if computed != header.crc {
        return Err(BatchError::BadCrc {
            stored: header.crc,
            computed,
        });
    }
    if header.record_count <= 0
        || header.last_offset_delta < 0
        || header.last_offset_delta as i64 + 1 != header.record_count as i64
    {
        return Err(BatchError::BadRecordCount {
            count: header.record_count,
            last_offset_delta: header.last_offset_delta,
        });
    }
    Ok(header)
}

/// Validates a batch read back from a log: as [`validate_batch`], except that compaction
/// may have removed records, so the record count may be below the offset span (down to
/// an empty batch kept for its producer's sake).
pub fn validate_stored_batch(buf: &[u8]) -> Result<BatchHeader, BatchError> {
    match validate_batch(buf) {
        Err(BatchError::BadRecordCount {
            count,
            last_offset_delta,
        }) if count >= 0
            && last_offset_delta >= 0
            && (count as i64) <= last_offset_delta as i64 + 1 =>
        {
            BatchHeader::parse(buf)
        }
        other => other,
    }
}

/// Splits a buffer holding one or more concatenated batches (a produce request's records
/// field) and validates each. Returns the headers with each batch's byte range.
pub fn validate_batches(
    buf: &[u8],
) -> Result<Vec<(BatchHeader, std::ops::Range<usize>)>, BatchError> {
    if buf.is_empty() {
        return Err(BatchError::Empty);
    }
    let mut out = Vec::new();
    let mut pos = 0usize;
    while pos < buf.len() {
        let rest = &buf[pos..];
        let Some((_, length)) = peek_offset_and_size(rest) else {
            return Err(BatchError::Truncated {
                needed: LOG_OVERHEAD,
                have: rest.len(),
            });
        };
        if length < (HEADER_BYTES - LOG_OVERHEAD) as i32 {
            return Err(BatchError::BadLength(length));
        }
        let total = length as usize + LOG_OVERHEAD;
        if total > rest.len() {
            return Err(BatchError::Truncated {
                needed: total,
                have: rest.len(),
            });
        }
        let header = validate_batch(&rest[..total])?;
        out.push((header, pos..pos + total));
        pos += total;
    }
    Ok(out)
}

/// Rewrites the base offset of the batch at the start of `buf`. The CRC does not cover it.
pub fn set_base_offset(buf: &mut [u8], base_offset: i64) {
    buf[OFF_BASE_OFFSET..OFF_BASE_OFFSET + 8].copy_from_slice(&base_offset.to_be_bytes());
}

/// Rewrites the partition leader epoch of the batch at the start of `buf` (not CRC-covered).
pub fn set_partition_leader_epoch(buf: &mut [u8], epoch: i32) {
    buf[OFF_LEADER_EPOCH..OFF_LEADER_EPOCH + 4].copy_from_slice(&epoch.to_be_bytes());
}

/// Sets the log-append-time bit and max timestamp of a batch, then recomputes its CRC.
pub fn set_log_append_time(buf: &mut [u8], timestamp_ms: i64) {
    let (head, records) = buf.split_at_mut(HEADER_BYTES);
    set_log_append_time_split(head, records, timestamp_ms);
}

/// As [`set_log_append_time`], for a batch held as its header (`head`, the first
/// [`HEADER_BYTES`]) and the rest (`records`), the CRC computed over both.
pub fn set_log_append_time_split(head: &mut [u8], records: &[u8], timestamp_ms: i64) {
    let attrs = be_i16(head, OFF_ATTRIBUTES) | ATTR_TIMESTAMP_TYPE_LOG_APPEND;
    head[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attrs.to_be_bytes());
    head[OFF_MAX_TIMESTAMP..OFF_MAX_TIMESTAMP + 8].copy_from_slice(&timestamp_ms.to_be_bytes());
    let crc = crc32c::crc32c_append(crc32c::crc32c(&head[OFF_ATTRIBUTES..]), records);
    head[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Rewrites the length and attributes of a batch (after its records were replaced by
/// recompression) and recomputes its CRC.
pub fn set_length_attributes_and_crc(buf: &mut [u8], length: i32, attributes: i16) {
    buf[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&length.to_be_bytes());
    buf[OFF_ATTRIBUTES..OFF_ATTRIBUTES + 2].copy_from_slice(&attributes.to_be_bytes());
    let crc = crc32c::crc32c(&buf[OFF_ATTRIBUTES..]);
    buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Sets the producer id, epoch and base sequence of a batch and recomputes its CRC
/// (tests build idempotent batches with it).
pub fn set_producer(buf: &mut [u8], producer_id: i64, epoch: i16, base_sequence: i32) {
    buf[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    buf[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    buf[OFF_BASE_SEQUENCE..OFF_BASE_SEQUENCE + 4].copy_from_slice(&base_sequence.to_be_bytes());
    let crc = crc32c::crc32c(&buf[OFF_ATTRIBUTES..]);
    buf[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
}

/// Reads a zigzag varint from `buf` at `*pos`, advancing `pos`.
pub fn read_varlong(buf: &[u8], pos: &mut usize) -> Option<i64> {
    let mut value: u64 = 0;
    let mut shift = 0u32;
    loop {
        let byte = *buf.get(*pos)?;
        *pos += 1;
        value |= ((byte & 0x7f) as u64) << shift;
        if byte & 0x80 == 0 {
            break;
        }
        shift += 7;
        if shift > 63 {
            return None;
        }
    }
    Some(((value >> 1) as i64) ^ -((value & 1) as i64))
}

/// For an uncompressed batch, the (offset, timestamp) of each record, read from the record
/// framing without touching keys, values or headers. Returns `None` for a compressed batch
/// or malformed record framing.
pub fn record_timestamps(batch: &[u8]) -> Option<Vec<(i64, i64)>> {
    let header = BatchHeader::parse(batch).ok()?;
    if header.compression() != 0 {
        return None;
    }
    record_timestamps_in(&header, &batch[HEADER_BYTES..])
}

/// The (offset, timestamp) of each record in `records`, the (decompressed) records of the
/// batch whose header is `header`.
pub fn record_timestamps_in(header: &BatchHeader, records: &[u8]) -> Option<Vec<(i64, i64)>> {
    let batch = records;
    let mut out = Vec::with_capacity(header.record_count.clamp(0, 4096) as usize);
    let mut pos = 0usize;
    for _ in 0..header.record_count {
        let len = read_varlong(batch, &mut pos)?;
        let start = pos;
        let end = start.checked_add(usize::try_from(len).ok()?)?;
        if end > batch.len() {
            return None;
        }
        pos += 1; // attributes
        let ts_delta = read_varlong(batch, &mut pos)?;
        let off_delta = read_varlong(batch, &mut pos)?;
        // Stored batches come from clients and the disk: nothing here may overflow.
        let ts = if header.is_log_append_time() {
            header.max_timestamp
        } else {
            header.base_timestamp.checked_add(ts_delta)?
        };
        out.push((header.base_offset.checked_add(off_delta)?, ts));
        pos = end;
    }
    Some(out)
}

/// Encodes one v2 batch around `records` (already framed, `count` of them): base offset 0
/// (the log assigns it), no compression, CreateTime, no producer, and its CRC. The one
/// place a batch header is written field by field.
pub fn encode_batch(
    records: &[u8],
    count: i32,
    base_timestamp: i64,
    max_timestamp: i64,
) -> Vec<u8> {
    let mut b = Vec::with_capacity(HEADER_BYTES + records.len());
    b.extend_from_slice(&0i64.to_be_bytes()); // base offset
    // A batch longer than i32::MAX cannot be framed; callers build small ones.
    let length = i32::try_from(HEADER_BYTES - LOG_OVERHEAD + records.len()).unwrap_or(i32::MAX);
    b.extend_from_slice(&length.to_be_bytes());
    b.extend_from_slice(&0i32.to_be_bytes()); // partition leader epoch
    b.push(2); // magic
    b.extend_from_slice(&0u32.to_be_bytes()); // crc, set below
    b.extend_from_slice(&0i16.to_be_bytes()); // attributes
    b.extend_from_slice(&count.saturating_sub(1).to_be_bytes()); // last offset delta
    b.extend_from_slice(&base_timestamp.to_be_bytes());
    b.extend_from_slice(&max_timestamp.to_be_bytes());
    b.extend_from_slice(&(-1i64).to_be_bytes()); // producer id
    b.extend_from_slice(&(-1i16).to_be_bytes()); // producer epoch
    b.extend_from_slice(&(-1i32).to_be_bytes()); // base sequence
    b.extend_from_slice(&count.to_be_bytes());
    b.extend_from_slice(records);
    let crc = crc32c::crc32c(&b[OFF_ATTRIBUTES..]);
    b[OFF_CRC..OFF_CRC + 4].copy_from_slice(&crc.to_be_bytes());
    b
}

/// The control record types of a control batch (the key's second field).
pub const CONTROL_ABORT: i16 = 0;
pub const CONTROL_COMMIT: i16 = 1;

/// Builds a transaction marker: a control batch of one record whose key is (version 0,
/// `CONTROL_COMMIT` or `CONTROL_ABORT`) and whose value is (version 0, the coordinator's
/// epoch), for `producer_id` at `epoch`, base offset 0 (the log assigns it).
pub fn encode_marker(
    producer_id: i64,
    epoch: i16,
    commit: bool,
    coordinator_epoch: i32,
    timestamp: i64,
) -> Vec<u8> {
    let kind = if commit {
        CONTROL_COMMIT
    } else {
        CONTROL_ABORT
    };
    let mut key = Vec::with_capacity(4);
    key.extend_from_slice(&0i16.to_be_bytes());
    key.extend_from_slice(&kind.to_be_bytes());
    let mut value = Vec::with_capacity(6);
    value.extend_from_slice(&0i16.to_be_bytes());
    value.extend_from_slice(&coordinator_epoch.to_be_bytes());
    let mut body = Vec::with_capacity(16);
    body.push(0); // attributes
    put_varlong(&mut body, 0); // timestamp delta
    put_varlong(&mut body, 0); // offset delta
    put_varlong(&mut body, key.len() as i64);
    body.extend_from_slice(&key);
    put_varlong(&mut body, value.len() as i64);
    body.extend_from_slice(&value);
    put_varlong(&mut body, 0); // headers
    let mut record = Vec::with_capacity(body.len() + 1);
    put_varlong(&mut record, body.len() as i64);
    record.extend_from_slice(&body);
    let mut b = encode_batch(&record, 1, timestamp, timestamp);
    b[OFF_PRODUCER_ID..OFF_PRODUCER_ID + 8].copy_from_slice(&producer_id.to_be_bytes());
    b[OFF_PRODUCER_EPOCH..OFF_PRODUCER_EPOCH + 2].copy_from_slice(&epoch.to_be_bytes());
    let attributes = ATTR_TRANSACTIONAL | ATTR_CONTROL;
    let length = be_i32(&b, OFF_LENGTH);
    set_length_attributes_and_crc(&mut b, length, attributes);
    b
}

/// The control record type of a control batch (`CONTROL_COMMIT`, `CONTROL_ABORT`, or
/// another a later Kafka may write), read from its first record's key; `None` when the
/// batch is not a control batch or its first record cannot be read. Control batches are
/// never compressed.
pub fn control_type(batch: &[u8]) -> Option<i16> {
    let h = BatchHeader::parse(batch).ok()?;
    if h.attributes & ATTR_CONTROL == 0 {
        return None;
    }
    let records = batch.get(HEADER_BYTES..)?;
    let mut pos = 0usize;
    read_varlong(records, &mut pos)?; // record length
    pos = pos.checked_add(1)?; // attributes
    read_varlong(records, &mut pos)?; // timestamp delta
    read_varlong(records, &mut pos)?; // offset delta
    let key_len = read_varlong(records, &mut pos)?;
    if key_len < 4 {
        return None;
    }
    let key = records.get(pos..pos.checked_add(4)?)?;
    Some(i16::from_be_bytes([key[2], key[3]]))
}

/// Appends `v` as a zigzag varint (the record framing's encoding).
pub fn put_varlong(out: &mut Vec<u8>, v: i64) {
    let mut z = ((v << 1) ^ (v >> 63)) as u64;
    loop {
        if z < 0x80 {
            out.push(z as u8);
            return;
        }
        out.push((z as u8 & 0x7f) | 0x80);
        z >>= 7;
    }
}

pub mod testing {
    //! Builders for valid v2 batches, shared by unit tests, integration tests and benches.

    use super::put_varlong;

    /// Builds an uncompressed v2 batch of `values`, base timestamp `ts`, each record 1 ms apart.
    pub fn build_batch(values: &[&[u8]], ts: i64) -> Vec<u8> {
        let mut records = Vec::new();
        for (i, v) in values.iter().enumerate() {
            let mut body = Vec::new();
            body.push(0u8); // attributes
            put_varlong(&mut body, i as i64); // timestamp delta
            put_varlong(&mut body, i as i64); // offset delta
            put_varlong(&mut body, -1); // key length: null
            put_varlong(&mut body, v.len() as i64);
            body.extend_from_slice(v);
            put_varlong(&mut body, 0); // headers
            put_varlong(&mut records, body.len() as i64);
            records.extend_from_slice(&body);
        }
        let n = values.len() as i32;
        super::encode_batch(&records, n, ts, ts + n as i64 - 1)
    }

    /// A record's key and value; `None` is null.
    pub type KeyValue<'a> = (Option<&'a [u8]>, Option<&'a [u8]>);

    /// A batch of (key, value) records, base timestamp `ts`, each record 1 ms apart.
    pub fn keyed(records: &[KeyValue<'_>], ts: i64) -> Vec<u8> {
        let mut out = Vec::new();
        for (i, (k, v)) in records.iter().enumerate() {
            let mut body = vec![0u8];
            put_varlong(&mut body, i as i64);
            put_varlong(&mut body, i as i64);
            for f in [k, v] {
                match f {
                    Some(b) => {
                        put_varlong(&mut body, b.len() as i64);
                        body.extend_from_slice(b);
                    }
                    None => put_varlong(&mut body, -1),
                }
            }
            put_varlong(&mut body, 0);
            put_varlong(&mut out, body.len() as i64);
            out.extend_from_slice(&body);
        }
        let n = records.len() as i32;
        super::encode_batch(&out, n, ts, ts + n as i64 - 1)
    }

    /// A batch of `count` records whose total size is about `bytes`.
    pub fn batch_of_size(bytes: usize, count: usize, ts: i64) -> Vec<u8> {
        let count = count.max(1);
        let per = bytes.saturating_sub(super::HEADER_BYTES) / count;
        let value = vec![b'x'; per.saturating_sub(8).max(1)];
        let values: Vec<&[u8]> = (0..count).map(|_| value.as_slice()).collect();
        build_batch(&values, ts)
    }
}

#[cfg(test)]
mod tests {
    use super::testing::build_batch;
    use super::*;

    #[test]
    fn valid_batch_round_trips() {
        let b = build_batch(&[b"a", b"bc", b"def"], 1000);
        let h = validate_batch(&b).expect("valid");
        assert_eq!(h.record_count, 3);
        assert_eq!(h.last_offset_delta, 2);
        assert_eq!(h.max_timestamp, 1002);
        assert_eq!(h.total_bytes(), b.len());
    }

    #[test]
    fn offset_rewrite_keeps_crc_valid() {
        let mut b = build_batch(&[b"a"], 5);
        set_base_offset(&mut b, 42);
        set_partition_leader_epoch(&mut b, 7);
        let h = validate_batch(&b).expect("still valid");
        assert_eq!(h.base_offset, 42);
        assert_eq!(h.partition_leader_epoch, 7);
    }

    #[test]
    fn every_single_bit_flip_in_crc_range_is_detected() {
        let b = build_batch(&[b"hello", b"world"], 5);
        for i in OFF_CRC..b.len() {
            for bit in 0..8 {
                let mut c = b.clone();
                c[i] ^= 1 << bit;
                assert!(validate_batch(&c).is_err(), "flip at byte {i} bit {bit}");
            }
        }
    }

    #[test]
    fn rejects_bad_magic_length_and_truncation() {
        let b = build_batch(&[b"a"], 5);
        let mut m = b.clone();
        m[OFF_MAGIC] = 1;
        assert_eq!(validate_batch(&m), Err(BatchError::BadMagic(1)));
        assert!(matches!(
            validate_batch(&b[..b.len() - 1]),
            Err(BatchError::Truncated { .. })
        ));
        let mut l = b.clone();
        l[OFF_LENGTH..OFF_LENGTH + 4].copy_from_slice(&3i32.to_be_bytes());
        assert_eq!(validate_batch(&l), Err(BatchError::BadLength(3)));
        assert_eq!(validate_batches(&[]), Err(BatchError::Empty));
    }

    #[test]
    fn splits_concatenated_batches() {
        let mut b = build_batch(&[b"a"], 5);
        let second = build_batch(&[b"b", b"c"], 6);
        b.extend_from_slice(&second);
        let v = validate_batches(&b).expect("valid");
        assert_eq!(v.len(), 2);
        assert_eq!(v[1].0.record_count, 2);
        assert_eq!(v[1].1.end, b.len());
        // A trailing partial batch poisons the whole request.
        b.extend_from_slice(&second[..20]);
        assert!(validate_batches(&b).is_err());
    }

    #[test]
    fn record_timestamps_that_overflow_are_unreadable() {
        let mut b = build_batch(&[b"a", b"b"], i64::MAX - 2);
        b[OFF_BASE_TIMESTAMP..OFF_BASE_TIMESTAMP + 8].copy_from_slice(&i64::MAX.to_be_bytes());
        assert_eq!(record_timestamps(&b), None);
        let mut b = build_batch(&[b"a", b"b"], 5);
        set_base_offset(&mut b, i64::MAX);
        assert_eq!(record_timestamps(&b), None);
    }

    #[test]
    fn record_timestamps_are_read_from_framing() {
        let mut b = build_batch(&[b"a", b"b", b"c"], 100);
        set_base_offset(&mut b, 10);
        assert_eq!(
            record_timestamps(&b),
            Some(vec![(10, 100), (11, 101), (12, 102)])
        );
    }
}
