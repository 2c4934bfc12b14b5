//! Committed offsets: commit, fetch, delete, expiry, and rebuilding the groups from the
//! records of `__consumer_offsets`.
//!
//! A commit is one batch appended to the group's partition. It is answered, and the
//! in-memory table updated, only when that append resolves ([`GroupCoordinator::appended`])
//! under the topic's flush setting, so OffsetFetch never returns an offset that a crash
//! could take back (under flush=fsync).

use super::coordinator::{GroupCoordinator, Then, Topics};
use super::records::{GroupValue, Key, LoggedRecord, OffsetValue, Record};
use super::state::{Committed, Group, State};
use super::{
    Effects, FetchedGroup, FetchedOffset, GroupError, GroupReply, OFFSET_METADATA_MAX_BYTES, Token,
};
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse, OffsetDeleteResponse};
use std::collections::{BTreeMap, HashMap};

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
    pub(super) fn next_append_id(&mut self) -> u64 {
        let id = self.next_append;
        self.next_append = self.next_append.wrapping_add(1);
        id
    }

    /// Checks whether the member may commit (Kafka's `doCommitOffsets` order of checks).
    /// A commit with generation -1 from outside the group (admin tools, manual assignment)
    /// is allowed while the group has no members, and creates the group if needed.
    fn check_commit(
        &mut self,
        req: &OffsetCommitRequest,
        transactional: bool,
        now_ms: i64,
    ) -> Result<(), GroupError> {
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
        // A transactional commit without a generation (TxnOffsetCommit before v3, or a
        // producer outside the group) is not checked against the members, as in Kafka.
        if generation < 0 && (group.state == State::Empty || transactional) {
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
        txn: Option<(i64, i16)>,
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
        let group_error = self.check_commit(&req, txn.is_some(), now_ms).err();
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
                    // Kafka stores a null metadata as "" (its value's metadata is not
                    // nullable), so it reads back the same after a restart.
                    metadata: Some(
                        p.committed_metadata
                            .as_ref()
                            .map_or_else(String::new, |m| m.to_string()),
                    ),
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
                txn: txn.map(|(producer_id, _)| producer_id),
                group: group_id.clone(),
                applied,
                codes,
                shape,
            },
        );
        match txn {
            Some(producer) => fx.append_transactional(&group_id, records, id, producer),
            None => fx.append(&group_id, records, Some(id)),
        }
    }

    /// A transaction marker reached offsets partition `partition`: the producer's pending
    /// offsets of the groups there are committed or dropped.
    pub(super) fn txn_marker(
        &mut self,
        producer_id: i64,
        commit: bool,
        partition: i32,
        partitions: i32,
    ) {
        for (id, g) in self.groups.iter_mut() {
            if super::offsets_partition(id, partitions) != partition {
                continue;
            }
            let Some(pending) = g.pending_txn.remove(&producer_id) else {
                continue;
            };
            if commit {
                for (topic, p, c) in pending {
                    g.apply_offset(topic, p, c);
                }
            }
        }
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
                txn,
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
                            match txn {
                                Some(pid) => g.pending_txn.entry(pid).or_default().push((
                                    topic,
                                    partition,
                                    committed(v, at),
                                )),
                                None => g.apply_offset(topic, partition, committed(v, at)),
                            }
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
        require_stable: bool,
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
        let unstable = |topic: &str, partition: i32| {
            require_stable
                && group.is_some_and(|g| {
                    g.pending_txn
                        .values()
                        .flatten()
                        .any(|(t, p, _)| t == topic && *p == partition)
                })
        };
        let found = |topic: &str, partition: i32| -> FetchedOffset {
            if unstable(topic, partition) {
                return FetchedOffset {
                    partition,
                    offset: -1,
                    leader_epoch: -1,
                    metadata: Some(String::new()),
                    error_code: crate::protocol::code::UNSTABLE_OFFSET_COMMIT,
                };
            }
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

    /// Rebuilds the groups from the records of this shard's offsets partitions, in log
    /// order: the last value per key wins and tombstones delete. Members are not restored:
    /// after a restart they rejoin (their heartbeats get UNKNOWN_MEMBER_ID), and the group
    /// resumes from its committed offsets with a generation above the persisted one.
    #[allow(clippy::type_complexity)]
    pub fn load(&mut self, records: impl IntoIterator<Item = LoggedRecord>, now_ms: i64) {
        let mut latest: HashMap<Key, (i64, Option<Vec<u8>>)> = HashMap::new();
        // Records of transactions whose marker has not come yet, by producer id.
        let mut open: HashMap<i64, Vec<(Key, i64, Option<Vec<u8>>)>> = HashMap::new();
        for r in records {
            if let Some(commit) = r.marker {
                let pid = r.producer_id.unwrap_or(-1);
                for (k, at, v) in open.remove(&pid).unwrap_or_default() {
                    if commit && latest.get(&k).is_none_or(|(prev, _)| *prev < at) {
                        latest.insert(k, (at, v));
                    }
                }
                continue;
            }
            if let Some(pid) = r.producer_id {
                if let Some(k) = Key::decode(&r.key) {
                    open.entry(pid).or_default().push((k, r.offset, r.value));
                }
                continue;
            }
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
                } => match OffsetValue::decode(&value) {
                    Some(v) => group.apply_offset(topic, partition, committed(v, at)),
                    None => tracing::warn!("skipping an unreadable offset value at {at}"),
                },
                Key::Group { .. } => {
                    let Some(v) = GroupValue::decode(&value) else {
                        tracing::warn!("skipping an unreadable group value at {at}");
                        continue;
                    };
                    group.generation = v.generation;
                    group.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                    // Members are not restored: a group persisted with members becomes
                    // empty now, not when it last changed state.
                    group.empty_since_ms = if v.members.is_empty() {
                        v.timestamp_ms
                    } else {
                        now_ms
                    };
                }
            }
        }
        // Transactions still open: their offsets wait for the marker, as after a commit.
        for (pid, recs) in open {
            for (key, at, value) in recs {
                let (
                    Key::Offset {
                        group,
                        topic,
                        partition,
                    },
                    Some(value),
                ) = (key, value)
                else {
                    continue;
                };
                let Some(v) = OffsetValue::decode(&value) else {
                    continue;
                };
                self.groups
                    .entry(group.clone())
                    .or_insert_with(|| Group::new(group, now_ms))
                    .pending_txn
                    .entry(pid)
                    .or_default()
                    .push((topic, partition, committed(v, at)));
            }
        }
    }

    /// Drops the groups `keep` does not keep (their offsets partition moved to another
    /// broker, or is about to be reloaded).
    pub fn forget(&mut self, keep: impl Fn(&str) -> bool) {
        self.groups.retain(|id, _| keep(id));
    }

    /// Loading is over: requests are served from now on.
    pub fn finish_load(&mut self) {
        self.loaded = true;
    }
}

pub(super) fn committed(v: OffsetValue, log_offset: i64) -> Committed {
    Committed {
        offset: v.offset,
        leader_epoch: v.leader_epoch,
        metadata: v.metadata,
        commit_timestamp_ms: v.commit_timestamp_ms,
        log_offset,
    }
}
