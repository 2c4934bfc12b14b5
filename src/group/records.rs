//! The records of `__consumer_offsets`: their keys and values, and the v2 batches that
//! carry them.
//!
//! Two kinds of key, distinguished by a leading version like Kafka's:
//! - `1`: a committed offset, `[group, topic, partition]`;
//! - `2`: group metadata, `[group]`.
//!
//! Keys of version 0 (Kafka's older offset key, the same layout as 1) are read too. Values
//! are Kafka's `OffsetCommitValue` and `GroupMetadataValue` (`super::values`).
//!
//! A record with a null value is a tombstone: on load, the last value per key wins and a
//! tombstone deletes the key. Strings are an i16 length and UTF-8 bytes; decoding checks
//! every length, since the bytes come from disk.

use crate::protocol::batch;
use crate::protocol::reader::Reader;
use bytes::Bytes;

pub use super::values::{GroupValue, MemberValue, OffsetValue};

const KEY_OFFSET: i16 = 1;
const KEY_GROUP: i16 = 2;

/// A record to append: key and value (`None`: a tombstone).
pub type Record = (Vec<u8>, Option<Vec<u8>>);

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Key {
    Offset {
        group: String,
        topic: String,
        partition: i32,
    },
    Group {
        group: String,
    },
}

/// A string too long for the i16 length of a record string. Callers bound what they
/// store (`super::admit`), so this is a refused request, never a truncated record.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
#[error("a string of {0} bytes does not fit a record of __consumer_offsets")]
pub struct RecordError(pub usize);

fn put_str(out: &mut Vec<u8>, s: &str) -> Result<(), RecordError> {
    let len = i16::try_from(s.len()).map_err(|_| RecordError(s.len()))?;
    out.extend_from_slice(&len.to_be_bytes());
    out.extend_from_slice(s.as_bytes());
    Ok(())
}

impl Key {
    pub fn encode(&self) -> Result<Vec<u8>, RecordError> {
        let mut out = Vec::new();
        match self {
            Key::Offset {
                group,
                topic,
                partition,
            } => {
                out.extend_from_slice(&KEY_OFFSET.to_be_bytes());
                put_str(&mut out, group)?;
                put_str(&mut out, topic)?;
                out.extend_from_slice(&partition.to_be_bytes());
            }
            Key::Group { group } => {
                out.extend_from_slice(&KEY_GROUP.to_be_bytes());
                put_str(&mut out, group)?;
            }
        }
        Ok(out)
    }

    pub fn decode(bytes: &[u8]) -> Option<Key> {
        let mut r = Reader::new(bytes);
        match r.i16()? {
            0 | KEY_OFFSET => Some(Key::Offset {
                group: r.string()?,
                topic: r.string()?,
                partition: r.i32()?,
            }),
            KEY_GROUP => Some(Key::Group { group: r.string()? }),
            _ => None,
        }
    }

    pub fn group(&self) -> &str {
        match self {
            Key::Offset { group, .. } | Key::Group { group } => group,
        }
    }
}

fn get_bytes<'a>(buf: &'a [u8], pos: &mut usize) -> Option<Option<&'a [u8]>> {
    let len = batch::read_varlong(buf, pos)?;
    if len < 0 {
        return Some(None);
    }
    let end = pos.checked_add(len as usize)?;
    let out = buf.get(*pos..end)?;
    *pos = end;
    Some(Some(out))
}

/// One uncompressed v2 batch of `(key, value)` records (a `None` value is a tombstone),
/// with base offset 0: the log assigns the real one. `None` for no records (a batch holds
/// at least one).
pub fn build_batch(records: &[Record], timestamp_ms: i64) -> Option<Bytes> {
    build_batch_of(records, timestamp_ms, None)
}

/// As [`build_batch`]; with `producer` (id, epoch), a transactional batch of that
/// producer with no sequence (the coordinator's own writes are not deduplicated).
pub fn build_batch_of(
    records: &[Record],
    timestamp_ms: i64,
    producer: Option<(i64, i16)>,
) -> Option<Bytes> {
    if records.is_empty() {
        return None;
    }
    let mut body = Vec::new();
    for (i, (key, value)) in records.iter().enumerate() {
        let mut rec = vec![0u8]; // attributes
        batch::put_varlong(&mut rec, 0); // timestamp delta
        batch::put_varlong(&mut rec, i as i64); // offset delta
        batch::put_varlong(&mut rec, key.len() as i64);
        rec.extend_from_slice(key);
        match value {
            Some(v) => {
                batch::put_varlong(&mut rec, v.len() as i64);
                rec.extend_from_slice(v);
            }
            None => batch::put_varlong(&mut rec, -1),
        }
        batch::put_varlong(&mut rec, 0); // headers
        batch::put_varlong(&mut body, rec.len() as i64);
        body.extend_from_slice(&rec);
    }
    let n = i32::try_from(records.len()).ok()?;
    let mut b = batch::encode_batch(&body, n, timestamp_ms, timestamp_ms);
    if let Some((producer_id, epoch)) = producer {
        batch::set_producer(&mut b, producer_id, epoch, -1);
        let length = i32::try_from(b.len() - batch::LOG_OVERHEAD).ok()?;
        batch::set_length_attributes_and_crc(&mut b, length, batch::ATTR_TRANSACTIONAL);
    }
    debug_assert!(batch::validate_batch(&b).is_ok());
    Some(Bytes::from(b))
}

/// A record read back: its offset in the log, key and value (None: tombstone).
pub struct LoggedRecord {
    pub offset: i64,
    pub key: Vec<u8>,
    pub value: Option<Vec<u8>>,
    /// The producer of a transactional batch (TxnOffsetCommit): the record counts once its
    /// commit marker follows. `None` for ordinary commits.
    pub producer_id: Option<i64>,
    /// A transaction marker (commit: `true`) of `producer_id`; key and value are empty.
    pub marker: Option<bool>,
}

/// Splits whole batches into records. Returns the records and the offset after the last
/// batch. Compressed batches are skipped: the broker never writes them to this topic.
pub fn parse_batches(mut buf: &[u8]) -> (Vec<LoggedRecord>, Option<i64>) {
    let mut out = Vec::new();
    let mut next = None;
    while let Ok(header) = batch::BatchHeader::parse(buf) {
        let total = header.total_bytes();
        if total > buf.len() {
            break;
        }
        let (this, rest) = buf.split_at(total);
        buf = rest;
        next = Some(header.last_offset() + 1);
        if header.attributes & batch::ATTR_CONTROL != 0 {
            out.push(LoggedRecord {
                offset: header.base_offset,
                key: Vec::new(),
                value: None,
                producer_id: Some(header.producer_id),
                marker: Some(batch::control_type(this) == Some(batch::CONTROL_COMMIT)),
            });
            continue;
        }
        if header.compression() != 0 {
            continue;
        }
        let transactional = header.attributes & batch::ATTR_TRANSACTIONAL != 0;
        let mut pos = batch::HEADER_BYTES;
        for _ in 0..header.record_count.max(0) {
            let Some(mut rec) = parse_record(this, &mut pos, header.base_offset) else {
                break;
            };
            if transactional {
                rec.producer_id = Some(header.producer_id);
            }
            out.push(rec);
        }
    }
    (out, next)
}

fn parse_record(buf: &[u8], pos: &mut usize, base_offset: i64) -> Option<LoggedRecord> {
    let len = batch::read_varlong(buf, pos)?;
    let end = pos.checked_add(usize::try_from(len).ok()?)?;
    let rec = buf.get(*pos..end)?;
    *pos = end;
    let mut p = 1; // attributes
    batch::read_varlong(rec, &mut p)?; // timestamp delta
    let offset_delta = batch::read_varlong(rec, &mut p)?;
    let key = get_bytes(rec, &mut p)??.to_vec();
    let value = get_bytes(rec, &mut p)?.map(|v| v.to_vec());
    Some(LoggedRecord {
        offset: base_offset + offset_delta,
        key,
        value,
        producer_id: None,
        marker: None,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_round_trip() {
        let k = Key::Offset {
            group: "g".into(),
            topic: "t".into(),
            partition: 7,
        };
        let k_bytes = k.encode().unwrap();
        assert_eq!(Key::decode(&k_bytes), Some(k));
        let g = Key::Group { group: "g".into() };
        assert_eq!(Key::decode(&g.encode().unwrap()), Some(g));
        // Kafka's key version 0 has version 1's layout.
        let mut v0 = k_bytes.clone();
        v0[1] = 0;
        assert_eq!(Key::decode(&v0), Key::decode(&k_bytes));
        assert_eq!(
            k_bytes,
            [&[0, 1, 0, 1][..], b"g", &[0, 1], b"t", &[0, 0, 0, 7]].concat(),
            "Kafka's OffsetCommitKey v1: group, topic, partition"
        );
        // Truncated bytes from disk are rejected, not trusted.
        let e = Key::Group {
            group: "abc".into(),
        }
        .encode()
        .unwrap();
        assert_eq!(Key::decode(&e[..e.len() - 1]), None);
        // A string longer than a record string holds is an error, not a panic.
        let long = Key::Group {
            group: "g".repeat(40_000),
        };
        assert_eq!(long.encode(), Err(RecordError(40_000)));
        assert!(build_batch(&[], 0).is_none());
    }

    #[test]
    fn batches_round_trip_with_tombstones() {
        let recs = vec![
            (b"k1".to_vec(), Some(b"v1".to_vec())),
            (b"k2".to_vec(), None),
        ];
        let mut b = build_batch(&recs, 1000).unwrap().to_vec();
        batch::set_base_offset(&mut b, 10);
        let mut two = b.clone();
        two.extend_from_slice(&b);
        let (out, next) = parse_batches(&two);
        assert_eq!(next, Some(12));
        assert_eq!(out.len(), 4);
        assert_eq!(out[0].offset, 10);
        assert_eq!(out[1].offset, 11);
        assert_eq!(out[1].value, None);
        assert_eq!(out[0].value.as_deref(), Some(&b"v1"[..]));
    }
}
