//! Removing what a group holds: DeleteGroups, OffsetDelete and offset expiry. Each writes
//! tombstones to the group's partition; DeleteGroups and OffsetDelete change the state and
//! answer only once their tombstones landed (`GroupCoordinator::appended`).

use super::coordinator::{DeleteBatch, GroupCoordinator, Then, Topics};
use super::records::{Key, Record};
use super::state::{Group, State};
use super::{Effects, GroupError, GroupReply, Token};
use crate::protocol::strings::topic_name;
use kafka_protocol::messages::OffsetDeleteRequest;
use kafka_protocol::messages::OffsetDeleteResponse;
use kafka_protocol::messages::offset_delete_response::{
    OffsetDeleteResponsePartition, OffsetDeleteResponseTopic,
};
use std::collections::HashSet;

impl GroupCoordinator {
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
    pub(super) fn deleted(&mut self, batch: u64, group: &str, code: i16, fx: &mut Effects) {
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
