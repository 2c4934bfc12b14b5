//! ListOffsets, versions 1-6: earliest (-2), latest (-1, the high watermark) and the first
//! offset whose timestamp is at least the one asked.

use super::{Ctx, Request, RequestError, topic_name, topic_str};
use crate::protocol::code;
use crate::shard::messages::{ListOffsetsPart, ListOffsetsResult, ShardReply, ShardRequest};
use crate::shard::runtime::join_all;
use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::collections::{BTreeMap, HashMap, HashSet};

enum Slot {
    Pending,
    Done(ListOffsetsResult),
    Skip,
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: ListOffsetsRequest = req.decode_body()?;
    let meta = ctx.shard.meta();
    let missing = || ListOffsetsResult {
        error_code: code::UNKNOWN_TOPIC_OR_PARTITION,
        offset: -1,
        timestamp: -1,
    };
    // Kafka answers a partition named twice with INVALID_REQUEST; here it is also answered
    // once, at its first place.
    let mut named: HashMap<(&str, i32), u32> = HashMap::new();
    for t in &request.topics {
        for p in &t.partitions {
            *named
                .entry((t.name.0.as_str(), p.partition_index))
                .or_default() += 1;
        }
    }
    let mut answered: HashSet<(&str, i32)> = HashSet::new();
    // Per partition of the request: `None` to fill from a shard, or the result; partitions
    // left out of the response are `Skip`.
    let mut results: Vec<Slot> = Vec::new();
    let mut groups: BTreeMap<usize, (Vec<ListOffsetsPart>, Vec<usize>)> = BTreeMap::new();
    for t in &request.topics {
        let topic = topic_str(&t.name);
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
        for p in &t.partitions {
            let key = (t.name.0.as_str(), p.partition_index);
            if !answered.insert(key) {
                results.push(Slot::Skip);
                continue;
            }
            if named.get(&key).is_some_and(|n| *n > 1) {
                results.push(Slot::Done(ListOffsetsResult {
                    error_code: code::INVALID_REQUEST,
                    offset: -1,
                    timestamp: -1,
                }));
                continue;
            }
            if p.partition_index < 0 || p.partition_index >= partitions {
                results.push(Slot::Done(missing()));
                continue;
            }
            let g = groups
                .entry(ctx.shard.owner(&topic, p.partition_index))
                .or_default();
            g.0.push(ListOffsetsPart {
                topic: topic.clone(),
                partition: p.partition_index,
                timestamp: p.timestamp,
            });
            g.1.push(results.len());
            results.push(Slot::Pending);
        }
    }
    let mut slots = Vec::new();
    let mut calls = Vec::new();
    for (owner, (parts, idx)) in groups {
        slots.push(idx);
        calls.push(Box::pin(
            ctx.shard.call(owner, ShardRequest::ListOffsets(parts)),
        ));
    }
    for (reply, idx) in join_all(calls).await.into_iter().zip(slots) {
        if let Some(ShardReply::ListOffsets(rs)) = reply {
            for (r, i) in rs.into_iter().zip(idx) {
                if let Some(slot) = results.get_mut(i) {
                    *slot = Slot::Done(r);
                }
            }
        }
    }
    let mut results = results.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .zip(results.by_ref())
                .filter_map(|(p, slot)| {
                    let r = match slot {
                        Slot::Skip => return None,
                        Slot::Done(r) => r,
                        Slot::Pending => ListOffsetsResult {
                            error_code: code::KAFKA_STORAGE_ERROR,
                            offset: -1,
                            timestamp: -1,
                        },
                    };
                    Some(
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(r.error_code)
                            .with_offset(r.offset)
                            .with_timestamp(r.timestamp)
                            .with_leader_epoch(if req.version >= 4 { 0 } else { -1 }),
                    )
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic_name(&topic_str(&t.name)))
                .with_partitions(partitions)
        })
        .collect();
    req.respond(&ListOffsetsResponse::default().with_topics(topics))
}
