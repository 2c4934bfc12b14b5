//! DescribeTransactions, version 0: the state of transactional ids this broker
//! coordinates (state, producer id and epoch, timeout, start time, partitions).

use super::{Ctx, Request, RequestError};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::txn::{TxnError, TxnOp, TxnReply};
use bytes::Bytes;
use kafka_protocol::messages::describe_transactions_response::{TopicData, TransactionState};
use kafka_protocol::messages::{
    DescribeTransactionsRequest, DescribeTransactionsResponse, ProducerId, TopicName,
};
use std::collections::BTreeMap;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DescribeTransactionsRequest = req.decode_body()?;
    let mut states = Vec::with_capacity(request.transactional_ids.len());
    for tid in &request.transactional_ids {
        let id = tid.to_string();
        let state = TransactionState::default()
            .with_transactional_id(tid.clone())
            .with_transaction_state(super::str_bytes(""))
            .with_producer_id(ProducerId(-1))
            .with_producer_epoch(-1);
        if !ctx.allowed(op::DESCRIBE, resource::TRANSACTIONAL_ID, &id) {
            states.push(state.with_error_code(code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED));
            continue;
        }
        let Some((owner, p)) = ctx.shard.txn_coordinator(&id) else {
            states.push(state.with_error_code(code::TRANSACTIONAL_ID_NOT_FOUND));
            continue;
        };
        if !ctx.shard.meta().leads(crate::txn::TXN_TOPIC, p) {
            states.push(state.with_error_code(code::NOT_COORDINATOR));
            continue;
        }
        let reply = ctx
            .shard
            .call(
                owner,
                ShardRequest::Txn(Box::new(TxnOp::Describe(vec![id]))),
            )
            .await;
        let found = match reply {
            Some(ShardReply::Txn(TxnReply::Described(mut v))) => v.pop().map(|(_, r)| r),
            _ => None,
        };
        states.push(match found {
            Some(Ok(m)) => {
                let mut topics: BTreeMap<String, Vec<i32>> = BTreeMap::new();
                for (t, p) in &m.partitions {
                    topics.entry(t.clone()).or_default().push(*p);
                }
                state
                    .with_transaction_state(super::str_bytes(m.status.name()))
                    .with_transaction_timeout_ms(m.timeout_ms)
                    .with_transaction_start_time_ms(m.start_ms)
                    .with_producer_id(ProducerId(m.producer_id))
                    .with_producer_epoch(m.epoch)
                    .with_topics(
                        topics
                            .into_iter()
                            .map(|(t, ps)| {
                                TopicData::default()
                                    .with_topic(TopicName(super::str_bytes(t)))
                                    .with_partitions(ps)
                            })
                            .collect(),
                    )
            }
            Some(Err(TxnError::InvalidRequest)) => {
                state.with_error_code(code::TRANSACTIONAL_ID_NOT_FOUND)
            }
            Some(Err(e)) => state.with_error_code(e.code()),
            None => state.with_error_code(code::COORDINATOR_NOT_AVAILABLE),
        });
    }
    req.respond(&DescribeTransactionsResponse::default().with_transaction_states(states))
}
