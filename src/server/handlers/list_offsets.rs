//! ListOffsets, versions 1-10: earliest (-2), latest (-1, the high watermark), the first
//! offset whose timestamp is at least the one asked, the record with the largest timestamp
//! (-3), the earliest local offset (-4, the log start: nothing is tiered) and the latest
//! tiered offset (-5, none: -1). See `crate::protocol::versions::list_offsets`.

use super::dedupe::{Naming, Repeats};
use super::{Ctx, Request, RequestError, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{ListOffsetsPart, ListOffsetsResult, ShardReply, ShardRequest};
use crate::shard::scatter::ShardUnreachable;
use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};

enum Slot {
    /// Asked of the owning shard; the answers come in the order of these slots.
    Pending,
    Done(ListOffsetsResult),
    Skip,
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: ListOffsetsRequest = req.decode_body()?;
    let meta = ctx.shard.meta();
    // Kafka answers a partition named twice with INVALID_REQUEST; here it is also answered
    // once, at its first place.
    let mut repeats = Repeats::count(request.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(move |p| (t.name.0.as_str(), p.partition_index))
    }));
    // Per partition of the request: `Pending` to fill from a shard, or the result;
    // partitions left out of the response are `Skip`.
    let mut results: Vec<Slot> = Vec::new();
    // The partitions to ask, each with its owning shard, in the order of `Pending` slots.
    let mut to_ask: Vec<(usize, ListOffsetsPart)> = Vec::new();
    for t in &request.topics {
        let topic = topic_str(&t.name);
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
        let denied = !ctx.allowed(op::DESCRIBE, resource::TOPIC, &topic);
        for p in &t.partitions {
            let naming = repeats.visit((t.name.0.as_str(), p.partition_index));
            if naming == Naming::Repeat {
                results.push(Slot::Skip);
                continue;
            }
            if naming == Naming::FirstOfMany {
                results.push(Slot::Done(ListOffsetsResult::error(code::INVALID_REQUEST)));
                continue;
            }
            if denied {
                results.push(Slot::Done(ListOffsetsResult::error(
                    code::TOPIC_AUTHORIZATION_FAILED,
                )));
                continue;
            }
            if p.partition_index < 0 || p.partition_index >= partitions {
                results.push(Slot::Done(ListOffsetsResult::error(
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                )));
                continue;
            }
            let ask = ListOffsetsPart {
                topic: topic.clone(),
                partition: p.partition_index,
                timestamp: p.timestamp,
                committed: request.isolation_level == 1,
            };
            to_ask.push((ctx.shard.owner(&topic, p.partition_index), ask));
            results.push(Slot::Pending);
        }
    }
    let mut answers = ctx
        .shard
        .scatter(to_ask, ShardRequest::ListOffsets, |reply| match reply {
            ShardReply::ListOffsets(rs) => Some(rs),
            _ => None,
        })
        .await
        .into_iter();
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
                        Slot::Pending => answers.next().unwrap_or_else(|| ShardUnreachable.into()),
                    };
                    Some(
                        ListOffsetsPartitionResponse::default()
                            .with_partition_index(p.partition_index)
                            .with_error_code(r.error_code)
                            .with_offset(r.offset)
                            .with_timestamp(r.timestamp)
                            .with_leader_epoch(if req.version >= 4 && r.offset >= 0 {
                                0
                            } else {
                                -1
                            }),
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
