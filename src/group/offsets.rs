//! Committed offsets: commit, fetch, delete, expiry, and loading them at start.
//!
//! A commit is one batch appended to the group's `__consumer_offsets` partition; it is
//! acknowledged only when that append resolves under the topic's flush setting, and the
//! in-memory table is updated at that moment, so OffsetFetch never returns an offset that
//! a crash could take back (under flush=fsync).

use super::coordinator::{Committed, Group, State, append_detached, offsets_log};
use super::records::{GroupValue, Key, OffsetValue, Record, build_batch, parse_batches};
use super::{FetchedGroup, FetchedOffset, GroupError, OFFSET_METADATA_MAX_BYTES, OFFSETS_TOPIC};
use crate::protocol::strings::topic_name;
use crate::shard::Shard;
use crate::storage::log::wall_clock_ms;
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

/// Checks whether the member may commit (Kafka's `doCommitOffsets` order of checks).
/// A commit with generation -1 from outside the group (admin tools, manual assignment)
/// is allowed while the group has no members, and creates the group if needed.
fn check_commit(shard: &Shard, req: &OffsetCommitRequest) -> Result<(), GroupError> {
    shard.groups.ready()?;
    let group_id = req.group_id.to_string();
    if group_id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    let generation = req.generation_id_or_member_epoch;
    let mut groups = shard.groups.groups.borrow_mut();
    let Some(group) = groups.get_mut(&group_id) else {
        if generation < 0 {
            groups.insert(group_id.clone(), Group::new(group_id));
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
    if let Some(inst) = &instance
        && let Some(known) = group.static_members.get(inst)
        && *known != member_id
    {
        return Err(GroupError::FencedInstanceId);
    }
    if !group.members.contains_key(&member_id) {
        return Err(GroupError::UnknownMemberId);
    }
    if generation != group.generation {
        return Err(GroupError::IllegalGeneration);
    }
    if group.state == State::CompletingRebalance {
        return Err(GroupError::RebalanceInProgress);
    }
    if let Some(m) = group.members.get_mut(&member_id) {
        // A commit proves the member is alive, as a heartbeat does.
        m.last_seen = std::time::Instant::now();
    }
    Ok(())
}

pub async fn commit(shard: &Shard, req: OffsetCommitRequest) -> OffsetCommitResponse {
    let group_id = req.group_id.to_string();
    // One error code per partition of the request, in request order.
    let mut codes: Vec<Vec<i16>> = req
        .topics
        .iter()
        .map(|t| vec![0; t.partitions.len()])
        .collect();
    let group_error = check_commit(shard, &req).err();
    let meta = shard.meta();
    let now_ms = wall_clock_ms();
    let mut records = Vec::new();
    let mut applied = Vec::new();
    for (ti, t) in req.topics.iter().enumerate() {
        let topic = t.name.to_string();
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
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
    if !records.is_empty() {
        let result = match offsets_log(shard, &group_id) {
            None => Err(GroupError::NotCoordinator),
            Some(log) => match build_batch(&records, now_ms) {
                Some(batch) => log.append(batch).await.map_err(GroupError::from),
                None => Err(GroupError::InvalidRequest),
            },
        };
        match result {
            Ok(info) => {
                let mut groups = shard.groups.groups.borrow_mut();
                let group = groups
                    .entry(group_id.clone())
                    .or_insert_with(|| Group::new(group_id.clone()));
                for (i, (_, _, topic, partition, v)) in applied.into_iter().enumerate() {
                    apply_offset(group, topic, partition, v, info.base_offset + i as i64);
                }
            }
            Err(e) => {
                let c = e.code();
                for (ti, pi, ..) in applied {
                    codes[ti][pi] = c;
                }
            }
        }
    }
    let topics = req
        .topics
        .iter()
        .zip(codes)
        .map(|(t, cs)| {
            let partitions = t
                .partitions
                .iter()
                .zip(cs)
                .map(|(p, c)| {
                    OffsetCommitResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            OffsetCommitResponseTopic::default()
                .with_name(t.name.clone())
                .with_partitions(partitions)
        })
        .collect();
    OffsetCommitResponse::default().with_topics(topics)
}

fn apply_offset(group: &mut Group, topic: String, partition: i32, v: OffsetValue, at: i64) {
    let entry = group.offsets.entry((topic, partition));
    let new = Committed {
        offset: v.offset,
        leader_epoch: v.leader_epoch,
        metadata: v.metadata,
        commit_timestamp_ms: v.commit_timestamp_ms,
        log_offset: at,
    };
    match entry {
        std::collections::hash_map::Entry::Occupied(mut o) => {
            if o.get().log_offset < at {
                o.insert(new);
            }
        }
        std::collections::hash_map::Entry::Vacant(v) => {
            v.insert(new);
        }
    }
}

pub fn fetch(
    shard: &Shard,
    group_id: &str,
    topics: Option<Vec<(String, Vec<i32>)>>,
) -> FetchedGroup {
    let mut out = FetchedGroup {
        group: group_id.to_string(),
        error_code: 0,
        topics: Vec::new(),
    };
    if let Err(e) = shard.groups.ready() {
        out.error_code = e.code();
        return out;
    }
    let groups = shard.groups.groups.borrow();
    let group = groups.get(group_id);
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
pub async fn delete_groups(shard: &Shard, ids: Vec<String>) -> Vec<(String, i16)> {
    let mut out = Vec::with_capacity(ids.len());
    for id in ids {
        let code = match delete_group(shard, &id).await {
            Ok(()) => 0,
            Err(e) => e.code(),
        };
        out.push((id, code));
    }
    out
}

async fn delete_group(shard: &Shard, id: &str) -> Result<(), GroupError> {
    shard.groups.ready()?;
    if id.is_empty() {
        return Err(GroupError::InvalidGroupId);
    }
    let tombstones = {
        let mut groups = shard.groups.groups.borrow_mut();
        let group = groups.get_mut(id).ok_or(GroupError::GroupIdNotFound)?;
        match group.state {
            State::Empty => {}
            State::Dead => return Err(GroupError::GroupIdNotFound),
            _ => return Err(GroupError::NonEmptyGroup),
        }
        // Dead while the tombstones are written: a join meanwhile is told to retry
        // instead of joining a group about to vanish.
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
        t
    };
    let result = match offsets_log(shard, id) {
        None => Err(GroupError::NotCoordinator),
        Some(log) => match build_batch(&tombstones, wall_clock_ms()) {
            Some(batch) => log
                .append(batch)
                .await
                .map(|_| ())
                .map_err(GroupError::from),
            None => Ok(()),
        },
    };
    let mut groups = shard.groups.groups.borrow_mut();
    match &result {
        Ok(()) => {
            groups.remove(id);
        }
        Err(_) => {
            if let Some(g) = groups.get_mut(id) {
                g.state = State::Empty;
            }
        }
    }
    result
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
        let b: &[u8] = meta;
        let mut pos = 2usize; // version
        let Some(n) = b.get(pos..pos + 4) else {
            continue;
        };
        pos += 4;
        let n = i32::from_be_bytes([n[0], n[1], n[2], n[3]]);
        for _ in 0..n.max(0) {
            let Some(l) = b.get(pos..pos + 2) else {
                break;
            };
            let len = i16::from_be_bytes([l[0], l[1]]).max(0) as usize;
            pos += 2;
            let Some(name) = b.get(pos..pos + len) else {
                break;
            };
            pos += len;
            out.insert(String::from_utf8_lossy(name).into_owned());
        }
    }
    out
}

/// OffsetDelete: removes committed offsets the group no longer consumes.
pub async fn offset_delete(shard: &Shard, req: OffsetDeleteRequest) -> OffsetDeleteResponse {
    let group_id = req.group_id.to_string();
    let fail = |e: GroupError| OffsetDeleteResponse::default().with_error_code(e.code());
    if let Err(e) = shard.groups.ready() {
        return fail(e);
    }
    let meta = shard.meta();
    let mut codes: Vec<Vec<i16>> = Vec::new();
    let mut tombstones = Vec::new();
    let mut deleted = Vec::new();
    {
        let groups = shard.groups.groups.borrow();
        let Some(group) = groups.get(&group_id).filter(|g| g.state != State::Dead) else {
            return fail(GroupError::GroupIdNotFound);
        };
        let empty = group.state == State::Empty;
        if !empty && group.protocol_type.as_deref() != Some("consumer") {
            return fail(GroupError::NonEmptyGroup);
        }
        let subscribed = if empty {
            HashSet::new()
        } else {
            subscribed_topics(group)
        };
        for t in &req.topics {
            let topic = t.name.to_string();
            let known = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
            let mut row = Vec::with_capacity(t.partitions.len());
            for p in &t.partitions {
                let i = p.partition_index;
                if i < 0 || i >= known {
                    row.push(GroupError::UnknownTopicOrPartition.code());
                } else if subscribed.contains(&topic) {
                    row.push(GroupError::GroupSubscribedToTopic.code());
                } else {
                    row.push(0);
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
                }
            }
            codes.push(row);
        }
    }
    if !tombstones.is_empty() {
        let result = match offsets_log(shard, &group_id) {
            None => Err(GroupError::NotCoordinator),
            Some(log) => match build_batch(&tombstones, wall_clock_ms()) {
                Some(batch) => log
                    .append(batch)
                    .await
                    .map(|_| ())
                    .map_err(GroupError::from),
                None => Ok(()),
            },
        };
        if let Err(e) = result {
            return fail(e);
        }
        if let Some(g) = shard.groups.groups.borrow_mut().get_mut(&group_id) {
            for k in deleted {
                g.offsets.remove(&k);
            }
        }
    }
    let topics = req
        .topics
        .iter()
        .zip(codes)
        .map(|(t, row)| {
            let partitions = t
                .partitions
                .iter()
                .zip(row)
                .map(|(p, c)| {
                    OffsetDeleteResponsePartition::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(c)
                })
                .collect();
            OffsetDeleteResponseTopic::default()
                .with_name(topic_name(&t.name.to_string()))
                .with_partitions(partitions)
        })
        .collect();
    OffsetDeleteResponse::default().with_topics(topics)
}

/// Drops offsets of empty groups older than `offsets.retention.minutes`, and empty groups
/// left without offsets. Tombstones are appended without waiting: a lost tombstone only
/// brings an expired offset back until the next check.
pub fn expire(shard: &Shard) {
    let retention = shard.config.group.offsets_retention_ms as i64;
    let now = wall_clock_ms();
    let mut writes: Vec<(String, Vec<Record>)> = Vec::new();
    {
        let mut groups = shard.groups.groups.borrow_mut();
        let mut gone = Vec::new();
        for g in groups.values_mut() {
            if g.state != State::Empty {
                continue;
            }
            let mut t = Vec::new();
            let since = g.empty_since_ms;
            g.offsets.retain(|(topic, partition), c| {
                let keep = now - c.commit_timestamp_ms.max(since) < retention;
                if !keep {
                    let k = Key::Offset {
                        group: g.id.clone(),
                        topic: topic.clone(),
                        partition: *partition,
                    };
                    if let Ok(k) = k.encode() {
                        t.push((k, None));
                    }
                }
                keep
            });
            if g.offsets.is_empty() && now - since >= retention {
                let k = Key::Group {
                    group: g.id.clone(),
                };
                if let Ok(k) = k.encode() {
                    t.push((k, None));
                }
                gone.push(g.id.clone());
            }
            if !t.is_empty() {
                writes.push((g.id.clone(), t));
            }
        }
        for id in gone {
            groups.remove(&id);
        }
    }
    for (group, t) in writes {
        tracing::info!("group {group}: {} offsets expired", t.len());
        append_detached(shard, &group, t);
    }
}

/// Reads this shard's partitions of `__consumer_offsets` and rebuilds the groups: last
/// value per key wins, tombstones delete. Members are not restored: after a restart they
/// rejoin (their heartbeats get UNKNOWN_MEMBER_ID), and the group resumes from its
/// committed offsets with a generation above the persisted one.
pub async fn load(shard: &Shard) {
    let Some(n) = shard.meta().topics.get(OFFSETS_TOPIC).map(|t| t.partitions) else {
        shard.groups.loaded.set(true);
        return;
    };
    let mut latest: HashMap<Key, (i64, Option<Vec<u8>>)> = HashMap::new();
    for p in 0..n {
        if shard.owner(OFFSETS_TOPIC, p) != shard.id {
            continue;
        }
        let Some(log) = shard.log_of(OFFSETS_TOPIC, p) else {
            continue;
        };
        let mut offset = log.log_start_offset();
        while offset < log.high_watermark() {
            let slice = match log.read(offset, 1 << 20).await {
                Ok(s) => s,
                Err(e) => {
                    tracing::error!("cannot load {OFFSETS_TOPIC}-{p} at {offset}: {e}");
                    break;
                }
            };
            let mut bytes = Vec::new();
            for region in &slice.regions {
                match region.read().await {
                    Ok(b) => bytes.extend_from_slice(&b),
                    Err(e) => {
                        tracing::error!("cannot read {OFFSETS_TOPIC}-{p}: {e}");
                        break;
                    }
                }
            }
            let (records, next) = parse_batches(&bytes);
            for r in records {
                if r.offset < offset {
                    continue;
                }
                match Key::decode(&r.key) {
                    Some(k) => {
                        latest.insert(k, (r.offset, r.value));
                    }
                    None => tracing::warn!("skipping an unknown key in {OFFSETS_TOPIC}-{p}"),
                }
            }
            match next {
                Some(next) if next > offset => offset = next,
                _ => break,
            }
        }
    }
    let mut groups: HashMap<String, Group> = HashMap::new();
    for (key, (at, value)) in latest {
        let Some(value) = value else { continue };
        let group = groups
            .entry(key.group().to_string())
            .or_insert_with(|| Group::new(key.group().to_string()));
        match key {
            Key::Offset {
                topic, partition, ..
            } => {
                if let Some(v) = OffsetValue::decode(&value) {
                    apply_offset(group, topic, partition, v, at);
                }
            }
            Key::Group { .. } => {
                if let Some(v) = GroupValue::decode(&value) {
                    group.generation = v.generation;
                    group.protocol_type = (!v.protocol_type.is_empty()).then_some(v.protocol_type);
                    group.empty_since_ms = v.timestamp_ms;
                }
            }
        }
    }
    let count = groups.len();
    *shard.groups.groups.borrow_mut() = groups;
    shard.groups.loaded.set(true);
    if count > 0 {
        tracing::info!("shard {}: loaded {count} consumer groups", shard.id);
    }
}
