//! ListGroups, versions 0-4 (v4: filter by state): asks every shard for its groups.

use super::{Ctx, Request, RequestError};
use crate::group::{GroupOp, GroupReply};
use crate::security::acl::{op, resource};
use crate::shard::messages::{ShardReply, ShardRequest};
use crate::shard::runtime::join_all;
use bytes::Bytes;
use kafka_protocol::messages::{ListGroupsRequest, ListGroupsResponse};

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: ListGroupsRequest = req.decode_body()?;
    let states: Vec<String> = request
        .states_filter
        .iter()
        .map(|s| s.to_string())
        .collect();
    let calls: Vec<_> = (0..ctx.shard.nshards)
        .map(|s| {
            Box::pin(ctx.shard.call(
                s,
                ShardRequest::Group(Box::new(GroupOp::List(states.clone()))),
            ))
        })
        .collect();
    let mut groups = Vec::new();
    for reply in join_all(calls).await {
        if let Some(ShardReply::Group(Some(GroupReply::List(gs)))) = reply {
            groups.extend(gs);
        }
    }
    // Without DESCRIBE on the cluster, only the groups the principal may describe.
    if !ctx.allowed(op::DESCRIBE, resource::CLUSTER, resource::CLUSTER_NAME) {
        groups.retain(|g| ctx.allowed(op::DESCRIBE, resource::GROUP, g.group_id.as_str()));
    }
    req.respond(&ListGroupsResponse::default().with_groups(groups))
}
