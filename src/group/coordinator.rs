//! The groups one shard coordinates, as a pure state machine (Kafka's `GroupCoordinator`
//! behind its coordinator runtime): [`GroupCoordinator::handle`] takes a request with its
//! token and the time, and returns the answers and the records to append; so do
//! [`GroupCoordinator::tick`] (session and rebalance timeouts, offset expiry) and
//! [`GroupCoordinator::appended`] (an append finished). Offsets are in `offsets.rs`.

use super::admit;
use super::records::OffsetValue;
use super::state::{Group, State, join_error, sync_error};
use super::{Effects, GroupError, GroupOp, GroupReply, Token};
use crate::config::GroupConfig;
use crate::protocol::strings::str_bytes;
use kafka_protocol::messages::describe_groups_response::{DescribedGroup, DescribedGroupMember};
use kafka_protocol::messages::list_groups_response::ListedGroup;
use kafka_protocol::messages::{GroupId, OffsetDeleteResponse};
use rand::rngs::StdRng;
use std::collections::HashMap;

/// The groups of one shard.
pub struct GroupCoordinator {
    pub(super) groups: HashMap<String, Group>,
    pub(super) config: GroupConfig,
    /// The broker's `message.max.bytes`: bounds group payloads (`admit`) and the group
    /// record with its members (`persist_within`).
    pub(super) payload_max_bytes: u64,
    /// Set once this shard's offsets partitions are loaded; until then requests get
    /// COORDINATOR_LOAD_IN_PROGRESS, which clients retry.
    pub(super) loaded: bool,
    pub(super) next_expiry_check_ms: Option<i64>,
    /// Member ids are the client id and a random suffix drawn from here.
    pub(super) rng: StdRng,
    /// What to do when an append resolves, by its id.
    pub(super) pending: HashMap<u64, Then>,
    /// DeleteGroups waiting for their tombstones, by batch id.
    pub(super) deletes: HashMap<u64, DeleteBatch>,
    pub(super) next_append: u64,
}

/// Partitions of a topic as this broker's metadata has them (0: no such topic).
pub type Topics<'a> = &'a dyn Fn(&str) -> i32;

impl GroupCoordinator {
    pub fn new(config: GroupConfig, payload_max_bytes: u64, rng: StdRng) -> GroupCoordinator {
        GroupCoordinator {
            groups: HashMap::new(),
            config,
            payload_max_bytes,
            loaded: false,
            next_expiry_check_ms: None,
            rng,
            pending: HashMap::new(),
            deletes: HashMap::new(),
            next_append: 0,
        }
    }

    /// Every committed offset: (group, topic, partition, offset), for the metrics.
    pub fn committed_offsets(&self) -> Vec<(String, String, i32, i64)> {
        let mut out = Vec::new();
        for (id, g) in &self.groups {
            for ((topic, partition), c) in &g.offsets {
                out.push((id.clone(), topic.clone(), *partition, c.offset));
            }
        }
        out
    }

    /// Groups this coordinator holds.
    pub fn group_count(&self) -> usize {
        self.groups.len()
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// The group's state, for tests and the simulation.
    pub fn group(&self, id: &str) -> Option<&Group> {
        self.groups.get(id)
    }

    pub(super) fn ready(&self) -> Result<(), GroupError> {
        if self.loaded {
            Ok(())
        } else {
            Err(GroupError::LoadInProgress)
        }
    }

    /// Handles one request. Its answer is in the effects under `token`, now or (for a
    /// parked join or sync, a commit waiting for its append) from a later step.
    pub fn handle(&mut self, token: Token, op: GroupOp, now_ms: i64, topics: Topics) -> Effects {
        let mut fx = Effects::default();
        if let Err(e) = admit::check(&op, self.payload_max_bytes) {
            fx.reply(token, admit::refuse(op, e));
            return fx;
        }
        match op {
            GroupOp::Join {
                req,
                version,
                client_id,
                client_host,
            } => {
                let member_id = req.member_id.to_string();
                let ctx = JoinCtx {
                    version,
                    client_id,
                    client_host,
                    now_ms,
                };
                if let Err((e, id)) = self.join(token, &req, ctx, &mut fx) {
                    let id = id.unwrap_or(member_id);
                    fx.reply(token, GroupReply::Join(join_error(e.code(), &id)));
                }
            }
            GroupOp::Sync { req } => {
                if let Err(e) = self.sync(token, &req, now_ms, &mut fx) {
                    fx.reply(token, GroupReply::Sync(sync_error(e)));
                }
            }
            GroupOp::Heartbeat {
                group,
                generation,
                member_id,
                instance_id,
            } => {
                let r = self.heartbeat(
                    &group,
                    generation,
                    &member_id,
                    instance_id.as_deref(),
                    now_ms,
                );
                fx.reply(
                    token,
                    GroupReply::Heartbeat(r.err().map(|e| e.code()).unwrap_or(0)),
                );
            }
            GroupOp::Leave { req, version } => {
                let r = self.leave(&req, version, now_ms, &mut fx);
                fx.reply(token, GroupReply::Leave(r));
            }
            GroupOp::Commit { req } => self.commit(token, req, None, now_ms, topics, &mut fx),
            GroupOp::TxnCommit {
                req,
                producer_id,
                epoch,
            } => self.commit(
                token,
                req,
                Some((producer_id, epoch)),
                now_ms,
                topics,
                &mut fx,
            ),
            GroupOp::TxnMarker {
                producer_id,
                commit,
                partition,
                partitions,
            } => {
                self.txn_marker(producer_id, commit, partition, partitions);
                fx.reply(token, GroupReply::Done);
            }
            GroupOp::Fetch {
                group,
                topics,
                require_stable,
            } => {
                let f = self.fetch(&group, topics, require_stable);
                fx.reply(token, GroupReply::Fetch(f));
            }
            GroupOp::Describe(ids) => fx.reply(token, GroupReply::Describe(self.describe(&ids))),
            GroupOp::List(states) => fx.reply(token, GroupReply::List(self.list(&states))),
            GroupOp::Delete(ids) => self.delete_groups(token, ids, now_ms, &mut fx),
            GroupOp::OffsetDelete(req) => self.offset_delete(token, req, now_ms, topics, &mut fx),
        }
        fx
    }

    /// Records that the group's metadata changed, to be appended without waiting: it
    /// carries the generation and protocol type across restarts, and the members for tools
    /// that read `__consumer_offsets`.
    pub(super) fn persist(group: &Group, now_ms: i64, fx: &mut Effects) {
        Self::persist_within(group, now_ms, u64::MAX, fx);
    }

    /// As [`Self::persist`], for a record whose batch must stay within `max_bytes` (the
    /// topic's `max.message.bytes`): a large group's subscriptions and assignments could
    /// exceed it, and the log would refuse the batch. Such a record is written without its
    /// members, as Kafka writes an empty group's, so the generation still survives.
    pub(super) fn persist_within(group: &Group, now_ms: i64, max_bytes: u64, fx: &mut Effects) {
        // A v2 batch header (61 bytes) and one record's framing, with room to spare.
        const BATCH_OVERHEAD_BYTES: usize = 128;
        let key = super::records::Key::Group {
            group: group.id.clone(),
        };
        let mut value = group.group_value(now_ms);
        let fits = |k: &[u8], v: &[u8]| {
            let total = k
                .len()
                .saturating_add(v.len())
                .saturating_add(BATCH_OVERHEAD_BYTES);
            u64::try_from(total).is_ok_and(|t| t <= max_bytes)
        };
        let encoded = match (key.encode(), value.encode()) {
            (Ok(k), Ok(v)) if !fits(&k, &v) && !value.members.is_empty() => {
                tracing::warn!(
                    "group {}: its metadata with members exceeds {max_bytes} bytes; \
                     written without them",
                    group.id
                );
                value.members.clear();
                value.encode().map(|v| (k, v))
            }
            (Ok(k), Ok(v)) => Ok((k, v)),
            (Err(e), _) | (_, Err(e)) => Err(e),
        };
        match encoded {
            Ok((k, v)) => fx.append(&group.id, vec![(k, Some(v))], None),
            Err(e) => tracing::error!("group metadata of {} not persisted: {e}", group.id),
        }
    }

    fn describe(&self, ids: &[String]) -> Vec<DescribedGroup> {
        let loading = self.ready().err().map(|e| e.code());
        ids.iter()
            .map(|id| {
                let base = DescribedGroup::default().with_group_id(GroupId(str_bytes(id.clone())));
                if let Some(code) = loading {
                    return base.with_error_code(code);
                }
                let Some(g) = self.groups.get(id) else {
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

    fn list(&self, states: &[String]) -> Vec<ListedGroup> {
        let mut out: Vec<ListedGroup> = self
            .groups
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
            .collect();
        // Stable output: the map's order is not.
        out.sort_by(|a, b| a.group_id.0.cmp(&b.group_id.0));
        out
    }

    /// Session expiry, rebalance deadlines and offset expiry; the host calls it every
    /// 100 ms.
    pub fn tick(&mut self, now_ms: i64) -> Effects {
        let mut fx = Effects::default();
        if !self.loaded {
            return fx;
        }
        let config = self.config.clone();
        let mut ids: Vec<String> = self.groups.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let Some(group) = self.groups.get_mut(&id) else {
                continue;
            };
            if group.state == State::Dead {
                continue;
            }
            let before = group.pending.len();
            group.pending.retain(|_, deadline| *deadline > now_ms);
            let mut changed = before != group.pending.len();
            // A member parked in a join or sync is waiting on us, not silent.
            let expired: Vec<String> = group
                .members
                .values()
                .filter(|m| {
                    m.join.is_none()
                        && m.sync.is_none()
                        && now_ms.saturating_sub(m.last_seen_ms) > m.session_timeout_ms
                })
                .map(|m| m.id.clone())
                .collect();
            for member in &expired {
                tracing::info!("group {}: member {member} session expired", group.id);
                group.remove_member(member, GroupError::UnknownMemberId, &mut fx);
                changed = true;
            }
            let persist = if changed {
                group.members_changed(&config, now_ms, &mut fx)
            } else {
                group.try_complete_join(now_ms, &mut fx)
            };
            if persist {
                Self::persist(group, now_ms, &mut fx);
            }
        }
        let due = self.next_expiry_check_ms.is_none_or(|t| now_ms >= t);
        if due {
            let interval =
                i64::try_from(config.offsets_retention_check_interval_ms).unwrap_or(i64::MAX);
            self.next_expiry_check_ms = Some(now_ms.saturating_add(interval));
            self.expire(now_ms, &mut fx);
        }
        fx
    }
}

/// What to do when an append resolves.
pub enum Then {
    /// Answer a commit; on success apply its offsets, the i-th at base offset + i.
    Commit {
        token: Token,
        /// A transactional commit's producer id: its offsets wait for the marker.
        txn: Option<i64>,
        group: String,
        applied: Vec<(usize, usize, String, i32, OffsetValue)>,
        codes: Vec<Vec<i16>>,
        shape: Vec<(kafka_protocol::messages::TopicName, Vec<i32>)>,
    },
    /// One group of a DeleteGroups is gone (or not).
    Delete { batch: u64, group: String },
    /// Answer an OffsetDelete; on success forget the offsets.
    OffsetDelete {
        token: Token,
        group: String,
        deleted: Vec<(String, i32)>,
        response: OffsetDeleteResponse,
    },
}

/// A DeleteGroups waiting for the tombstones of some of its groups.
pub struct DeleteBatch {
    pub(super) token: Token,
    pub(super) results: Vec<(String, Option<i16>)>,
}

/// What a join needs besides the request.
pub(super) struct JoinCtx {
    pub version: i16,
    pub client_id: String,
    pub client_host: String,
    pub now_ms: i64,
}
