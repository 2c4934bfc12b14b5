//! Consumer groups: one coordinator per group, on the shard that owns the group's
//! partition of `__consumer_offsets`, so a commit is appended without a cross-shard hop.
//!
//! - `coordinator`: membership and the classic rebalance protocol (JoinGroup, SyncGroup,
//!   Heartbeat, LeaveGroup), session and rebalance timeouts.
//! - `offsets`: OffsetCommit/OffsetFetch/OffsetDelete/DeleteGroups, loading the groups of
//!   this shard's offsets partitions at start, and offset expiry.
//! - `records`: the key/value records of `__consumer_offsets` and their batches.
//!
//! Handlers run on the connection's shard; they send a [`GroupOp`] to the coordinator
//! shard (inline when it is the same one), which answers with a [`GroupReply`].

pub mod admit;
pub mod coordinator;
pub mod offsets;
pub mod records;

use crate::config::BrokerConfig;
use crate::shard::Shard;
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::meta::{Metadata, TopicMeta, new_topic_id};
use crate::shard::table::topic_hash;
use crate::storage::StorageError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use std::rc::Rc;
use thiserror::Error;

pub use coordinator::Coordinator;

/// The internal topic holding committed offsets and group metadata.
pub const OFFSETS_TOPIC: &str = "__consumer_offsets";

/// Kafka's `offset.metadata.max.bytes`.
pub const OFFSET_METADATA_MAX_BYTES: usize = 4096;

/// Why a group request fails; [`GroupError::code`] maps each to its Kafka code.
#[derive(Debug, Error)]
pub enum GroupError {
    #[error("unknown member id")]
    UnknownMemberId,
    #[error("illegal generation")]
    IllegalGeneration,
    #[error("the group is rebalancing")]
    RebalanceInProgress,
    #[error("the coordinator is not available")]
    CoordinatorNotAvailable,
    #[error("this shard is not the group's coordinator")]
    NotCoordinator,
    #[error("the coordinator is loading its groups")]
    LoadInProgress,
    #[error("invalid group id")]
    InvalidGroupId,
    #[error("no protocol common to all members")]
    InconsistentGroupProtocol,
    #[error("group not found")]
    GroupIdNotFound,
    #[error("the group has members")]
    NonEmptyGroup,
    #[error("another member has this group.instance.id")]
    FencedInstanceId,
    #[error("rejoin with the member id given")]
    MemberIdRequired,
    #[error("session timeout out of the broker's bounds")]
    InvalidSessionTimeout,
    #[error("unknown topic or partition")]
    UnknownTopicOrPartition,
    #[error("the group is subscribed to the topic")]
    GroupSubscribedToTopic,
    #[error("offset metadata too large")]
    OffsetMetadataTooLarge,
    #[error("a field of the request is beyond the broker's bounds")]
    InvalidRequest,
    #[error("storage: {0}")]
    Storage(#[from] StorageError),
}

impl GroupError {
    /// The Kafka error code a client gets for this error.
    pub fn code(&self) -> i16 {
        use crate::protocol::code;
        match self {
            GroupError::UnknownMemberId => code::UNKNOWN_MEMBER_ID,
            GroupError::IllegalGeneration => code::ILLEGAL_GENERATION,
            GroupError::RebalanceInProgress => code::REBALANCE_IN_PROGRESS,
            GroupError::CoordinatorNotAvailable => code::COORDINATOR_NOT_AVAILABLE,
            GroupError::NotCoordinator => code::NOT_COORDINATOR,
            GroupError::LoadInProgress => code::COORDINATOR_LOAD_IN_PROGRESS,
            GroupError::InvalidGroupId => code::INVALID_GROUP_ID,
            GroupError::InconsistentGroupProtocol => code::INCONSISTENT_GROUP_PROTOCOL,
            GroupError::GroupIdNotFound => code::GROUP_ID_NOT_FOUND,
            GroupError::NonEmptyGroup => code::NON_EMPTY_GROUP,
            GroupError::FencedInstanceId => code::FENCED_INSTANCE_ID,
            GroupError::MemberIdRequired => code::MEMBER_ID_REQUIRED,
            GroupError::InvalidSessionTimeout => code::INVALID_SESSION_TIMEOUT,
            GroupError::UnknownTopicOrPartition => code::UNKNOWN_TOPIC_OR_PARTITION,
            GroupError::GroupSubscribedToTopic => code::GROUP_SUBSCRIBED_TO_TOPIC,
            GroupError::OffsetMetadataTooLarge => code::OFFSET_METADATA_TOO_LARGE,
            GroupError::InvalidRequest => code::INVALID_REQUEST,
            // A commit whose append failed: the offsets partition went away under it (the
            // client finds the coordinator again) or the disk failed.
            GroupError::Storage(StorageError::Closed) => code::NOT_COORDINATOR,
            GroupError::Storage(s) => s.code(),
        }
    }
}

/// Committed offsets of one group, as OffsetFetch returns them.
pub struct FetchedGroup {
    pub group: String,
    pub error_code: i16,
    /// Topic -> (partition, offset, leader epoch, metadata, error code).
    pub topics: Vec<(String, Vec<FetchedOffset>)>,
}

pub struct FetchedOffset {
    pub partition: i32,
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub error_code: i16,
}

/// Work for a group coordinator. Requests travel decoded (the crate's types are `Send`)
/// and answers come back ready to encode in the connection's version.
pub enum GroupOp {
    Join {
        req: JoinGroupRequest,
        version: i16,
        client_id: String,
        client_host: String,
    },
    Sync {
        req: SyncGroupRequest,
    },
    Heartbeat {
        group: String,
        generation: i32,
        member_id: String,
        instance_id: Option<String>,
    },
    Leave {
        req: LeaveGroupRequest,
        version: i16,
    },
    Commit {
        req: OffsetCommitRequest,
    },
    Fetch {
        group: String,
        /// `None`: every committed offset of the group.
        topics: Option<Vec<(String, Vec<i32>)>>,
    },
    Describe(Vec<String>),
    /// To every shard: its groups, filtered by state names (empty: all).
    List(Vec<String>),
    Delete(Vec<String>),
    OffsetDelete(OffsetDeleteRequest),
}

pub enum GroupReply {
    Join(JoinGroupResponse),
    Sync(SyncGroupResponse),
    Heartbeat(i16),
    Leave(LeaveGroupResponse),
    Commit(OffsetCommitResponse),
    Fetch(FetchedGroup),
    Describe(Vec<DescribedGroup>),
    List(Vec<ListedGroup>),
    Delete(Vec<(String, i16)>),
    OffsetDelete(OffsetDeleteResponse),
}

/// The partition of `__consumer_offsets` that holds `group`. FNV-1a, stable across
/// restarts and shards like the shard table.
pub fn offsets_partition(group: &str, partitions: i32) -> i32 {
    (topic_hash(group) % partitions.max(1) as u64) as i32
}

fn offsets_partitions(shard: &Shard) -> i32 {
    shard
        .meta()
        .topics
        .get(OFFSETS_TOPIC)
        .map(|t| t.partitions)
        .unwrap_or(shard.config.group.offsets_topic_partitions)
}

/// The shard that coordinates `group`: the owner of its offsets partition.
pub fn coordinator_shard(shard: &Shard, group: &str) -> usize {
    shard.owner(
        OFFSETS_TOPIC,
        offsets_partition(group, offsets_partitions(shard)),
    )
}

/// Sends `op` to the coordinator of `group` and waits for its answer. `None` when the
/// mesh is gone (the broker is stopping).
pub async fn route(shard: &Rc<Shard>, group: &str, op: GroupOp) -> Option<GroupReply> {
    let owner = coordinator_shard(shard, group);
    match shard.call(owner, ShardRequest::Group(Box::new(op))).await {
        Some(ShardReply::Group(r)) => Some(r),
        _ => None,
    }
}

/// Runs `op` on this shard, which coordinates the groups named.
pub async fn handle(shard: &Rc<Shard>, op: GroupOp) -> GroupReply {
    if let Err(e) = admit::check(&op, shard.config.message_max_bytes) {
        return admit::refuse(op, e);
    }
    let c = &shard.groups;
    match op {
        GroupOp::Join {
            req,
            version,
            client_id,
            client_host,
        } => GroupReply::Join(c.join(shard, req, version, client_id, client_host).await),
        GroupOp::Sync { req } => GroupReply::Sync(c.sync(shard, req).await),
        GroupOp::Heartbeat {
            group,
            generation,
            member_id,
            instance_id,
        } => GroupReply::Heartbeat(
            c.heartbeat(&group, generation, &member_id, instance_id.as_deref())
                .err()
                .map(|e| e.code())
                .unwrap_or(0),
        ),
        GroupOp::Leave { req, version } => GroupReply::Leave(c.leave(shard, req, version)),
        GroupOp::Commit { req } => GroupReply::Commit(offsets::commit(shard, req).await),
        GroupOp::Fetch { group, topics } => {
            GroupReply::Fetch(offsets::fetch(shard, &group, topics))
        }
        GroupOp::Describe(groups) => GroupReply::Describe(c.describe(&groups)),
        GroupOp::List(states) => GroupReply::List(c.list(&states)),
        GroupOp::Delete(groups) => GroupReply::Delete(offsets::delete_groups(shard, groups).await),
        GroupOp::OffsetDelete(req) => {
            GroupReply::OffsetDelete(offsets::offset_delete(shard, req).await)
        }
    }
}

/// Adds `__consumer_offsets` to the metadata if it is missing. Runs on the main thread
/// before the shards start, so every shard opens its partitions with the others.
/// Offsets are compacted in memory only, so the topic keeps its segments forever
/// (retention.ms = -1): time retention would drop live offsets.
pub fn ensure_offsets_topic(mut meta: Metadata, config: &BrokerConfig) -> (Metadata, bool) {
    if meta.topics.contains_key(OFFSETS_TOPIC) {
        return (meta, false);
    }
    meta.topics.insert(
        OFFSETS_TOPIC.to_string(),
        TopicMeta {
            partitions: config.group.offsets_topic_partitions,
            id: new_topic_id(),
            configs: [("retention.ms".to_string(), "-1".to_string())].into(),
        },
    );
    meta.version += 1;
    (meta, true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn group_errors_map_to_kafka_codes() {
        let cases = [
            (GroupError::UnknownMemberId, 25),
            (GroupError::IllegalGeneration, 22),
            (GroupError::RebalanceInProgress, 27),
            (GroupError::CoordinatorNotAvailable, 15),
            (GroupError::NotCoordinator, 16),
            (GroupError::InvalidGroupId, 24),
            (GroupError::InconsistentGroupProtocol, 23),
            (GroupError::GroupIdNotFound, 69),
            (GroupError::NonEmptyGroup, 68),
            (GroupError::UnknownTopicOrPartition, 3),
            (GroupError::FencedInstanceId, 82),
            (GroupError::MemberIdRequired, 79),
            (GroupError::GroupSubscribedToTopic, 86),
            (GroupError::InvalidRequest, 42),
            (GroupError::Storage(StorageError::Closed), 16),
        ];
        for (e, c) in cases {
            assert_eq!(e.code(), c, "{e:?}");
        }
    }

    #[test]
    fn group_partition_is_stable() {
        // Changing this moves groups between partitions: their offsets would be lost.
        assert_eq!(
            offsets_partition("", 50),
            (0xcbf2_9ce4_8422_2325u64 % 50) as i32
        );
        for n in [1, 3, 50] {
            assert!((0..n).contains(&offsets_partition("my-group", n)));
        }
    }
}
