//! ListOffsets, versions 1-6: earliest (-2), latest (-1, the high watermark) and the first
//! offset whose timestamp is at least the one asked.

use super::{Ctx, Request, RequestError, topic_name, topic_str};
use crate::server::errors::code;
use crate::shard::messages::{ListOffsetsPart, ListOffsetsResult, ShardReply, ShardRequest};
use crate::shard::runtime::join_all;
use bytes::Bytes;
use kafka_protocol::messages::list_offsets_response::{
    ListOffsetsPartitionResponse, ListOffsetsTopicResponse,
};
use kafka_protocol::messages::{ListOffsetsRequest, ListOffsetsResponse};
use std::collections::BTreeMap;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: ListOffsetsRequest = req.decode_body()?;
    let meta = ctx.shard.meta();
    let missing = || ListOffsetsResult {
        error_code: code::UNKNOWN_TOPIC_OR_PARTITION,
        offset: -1,
        timestamp: -1,
    };
    let mut results: Vec<Option<ListOffsetsResult>> = Vec::new();
    let mut groups: BTreeMap<usize, (Vec<ListOffsetsPart>, Vec<usize>)> = BTreeMap::new();
    for t in &request.topics {
        let topic = topic_str(&t.name);
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
        for p in &t.partitions {
            if p.partition_index < 0 || p.partition_index >= partitions {
                results.push(Some(missing()));
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
            results.push(None);
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
                results[i] = Some(r);
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
                .map(|p| {
                    let r = results.next().flatten().unwrap_or(ListOffsetsResult {
                        error_code: code::KAFKA_STORAGE_ERROR,
                        offset: -1,
                        timestamp: -1,
                    });
                    ListOffsetsPartitionResponse::default()
                        .with_partition_index(p.partition_index)
                        .with_error_code(r.error_code)
                        .with_offset(r.offset)
                        .with_timestamp(r.timestamp)
                        .with_leader_epoch(if req.version >= 4 { 0 } else { -1 })
                })
                .collect();
            ListOffsetsTopicResponse::default()
                .with_name(topic_name(&topic_str(&t.name)))
                .with_partitions(partitions)
        })
        .collect();
    req.respond(&ListOffsetsResponse::default().with_topics(topics))
}
