//! DeleteRecords, versions 0-2: moves each partition's log start offset (its low
//! watermark) up to the offset given (-1: the high watermark) and answers the new low
//! watermark. An offset above the high watermark is OFFSET_OUT_OF_RANGE; a partition this
//! broker does not lead is NOT_LEADER_OR_FOLLOWER, an unknown one
//! UNKNOWN_TOPIC_OR_PARTITION, one of an internal topic INVALID_TOPIC_EXCEPTION. Each
//! partition goes to its owning shard; one request reaches each shard once.

use super::dedupe::{Naming, Repeats};
use super::{Ctx, Request, RequestError, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{DeleteRecordsPart, DeleteRecordsResult, ShardReply, ShardRequest};
use crate::shard::scatter::ShardUnreachable;
use bytes::Bytes;
use kafka_protocol::messages::delete_records_response::{
    DeleteRecordsPartitionResult, DeleteRecordsTopicResult,
};
use kafka_protocol::messages::{DeleteRecordsRequest, DeleteRecordsResponse};

enum Slot {
    /// Asked of the owning shard; the answers come in the order of these slots.
    Pending,
    Done(DeleteRecordsResult),
    Skip,
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DeleteRecordsRequest = req.decode_body()?;
    let meta = ctx.shard.meta();
    // A partition named twice is answered once, at its first place, with INVALID_REQUEST
    // (as ListOffsets does): which of two offsets was meant is not knowable.
    let mut repeats = Repeats::count(request.topics.iter().flat_map(|t| {
        t.partitions
            .iter()
            .map(move |p| (t.name.0.as_str(), p.partition_index))
    }));
    let mut results: Vec<Slot> = Vec::new();
    let mut to_ask: Vec<(usize, DeleteRecordsPart)> = Vec::new();
    for t in &request.topics {
        let topic = topic_str(&t.name);
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
        let denied = !ctx.allowed(op::DELETE, resource::TOPIC, &topic);
        for p in &t.partitions {
            match repeats.visit((t.name.0.as_str(), p.partition_index)) {
                Naming::Repeat => {
                    results.push(Slot::Skip);
                    continue;
                }
                Naming::FirstOfMany => {
                    results.push(Slot::Done(DeleteRecordsResult::error(
                        code::INVALID_REQUEST,
                    )));
                    continue;
                }
                Naming::Once => {}
            }
            if denied {
                results.push(Slot::Done(DeleteRecordsResult::error(
                    code::TOPIC_AUTHORIZATION_FAILED,
                )));
                continue;
            }
            if p.partition_index < 0 || p.partition_index >= partitions {
                results.push(Slot::Done(DeleteRecordsResult::error(
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                )));
                continue;
            }
            let ask = DeleteRecordsPart {
                topic: topic.clone(),
                partition: p.partition_index,
                offset: p.offset,
            };
            to_ask.push((ctx.shard.owner(&topic, p.partition_index), ask));
            results.push(Slot::Pending);
        }
    }
    let mut answers = ctx
        .shard
        .scatter(to_ask, ShardRequest::DeleteRecords, |reply| match reply {
            ShardReply::DeleteRecords(rs) => Some(rs),
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
                        DeleteRecordsPartitionResult::default()
                            .with_partition_index(p.partition_index)
                            .with_low_watermark(r.low_watermark)
                            .with_error_code(r.error_code),
                    )
                })
                .collect();
            DeleteRecordsTopicResult::default()
                .with_name(topic_name(&topic_str(&t.name)))
                .with_partitions(partitions)
        })
        .collect();
    req.respond(&DeleteRecordsResponse::default().with_topics(topics))
}
