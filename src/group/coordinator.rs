//! Group membership and the classic rebalance protocol, as Kafka's `GroupCoordinator`.
//!
//! States: Empty -> PreparingRebalance (members rejoin) -> CompletingRebalance (the leader
//! computes the assignment on the client side and sends it with SyncGroup) -> Stable. A
//! join, a leave, a changed subscription or an expired session sends a Stable group back
//! to PreparingRebalance, and every member learns it from REBALANCE_IN_PROGRESS on its
//! heartbeat. Joins and syncs that must wait park a one-slot channel in the member; the
//! coordinator answers them when the rebalance moves on.
//!
//! All state is owned by the shard and touched from its one thread; no borrow of it is
//! held across an await. Timeouts are checked by [`Coordinator::tick`], which the shard's
//! glommio timer loop runs every 100 ms.

use super::records::{GroupValue, Key, Record, build_batch};
use super::{GroupError, OFFSETS_TOPIC, offsets_partition};
use crate::config::GroupConfig;
use crate::protocol::strings::str_bytes;
use crate::shard::Shard;
use bytes::Bytes;
use glommio::channels::local_channel::{self, LocalReceiver, LocalSender};
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::join_group_response::JoinGroupResponseMember;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{
    GroupId, JoinGroupRequest, JoinGroupResponse, LeaveGroupRequest, LeaveGroupResponse,
    SyncGroupRequest, SyncGroupResponse,
};
use std::cell::{Cell, RefCell};
use std::collections::{BTreeMap, HashMap};
use std::time::{Duration, Instant};

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
    pub session_timeout: Duration,
    pub rebalance_timeout: Duration,
    /// Assignors this member supports, in its order of preference, with their metadata.
    pub protocols: Vec<(String, Bytes)>,
    pub assignment: Bytes,
    pub last_seen: Instant,
    join: Option<LocalSender<JoinGroupResponse>>,
    sync: Option<LocalSender<SyncGroupResponse>>,
}

impl Member {
    fn metadata(&self, protocol: &str) -> Bytes {
        self.protocols
            .iter()
            .find(|(n, _)| n == protocol)
            .map(|(_, m)| m.clone())
            .unwrap_or_default()
    }
}

/// A committed offset and where its record sits in the log: a record applies only over an
/// older one, so commits that complete out of order cannot go back in time.
#[derive(Debug, Clone)]
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
    pub pending: HashMap<String, Instant>,
    /// `group.instance.id` -> member id of static members.
    pub static_members: HashMap<String, String>,
    rebalance_deadline: Instant,
    join_not_before: Instant,
    pub empty_since_ms: i64,
    pub offsets: HashMap<(String, i32), Committed>,
}

impl Group {
    pub fn new(id: String) -> Group {
        let now = Instant::now();
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
            rebalance_deadline: now,
            join_not_before: now,
            empty_since_ms: crate::storage::log::wall_clock_ms(),
            offsets: HashMap::new(),
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
    fn supports(&self, protocol_type: &str, protocols: &[(String, Bytes)]) -> bool {
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

    fn join_response(&self, member_id: &str) -> JoinGroupResponse {
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

    fn sync_response(&self, assignment: Bytes) -> SyncGroupResponse {
        SyncGroupResponse::default()
            .with_protocol_type(self.protocol_type.clone().map(str_bytes))
            .with_protocol_name(self.protocol.clone().map(str_bytes))
            .with_assignment(assignment)
    }

    /// Moves the group to PreparingRebalance; syncs still waiting learn it at once.
    fn prepare_rebalance(&mut self, config: &GroupConfig, now: Instant) {
        if self.state == State::CompletingRebalance {
            for m in self.members.values_mut() {
                if let Some(tx) = m.sync.take() {
                    let _ = tx.try_send(sync_error(GroupError::RebalanceInProgress));
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
            .map(|m| m.rebalance_timeout)
            .max()
            .unwrap_or_default();
        self.rebalance_deadline = now + timeout;
        let delay = Duration::from_millis(config.initial_rebalance_delay_ms);
        self.join_not_before = if was_empty {
            now + delay.min(timeout)
        } else {
            now
        };
    }

    /// Ends the join phase once every member has rejoined (after the initial delay of a new
    /// group) or the rebalance timeout passed; members that did not rejoin are dropped.
    /// Returns whether the group metadata changed in a way worth persisting.
    fn try_complete_join(&mut self, now: Instant) -> bool {
        if self.state != State::PreparingRebalance {
            return false;
        }
        let all_joined = self.members.values().all(|m| m.join.is_some()) && self.pending.is_empty();
        if !(all_joined && now >= self.join_not_before || now >= self.rebalance_deadline) {
            return false;
        }
        let gone: Vec<String> = self
            .members
            .values()
            .filter(|m| m.join.is_none())
            .map(|m| m.id.clone())
            .collect();
        for id in gone {
            self.remove_member(&id, GroupError::UnknownMemberId);
        }
        self.generation += 1;
        if self.members.is_empty() {
            self.state = State::Empty;
            self.protocol = None;
            self.leader = None;
            self.empty_since_ms = crate::storage::log::wall_clock_ms();
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
                m.last_seen = now;
                if let Some(tx) = m.join.take() {
                    let _ = tx.try_send(resp);
                }
            }
        }
        false
    }

    /// Removes a member, answering its parked join or sync with `why`.
    fn remove_member(&mut self, id: &str, why: GroupError) {
        let Some(m) = self.members.remove(id) else {
            return;
        };
        if let Some(tx) = m.join {
            let _ = tx.try_send(join_error(why.code(), id));
        }
        if let Some(tx) = m.sync {
            let _ = tx.try_send(sync_error(why));
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
    fn members_changed(&mut self, config: &GroupConfig, now: Instant) -> bool {
        match self.state {
            State::Stable | State::CompletingRebalance => {
                self.prepare_rebalance(config, now);
                self.try_complete_join(now)
            }
            State::PreparingRebalance => self.try_complete_join(now),
            State::Empty | State::Dead => false,
        }
    }

    /// Checks the member id of a request against the group (and its static identity).
    fn check_member(&self, member_id: &str, instance_id: Option<&str>) -> Result<(), GroupError> {
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

    pub fn group_value(&self) -> GroupValue {
        GroupValue {
            protocol_type: self.protocol_type.clone().unwrap_or_default(),
            generation: self.generation,
            protocol: self.protocol.clone().unwrap_or_default(),
            timestamp_ms: crate::storage::log::wall_clock_ms(),
        }
    }
}

pub fn join_error(code: i16, member_id: &str) -> JoinGroupResponse {
    JoinGroupResponse::default()
        .with_error_code(code)
        .with_generation_id(-1)
        .with_protocol_name(Some(str_bytes("")))
        .with_member_id(str_bytes(member_id))
}

fn sync_error(e: GroupError) -> SyncGroupResponse {
    SyncGroupResponse::default().with_error_code(e.code())
}

fn protocols_of(req: &JoinGroupRequest) -> Vec<(String, Bytes)> {
    req.protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect()
}

fn new_member_id(client_id: &str) -> String {
    format!(
        "{client_id}-{}",
        uuid::Uuid::from_u128(rand::random::<u128>())
    )
}

/// What a join or sync gets: an answer now, or a channel the answer will come on.
enum Reply<T> {
    Now(T),
    Wait(LocalReceiver<T>),
}

/// The groups this shard coordinates.
pub struct Coordinator {
    pub(crate) groups: RefCell<HashMap<String, Group>>,
    /// Set once this shard's offsets partitions are loaded; until then requests get
    /// COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
    pub(crate) loaded: Cell<bool>,
    next_expiry_check: Cell<Option<Instant>>,
}

impl Default for Coordinator {
    fn default() -> Self {
        Coordinator {
            groups: RefCell::new(HashMap::new()),
            loaded: Cell::new(false),
            next_expiry_check: Cell::new(None),
        }
    }
}

impl Coordinator {
    pub(crate) fn ready(&self) -> Result<(), GroupError> {
        if self.loaded.get() {
            Ok(())
        } else {
            Err(GroupError::LoadInProgress)
        }
    }

    pub async fn join(
        &self,
        shard: &Shard,
        req: JoinGroupRequest,
        version: i16,
        client_id: String,
        client_host: String,
    ) -> JoinGroupResponse {
        let member_id = req.member_id.to_string();
        let rx = match self.join_now(shard, &req, version, client_id, client_host) {
            Ok(Reply::Now(r)) => return r,
            Ok(Reply::Wait(rx)) => rx,
            Err((e, id)) => return join_error(e.code(), id.as_deref().unwrap_or(&member_id)),
        };
        match rx.recv().await {
            Some(r) => r,
            None => join_error(GroupError::UnknownMemberId.code(), &member_id),
        }
    }

    fn join_now(
        &self,
        shard: &Shard,
        req: &JoinGroupRequest,
        version: i16,
        client_id: String,
        client_host: String,
    ) -> Result<Reply<JoinGroupResponse>, (GroupError, Option<String>)> {
        let config = &shard.config.group;
        let err = |e| (e, None);
        self.ready().map_err(err)?;
        let group_id = req.group_id.to_string();
        if group_id.is_empty() {
            return Err(err(GroupError::InvalidGroupId));
        }
        let session = req.session_timeout_ms;
        if session < 0
            || (session as u64) < config.min_session_timeout_ms
            || (session as u64) > config.max_session_timeout_ms
        {
            return Err(err(GroupError::InvalidSessionTimeout));
        }
        let session = Duration::from_millis(session as u64);
        // JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance = if req.rebalance_timeout_ms > 0 {
            Duration::from_millis(req.rebalance_timeout_ms as u64)
        } else {
            session
        };
        let protocol_type = req.protocol_type.to_string();
        let protocols = protocols_of(req);
        let member_id = req.member_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let now = Instant::now();

        let mut groups = self.groups.borrow_mut();
        let group = groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id.clone()));
        if group.state == State::Dead {
            return Err(err(GroupError::CoordinatorNotAvailable));
        }
        if group.members.is_empty() && !protocol_type.is_empty() {
            // The first member defines the group's protocol type.
            group.protocol_type = Some(protocol_type.clone());
        }
        let fresh_member = |id: String| Member {
            id,
            instance_id: instance_id.clone(),
            client_id: client_id.clone(),
            client_host: client_host.clone(),
            session_timeout: session,
            rebalance_timeout: rebalance,
            protocols: protocols.clone(),
            assignment: Bytes::new(),
            last_seen: now,
            join: None,
            sync: None,
        };

        if member_id.is_empty() {
            if !group.supports(&protocol_type, &protocols) {
                return Err(err(GroupError::InconsistentGroupProtocol));
            }
            let new_id = new_member_id(&client_id);
            if let Some(inst) = &instance_id
                && let Some(old_id) = group.static_members.get(inst).cloned()
            {
                // A static member came back with a new member id: it replaces (fences)
                // the old one. If nothing it subscribes to changed, the group keeps its
                // assignment and skips a rebalance, which is what static membership is for.
                let Some(mut old) = group.members.remove(&old_id) else {
                    return Err(err(GroupError::UnknownMemberId));
                };
                if let Some(tx) = old.join.take() {
                    let _ = tx.try_send(join_error(GroupError::FencedInstanceId.code(), &old_id));
                }
                if let Some(tx) = old.sync.take() {
                    let _ = tx.try_send(sync_error(GroupError::FencedInstanceId));
                }
                let unchanged = old.protocols == protocols;
                let was_leader = group.leader.as_deref() == Some(old_id.as_str());
                let mut m = fresh_member(new_id.clone());
                m.assignment = old.assignment;
                group.members.insert(new_id.clone(), m);
                group.static_members.insert(inst.clone(), new_id.clone());
                if was_leader {
                    group.leader = Some(new_id.clone());
                }
                if group.state == State::Stable && unchanged && !was_leader {
                    return Ok(Reply::Now(group.join_response(&new_id)));
                }
                return Ok(self.park_join(shard, group, &new_id, now));
            }
            if version >= 4 && instance_id.is_none() {
                // KIP-394: the member must come back with this id, so a client that
                // times out on its first join does not leave a ghost member behind.
                group.pending.insert(new_id.clone(), now + session);
                return Err((GroupError::MemberIdRequired, Some(new_id)));
            }
            group
                .members
                .insert(new_id.clone(), fresh_member(new_id.clone()));
            if let Some(inst) = &instance_id {
                group.static_members.insert(inst.clone(), new_id.clone());
            }
            return Ok(self.park_join(shard, group, &new_id, now));
        }

        if group.pending.remove(&member_id).is_some() {
            if !group.supports(&protocol_type, &protocols) {
                return Err(err(GroupError::InconsistentGroupProtocol));
            }
            group
                .members
                .insert(member_id.clone(), fresh_member(member_id.clone()));
            return Ok(self.park_join(shard, group, &member_id, now));
        }
        group
            .check_member(&member_id, instance_id.as_deref())
            .map_err(err)?;
        // A known member may change its protocols only to ones the others share.
        let others_ok = {
            let mine = group.members.remove(&member_id);
            let ok = group.supports(&protocol_type, &protocols);
            if let Some(m) = mine {
                group.members.insert(member_id.clone(), m);
            }
            ok
        };
        if !others_ok {
            return Err(err(GroupError::InconsistentGroupProtocol));
        }
        let is_leader = group.leader.as_deref() == Some(member_id.as_str());
        let Some(m) = group.members.get_mut(&member_id) else {
            return Err(err(GroupError::UnknownMemberId));
        };
        m.last_seen = now;
        m.session_timeout = session;
        m.rebalance_timeout = rebalance;
        let changed = m.protocols != protocols;
        m.protocols = protocols;
        match group.state {
            State::CompletingRebalance | State::Stable if !changed && !is_leader => {
                // A follower that missed its join response asks again: same answer.
                Ok(Reply::Now(group.join_response(&member_id)))
            }
            State::CompletingRebalance if !changed => {
                Ok(Reply::Now(group.join_response(&member_id)))
            }
            _ => Ok(self.park_join(shard, group, &member_id, now)),
        }
    }

    /// Parks the member's join and starts or advances the rebalance.
    fn park_join(
        &self,
        shard: &Shard,
        group: &mut Group,
        member_id: &str,
        now: Instant,
    ) -> Reply<JoinGroupResponse> {
        let (tx, rx) = local_channel::new_bounded(1);
        if let Some(m) = group.members.get_mut(member_id) {
            m.join = Some(tx);
        }
        if group.state != State::PreparingRebalance {
            group.prepare_rebalance(&shard.config.group, now);
        }
        if group.try_complete_join(now) {
            persist_group(shard, group);
        }
        Reply::Wait(rx)
    }

    pub async fn sync(&self, shard: &Shard, req: SyncGroupRequest) -> SyncGroupResponse {
        match self.sync_now(shard, &req) {
            Ok(Reply::Now(r)) => r,
            Ok(Reply::Wait(rx)) => rx
                .recv()
                .await
                .unwrap_or_else(|| sync_error(GroupError::RebalanceInProgress)),
            Err(e) => sync_error(e),
        }
    }

    fn sync_now(
        &self,
        shard: &Shard,
        req: &SyncGroupRequest,
    ) -> Result<Reply<SyncGroupResponse>, GroupError> {
        self.ready()?;
        let group_id = req.group_id.to_string();
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let member_id = req.member_id.to_string();
        let mut groups = self.groups.borrow_mut();
        let group = groups
            .get_mut(&group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == State::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        group.check_member(&member_id, instance.as_deref())?;
        if req.generation_id != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        let type_ok = req
            .protocol_type
            .as_ref()
            .is_none_or(|t| Some(t.as_str()) == group.protocol_type.as_deref());
        let name_ok = req
            .protocol_name
            .as_ref()
            .is_none_or(|n| Some(n.as_str()) == group.protocol.as_deref());
        if !type_ok || !name_ok {
            return Err(GroupError::InconsistentGroupProtocol);
        }
        let now = Instant::now();
        match group.state {
            State::Empty => Err(GroupError::UnknownMemberId),
            State::PreparingRebalance | State::Dead => Err(GroupError::RebalanceInProgress),
            State::Stable => {
                let a = group
                    .members
                    .get(&member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                Ok(Reply::Now(group.sync_response(a)))
            }
            State::CompletingRebalance => {
                let (tx, rx) = local_channel::new_bounded(1);
                if let Some(m) = group.members.get_mut(&member_id) {
                    m.sync = Some(tx);
                    m.last_seen = now;
                }
                if group.leader.as_deref() == Some(member_id.as_str()) {
                    // The leader's assignment completes the rebalance for everyone;
                    // members it left out get an empty assignment.
                    let given: HashMap<String, Bytes> = req
                        .assignments
                        .iter()
                        .map(|a| (a.member_id.to_string(), a.assignment.clone()))
                        .collect();
                    group.state = State::Stable;
                    let ids: Vec<String> = group.members.keys().cloned().collect();
                    for id in ids {
                        let a = given.get(&id).cloned().unwrap_or_default();
                        let resp = group.sync_response(a.clone());
                        if let Some(m) = group.members.get_mut(&id) {
                            m.assignment = a;
                            if let Some(tx) = m.sync.take() {
                                let _ = tx.try_send(resp);
                            }
                        }
                    }
                    persist_group(shard, group);
                }
                Ok(Reply::Wait(rx))
            }
        }
    }

    pub fn heartbeat(
        &self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
    ) -> Result<(), GroupError> {
        self.ready()?;
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let mut groups = self.groups.borrow_mut();
        let group = groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == State::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        group.check_member(member_id, instance_id)?;
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_seen = Instant::now();
        }
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        match group.state {
            State::PreparingRebalance => Err(GroupError::RebalanceInProgress),
            State::Empty => Err(GroupError::UnknownMemberId),
            _ => Ok(()),
        }
    }

    pub fn leave(&self, shard: &Shard, req: LeaveGroupRequest, version: i16) -> LeaveGroupResponse {
        // v0-2 name one member; v3+ a batch, each with its own result.
        let who: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    (
                        m.member_id.to_string(),
                        m.group_instance_id.as_ref().map(|s| s.to_string()),
                    )
                })
                .collect()
        } else {
            vec![(req.member_id.to_string(), None)]
        };
        let group_error = self.ready().err().or_else(|| {
            req.group_id
                .is_empty()
                .then_some(GroupError::InvalidGroupId)
        });
        let mut results = Vec::with_capacity(who.len());
        let mut groups = self.groups.borrow_mut();
        let now = Instant::now();
        let group = groups.get_mut(req.group_id.as_str());
        match (group_error, group) {
            (Some(e), _) => {
                return LeaveGroupResponse::default().with_error_code(e.code());
            }
            (None, None) => {
                for _ in &who {
                    results.push(GroupError::UnknownMemberId.code());
                }
            }
            (None, Some(group)) => {
                let mut changed = false;
                for (member_id, instance) in &who {
                    let target = match instance {
                        Some(inst) => match group.static_members.get(inst) {
                            Some(known) if member_id.is_empty() || known == member_id => {
                                Ok(known.clone())
                            }
                            Some(_) => Err(GroupError::FencedInstanceId),
                            None => Err(GroupError::UnknownMemberId),
                        },
                        None if group.pending.remove(member_id).is_some() => {
                            results.push(0);
                            continue;
                        }
                        None if group.members.contains_key(member_id) => Ok(member_id.clone()),
                        None => Err(GroupError::UnknownMemberId),
                    };
                    match target {
                        Ok(id) => {
                            group.remove_member(&id, GroupError::UnknownMemberId);
                            changed = true;
                            results.push(0);
                        }
                        Err(e) => results.push(e.code()),
                    }
                }
                if changed && group.members_changed(&shard.config.group, now) {
                    persist_group(shard, group);
                }
            }
        }
        if version >= 3 {
            let members = who
                .into_iter()
                .zip(results)
                .map(|((id, inst), code)| {
                    MemberResponse::default()
                        .with_member_id(str_bytes(id))
                        .with_group_instance_id(inst.map(str_bytes))
                        .with_error_code(code)
                })
                .collect();
            LeaveGroupResponse::default().with_members(members)
        } else {
            LeaveGroupResponse::default().with_error_code(results.first().copied().unwrap_or(0))
        }
    }

    pub fn describe(&self, ids: &[String]) -> Vec<DescribedGroup> {
        let groups = self.groups.borrow();
        let loading = self.ready().err().map(|e| e.code());
        ids.iter()
            .map(|id| {
                let base = DescribedGroup::default().with_group_id(GroupId(str_bytes(id.clone())));
                if let Some(code) = loading {
                    return base.with_error_code(code);
                }
                let Some(g) = groups.get(id) else {
                    // Kafka describes an unknown group as Dead, without an error.
                    return base.with_group_state(str_bytes("Dead"));
                };
                let protocol = g.protocol.clone().unwrap_or_default();
                let members = g
                    .members
                    .values()
                    .map(|m| {
                        DescribedGroupMember::default()
                            .with_member_id(str_bytes(m.id.clone()))
                            .with_group_instance_id(m.instance_id.clone().map(str_bytes))
                            .with_client_id(str_bytes(m.client_id.clone()))
                            .with_client_host(str_bytes(m.client_host.clone()))
                            .with_member_metadata(m.metadata(&protocol))
                            .with_member_assignment(m.assignment.clone())
                    })
                    .collect();
                base.with_group_state(str_bytes(g.state.name()))
                    .with_protocol_type(str_bytes(g.protocol_type.clone().unwrap_or_default()))
                    .with_protocol_data(str_bytes(protocol))
                    .with_members(members)
            })
            .collect()
    }

    pub fn list(&self, states: &[String]) -> Vec<ListedGroup> {
        self.groups
            .borrow()
            .values()
            .filter(|g| g.state != State::Dead)
            .filter(|g| {
                states.is_empty()
                    || states
                        .iter()
                        .any(|s| s.eq_ignore_ascii_case(g.state.name()))
            })
            .map(|g| {
                ListedGroup::default()
                    .with_group_id(GroupId(str_bytes(g.id.clone())))
                    .with_protocol_type(str_bytes(g.protocol_type.clone().unwrap_or_default()))
                    .with_group_state(str_bytes(g.state.name()))
            })
            .collect()
    }

    /// Session expiry, rebalance deadlines and offset expiry (called every 100 ms).
    pub fn tick(&self, shard: &Shard) {
        if !self.loaded.get() {
            return;
        }
        let now = Instant::now();
        let config = &shard.config.group;
        {
            let mut groups = self.groups.borrow_mut();
            for group in groups.values_mut() {
                if group.state == State::Dead {
                    continue;
                }
                let before = group.pending.len();
                group.pending.retain(|_, deadline| *deadline > now);
                let mut changed = before != group.pending.len();
                // A member parked in a join or sync is waiting on us, not silent.
                let expired: Vec<String> = group
                    .members
                    .values()
                    .filter(|m| {
                        m.join.is_none()
                            && m.sync.is_none()
                            && now.duration_since(m.last_seen) > m.session_timeout
                    })
                    .map(|m| m.id.clone())
                    .collect();
                for id in &expired {
                    tracing::info!("group {}: member {id} session expired", group.id);
                    group.remove_member(id, GroupError::UnknownMemberId);
                    changed = true;
                }
                let persist = if changed {
                    group.members_changed(config, now)
                } else {
                    group.try_complete_join(now)
                };
                if persist {
                    persist_group(shard, group);
                }
            }
        }
        let due = self.next_expiry_check.get().is_none_or(|t| now >= t);
        if due {
            self.next_expiry_check.set(Some(
                now + Duration::from_millis(config.offsets_retention_check_interval_ms),
            ));
            super::offsets::expire(shard);
        }
    }
}

/// Appends the group's metadata record. Not awaited: it only carries the generation and
/// protocol type across restarts, and the log keeps appends in call order.
pub fn persist_group(shard: &Shard, group: &Group) {
    let key = Key::Group {
        group: group.id.clone(),
    };
    match (key.encode(), group.group_value().encode()) {
        (Ok(k), Ok(v)) => append_detached(shard, &group.id, vec![(k, Some(v))]),
        (Err(e), _) | (_, Err(e)) => {
            tracing::error!("group metadata of {} not persisted: {e}", group.id)
        }
    }
}

/// Appends records to the group's offsets partition without waiting for them.
pub fn append_detached(shard: &Shard, group: &str, records: Vec<Record>) {
    if records.is_empty() {
        return;
    }
    let Some(log) = offsets_log(shard, group) else {
        tracing::error!("no {OFFSETS_TOPIC} partition for group {group} on this shard");
        return;
    };
    let Some(batch) = build_batch(&records, crate::storage::log::wall_clock_ms()) else {
        return;
    };
    let group = group.to_string();
    glommio::spawn_local(async move {
        if let Err(e) = log.append(batch).await {
            tracing::error!("cannot persist group {group}: {e}");
        }
    })
    .detach();
}

/// The log of the group's offsets partition, if this shard owns it.
pub fn offsets_log(shard: &Shard, group: &str) -> Option<crate::shard::runtime::Log> {
    let n = shard.meta().topics.get(OFFSETS_TOPIC)?.partitions;
    shard.log_of(OFFSETS_TOPIC, offsets_partition(group, n))
}
