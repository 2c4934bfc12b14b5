//! DescribeConfigs, versions 1-4 (the `kafka-protocol` crate has no v0).
//!
//! TOPIC resources list every topic config the broker knows: an override with source
//! DYNAMIC_TOPIC_CONFIG, else the broker's value with STATIC_BROKER_CONFIG (set in the
//! broker's configuration) or DEFAULT_CONFIG (built in). BROKER resources (named by this
//! broker's id, or empty for the defaults) list the broker settings, read-only, as
//! STATIC_BROKER_CONFIG. Answered from this shard's copy of the metadata.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::config::describe::{self, TopicEntry};
use crate::protocol::code;
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

/// Kafka's ConfigResource.Type.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's ConfigSource.
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
const STATIC_BROKER_CONFIG: i8 = 4;
const DEFAULT_CONFIG: i8 = 5;

struct Want {
    synonyms: bool,
    docs: bool,
}

fn synonym(name: &str, value: &str, source: i8) -> DescribeConfigsSynonym {
    DescribeConfigsSynonym::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_source(source)
}

fn topic_config(e: &TopicEntry, want: &Want) -> DescribeConfigsResourceResult {
    let broker_source = if e.builtin {
        DEFAULT_CONFIG
    } else {
        STATIC_BROKER_CONFIG
    };
    let source = if e.overridden {
        DYNAMIC_TOPIC_CONFIG
    } else {
        broker_source
    };
    let mut synonyms = Vec::new();
    if want.synonyms {
        if e.overridden {
            synonyms.push(synonym(e.name, &e.value, DYNAMIC_TOPIC_CONFIG));
        }
        // A config with no broker setting behind it has its built-in default as synonym.
        let (name, source) = if e.broker_key.is_empty() {
            (e.name, DEFAULT_CONFIG)
        } else {
            (e.broker_key, broker_source)
        };
        synonyms.push(synonym(name, &e.broker_value, source));
    }
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(e.name))
        .with_value(Some(str_bytes(e.value.clone())))
        .with_read_only(false)
        .with_config_source(source)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(e.config_type)
        .with_documentation(want.docs.then(|| str_bytes(e.doc)))
}

fn broker_config(name: &str, value: String, want: &Want) -> DescribeConfigsResourceResult {
    let synonyms = if want.synonyms {
        vec![synonym(name, &value, STATIC_BROKER_CONFIG)]
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(true)
        .with_config_source(STATIC_BROKER_CONFIG)
        .with_is_sensitive(false)
        .with_synonyms(synonyms)
        .with_config_type(2)
}

/// A null or empty key list asks for everything.
fn wanted(keys: &Option<Vec<kafka_protocol::protocol::StrBytes>>, name: &str) -> bool {
    match keys {
        Some(keys) if !keys.is_empty() => keys.iter().any(|k| k.as_str() == name),
        _ => true,
    }
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DescribeConfigsRequest = req.decode_body()?;
    let want = Want {
        synonyms: request.include_synonyms,
        docs: request.include_documentation,
    };
    let meta = ctx.shard.meta();
    let node = meta.node_id();
    let mut results = Vec::with_capacity(request.resources.len());
    for r in &request.resources {
        let name = r.resource_name.as_str();
        let mut out = DescribeConfigsResult::default()
            .with_resource_type(r.resource_type)
            .with_resource_name(r.resource_name.clone());
        let fail = |out: DescribeConfigsResult, c: i16, m: String| {
            out.with_error_code(c)
                .with_error_message(Some(str_bytes(m)))
        };
        out = match r.resource_type {
            RESOURCE_TOPIC => match meta.meta.topics.get(name) {
                Some(t) => {
                    let configs = describe::topic_entries(&ctx.shard.config.log, &t.configs)
                        .iter()
                        .filter(|e| wanted(&r.configuration_keys, e.name))
                        .map(|e| topic_config(e, &want))
                        .collect();
                    out.with_configs(configs)
                }
                None if crate::shard::meta::validate_topic_name(name).is_err() => fail(
                    out,
                    code::INVALID_TOPIC_EXCEPTION,
                    format!("invalid topic name {name:?}"),
                ),
                None => fail(
                    out,
                    code::UNKNOWN_TOPIC_OR_PARTITION,
                    format!("topic {name} does not exist"),
                ),
            },
            RESOURCE_BROKER if name.is_empty() || name.parse::<i32>().ok() == Some(node) => {
                let configs = describe::broker_entries(&ctx.shard.config)
                    .into_iter()
                    .filter(|(k, _)| wanted(&r.configuration_keys, k))
                    .map(|(k, v)| broker_config(k, v, &want))
                    .collect();
                out.with_configs(configs)
            }
            RESOURCE_BROKER => fail(
                out,
                code::INVALID_REQUEST,
                format!("this is broker {node}; ask broker {name} for its configs"),
            ),
            other => fail(
                out,
                code::INVALID_REQUEST,
                format!("config resource type {other} is not supported"),
            ),
        };
        results.push(out);
    }
    req.respond(&DescribeConfigsResponse::default().with_results(results))
}
