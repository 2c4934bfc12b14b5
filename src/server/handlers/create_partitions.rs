//! CreatePartitions, versions 0-3: raises a topic's partition count.
//!
//! The change goes to shard 0, the metadata writer, which checks it (Kafka's
//! INVALID_PARTITIONS, UNKNOWN_TOPIC_OR_PARTITION and INVALID_REPLICA_ASSIGNMENT, the broker's
//! partition limits), then persists it (alone) or commits it to the metadata log (in a
//! cluster) and has every shard open the new partitions' logs before answering. A topic named
//! twice is refused with INVALID_REQUEST and answered once, as Kafka does.

use super::{Ctx, Request, RequestError, str_bytes, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::server::handlers::create_topics::META_SHARD;
use crate::shard::messages::{PartitionsChange, ShardReply, ShardRequest};
use bytes::Bytes;
use kafka_protocol::messages::create_partitions_response::CreatePartitionsTopicResult;
use kafka_protocol::messages::{CreatePartitionsRequest, CreatePartitionsResponse};
use std::collections::BTreeMap;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: CreatePartitionsRequest = req.decode_body()?;
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for t in &request.topics {
        *seen.entry(topic_str(&t.name)).or_default() += 1;
    }
    let mut changes = Vec::new();
    for t in &request.topics {
        let name = topic_str(&t.name);
        if seen.get(&name).copied().unwrap_or(0) > 1
            || !ctx.allowed(op::ALTER, resource::TOPIC, &name)
        {
            continue;
        }
        changes.push(PartitionsChange {
            topic: name,
            count: t.count,
            assignments: t.assignments.as_ref().map(|a| {
                a.iter()
                    .map(|p| p.broker_ids.iter().map(|b| b.0).collect())
                    .collect()
            }),
        });
    }
    let sent = changes.len();
    let results = if changes.is_empty() {
        Vec::new()
    } else {
        let req = ShardRequest::CreatePartitions {
            topics: changes,
            validate_only: request.validate_only,
        };
        match ctx.shard.call(META_SHARD, req).await {
            Some(ShardReply::CreatePartitions(r)) if r.len() == sent => r,
            _ => Vec::new(),
        }
    };
    let by_name: BTreeMap<&str, _> = results.iter().map(|r| (r.name.as_str(), r)).collect();
    let mut answered = std::collections::BTreeSet::new();
    let mut out = Vec::with_capacity(seen.len());
    for t in &request.topics {
        let name = topic_str(&t.name);
        if !answered.insert(name.clone()) {
            continue;
        }
        let (error_code, message) = if seen.get(&name).copied().unwrap_or(0) > 1 {
            (code::INVALID_REQUEST, Some("Duplicate topic name.".into()))
        } else if !ctx.allowed(op::ALTER, resource::TOPIC, &name) {
            (
                code::TOPIC_AUTHORIZATION_FAILED,
                Some("Authorization failed.".into()),
            )
        } else {
            match by_name.get(name.as_str()) {
                Some(r) => (r.error_code, r.error_message.clone()),
                None => (
                    code::KAFKA_STORAGE_ERROR,
                    Some("metadata shard unavailable".into()),
                ),
            }
        };
        out.push(
            CreatePartitionsTopicResult::default()
                .with_name(topic_name(&name))
                .with_error_code(error_code)
                .with_error_message(message.map(str_bytes)),
        );
    }
    req.respond(&CreatePartitionsResponse::default().with_results(out))
}
