//! SyncGroup, versions 0-5: the leader hands in the assignment; every member gets its own.

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use bytes::Bytes;
use kafka_protocol::messages::{SyncGroupRequest, SyncGroupResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: SyncGroupRequest = req.decode_body()?;
    let group_id = request.group_id.to_string();
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
