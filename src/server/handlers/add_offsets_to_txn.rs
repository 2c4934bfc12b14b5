//! AddOffsetsToTxn, versions 0-3: the transaction will commit offsets of `group_id`
//! (TxnOffsetCommit), so its markers also go to the group's `__consumer_offsets` partition.

use super::{Ctx, Request, RequestError};
use crate::group::{OFFSETS_TOPIC, offsets_partition};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::txn::{TxnOp, TxnReply};
use bytes::Bytes;
use kafka_protocol::messages::{AddOffsetsToTxnRequest, AddOffsetsToTxnResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: AddOffsetsToTxnRequest = req.decode_body()?;
    let answer = |c: i16| AddOffsetsToTxnResponse::default().with_error_code(c);
    let id = request.transactional_id.to_string();
    let group = request.group_id.to_string();
    if !ctx.allowed(op::WRITE, resource::TRANSACTIONAL_ID, &id) {
        return req.respond(&answer(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
    }
    if !ctx.allowed(op::READ, resource::GROUP, &group) {
        return req.respond(&answer(code::GROUP_AUTHORIZATION_FAILED));
    }
    if group.is_empty() {
        return req.respond(&answer(code::INVALID_GROUP_ID));
    }
    let partitions = crate::shard::groups::offsets_partitions(&ctx.shard.meta(), &ctx.shard.config);
    let op = TxnOp::AddPartitions {
        id,
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
        partitions: vec![(
            OFFSETS_TOPIC.to_string(),
            offsets_partition(&group, partitions),
        )],
        verify_only: false,
    };
    let c = match ctx.shard.route_txn(op).await {
        TxnReply::Done(Ok(())) => code::NONE,
        TxnReply::Done(Err(e)) => super::init_producer_id::fenced_code(e.code(), req.version, 2),
        _ => code::COORDINATOR_NOT_AVAILABLE,
    };
    req.respond(&answer(c))
}
