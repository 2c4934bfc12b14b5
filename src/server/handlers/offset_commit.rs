//! OffsetCommit, versions 2-8: acknowledged once the commit's record is appended to
//! `__consumer_offsets` under the topic's flush setting.

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let mut request: OffsetCommitRequest = req.decode_body()?;
    super::dedupe::last_commit_per_partition(&mut request);
    let group_id = request.group_id.to_string();
    // Without READ on the group nothing is committed; without READ on a topic, none of
    // its partitions (Kafka's codes, per partition).
    let group_denied = !ctx.allowed(op::READ, resource::GROUP, &group_id);
    let (allowed, denied): (Vec<_>, Vec<_>) = std::mem::take(&mut request.topics)
        .into_iter()
        .partition(|t| !group_denied && ctx.allowed(op::READ, resource::TOPIC, t.name.as_str()));
    request.topics = allowed;
    let denied_code = if group_denied {
        code::GROUP_AUTHORIZATION_FAILED
    } else {
        code::TOPIC_AUTHORIZATION_FAILED
    };
    let refused: Vec<OffsetCommitResponseTopic> = denied
        .into_iter()
        .map(|t| {
            OffsetCommitResponseTopic::default()
                .with_name(t.name)
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitResponsePartition::default()
                                .with_partition_index(p.partition_index)
                                .with_error_code(denied_code)
                        })
                        .collect(),
                )
        })
        .collect();
    if group_denied || (request.topics.is_empty() && !refused.is_empty()) {
        return req.respond(&OffsetCommitResponse::default().with_topics(refused));
    }
    // Kept to answer every partition if the coordinator cannot be reached.
    let shape: Vec<_> = request
        .topics
        .iter()
        .map(|t| {
            let ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.clone(), ps)
        })
        .collect();
    let mut response = match ctx
        .shard
        .route_group(&group_id, GroupOp::Commit { req: request })
        .await
    {
        Some(GroupReply::Commit(r)) => r,
        _ => OffsetCommitResponse::default().with_topics(
            shape
                .into_iter()
                .map(|(name, ps)| {
                    OffsetCommitResponseTopic::default()
                        .with_name(name)
                        .with_partitions(
                            ps.into_iter()
                                .map(|p| {
                                    OffsetCommitResponsePartition::default()
                                        .with_partition_index(p)
                                        .with_error_code(code::COORDINATOR_NOT_AVAILABLE)
                                })
                                .collect(),
                        )
                })
                .collect(),
        ),
    };
    response.topics.extend(refused);
    req.respond(&response)
}
