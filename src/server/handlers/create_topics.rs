//! CreateTopics, versions 2-7, and topic auto-creation.
//!
//! Topic changes go to shard 0, the only metadata writer, which validates, persists and
//! broadcasts them before answering.

use super::{Ctx, Request, RequestError, str_bytes, topic_name, topic_str};
use crate::protocol::code;
use crate::shard::messages::{NewTopic, ShardReply, ShardRequest, TopicResult};
use bytes::Bytes;
use kafka_protocol::messages::create_topics_response::CreatableTopicResult;
use kafka_protocol::messages::{CreateTopicsRequest, CreateTopicsResponse};
use std::collections::BTreeMap;

/// The shard that writes metadata.
pub const META_SHARD: usize = 0;

async fn create(ctx: &Ctx, topics: Vec<NewTopic>, validate_only: bool) -> Vec<TopicResult> {
    let names: Vec<String> = topics.iter().map(|t| t.name.clone()).collect();
    let req = ShardRequest::CreateTopics {
        topics,
        validate_only,
    };
    match ctx.shard.call(META_SHARD, req).await {
        Some(ShardReply::CreateTopics(results)) => results,
        _ => names
            .into_iter()
            .map(|name| TopicResult {
                name,
                error_code: code::KAFKA_STORAGE_ERROR,
                error_message: Some("metadata shard unavailable".into()),
                partitions: -1,
                id: String::new(),
            })
            .collect(),
    }
}

/// Creates `names` with the broker defaults (`num.partitions`, no overrides). Losing a
/// race with another creator is fine: the topic exists either way.
pub async fn auto_create(ctx: &Ctx, names: Vec<String>) {
    let topics = names
        .into_iter()
        .map(|name| NewTopic {
            name,
            partitions: -1,
            replication_factor: -1,
            assignments: None,
            configs: BTreeMap::new(),
        })
        .collect();
    for r in create(ctx, topics, false).await {
        if r.error_code != code::NONE && r.error_code != code::TOPIC_ALREADY_EXISTS {
            tracing::warn!(
                "auto-creating topic {} failed: {:?}",
                r.name,
                r.error_message
            );
        }
    }
}

/// A topic's manual assignments in partition order, checked as Kafka checks the request:
/// with them, the partition count and replication factor must be -1, and the partitions
/// must be numbered 0, 1, ... once each.
fn manual_assignments(
    t: &kafka_protocol::messages::create_topics_request::CreatableTopic,
) -> Result<Option<Vec<Vec<i32>>>, (i16, String)> {
    if t.assignments.is_empty() {
        return Ok(None);
    }
    if t.num_partitions != -1 || t.replication_factor != -1 {
        return Err((
            code::INVALID_REQUEST,
            "Both numPartitions or replicationFactor and replicasAssignments were set. Both \
             cannot be used at the same time."
                .into(),
        ));
    }
    let mut by_index: BTreeMap<i32, Vec<i32>> = BTreeMap::new();
    for a in &t.assignments {
        let replicas = a.broker_ids.iter().map(|b| b.0).collect();
        if by_index.insert(a.partition_index, replicas).is_some() {
            return Err((
                code::INVALID_REPLICA_ASSIGNMENT,
                format!("partition {} is assigned twice", a.partition_index),
            ));
        }
    }
    let consecutive = by_index.keys().copied().eq(0..(by_index.len() as i32));
    if !consecutive {
        return Err((
            code::INVALID_REPLICA_ASSIGNMENT,
            "partitions must be numbered 0, 1, ... with one assignment each".into(),
        ));
    }
    Ok(Some(by_index.into_values().collect()))
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: CreateTopicsRequest = req.decode_body()?;
    // Topics named twice, or with a config that has no value, are refused as a whole and
    // never reach the metadata writer (Kafka answers them without creating anything).
    let mut seen: BTreeMap<String, usize> = BTreeMap::new();
    for t in &request.topics {
        *seen.entry(topic_str(&t.name)).or_default() += 1;
    }
    let mut refused: BTreeMap<String, (i16, String)> = BTreeMap::new();
    let mut topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = topic_str(&t.name);
        if seen.get(&name).copied().unwrap_or(0) > 1 {
            refused.insert(
                name,
                (
                    code::INVALID_REQUEST,
                    "duplicate topic name in request".into(),
                ),
            );
            continue;
        }
        if !ctx.may_create_topic(&name) {
            refused.insert(
                name,
                (
                    code::TOPIC_AUTHORIZATION_FAILED,
                    "Authorization failed.".into(),
                ),
            );
            continue;
        }
        let mut configs = BTreeMap::new();
        let mut null_config = None;
        for c in &t.configs {
            match &c.value {
                Some(v) => {
                    configs.insert(c.name.as_str().to_string(), v.as_str().to_string());
                }
                None => null_config = Some(c.name.as_str().to_string()),
            }
        }
        if let Some(key) = null_config {
            refused.insert(
                name,
                (code::INVALID_CONFIG, format!("config {key} has no value")),
            );
            continue;
        }
        let assignments = match manual_assignments(t) {
            Ok(a) => a,
            Err(refusal) => {
                refused.insert(name, refusal);
                continue;
            }
        };
        topics.push(NewTopic {
            name,
            partitions: t.num_partitions,
            replication_factor: t.replication_factor,
            assignments,
            configs,
        });
    }
    let created = if topics.is_empty() {
        Vec::new()
    } else {
        create(ctx, topics, request.validate_only).await
    };
    let defaults = ctx.shard.config.num_partitions;
    let mut answered = std::collections::BTreeSet::new();
    let mut out_topics = Vec::with_capacity(request.topics.len());
    for t in &request.topics {
        let name = topic_str(&t.name);
        if !answered.insert(name.clone()) {
            continue;
        }
        let out = if let Some((error, message)) = refused.get(&name) {
            CreatableTopicResult::default()
                .with_name(topic_name(&name))
                .with_error_code(*error)
                .with_error_message(Some(str_bytes(message.clone())))
        } else if let Some(r) = created.iter().find(|r| r.name == name) {
            let mut out = CreatableTopicResult::default()
                .with_name(topic_name(&r.name))
                .with_error_code(r.error_code)
                .with_error_message(r.error_message.clone().map(str_bytes));
            if out.error_code == code::NONE {
                let id = uuid::Uuid::parse_str(&r.id).unwrap_or_default();
                let partitions = if r.partitions > 0 {
                    r.partitions
                } else {
                    defaults
                };
                let rf = match t.replication_factor {
                    -1 if ctx.shard.meta().meta.cluster.is_some() => {
                        ctx.shard.config.cluster.default_replication_factor
                    }
                    -1 => 1,
                    rf => rf,
                };
                out = out
                    .with_topic_id(id)
                    .with_num_partitions(partitions)
                    .with_replication_factor(rf);
            }
            out
        } else {
            CreatableTopicResult::default()
                .with_name(topic_name(&name))
                .with_error_code(code::UNKNOWN_SERVER_ERROR)
        };
        out_topics.push(out);
    }
    req.respond(&CreateTopicsResponse::default().with_topics(out_topics))
}
