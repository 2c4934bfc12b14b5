//! What a decoded request reserves: capacity × size of every `Vec` in it, plus
//! [`TAGGED_ENTRY_BYTES`] per unknown tagged field, the quantity the walker's estimate
//! bounds.

use super::super::TAGGED_ENTRY_BYTES;
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{
    FetchPartition, FetchTopic, ForgottenTopic, ReplicaState,
};
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::offset_for_leader_epoch_request::{
    OffsetForLeaderPartition, OffsetForLeaderTopic,
};
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::StrBytes;
use std::collections::BTreeMap;
use std::mem::size_of;

pub trait Footprint {
    fn footprint(&self) -> usize;
}

impl<T: Footprint> Footprint for Vec<T> {
    fn footprint(&self) -> usize {
        self.capacity() * size_of::<T>() + self.iter().map(Footprint::footprint).sum::<usize>()
    }
}

impl<T: Footprint> Footprint for Option<T> {
    fn footprint(&self) -> usize {
        self.as_ref().map_or(0, Footprint::footprint)
    }
}

fn tags(map: &BTreeMap<i32, Bytes>) -> usize {
    map.len() * TAGGED_ENTRY_BYTES
}

macro_rules! leaves {
    ($($t:ty),*) => {
        $(impl Footprint for $t {
            fn footprint(&self) -> usize {
                0
            }
        })*
    };
}

leaves!(
    i32,
    BrokerId,
    StrBytes,
    TopicName,
    GroupId,
    TransactionalId,
    ProducerId
);

/// `Type => [fields holding Vecs] tagged` (the last word when the type has a tag map).
macro_rules! footprint {
    ($($t:ty => [$($f:ident),*] $($tagged:ident)?;)*) => {
        $(impl Footprint for $t {
            fn footprint(&self) -> usize {
                0 $(+ self.$f.footprint())* $(+ footprint!(@$tagged self))?
            }
        })*
    };
    (@tagged $s:ident) => { tags(&$s.unknown_tagged_fields) };
}

footprint! {
    RequestHeader => [] tagged;
    ProduceRequest => [topic_data] tagged;
    TopicProduceData => [partition_data] tagged;
    PartitionProduceData => [] tagged;
    FetchRequest => [topics, forgotten_topics_data, replica_state] tagged;
    FetchTopic => [partitions] tagged;
    FetchPartition => [] tagged;
    ForgottenTopic => [partitions] tagged;
    ReplicaState => [] tagged;
    ListOffsetsRequest => [topics] tagged;
    ListOffsetsTopic => [partitions] tagged;
    ListOffsetsPartition => [] tagged;
    OffsetForLeaderEpochRequest => [topics] tagged;
    OffsetForLeaderTopic => [partitions] tagged;
    OffsetForLeaderPartition => [] tagged;
    MetadataRequest => [topics] tagged;
    MetadataRequestTopic => [] tagged;
    ApiVersionsRequest => [] tagged;
    CreateTopicsRequest => [topics] tagged;
    CreatableTopic => [assignments, configs] tagged;
    CreatableReplicaAssignment => [broker_ids] tagged;
    CreatableTopicConfig => [] tagged;
    DeleteTopicsRequest => [topics, topic_names] tagged;
    DeleteTopicState => [] tagged;
    InitProducerIdRequest => [] tagged;
    FindCoordinatorRequest => [coordinator_keys] tagged;
    JoinGroupRequest => [protocols] tagged;
    JoinGroupRequestProtocol => [] tagged;
    SyncGroupRequest => [assignments] tagged;
    SyncGroupRequestAssignment => [] tagged;
    HeartbeatRequest => [] tagged;
    LeaveGroupRequest => [members] tagged;
    MemberIdentity => [] tagged;
    OffsetCommitRequest => [topics] tagged;
    OffsetCommitRequestTopic => [partitions] tagged;
    OffsetCommitRequestPartition => [] tagged;
    OffsetFetchRequest => [topics, groups] tagged;
    OffsetFetchRequestTopic => [partition_indexes] tagged;
    OffsetFetchRequestGroup => [topics] tagged;
    OffsetFetchRequestTopics => [partition_indexes] tagged;
    ListGroupsRequest => [states_filter, types_filter] tagged;
    DescribeGroupsRequest => [groups] tagged;
    DeleteGroupsRequest => [groups_names] tagged;
    DescribeConfigsRequest => [resources] tagged;
    describe_configs_request::DescribeConfigsResource => [configuration_keys] tagged;
    AlterConfigsRequest => [resources] tagged;
    alter_configs_request::AlterConfigsResource => [configs] tagged;
    alter_configs_request::AlterableConfig => [] tagged;
    IncrementalAlterConfigsRequest => [resources] tagged;
    incremental_alter_configs_request::AlterConfigsResource => [configs] tagged;
    incremental_alter_configs_request::AlterableConfig => [] tagged;
    DescribeClusterRequest => [] tagged;
    DescribeProducersRequest => [topics] tagged;
    describe_producers_request::TopicRequest => [partition_indexes] tagged;
    CreatePartitionsRequest => [topics] tagged;
    create_partitions_request::CreatePartitionsTopic => [assignments] tagged;
    create_partitions_request::CreatePartitionsAssignment => [broker_ids] tagged;
    DeleteRecordsRequest => [topics] tagged;
    delete_records_request::DeleteRecordsTopic => [partitions] tagged;
    delete_records_request::DeleteRecordsPartition => [] tagged;
    DescribeLogDirsRequest => [topics] tagged;
    describe_log_dirs_request::DescribableLogDirTopic => [partitions] tagged;
    SaslHandshakeRequest => [];
    SaslAuthenticateRequest => [] tagged;
    DescribeUserScramCredentialsRequest => [users] tagged;
    describe_user_scram_credentials_request::UserName => [] tagged;
    AlterUserScramCredentialsRequest => [deletions, upsertions] tagged;
    alter_user_scram_credentials_request::ScramCredentialDeletion => [] tagged;
    alter_user_scram_credentials_request::ScramCredentialUpsertion => [] tagged;
    CreateAclsRequest => [creations] tagged;
    create_acls_request::AclCreation => [] tagged;
    DescribeAclsRequest => [] tagged;
    DeleteAclsRequest => [filters] tagged;
    delete_acls_request::DeleteAclsFilter => [] tagged;
    OffsetDeleteRequest => [topics];
    OffsetDeleteRequestTopic => [partitions];
    OffsetDeleteRequestPartition => [];
    AddPartitionsToTxnRequest => [transactions, v3_and_below_topics] tagged;
    add_partitions_to_txn_request::AddPartitionsToTxnTransaction => [topics] tagged;
    add_partitions_to_txn_request::AddPartitionsToTxnTopic => [partitions] tagged;
    AddOffsetsToTxnRequest => [] tagged;
    EndTxnRequest => [] tagged;
    TxnOffsetCommitRequest => [topics] tagged;
    txn_offset_commit_request::TxnOffsetCommitRequestTopic => [partitions] tagged;
    txn_offset_commit_request::TxnOffsetCommitRequestPartition => [] tagged;
    WriteTxnMarkersRequest => [markers] tagged;
    write_txn_markers_request::WritableTxnMarker => [topics] tagged;
    write_txn_markers_request::WritableTxnMarkerTopic => [partition_indexes] tagged;
    DescribeTransactionsRequest => [transactional_ids] tagged;
    ListTransactionsRequest => [state_filters, producer_id_filters] tagged;
}
