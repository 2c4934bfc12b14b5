//! TxnOffsetCommit, versions 0-3: offsets committed inside a transaction (a
//! consume-transform-produce loop). The group's coordinator appends them to
//! `__consumer_offsets` in a transactional batch of the producer; they become the group's
//! committed offsets when the transaction's commit marker reaches that partition, and are
//! dropped on abort.

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::offset_commit_request::{
    OffsetCommitRequestPartition, OffsetCommitRequestTopic,
};
use kafka_protocol::messages::txn_offset_commit_response::{
    TxnOffsetCommitResponsePartition, TxnOffsetCommitResponseTopic,
};
use kafka_protocol::messages::{
    OffsetCommitRequest, TopicName, TxnOffsetCommitRequest, TxnOffsetCommitResponse,
};

fn answer(codes: Vec<(TopicName, Vec<(i32, i16)>)>) -> TxnOffsetCommitResponse {
    TxnOffsetCommitResponse::default().with_topics(
        codes
            .into_iter()
            .map(|(name, ps)| {
                TxnOffsetCommitResponseTopic::default()
                    .with_name(name)
                    .with_partitions(
                        ps.into_iter()
                            .map(|(p, c)| {
                                TxnOffsetCommitResponsePartition::default()
                                    .with_partition_index(p)
                                    .with_error_code(c)
                            })
                            .collect(),
                    )
            })
            .collect(),
    )
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: TxnOffsetCommitRequest = req.decode_body()?;
    let group = request.group_id.to_string();
    let id = request.transactional_id.to_string();
    let every = |c: i16| -> Vec<(TopicName, Vec<(i32, i16)>)> {
        request
            .topics
            .iter()
            .map(|t| {
                let ps = t
                    .partitions
                    .iter()
                    .map(|p| (p.partition_index, c))
                    .collect();
                (t.name.clone(), ps)
            })
            .collect()
    };
    if !ctx.allowed(op::WRITE, resource::TRANSACTIONAL_ID, &id) {
        return req.respond(&answer(every(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED)));
    }
    if !ctx.allowed(op::READ, resource::GROUP, &group) {
        return req.respond(&answer(every(code::GROUP_AUTHORIZATION_FAILED)));
    }
    if request
        .topics
        .iter()
        .any(|t| !ctx.allowed(op::READ, resource::TOPIC, t.name.as_str()))
    {
        return req.respond(&answer(every(code::TOPIC_AUTHORIZATION_FAILED)));
    }
    let topics = request
        .topics
        .iter()
        .map(|t| {
            OffsetCommitRequestTopic::default()
                .with_name(t.name.clone())
                .with_partitions(
                    t.partitions
                        .iter()
                        .map(|p| {
                            OffsetCommitRequestPartition::default()
                                .with_partition_index(p.partition_index)
                                .with_committed_offset(p.committed_offset)
                                .with_committed_leader_epoch(p.committed_leader_epoch)
                                .with_committed_metadata(p.committed_metadata.clone())
                        })
                        .collect(),
                )
        })
        .collect();
    // Before v3 the request carries no member: generation -1 skips the member checks.
    let (generation, member) = if req.version >= 3 {
        (request.generation_id, request.member_id.clone())
    } else {
        (-1, Default::default())
    };
    let commit = OffsetCommitRequest::default()
        .with_group_id(request.group_id.clone())
        .with_generation_id_or_member_epoch(generation)
        .with_member_id(member)
        .with_group_instance_id(request.group_instance_id.clone())
        .with_topics(topics);
    let op = GroupOp::TxnCommit {
        req: commit,
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
    };
    let codes = match ctx.shard.route_group(&group, op).await {
        Some(GroupReply::Commit(r)) => r
            .topics
            .into_iter()
            .map(|t| {
                let ps = t
                    .partitions
                    .into_iter()
                    .map(|p| (p.partition_index, p.error_code))
                    .collect();
                (t.name, ps)
            })
            .collect(),
        _ => every(code::COORDINATOR_NOT_AVAILABLE),
    };
    req.respond(&answer(codes))
}
