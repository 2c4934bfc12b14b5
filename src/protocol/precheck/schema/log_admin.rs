//! Partition and log administration: CreatePartitions, DeleteRecords, DescribeLogDirs.

use super::*;
use kafka_protocol::messages::{
    BrokerId, create_partitions_request as cp, delete_records_request as dr,
    describe_log_dirs_request as dld,
};
use std::mem::size_of;

// CreatePartitions: v2 is the first flexible version. The crate holds `assignments` in an
// `Option` in every version.

static CREATE_PARTITIONS_ASSIGNMENT: StructSchema = StructSchema {
    name: "CreatePartitionsAssignment",
    fields: &[field(
        "broker_ids",
        Versions::ALL,
        prims(Prim::Int32, size_of::<BrokerId>()),
    )],
    tagged: &[],
};

static CREATE_PARTITIONS_TOPIC: StructSchema = StructSchema {
    name: "CreatePartitionsTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("count", Versions::ALL, INT32),
        field(
            "assignments",
            Versions::ALL,
            nullable_structs(
                &CREATE_PARTITIONS_ASSIGNMENT,
                size_of::<cp::CreatePartitionsAssignment>(),
            ),
        ),
    ],
    tagged: &[],
};

static CREATE_PARTITIONS_BODY: StructSchema = StructSchema {
    name: "CreatePartitionsRequest",
    fields: &[
        field(
            "topics",
            Versions::ALL,
            structs(
                &CREATE_PARTITIONS_TOPIC,
                size_of::<cp::CreatePartitionsTopic>(),
            ),
        ),
        field("timeout_ms", Versions::ALL, INT32),
        field("validate_only", Versions::ALL, BOOL),
    ],
    tagged: &[],
};

pub static CREATE_PARTITIONS: MessageSchema = MessageSchema {
    api: ApiKey::CreatePartitions,
    versions: range(0, 3),
    flexible: from(2),
    body: &CREATE_PARTITIONS_BODY,
};

// DeleteRecords: v2 is the first flexible version.

static DELETE_RECORDS_PARTITION: StructSchema = StructSchema {
    name: "DeleteRecordsPartition",
    fields: &[
        field("partition_index", Versions::ALL, INT32),
        field("offset", Versions::ALL, INT64),
    ],
    tagged: &[],
};

static DELETE_RECORDS_TOPIC: StructSchema = StructSchema {
    name: "DeleteRecordsTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            structs(
                &DELETE_RECORDS_PARTITION,
                size_of::<dr::DeleteRecordsPartition>(),
            ),
        ),
    ],
    tagged: &[],
};

static DELETE_RECORDS_BODY: StructSchema = StructSchema {
    name: "DeleteRecordsRequest",
    fields: &[
        field(
            "topics",
            Versions::ALL,
            structs(&DELETE_RECORDS_TOPIC, size_of::<dr::DeleteRecordsTopic>()),
        ),
        field("timeout_ms", Versions::ALL, INT32),
    ],
    tagged: &[],
};

pub static DELETE_RECORDS: MessageSchema = MessageSchema {
    api: ApiKey::DeleteRecords,
    versions: range(0, 2),
    flexible: from(2),
    body: &DELETE_RECORDS_BODY,
};

// DescribeLogDirs: v2 is the first flexible version (the crate has no v0). `topics` is an
// `Option` in every version: null asks for every topic.

static DESCRIBABLE_LOG_DIR_TOPIC: StructSchema = StructSchema {
    name: "DescribableLogDirTopic",
    fields: &[
        field("topic", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            prims(Prim::Int32, size_of::<i32>()),
        ),
    ],
    tagged: &[],
};

static DESCRIBE_LOG_DIRS_BODY: StructSchema = StructSchema {
    name: "DescribeLogDirsRequest",
    fields: &[field(
        "topics",
        Versions::ALL,
        nullable_structs(
            &DESCRIBABLE_LOG_DIR_TOPIC,
            size_of::<dld::DescribableLogDirTopic>(),
        ),
    )],
    tagged: &[],
};

pub static DESCRIBE_LOG_DIRS: MessageSchema = MessageSchema {
    api: ApiKey::DescribeLogDirs,
    versions: range(1, 4),
    flexible: from(2),
    body: &DESCRIBE_LOG_DIRS_BODY,
};
