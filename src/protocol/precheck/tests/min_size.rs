//! The schema's minimum sizes are exact: a struct at its defaults (empty strings and
//! arrays, nulls, no tagged fields) encodes, by the crate, to exactly the minimum the
//! walker divides counts by. Too large a minimum would refuse honest requests; too small
//! would let a count reserve more than the bytes can fill.

use super::super::schema::{self, Elem, StructSchema, Ty};
use kafka_protocol::messages::create_topics_request::*;
use kafka_protocol::messages::delete_topics_request::*;
use kafka_protocol::messages::fetch_request::*;
use kafka_protocol::messages::join_group_request::*;
use kafka_protocol::messages::leave_group_request::*;
use kafka_protocol::messages::list_offsets_request::*;
use kafka_protocol::messages::metadata_request::*;
use kafka_protocol::messages::offset_commit_request::*;
use kafka_protocol::messages::offset_delete_request::*;
use kafka_protocol::messages::offset_fetch_request::*;
use kafka_protocol::messages::offset_for_leader_epoch_request::*;
use kafka_protocol::messages::produce_request::*;
use kafka_protocol::messages::sync_group_request::*;
use kafka_protocol::messages::*;
use kafka_protocol::protocol::Encodable;

/// The encoded size of the crate's default value of the struct named `name`.
fn default_size(name: &str, v: i16) -> Option<usize> {
    // Types whose names repeat across APIs, by the schema's names for them.
    fn size<T: Encodable + Default>(v: i16) -> Option<usize> {
        Some(T::default().compute_size(v).unwrap())
    }
    let configs = match name {
        "DescribeConfigsResource" => size::<describe_configs_request::DescribeConfigsResource>(v),
        "AlterConfigsResource" => size::<alter_configs_request::AlterConfigsResource>(v),
        "AlterableConfig" => size::<alter_configs_request::AlterableConfig>(v),
        "IncrementalAlterConfigsResource" => {
            size::<incremental_alter_configs_request::AlterConfigsResource>(v)
        }
        "IncrementalAlterableConfig" => {
            size::<incremental_alter_configs_request::AlterableConfig>(v)
        }
        "DescribeProducersTopicRequest" => size::<describe_producers_request::TopicRequest>(v),
        "CreatePartitionsTopic" => size::<create_partitions_request::CreatePartitionsTopic>(v),
        "CreatePartitionsAssignment" => {
            size::<create_partitions_request::CreatePartitionsAssignment>(v)
        }
        "DeleteRecordsTopic" => size::<delete_records_request::DeleteRecordsTopic>(v),
        "DeleteRecordsPartition" => size::<delete_records_request::DeleteRecordsPartition>(v),
        "DescribableLogDirTopic" => size::<describe_log_dirs_request::DescribableLogDirTopic>(v),
        "AclCreation" => size::<create_acls_request::AclCreation>(v),
        "UserName" => size::<describe_user_scram_credentials_request::UserName>(v),
        "ScramCredentialDeletion" => {
            size::<alter_user_scram_credentials_request::ScramCredentialDeletion>(v)
        }
        "ScramCredentialUpsertion" => {
            size::<alter_user_scram_credentials_request::ScramCredentialUpsertion>(v)
        }
        "DeleteAclsFilter" => size::<delete_acls_request::DeleteAclsFilter>(v),
        "AddPartitionsToTxnTopic" => {
            size::<add_partitions_to_txn_request::AddPartitionsToTxnTopic>(v)
        }
        "AddPartitionsToTxnTransaction" => {
            size::<add_partitions_to_txn_request::AddPartitionsToTxnTransaction>(v)
        }
        "TxnOffsetCommitRequestTopic" => {
            size::<txn_offset_commit_request::TxnOffsetCommitRequestTopic>(v)
        }
        "TxnOffsetCommitRequestPartition" => {
            size::<txn_offset_commit_request::TxnOffsetCommitRequestPartition>(v)
        }
        "WritableTxnMarker" => size::<write_txn_markers_request::WritableTxnMarker>(v),
        "WritableTxnMarkerTopic" => size::<write_txn_markers_request::WritableTxnMarkerTopic>(v),
        _ => None,
    };
    if configs.is_some() {
        return configs;
    }
    macro_rules! sizes {
        ($($t:ident),* $(,)?) => {
            match name {
                $(stringify!($t) => Some($t::default().compute_size(v).unwrap()),)*
                _ => None,
            }
        };
    }
    sizes!(
        ProduceRequest,
        TopicProduceData,
        PartitionProduceData,
        FetchRequest,
        FetchTopic,
        FetchPartition,
        ForgottenTopic,
        ListOffsetsRequest,
        ListOffsetsTopic,
        ListOffsetsPartition,
        OffsetForLeaderEpochRequest,
        OffsetForLeaderTopic,
        OffsetForLeaderPartition,
        MetadataRequest,
        MetadataRequestTopic,
        ApiVersionsRequest,
        CreateTopicsRequest,
        CreatableTopic,
        CreatableReplicaAssignment,
        CreatableTopicConfig,
        DeleteTopicsRequest,
        DeleteTopicState,
        InitProducerIdRequest,
        FindCoordinatorRequest,
        JoinGroupRequest,
        JoinGroupRequestProtocol,
        SyncGroupRequest,
        SyncGroupRequestAssignment,
        HeartbeatRequest,
        LeaveGroupRequest,
        MemberIdentity,
        OffsetCommitRequest,
        OffsetCommitRequestTopic,
        OffsetCommitRequestPartition,
        OffsetFetchRequest,
        OffsetFetchRequestTopic,
        OffsetFetchRequestGroup,
        OffsetFetchRequestTopics,
        ListGroupsRequest,
        DescribeGroupsRequest,
        DeleteGroupsRequest,
        OffsetDeleteRequest,
        OffsetDeleteRequestTopic,
        OffsetDeleteRequestPartition,
        DescribeConfigsRequest,
        AlterConfigsRequest,
        IncrementalAlterConfigsRequest,
        DescribeClusterRequest,
        DescribeProducersRequest,
        CreatePartitionsRequest,
        DeleteRecordsRequest,
        DescribeLogDirsRequest,
        SaslHandshakeRequest,
        SaslAuthenticateRequest,
        CreateAclsRequest,
        DescribeAclsRequest,
        DeleteAclsRequest,
        DescribeUserScramCredentialsRequest,
        AlterUserScramCredentialsRequest,
        AddPartitionsToTxnRequest,
        AddOffsetsToTxnRequest,
        EndTxnRequest,
        TxnOffsetCommitRequest,
        WriteTxnMarkersRequest,
        DescribeTransactionsRequest,
        ListTransactionsRequest,
    )
}

/// Checks `s` and every struct array inside it that is present in `v`.
fn check(s: &StructSchema, v: i16, flexible: bool, checked: &mut usize) {
    let expected = default_size(s.name, v)
        .unwrap_or_else(|| panic!("{} has no crate type in this test", s.name));
    let min = schema::struct_min_size(s, v, flexible);
    assert_eq!(
        min, expected,
        "{} v{v}: schema minimum vs crate default",
        s.name
    );
    *checked += 1;
    for f in s.fields.iter().filter(|f| f.versions.contains(v)) {
        if let Ty::Array {
            elem: Elem::Struct(inner),
            ..
        } = f.ty
        {
            check(inner, v, flexible, checked);
        }
    }
}

#[test]
fn minimum_sizes_equal_the_crates_default_encodings() {
    let mut checked = 0;
    for m in schema::ALL {
        for v in m.versions.min..=m.versions.max {
            check(m.body, v, m.is_flexible(v), &mut checked);
        }
    }
    assert!(checked >= 244, "{checked} (struct, version) pairs");
}
