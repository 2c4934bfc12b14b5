//! What a client's batches must satisfy before the log takes them, beyond length, magic
//! and CRC (`protocol::batch::validate_batches`). Kafka checks the same on every topic:
//!
//! - the codec is one Kafka has; control batches come only from the broker (the
//!   transaction coordinator's markers), and a transactional batch has a producer id;
//! - an idempotent batch names a producer id this broker issued (its epoch and sequence
//!   are the producer state's to judge);
//! - with CreateTime, every timestamp is within `message.timestamp.before.max.ms` /
//!   `after.max.ms` of the broker clock (a far-future timestamp would pin its segment
//!   against retention);
//! - on a compacted topic (`cleanup.policy` has `compact`), every record has a key
//!   (INVALID_RECORD otherwise, as Kafka answers, naming each keyless record by its index
//!   in the batch: ProduceResponse `record_errors`);
//! - the records agree with the header: the count, each offset delta in order, every
//!   length inside its record. Compressed batches are decompressed for this (bounded, and
//!   streamed: nothing of them is kept), as Kafka does, so no batch that would stop its
//!   partition's consumers is ever stored.
//!
//! The record walk costs CPU in proportion to the records. It runs on the reactor up to a
//! small budget of decompressed bytes; a batch that needs more is checked again off the
//! reactor (`Storage::offload`), so a large or adversarial batch cannot stall the other
//! clients of the shard.

use super::error::{Result, StorageError};
use crate::compression::{self, Codec, CompressionError};
use crate::config::LogConfig;
use crate::producer::ProducerError;
use crate::protocol::batch::{ATTR_CONTROL, ATTR_TRANSACTIONAL, BatchHeader, HEADER_BYTES};
use crate::protocol::records::{self, FramingError, SliceSource, StreamSource};
use std::ops::Range;

/// Decompressed bytes one batch may be walked on the reactor before the check moves off it.
pub const INLINE_WALK_BYTES: u64 = 1 << 20;

/// Kafka's "no timestamp".
const NO_TIMESTAMP: i64 = -1;

/// The fewest bytes a record takes in an uncompressed batch (length, attributes, timestamp
/// and offset deltas, key and value lengths, header count: one byte each). Keyless records
/// are listed by index up to one per this many bytes of their batch, so the list (and the
/// `record_errors` answered from it) stays smaller than the batch the client sent, even
/// for a compressed batch of millions of tiny records; every keyless record of an
/// uncompressed batch is listed.
pub const MIN_RECORD_BYTES: usize = 7;

/// The checks that need only the headers.
pub fn check_headers(
    headers: &[(BatchHeader, Range<usize>)],
    config: &LogConfig,
    now_ms: i64,
    issued_below: Option<i64>,
) -> Result<()> {
    for (h, _) in headers {
        Codec::from_attributes(h.attributes)?;
        if h.attributes & ATTR_CONTROL != 0 {
            return Err(StorageError::InvalidRecord(
                "clients may not write control batches".into(),
            ));
        }
        if h.attributes & ATTR_TRANSACTIONAL != 0 && h.producer_id < 0 {
            return Err(StorageError::InvalidRecord(
                "a transactional batch needs a producer id".into(),
            ));
        }
        if h.producer_id >= 0 && issued_below.is_some_and(|below| h.producer_id >= below) {
            return Err(ProducerError::UnknownProducerId {
                producer_id: h.producer_id,
            }
            .into());
        }
        if !config.log_append_time {
            check_timestamp(h.base_timestamp, config, now_ms)?;
            check_timestamp(h.max_timestamp, config, now_ms)?;
        }
    }
    Ok(())
}

fn check_timestamp(ts: i64, config: &LogConfig, now_ms: i64) -> Result<()> {
    if ts == NO_TIMESTAMP {
        return Ok(());
    }
    let out = |what, bound| StorageError::InvalidTimestamp {
        timestamp: ts,
        now: now_ms,
        what,
        bound,
    };
    let diff = i128::from(ts) - i128::from(now_ms);
    if let Some(after) = config.timestamp_after_max_ms
        && diff > i128::from(after)
    {
        return Err(out("ahead of", after));
    }
    if let Some(before) = config.timestamp_before_max_ms
        && -diff > i128::from(before)
    {
        return Err(out("behind", before));
    }
    Ok(())
}

/// How far a walk may go: the decompressed bytes it may read, and whether running out of
/// them means "try again off the reactor" rather than "too large".
#[derive(Clone, Copy)]
pub struct WalkBudget {
    pub bytes: u64,
    pub is_inline: bool,
}

/// What walking a batch's records found.
pub enum Walked {
    Ok,
    /// The inline budget ran out: walk it again off the reactor.
    NeedsOffload,
}

/// Walks the records of one whole, CRC-checked batch and checks every record timestamp.
pub fn walk_batch(
    header: &BatchHeader,
    batch: &[u8],
    config: &LogConfig,
    now_ms: i64,
    budget: WalkBudget,
) -> Result<Walked> {
    let codec = Codec::from_attributes(header.attributes)?;
    let payload = batch
        .get(HEADER_BYTES..)
        .ok_or_else(|| StorageError::InvalidRecord("batch shorter than its header".into()))?;
    let check_times = !config.log_append_time && header.base_timestamp != NO_TIMESTAMP;
    let mut visit = |index: i32, delta: i64| -> std::result::Result<(), FramingError> {
        // Consumers add every delta to the base timestamp, whatever the timestamp type
        // (the kafka-protocol crate panics on overflow in debug builds): no record's
        // timestamp may overflow, even where its value is not checked.
        let Some(ts) = header.base_timestamp.checked_add(delta) else {
            return Err(FramingError::Bad {
                index,
                what: "timestamp overflows",
            });
        };
        if !check_times {
            return Ok(());
        }
        check_timestamp(ts, config, now_ms).map_err(|_| FramingError::Bad {
            index,
            what: "timestamp outside message.timestamp.before/after.max.ms",
        })
    };
    let mut visit = KeyCheck {
        inner: &mut visit,
        need_key: config.cleanup_compact,
        keyless: Vec::new(),
        keyless_total: 0,
        listed_max: (batch.len() / MIN_RECORD_BYTES).max(1),
    };
    let walked = if codec == Codec::None {
        records::walk(
            &mut SliceSource::new(payload),
            header.record_count,
            &mut visit,
        )
    } else {
        let limit = usize::try_from(budget.bytes).unwrap_or(usize::MAX);
        let reader = compression::reader(codec, payload, limit)?;
        records::walk(
            &mut StreamSource::new(reader, budget.bytes),
            header.record_count,
            &mut visit,
        )
    };
    match walked {
        Ok(()) if visit.keyless_total > 0 => Err(StorageError::KeylessRecords {
            indexes: visit.keyless,
            total: visit.keyless_total,
        }),
        Ok(()) => Ok(Walked::Ok),
        Err(FramingError::TooLarge { .. }) if budget.is_inline => Ok(Walked::NeedsOffload),
        Err(FramingError::TooLarge { limit }) => Err(CompressionError::TooLarge {
            limit: usize::try_from(limit).unwrap_or(usize::MAX),
        }
        .into()),
        Err(FramingError::Corrupt(msg)) => Err(CompressionError::Corrupt(msg).into()),
        Err(e) => Err(StorageError::InvalidRecord(e.to_string())),
    }
}

/// A visitor that finds the records without a key (compacted topics): all of them, as
/// Kafka names each in its answer, not only the first.
struct KeyCheck<'a, V> {
    inner: &'a mut V,
    need_key: bool,
    /// The batch indexes of the first keyless records, at most `listed_max`.
    keyless: Vec<i32>,
    keyless_total: u32,
    listed_max: usize,
}

impl<V: records::Visit> records::Visit for KeyCheck<'_, V> {
    fn record(
        &mut self,
        index: i32,
        timestamp_delta: i64,
    ) -> std::result::Result<(), FramingError> {
        self.inner.record(index, timestamp_delta)
    }
    fn key(&mut self, index: i32, present: bool) -> std::result::Result<(), FramingError> {
        if self.need_key && !present {
            self.keyless_total = self.keyless_total.saturating_add(1);
            if self.keyless.len() < self.listed_max {
                self.keyless.push(index);
            }
        }
        Ok(())
    }
}

/// Walks every batch of a request within `budget`. `Ok(false)` when a batch needs more
/// than an inline budget allows.
pub fn walk_all(
    headers: &[(BatchHeader, Range<usize>)],
    batches: &[u8],
    config: &LogConfig,
    now_ms: i64,
    budget: WalkBudget,
) -> Result<bool> {
    for (h, range) in headers {
        let batch = batches
            .get(range.clone())
            .ok_or_else(|| StorageError::InvalidRecord("batch outside the request".into()))?;
        if let Walked::NeedsOffload = walk_batch(h, batch, config, now_ms, budget)? {
            return Ok(false);
        }
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::{self, testing::build_batch, validate_batches};

    fn headers(b: &[u8]) -> Vec<(BatchHeader, Range<usize>)> {
        validate_batches(b).unwrap()
    }

    const NOW: i64 = 1_700_000_000_000;

    #[test]
    fn header_rules() {
        let config = LogConfig::default();
        let ok = build_batch(&[b"a"], NOW);
        check_headers(&headers(&ok), &config, NOW, Some(10)).unwrap();
        // Two hours ahead: beyond the default one-hour bound.
        let future = build_batch(&[b"a"], NOW + 7_200_000);
        assert!(matches!(
            check_headers(&headers(&future), &config, NOW, None),
            Err(StorageError::InvalidTimestamp { .. })
        ));
        // Far in the past is fine by default (no before bound)...
        let past = build_batch(&[b"a"], 1000);
        check_headers(&headers(&past), &config, NOW, None).unwrap();
        // ...and LogAppendTime topics take any timestamp.
        let stamped = LogConfig {
            log_append_time: true,
            ..LogConfig::default()
        };
        check_headers(&headers(&future), &stamped, NOW, None).unwrap();
        // Producer ids this broker never issued.
        let mut idem = build_batch(&[b"a"], NOW);
        batch::set_producer(&mut idem, 42, 0, 0);
        check_headers(&headers(&idem), &config, NOW, Some(43)).unwrap();
        assert!(matches!(
            check_headers(&headers(&idem), &config, NOW, Some(42)),
            Err(StorageError::Producer(
                ProducerError::UnknownProducerId { .. }
            ))
        ));
    }

    #[test]
    fn compacted_topics_refuse_records_without_a_key() {
        use crate::protocol::batch::testing::keyed;
        let compacted = LogConfig {
            cleanup_compact: true,
            ..LogConfig::default()
        };
        let full = WalkBudget {
            bytes: 1 << 20,
            is_inline: true,
        };
        let keyless = build_batch(&[b"a"], NOW);
        let mixed = keyed(&[(Some(b"k"), Some(b"v")), (None, Some(b"v"))], NOW);
        let with_keys = keyed(&[(Some(b"k"), Some(b"v")), (Some(b"k"), None)], NOW);
        for (b, keyless) in [(&keyless, vec![0]), (&mixed, vec![1])] {
            match walk_all(&headers(b), b, &compacted, NOW, full) {
                Err(StorageError::KeylessRecords { indexes, total }) => {
                    assert_eq!((indexes, total), (keyless, 1));
                }
                other => panic!("{:?}", other.err()),
            }
            assert!(walk_all(&headers(b), b, &LogConfig::default(), NOW, full).unwrap());
        }
        assert!(walk_all(&headers(&with_keys), &with_keys, &compacted, NOW, full).unwrap());
        // Compressed: the records are walked decompressed.
        let mut z = mixed[..HEADER_BYTES].to_vec();
        z.extend_from_slice(&compression::compress(Codec::Zstd, &mixed[HEADER_BYTES..]));
        let length = (z.len() - batch::LOG_OVERHEAD) as i32;
        batch::set_length_attributes_and_crc(&mut z, length, Codec::Zstd as i16);
        assert!(matches!(
            walk_all(&headers(&z), &z, &compacted, NOW, full),
            Err(StorageError::KeylessRecords { total: 1, .. })
        ));
    }

    #[test]
    fn every_keyless_record_is_named_by_its_index_in_the_batch() {
        use crate::protocol::batch::testing::{KeyValue, keyed};
        let compacted = LogConfig {
            cleanup_compact: true,
            ..LogConfig::default()
        };
        let full = WalkBudget {
            bytes: 1 << 20,
            is_inline: true,
        };
        // As librdkafka's test 0011 sends them: every tenth record of 100 without a key.
        let records: Vec<KeyValue<'_>> = (0..100)
            .map(|i| {
                let key: Option<&[u8]> = if i % 10 == 0 { None } else { Some(b"key") };
                (key, Some(&b"value"[..]))
            })
            .collect();
        let b = keyed(&records, NOW);
        match walk_all(&headers(&b), &b, &compacted, NOW, full) {
            Err(StorageError::KeylessRecords { indexes, total }) => {
                assert_eq!(indexes, (0..100).step_by(10).collect::<Vec<i32>>());
                assert_eq!(total, 10);
            }
            other => panic!("{:?}", other.err()),
        }
        // A compressed batch of many tiny keyless records: all are counted, but only one
        // per MIN_RECORD_BYTES of the batch as sent is listed.
        let tiny: Vec<KeyValue<'_>> = vec![(None, None); 20_000];
        let plain = keyed(&tiny, NOW);
        let mut z = plain[..HEADER_BYTES].to_vec();
        z.extend_from_slice(&compression::compress(Codec::Zstd, &plain[HEADER_BYTES..]));
        let length = (z.len() - batch::LOG_OVERHEAD) as i32;
        batch::set_length_attributes_and_crc(&mut z, length, Codec::Zstd as i16);
        match walk_all(&headers(&z), &z, &compacted, NOW, full) {
            Err(StorageError::KeylessRecords { indexes, total }) => {
                assert_eq!(total, 20_000);
                assert_eq!(indexes.len(), z.len() / MIN_RECORD_BYTES);
                assert!(indexes.len() < 20_000);
                assert!(indexes.iter().copied().eq(0..indexes.len() as i32));
            }
            other => panic!("{:?}", other.err()),
        }
        // The uncompressed batch of the same records lists every one of them.
        match walk_all(&headers(&plain), &plain, &compacted, NOW, full) {
            Err(StorageError::KeylessRecords { indexes, total }) => {
                assert_eq!((indexes.len(), total), (20_000, 20_000));
            }
            other => panic!("{:?}", other.err()),
        }
    }

    #[test]
    fn record_timestamps_never_overflow_whatever_the_timestamp_type() {
        // Found by tests/fuzz_records.rs: base timestamp i64::MAX, the second record's
        // delta 1. Admitted on LogAppendTime topics (whose timestamps are not checked), it
        // made consumers that add the delta overflow.
        let mut b = build_batch(&[b"a", b"b"], i64::MAX - 2);
        b[27..35].copy_from_slice(&i64::MAX.to_be_bytes());
        let length = (b.len() - batch::LOG_OVERHEAD) as i32;
        batch::set_length_attributes_and_crc(&mut b, length, 0);
        let full = WalkBudget {
            bytes: 1 << 20,
            is_inline: false,
        };
        for log_append_time in [false, true] {
            let config = LogConfig {
                log_append_time,
                timestamp_after_max_ms: None,
                ..LogConfig::default()
            };
            assert!(
                matches!(
                    walk_all(&headers(&b), &b, &config, NOW, full),
                    Err(StorageError::InvalidRecord(_))
                ),
                "log_append_time={log_append_time}"
            );
        }
        // The largest timestamp itself is fine.
        let top = build_batch(&[b"a", b"b"], i64::MAX - 2);
        let stamped = LogConfig {
            log_append_time: true,
            ..LogConfig::default()
        };
        assert!(walk_all(&headers(&top), &top, &stamped, NOW, full).unwrap());
    }

    #[test]
    fn compressed_records_are_walked_and_large_ones_go_off_the_reactor() {
        let config = LogConfig::default();
        let plain = build_batch(&[&[b'x'; 3000], &[b'y'; 3000]], NOW);
        let records = &plain[HEADER_BYTES..];
        for codec in [Codec::Gzip, Codec::Snappy, Codec::Lz4, Codec::Zstd] {
            let mut b = plain[..HEADER_BYTES].to_vec();
            b.extend_from_slice(&compression::compress(codec, records));
            let length = (b.len() - batch::LOG_OVERHEAD) as i32;
            batch::set_length_attributes_and_crc(&mut b, length, codec as i16);
            let hs = headers(&b);
            let roomy = WalkBudget {
                bytes: 1 << 20,
                is_inline: true,
            };
            assert!(walk_all(&hs, &b, &config, NOW, roomy).unwrap(), "{codec:?}");
            let tight = WalkBudget {
                bytes: 4000,
                is_inline: true,
            };
            assert!(
                !walk_all(&hs, &b, &config, NOW, tight).unwrap(),
                "{codec:?}"
            );
            let off = WalkBudget {
                bytes: 4000,
                is_inline: false,
            };
            assert!(walk_all(&hs, &b, &config, NOW, off).is_err(), "{codec:?}");
            // The same records claiming three of them: refused.
            let mut lie = b.clone();
            lie[batch::HEADER_BYTES - 4..batch::HEADER_BYTES].copy_from_slice(&3i32.to_be_bytes());
            lie[23..27].copy_from_slice(&2i32.to_be_bytes());
            let length = (lie.len() - batch::LOG_OVERHEAD) as i32;
            batch::set_length_attributes_and_crc(&mut lie, length, codec as i16);
            let hs = headers(&lie);
            assert!(matches!(
                walk_all(&hs, &lie, &config, NOW, roomy),
                Err(StorageError::InvalidRecord(_))
            ));
        }
    }
}
