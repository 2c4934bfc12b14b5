//! ListTransactions, versions 0-1: the transactional ids this broker coordinates,
//! filtered by state, producer id and (v1) by running longer than `duration_filter` ms.
//! Ids the principal may not describe are left out.

use super::{Ctx, Request, RequestError};
use crate::security::acl::{op, resource};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::txn::{TxnOp, TxnReply, TxnStatus};
use bytes::Bytes;
use kafka_protocol::messages::list_transactions_response::TransactionState;
use kafka_protocol::messages::{
    ListTransactionsRequest, ListTransactionsResponse, ProducerId, TransactionalId,
};

const STATES: &[TxnStatus] = &[
    TxnStatus::Empty,
    TxnStatus::Ongoing,
    TxnStatus::PrepareCommit,
    TxnStatus::PrepareAbort,
    TxnStatus::CompleteCommit,
    TxnStatus::CompleteAbort,
    TxnStatus::Dead,
    TxnStatus::PrepareEpochFence,
];

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: ListTransactionsRequest = req.decode_body()?;
    let wanted: Vec<String> = request
        .state_filters
        .iter()
        .map(|s| s.to_string())
        .collect();
    let unknown: Vec<_> = request
        .state_filters
        .iter()
        .filter(|s| !STATES.iter().any(|k| k.name() == s.as_str()))
        .cloned()
        .collect();
    let now = crate::storage::log::wall_clock_ms();
    let mut out = Vec::new();
    for shard in 0..ctx.shard.nshards {
        let reply = ctx
            .shard
            .call(shard, ShardRequest::Txn(Box::new(TxnOp::List)))
            .await;
        let Some(ShardReply::Txn(TxnReply::Listed(ids))) = reply else {
            continue;
        };
        for (id, m) in ids {
            let state_ok = wanted.is_empty() || wanted.iter().any(|w| w == m.status.name());
            let pid_ok = request.producer_id_filters.is_empty()
                || request
                    .producer_id_filters
                    .iter()
                    .any(|p| p.0 == m.producer_id);
            let long_ok = request.duration_filter < 0
                || (m.start_ms >= 0 && now.saturating_sub(m.start_ms) > request.duration_filter);
            let visible = ctx.allowed(op::DESCRIBE, resource::TRANSACTIONAL_ID, &id);
            if !(state_ok && pid_ok && long_ok && visible) {
                continue;
            }
            out.push(
                TransactionState::default()
                    .with_transactional_id(TransactionalId(super::str_bytes(id)))
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_transaction_state(super::str_bytes(m.status.name())),
            );
        }
    }
    req.respond(
        &ListTransactionsResponse::default()
            .with_unknown_state_filters(unknown)
            .with_transaction_states(out),
    )
}
