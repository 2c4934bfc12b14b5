//! AlterConfigs (versions 0-2) and IncrementalAlterConfigs (versions 0-1, SET, DELETE,
//! APPEND, SUBTRACT) of TOPIC resources.
//!
//! Changes go to shard 0, the metadata writer, which checks them with CreateTopics' rules,
//! persists them (or, in a cluster, commits them to the metadata log) and has every shard
//! give its open logs the new settings before answering. BROKER resources (`""` for the
//! cluster-wide defaults, or a broker id) change the dynamic broker configs
//! (`config::dynamic`) the same way.

use super::describe_configs::{RESOURCE_BROKER, RESOURCE_TOPIC};
use super::{Ctx, Request, RequestError, str_bytes};
use crate::config::topic::ConfigOp;
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::server::handlers::create_topics::META_SHARD;
use crate::shard::messages::{
    BrokerConfigChange, ConfigChange, ConfigEdit, ShardReply, ShardRequest,
};
use bytes::Bytes;
use kafka_protocol::messages::{
    AlterConfigsRequest, AlterConfigsResponse, IncrementalAlterConfigsRequest,
    IncrementalAlterConfigsResponse, alter_configs_response as ac,
    incremental_alter_configs_response as iac,
};
use kafka_protocol::protocol::StrBytes;
use std::collections::{BTreeMap, BTreeSet};

/// One resource's answer.
struct Answer {
    resource_type: i8,
    name: StrBytes,
    error_code: i16,
    message: Option<String>,
}

/// A resource as the request gave it: its type, name, and the change if it could be read.
type Parsed = (i8, StrBytes, Result<ConfigEdit, (i16, String)>);

/// Checks the resources that are not topic changes, sends the rest to shard 0, and
/// answers every resource once, in request order.
async fn alter(ctx: &Ctx, parsed: Vec<Parsed>, validate_only: bool) -> Vec<Answer> {
    let mut seen = BTreeMap::<(i8, String), usize>::new();
    for (t, name, _) in &parsed {
        *seen.entry((*t, name.to_string())).or_default() += 1;
    }
    let mut answers = Vec::with_capacity(parsed.len());
    let mut changes = Vec::new();
    let mut sent = Vec::new();
    let mut broker_changes = Vec::new();
    let mut broker_sent = Vec::new();
    for (resource_type, name, edit) in parsed {
        let mut a = Answer {
            resource_type,
            name: name.clone(),
            error_code: code::NONE,
            message: None,
        };
        let refuse = |a: &mut Answer, c: i16, m: &str| {
            a.error_code = c;
            a.message = Some(m.to_string());
        };
        if seen
            .get(&(resource_type, name.to_string()))
            .copied()
            .unwrap_or(0)
            > 1
        {
            refuse(
                &mut a,
                code::INVALID_REQUEST,
                "resource named more than once",
            );
        } else if resource_type == RESOURCE_TOPIC
            && !ctx.allowed(op::ALTER_CONFIGS, resource::TOPIC, name.as_str())
        {
            refuse(
                &mut a,
                code::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.",
            );
        } else if resource_type != RESOURCE_TOPIC
            && !ctx.allowed(op::ALTER_CONFIGS, resource::CLUSTER, resource::CLUSTER_NAME)
        {
            refuse(
                &mut a,
                code::CLUSTER_AUTHORIZATION_FAILED,
                "Authorization failed.",
            );
        } else {
            match (resource_type, edit) {
                (_, Err((c, m))) => refuse(&mut a, c, &m),
                (RESOURCE_TOPIC, Ok(edit)) => {
                    sent.push(answers.len());
                    changes.push(ConfigChange {
                        topic: name.to_string(),
                        edit,
                    });
                }
                (RESOURCE_BROKER, Ok(edit)) => match broker_resource(name.as_str()) {
                    Some(broker) => {
                        broker_sent.push(answers.len());
                        broker_changes.push(BrokerConfigChange { broker, edit });
                    }
                    None => refuse(
                        &mut a,
                        code::INVALID_REQUEST,
                        &format!("broker resource name {name:?} is not a broker id"),
                    ),
                },
                (other, Ok(_)) => refuse(
                    &mut a,
                    code::INVALID_REQUEST,
                    &format!("config resource type {other} is not supported"),
                ),
            }
        }
        answers.push(a);
    }
    if !broker_changes.is_empty() {
        let req = ShardRequest::AlterBrokerConfigs {
            changes: broker_changes,
            validate_only,
        };
        let results = match ctx.shard.call(META_SHARD, req).await {
            Some(ShardReply::AlterBrokerConfigs(results)) => results,
            _ => Vec::new(),
        };
        for (k, i) in broker_sent.into_iter().enumerate() {
            if let Some(a) = answers.get_mut(i) {
                let (c, m) = results.get(k).cloned().unwrap_or((
                    code::KAFKA_STORAGE_ERROR,
                    Some("metadata shard unavailable".into()),
                ));
                a.error_code = c;
                a.message = m;
            }
        }
    }
    if changes.is_empty() {
        return answers;
    }
    let req = ShardRequest::AlterTopicConfigs {
        changes,
        validate_only,
    };
    let results = match ctx.shard.call(META_SHARD, req).await {
        Some(ShardReply::AlterTopicConfigs(results)) => results,
        _ => Vec::new(),
    };
    for (k, i) in sent.into_iter().enumerate() {
        if let Some(a) = answers.get_mut(i) {
            match results.get(k) {
                Some(r) => {
                    a.error_code = r.error_code;
                    a.message = r.error_message.clone();
                }
                None => {
                    a.error_code = code::KAFKA_STORAGE_ERROR;
                    a.message = Some("metadata shard unavailable".into());
                }
            }
        }
    }
    answers
}

/// The broker a BROKER resource names: `Some(None)` for `""` (the cluster-wide defaults),
/// `Some(Some(id))` for a broker id, `None` for a name that is neither.
fn broker_resource(name: &str) -> Option<Option<i32>> {
    if name.is_empty() {
        return Some(None);
    }
    name.parse::<i32>().ok().filter(|id| *id >= 0).map(Some)
}

/// A config key named twice in one resource: Kafka refuses the resource.
fn duplicate_key<'a>(mut names: impl Iterator<Item = &'a str>) -> Option<String> {
    let mut seen = BTreeSet::new();
    names.find(|n| !seen.insert(*n)).map(str::to_string)
}

fn duplicate(key: String) -> (i16, String) {
    (
        code::INVALID_REQUEST,
        format!("config {key} is named more than once"),
    )
}

pub async fn handle_alter(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: AlterConfigsRequest = req.decode_body()?;
    let parsed = request
        .resources
        .iter()
        .map(|r| {
            let edit = (|| {
                if let Some(k) = duplicate_key(r.configs.iter().map(|c| c.name.as_str())) {
                    return Err(duplicate(k));
                }
                let mut all = BTreeMap::new();
                for c in &r.configs {
                    let Some(v) = &c.value else {
                        return Err((
                            code::INVALID_CONFIG,
                            format!("config {} has no value", c.name.as_str()),
                        ));
                    };
                    all.insert(c.name.to_string(), v.to_string());
                }
                Ok(ConfigEdit::Replace(all))
            })();
            (r.resource_type, r.resource_name.clone(), edit)
        })
        .collect();
    let responses = alter(ctx, parsed, request.validate_only)
        .await
        .into_iter()
        .map(|a| {
            ac::AlterConfigsResourceResponse::default()
                .with_resource_type(a.resource_type)
                .with_resource_name(a.name)
                .with_error_code(a.error_code)
                .with_error_message(a.message.map(str_bytes))
        })
        .collect();
    req.respond(&AlterConfigsResponse::default().with_responses(responses))
}

pub async fn handle_incremental(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: IncrementalAlterConfigsRequest = req.decode_body()?;
    let parsed = request
        .resources
        .iter()
        .map(|r| {
            let edit = (|| {
                if let Some(k) = duplicate_key(r.configs.iter().map(|c| c.name.as_str())) {
                    return Err(duplicate(k));
                }
                let mut ops = Vec::with_capacity(r.configs.len());
                for c in &r.configs {
                    let Some(op) = ConfigOp::from_wire(c.config_operation) else {
                        return Err((
                            code::INVALID_REQUEST,
                            format!("unknown config operation {}", c.config_operation),
                        ));
                    };
                    ops.push((
                        c.name.to_string(),
                        op,
                        c.value.as_ref().map(|v| v.to_string()),
                    ));
                }
                Ok(ConfigEdit::Ops(ops))
            })();
            (r.resource_type, r.resource_name.clone(), edit)
        })
        .collect();
    let responses = alter(ctx, parsed, request.validate_only)
        .await
        .into_iter()
        .map(|a| {
            iac::AlterConfigsResourceResponse::default()
                .with_resource_type(a.resource_type)
                .with_resource_name(a.name)
                .with_error_code(a.error_code)
                .with_error_message(a.message.map(str_bytes))
        })
        .collect();
    req.respond(&IncrementalAlterConfigsResponse::default().with_responses(responses))
}
