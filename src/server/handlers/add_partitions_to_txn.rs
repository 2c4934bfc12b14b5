//! AddPartitionsToTxn, versions 0-4: a transactional producer names the partitions its
//! transaction writes to before it produces to them, so the coordinator knows where its
//! markers go. v0-3 carry one transaction; v4 (brokers verifying a produce, KIP-890) a
//! batch of them, each possibly `verify_only`.
//!
//! As in Kafka, one bad partition fails the request: unknown ones get
//! UNKNOWN_TOPIC_OR_PARTITION, ones the principal may not write TOPIC_AUTHORIZATION_FAILED,
//! and every other partition OPERATION_NOT_ATTEMPTED.

use super::{Ctx, Request, RequestError};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::txn::{TxnError, TxnOp, TxnReply};
use bytes::Bytes;
use kafka_protocol::messages::add_partitions_to_txn_request::AddPartitionsToTxnTopic;
use kafka_protocol::messages::add_partitions_to_txn_response::{
    AddPartitionsToTxnPartitionResult, AddPartitionsToTxnResult, AddPartitionsToTxnTopicResult,
};
use kafka_protocol::messages::{
    AddPartitionsToTxnRequest, AddPartitionsToTxnResponse, TransactionalId,
};

/// The partitions of one transaction with the code each gets.
fn results(
    topics: &[AddPartitionsToTxnTopic],
    code_of: impl Fn(&str, i32) -> i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    topics
        .iter()
        .map(|t| {
            let partitions = t
                .partitions
                .iter()
                .map(|p| {
                    AddPartitionsToTxnPartitionResult::default()
                        .with_partition_index(*p)
                        .with_partition_error_code(code_of(t.name.as_str(), *p))
                })
                .collect();
            AddPartitionsToTxnTopicResult::default()
                .with_name(t.name.clone())
                .with_results_by_partition(partitions)
        })
        .collect()
}

/// One transaction's partitions added (or verified): a code per partition.
async fn add_one(
    ctx: &Ctx,
    id: &TransactionalId,
    producer_id: i64,
    epoch: i16,
    topics: &[AddPartitionsToTxnTopic],
    verify_only: bool,
    version: i16,
) -> Vec<AddPartitionsToTxnTopicResult> {
    let id = id.to_string();
    if !ctx.allowed(op::WRITE, resource::TRANSACTIONAL_ID, &id) {
        return results(topics, |_, _| code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED);
    }
    let meta = ctx.shard.meta();
    let denied = |t: &str| !ctx.allowed(op::WRITE, resource::TOPIC, t);
    let unknown = |t: &str, p: i32| {
        !meta
            .topics
            .get(t)
            .is_some_and(|v| (0..v.partitions).contains(&p))
            || crate::shard::meta::is_internal(t)
    };
    let bad = topics.iter().any(|t| {
        denied(t.name.as_str()) || t.partitions.iter().any(|p| unknown(t.name.as_str(), *p))
    });
    if bad {
        return results(topics, |t, p| {
            if denied(t) {
                code::TOPIC_AUTHORIZATION_FAILED
            } else if unknown(t, p) {
                code::UNKNOWN_TOPIC_OR_PARTITION
            } else {
                code::OPERATION_NOT_ATTEMPTED
            }
        });
    }
    let partitions: Vec<(String, i32)> = topics
        .iter()
        .flat_map(|t| t.partitions.iter().map(move |p| (t.name.to_string(), *p)))
        .collect();
    let op = TxnOp::AddPartitions {
        id,
        producer_id,
        epoch,
        partitions: partitions.clone(),
        verify_only,
    };
    let fenced = |e: TxnError| super::init_producer_id::fenced_code(e.code(), version, 2);
    match ctx.shard.route_txn(op).await {
        TxnReply::Done(Ok(())) => results(topics, |_, _| code::NONE),
        TxnReply::Done(Err(e)) => {
            let c = fenced(e);
            results(topics, |_, _| c)
        }
        TxnReply::Verified(Ok(ok)) => results(topics, |t, p| {
            let i = partitions.iter().position(|(tt, pp)| tt == t && *pp == p);
            match i.and_then(|i| ok.get(i)) {
                Some(true) => code::NONE,
                _ => code::INVALID_TXN_STATE,
            }
        }),
        TxnReply::Verified(Err(e)) => {
            let c = fenced(e);
            results(topics, |_, _| c)
        }
        _ => results(topics, |_, _| code::COORDINATOR_NOT_AVAILABLE),
    }
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: AddPartitionsToTxnRequest = req.decode_body()?;
    let response = if req.version >= 4 {
        // The batched form is what brokers send each other (KIP-890): CLUSTER_ACTION.
        if !ctx.allowed(
            op::CLUSTER_ACTION,
            resource::CLUSTER,
            resource::CLUSTER_NAME,
        ) {
            return req.respond(
                &AddPartitionsToTxnResponse::default()
                    .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED),
            );
        }
        let mut out = Vec::with_capacity(request.transactions.len());
        for t in &request.transactions {
            let topic_results = add_one(
                ctx,
                &t.transactional_id,
                t.producer_id.0,
                t.producer_epoch,
                &t.topics,
                t.verify_only,
                req.version,
            )
            .await;
            out.push(
                AddPartitionsToTxnResult::default()
                    .with_transactional_id(t.transactional_id.clone())
                    .with_topic_results(topic_results),
            );
        }
        AddPartitionsToTxnResponse::default().with_results_by_transaction(out)
    } else {
        let topic_results = add_one(
            ctx,
            &request.v3_and_below_transactional_id,
            request.v3_and_below_producer_id.0,
            request.v3_and_below_producer_epoch,
            &request.v3_and_below_topics,
            false,
            req.version,
        )
        .await;
        AddPartitionsToTxnResponse::default().with_results_by_topic_v3_and_below(topic_results)
    };
    req.respond(&response)
}
