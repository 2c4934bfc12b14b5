//! OffsetForLeaderEpoch, versions 2-4 (KIP-101, KIP-320): for each partition, the largest
//! leader epoch at or below the one asked for and the offset where it ends in the leader's
//! log, which consumers use to detect a log truncated under them after a leader change.
//! Followers of ringbroker learn the same from their Fetch answers (diverging epoch).

use super::dedupe::{Naming, Repeats};
use super::{Ctx, Request, RequestError, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{EpochEndPart, EpochEndResult, ShardReply, ShardRequest};
use crate::shard::scatter::ShardUnreachable;
use bytes::Bytes;
use kafka_protocol::messages::offset_for_leader_epoch_response::{
    EpochEndOffset, OffsetForLeaderTopicResult,
};
use kafka_protocol::messages::{OffsetForLeaderEpochRequest, OffsetForLeaderEpochResponse};

enum Slot {
    /// Asked of the owning shard; the answers come in the order of these slots.
    Pending,
    Done(i16),
    Skip,
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: OffsetForLeaderEpochRequest = req.decode_body()?;
    let meta = ctx.shard.meta();
    let mut repeats = Repeats::count(request.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(move |p| (t.topic.0.as_str(), p.partition))
    }));
    let mut slots: Vec<Slot> = Vec::new();
    let mut to_ask: Vec<(usize, EpochEndPart)> = Vec::new();
    // Kafka's rule: brokers (CLUSTER_ACTION) may ask of every topic, others of the topics
    // they may describe.
    let broker = ctx.allowed(
        op::CLUSTER_ACTION,
        resource::CLUSTER,
        resource::CLUSTER_NAME,
    );
    for t in &request.topics {
        let topic = topic_str(&t.topic);
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
        let denied = !broker && !ctx.allowed(op::DESCRIBE, resource::TOPIC, &topic);
        for p in &t.partitions {
            match repeats.visit((t.topic.0.as_str(), p.partition)) {
                Naming::Repeat => slots.push(Slot::Skip),
                Naming::FirstOfMany => slots.push(Slot::Done(code::INVALID_REQUEST)),
                _ if denied => slots.push(Slot::Done(code::TOPIC_AUTHORIZATION_FAILED)),
                _ if p.partition < 0 || p.partition >= partitions => {
                    slots.push(Slot::Done(code::UNKNOWN_TOPIC_OR_PARTITION))
                }
                _ => {
                    let part = EpochEndPart {
                        topic: topic.clone(),
                        partition: p.partition,
                        current_leader_epoch: p.current_leader_epoch,
                        leader_epoch: p.leader_epoch,
                    };
                    to_ask.push((ctx.shard.owner(&topic, p.partition), part));
                    slots.push(Slot::Pending);
                }
            }
        }
    }
    let mut answers = ctx
        .shard
        .scatter(to_ask, ShardRequest::EpochEnds, |reply| match reply {
            ShardReply::EpochEnds(rs) => Some(rs),
            _ => None,
        })
        .await
        .into_iter();
    let mut slots = slots.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .zip(slots.by_ref())
                .filter_map(|(p, slot)| {
                    let r = match slot {
                        Slot::Skip => return None,
                        Slot::Done(c) => EpochEndResult::error(c),
                        Slot::Pending => answers.next().unwrap_or_else(|| ShardUnreachable.into()),
                    };
                    Some(
                        EpochEndOffset::default()
                            .with_partition(p.partition)
                            .with_error_code(r.error_code)
                            .with_leader_epoch(r.leader_epoch)
                            .with_end_offset(r.end_offset),
                    )
                })
                .collect();
            OffsetForLeaderTopicResult::default()
                .with_topic(topic_name(&topic_str(&t.topic)))
                .with_partitions(partitions)
        })
        .collect();
    req.respond(&OffsetForLeaderEpochResponse::default().with_topics(topics))
}
