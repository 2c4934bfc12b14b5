//! FindCoordinator, versions 0-4: every group is coordinated by this broker (on the shard
//! that owns its `__consumer_offsets` partition, which the router finds per request).
//! v4 batches keys in `coordinator_keys`. Transaction coordinators do not exist yet.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::protocol::code;
use crate::server::handlers::metadata::NODE_ID;
use bytes::Bytes;
use kafka_protocol::messages::find_coordinator_response::Coordinator;
use kafka_protocol::messages::{BrokerId, FindCoordinatorRequest, FindCoordinatorResponse};

/// Key type 0: a consumer group; 1: a transactional id.
const KEY_TYPE_GROUP: i8 = 0;

fn lookup(key: &str, key_type: i8) -> (i16, Option<&'static str>) {
    if key_type != KEY_TYPE_GROUP {
        return (
            code::COORDINATOR_NOT_AVAILABLE,
            Some("only group coordinators are available"),
        );
    }
    if key.is_empty() {
        return (code::INVALID_GROUP_ID, Some("empty group id"));
    }
    (code::NONE, None)
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: FindCoordinatorRequest = req.decode_body()?;
    let host = str_bytes(ctx.advertised_host.clone());
    let port = ctx.advertised_port;
    let response = if req.version >= 4 {
        let coordinators = request
            .coordinator_keys
            .iter()
            .map(|key| {
                let (error, message) = lookup(key, request.key_type);
                let ok = error == code::NONE;
                Coordinator::default()
                    .with_key(key.clone())
                    .with_node_id(BrokerId(if ok { NODE_ID } else { -1 }))
                    .with_host(if ok { host.clone() } else { str_bytes("") })
                    .with_port(if ok { port } else { -1 })
                    .with_error_code(error)
                    .with_error_message(message.map(str_bytes))
            })
            .collect();
        FindCoordinatorResponse::default().with_coordinators(coordinators)
    } else {
        let (error, message) = lookup(&request.key, request.key_type);
        let ok = error == code::NONE;
        FindCoordinatorResponse::default()
            .with_error_code(error)
            .with_error_message(message.filter(|_| req.version >= 1).map(str_bytes))
            .with_node_id(BrokerId(if ok { NODE_ID } else { -1 }))
            .with_host(if ok { host } else { str_bytes("") })
            .with_port(if ok { port } else { -1 })
    };
    req.respond(&response)
}
