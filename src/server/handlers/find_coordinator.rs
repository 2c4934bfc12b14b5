//! FindCoordinator, versions 0-4. A broker alone coordinates every group (on the shard that
//! owns its `__consumer_offsets` partition, which the router finds per request); in a
//! cluster the coordinator is the leader of that partition, wherever it is. v4 batches keys
//! in `coordinator_keys`. Transaction coordinators do not exist yet.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::group::{OFFSETS_TOPIC, offsets_partition};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

/// Key type 0: a consumer group; 1: a transactional id.
const KEY_TYPE_GROUP: i8 = 0;

/// The coordinator of one key: its node, host and port, or an error and a message.
type Found = Result<(i32, String, i32), (i16, &'static str)>;

fn lookup(ctx: &Ctx, key: &str, key_type: i8) -> Found {
    if key_type != KEY_TYPE_GROUP {
        return Err((
            code::COORDINATOR_NOT_AVAILABLE,
            "only group coordinators are available",
        ));
    }
    if key.is_empty() {
        return Err((code::INVALID_GROUP_ID, "empty group id"));
    }
    if !ctx.allowed(op::DESCRIBE, resource::GROUP, key) {
        return Err((code::GROUP_AUTHORIZATION_FAILED, "Authorization failed."));
    }
    let meta = ctx.shard.meta();
    let Some(cluster) = &meta.meta.cluster else {
        return Ok((
            meta.node_id(),
            ctx.advertised_host.clone(),
            ctx.advertised_port,
        ));
    };
    let Some(t) = meta.topics.get(OFFSETS_TOPIC) else {
        return Err((
            code::COORDINATOR_NOT_AVAILABLE,
            "the offsets topic is not created yet",
        ));
    };
    let leader = meta
        .assignment(OFFSETS_TOPIC, offsets_partition(key, t.partitions))
        .map(|a| a.leader)
        .unwrap_or(-1);
    match cluster.brokers.get(&leader) {
        Some((host, port)) => Ok((leader, host.clone(), i32::from(*port))),
        None => Err((
            code::COORDINATOR_NOT_AVAILABLE,
            "the group's offsets partition has no leader",
        )),
    }
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: FindCoordinatorRequest = req.decode_body()?;
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
