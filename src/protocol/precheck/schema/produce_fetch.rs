//! The hot-path requests: Produce, Fetch and ListOffsets, and OffsetForLeaderEpoch beside
//! them.

use super::*;
use kafka_protocol::messages::{
    fetch_request as fe, list_offsets_request as lo, offset_for_leader_epoch_request as ol,
    produce_request as pr,
};
use std::mem::size_of;

// Produce. v0-2 are answered without decoding; v9 is the first flexible version.

static PRODUCE_PARTITION: StructSchema = StructSchema {
    name: "PartitionProduceData",
    fields: &[
        field("index", Versions::ALL, INT32),
        field("records", Versions::ALL, RECORDS),
    ],
    tagged: &[],
};

static PRODUCE_TOPIC: StructSchema = StructSchema {
    name: "TopicProduceData",
    fields: &[
        field("name", until(12), STRING),
        field("topic_id", from(13), UUID),
        field(
            "partition_data",
            Versions::ALL,
            structs(&PRODUCE_PARTITION, size_of::<pr::PartitionProduceData>()),
        ),
    ],
    tagged: &[],
};

static PRODUCE_BODY: StructSchema = StructSchema {
    name: "ProduceRequest",
    fields: &[
        field("transactional_id", from(3), NULLABLE_STRING),
        field("acks", Versions::ALL, INT16),
        field("timeout_ms", Versions::ALL, INT32),
        field(
            "topic_data",
            Versions::ALL,
            structs(&PRODUCE_TOPIC, size_of::<pr::TopicProduceData>()),
        ),
    ],
    tagged: &[],
};

pub static PRODUCE: MessageSchema = MessageSchema {
    api: ApiKey::Produce,
    versions: range(3, 9),
    flexible: from(9),
    body: &PRODUCE_BODY,
};

// Fetch: v12 is the first flexible version. Topic ids replace names from v13.

static FETCH_PARTITION: StructSchema = StructSchema {
    name: "FetchPartition",
    fields: &[
        field("partition", Versions::ALL, INT32),
        field("current_leader_epoch", from(9), INT32),
        field("fetch_offset", Versions::ALL, INT64),
        field("last_fetched_epoch", from(12), INT32),
        field("log_start_offset", from(5), INT64),
        field("partition_max_bytes", Versions::ALL, INT32),
    ],
    tagged: &[
        tagged(0, "replica_directory_id", from(17), UUID),
        tagged(1, "high_watermark", from(18), INT64),
    ],
};

static FETCH_TOPIC: StructSchema = StructSchema {
    name: "FetchTopic",
    fields: &[
        field("topic", until(12), STRING),
        field("topic_id", from(13), UUID),
        field(
            "partitions",
            Versions::ALL,
            structs(&FETCH_PARTITION, size_of::<fe::FetchPartition>()),
        ),
    ],
    tagged: &[],
};

static FORGOTTEN_TOPIC: StructSchema = StructSchema {
    name: "ForgottenTopic",
    fields: &[
        field("topic", range(7, 12), STRING),
        field("topic_id", from(13), UUID),
        field("partitions", from(7), prims(Prim::Int32, size_of::<i32>())),
    ],
    tagged: &[],
};

static REPLICA_STATE: StructSchema = StructSchema {
    name: "ReplicaState",
    fields: &[
        field("replica_id", Versions::ALL, INT32),
        field("replica_epoch", Versions::ALL, INT64),
    ],
    tagged: &[],
};

static FETCH_BODY: StructSchema = StructSchema {
    name: "FetchRequest",
    fields: &[
        field("replica_id", until(14), INT32),
        field("max_wait_ms", Versions::ALL, INT32),
        field("min_bytes", Versions::ALL, INT32),
        field("max_bytes", from(3), INT32),
        field("isolation_level", from(4), INT8),
        field("session_id", from(7), INT32),
        field("session_epoch", from(7), INT32),
        field(
            "topics",
            Versions::ALL,
            structs(&FETCH_TOPIC, size_of::<fe::FetchTopic>()),
        ),
        field(
            "forgotten_topics_data",
            from(7),
            structs(&FORGOTTEN_TOPIC, size_of::<fe::ForgottenTopic>()),
        ),
        field("rack_id", from(11), STRING),
    ],
    tagged: &[
        tagged(0, "cluster_id", from(12), NULLABLE_STRING),
        tagged(1, "replica_state", from(15), Ty::Struct(&REPLICA_STATE)),
    ],
};

pub static FETCH: MessageSchema = MessageSchema {
    api: ApiKey::Fetch,
    versions: range(4, 12),
    flexible: from(12),
    body: &FETCH_BODY,
};

// ListOffsets: v6 is the first flexible version.

static LIST_OFFSETS_PARTITION: StructSchema = StructSchema {
    name: "ListOffsetsPartition",
    fields: &[
        field("partition_index", Versions::ALL, INT32),
        field("current_leader_epoch", from(4), INT32),
        field("timestamp", Versions::ALL, INT64),
        field("max_num_offsets", range(0, 0), INT32),
    ],
    tagged: &[],
};

static LIST_OFFSETS_TOPIC: StructSchema = StructSchema {
    name: "ListOffsetsTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            structs(
                &LIST_OFFSETS_PARTITION,
                size_of::<lo::ListOffsetsPartition>(),
            ),
        ),
    ],
    tagged: &[],
};

static LIST_OFFSETS_BODY: StructSchema = StructSchema {
    name: "ListOffsetsRequest",
    fields: &[
        field("replica_id", Versions::ALL, INT32),
        field("isolation_level", from(2), INT8),
        field(
            "topics",
            Versions::ALL,
            structs(&LIST_OFFSETS_TOPIC, size_of::<lo::ListOffsetsTopic>()),
        ),
        field("timeout_ms", from(10), INT32),
    ],
    tagged: &[],
};

pub static LIST_OFFSETS: MessageSchema = MessageSchema {
    api: ApiKey::ListOffsets,
    versions: range(1, 10),
    flexible: from(6),
    body: &LIST_OFFSETS_BODY,
};

// OffsetForLeaderEpoch: v2 (current_leader_epoch) to v4, the first flexible version.

static OFFSET_FOR_LEADER_PARTITION: StructSchema = StructSchema {
    name: "OffsetForLeaderPartition",
    fields: &[
        field("partition", Versions::ALL, INT32),
        field("current_leader_epoch", from(2), INT32),
        field("leader_epoch", Versions::ALL, INT32),
    ],
    tagged: &[],
};

static OFFSET_FOR_LEADER_TOPIC: StructSchema = StructSchema {
    name: "OffsetForLeaderTopic",
    fields: &[
        field("topic", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            structs(
                &OFFSET_FOR_LEADER_PARTITION,
                size_of::<ol::OffsetForLeaderPartition>(),
            ),
        ),
    ],
    tagged: &[],
};

static OFFSET_FOR_LEADER_EPOCH_BODY: StructSchema = StructSchema {
    name: "OffsetForLeaderEpochRequest",
    fields: &[
        field("replica_id", from(3), INT32),
        field(
            "topics",
            Versions::ALL,
            structs(
                &OFFSET_FOR_LEADER_TOPIC,
                size_of::<ol::OffsetForLeaderTopic>(),
            ),
        ),
    ],
    tagged: &[],
};

pub static OFFSET_FOR_LEADER_EPOCH: MessageSchema = MessageSchema {
    api: ApiKey::OffsetForLeaderEpoch,
    versions: range(2, 4),
    flexible: from(4),
    body: &OFFSET_FOR_LEADER_EPOCH_BODY,
};
