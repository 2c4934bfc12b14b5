//! DescribeProducers, version 0: the idempotent producers of each partition (id, epoch,
//! last sequence, last timestamp), from the leader's producer state, as
//! `kafka-transactions.sh describe-producers` and AdminClient's `describeProducers` show
//! them. No transactions exist yet, so the coordinator epoch and the open transaction's
//! start offset are -1.

use super::dedupe::{Naming, Repeats};
use super::{Ctx, Request, RequestError, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{ProducersResult, ShardReply, ShardRequest};
use crate::shard::scatter::ShardUnreachable;
use bytes::Bytes;
use kafka_protocol::messages::describe_producers_response::{
    PartitionResponse, ProducerState, TopicResponse,
};
use kafka_protocol::messages::{DescribeProducersRequest, DescribeProducersResponse, ProducerId};

enum Slot {
    /// Asked of the owning shard; the answers come in the order of these slots.
    Pending,
    Done(i16),
    Skip,
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DescribeProducersRequest = req.decode_body()?;
    let meta = ctx.shard.meta();
    let mut repeats = Repeats::count(request.topics.iter().flat_map(|t| {
        t.partition_indexes
            .iter()
            .map(move |p| (t.name.0.as_str(), *p))
    }));
    let mut slots: Vec<Slot> = Vec::new();
    let mut to_ask: Vec<(usize, (String, i32))> = Vec::new();
    for t in &request.topics {
        let topic = topic_str(&t.name);
        let partitions = meta.topics.get(&topic).map(|v| v.partitions).unwrap_or(0);
        let denied = !ctx.allowed(op::READ, resource::TOPIC, &topic);
        for &p in &t.partition_indexes {
            match repeats.visit((t.name.0.as_str(), p)) {
                Naming::Repeat => slots.push(Slot::Skip),
                Naming::FirstOfMany => slots.push(Slot::Done(code::INVALID_REQUEST)),
                _ if denied => slots.push(Slot::Done(code::TOPIC_AUTHORIZATION_FAILED)),
                _ if p < 0 || p >= partitions => {
                    slots.push(Slot::Done(code::UNKNOWN_TOPIC_OR_PARTITION))
                }
                _ => {
                    to_ask.push((ctx.shard.owner(&topic, p), (topic.clone(), p)));
                    slots.push(Slot::Pending);
                }
            }
        }
    }
    let mut answers = ctx
        .shard
        .scatter(
            to_ask,
            ShardRequest::DescribeProducers,
            |reply| match reply {
                ShardReply::DescribeProducers(rs) => Some(rs),
                _ => None,
            },
        )
        .await
        .into_iter();
    let mut slots = slots.into_iter();
    let topics = request
        .topics
        .iter()
        .map(|t| {
            let partitions = t
                .partition_indexes
                .iter()
                .zip(slots.by_ref())
                .filter_map(|(&p, slot)| {
                    let r = match slot {
                        Slot::Skip => return None,
                        Slot::Done(c) => ProducersResult::error(c),
                        Slot::Pending => answers.next().unwrap_or_else(|| ShardUnreachable.into()),
                    };
                    let producers = r
                        .producers
                        .iter()
                        .map(|a| {
                            ProducerState::default()
                                .with_producer_id(ProducerId(a.producer_id))
                                .with_producer_epoch(i32::from(a.epoch))
                                .with_last_sequence(a.last_sequence)
                                .with_last_timestamp(a.last_timestamp)
                                .with_coordinator_epoch(-1)
                                .with_current_txn_start_offset(a.txn_start_offset)
                        })
                        .collect();
                    Some(
                        PartitionResponse::default()
                            .with_partition_index(p)
                            .with_error_code(r.error_code)
                            .with_active_producers(producers),
                    )
                })
                .collect();
            TopicResponse::default()
                .with_name(topic_name(&topic_str(&t.name)))
                .with_partitions(partitions)
        })
        .collect();
    req.respond(&DescribeProducersResponse::default().with_topics(topics))
}
