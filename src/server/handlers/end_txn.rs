//! EndTxn, versions 0-3: commit or abort the producer's open transaction. Answered once
//! the decision is durable in `__transaction_state`; the coordinator then writes the
//! markers, and the partitions' last stable offsets move past the transaction.

use super::{Ctx, Request, RequestError};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::txn::{TxnOp, TxnReply};
use bytes::Bytes;
use kafka_protocol::messages::{EndTxnRequest, EndTxnResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: EndTxnRequest = req.decode_body()?;
    let answer = |c: i16| EndTxnResponse::default().with_error_code(c);
    let id = request.transactional_id.to_string();
    if !ctx.allowed(op::WRITE, resource::TRANSACTIONAL_ID, &id) {
        return req.respond(&answer(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
    }
    let op = TxnOp::End {
        id,
        producer_id: request.producer_id.0,
        epoch: request.producer_epoch,
        commit: request.committed,
    };
    let c = match ctx.shard.route_txn(op).await {
        TxnReply::Done(Ok(())) => code::NONE,
        TxnReply::Done(Err(e)) => super::init_producer_id::fenced_code(e.code(), req.version, 2),
        _ => code::COORDINATOR_NOT_AVAILABLE,
    };
    req.respond(&answer(c))
}
