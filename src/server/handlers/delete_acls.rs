//! DeleteAcls, versions 1-3: SECURITY_DISABLED without `authorizer.enabled`; else needs
//! ALTER on the cluster. Every binding matching a filter
//! is removed (durably, before the answer) and listed in that filter's result.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::protocol::code;
use crate::security::acl::{Acl, AclFilter, op, resource};
use bytes::Bytes;
use kafka_protocol::messages::delete_acls_response::{
    DeleteAclsFilterResult, DeleteAclsMatchingAcl,
};
use kafka_protocol::messages::{DeleteAclsRequest, DeleteAclsResponse};

fn matching(a: &Acl) -> DeleteAclsMatchingAcl {
    DeleteAclsMatchingAcl::default()
        .with_resource_type(a.resource_type)
        .with_resource_name(str_bytes(a.resource_name.as_str()))
        .with_pattern_type(a.pattern_type)
        .with_principal(str_bytes(a.principal.as_str()))
        .with_host(str_bytes(a.host.as_str()))
        .with_operation(a.operation)
        .with_permission_type(a.permission)
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DeleteAclsRequest = req.decode_body()?;
    let failed = |error: i16, message: Option<String>| {
        DeleteAclsFilterResult::default()
            .with_error_code(error)
            .with_error_message(message.map(str_bytes))
    };
    if !ctx.authorizer.enabled {
        let message = super::create_acls::NO_AUTHORIZER.to_string();
        let results = request
            .filters
            .iter()
            .map(|_| failed(code::SECURITY_DISABLED, Some(message.clone())))
            .collect();
        return req.respond(&DeleteAclsResponse::default().with_filter_results(results));
    }
    if !ctx.allowed(op::ALTER, resource::CLUSTER, resource::CLUSTER_NAME) {
        let results = request
            .filters
            .iter()
            .map(|_| failed(code::CLUSTER_AUTHORIZATION_FAILED, None))
            .collect();
        return req.respond(&DeleteAclsResponse::default().with_filter_results(results));
    }
    let filters: Vec<Result<AclFilter, String>> = request
        .filters
        .iter()
        .map(|f| {
            let filter = AclFilter {
                resource_type: f.resource_type_filter,
                resource_name: f.resource_name_filter.as_ref().map(|s| s.to_string()),
                pattern_type: f.pattern_type_filter,
                principal: f.principal_filter.as_ref().map(|s| s.to_string()),
                host: f.host_filter.as_ref().map(|s| s.to_string()),
                operation: f.operation,
                permission: f.permission_type,
            };
            filter.validate().map(|()| filter)
        })
        .collect();
    let removed = ctx
        .change_acls(|set| {
            filters
                .iter()
                .map(|f| match f {
                    Ok(filter) => {
                        let gone: Vec<Acl> = set
                            .acls
                            .iter()
                            .filter(|a| filter.matches(a))
                            .cloned()
                            .collect();
                        for a in &gone {
                            set.acls.remove(a);
                        }
                        Ok(gone)
                    }
                    Err(why) => Err(why.clone()),
                })
                .collect::<Vec<_>>()
        })
        .await;
    let results = match removed {
        Ok(per_filter) => per_filter
            .into_iter()
            .map(|r| match r {
                Ok(gone) => DeleteAclsFilterResult::default()
                    .with_matching_acls(gone.iter().map(matching).collect()),
                Err(why) => failed(code::INVALID_REQUEST, Some(why)),
            })
            .collect(),
        Err(e) => request
            .filters
            .iter()
            .map(|_| {
                failed(
                    code::KAFKA_STORAGE_ERROR,
                    Some(format!("cannot write the ACLs: {e}")),
                )
            })
            .collect(),
    };
    req.respond(&DeleteAclsResponse::default().with_filter_results(results))
}
