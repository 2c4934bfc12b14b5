//! OffsetFetch, versions 1-8 (v2+: all partitions when topics is null; v8: many groups per
//! request, each sent to its own coordinator shard).

use super::{Ctx, Request, RequestError, topic_name};
use crate::group::{FetchedGroup, GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::runtime::join_all;
use bytes::Bytes;
use kafka_protocol::messages::offset_fetch_response::{
    OffsetFetchResponseGroup, OffsetFetchResponsePartition, OffsetFetchResponsePartitions,
    OffsetFetchResponseTopic, OffsetFetchResponseTopics,
};
use kafka_protocol::messages::{GroupId, OffsetFetchRequest, OffsetFetchResponse};

use super::str_bytes;

async fn fetch_one(
    ctx: &Ctx,
    group_id: String,
    topics: Option<Vec<(String, Vec<i32>)>>,
    require_stable: bool,
) -> FetchedGroup {
    if !ctx.allowed(op::DESCRIBE, resource::GROUP, &group_id) {
        return FetchedGroup {
            group: group_id,
            error_code: code::GROUP_AUTHORIZATION_FAILED,
            topics: Vec::new(),
        };
    }
    let fetch = GroupOp::Fetch {
        group: group_id.clone(),
        topics,
        require_stable,
    };
    let mut fetched = match ctx.shard.route_group(&group_id, fetch).await {
        Some(GroupReply::Fetch(f)) => f,
        _ => FetchedGroup {
            group: group_id,
            error_code: code::COORDINATOR_NOT_AVAILABLE,
            topics: Vec::new(),
        },
    };
    // The offsets of topics the principal may not describe are not shown.
    for (topic, partitions) in &mut fetched.topics {
        if !ctx.allowed(op::DESCRIBE, resource::TOPIC, topic) {
            for p in partitions.iter_mut() {
                p.offset = -1;
                p.metadata = None;
                p.error_code = code::TOPIC_AUTHORIZATION_FAILED;
            }
        }
    }
    fetched
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: OffsetFetchRequest = req.decode_body()?;
    if req.version >= 8 {
        // Each group once (its first entry), each partition once.
        let mut seen = std::collections::HashSet::new();
        let calls: Vec<_> = request
            .groups
            .iter()
            .filter(|g| seen.insert(g.group_id.to_string()))
            .map(|g| {
                let topics = g.topics.as_ref().map(|ts| {
                    super::dedupe::unique_partitions(
                        ts.iter()
                            .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                            .collect(),
                    )
                });
                Box::pin(fetch_one(
                    ctx,
                    g.group_id.to_string(),
                    topics,
                    request.require_stable,
                ))
            })
            .collect();
        let groups = join_all(calls)
            .await
            .into_iter()
            .map(|f| {
                let topics = f
                    .topics
                    .into_iter()
                    .map(|(t, ps)| {
                        let partitions = ps
                            .into_iter()
                            .map(|p| {
                                OffsetFetchResponsePartitions::default()
                                    .with_partition_index(p.partition)
                                    .with_committed_offset(p.offset)
                                    .with_committed_leader_epoch(p.leader_epoch)
                                    .with_metadata(p.metadata.map(str_bytes))
                                    .with_error_code(p.error_code)
                            })
                            .collect();
                        OffsetFetchResponseTopics::default()
                            .with_name(topic_name(&t))
                            .with_partitions(partitions)
                    })
                    .collect();
                OffsetFetchResponseGroup::default()
                    .with_group_id(GroupId(str_bytes(f.group)))
                    .with_topics(topics)
                    .with_error_code(f.error_code)
            })
            .collect();
        return req.respond(&OffsetFetchResponse::default().with_groups(groups));
    }
    let topics = request.topics.as_ref().map(|ts| {
        super::dedupe::unique_partitions(
            ts.iter()
                .map(|t| (t.name.to_string(), t.partition_indexes.clone()))
                .collect(),
        )
    });
    let f = fetch_one(
        ctx,
        request.group_id.to_string(),
        topics,
        request.require_stable,
    )
    .await;
    // v1 has no group-level error: a group error goes on every partition.
    let partition_error = |c: i16| {
        if req.version < 2 && c == 0 {
            f.error_code
        } else {
            c
        }
    };
    let topics = f
        .topics
        .iter()
        .map(|(t, ps)| {
            let partitions = ps
                .iter()
                .map(|p| {
                    OffsetFetchResponsePartition::default()
                        .with_partition_index(p.partition)
                        .with_committed_offset(p.offset)
                        .with_committed_leader_epoch(p.leader_epoch)
                        .with_metadata(p.metadata.clone().map(str_bytes))
                        .with_error_code(partition_error(p.error_code))
                })
                .collect();
            OffsetFetchResponseTopic::default()
                .with_name(topic_name(t))
                .with_partitions(partitions)
        })
        .collect();
    req.respond(
        &OffsetFetchResponse::default()
            .with_topics(topics)
            .with_error_code(f.error_code),
    )
}
