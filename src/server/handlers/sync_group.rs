//! SyncGroup, versions 0-5: the leader hands in the assignment; every member gets its own.

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: SyncGroupRequest = req.decode_body()?;
    let group_id = request.group_id.to_string();
    if !ctx.allowed(op::READ, resource::GROUP, &group_id) {
        let refused =
            SyncGroupResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
        return req.respond(&refused);
    }
    let response = match ctx
        .shard
        .route_group(&group_id, GroupOp::Sync { req: request })
        .await
    {
        Some(GroupReply::Sync(r)) => r,
        _ => SyncGroupResponse::default().with_error_code(code::COORDINATOR_NOT_AVAILABLE),
    };
    req.respond(&response)
}
