//! InitProducerId, versions 0-4: for idempotent producers from this broker's allocator,
//! for transactional ones from the coordinator of their transactional id (which fences the
//! producer's previous epoch and aborts its open transaction first).
//!
//! v3+ (KIP-360) lets a producer pass the id and epoch it holds to get the epoch bumped;
//! see [`crate::producer::ProducerIdAllocator::init`] and `txn::TxnCoordinator::init`.

use super::{Ctx, Request, RequestError};
use crate::producer::ProducerIdAndEpoch;
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::txn::{TxnOp, TxnReply};
use bytes::Bytes;
use kafka_protocol::messages::{InitProducerIdRequest, InitProducerIdResponse, ProducerId};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: InitProducerIdRequest = req.decode_body()?;
    let failed = |error_code| {
        InitProducerIdResponse::default()
            .with_error_code(error_code)
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1)
    };
    let current =
        (request.producer_id.0 >= 0 && request.producer_epoch >= 0).then_some(ProducerIdAndEpoch {
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
        });
    if let Some(id) = request.transactional_id.as_ref().filter(|t| !t.is_empty()) {
        let id = id.to_string();
        if !ctx.allowed(op::WRITE, resource::TRANSACTIONAL_ID, &id) {
            return req.respond(&failed(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
        }
        let op = TxnOp::Init {
            id,
            timeout_ms: request.transaction_timeout_ms,
            current: current.map(|c| (c.producer_id, c.epoch)),
        };
        return match ctx.shard.route_txn(op).await {
            TxnReply::Init(Ok((producer_id, epoch))) => req.respond(
                &InitProducerIdResponse::default()
                    .with_producer_id(ProducerId(producer_id))
                    .with_producer_epoch(epoch),
            ),
            TxnReply::Init(Err(e)) => req.respond(&failed(fenced_code(e.code(), req.version, 4))),
            _ => req.respond(&failed(code::COORDINATOR_NOT_AVAILABLE)),
        };
    }
    if !ctx.may_write_idempotently() {
        return req.respond(&failed(code::CLUSTER_AUTHORIZATION_FAILED));
    }
    // Reserving a block of ids fsyncs a file under the allocator's lock (shared by the
    // shards): every allocation runs on the blocking pool, so no reactor waits on either.
    // The allocator is the broker's state: a panic inside it must stop the process.
    let ids = ctx.shard.producer_ids.clone();
    let allocated = glommio::executor()
        .spawn_blocking(move || crate::fatal::owned(|| ids.init(current)))
        .await;
    match allocated {
        Ok(p) => req.respond(
            &InitProducerIdResponse::default()
                .with_producer_id(ProducerId(p.producer_id))
                .with_producer_epoch(p.epoch),
        ),
        Err(e) => {
            tracing::error!("cannot allocate a producer id: {e}");
            // Retriable: the client asks again.
            req.respond(&failed(code::COORDINATOR_NOT_AVAILABLE))
        }
    }
}

/// PRODUCER_FENCED came with KIP-588 (InitProducerId v4, AddPartitionsToTxn,
/// AddOffsetsToTxn and EndTxn v2): a client of an older version (below `since`) knows it as
/// INVALID_PRODUCER_EPOCH.
pub fn fenced_code(c: i16, version: i16, since: i16) -> i16 {
    if c == code::PRODUCER_FENCED && version < since {
        code::INVALID_PRODUCER_EPOCH
    } else {
        c
    }
}
