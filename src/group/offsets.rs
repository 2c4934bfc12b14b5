//! Committed offsets: commit, fetch, delete, expiry, and rebuilding the groups from the
//! records of `__consumer_offsets`.
//!
//! A commit is one batch appended to the group's partition. It is answered, and the
//! in-memory table updated, only when that append resolves ([`GroupCoordinator::appended`])
//! under the topic's flush setting, so OffsetFetch never returns an offset that a crash
//! could take back (under flush=fsync).

use super::coordinator::{GroupCoordinator, Topics};
use super::records::{GroupValue, Key, LoggedRecord, OffsetValue, Record};
use super::state::{Committed, Group, State};
use super::{
    Effects, FetchedGroup, FetchedOffset, GroupError, GroupReply, OFFSET_METADATA_MAX_BYTES, Token,
};
use crate::protocol::strings::topic_name;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteRequest, OffsetDeleteResponse,
};
use std::collections::{BTreeMap, HashMap, HashSet};

/// What to do when an append resolves.
pub enum Then {
    /// Answer a commit; on success apply its offsets, the i-th at base offset + i.
    Commit {
        token: Token,
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
    token: Token,
    results: Vec<(String, Option<i16>)>,
}

fn commit_response(
    shape: &[(kafka_protocol::messages::TopicName, Vec<i32>)],
    codes: &[Vec<i16>],
) -> OffsetCommitResponse {
    let topics = shape
        .iter()
        .zip(codes)
        .map(|((name, ps), cs)| {
            let partitions = ps
                .iter()
                .zip(cs)
                .map(|(p, c)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(*p)
                        .with_error_code(*c)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

impl GroupCoordinator {
    fn next_append_id(&mut self) -> u64 {
        let id = self.next_append;
        self.next_append = self.next_append.wrapping_add(1);
        id
    }

    /// Checks whether the member may commit (Kafka's `doCommitOffsets` order of checks).
    /// A commit with generation -1 from outside the group (admin tools, manual assignment)
    /// is allowed while the group has no members, and creates the group if needed.
    fn check_commit(&mut self, req: &OffsetCommitRequest, now_ms: i64) -> Result<(), GroupError> {
        self.ready()?;
        let group_id = req.group_id.to_string();
        if group_id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let generation = req.generation_id_or_member_epoch;
        let Some(group) = self.groups.get_mut(&group_id) else {
            if generation < 0 {
                self.groups
                    .insert(group_id.clone(), Group::new(group_id, now_ms));
                return Ok(());
            }
            return Err(GroupError::IllegalGeneration);
        };
        if group.state == State::Dead {
            return Err(GroupError::CoordinatorNotAvailable);
        }
        if generation < 0 && group.state == State::Empty {
            return Ok(());
        }
        let member_id = req.member_id.to_string();
        let instance = req.group_instance_id.as_ref().map(|s| s.to_string());
        group.check_member(&member_id, instance.as_deref())?;
        if generation != group.generation {
            return Err(GroupError::IllegalGeneration);
        }
        if group.state == State::CompletingRebalance {
            return Err(GroupError::RebalanceInProgress);
        }
        if let Some(m) = group.members.get_mut(&member_id) {
            // A commit proves the member is alive, as a heartbeat does.
            m.last_seen_ms = now_ms;
        }
        Ok(())
    }

    pub(super) fn commit(
        &mut self,
        token: Token,
        req: OffsetCommitRequest,
        now_ms: i64,
        topics: Topics,
        fx: &mut Effects,
    ) {
        let group_id = req.group_id.to_string();
        // One error code per partition of the request, in request order.
        let mut codes: Vec<Vec<i16>> = req
            .topics
            .iter()
            .map(|t| vec![0; t.partitions.len()])
            .collect();
        let shape: Vec<_> = req
            .topics
            .iter()
            .map(|t| {
                let ps = t.partitions.iter().map(|p| p.partition_index).collect();
                (t.name.clone(), ps)
            })
            .collect();
        let group_error = self.check_commit(&req, now_ms).err();
        let mut records: Vec<Record> = Vec::new();
        let mut applied = Vec::new();
        for (ti, t) in req.topics.iter().enumerate() {
            let topic = t.name.to_string();
            let partitions = topics(&topic);
            for (pi, p) in t.partitions.iter().enumerate() {
                let error = if let Some(e) = &group_error {
                    Some(e.code())
                } else if p.partition_index < 0 || p.partition_index >= partitions {
                    Some(GroupError::UnknownTopicOrPartition.code())
                } else if p
                    .committed_metadata
                    .as_ref()
                    .is_some_and(|m| m.len() > OFFSET_METADATA_MAX_BYTES)
                {
                    Some(GroupError::OffsetMetadataTooLarge.code())
                } else {
                    None
                };
                if let Some(c) = error {
                    codes[ti][pi] = c;
                    continue;
                }
                let key = Key::Offset {
                    group: group_id.clone(),
                    topic: topic.clone(),
                    partition: p.partition_index,
                };
                let value = OffsetValue {
                    offset: p.committed_offset,
                    leader_epoch: p.committed_leader_epoch,
                    metadata: p.committed_metadata.as_ref().map(|m| m.to_string()),
                    commit_timestamp_ms: now_ms,
                };
                match (key.encode(), value.encode()) {
                    (Ok(k), Ok(v)) => records.push((k, Some(v))),
                    _ => {
                        codes[ti][pi] = GroupError::InvalidRequest.code();
                        continue;
                    }
                }
                applied.push((ti, pi, topic.clone(), p.partition_index, value));
            }
        }
        if records.is_empty() {
            fx.reply(token, GroupReply::Commit(commit_response(&shape, &codes)));
            return;
        }
        let id = self.next_append_id();
        self.pending.insert(
            id,
            Then::Commit {
                token,
                group: group_id.clone(),
                applied,
                codes,
                shape,
            },
        );
        fx.append(&group_id, records, Some(id));
    }

    /// An append the coordinator asked for resolved: at `Ok(base offset)`, or failed.
    pub fn appended(&mut self, id: u64, result: Result<i64, GroupError>, now_ms: i64) -> Effects {
        let _ = now_ms;
        let mut fx = Effects::default();
        let Some(then) = self.pending.remove(&id) else {
            return fx;
        };
        match then {
            Then::Commit {
                token,
                group,
                applied,
                mut codes,
                shape,
            } => {
                match result {
                    Ok(base) => {
                        let g = self
                            .groups
                            .entry(group.clone())
                            .or_insert_with(|| Group::new(group.clone(), now_ms));
                        for (i, (_, _, topic, partition, v)) in applied.into_iter().enumerate() {
                            let at = base.saturating_add(i64::try_from(i).unwrap_or(i64::MAX));
                            g.apply_offset(topic, partition, committed(v, at));
                        }
                    }
                    Err(e) => {
                        let c = e.code();
                        for (ti, pi, ..) in applied {
                            codes[ti][pi] = c;
                        }
                    }
                }
                fx.reply(token, GroupReply::Commit(commit_response(&shape, &codes)));
            }
            Then::Delete { batch, group } => {
                let code = match &result {
                    Ok(_) => {
                        self.groups.remove(&group);
                        0
                    }
                    Err(e) => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            g.state = State::Empty;
                        }
                        e.code()
                    }
                };
                self.deleted(batch, &group, code, &mut fx);
            }
            Then::OffsetDelete {
                token,
                group,
                deleted,
                response,
            } => {
                let response = match result {
                    Ok(_) => {
                        if let Some(g) = self.groups.get_mut(&group) {
                            for k in deleted {
                                g.offsets.remove(&k);
                            }
                        }
                        response
                    }
                    Err(e) => OffsetDeleteResponse::default().with_error_code(e.code()),
                };
                fx.reply(token, GroupReply::OffsetDelete(response));
            }
        }
        fx
    }

    pub(super) fn fetch(
        &self,
        group_id: &str,
        topics: Option<Vec<(String, Vec<i32>)>>,
    ) -> FetchedGroup {
        let mut out = FetchedGroup {
            group: group_id.to_string(),
            error_code: 0,
            topics: Vec::new(),
        };
        if let Err(e) = self.ready() {
            out.error_code = e.code();
            return out;
        }
        let group = self.groups.get(group_id);
        let found = |topic: &str, partition: i32| -> FetchedOffset {
            match group.and_then(|g| g.offsets.get(&(topic.to_string(), partition))) {
                Some(c) => FetchedOffset {
                    partition,
                    offset: c.offset,
                    leader_epoch: c.leader_epoch,
                    metadata: c.metadata.clone(),
                    error_code: 0,
                },
                // No commit: offset -1 and no error, as Kafka answers.
                None => FetchedOffset {
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error_code: 0,
                },
            }
        };
        match topics {
            Some(topics) => {
                for (topic, parts) in topics {
                    let ps = parts.iter().map(|p| found(&topic, *p)).collect();
                    out.topics.push((topic, ps));
                }
            }
            None => {
                let mut by_topic: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                if let Some(g) = group {
                    for (t, p) in g.offsets.keys() {
                        by_topic.entry(t.clone()).or_default().push(*p);
                    }
                }
                for (topic, mut parts) in by_topic {
                    parts.sort_unstable();
                    let ps = parts.iter().map(|p| found(&topic, *p)).collect();
                    out.topics.push((topic, ps));
                }
            }
        }
        out
    }

    /// DeleteGroups: only empty groups; their offsets and metadata get tombstones.
    pub(super) fn delete_groups(
        &mut self,
        token: Token,
        ids: Vec<String>,
        now_ms: i64,
        fx: &mut Effects,
    ) {
        let batch = self.next_append_id();
        let mut results = Vec::with_capacity(ids.len());
        let mut waiting = Vec::new();
        for id in ids {
            match self.mark_deleted(&id) {
                Ok(tombstones) => {
                    results.push((id.clone(), None));
                    waiting.push((id, tombstones));
                }
                Err(e) => results.push((id, Some(e.code()))),
            }
        }
        self.deletes.insert(batch, DeleteBatch { token, results });
        for (id, tombstones) in waiting {
            if tombstones.is_empty() {
                self.groups.remove(&id);
                self.deleted(batch, &id, 0, fx);
                continue;
            }
            let then = self.next_append_id();
            self.pending.insert(
                then,
                Then::Delete {
                    batch,
                    group: id.clone(),
                },
            );
            fx.append(&id, tombstones, Some(then));
        }
        let _ = now_ms;
        self.deleted_check(batch, fx);
    }

    /// Records one group's outcome and answers the batch once all are known.
    fn deleted(&mut self, batch: u64, group: &str, code: i16, fx: &mut Effects) {
        if let Some(b) = self.deletes.get_mut(&batch)
            && let Some(slot) = b
                .results
                .iter_mut()
                .find(|(g, c)| g == group && c.is_none())
        {
            slot.1 = Some(code);
        }
        self.deleted_check(batch, fx);
    }

    fn deleted_check(&mut self, batch: u64, fx: &mut Effects) {
        let done = self
            .deletes
            .get(&batch)
            .is_some_and(|b| b.results.iter().all(|(_, c)| c.is_some()));
        if done && let Some(b) = self.deletes.remove(&batch) {
            let results = b
                .results
                .into_iter()
                .map(|(g, c)| (g, c.unwrap_or(0)))
                .collect();
            fx.reply(b.token, GroupReply::Delete(results));
        }
    }

    /// Marks an empty group Dead (a join meanwhile is told to retry instead of joining a
    /// group about to vanish) and returns its tombstones.
    fn mark_deleted(&mut self, id: &str) -> Result<Vec<Record>, GroupError> {
        self.ready()?;
        if id.is_empty() {
            return Err(GroupError::InvalidGroupId);
        }
        let group = self.groups.get_mut(id).ok_or(GroupError::GroupIdNotFound)?;
        match group.state {
            State::Empty => {}
            State::Dead => return Err(GroupError::GroupIdNotFound),
            _ => return Err(GroupError::NonEmptyGroup),
        }
        group.state = State::Dead;
        let mut t: Vec<Record> = group
            .offsets
            .keys()
            .filter_map(|(topic, partition)| {
                let k = Key::Offset {
                    group: id.to_string(),
                    topic: topic.clone(),
                    partition: *partition,
                };
                k.encode().ok().map(|k| (k, None))
            })
            .collect();
        let g = Key::Group {
            group: id.to_string(),
        };
        t.extend(g.encode().ok().map(|k| (k, None)));
        Ok(t)
    }

    /// OffsetDelete: removes committed offsets the group no longer consumes.
    pub(super) fn offset_delete(
        &mut self,
        token: Token,
        req: OffsetDeleteRequest,
        now_ms: i64,
        topics: Topics,
        fx: &mut Effects,
    ) {
        let _ = now_ms;
        let group_id = req.group_id.to_string();
        let fail = |e: GroupError| {
            GroupReply::OffsetDelete(OffsetDeleteResponse::default().with_error_code(e.code()))
        };
        if let Err(e) = self.ready() {
            fx.reply(token, fail(e));
            return;
        }
        let Some(group) = self
            .groups
            .get(&group_id)
            .filter(|g| g.state != State::Dead)
        else {
            fx.reply(token, fail(GroupError::GroupIdNotFound));
            return;
        };
        let empty = group.state == State::Empty;
        if !empty && group.protocol_type.as_deref() != Some("consumer") {
            fx.reply(token, fail(GroupError::NonEmptyGroup));
            return;
        }
        let subscribed = if empty {
            HashSet::new()
        } else {
            subscribed_topics(group)
        };
        let mut tombstones = Vec::new();
        let mut deleted = Vec::new();
        let mut response_topics = Vec::new();
        for t in &req.topics {
            let topic = t.name.to_string();
            let known = topics(&topic);
            let mut partitions = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let i = p.partition_index;
                let code = if i < 0 || i >= known {
                    GroupError::UnknownTopicOrPartition.code()
                } else if subscribed.contains(&topic) {
                    GroupError::GroupSubscribedToTopic.code()
                } else {
                    if group.offsets.contains_key(&(topic.clone(), i)) {
                        let k = Key::Offset {
                            group: group_id.clone(),
                            topic: topic.clone(),
                            partition: i,
                        };
                        if let Ok(k) = k.encode() {
                            tombstones.push((k, None));
                        }
                        deleted.push((topic.clone(), i));
                    }
                    0
                };
                partitions.push(
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(i)
                        .with_error_code(code),
                );
            }
            response_topics.push(
                OffsetDeleteResponseTopic::default()
                    .with_name(topic_name(&topic))
                    .with_partitions(partitions),
            );
        }
        let response = OffsetDeleteResponse::default().with_topics(response_topics);
        if tombstones.is_empty() {
            fx.reply(token, GroupReply::OffsetDelete(response));
            return;
        }
        let id = self.next_append_id();
        self.pending.insert(
            id,
            Then::OffsetDelete {
                token,
                group: group_id.clone(),
                deleted,
                response,
            },
        );
        fx.append(&group_id, tombstones, Some(id));
    }

    /// Drops offsets of empty groups older than `offsets.retention.minutes`, and empty
    /// groups left without offsets. Tombstones are appended without waiting: a lost one
    /// only brings an expired offset back until the next check.
    pub(super) fn expire(&mut self, now_ms: i64, fx: &mut Effects) {
        let retention = i64::try_from(self.config.offsets_retention_ms).unwrap_or(i64::MAX);
        let mut gone = Vec::new();
        let mut ids: Vec<String> = self.groups.keys().cloned().collect();
        ids.sort();
        for id in ids {
            let Some(g) = self.groups.get_mut(&id) else {
                continue;
            };
            if g.state != State::Empty {
                continue;
            }
            let mut t = Vec::new();
            let since = g.empty_since_ms;
            let mut expired: Vec<(String, i32)> = g
                .offsets
                .iter()
                .filter(|(_, c)| {
                    now_ms.saturating_sub(c.commit_timestamp_ms.max(since)) >= retention
                })
                .map(|(k, _)| k.clone())
                .collect();
            expired.sort();
            for (topic, partition) in expired {
                g.offsets.remove(&(topic.clone(), partition));
                let k = Key::Offset {
                    group: g.id.clone(),
                    topic,
                    partition,
                };
                if let Ok(k) = k.encode() {
                    t.push((k, None));
                }
            }
            if g.offsets.is_empty() && now_ms.saturating_sub(since) >= retention {
                let k = Key::Group {
                    group: g.id.clone(),
                };
                if let Ok(k) = k.encode() {
                    t.push((k, None));
                }
                gone.push(g.id.clone());
            }
            if !t.is_empty() {
                tracing::info!("group {}: {} offsets expired", g.id, t.len());
                fx.append(&id, t, None);
            }
        }
        for id in gone {
            self.groups.remove(&id);
        }
    }

    /// Rebuilds the groups from the records of this shard's offsets partitions, in log
    /// order: the last value per key wins and tombstones delete. Members are not restored:
    /// after a restart they rejoin (their heartbeats get UNKNOWN_MEMBER_ID), and the group
    /// resumes from its committed offsets with a generation above the persisted one.
    pub fn load(&mut self, records: impl IntoIterator<Item = LoggedRecord>, now_ms: i64) {
        let mut latest: HashMap<Key, (i64, Option<Vec<u8>>)> = HashMap::new();
        for r in records {
            match Key::decode(&r.key) {
                Some(k) => {
                    latest.insert(k, (r.offset, r.value));
                }
                None => tracing::warn!("skipping an unknown key in __consumer_offsets"),
            }
        }
        for (key, (at, value)) in latest {
            let Some(value) = value else { continue };
            let group = self
                .groups
                .entry(key.group().to_string())
                .or_insert_with(|| Group::new(key.group().to_string(), now_ms));
            match key {
                Key::Offset {
                    topic, partition, ..
                } => {
                    if let Some(v) = OffsetValue::decode(&value) {
                        group.apply_offset(topic, partition, committed(v, at));
                    }
                }
                Key::Group { .. } => {
                    if let Some(v) = GroupValue::decode(&value) {
                        group.generation = v.generation;
                        group.protocol_type =
                            (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                        group.empty_since_ms = v.timestamp_ms;
                    }
                }
            }
        }
    }

    /// Loading is over: requests are served from now on.
    pub fn finish_load(&mut self) {
        self.loaded = true;
    }
}

fn committed(v: OffsetValue, log_offset: i64) -> Committed {
    Committed {
        offset: v.offset,
        leader_epoch: v.leader_epoch,
        metadata: v.metadata,
        commit_timestamp_ms: v.commit_timestamp_ms,
        log_offset,
    }
}

/// Topics the members of a consumer group subscribe to, read from their subscription
/// (ConsumerProtocolSubscription: version i16, topics [string], ...).
fn subscribed_topics(group: &Group) -> HashSet<String> {
    let mut out = HashSet::new();
    let protocol = group.protocol.clone().unwrap_or_default();
    for m in group.members.values() {
        let Some((_, meta)) = m.protocols.iter().find(|(n, _)| *n == protocol) else {
            continue;
        };
        let mut r = crate::protocol::reader::Reader::new(meta);
        let (Some(_version), Some(n)) = (r.i16(), r.i32()) else {
            continue;
        };
        for _ in 0..n.max(0) {
            match r.string() {
                Some(name) => {
                    out.insert(name);
                }
                None => break,
            }
        }
    }
    out
}
