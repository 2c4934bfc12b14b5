//! The bytes of a producer state snapshot: version 1.
//!
//! ```text
//! magic      4 bytes  "RBPS"
//! version    i16      1
//! crc        u32      CRC-32C of everything after this field (length and body)
//! length     i32      bytes of the body
//! body:
//!   offset   i64      the log offset the state is as of (the segment base it was taken at)
//!   producers  i32 count, each: id i64, epoch i16, last timestamp i64,
//!              batches i32 count (at most 5), each: first seq i32, last seq i32,
//!              base offset i64, last offset i64
//!   epochs     i32 count, each: leader epoch i32, start offset i64
//!   open txns  i32 count, each: producer id i64, first offset i64
//!   aborted    i32 count, each: producer id i64, first offset i64, marker offset i64
//! ```
//!
//! All integers big-endian, as Kafka writes its files. Decoding trusts nothing: every count
//! is checked against the bytes left, the CRC is checked before the body is read, and a
//! body that is not a state the log could have had (epochs that do not increase, a producer
//! twice) is refused.

use crate::producer::{AbortedTxn, BatchMeta, PartitionTxns, ProducerEntry, ProducerStates};
use crate::protocol::reader::Reader;
use crate::storage::epochs::EpochCache;
use thiserror::Error;

pub const MAGIC: &[u8; 4] = b"RBPS";
pub const VERSION: i16 = 1;
/// magic, version, crc, length.
const HEADER_BYTES: usize = 4 + 2 + 4 + 4;
const BATCH_BYTES: usize = 4 + 4 + 8 + 8;
const PRODUCER_MIN_BYTES: usize = 8 + 2 + 8 + 4;

/// The state of a partition log as of `offset`: what the batches below it made of the
/// producer states, the leader epochs and the transactions.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Snapshot {
    pub offset: i64,
    pub producers: ProducerStates,
    pub epochs: EpochCache,
    pub txns: PartitionTxns,
}

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum DecodeError {
    #[error("too short: {0} bytes")]
    Truncated(usize),
    #[error("not a producer snapshot (bad magic)")]
    Magic,
    #[error("unknown version {0} (this broker reads version {VERSION})")]
    Version(i16),
    #[error("CRC-32C mismatch: stored {stored:#010x}, computed {computed:#010x}")]
    Crc { stored: u32, computed: u32 },
    #[error("invalid contents: {0}")]
    Invalid(&'static str),
}

pub fn encode(s: &Snapshot) -> Vec<u8> {
    let mut body = Vec::new();
    body.extend_from_slice(&s.offset.to_be_bytes());
    let producers = s.producers.export();
    put_len(&mut body, producers.len());
    for p in &producers {
        body.extend_from_slice(&p.producer_id.to_be_bytes());
        body.extend_from_slice(&p.epoch.to_be_bytes());
        body.extend_from_slice(&p.last_timestamp.to_be_bytes());
        put_len(&mut body, p.batches.len());
        for b in &p.batches {
            body.extend_from_slice(&b.first_seq.to_be_bytes());
            body.extend_from_slice(&b.last_seq.to_be_bytes());
            body.extend_from_slice(&b.base_offset.to_be_bytes());
            body.extend_from_slice(&b.last_offset.to_be_bytes());
        }
    }
    let epochs = s.epochs.entries();
    put_len(&mut body, epochs.len());
    for (epoch, offset) in epochs {
        body.extend_from_slice(&epoch.to_be_bytes());
        body.extend_from_slice(&offset.to_be_bytes());
    }
    let open = s.txns.open();
    put_len(&mut body, open.len());
    for (producer_id, first) in open {
        body.extend_from_slice(&producer_id.to_be_bytes());
        body.extend_from_slice(&first.to_be_bytes());
    }
    let aborted = s.txns.aborted();
    put_len(&mut body, aborted.len());
    for a in aborted {
        body.extend_from_slice(&a.producer_id.to_be_bytes());
        body.extend_from_slice(&a.first_offset.to_be_bytes());
        body.extend_from_slice(&a.last_offset.to_be_bytes());
    }
    let mut out = Vec::with_capacity(HEADER_BYTES + body.len());
    out.extend_from_slice(MAGIC);
    out.extend_from_slice(&VERSION.to_be_bytes());
    let mut covered = Vec::with_capacity(4 + body.len());
    put_len(&mut covered, body.len());
    covered.extend_from_slice(&body);
    out.extend_from_slice(&crc32c::crc32c(&covered).to_be_bytes());
    out.extend_from_slice(&covered);
    out
}

/// Counts and lengths are i32 on disk; the log never holds 2^31 producers or epochs.
fn put_len(out: &mut Vec<u8>, n: usize) {
    let n = i32::try_from(n).unwrap_or(i32::MAX);
    out.extend_from_slice(&n.to_be_bytes());
}

pub fn decode(bytes: &[u8]) -> Result<Snapshot, DecodeError> {
    let mut r = Reader::new(bytes);
    let short = || DecodeError::Truncated(bytes.len());
    if r.take(4).ok_or_else(short)? != MAGIC {
        return Err(DecodeError::Magic);
    }
    let version = r.i16().ok_or_else(short)?;
    if version != VERSION {
        return Err(DecodeError::Version(version));
    }
    let stored = r
        .take(4)
        .and_then(|b| <[u8; 4]>::try_from(b).ok())
        .map(u32::from_be_bytes)
        .ok_or_else(short)?;
    let covered = r.take(r.remaining()).ok_or_else(short)?;
    let mut r = Reader::new(covered);
    let len = r.i32().ok_or_else(short)?;
    if usize::try_from(len).ok() != Some(r.remaining()) {
        // Cut short (or grown): the length tells before the CRC does.
        return Err(DecodeError::Truncated(bytes.len()));
    }
    let computed = crc32c::crc32c(covered);
    if stored != computed {
        return Err(DecodeError::Crc { stored, computed });
    }
    decode_body(&mut r).ok_or(DecodeError::Invalid("a field does not fit what is left"))?
}

/// `None` when a field runs past the end; `Some(Err)` when the fields read do not make a
/// state the log could have had.
fn decode_body(r: &mut Reader<'_>) -> Option<Result<Snapshot, DecodeError>> {
    let offset = r.i64()?;
    if offset < 0 {
        return Some(Err(DecodeError::Invalid("negative offset")));
    }
    let n = r.count(PRODUCER_MIN_BYTES)?;
    let mut producers = Vec::with_capacity(n);
    for _ in 0..n {
        let producer_id = r.i64()?;
        let epoch = r.i16()?;
        let last_timestamp = r.i64()?;
        let nb = r.count(BATCH_BYTES)?;
        let mut batches = Vec::with_capacity(nb);
        for _ in 0..nb {
            batches.push(BatchMeta {
                first_seq: r.i32()?,
                last_seq: r.i32()?,
                base_offset: r.i64()?,
                last_offset: r.i64()?,
            });
        }
        producers.push(ProducerEntry {
            producer_id,
            epoch,
            last_timestamp,
            batches,
        });
    }
    let n = r.count(12)?;
    let mut epochs = Vec::with_capacity(n);
    for _ in 0..n {
        epochs.push((r.i32()?, r.i64()?));
    }
    let n = r.count(16)?;
    let mut open = Vec::with_capacity(n);
    for _ in 0..n {
        open.push((r.i64()?, r.i64()?));
    }
    let n = r.count(24)?;
    let mut aborted = Vec::with_capacity(n);
    for _ in 0..n {
        aborted.push(AbortedTxn {
            producer_id: r.i64()?,
            first_offset: r.i64()?,
            last_offset: r.i64()?,
        });
    }
    if r.remaining() != 0 {
        return Some(Err(DecodeError::Invalid("bytes after the last field")));
    }
    let Some(producers) = ProducerStates::restore(producers) else {
        return Some(Err(DecodeError::Invalid("a producer entry is not valid")));
    };
    let Some(epochs) = EpochCache::from_entries(epochs) else {
        return Some(Err(DecodeError::Invalid("leader epochs out of order")));
    };
    let Some(txns) = PartitionTxns::restore(open, aborted) else {
        return Some(Err(DecodeError::Invalid(
            "transactions contradict each other",
        )));
    };
    Some(Ok(Snapshot {
        offset,
        producers,
        epochs,
        txns,
    }))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::producer::ProducerBatch;

    fn sample() -> Snapshot {
        let mut producers = ProducerStates::default();
        for (pid, epoch, n) in [(7i64, 0i16, 7i32), (3, 2, 2), (1_000_000, 5, 1)] {
            for seq in 0..n {
                let b = ProducerBatch {
                    producer_id: pid,
                    epoch,
                    first_seq: seq * 2,
                    last_offset_delta: 1,
                };
                let base = pid + i64::from(seq) * 10;
                producers.commit(&b, base, base + 1, 1_700_000_000_000 + base);
            }
        }
        producers.fence(42, 9);
        let mut epochs = EpochCache::default();
        epochs.assign(1, 0);
        epochs.assign(4, 17);
        let mut txns = PartitionTxns::default();
        txns.data(3, 5);
        txns.marker(3, 9, false);
        txns.data(7, 11);
        txns.data(8, 12);
        Snapshot {
            offset: 4096,
            producers,
            epochs,
            txns,
        }
    }

    #[test]
    fn a_snapshot_round_trips() {
        let s = sample();
        let bytes = encode(&s);
        assert_eq!(decode(&bytes), Ok(s));
        let empty = Snapshot {
            offset: 0,
            producers: ProducerStates::default(),
            epochs: EpochCache::default(),
            txns: PartitionTxns::default(),
        };
        assert_eq!(decode(&encode(&empty)), Ok(empty));
    }

    #[test]
    fn a_flipped_bit_anywhere_is_refused() {
        let bytes = encode(&sample());
        for i in 0..bytes.len() {
            for bit in [0x01u8, 0x80] {
                let mut bad = bytes.clone();
                bad[i] ^= bit;
                assert!(decode(&bad).is_err(), "flip at byte {i} accepted");
            }
        }
        let mut bad = bytes.clone();
        let last = bad.len() - 1;
        bad[last] ^= 1;
        assert!(matches!(decode(&bad), Err(DecodeError::Crc { .. })));
    }

    #[test]
    fn a_truncated_or_extended_file_is_refused() {
        let bytes = encode(&sample());
        for len in 0..bytes.len() {
            assert!(
                matches!(
                    decode(&bytes[..len]),
                    Err(DecodeError::Truncated(_) | DecodeError::Magic)
                ),
                "{len} bytes: {:?}",
                decode(&bytes[..len])
            );
        }
        let mut longer = bytes.clone();
        longer.push(0);
        assert!(matches!(decode(&longer), Err(DecodeError::Truncated(_))));
    }

    #[test]
    fn a_future_version_is_refused_by_its_number() {
        let mut bytes = encode(&sample());
        bytes[4..6].copy_from_slice(&2i16.to_be_bytes());
        assert_eq!(decode(&bytes), Err(DecodeError::Version(2)));
        assert_eq!(decode(b"RBPX\0\x01"), Err(DecodeError::Magic));
    }

    #[test]
    fn a_body_with_a_valid_crc_but_impossible_contents_is_refused() {
        // Lying counts and out-of-order epochs, each with a correct CRC.
        let reseal = |body: Vec<u8>| {
            let mut covered = Vec::new();
            put_len(&mut covered, body.len());
            covered.extend_from_slice(&body);
            let mut out = MAGIC.to_vec();
            out.extend_from_slice(&VERSION.to_be_bytes());
            out.extend_from_slice(&crc32c::crc32c(&covered).to_be_bytes());
            out.extend_from_slice(&covered);
            out
        };
        let mut body = 10i64.to_be_bytes().to_vec();
        body.extend_from_slice(&i32::MAX.to_be_bytes());
        assert!(matches!(
            decode(&reseal(body)),
            Err(DecodeError::Invalid(_))
        ));
        let mut body = 10i64.to_be_bytes().to_vec();
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&2i32.to_be_bytes());
        for (e, o) in [(5i32, 10i64), (3, 12)] {
            body.extend_from_slice(&e.to_be_bytes());
            body.extend_from_slice(&o.to_be_bytes());
        }
        body.extend_from_slice(&0i32.to_be_bytes());
        body.extend_from_slice(&0i32.to_be_bytes());
        assert_eq!(
            decode(&reseal(body)),
            Err(DecodeError::Invalid("leader epochs out of order"))
        );
    }
}
