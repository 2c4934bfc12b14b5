//! Errors of the storage engine. The server maps them to Kafka error codes at its edge.

use crate::protocol::batch::BatchError;
use std::io;
use thiserror::Error;

#[derive(Debug, Error)]
pub enum StorageError {
    /// The batch failed validation (length, magic, CRC, record count); nothing was written.
    #[error("invalid record batch: {0}")]
    InvalidBatch(#[from] BatchError),
    /// A batch's codec is unknown, its records are corrupt or inflate past the limit;
    /// nothing was written.
    #[error("{0}")]
    Compression(#[from] crate::compression::CompressionError),
    /// The idempotent producer checks refused the append; nothing was written.
    #[error("{0}")]
    Producer(#[from] crate::producer::ProducerError),
    /// A batch breaks a rule of what clients may write (its record framing, control or
    /// transactional bits, producer fields); nothing was written.
    #[error("invalid record: {0}")]
    InvalidRecord(String),
    /// A batch has records without a key and its topic is compacted; nothing was written.
    /// `indexes` are the first of them by their index in the batch (at most one per
    /// `admit::MIN_RECORD_BYTES` of the batch), `total` how many there were.
    #[error("{total} records without a key, which a compacted topic requires")]
    KeylessRecords { indexes: Vec<i32>, total: u32 },
    /// A batch's timestamps are outside `message.timestamp.before/after.max.ms`.
    #[error("timestamp {timestamp} is {what} the broker's time {now} by more than {bound} ms")]
    InvalidTimestamp {
        timestamp: i64,
        now: i64,
        what: &'static str,
        bound: u64,
    },
    /// The append is larger than `max_batch_bytes` or a segment; nothing was written.
    #[error("record batch of {size} bytes exceeds the limit of {max} bytes")]
    BatchTooLarge { size: u64, max: u64 },
    /// A read asked for an offset outside `[log_start_offset, high_watermark]`.
    #[error("offset {offset} is out of range [{log_start_offset}, {high_watermark}]")]
    OffsetOutOfRange {
        offset: i64,
        log_start_offset: i64,
        high_watermark: i64,
    },
    /// The disk failed. The log stops accepting appends: after a failed write or fdatasync
    /// nothing tells which acknowledged bytes are safe, so only a restart (and recovery)
    /// may bring it back.
    #[error("storage IO failed: {0}")]
    Io(#[from] io::Error),
    #[error("log {0} has failed after an IO error and accepts no more appends")]
    Failed(String),
    /// The disk is full: the write of queued batches failed with ENOSPC (or EDQUOT) and
    /// nothing of it was acknowledged. Appends are refused until a write succeeds again
    /// (the log retries at the next append or tick); reads keep working.
    #[error("no space left for the log: {0}")]
    NoSpace(String),
    #[error("log is closed")]
    Closed,
    /// The append was refused before it got an offset, with this Kafka error code (a
    /// transactional batch its transaction coordinator did not confirm); nothing was
    /// written.
    #[error("{reason}")]
    Refused { code: i16, reason: String },
    #[error("corrupt data in {path}: {reason}")]
    Corrupt { path: String, reason: String },
}

pub type Result<T, E = StorageError> = std::result::Result<T, E>;

impl StorageError {
    /// The Kafka error code a client gets for this error.
    pub fn code(&self) -> i16 {
        use crate::protocol::code;
        match self {
            StorageError::InvalidBatch(_) => code::CORRUPT_MESSAGE,
            StorageError::BatchTooLarge { .. } => code::MESSAGE_TOO_LARGE,
            StorageError::Compression(c) => c.code(),
            StorageError::Producer(p) => p.code(),
            StorageError::InvalidRecord(_) | StorageError::KeylessRecords { .. } => {
                code::INVALID_RECORD
            }
            StorageError::InvalidTimestamp { .. } => code::INVALID_TIMESTAMP,
            StorageError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
            StorageError::Io(_)
            | StorageError::Failed(_)
            | StorageError::NoSpace(_)
            | StorageError::Corrupt { .. } => code::KAFKA_STORAGE_ERROR,
            // The log was closed under the request (topic deleted, broker stopping): a
            // retriable code makes the client refresh metadata and retry.
            StorageError::Closed => code::NOT_LEADER_OR_FOLLOWER,
            StorageError::Refused { code, .. } => *code,
        }
    }
}

impl StorageError {
    pub fn corrupt(path: &std::path::Path, reason: impl Into<String>) -> StorageError {
        StorageError::Corrupt {
            path: path.display().to_string(),
            reason: reason.into(),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::compression::CompressionError;
    use crate::producer::ProducerError;
    use crate::protocol::batch::BatchError;

    #[test]
    fn storage_errors_map_to_kafka_codes() {
        let cases: Vec<(StorageError, i16)> = vec![
            (StorageError::InvalidBatch(BatchError::BadMagic(1)), 2),
            (StorageError::BatchTooLarge { size: 2, max: 1 }, 10),
            (
                StorageError::OffsetOutOfRange {
                    offset: 9,
                    log_start_offset: 0,
                    high_watermark: 1,
                },
                1,
            ),
            (StorageError::Io(std::io::Error::other("disk")), 56),
            (StorageError::Closed, 6),
            (StorageError::NoSpace("full".into()), 56),
            (StorageError::InvalidRecord("x".into()), 87),
            (
                StorageError::KeylessRecords {
                    indexes: vec![0],
                    total: 1,
                },
                87,
            ),
            (CompressionError::Unsupported(5).into(), 76),
            (CompressionError::Corrupt("x".into()).into(), 2),
            (CompressionError::TooLarge { limit: 1 }.into(), 10),
            (
                ProducerError::StaleEpoch {
                    producer_id: 1,
                    epoch: 0,
                    current: 1,
                }
                .into(),
                47,
            ),
            (
                ProducerError::OutOfOrder {
                    producer_id: 1,
                    expected: 1,
                    first_seq: 3,
                }
                .into(),
                45,
            ),
            (
                ProducerError::UnknownProducerId { producer_id: 1 }.into(),
                59,
            ),
        ];
        for (e, c) in cases {
            assert_eq!(e.code(), c, "{e:?}");
        }
    }
}
