//! JoinGroup, versions 0-9 (v4+: MEMBER_ID_REQUIRED on the first join; v5+: static
//! members). The request waits on the coordinator shard until the rebalance completes.

use super::{Ctx, Request, RequestError};
use crate::group::state::join_error;
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::JoinGroupRequest;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: JoinGroupRequest = req.decode_body()?;
    let group_id = request.group_id.to_string();
    let member_id = request.member_id.to_string();
    if !ctx.allowed(op::READ, resource::GROUP, &group_id) {
        return req.respond(&join_error(code::GROUP_AUTHORIZATION_FAILED, &member_id));
    }
    let op = GroupOp::Join {
        req: request,
        version: req.version,
        client_id: req
            .header
            .client_id
            .as_ref()
            .map(|c| c.to_string())
            .unwrap_or_default(),
        client_host: ctx.client_host.clone(),
    };
    let response = match ctx.shard.route_group(&group_id, op).await {
        Some(GroupReply::Join(r)) => r,
        _ => join_error(code::COORDINATOR_NOT_AVAILABLE, &member_id),
    };
    req.respond(&response)
}
