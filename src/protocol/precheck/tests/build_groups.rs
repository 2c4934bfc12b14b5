//! Group requests as clients build them. Every array has 2-3 elements; `case` 0 fills
//! nullable fields, case 1 leaves them null.

use super::{UNKNOWN_TAG, s, tv};
use bytes::Bytes;
use kafka_protocol::messages::join_group_request::JoinGroupRequestProtocol;
use kafka_protocol::messages::leave_group_request::MemberIdentity;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::offset_delete_request::{
    OffsetDeleteRequestPartition, OffsetDeleteRequestTopic,
};
use kafka_protocol::messages::offset_fetch_request::{
    OffsetFetchRequestGroup, OffsetFetchRequestTopic, OffsetFetchRequestTopics,
};
use kafka_protocol::messages::sync_group_request::SyncGroupRequestAssignment;
use kafka_protocol::messages::{
    DeleteGroupsRequest, DescribeGroupsRequest, FindCoordinatorRequest, GroupId, HeartbeatRequest,
    JoinGroupRequest, LeaveGroupRequest, ListGroupsRequest, OffsetCommitRequest,
    OffsetDeleteRequest, OffsetFetchRequest, SyncGroupRequest, TopicName,
};
use kafka_protocol::protocol::StrBytes;

fn some_if<T>(cond: bool, value: T) -> Option<T> {
    if cond { Some(value) } else { None }
}

fn group(i: i32) -> GroupId {
    GroupId(s(["group-a", "group-b", "group-c"][(i % 3) as usize]))
}

fn topic(i: i32) -> TopicName {
    TopicName(s(["alpha", "beta", "gamma"][(i % 3) as usize]))
}

fn member(i: i32) -> StrBytes {
    s(["member-1", "member-2", "member-3"][(i % 3) as usize])
}

pub fn find_coordinator(v: i16, _case: usize) -> FindCoordinatorRequest {
    let mut r = FindCoordinatorRequest::default()
        .with_key_type(if v >= 1 { 1 } else { 0 })
        .with_unknown_tagged_field(UNKNOWN_TAG, tv());
    if v >= 4 {
        r = r.with_coordinator_keys(vec![s("txn-a"), s("txn-b")]);
    } else {
        r = r.with_key(s("txn-a"));
    }
    r
}

pub fn join_group(v: i16, case: usize) -> JoinGroupRequest {
    let protocol = |i: i32| {
        JoinGroupRequestProtocol::default()
            .with_name(s(["range", "roundrobin"][i as usize]))
            .with_metadata(Bytes::from_static(b"\x00\x01subscription"))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    JoinGroupRequest::default()
        .with_group_id(group(0))
        .with_session_timeout_ms(10_000)
        .with_rebalance_timeout_ms(if v >= 1 { 30_000 } else { -1 })
        .with_member_id(member(0))
        .with_group_instance_id(some_if(v >= 5 && case == 0, s("instance-1")))
        .with_protocol_type(s("consumer"))
        .with_protocols((0..2).map(protocol).collect())
        .with_reason(some_if(v >= 8 && case == 0, s("joining")))
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn sync_group(v: i16, case: usize) -> SyncGroupRequest {
    let assignment = |i: i32| {
        SyncGroupRequestAssignment::default()
            .with_member_id(member(i))
            .with_assignment(Bytes::from_static(b"\x00\x01assignment"))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    SyncGroupRequest::default()
        .with_group_id(group(1))
        .with_generation_id(4)
        .with_member_id(member(0))
        .with_group_instance_id(some_if(v >= 3 && case == 0, s("instance-1")))
        .with_protocol_type(some_if(v >= 5 && case == 0, s("consumer")))
        .with_protocol_name(some_if(v >= 5 && case == 0, s("range")))
        .with_assignments((0..3).map(assignment).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn heartbeat(v: i16, case: usize) -> HeartbeatRequest {
    HeartbeatRequest::default()
        .with_group_id(group(2))
        .with_generation_id(4)
        .with_member_id(member(1))
        .with_group_instance_id(some_if(v >= 3 && case == 0, s("instance-2")))
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn leave_group(v: i16, case: usize) -> LeaveGroupRequest {
    let identity = |i: i32| {
        MemberIdentity::default()
            .with_member_id(member(i))
            .with_group_instance_id(some_if(case == 0, s("instance-3")))
            .with_reason(some_if(v >= 5 && case == 0, s("leaving")))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let mut r = LeaveGroupRequest::default()
        .with_group_id(group(0))
        .with_unknown_tagged_field(UNKNOWN_TAG, tv());
    if v >= 3 {
        r = r.with_members((0..2).map(identity).collect());
    } else {
        r = r.with_member_id(member(2));
    }
    r
}

pub fn offset_commit(v: i16, case: usize) -> OffsetCommitRequest {
    let partition = |p: i32| {
        OffsetCommitRequestPartition::default()
            .with_partition_index(p)
            .with_committed_offset(500 + i64::from(p))
            .with_committed_leader_epoch(if v >= 6 { 2 } else { -1 })
            .with_committed_metadata(some_if(case == 0 || p != 0, s("meta")))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let topic = |t: i32| {
        OffsetCommitRequestTopic::default()
            .with_name(topic(t))
            .with_partitions((0..3).map(partition).collect())
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    OffsetCommitRequest::default()
        .with_group_id(group(0))
        .with_generation_id_or_member_epoch(4)
        .with_member_id(member(0))
        .with_group_instance_id(some_if(v >= 7 && case == 0, s("instance-1")))
        .with_retention_time_ms(if v <= 4 { 86_400_000 } else { -1 })
        .with_topics((0..2).map(topic).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn offset_fetch(v: i16, case: usize) -> OffsetFetchRequest {
    let old_topic = |t: i32| {
        OffsetFetchRequestTopic::default()
            .with_name(topic(t))
            .with_partition_indexes(vec![0, 1, 2])
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let group_topic = |t: i32| {
        OffsetFetchRequestTopics::default()
            .with_name(topic(t))
            .with_partition_indexes(vec![0, 1, 2])
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let group_entry = |g: i32| {
        OffsetFetchRequestGroup::default()
            .with_group_id(group(g))
            .with_topics(some_if(
                case == 0 || g != 1,
                (0..2).map(group_topic).collect(),
            ))
            .with_unknown_tagged_field(UNKNOWN_TAG, tv())
    };
    let r = OffsetFetchRequest::default()
        .with_require_stable(v >= 7 && case == 0)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv());
    if v >= 8 {
        r.with_topics(Some(Vec::new()))
            .with_groups((0..2).map(group_entry).collect())
    } else {
        // A null topic list (all topics) exists from v2.
        let topics = some_if(case == 0 || v < 2, (0..2).map(old_topic).collect());
        r.with_group_id(group(0)).with_topics(topics)
    }
}

pub fn list_groups(v: i16, _case: usize) -> ListGroupsRequest {
    let states = if v >= 4 {
        vec![s("Stable"), s("Empty")]
    } else {
        Vec::new()
    };
    ListGroupsRequest::default()
        .with_states_filter(states)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn describe_groups(v: i16, _case: usize) -> DescribeGroupsRequest {
    DescribeGroupsRequest::default()
        .with_groups((0..3).map(group).collect())
        .with_include_authorized_operations(v >= 3)
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn delete_groups(_v: i16, _case: usize) -> DeleteGroupsRequest {
    DeleteGroupsRequest::default()
        .with_groups_names((0..2).map(group).collect())
        .with_unknown_tagged_field(UNKNOWN_TAG, tv())
}

pub fn offset_delete(_v: i16, _case: usize) -> OffsetDeleteRequest {
    let partition = |p: i32| OffsetDeleteRequestPartition::default().with_partition_index(p);
    let topic = |t: i32| {
        OffsetDeleteRequestTopic::default()
            .with_name(topic(t))
            .with_partitions((0..3).map(partition).collect())
    };
    OffsetDeleteRequest::default()
        .with_group_id(group(0))
        .with_topics((0..2).map(topic).collect())
}
