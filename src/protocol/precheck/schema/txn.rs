//! Transactions: AddPartitionsToTxn, AddOffsetsToTxn, EndTxn, TxnOffsetCommit,
//! WriteTxnMarkers, DescribeTransactions, ListTransactions. Each is flexible from v3 (the
//! last three from their first version).

use super::*;
use kafka_protocol::messages::{
    ProducerId, TransactionalId, add_partitions_to_txn_request as ap,
    txn_offset_commit_request as toc, write_txn_markers_request as wm,
};
use kafka_protocol::protocol::StrBytes;
use std::mem::size_of;

// AddPartitionsToTxn: v4 batches transactions (brokers verifying, KIP-890); v0-3 name one.

static ADD_PARTITIONS_TOPIC: StructSchema = StructSchema {
    name: "AddPartitionsToTxnTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            prims(Prim::Int32, size_of::<i32>()),
        ),
    ],
    tagged: &[],
};

static ADD_PARTITIONS_TRANSACTION: StructSchema = StructSchema {
    name: "AddPartitionsToTxnTransaction",
    fields: &[
        field("transactional_id", Versions::ALL, STRING),
        field("producer_id", Versions::ALL, INT64),
        field("producer_epoch", Versions::ALL, INT16),
        field("verify_only", Versions::ALL, BOOL),
        field(
            "topics",
            Versions::ALL,
            structs(
                &ADD_PARTITIONS_TOPIC,
                size_of::<ap::AddPartitionsToTxnTopic>(),
            ),
        ),
    ],
    tagged: &[],
};

static ADD_PARTITIONS_BODY: StructSchema = StructSchema {
    name: "AddPartitionsToTxnRequest",
    fields: &[
        field(
            "transactions",
            from(4),
            structs(
                &ADD_PARTITIONS_TRANSACTION,
                size_of::<ap::AddPartitionsToTxnTransaction>(),
            ),
        ),
        field("v3_and_below_transactional_id", until(3), STRING),
        field("v3_and_below_producer_id", until(3), INT64),
        field("v3_and_below_producer_epoch", until(3), INT16),
        field(
            "v3_and_below_topics",
            until(3),
            structs(
                &ADD_PARTITIONS_TOPIC,
                size_of::<ap::AddPartitionsToTxnTopic>(),
            ),
        ),
    ],
    tagged: &[],
};

pub static ADD_PARTITIONS_TO_TXN: MessageSchema = MessageSchema {
    api: ApiKey::AddPartitionsToTxn,
    versions: range(0, 4),
    flexible: from(3),
    body: &ADD_PARTITIONS_BODY,
};

static ADD_OFFSETS_BODY: StructSchema = StructSchema {
    name: "AddOffsetsToTxnRequest",
    fields: &[
        field("transactional_id", Versions::ALL, STRING),
        field("producer_id", Versions::ALL, INT64),
        field("producer_epoch", Versions::ALL, INT16),
        field("group_id", Versions::ALL, STRING),
    ],
    tagged: &[],
};

pub static ADD_OFFSETS_TO_TXN: MessageSchema = MessageSchema {
    api: ApiKey::AddOffsetsToTxn,
    versions: range(0, 3),
    flexible: from(3),
    body: &ADD_OFFSETS_BODY,
};

static END_TXN_BODY: StructSchema = StructSchema {
    name: "EndTxnRequest",
    fields: &[
        field("transactional_id", Versions::ALL, STRING),
        field("producer_id", Versions::ALL, INT64),
        field("producer_epoch", Versions::ALL, INT16),
        field("committed", Versions::ALL, BOOL),
    ],
    tagged: &[],
};

pub static END_TXN: MessageSchema = MessageSchema {
    api: ApiKey::EndTxn,
    versions: range(0, 3),
    flexible: from(3),
    body: &END_TXN_BODY,
};

static TXN_COMMIT_PARTITION: StructSchema = StructSchema {
    name: "TxnOffsetCommitRequestPartition",
    fields: &[
        field("partition_index", Versions::ALL, INT32),
        field("committed_offset", Versions::ALL, INT64),
        field("committed_leader_epoch", from(2), INT32),
        field("committed_metadata", Versions::ALL, NULLABLE_STRING),
    ],
    tagged: &[],
};

static TXN_COMMIT_TOPIC: StructSchema = StructSchema {
    name: "TxnOffsetCommitRequestTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            structs(
                &TXN_COMMIT_PARTITION,
                size_of::<toc::TxnOffsetCommitRequestPartition>(),
            ),
        ),
    ],
    tagged: &[],
};

static TXN_COMMIT_BODY: StructSchema = StructSchema {
    name: "TxnOffsetCommitRequest",
    fields: &[
        field("transactional_id", Versions::ALL, STRING),
        field("group_id", Versions::ALL, STRING),
        field("producer_id", Versions::ALL, INT64),
        field("producer_epoch", Versions::ALL, INT16),
        field("generation_id", from(3), INT32),
        field("member_id", from(3), STRING),
        field("group_instance_id", from(3), NULLABLE_STRING),
        field(
            "topics",
            Versions::ALL,
            structs(
                &TXN_COMMIT_TOPIC,
                size_of::<toc::TxnOffsetCommitRequestTopic>(),
            ),
        ),
    ],
    tagged: &[],
};

pub static TXN_OFFSET_COMMIT: MessageSchema = MessageSchema {
    api: ApiKey::TxnOffsetCommit,
    versions: range(0, 3),
    flexible: from(3),
    body: &TXN_COMMIT_BODY,
};

static MARKER_TOPIC: StructSchema = StructSchema {
    name: "WritableTxnMarkerTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partition_indexes",
            Versions::ALL,
            prims(Prim::Int32, size_of::<i32>()),
        ),
    ],
    tagged: &[],
};

static MARKER: StructSchema = StructSchema {
    name: "WritableTxnMarker",
    fields: &[
        field("producer_id", Versions::ALL, INT64),
        field("producer_epoch", Versions::ALL, INT16),
        field("transaction_result", Versions::ALL, BOOL),
        field(
            "topics",
            Versions::ALL,
            structs(&MARKER_TOPIC, size_of::<wm::WritableTxnMarkerTopic>()),
        ),
        field("coordinator_epoch", Versions::ALL, INT32),
    ],
    tagged: &[],
};

static WRITE_MARKERS_BODY: StructSchema = StructSchema {
    name: "WriteTxnMarkersRequest",
    fields: &[field(
        "markers",
        Versions::ALL,
        structs(&MARKER, size_of::<wm::WritableTxnMarker>()),
    )],
    tagged: &[],
};

pub static WRITE_TXN_MARKERS: MessageSchema = MessageSchema {
    api: ApiKey::WriteTxnMarkers,
    versions: range(1, 1),
    flexible: from(1),
    body: &WRITE_MARKERS_BODY,
};

static DESCRIBE_TXNS_BODY: StructSchema = StructSchema {
    name: "DescribeTransactionsRequest",
    fields: &[field(
        "transactional_ids",
        Versions::ALL,
        strings(size_of::<TransactionalId>()),
    )],
    tagged: &[],
};

pub static DESCRIBE_TRANSACTIONS: MessageSchema = MessageSchema {
    api: ApiKey::DescribeTransactions,
    versions: range(0, 0),
    flexible: from(0),
    body: &DESCRIBE_TXNS_BODY,
};

static LIST_TXNS_BODY: StructSchema = StructSchema {
    name: "ListTransactionsRequest",
    fields: &[
        field(
            "state_filters",
            Versions::ALL,
            strings(size_of::<StrBytes>()),
        ),
        field(
            "producer_id_filters",
            Versions::ALL,
            prims(Prim::Int64, size_of::<ProducerId>()),
        ),
        field("duration_filter", from(1), INT64),
    ],
    tagged: &[],
};

pub static LIST_TRANSACTIONS: MessageSchema = MessageSchema {
    api: ApiKey::ListTransactions,
    versions: range(0, 1),
    flexible: from(0),
    body: &LIST_TXNS_BODY,
};
