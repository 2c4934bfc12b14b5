//! LeaveGroup, versions 0-5 (v3+: a batch of members, each with its own result).

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::{LeaveGroupRequest, LeaveGroupResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: LeaveGroupRequest = req.decode_body()?;
    let group_id = request.group_id.to_string();
    if !ctx.allowed(op::READ, resource::GROUP, &group_id) {
        let refused =
            LeaveGroupResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
        return req.respond(&refused);
    }
    let op = GroupOp::Leave {
        req: request,
        version: req.version,
    };
    let response = match ctx.shard.route_group(&group_id, op).await {
        Some(GroupReply::Leave(r)) => r,
        _ => LeaveGroupResponse::default().with_error_code(code::COORDINATOR_NOT_AVAILABLE),
    };
    req.respond(&response)
}
