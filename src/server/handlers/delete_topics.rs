//! DeleteTopics, versions 1-6 (by name; v6 deletion by topic id is answered
//! UNKNOWN_TOPIC_ID).

use super::{Ctx, Request, RequestError, str_bytes, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::messages::{ShardReply, ShardRequest};
use bytes::Bytes;
use kafka_protocol::messages::delete_topics_response::DeletableTopicResult;
use kafka_protocol::messages::{DeleteTopicsRequest, DeleteTopicsResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DeleteTopicsRequest = req.decode_body()?;
    let mut names: Vec<String> = request.topic_names.iter().map(topic_str).collect();
    let mut by_id = Vec::new();
    for t in &request.topics {
        match &t.name {
            Some(n) => names.push(topic_str(n)),
            None => by_id.push(t.topic_id),
        }
    }
    // Each topic is deleted and answered once, however often it is named.
    let names = super::dedupe::unique(names);
    let by_id = super::dedupe::unique(by_id);
    let (names, denied): (Vec<String>, Vec<String>) = names
        .into_iter()
        .partition(|n| ctx.allowed(op::DELETE, resource::TOPIC, n));
    let results = match ctx
        .shard
        .call(
            super::create_topics::META_SHARD,
            ShardRequest::DeleteTopics(names.clone()),
        )
        .await
    {
        Some(ShardReply::DeleteTopics(r)) => r,
        _ => Vec::new(),
    };
    let mut responses: Vec<DeletableTopicResult> = results
        .into_iter()
        .map(|r| {
            DeletableTopicResult::default()
                .with_name(Some(topic_name(&r.name)))
                .with_topic_id(uuid::Uuid::parse_str(&r.id).unwrap_or_default())
                .with_error_code(r.error_code)
                .with_error_message(r.error_message.map(str_bytes))
        })
        .collect();
    if responses.len() != names.len() {
        responses = names
            .iter()
            .map(|n| {
                DeletableTopicResult::default()
                    .with_name(Some(topic_name(n)))
                    .with_error_code(code::KAFKA_STORAGE_ERROR)
            })
            .collect();
    }
    for name in denied {
        responses.push(
            DeletableTopicResult::default()
                .with_name(Some(topic_name(&name)))
                .with_error_code(code::TOPIC_AUTHORIZATION_FAILED)
                .with_error_message(Some(str_bytes("Authorization failed."))),
        );
    }
    for id in by_id {
        responses.push(
            DeletableTopicResult::default()
                .with_topic_id(id)
                .with_error_code(code::UNKNOWN_TOPIC_ID),
        );
    }
    req.respond(&DeleteTopicsResponse::default().with_responses(responses))
}
