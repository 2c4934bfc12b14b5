//! The one place where internal errors become Kafka error codes.

use crate::compression::CompressionError;
use crate::group::GroupError;
use crate::producer::ProducerError;
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
    pub const OFFSET_METADATA_TOO_LARGE: i16 = 12;
    pub const COORDINATOR_LOAD_IN_PROGRESS: i16 = 14;
    pub const COORDINATOR_NOT_AVAILABLE: i16 = 15;
    pub const NOT_COORDINATOR: i16 = 16;
    pub const INVALID_TOPIC_EXCEPTION: i16 = 17;
    pub const INVALID_REQUIRED_ACKS: i16 = 21;
    pub const INVALID_TIMESTAMP: i16 = 32;
    pub const ILLEGAL_GENERATION: i16 = 22;
    pub const INCONSISTENT_GROUP_PROTOCOL: i16 = 23;
    pub const INVALID_GROUP_ID: i16 = 24;
    pub const UNKNOWN_MEMBER_ID: i16 = 25;
    pub const INVALID_SESSION_TIMEOUT: i16 = 26;
    pub const REBALANCE_IN_PROGRESS: i16 = 27;
    pub const UNSUPPORTED_VERSION: i16 = 35;
    pub const TRANSACTIONAL_ID_AUTHORIZATION_FAILED: i16 = 53;
    pub const OUT_OF_ORDER_SEQUENCE_NUMBER: i16 = 45;
    pub const INVALID_PRODUCER_EPOCH: i16 = 47;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const INVALID_CONFIG: i16 = 40;
    pub const INVALID_REQUEST: i16 = 42;
    pub const POLICY_VIOLATION: i16 = 44;
    pub const KAFKA_STORAGE_ERROR: i16 = 56;
    pub const UNKNOWN_PRODUCER_ID: i16 = 59;
    pub const NON_EMPTY_GROUP: i16 = 68;
    pub const UNSUPPORTED_COMPRESSION_TYPE: i16 = 76;
    pub const GROUP_ID_NOT_FOUND: i16 = 69;
    pub const MEMBER_ID_REQUIRED: i16 = 79;
    pub const FENCED_INSTANCE_ID: i16 = 82;
    pub const GROUP_SUBSCRIBED_TO_TOPIC: i16 = 86;
    pub const PRODUCER_FENCED: i16 = 90;
    pub const INVALID_RECORD: i16 = 87;
    pub const UNKNOWN_TOPIC_ID: i16 = 100;
}

/// The Kafka error code for a storage error.
pub fn storage_error_code(e: &StorageError) -> i16 {
    match e {
        StorageError::InvalidBatch(_) => code::CORRUPT_MESSAGE,
        StorageError::BatchTooLarge { .. } => code::MESSAGE_TOO_LARGE,
        StorageError::Compression(c) => compression_error_code(c),
        // Since Kafka 2.7 (KIP-588) Produce answers a stale epoch with
        // INVALID_PRODUCER_EPOCH, which producers treat as abortable; PRODUCER_FENCED is
        // for the transactional APIs.
        StorageError::Producer(ProducerError::StaleEpoch { .. }) => code::INVALID_PRODUCER_EPOCH,
        StorageError::Producer(ProducerError::OutOfOrder { .. }) => {
            code::OUT_OF_ORDER_SEQUENCE_NUMBER
        }
        StorageError::Producer(ProducerError::UnknownProducerId { .. }) => {
            code::UNKNOWN_PRODUCER_ID
        }
        StorageError::InvalidRecord(_) => code::INVALID_RECORD,
        StorageError::InvalidTimestamp { .. } => code::INVALID_TIMESTAMP,
        StorageError::OffsetOutOfRange { .. } => code::OFFSET_OUT_OF_RANGE,
        StorageError::Io(_) | StorageError::Failed(_) | StorageError::Corrupt { .. } => {
            code::KAFKA_STORAGE_ERROR
        }
        // The log was closed under the request (topic deleted, broker stopping): a
        // retriable code makes the client refresh metadata and retry.
        StorageError::Closed => code::NOT_LEADER_OR_FOLLOWER,
    }
}

/// The Kafka error code for a codec error.
pub fn compression_error_code(e: &CompressionError) -> i16 {
    match e {
        CompressionError::Unsupported(_) => code::UNSUPPORTED_COMPRESSION_TYPE,
        CompressionError::Corrupt(_) => code::CORRUPT_MESSAGE,
        // Records that inflate past the limit: too large to store, as a huge batch is.
        CompressionError::TooLarge { .. } => code::MESSAGE_TOO_LARGE,
    }
}

/// The Kafka error code for a consumer-group error.
pub fn group_error_code(e: &GroupError) -> i16 {
    match e {
        GroupError::UnknownMemberId => code::UNKNOWN_MEMBER_ID,
        GroupError::IllegalGeneration => code::ILLEGAL_GENERATION,
        GroupError::RebalanceInProgress => code::REBALANCE_IN_PROGRESS,
        GroupError::CoordinatorNotAvailable => code::COORDINATOR_NOT_AVAILABLE,
        GroupError::NotCoordinator => code::NOT_COORDINATOR,
        GroupError::LoadInProgress => code::COORDINATOR_LOAD_IN_PROGRESS,
        GroupError::InvalidGroupId => code::INVALID_GROUP_ID,
        GroupError::InconsistentGroupProtocol => code::INCONSISTENT_GROUP_PROTOCOL,
        GroupError::GroupIdNotFound => code::GROUP_ID_NOT_FOUND,
        GroupError::NonEmptyGroup => code::NON_EMPTY_GROUP,
        GroupError::FencedInstanceId => code::FENCED_INSTANCE_ID,
        GroupError::MemberIdRequired => code::MEMBER_ID_REQUIRED,
        GroupError::InvalidSessionTimeout => code::INVALID_SESSION_TIMEOUT,
        GroupError::UnknownTopicOrPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
        GroupError::GroupSubscribedToTopic => code::GROUP_SUBSCRIBED_TO_TOPIC,
        GroupError::OffsetMetadataTooLarge => code::OFFSET_METADATA_TOO_LARGE,
        GroupError::InvalidRequest => code::INVALID_REQUEST,
        // A commit whose append failed: the offsets partition went away under it (the
        // client finds the coordinator again) or the disk failed.
        GroupError::Storage(StorageError::Closed) => code::NOT_COORDINATOR,
        GroupError::Storage(s) => storage_error_code(s),
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
        let cases = [
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
        ];
        for (e, c) in cases {
            let e: StorageError = e;
            assert_eq!(storage_error_code(&e), c, "{e:?}");
        }
    }

    #[test]
    fn group_errors_map_to_kafka_codes() {
        let cases = [
            (GroupError::UnknownMemberId, 25),
            (GroupError::IllegalGeneration, 22),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::NotCoordinator, 16),
            (GroupError::InvalidGroupId, 24),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::UnknownTopicOrPartition, 3),
            (GroupError::FencedInstanceId, 82),
            (GroupError::MemberIdRequired, 79),
            (GroupError::GroupSubscribedToTopic, 86),
        ];
        for (e, c) in cases {
            assert_eq!(group_error_code(&e), c, "{e:?}");
        }
    }
}
