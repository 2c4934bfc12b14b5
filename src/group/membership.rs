//! Membership and the classic rebalance protocol on the coordinator: JoinGroup,
//! SyncGroup, Heartbeat and LeaveGroup (Kafka's `GroupCoordinator` handlers), pure like the
//! rest of it: answers go into the effects, parked requests stay in the group's state.

use super::coordinator::{GroupCoordinator, JoinCtx};
use super::state::{Group, Member, State, join_error, sync_error};
use super::{Effects, GroupError, GroupReply, Token};
use crate::config::GroupConfig;
use crate::protocol::strings::str_bytes;
use bytes::Bytes;
use kafka_protocol::messages::leave_group_response::MemberResponse;
use kafka_protocol::messages::{
    JoinGroupRequest, LeaveGroupRequest, LeaveGroupResponse, SyncGroupRequest,
};
use rand::RngExt;
use rand::rngs::StdRng;
use std::collections::HashMap;

fn new_member_id(rng: &mut StdRng, client_id: &str) -> String {
    // Kafka's `clientId-UUID`; the client id part is cut so the id stays a record string.
    let prefix: String = client_id.chars().take(200).collect();
    format!("{prefix}-{}", uuid::Uuid::from_u128(rng.random::<u128>()))
}

fn protocols_of(req: &JoinGroupRequest) -> Vec<(String, Bytes)> {
    req.protocols
        .iter()
        .map(|p| (p.name.to_string(), p.metadata.clone()))
        .collect()
}

fn ms(v: i32) -> i64 {
    i64::from(v)
}

impl GroupCoordinator {
    pub(super) fn join(
        &mut self,
        token: Token,
        req: &JoinGroupRequest,
        ctx: JoinCtx,
        fx: &mut Effects,
    ) -> Result<(), (GroupError, Option<String>)> {
        let err = |e| (e, None);
        self.ready().map_err(err)?;
        let group_id = req.group_id.to_string();
        if group_id.is_empty() {
            return Err(err(GroupError::InvalidGroupId));
        }
        let session = req.session_timeout_ms;
        let (min, max) = (
            self.config.min_session_timeout_ms,
            self.config.max_session_timeout_ms,
        );
        if u64::try_from(session).map_or(true, |s| s < min || s > max) {
            return Err(err(GroupError::InvalidSessionTimeout));
        }
        let session = ms(session);
        // JoinGroup v0 has no rebalance timeout: Kafka uses the session timeout.
        let rebalance = if req.rebalance_timeout_ms > 0 {
            ms(req.rebalance_timeout_ms)
        } else {
            session
        };
        let protocol_type = req.protocol_type.to_string();
        let protocols = protocols_of(req);
        let member_id = req.member_id.to_string();
        let instance_id = req.group_instance_id.as_ref().map(|s| s.to_string());
        let now = ctx.now_ms;
        let config = self.config.clone();
        let new_id = new_member_id(&mut self.rng, &ctx.client_id);

        let group = self
            .groups
            .entry(group_id.clone())
            .or_insert_with(|| Group::new(group_id.clone(), now));
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
            client_id: ctx.client_id.clone(),
            client_host: ctx.client_host.clone(),
            session_timeout_ms: session,
            rebalance_timeout_ms: rebalance,
            protocols: protocols.clone(),
            assignment: Bytes::new(),
            last_seen_ms: now,
            join: None,
            sync: None,
        };

        if member_id.is_empty() {
            if !group.supports(&protocol_type, &protocols) {
                return Err(err(GroupError::InconsistentGroupProtocol));
            }
            if let Some(inst) = &instance_id
                && let Some(old_id) = group.static_members.get(inst).cloned()
            {
                // A static member came back with a new member id: it replaces (fences)
                // the old one. If nothing it subscribes to changed, the group keeps its
                // assignment and skips a rebalance, which is what static membership is for.
                let Some(mut old) = group.members.remove(&old_id) else {
                    return Err(err(GroupError::UnknownMemberId));
                };
                let fenced = GroupError::FencedInstanceId;
                if let Some(t) = old.join.take() {
                    fx.reply(t, GroupReply::Join(join_error(fenced.code(), &old_id)));
                }
                if let Some(t) = old.sync.take() {
                    fx.reply(t, GroupReply::Sync(sync_error(fenced)));
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
                    fx.reply(token, GroupReply::Join(group.join_response(&new_id)));
                    return Ok(());
                }
                park_join(group, &config, token, &new_id, now, fx);
                return Ok(());
            }
            if ctx.version >= 4 && instance_id.is_none() {
                // KIP-394: the member must come back with this id, so a client that
                // times out on its first join does not leave a ghost member behind.
                group
                    .pending
                    .insert(new_id.clone(), now.saturating_add(session));
                return Err((GroupError::MemberIdRequired, Some(new_id)));
            }
            group
                .members
                .insert(new_id.clone(), fresh_member(new_id.clone()));
            if let Some(inst) = &instance_id {
                group.static_members.insert(inst.clone(), new_id.clone());
            }
            park_join(group, &config, token, &new_id, now, fx);
            return Ok(());
        }

        if group.pending.remove(&member_id).is_some() {
            if !group.supports(&protocol_type, &protocols) {
                return Err(err(GroupError::InconsistentGroupProtocol));
            }
            group
                .members
                .insert(member_id.clone(), fresh_member(member_id.clone()));
            park_join(group, &config, token, &member_id, now, fx);
            return Ok(());
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
        m.last_seen_ms = now;
        m.session_timeout_ms = session;
        m.rebalance_timeout_ms = rebalance;
        let changed = m.protocols != protocols;
        m.protocols = protocols;
        match group.state {
            // A follower that missed its join response asks again: same answer.
            State::CompletingRebalance | State::Stable if !changed && !is_leader => {
                fx.reply(token, GroupReply::Join(group.join_response(&member_id)));
            }
            State::CompletingRebalance if !changed => {
                fx.reply(token, GroupReply::Join(group.join_response(&member_id)));
            }
            _ => park_join(group, &config, token, &member_id, now, fx),
        }
        Ok(())
    }

    pub(super) fn sync(
        &mut self,
        token: Token,
        req: &SyncGroupRequest,
        now_ms: i64,
        fx: &mut Effects,
    ) -> Result<(), GroupError> {
        self.ready()?;
        let group_id = req.group_id.to_string();
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let member_id = req.member_id.to_string();
        let record_max_bytes = self.payload_max_bytes;
        let group = self
            .groups
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
        match group.state {
            State::Empty => Err(GroupError::UnknownMemberId),
            State::PreparingRebalance | State::Dead => Err(GroupError::RebalanceInProgress),
            State::Stable => {
                let a = group
                    .members
                    .get(&member_id)
                    .map(|m| m.assignment.clone())
                    .unwrap_or_default();
                fx.reply(token, GroupReply::Sync(group.sync_response(a)));
                Ok(())
            }
            State::CompletingRebalance => {
                if let Some(m) = group.members.get_mut(&member_id) {
                    if let Some(old) = m.sync.replace(token) {
                        // The same member synced twice: the older request loses.
                        fx.reply(
                            old,
                            GroupReply::Sync(sync_error(GroupError::RebalanceInProgress)),
                        );
                    }
                    m.last_seen_ms = now_ms;
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
                            if let Some(t) = m.sync.take() {
                                fx.reply(t, GroupReply::Sync(resp));
                            }
                        }
                    }
                    Self::persist_within(group, now_ms, record_max_bytes, fx);
                }
                Ok(())
            }
        }
    }

    pub(super) fn heartbeat(
        &mut self,
        group_id: &str,
        generation: i32,
        member_id: &str,
        instance_id: Option<&str>,
        now_ms: i64,
    ) -> Result<(), GroupError> {
        self.ready()?;
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = self
            .groups
            .get_mut(group_id)
            .ok_or(GroupError::UnknownMemberId)?;
        if group.state == State::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        group.check_member(member_id, instance_id)?;
        if let Some(m) = group.members.get_mut(member_id) {
            m.last_seen_ms = now_ms;
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

    pub(super) fn leave(
        &mut self,
        req: &LeaveGroupRequest,
        version: i16,
        now_ms: i64,
        fx: &mut Effects,
    ) -> LeaveGroupResponse {
        // v0-2 name one member; v3+ a batch, each with its own result.
        let who: Vec<(String, Option<String>)> = if version >= 3 {
            req.members
                .iter()
                .map(|m| {
                    let inst = m.group_instance_id.as_ref().map(|s| s.to_string());
                    (m.member_id.to_string(), inst)
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
        if let Some(e) = group_error {
            return LeaveGroupResponse::default().with_error_code(e.code());
        }
        let config = self.config.clone();
        let mut results = Vec::with_capacity(who.len());
        match self.groups.get_mut(req.group_id.as_str()) {
            None => results.extend(who.iter().map(|_| GroupError::UnknownMemberId.code())),
            Some(group) => {
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
                            group.remove_member(&id, GroupError::UnknownMemberId, fx);
                            changed = true;
                            results.push(0);
                        }
                        Err(e) => results.push(e.code()),
                    }
                }
                if changed && group.members_changed(&config, now_ms, fx) {
                    Self::persist(group, now_ms, fx);
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
}

/// Parks the member's join and starts or advances the rebalance.
pub(super) fn park_join(
    group: &mut Group,
    config: &GroupConfig,
    token: Token,
    member_id: &str,
    now_ms: i64,
    fx: &mut Effects,
) {
    if let Some(m) = group.members.get_mut(member_id)
        && let Some(old) = m.join.replace(token)
    {
        // The same member joined twice: the older request loses.
        fx.reply(
            old,
            GroupReply::Join(join_error(GroupError::UnknownMemberId.code(), member_id)),
        );
    }
    if group.state != State::PreparingRebalance {
        group.prepare_rebalance(config, now_ms, fx);
    }
    if group.try_complete_join(now_ms, fx) {
        GroupCoordinator::persist(group, now_ms, fx);
    }
}
