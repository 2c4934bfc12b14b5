//! DeleteGroups, versions 0-2: deletes empty groups and their committed offsets.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::runtime::join_all;
use bytes::Bytes;
use kafka_protocol::messages::delete_groups_response::DeletableGroupResult;
use kafka_protocol::messages::{DeleteGroupsRequest, DeleteGroupsResponse, GroupId};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DeleteGroupsRequest = req.decode_body()?;
    let calls: Vec<_> = super::dedupe::unique(request.groups_names.iter().map(|g| g.to_string()))
        .into_iter()
        .map(|id| {
            Box::pin(async move {
                if !ctx.allowed(op::DELETE, resource::GROUP, &id) {
                    return (id, code::GROUP_AUTHORIZATION_FAILED);
                }
                let c = match ctx
                    .shard
                    .route_group(&id, GroupOp::Delete(vec![id.clone()]))
                    .await
                {
                    Some(GroupReply::Delete(r)) => r.first().map(|(_, c)| *c),
                    _ => None,
                };
                (id, c.unwrap_or(code::COORDINATOR_NOT_AVAILABLE))
            })
        })
        .collect();
    let results = join_all(calls)
        .await
        .into_iter()
        .map(|(id, c)| {
            DeletableGroupResult::default()
                .with_group_id(GroupId(str_bytes(id)))
                .with_error_code(c)
        })
        .collect();
    req.respond(&DeleteGroupsResponse::default().with_results(results))
}
