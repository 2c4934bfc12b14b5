//! OffsetCommit, versions 2-8: acknowledged once the commit's record is appended to
//! `__consumer_offsets` under the topic's flush setting.

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use bytes::Bytes;
use kafka_protocol::messages::offset_commit_response::{
    OffsetCommitResponsePartition, OffsetCommitResponseTopic,
};
use kafka_protocol::messages::{OffsetCommitRequest, OffsetCommitResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let mut request: OffsetCommitRequest = req.decode_body()?;
    super::dedupe::last_commit_per_partition(&mut request);
    let group_id = request.group_id.to_string();
    // Kept to answer every partition if the coordinator cannot be reached.
    let shape: Vec<_> = request
        .topics
        .iter()
        .map(|t| {
            let ps: Vec<i32> = t.partitions.iter().map(|p| p.partition_index).collect();
            (t.name.clone(), ps)
        })
        .collect();
    let response = match ctx
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
    req.respond(&response)
}
