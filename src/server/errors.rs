//! The one place where internal errors become Kafka error codes.

use crate::storage::StorageError;

/// Kafka error codes the broker answers with (see Kafka's `Errors.java`).
pub mod code {
    pub const UNKNOWN_SERVER_ERROR: i16 = -1;
    pub const NONE: i16 = 0;
    pub const OFFSET_OUT_OF_RANGE: i16 = 1;
    pub const CORRUPT_MESSAGE: i16 = 2;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const MESSAGE_TOO_LARGE: i16 = 10;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// The Kafka error code for a storage error.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::InvalidBatch(_) => code::CORRUPT_MESSAGE,
        StorageError::BatchTooLarge { .. } => code::MESSAGE_TOO_LARGE,
        StorageError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        StorageError::Io(_) | StorageError::Failed(_) | StorageError::Corrupt { .. } => {
            code::KAFKA_STORAGE_ERROR
        }
        // The log was closed under the request (topic deleted, broker stopping): a
        // retriable code makes the client refresh metadata and retry.
        StorageError::Closed => code::NOT_LEADER_OR_FOLLOWER,
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::protocol::batch::BatchError;

    #[test]
    fn storage_errors_map_to_kafka_codes() {
        let bad = StorageError::InvalidBatch(BatchError::BadMagic(1));
        assert_eq!(storage_error_code(&bad), 2);
        let big = StorageError::BatchTooLarge { size: 2, max: 1 };
        assert_eq!(storage_error_code(&big), 10);
        let oor = StorageError::OffsetOutOfRange {
            offset: 9,
            log_start_offset: 0,
            high_watermark: 1,
        };
        assert_eq!(storage_error_code(&oor), 1);
        let io = StorageError::Io(std::io::Error::other("disk"));
        assert_eq!(storage_error_code(&io), 56);
    }
}
