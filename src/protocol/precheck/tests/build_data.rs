//! Requests as clients build them: Produce, Fetch, ListOffsets, Metadata, ApiVersions,
//! CreateTopics, DeleteTopics, InitProducerId. Every array has 2-3 elements; `case` 0
//! fills nullable fields, case 1 leaves them null.

use super::{UNKNOWN_TAG, s, tv};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_request::{
    CreatableReplicaAssignment, CreatableTopic, CreatableTopicConfig,
};
use kafka_protocol::messages::delete_topics_request::DeleteTopicState;
use kafka_protocol::messages::fetch_request::{FetchPartition, FetchTopic, ForgottenTopic};
use kafka_protocol::messages::list_offsets_request::{ListOffsetsPartition, ListOffsetsTopic};
use kafka_protocol::messages::metadata_request::MetadataRequestTopic;
use kafka_protocol::messages::produce_request::{PartitionProduceData, TopicProduceData};
use kafka_protocol::messages::{
    ApiVersionsRequest, BrokerId, CreateTopicsRequest, DeleteTopicsRequest, FetchRequest,
    InitProducerIdRequest, ListOffsetsRequest, MetadataRequest, ProduceRequest, ProducerId,
    TopicName, TransactionalId,
};
use uuid::Uuid;

fn topic(i: i32) -> TopicName {
    TopicName(s(["alpha", "beta", "gamma"][(i % 3) as usize]))
}

fn some_if<T>(cond: bool, value: T) -> Option<T> {
    if cond { Some(value) } else { None }
}

pub fn produce(_v: i16, case: usize) -> ProduceRequest {
    let partition = |p: i32| {
        let records = some_if(
            case == 0 || p != 1,
            Bytes::from_static(b"\x00opaque records"),
        );
        PartitionProduceData::default()
            .with_index(p)
            .with_records(records)
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: i32| {
        TopicProduceData::default()
            .with_name(topic(t))
            .with_partition_data((0..3).map(partition).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    ProduceRequest::default()
        .with_transactional_id(some_if(case == 0, TransactionalId(s("txn-1"))))
        .with_acks(-1)
        .with_timeout_ms(30_000)
        .with_topic_data((0..2).map(topic).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn fetch(v: i16, case: usize) -> FetchRequest {
    let partition = |p: i32| {
        FetchPartition::default()
            .with_partition(p)
            .with_current_leader_epoch(if v >= 9 { 7 } else { -1 })
            .with_fetch_offset(1000 + i64::from(p))
            .with_last_fetched_epoch(if v >= 12 { 6 } else { -1 })
            .with_log_start_offset(if v >= 5 { 3 } else { -1 })
            .with_partition_max_bytes(1 << 20)
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let fetch_topic = |t: i32| {
        FetchTopic::default()
            .with_topic(topic(t))
            .with_partitions((0..3).map(partition).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let forgotten = |t: i32| {
        ForgottenTopic::default()
            .with_topic(topic(t))
            .with_partitions(vec![4, 5, 6])
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    FetchRequest::default()
        .with_cluster_id(some_if(v >= 12 && case == 0, s("cluster-x")))
        .with_replica_id(BrokerId(-1))
        .with_max_wait_ms(500)
        .with_min_bytes(1)
        .with_max_bytes(50 << 20)
        .with_isolation_level(1)
        .with_session_id(if v >= 7 { 9 } else { 0 })
        .with_session_epoch(if v >= 7 { 2 } else { -1 })
        .with_topics((0..2).map(fetch_topic).collect())
        .with_forgotten_topics_data(if v >= 7 {
            (0..2).map(forgotten).collect()
        } else {
            Vec::new()
        })
        .with_rack_id(if v >= 11 { s("rack-1") } else { s("") })
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn list_offsets(v: i16, _case: usize) -> ListOffsetsRequest {
    let partition = |p: i32| {
        ListOffsetsPartition::default()
            .with_partition_index(p)
            .with_current_leader_epoch(if v >= 4 { 5 } else { -1 })
            .with_timestamp(-1)
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: i32| {
        ListOffsetsTopic::default()
            .with_name(topic(t))
            .with_partitions((0..3).map(partition).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    ListOffsetsRequest::default()
        .with_replica_id(BrokerId(-1))
        .with_isolation_level(if v >= 2 { 1 } else { 0 })
        .with_topics((0..2).map(topic).collect())
        .with_timeout_ms(3000)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn offset_for_leader_epoch(
    v: i16,
    case: usize,
) -> kafka_protocol::messages::OffsetForLeaderEpochRequest {
    use kafka_protocol::messages::offset_for_leader_epoch_request::{
        OffsetForLeaderPartition, OffsetForLeaderTopic,
    };
    let partition = |p: i32| {
        OffsetForLeaderPartition::default()
            .with_partition(p)
            .with_current_leader_epoch(7)
            .with_leader_epoch(p + 3)
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: i32| {
        OffsetForLeaderTopic::default()
            .with_topic(topic(t))
            .with_partitions(if case == 0 {
                (0..3).map(partition).collect()
            } else {
                vec![]
            })
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    kafka_protocol::messages::OffsetForLeaderEpochRequest::default()
        .with_replica_id(BrokerId(if v >= 3 { -1 } else { -2 }))
        .with_topics((0..2).map(topic).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn metadata(v: i16, case: usize) -> MetadataRequest {
    let topic = |t: i32| {
        // Names are nullable from v10, where topics may be named by id alone.
        let named = case == 0 || v < 10 || t != 2;
        MetadataRequestTopic::default()
            .with_topic_id(if v >= 10 {
                Uuid::from_u128(0x1234 + t as u128)
            } else {
                Uuid::nil()
            })
            .with_name(some_if(named, topic(t)))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    // A null topic list (all topics) exists from v1.
    let topics = some_if(case == 0 || v < 1, (0..3).map(topic).collect());
    MetadataRequest::default()
        .with_topics(topics)
        .with_allow_auto_topic_creation(v < 4 || case == 0)
        .with_include_cluster_authorized_operations((8..=10).contains(&v))
        .with_include_topic_authorized_operations(v >= 8)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn api_versions(v: i16, _case: usize) -> ApiVersionsRequest {
    let (name, version) = if v >= 3 {
        (s("ringbroker-precheck"), s("0.1.0"))
    } else {
        (s(""), s(""))
    };
    ApiVersionsRequest::default()
        .with_client_software_name(name)
        .with_client_software_version(version)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn create_topics(_v: i16, case: usize) -> CreateTopicsRequest {
    let assignment = |p: i32| {
        CreatableReplicaAssignment::default()
            .with_partition_index(p)
            .with_broker_ids(vec![BrokerId(1), BrokerId(2), BrokerId(3)])
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let config = |c: i32| {
        CreatableTopicConfig::default()
            .with_name(s(
                ["retention.ms", "cleanup.policy", "segment.bytes"][c as usize]
            ))
            .with_value(some_if(case == 0 || c != 1, s("1000")))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: i32| {
        CreatableTopic::default()
            .with_name(topic(t))
            .with_num_partitions(-1)
            .with_replication_factor(-1)
            .with_assignments((0..2).map(assignment).collect())
            .with_configs((0..3).map(config).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    CreateTopicsRequest::default()
        .with_topics((0..2).map(topic).collect())
        .with_timeout_ms(10_000)
        .with_validate_only(case == 1)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn delete_topics(v: i16, case: usize) -> DeleteTopicsRequest {
    let state = |t: i32| {
        DeleteTopicState::default()
            .with_name(some_if(case == 0 || t != 1, topic(t)))
            .with_topic_id(Uuid::from_u128(0x77 + t as u128))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let mut r = DeleteTopicsRequest::default()
        .with_timeout_ms(5_000)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv());
    if v >= 6 {
        r = r.with_topics((0..2).map(state).collect());
    } else {
        r = r.with_topic_names((0..3).map(topic).collect());
    }
    r
}

pub fn init_producer_id(v: i16, case: usize) -> InitProducerIdRequest {
    InitProducerIdRequest::default()
        .with_transactional_id(some_if(case == 0, TransactionalId(s("txn-2"))))
        .with_transaction_timeout_ms(60_000)
        .with_producer_id(ProducerId(if v >= 3 && case == 0 { 42 } else { -1 }))
        .with_producer_epoch(if v >= 3 && case == 0 { 3 } else { -1 })
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}
