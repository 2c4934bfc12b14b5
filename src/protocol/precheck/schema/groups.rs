//! Consumer groups: FindCoordinator, JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//! OffsetCommit, OffsetFetch, ListGroups, DescribeGroups, DeleteGroups, OffsetDelete.

use super::*;
use kafka_protocol::messages::{
    GroupId, join_group_request as jg, leave_group_request as lg, offset_commit_request as oc,
    offset_delete_request as od, offset_fetch_request as of, sync_group_request as sg,
};
use kafka_protocol::protocol::StrBytes;
use std::mem::size_of;

// FindCoordinator: v3 is the first flexible version; v4 batches keys.

static FIND_COORDINATOR_BODY: StructSchema = StructSchema {
    name: "FindCoordinatorRequest",
    fields: &[
        field("key", until(3), STRING),
        field("key_type", from(1), INT8),
        field("coordinator_keys", from(4), strings(size_of::<StrBytes>())),
    ],
    tagged: &[],
};

pub static FIND_COORDINATOR: MessageSchema = MessageSchema {
    api: ApiKey::FindCoordinator,
    versions: range(0, 4),
    flexible: from(3),
    body: &FIND_COORDINATOR_BODY,
};

// JoinGroup: v6 is the first flexible version.

static JOIN_GROUP_PROTOCOL: StructSchema = StructSchema {
    name: "JoinGroupRequestProtocol",
    fields: &[
        field("name", Versions::ALL, STRING),
        field("metadata", Versions::ALL, BYTES),
    ],
    tagged: &[],
};

static JOIN_GROUP_BODY: StructSchema = StructSchema {
    name: "JoinGroupRequest",
    fields: &[
        field("group_id", Versions::ALL, STRING),
        field("session_timeout_ms", Versions::ALL, INT32),
        field("rebalance_timeout_ms", from(1), INT32),
        field("member_id", Versions::ALL, STRING),
        field("group_instance_id", from(5), NULLABLE_STRING),
        field("protocol_type", Versions::ALL, STRING),
        field(
            "protocols",
            Versions::ALL,
            structs(
                &JOIN_GROUP_PROTOCOL,
                size_of::<jg::JoinGroupRequestProtocol>(),
            ),
        ),
        field("reason", from(8), NULLABLE_STRING),
    ],
    tagged: &[],
};

pub static JOIN_GROUP: MessageSchema = MessageSchema {
    api: ApiKey::JoinGroup,
    versions: range(0, 9),
    flexible: from(6),
    body: &JOIN_GROUP_BODY,
};

// SyncGroup: v4 is the first flexible version.

static SYNC_GROUP_ASSIGNMENT: StructSchema = StructSchema {
    name: "SyncGroupRequestAssignment",
    fields: &[
        field("member_id", Versions::ALL, STRING),
        field("assignment", Versions::ALL, BYTES),
    ],
    tagged: &[],
};

static SYNC_GROUP_BODY: StructSchema = StructSchema {
    name: "SyncGroupRequest",
    fields: &[
        field("group_id", Versions::ALL, STRING),
        field("generation_id", Versions::ALL, INT32),
        field("member_id", Versions::ALL, STRING),
        field("group_instance_id", from(3), NULLABLE_STRING),
        field("protocol_type", from(5), NULLABLE_STRING),
        field("protocol_name", from(5), NULLABLE_STRING),
        field(
            "assignments",
            Versions::ALL,
            structs(
                &SYNC_GROUP_ASSIGNMENT,
                size_of::<sg::SyncGroupRequestAssignment>(),
            ),
        ),
    ],
    tagged: &[],
};

pub static SYNC_GROUP: MessageSchema = MessageSchema {
    api: ApiKey::SyncGroup,
    versions: range(0, 5),
    flexible: from(4),
    body: &SYNC_GROUP_BODY,
};

// Heartbeat: v4 is the first flexible version.

static HEARTBEAT_BODY: StructSchema = StructSchema {
    name: "HeartbeatRequest",
    fields: &[
        field("group_id", Versions::ALL, STRING),
        field("generation_id", Versions::ALL, INT32),
        field("member_id", Versions::ALL, STRING),
        field("group_instance_id", from(3), NULLABLE_STRING),
    ],
    tagged: &[],
};

pub static HEARTBEAT: MessageSchema = MessageSchema {
    api: ApiKey::Heartbeat,
    versions: range(0, 4),
    flexible: from(4),
    body: &HEARTBEAT_BODY,
};

// LeaveGroup: v3 batches members, v4 is the first flexible version.

static LEAVE_GROUP_MEMBER: StructSchema = StructSchema {
    name: "MemberIdentity",
    fields: &[
        field("member_id", Versions::ALL, STRING),
        field("group_instance_id", Versions::ALL, NULLABLE_STRING),
        field("reason", from(5), NULLABLE_STRING),
    ],
    tagged: &[],
};

static LEAVE_GROUP_BODY: StructSchema = StructSchema {
    name: "LeaveGroupRequest",
    fields: &[
        field("group_id", Versions::ALL, STRING),
        field("member_id", until(2), STRING),
        field(
            "members",
            from(3),
            structs(&LEAVE_GROUP_MEMBER, size_of::<lg::MemberIdentity>()),
        ),
    ],
    tagged: &[],
};

pub static LEAVE_GROUP: MessageSchema = MessageSchema {
    api: ApiKey::LeaveGroup,
    versions: range(0, 5),
    flexible: from(4),
    body: &LEAVE_GROUP_BODY,
};

// OffsetCommit: v8 is the first flexible version.

static OFFSET_COMMIT_PARTITION: StructSchema = StructSchema {
    name: "OffsetCommitRequestPartition",
    fields: &[
        field("partition_index", Versions::ALL, INT32),
        field("committed_offset", Versions::ALL, INT64),
        field("committed_leader_epoch", from(6), INT32),
        field("commit_timestamp", range(1, 1), INT64),
        field("committed_metadata", Versions::ALL, NULLABLE_STRING),
    ],
    tagged: &[],
};

static OFFSET_COMMIT_TOPIC: StructSchema = StructSchema {
    name: "OffsetCommitRequestTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            structs(
                &OFFSET_COMMIT_PARTITION,
                size_of::<oc::OffsetCommitRequestPartition>(),
            ),
        ),
    ],
    tagged: &[],
};

static OFFSET_COMMIT_BODY: StructSchema = StructSchema {
    name: "OffsetCommitRequest",
    fields: &[
        field("group_id", Versions::ALL, STRING),
        field("generation_id_or_member_epoch", from(1), INT32),
        field("member_id", from(1), STRING),
        field("group_instance_id", from(7), NULLABLE_STRING),
        field("retention_time_ms", range(2, 4), INT64),
        field(
            "topics",
            Versions::ALL,
            structs(
                &OFFSET_COMMIT_TOPIC,
                size_of::<oc::OffsetCommitRequestTopic>(),
            ),
        ),
    ],
    tagged: &[],
};

pub static OFFSET_COMMIT: MessageSchema = MessageSchema {
    api: ApiKey::OffsetCommit,
    versions: range(2, 8),
    flexible: from(8),
    body: &OFFSET_COMMIT_BODY,
};

// OffsetFetch: v6 is the first flexible version; v8 batches groups. The crate holds both
// topic lists in `Option`s, so null is accepted in every version.

static OFFSET_FETCH_TOPIC: StructSchema = StructSchema {
    name: "OffsetFetchRequestTopic",
    fields: &[
        field("name", until(7), STRING),
        field(
            "partition_indexes",
            until(7),
            prims(Prim::Int32, size_of::<i32>()),
        ),
    ],
    tagged: &[],
};

static OFFSET_FETCH_GROUP_TOPIC: StructSchema = StructSchema {
    name: "OffsetFetchRequestTopics",
    fields: &[
        field("name", from(8), STRING),
        field(
            "partition_indexes",
            from(8),
            prims(Prim::Int32, size_of::<i32>()),
        ),
    ],
    tagged: &[],
};

static OFFSET_FETCH_GROUP: StructSchema = StructSchema {
    name: "OffsetFetchRequestGroup",
    fields: &[
        field("group_id", from(8), STRING),
        field("member_id", from(9), NULLABLE_STRING),
        field("member_epoch", from(9), INT32),
        field(
            "topics",
            from(8),
            nullable_structs(
                &OFFSET_FETCH_GROUP_TOPIC,
                size_of::<of::OffsetFetchRequestTopics>(),
            ),
        ),
    ],
    tagged: &[],
};

static OFFSET_FETCH_BODY: StructSchema = StructSchema {
    name: "OffsetFetchRequest",
    fields: &[
        field("group_id", until(7), STRING),
        field(
            "topics",
            until(7),
            nullable_structs(
                &OFFSET_FETCH_TOPIC,
                size_of::<of::OffsetFetchRequestTopic>(),
            ),
        ),
        field(
            "groups",
            from(8),
            structs(
                &OFFSET_FETCH_GROUP,
                size_of::<of::OffsetFetchRequestGroup>(),
            ),
        ),
        field("require_stable", from(7), BOOL),
    ],
    tagged: &[],
};

pub static OFFSET_FETCH: MessageSchema = MessageSchema {
    api: ApiKey::OffsetFetch,
    versions: range(1, 8),
    flexible: from(6),
    body: &OFFSET_FETCH_BODY,
};

// ListGroups: v3 is the first flexible version; filters from v4 and v5.

static LIST_GROUPS_BODY: StructSchema = StructSchema {
    name: "ListGroupsRequest",
    fields: &[
        field("states_filter", from(4), strings(size_of::<StrBytes>())),
        field("types_filter", from(5), strings(size_of::<StrBytes>())),
    ],
    tagged: &[],
};

pub static LIST_GROUPS: MessageSchema = MessageSchema {
    api: ApiKey::ListGroups,
    versions: range(0, 4),
    flexible: from(3),
    body: &LIST_GROUPS_BODY,
};

// DescribeGroups: v5 is the first flexible version.

static DESCRIBE_GROUPS_BODY: StructSchema = StructSchema {
    name: "DescribeGroupsRequest",
    fields: &[
        field("groups", Versions::ALL, strings(size_of::<GroupId>())),
        field("include_authorized_operations", from(3), BOOL),
    ],
    tagged: &[],
};

pub static DESCRIBE_GROUPS: MessageSchema = MessageSchema {
    api: ApiKey::DescribeGroups,
    versions: range(0, 5),
    flexible: from(5),
    body: &DESCRIBE_GROUPS_BODY,
};

// DeleteGroups: v2 is the first flexible version.

static DELETE_GROUPS_BODY: StructSchema = StructSchema {
    name: "DeleteGroupsRequest",
    fields: &[field(
        "groups_names",
        Versions::ALL,
        strings(size_of::<GroupId>()),
    )],
    tagged: &[],
};

pub static DELETE_GROUPS: MessageSchema = MessageSchema {
    api: ApiKey::DeleteGroups,
    versions: range(0, 2),
    flexible: from(2),
    body: &DELETE_GROUPS_BODY,
};

// OffsetDelete: a single version, never flexible.

static OFFSET_DELETE_PARTITION: StructSchema = StructSchema {
    name: "OffsetDeleteRequestPartition",
    fields: &[field("partition_index", Versions::ALL, INT32)],
    tagged: &[],
};

static OFFSET_DELETE_TOPIC: StructSchema = StructSchema {
    name: "OffsetDeleteRequestTopic",
    fields: &[
        field("name", Versions::ALL, STRING),
        field(
            "partitions",
            Versions::ALL,
            structs(
                &OFFSET_DELETE_PARTITION,
                size_of::<od::OffsetDeleteRequestPartition>(),
            ),
        ),
    ],
    tagged: &[],
};

static OFFSET_DELETE_BODY: StructSchema = StructSchema {
    name: "OffsetDeleteRequest",
    fields: &[
        field("group_id", Versions::ALL, STRING),
        field(
            "topics",
            Versions::ALL,
            structs(
                &OFFSET_DELETE_TOPIC,
                size_of::<od::OffsetDeleteRequestTopic>(),
            ),
        ),
    ],
    tagged: &[],
};

pub static OFFSET_DELETE: MessageSchema = MessageSchema {
    api: ApiKey::OffsetDelete,
    versions: range(0, 0),
    flexible: Versions::NONE,
    body: &OFFSET_DELETE_BODY,
};
