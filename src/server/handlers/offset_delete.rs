//! OffsetDelete, version 0: removes committed offsets of topics the group does not
//! subscribe to (GROUP_SUBSCRIBED_TO_TOPIC for those it does).

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::{OffsetDeleteRequest, OffsetDeleteResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let mut request: OffsetDeleteRequest = req.decode_body()?;
    super::dedupe::unique_offset_deletes(&mut request.topics);
    let group_id = request.group_id.to_string();
    if !ctx.allowed(op::DELETE, resource::GROUP, &group_id) {
        let refused =
            OffsetDeleteResponse::default().with_error_code(code::GROUP_AUTHORIZATION_FAILED);
        return req.respond(&refused);
    }
    let response = match ctx
        .shard
        .route_group(&group_id, GroupOp::OffsetDelete(request))
        .await
    {
        Some(GroupReply::OffsetDelete(r)) => r,
        _ => OffsetDeleteResponse::default().with_error_code(code::COORDINATOR_NOT_AVAILABLE),
    };
    req.respond(&response)
}
