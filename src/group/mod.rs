//! Consumer groups: one coordinator per group, on the shard that owns the group's
//! partition of `__consumer_offsets`, so a commit is appended without a cross-shard hop.
//!
//! The coordinator is a pure state machine, as Kafka's coordinator runtime has it: a
//! request (a [`GroupOp`] with a [`Token`]), the time and the state go in; the answers and
//! the records to append come out as [`Effects`]. It does no IO, keeps no clock and spawns
//! nothing, so unit tests drive it with a fake clock, and the simulation runs it from a
//! seed. [`GroupHost`] is the runtime around it: it appends through a narrow
//! [`OffsetsLog`], tells the coordinator how each append went, delivers the answers, and
//! ticks it; the shard gives it its partition logs and glommio, the simulation a simulated
//! disk and clock.
//!
//! - `state`: one group, its members and the rebalance protocol.
//! - `coordinator`: the groups of one shard; JoinGroup, SyncGroup, Heartbeat, LeaveGroup,
//!   DescribeGroups, ListGroups, session and rebalance timeouts.
//! - `offsets`: OffsetCommit/OffsetFetch/OffsetDelete/DeleteGroups, offset expiry, and
//!   rebuilding the groups from the records of `__consumer_offsets`.
//! - `records`: the key/value records of `__consumer_offsets` and their batches.
//! - `values`: their values in Kafka's formats (and ringbroker's legacy ones, read only).
//! - `admit`: bounds on what a group request may carry.
//! - `host`: the runtime around the coordinator.

pub mod admit;
pub mod coordinator;
pub mod deletion;
pub mod host;
pub mod membership;
pub mod offsets;
pub mod records;
pub mod state;
pub mod values;

#[cfg(test)]
mod load_tests;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod values_tests;

use crate::storage::StorageError;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use thiserror::Error;

pub use coordinator::GroupCoordinator;
pub use host::{GroupHost, OffsetsLog};

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
        /// OffsetFetch v7+ `require_stable`: a partition with transactional offsets not
        /// yet committed or aborted answers UNSTABLE_OFFSET_COMMIT (the client retries).
        require_stable: bool,
    },
    Describe(Vec<String>),
    /// To every shard: its groups, filtered by state names (empty: all).
    List(Vec<String>),
    Delete(Vec<String>),
    OffsetDelete(OffsetDeleteRequest),
    /// TxnOffsetCommit, as an OffsetCommit of the transaction's producer: the offsets are
    /// appended in a transactional batch and become visible when its commit marker is.
    TxnCommit {
        req: OffsetCommitRequest,
        producer_id: i64,
        epoch: i16,
    },
    /// A transaction marker was appended to `__consumer_offsets` partition `partition` (of
    /// `partitions`): the producer's pending offsets of the groups there become committed
    /// (`commit`) or are dropped.
    TxnMarker {
        producer_id: i64,
        commit: bool,
        partition: i32,
        partitions: i32,
    },
}

impl GroupOp {
    /// The one group the request is about, for those about one group.
    pub fn group_id(&self) -> Option<&str> {
        match self {
            GroupOp::Join { req, .. } => Some(req.group_id.as_str()),
            GroupOp::Sync { req } => Some(req.group_id.as_str()),
            GroupOp::Heartbeat { group, .. } | GroupOp::Fetch { group, .. } => Some(group),
            GroupOp::Leave { req, .. } => Some(req.group_id.as_str()),
            GroupOp::Commit { req } | GroupOp::TxnCommit { req, .. } => Some(req.group_id.as_str()),
            GroupOp::OffsetDelete(req) => Some(req.group_id.as_str()),
            GroupOp::Describe(_)
            | GroupOp::List(_)
            | GroupOp::Delete(_)
            | GroupOp::TxnMarker { .. } => None,
        }
    }
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
    /// A transaction marker was applied.
    Done,
}

/// The partition of `__consumer_offsets` that holds `group`: a stable hash of its id, so
/// a group stays where its offsets are across restarts.
pub fn offsets_partition(group: &str, partitions: i32) -> i32 {
    let n = u64::try_from(partitions.max(1)).unwrap_or(1);
    // Below `partitions`, which is an i32.
    (crate::protocol::strings::name_hash(group) % n) as i32
}

/// Identifies a request waiting for its answer, so the coordinator can answer it later
/// (a parked join, a commit waiting for its append).
pub type Token = u64;

/// Records to append to the group's `__consumer_offsets` partition. `then` names what to
/// do once the append resolves ([`GroupCoordinator::appended`]); `None` appends without
/// waiting (group metadata, expiry tombstones: losing one costs nothing acknowledged).
pub struct Append {
    pub group: String,
    pub records: Vec<records::Record>,
    pub then: Option<u64>,
    /// A transactional batch of this producer (id, epoch): TxnOffsetCommit.
    pub producer: Option<(i64, i16)>,
}

/// What one step of the coordinator asks its host to do: answers to send, and records to
/// append in this order.
#[derive(Default)]
pub struct Effects {
    pub replies: Vec<(Token, GroupReply)>,
    pub appends: Vec<Append>,
}

impl Effects {
    pub fn reply(&mut self, token: Token, reply: GroupReply) {
        self.replies.push((token, reply));
    }

    pub fn append(&mut self, group: &str, records: Vec<records::Record>, then: Option<u64>) {
        if !records.is_empty() {
            self.appends.push(Append {
                group: group.to_string(),
                records,
                then,
                producer: None,
            });
        }
    }

    /// As [`Effects::append`], in a transactional batch of `producer` (id, epoch).
    pub fn append_transactional(
        &mut self,
        group: &str,
        records: Vec<records::Record>,
        then: u64,
        producer: (i64, i16),
    ) {
        if !records.is_empty() {
            self.appends.push(Append {
                group: group.to_string(),
                records,
                then: Some(then),
                producer: Some(producer),
            });
        }
    }
}

#[cfg(test)]
mod error_tests {
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
