//! DescribeGroups, versions 0-5: state, protocol and members of each group, asked of each
//! group's coordinator shard.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::group::{GroupOp, GroupReply};
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::shard::runtime::join_all;
use bytes::Bytes;
use kafka_protocol::messages::describe_groups_response::DescribedGroup;
use kafka_protocol::messages::{DescribeGroupsRequest, DescribeGroupsResponse, GroupId};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DescribeGroupsRequest = req.decode_body()?;
    let calls: Vec<_> = super::dedupe::unique(request.groups.iter().map(|g| g.to_string()))
        .into_iter()
        .map(|id| {
            Box::pin(async move {
                if !ctx.allowed(op::DESCRIBE, resource::GROUP, &id) {
                    return DescribedGroup::default()
                        .with_group_id(GroupId(str_bytes(id)))
                        .with_error_code(code::GROUP_AUTHORIZATION_FAILED);
                }
                match ctx
                    .shard
                    .route_group(&id, GroupOp::Describe(vec![id.clone()]))
                    .await
                {
                    Some(GroupReply::Describe(mut d)) if d.len() == 1 => d.remove(0),
                    _ => DescribedGroup::default()
                        .with_group_id(GroupId(str_bytes(id)))
                        .with_error_code(code::COORDINATOR_NOT_AVAILABLE),
                }
            })
        })
        .collect();
    let groups = join_all(calls).await;
    req.respond(&DescribeGroupsResponse::default().with_groups(groups))
}
