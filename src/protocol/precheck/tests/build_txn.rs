//! Transaction requests as clients (and brokers, for WriteTxnMarkers and the batched
//! AddPartitionsToTxn) build them. `case` 0 fills nullable fields, case 1 leaves them null.

use super::{UNKNOWN_TAG, s, tv};
use kafka_protocol::messages::add_partitions_to_txn_request::{
    AddPartitionsToTxnTopic, AddPartitionsToTxnTransaction,
};
use kafka_protocol::messages::txn_offset_commit_request::{
    TxnOffsetCommitRequestPartition, TxnOffsetCommitRequestTopic,
};
use kafka_protocol::messages::write_txn_markers_request::{
    WritableTxnMarker, WritableTxnMarkerTopic,
};
use kafka_protocol::messages::{
    AddOffsetsToTxnRequest, AddPartitionsToTxnRequest, DescribeTransactionsRequest, EndTxnRequest,
    GroupId, ListTransactionsRequest, ProducerId, TopicName, TransactionalId,
    TxnOffsetCommitRequest, WriteTxnMarkersRequest,
};

fn topic(i: i32) -> TopicName {
    TopicName(s(["alpha", "beta", "gamma"][(i % 3) as usize]))
}

fn txn_id(i: i32) -> TransactionalId {
    TransactionalId(s(["txn-a", "txn-b", "txn-c"][(i % 3) as usize]))
}

fn add_topic(t: i32) -> AddPartitionsToTxnTopic {
    AddPartitionsToTxnTopic::default()
        .with_name(topic(t))
        .with_partitions(vec![0, 1, 2])
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn add_partitions(v: i16, _case: usize) -> AddPartitionsToTxnRequest {
    let r = AddPartitionsToTxnRequest::default().with_unknown_tagged_field(UNKNOWN_TAG, tv());
    if v >= 4 {
        let txn = |i: i32| {
            AddPartitionsToTxnTransaction::default()
                .with_transactional_id(txn_id(i))
                .with_producer_id(ProducerId(4000 + i64::from(i)))
                .with_producer_epoch(2)
                .with_verify_only(i == 1)
                .with_topics((0..2).map(add_topic).collect())
                .with_unknown_tagged_field(UNKNOWN_TAG, tv())
        };
        r.with_transactions((0..2).map(txn).collect())
    } else {
        r.with_v3_and_below_transactional_id(txn_id(0))
            .with_v3_and_below_producer_id(ProducerId(4000))
            .with_v3_and_below_producer_epoch(1)
            .with_v3_and_below_topics((0..3).map(add_topic).collect())
    }
}

pub fn add_offsets(_v: i16, _case: usize) -> AddOffsetsToTxnRequest {
    AddOffsetsToTxnRequest::default()
        .with_transactional_id(txn_id(1))
        .with_producer_id(ProducerId(4001))
        .with_producer_epoch(0)
        .with_group_id(GroupId(s("group-a")))
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn end_txn(_v: i16, case: usize) -> EndTxnRequest {
    EndTxnRequest::default()
        .with_transactional_id(txn_id(2))
        .with_producer_id(ProducerId(4002))
        .with_producer_epoch(3)
        .with_committed(case == 0)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn txn_offset_commit(v: i16, case: usize) -> TxnOffsetCommitRequest {
    let partition = |p: i32| {
        TxnOffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(900 + i64::from(p))
            .with_committed_leader_epoch(if v >= 2 { 1 } else { -1 })
            .with_committed_metadata((case == 0 || p != 0).then(|| s("meta")))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: i32| {
        TxnOffsetCommitRequestTopic::default()
            .with_name(topic(t))
            .with_partitions((0..3).map(partition).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let r = TxnOffsetCommitRequest::default()
        .with_transactional_id(txn_id(0))
        .with_group_id(GroupId(s("group-b")))
        .with_producer_id(ProducerId(4000))
        .with_producer_epoch(1)
        .with_topics((0..2).map(topic).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv());
    if v >= 3 {
        r.with_generation_id(5)
            .with_member_id(s("member-1"))
            .with_group_instance_id((case == 0).then(|| s("instance-1")))
    } else {
        r
    }
}

pub fn write_txn_markers(_v: i16, _case: usize) -> WriteTxnMarkersRequest {
    let topic = |t: i32| {
        WritableTxnMarkerTopic::default()
            .with_name(topic(t))
            .with_partition_indexes(vec![0, 2])
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let marker = |i: i64| {
        WritableTxnMarker::default()
            .with_producer_id(ProducerId(4000 + i))
            .with_producer_epoch(1)
            .with_transaction_result(i == 0)
            .with_topics((0..2).map(topic).collect())
            .with_coordinator_epoch(7)
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    WriteTxnMarkersRequest::default()
        .with_markers((0..2).map(marker).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn describe_transactions(_v: i16, _case: usize) -> DescribeTransactionsRequest {
    DescribeTransactionsRequest::default()
        .with_transactional_ids((0..3).map(txn_id).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn list_transactions(v: i16, _case: usize) -> ListTransactionsRequest {
    ListTransactionsRequest::default()
        .with_state_filters(vec![s("Ongoing"), s("PrepareCommit")])
        .with_producer_id_filters(vec![ProducerId(4000), ProducerId(4001)])
        .with_duration_filter(if v >= 1 { 60_000 } else { -1 })
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}
