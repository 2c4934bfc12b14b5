//! One consumer group as data: its members, its place in the classic rebalance protocol,
//! and its committed offsets. Everything here is a pure function of the group and the
//! time given; answers to parked requests go into an [`Effects`], which the host delivers.
//!
//! States: Empty -> PreparingRebalance (members rejoin) -> CompletingRebalance (the leader
//! computes the assignment on the client side and sends it with SyncGroup) -> Stable. A
//! join, a leave, a changed subscription or an expired session sends a Stable group back
//! to PreparingRebalance, and every member learns it from REBALANCE_IN_PROGRESS on its
//! heartbeat. Joins and syncs that must wait are parked under their request's token.

use super::records::{GroupValue, MemberValue};
use super::{Effects, GroupError, GroupReply, Token};
use crate::config::GroupConfig;
use crate::protocol::strings::str_bytes;
use bytes::Bytes;
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::{JoinGroupResponse, SyncGroupResponse};
use std::collections::{BTreeMap, HashMap};

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum State {
    Empty,
    PreparingRebalance,
    CompletingRebalance,
    Stable,
    /// Being deleted: requests get COORDINATOR_NOT_AVAILABLE until the tombstones land.
    Dead,
}

impl State {
    pub fn name(self) -> &'static str {
        match self {
            State::Empty => "Empty",
            State::PreparingRebalance => "PreparingRebalance",
            State::CompletingRebalance => "CompletingRebalance",
            State::Stable => "Stable",
            State::Dead => "Dead",
        }
    }
}

pub struct Member {
    pub id: String,
    pub instance_id: Option<String>,
    pub client_id: String,
    pub client_host: String,
    pub session_timeout_ms: i64,
    pub rebalance_timeout_ms: i64,
    /// Assignors this member supports, in its order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen_ms: i64,
    /// The parked JoinGroup / SyncGroup of this member, if it waits for the rebalance.
    pub join: Option<Token>,
    pub sync: Option<Token>,
}

impl Member {
    pub fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A committed offset and where its record sits in the log: a record applies only over an
/// older one, so commits that complete out of order cannot go back in time.
#[derive(Debug, Clone, PartialEq)]
pub struct Committed {
    pub offset: i64,
    pub leader_epoch: i32,
    pub metadata: Option<String>,
    pub commit_timestamp_ms: i64,
    pub log_offset: i64,
}

pub struct Group {
    pub id: String,
    pub state: State,
    pub generation: i32,
    pub protocol_type: Option<String>,
    pub protocol: Option<String>,
    pub leader: Option<String>,
    pub members: BTreeMap<String, Member>,
    /// Member ids handed out with MEMBER_ID_REQUIRED, with the deadline to rejoin by.
    pub pending: HashMap<String, i64>,
    /// `group.instance.id` -> member id of static members.
    pub static_members: HashMap<String, String>,
    pub rebalance_deadline_ms: i64,
    pub join_not_before_ms: i64,
    pub empty_since_ms: i64,
    pub offsets: HashMap<(String, i32), Committed>,
    /// Offsets of open transactions (TxnOffsetCommit), by producer id: committed when the
    /// transaction's commit marker reaches this group's offsets partition.
    pub pending_txn: HashMap<i64, Vec<(String, i32, Committed)>>,
}

pub fn join_error(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_protocol_name(Some(str_bytes("")))
        .with_member_id(str_bytes(member_id))
}

pub fn sync_error(e: GroupError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(e.code())
}

impl Group {
    pub fn new(id: String, now_ms: i64) -> Group {
        Group {
            id,
            state: State::Empty,
            generation: 0,
            protocol_type: None,
            protocol: None,
            leader: None,
            members: BTreeMap::new(),
            pending: HashMap::new(),
            static_members: HashMap::new(),
            rebalance_deadline_ms: now_ms,
            join_not_before_ms: now_ms,
            empty_since_ms: now_ms,
            offsets: HashMap::new(),
            pending_txn: HashMap::new(),
        }
    }

    /// Protocols every member supports.
    fn candidates(&self) -> Vec<String> {
        let mut it = self.members.values();
        let Some(first) = it.next() else {
            return Vec::new();
        };
        let mut c: Vec<String> = first.protocols.iter().map(|(n, _)| n.clone()).collect();
        for m in it {
            c.retain(|n| m.protocols.iter().any(|(p, _)| p == n));
        }
        c
    }

    /// Whether a member with these protocols may join (Kafka's `supportsProtocols`).
    pub fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
        if self.members.is_empty() {
            return !protocol_type.is_empty() && !protocols.is_empty();
        }
        self.protocol_type.as_deref() == Some(protocol_type)
            && self
                .candidates()
                .iter()
                .any(|c| protocols.iter().any(|(p, _)| p == c))
    }

    /// Each member votes for its most preferred candidate; the most votes win.
    fn select_protocol(&self) -> Option<String> {
        let candidates = self.candidates();
        let mut votes: Vec<(String, usize)> = candidates.iter().map(|c| (c.clone(), 0)).collect();
        for m in self.members.values() {
            if let Some((name, _)) = m.protocols.iter().find(|(p, _)| candidates.contains(p))
                && let Some(v) = votes.iter_mut().find(|(c, _)| c == name)
            {
                v.1 += 1;
            }
        }
        // Ties go to the earlier candidate (the first member's preference order).
        let best = votes.iter().map(|(_, n)| *n).max()?;
        votes.into_iter().find(|(_, n)| *n == best).map(|(c, _)| c)
    }

    pub fn join_response(&self, member_id: &str) -> JoinGroupResponse {
        let protocol = self.protocol.clone().unwrap_or_default();
        let leader = self.leader.clone().unwrap_or_default();
        let members = if leader == member_id {
            self.members
                .values()
                .map(|m| {
                    JoinGroupResponseMember::default()
                        .with_member_id(str_bytes(m.id.clone()))
                        .with_group_instance_id(m.instance_id.clone().map(str_bytes))
                        .with_metadata(m.metadata(&protocol))
                })
                .collect()
        } else {
            Vec::new()
        };
        JoinGroupResponse::default()
            .with_generation_id(self.generation)
            .with_protocol_type(self.protocol_type.clone().map(str_bytes))
            .with_protocol_name(Some(str_bytes(protocol)))
            .with_leader(str_bytes(leader))
            .with_member_id(str_bytes(member_id))
            .with_members(members)
    }

    pub fn sync_response(&self, assignment: Bytes) -> SyncGroupResponse {
        SyncGroupResponse::default()
            .with_protocol_type(self.protocol_type.clone().map(str_bytes))
            .with_protocol_name(self.protocol.clone().map(str_bytes))
            .with_assignment(assignment)
    }

    /// Moves the group to PreparingRebalance; syncs still waiting learn it at once.
    pub fn prepare_rebalance(&mut self, config: &GroupConfig, now_ms: i64, fx: &mut Effects) {
        if self.state == State::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(token) = m.sync.take() {
                    fx.reply(
                        token,
                        GroupReply::Sync(sync_error(GroupError::RebalanceInProgress)),
                    );
                }
            }
        }
        for m in self.members.values_mut() {
            m.assignment = Bytes::new();
        }
        let was_empty = self.state == State::Empty;
        self.state = State::PreparingRebalance;
        let timeout = self
            .members
            .values()
            .map(|m| m.rebalance_timeout_ms)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline_ms = now_ms.saturating_add(timeout);
        let delay = i64::try_from(config.initial_rebalance_delay_ms).unwrap_or(i64::MAX);
        self.join_not_before_ms = if was_empty {
            now_ms.saturating_add(delay.min(timeout))
        } else {
            now_ms
        };
    }

    /// Ends the join phase once every member has rejoined (after the initial delay of a new
    /// group) or the rebalance timeout passed; members that did not rejoin are dropped.
    /// Returns whether the group metadata changed in a way worth persisting.
    pub fn try_complete_join(&mut self, now_ms: i64, fx: &mut Effects) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.join.is_some()) && self.pending.is_empty();
        if !(all_joined && now_ms >= self.join_not_before_ms
            || now_ms >= self.rebalance_deadline_ms)
        {
            return false;
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, GroupError::UnknownMemberId, fx);
        }
        self.generation = self.generation.wrapping_add(1);
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = now_ms;
            return true;
        }
        self.protocol = self.select_protocol();
        if !self
            .leader
            .as_ref()
            .is_some_and(|l| self.members.contains_key(l))
        {
            self.leader = self.members.keys().next().cloned();
        }
        self.state = State::CompletingRebalance;
        let ids: Vec<String> = self.members.keys().cloned().collect();
        for id in ids {
            let resp = self.join_response(&id);
            if let Some(m) = self.members.get_mut(&id) {
                m.last_seen_ms = now_ms;
                if let Some(token) = m.join.take() {
                    fx.reply(token, GroupReply::Join(resp));
                }
            }
        }
        false
    }

    /// Removes a member, answering its parked join or sync with `why`.
    pub fn remove_member(&mut self, id: &str, why: GroupError, fx: &mut Effects) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(token) = m.join {
            fx.reply(token, GroupReply::Join(join_error(why.code(), id)));
        }
        if let Some(token) = m.sync {
            fx.reply(token, GroupReply::Sync(sync_error(why)));
        }
        if let Some(inst) = m.instance_id
            && self.static_members.get(&inst).map(String::as_str) == Some(id)
        {
            self.static_members.remove(&inst);
        }
        if self.leader.as_deref() == Some(id) {
            self.leader = None;
        }
    }

    /// After members left or expired: rebalance the rest.
    pub fn members_changed(&mut self, config: &GroupConfig, now_ms: i64, fx: &mut Effects) -> bool {
        match self.state {
            State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(config, now_ms, fx);
                self.try_complete_join(now_ms, fx)
            }
            State::PreparingRebalance => self.try_complete_join(now_ms, fx),
            State::Empty | State::Dead => false,
        }
    }

    /// Checks the member id of a request against the group (and its static identity).
    pub fn check_member(
        &self,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        if let Some(inst) = instance_id
            && let Some(known) = self.static_members.get(inst)
            && known != member_id
        {
            return Err(GroupError::FencedInstanceId);
        }
        if !self.members.contains_key(member_id) {
            return Err(GroupError::UnknownMemberId);
        }
        Ok(())
    }

    /// The group's metadata record as Kafka writes it: for a group with members, each
    /// member with its subscription to the selected protocol and its assignment, so that
    /// tools reading `__consumer_offsets` see who consumes what.
    pub fn group_value(&self, now_ms: i64) -> GroupValue {
        let protocol = self.protocol.clone().unwrap_or_default();
        let clamp = |ms: i64| i32::try_from(ms).unwrap_or(i32::MAX);
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone(),
            leader: self.leader.clone(),
            timestamp_ms: now_ms,
            members: self
                .members
                .values()
                .map(|m| MemberValue {
                    member_id: m.id.clone(),
                    instance_id: m.instance_id.clone(),
                    client_id: m.client_id.clone(),
                    client_host: m.client_host.clone(),
                    rebalance_timeout_ms: clamp(m.rebalance_timeout_ms),
                    session_timeout_ms: clamp(m.session_timeout_ms),
                    subscription: m.metadata(&protocol),
                    assignment: m.assignment.clone(),
                })
                .collect(),
        }
    }

    /// Applies a committed offset whose record sits at `log_offset`, unless a newer record
    /// of the same partition already applied.
    pub fn apply_offset(&mut self, topic: String, partition: i32, c: Committed) {
        match self.offsets.entry((topic, partition)) {
            std::collections::hash_map::Entry::Occupied(mut o) => {
                if o.get().log_offset < c.log_offset {
                    o.insert(c);
                }
            }
            std::collections::hash_map::Entry::Vacant(v) => {
                v.insert(c);
            }
        }
    }
}
