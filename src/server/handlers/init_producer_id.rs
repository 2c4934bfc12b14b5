//! InitProducerId, versions 0-4, for idempotent producers (no transactional id).
//!
//! v3+ (KIP-360) lets a producer pass the id and epoch it holds to get the epoch bumped;
//! see [`crate::producer::ProducerIdAllocator::init`]. Transactions are not implemented: a
//! request with a transactional id is refused.

use super::{Ctx, Request, RequestError};
use crate::producer::ProducerIdAndEpoch;
use crate::protocol::code;
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
    if request
        .transactional_id
        .as_ref()
        .is_some_and(|t| !t.is_empty())
    {
        return req.respond(&failed(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
    }
    if !ctx.may_write_idempotently() {
        return req.respond(&failed(code::CLUSTER_AUTHORIZATION_FAILED));
    }
    let current =
        (request.producer_id.0 >= 0 && request.producer_epoch >= 0).then_some(ProducerIdAndEpoch {
            producer_id: request.producer_id.0,
            epoch: request.producer_epoch,
        });
    // The allocator is the broker's state: a panic inside it must stop the process.
    match crate::fatal::owned(|| ctx.shard.producer_ids.init(current)) {
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
