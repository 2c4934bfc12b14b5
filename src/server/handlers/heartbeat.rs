//! Heartbeat, versions 0-4: keeps a member's session alive and tells it of a rebalance.

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::{HeartbeatRequest, HeartbeatResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: HeartbeatRequest = req.decode_body()?;
    let group_id = request.group_id.to_string();
    if !ctx.allowed(op::READ, resource::GROUP, &group_id) {
        let refused =
            HeartbeatResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
        return req.respond(&refused);
    }
    let op = GroupOp::Heartbeat {
        group: group_id.clone(),
        generation: request.generation_id,
        member_id: request.member_id.to_string(),
        instance_id: request.group_instance_id.as_ref().map(|s| s.to_string()),
    };
    let error = match ctx.shard.route_group(&group_id, op).await {
        Some(GroupReply::Heartbeat(c)) => c,
        _ => code::COORDINATOR_NOT_AVAILABLE,
    };
    req.respond(&HeartbeatResponse::default().with_error_code(error))
}
