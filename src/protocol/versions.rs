//! The Kafka API versions this broker speaks: what ApiVersions advertises, what a request's
//! version is checked against, and what `precheck` has a schema for.

use kafka_protocol::messages::ApiKey;

/// Versions this broker implements, advertised by ApiVersions. Only versions whose
/// semantics are implemented are listed: Fetch stops before v13 (topic ids), Produce starts at v0 for librdkafka's compression check but
/// v0-2 are answered with UNSUPPORTED_VERSION (see `server/handlers/produce.rs`).
pub const SUPPORTED: &[(ApiKey, i16, i16)] = &[
    (ApiKey::Produce, 0, 9),
    (ApiKey::Fetch, 4, 12),
    // v7 MAX_TIMESTAMP, v8 EARLIEST_LOCAL, v9 LATEST_TIERED (no tiered storage: -1),
    // v10 timeout_ms (a leader answers at once). Kafka 4.0's range; kafka-python reads the
    // broker's release from it.
    (ApiKey::ListOffsets, 1, 10),
    (ApiKey::Metadata, 0, 12),
    (ApiKey::ApiVersions, 0, 3),
    (ApiKey::CreateTopics, 2, 7),
    (ApiKey::DeleteTopics, 1, 6),
    (ApiKey::FindCoordinator, 0, 4),
    (ApiKey::JoinGroup, 0, 9),
    (ApiKey::SyncGroup, 0, 5),
    (ApiKey::Heartbeat, 0, 4),
    (ApiKey::LeaveGroup, 0, 5),
    (ApiKey::OffsetCommit, 2, 8),
    (ApiKey::OffsetFetch, 1, 8),
    (ApiKey::ListGroups, 0, 4),
    (ApiKey::DescribeGroups, 0, 5),
    (ApiKey::DeleteGroups, 0, 2),
    (ApiKey::OffsetDelete, 0, 0),
    (ApiKey::InitProducerId, 0, 4),
    // DescribeConfigs v0 is not in the `kafka-protocol` crate; clients since Kafka 1.1 use v1+.
    (ApiKey::DescribeConfigs, 1, 4),
    (ApiKey::AlterConfigs, 0, 2),
    (ApiKey::IncrementalAlterConfigs, 0, 1),
    (ApiKey::DescribeCluster, 0, 2),
    (ApiKey::DescribeProducers, 0, 0),
    (ApiKey::CreatePartitions, 0, 3),
    (ApiKey::DeleteRecords, 0, 2),
    // DescribeLogDirs v0 is not in the `kafka-protocol` crate (v1 differs only in throttling).
    (ApiKey::DescribeLogDirs, 1, 4),
    // v0-1 lack current_leader_epoch; Kafka 4.0 starts at v2 too.
    (ApiKey::OffsetForLeaderEpoch, 2, 4),
    // Answered by a SASL listener's gate before authentication (server::sasl_gate);
    // anywhere else ILLEGAL_SASL_STATE. v0 handshakes are followed by raw tokens.
    (ApiKey::SaslHandshake, 0, 1),
    (ApiKey::SaslAuthenticate, 0, 2),
    // v0 is not in the `kafka-protocol` crate; clients since Kafka 2.0 use v1+.
    (ApiKey::DescribeAcls, 1, 3),
    (ApiKey::CreateAcls, 1, 3),
    (ApiKey::DeleteAcls, 1, 3),
    (ApiKey::DescribeUserScramCredentials, 0, 0),
    (ApiKey::AlterUserScramCredentials, 0, 0),
    // Transactions up to the versions before KIP-890's second part (transaction version
    // 2, an epoch bump per transaction); AddPartitionsToTxn v4 is brokers' batched form.
    (ApiKey::AddPartitionsToTxn, 0, 4),
    (ApiKey::AddOffsetsToTxn, 0, 3),
    (ApiKey::EndTxn, 0, 3),
    (ApiKey::TxnOffsetCommit, 0, 3),
    (ApiKey::WriteTxnMarkers, 1, 1),
    (ApiKey::DescribeTransactions, 0, 0),
    (ApiKey::ListTransactions, 0, 1),
];

pub fn supported(api: ApiKey, version: i16) -> bool {
    SUPPORTED
        .iter()
        .any(|(k, min, max)| *k == api && (*min..=*max).contains(&version))
}

/// The oldest Produce version decoded (record batches v2); older ones are answered
/// UNSUPPORTED_VERSION without decoding.
pub const PRODUCE_MIN_DECODED: i16 = 3;

/// The special timestamps of ListOffsets.
pub mod list_offsets {
    /// The high watermark (the last stable offset under read_committed).
    pub const LATEST: i64 = -1;
    /// The log start offset.
    pub const EARLIEST: i64 = -2;
    /// The record with the largest timestamp (v7+, KIP-734).
    pub const MAX_TIMESTAMP: i64 = -3;
    /// The first offset on local disk (v8+, KIP-405).
    pub const EARLIEST_LOCAL: i64 = -4;
    /// The last offset in tiered storage (v9+, KIP-1005).
    pub const LATEST_TIERED: i64 = -5;
}
