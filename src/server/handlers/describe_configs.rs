//! DescribeConfigs, versions 1-4 (the `kafka-protocol` crate has no v0).
//!
//! TOPIC resources list every topic config the broker knows: an override with source
//! DYNAMIC_TOPIC_CONFIG, else the broker's value with the source of the layer it comes
//! from: DYNAMIC_BROKER_CONFIG (this broker's dynamic config), DYNAMIC_DEFAULT_BROKER_CONFIG
//! (the cluster-wide one), STATIC_BROKER_CONFIG (set in the broker's configuration) or
//! DEFAULT_CONFIG (built in); synonyms list every layer, most specific first. BROKER
//! resources (named by this broker's id, or empty for the cluster-wide defaults) list the
//! broker settings the same way; the dynamic ones are not read-only. Answered from this
//! shard's copy of the metadata.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::config::describe::{self, TopicEntry};
use crate::config::dynamic::{self, DynamicBrokerConfigs, Layers};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::describe_configs_response::{
    DescribeConfigsResourceResult, DescribeConfigsResult, DescribeConfigsSynonym,
};
use kafka_protocol::messages::{DescribeConfigsRequest, DescribeConfigsResponse};

/// Kafka's ConfigResource.Type.
pub const RESOURCE_TOPIC: i8 = 2;
pub const RESOURCE_BROKER: i8 = 4;

/// Kafka's ConfigSource (the broker layers' are in `config::dynamic`).
const DYNAMIC_TOPIC_CONFIG: i8 = 1;
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

fn topic_config(e: &TopicEntry, layers: &Layers, want: &Want) -> DescribeConfigsResourceResult {
    // A config with no broker setting behind it has its built-in default as synonym.
    let broker: Vec<(&str, String, i8)> = if e.broker_key.is_empty() {
        vec![(e.name, e.broker_value.clone(), DEFAULT_CONFIG)]
    } else {
        layers
            .synonyms(e.broker_key)
            .into_iter()
            .map(|(v, s)| (e.broker_key, v, s))
            .collect()
    };
    let source = if e.overridden {
        DYNAMIC_TOPIC_CONFIG
    } else {
        broker.first().map_or(DEFAULT_CONFIG, |b| b.2)
    };
    let mut synonyms = Vec::new();
    if want.synonyms {
        if e.overridden {
            synonyms.push(synonym(e.name, &e.value, DYNAMIC_TOPIC_CONFIG));
        }
        for (name, value, source) in &broker {
            synonyms.push(synonym(name, value, *source));
        }
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

fn broker_config(
    name: &str,
    value: String,
    layers: &Layers,
    want: &Want,
) -> DescribeConfigsResourceResult {
    let all = layers.synonyms(name);
    let source = all.first().map_or(DEFAULT_CONFIG, |s| s.1);
    let synonyms = if want.synonyms {
        all.iter().map(|(v, s)| synonym(name, v, *s)).collect()
    } else {
        Vec::new()
    };
    DescribeConfigsResourceResult::default()
        .with_name(str_bytes(name))
        .with_value(Some(str_bytes(value)))
        .with_read_only(!dynamic::is_dynamic(name))
        .with_config_source(source)
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
    let static_config = &ctx.shard.config;
    let dynamic_configs = &meta.meta.broker_configs;
    let layers = Layers::new(static_config, dynamic_configs, Some(node));
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
        let topic_denied = r.resource_type == RESOURCE_TOPIC
            && !ctx.allowed(op::DESCRIBE_CONFIGS, resource::TOPIC, name);
        let cluster_denied = r.resource_type != RESOURCE_TOPIC
            && !ctx.allowed(
                op::DESCRIBE_CONFIGS,
                resource::CLUSTER,
                resource::CLUSTER_NAME,
            );
        out = match r.resource_type {
            _ if topic_denied => fail(
                out,
                code::TOPIC_AUTHORIZATION_FAILED,
                "Authorization failed.".into(),
            ),
            _ if cluster_denied => fail(
                out,
                code::CLUSTER_AUTHORIZATION_FAILED,
                "Authorization failed.".into(),
            ),
            RESOURCE_TOPIC => match meta.meta.topics.get(name) {
                Some(t) => {
                    let configs = describe::topic_entries(&meta.config.log, &t.configs)
                        .iter()
                        .filter(|e| wanted(&r.configuration_keys, e.name))
                        .map(|e| topic_config(e, &layers, &want))
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
            RESOURCE_BROKER if name.is_empty() => {
                // The cluster-wide resource: no per-broker layer.
                let cluster_wide = DynamicBrokerConfigs {
                    default: dynamic_configs.default.clone(),
                    brokers: Default::default(),
                };
                let config = cluster_wide.effective(static_config, node);
                let layers = Layers::new(static_config, dynamic_configs, None);
                let configs = describe::broker_entries(&config)
                    .into_iter()
                    .filter(|(k, _)| wanted(&r.configuration_keys, k))
                    .map(|(k, v)| broker_config(k, v, &layers, &want))
                    .collect();
                out.with_configs(configs)
            }
            RESOURCE_BROKER if name.parse::<i32>().ok() == Some(node) => {
                let configs = describe::broker_entries(&meta.config)
                    .into_iter()
                    .filter(|(k, _)| wanted(&r.configuration_keys, k))
                    .map(|(k, v)| broker_config(k, v, &layers, &want))
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
