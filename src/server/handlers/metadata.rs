//! Metadata, versions 0-12.
//!
//! A broker alone (node 0) leads every partition; in a cluster the brokers, leaders, epochs,
//! replicas and ISR come from the applied metadata log. Unknown topics are created on the fly when
//! `auto.create.topics.enable` is set and the client allows it (v4+ has the flag; older
//! versions always allow it, as in Kafka).

use super::{Ctx, Request, RequestError, str_bytes, topic_name, topic_str};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::meta::{is_internal, validate_topic_name};
use bytes::Bytes;
use kafka_protocol::messages::metadata_response::{
    MetadataResponseBroker, MetadataResponsePartition, MetadataResponseTopic,
};
use kafka_protocol::messages::{BrokerId, MetadataRequest, MetadataResponse};

pub const NODE_ID: i32 = 0;
pub const CLUSTER_ID: &str = "ringbroker";

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: MetadataRequest = req.decode_body()?;
    let allow_create = ctx.shard.config.auto_create_topics_enable
        && (req.version < 4 || request.allow_auto_topic_creation);

    // `None` (or, before v1, an empty list) asks for every topic.
    let wanted: Option<Vec<String>> = match &request.topics {
        None => None,
        Some(t) if t.is_empty() && req.version == 0 => None,
        Some(t) => {
            // Each topic is answered once, however often it is named.
            let mut seen = std::collections::HashSet::new();
            Some(
                t.iter()
                    .filter_map(|t| t.name.as_ref().map(topic_str))
                    .filter(|n| seen.insert(n.clone()))
                    .collect(),
            )
        }
    };

    if let Some(names) = &wanted {
        let meta = ctx.shard.meta();
        let missing: Vec<String> = names
            .iter()
            .filter(|n| {
                !meta.topics.contains_key(*n) && validate_topic_name(n).is_ok() && !is_internal(n)
            })
            .filter(|n| ctx.may_create_topic(n))
            .cloned()
            .collect();
        if allow_create && !missing.is_empty() {
            super::create_topics::auto_create(ctx, missing).await;
        }
    }

    let meta = ctx.shard.meta();
    // Listing every topic shows those the principal may describe; a topic named and not
    // describable is answered TOPIC_AUTHORIZATION_FAILED, whether it exists or not.
    let names: Vec<String> = match wanted {
        Some(n) => n,
        None => meta
            .topics
            .keys()
            .filter(|n| ctx.allowed(op::DESCRIBE, resource::TOPIC, n))
            .cloned()
            .collect(),
    };
    let topics = names
        .iter()
        .map(|name| {
            if !ctx.allowed(op::DESCRIBE, resource::TOPIC, name) {
                return MetadataResponseTopic::default()
                    .with_name(Some(topic_name(name)))
                    .with_error_code(code::TOPIC_AUTHORIZATION_FAILED);
            }
            let Some(t) = meta.topics.get(name) else {
                let error = if validate_topic_name(name).is_err() {
                    code::INVALID_TOPIC_EXCEPTION
                } else {
                    code::UNKNOWN_TOPIC_OR_PARTITION
                };
                return MetadataResponseTopic::default()
                    .with_name(Some(topic_name(name)))
                    .with_error_code(error);
            };
            let partitions = (0..t.partitions)
                .map(|p| {
                    let part = MetadataResponsePartition::default().with_partition_index(p);
                    let Some(a) = meta.assignment(name, p) else {
                        return part
                            .with_leader_id(BrokerId(NODE_ID))
                            .with_leader_epoch(0)
                            .with_replica_nodes(vec![BrokerId(NODE_ID)])
                            .with_isr_nodes(vec![BrokerId(NODE_ID)]);
                    };
                    let ids = |v: &[i32]| v.iter().map(|id| BrokerId(*id)).collect::<Vec<_>>();
                    let error = if a.leader < 0 {
                        code::LEADER_NOT_AVAILABLE
                    } else {
                        code::NONE
                    };
                    part.with_error_code(error)
                        .with_leader_id(BrokerId(a.leader))
                        .with_leader_epoch(a.leader_epoch)
                        .with_replica_nodes(ids(&a.replicas))
                        .with_isr_nodes(ids(&a.isr))
                })
                .collect();
            MetadataResponseTopic::default()
                .with_name(Some(topic_name(name)))
                .with_topic_id(t.id)
                .with_is_internal(is_internal(name))
                .with_partitions(partitions)
        })
        .collect();

    let (brokers, controller) = brokers(ctx, &meta.meta, false);
    let brokers = brokers
        .into_iter()
        .map(|b| {
            MetadataResponseBroker::default()
                .with_node_id(BrokerId(b.id))
                .with_host(str_bytes(b.host))
                .with_port(b.port)
        })
        .collect();
    let response = MetadataResponse::default()
        .with_brokers(brokers)
        .with_cluster_id(Some(str_bytes(CLUSTER_ID)))
        .with_controller_id(BrokerId(controller))
        .with_topics(topics);
    req.respond(&response)
}

/// A broker as Metadata and DescribeCluster list it.
pub struct BrokerAddress {
    pub id: i32,
    pub host: String,
    pub port: i32,
    pub fenced: bool,
}

/// The brokers clients may reach (with the fenced ones too when `with_fenced`) and the
/// controller's id: this broker alone as node 0, or the cluster's registered brokers.
pub fn brokers(
    ctx: &Ctx,
    meta: &crate::shard::meta::Metadata,
    with_fenced: bool,
) -> (Vec<BrokerAddress>, i32) {
    match &meta.cluster {
        None => (
            vec![BrokerAddress {
                id: NODE_ID,
                host: ctx.advertised_host.clone(),
                port: ctx.advertised_port,
                fenced: false,
            }],
            NODE_ID,
        ),
        Some(c) => {
            // Each broker at its address on the client's listener; a broker without that
            // listener is not listed (Kafka's rule: clients stay on one listener).
            let on_listener = |id: i32, fenced: bool| {
                let (host, port) = c.listed_address_on(id, &ctx.listener)?;
                Some(BrokerAddress {
                    id,
                    host,
                    port: i32::from(port),
                    fenced,
                })
            };
            let mut list: Vec<BrokerAddress> = c
                .brokers
                .keys()
                .filter_map(|id| on_listener(*id, false))
                .collect();
            if with_fenced {
                list.extend(c.fenced.keys().filter_map(|id| on_listener(*id, true)));
                list.sort_by_key(|b| b.id);
            }
            (list, c.controller.unwrap_or(-1))
        }
    }
}
