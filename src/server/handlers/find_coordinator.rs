//! FindCoordinator, versions 0-4. A broker alone coordinates every group and transactional
//! id (on the shard that owns its `__consumer_offsets` or `__transaction_state` partition,
//! which the router finds per request); in a cluster the coordinator is the leader of that
//! partition, wherever it is. v4 batches keys in `coordinator_keys`. The first lookup of a
//! transactional id creates `__transaction_state`.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::group::{OFFSETS_TOPIC, offsets_partition};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::txn::TXN_TOPIC;
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

/// Key type 0: a consumer group; 1: a transactional id.
const KEY_TYPE_GROUP: i8 = 0;
const KEY_TYPE_TRANSACTION: i8 = 1;

/// The coordinator of one key: its node, host and port, or an error and a message.
type Found = Result<(i32, String, i32), (i16, &'static str)>;

fn lookup(ctx: &Ctx, key: &str, key_type: i8) -> Found {
    let topic = match key_type {
        KEY_TYPE_GROUP => {
            if key.is_empty() {
                return Err((code::INVALID_GROUP_ID, "empty group id"));
            }
            if !ctx.allowed(op::DESCRIBE, resource::GROUP, key) {
                return Err((code::GROUP_AUTHORIZATION_FAILED, "Authorization failed."));
            }
            OFFSETS_TOPIC
        }
        KEY_TYPE_TRANSACTION => {
            if key.is_empty() {
                return Err((code::INVALID_REQUEST, "empty transactional id"));
            }
            if !ctx.allowed(op::DESCRIBE, resource::TRANSACTIONAL_ID, key) {
                return Err((
                    code::TRANSACTIONAL_ID_AUTHORIZATION_FAILED,
                    "Authorization failed.",
                ));
            }
            TXN_TOPIC
        }
        _ => return Err((code::INVALID_REQUEST, "unknown coordinator key type")),
    };
    let meta = ctx.shard.meta();
    let Some(cluster) = &meta.meta.cluster else {
        return Ok((
            meta.node_id(),
            ctx.advertised_host.clone(),
            ctx.advertised_port,
        ));
    };
    let Some(t) = meta.topics.get(topic) else {
        return Err((
            code::COORDINATOR_NOT_AVAILABLE,
            "the coordinator's topic is not created yet",
        ));
    };
    let leader = meta
        .assignment(topic, offsets_partition(key, t.partitions))
        .map(|a| a.leader)
        .unwrap_or(-1);
    match cluster.address_on(leader, &ctx.listener) {
        Some((host, port)) => Ok((leader, host, i32::from(port))),
        None => Err((
            code::COORDINATOR_NOT_AVAILABLE,
            "the coordinator's partition has no leader",
        )),
    }
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: FindCoordinatorRequest = req.decode_body()?;
    if request.key_type == KEY_TYPE_TRANSACTION {
        // Created on first use, as Kafka does (a refusal below tells the client to retry).
        ctx.shard.ensure_txn_topic().await;
    }
    let response = if req.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let c = Coordinator::default().with_key(key.clone());
                match lookup(ctx, key, request.key_type) {
                    Ok((node, host, port)) => c
                        .with_node_id(BrokerId(node))
                        .with_host(str_bytes(host))
                        .with_port(port),
                    Err((error, message)) => c
                        .with_node_id(BrokerId(-1))
                        .with_host(str_bytes(""))
                        .with_port(-1)
                        .with_error_code(error)
                        .with_error_message(Some(str_bytes(message))),
                }
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let r = FindCoordinatorResponse::default();
        match lookup(ctx, &request.key, request.key_type) {
            Ok((node, host, port)) => r
                .with_node_id(BrokerId(node))
                .with_host(str_bytes(host))
                .with_port(port),
            Err((error, message)) => r
                .with_error_code(error)
                .with_error_message(Some(message).filter(|_| req.version >= 1).map(str_bytes))
                .with_node_id(BrokerId(-1))
                .with_host(str_bytes(""))
                .with_port(-1),
        }
    };
    req.respond(&response)
}
