//! DescribeAcls, versions 1-3: SECURITY_DISABLED without `authorizer.enabled`; else needs
//! DESCRIBE on the cluster. The bindings matching the
//! filter, grouped by resource.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::protocol::code;
use crate::security::acl::{Acl, AclFilter, op, resource};
use bytes::Bytes;
use kafka_protocol::messages::describe_acls_response::{AclDescription, DescribeAclsResource};
use kafka_protocol::messages::{DescribeAclsRequest, DescribeAclsResponse};
use std::collections::BTreeMap;

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let r: DescribeAclsRequest = req.decode_body()?;
    let refuse = |error: i16, message: Option<String>| {
        DescribeAclsResponse::default()
            .with_error_code(error)
            .with_error_message(message.map(str_bytes))
    };
    if !ctx.authorizer.enabled {
        let message = super::create_acls::NO_AUTHORIZER.to_string();
        return req.respond(&refuse(code::SECURITY_DISABLED, Some(message)));
    }
    if !ctx.allowed(op::DESCRIBE, resource::CLUSTER, resource::CLUSTER_NAME) {
        return req.respond(&refuse(code::CLUSTER_AUTHORIZATION_FAILED, None));
    }
    let filter = AclFilter {
        resource_type: r.resource_type_filter,
        resource_name: r.resource_name_filter.map(|s| s.to_string()),
        pattern_type: r.pattern_type_filter,
        principal: r.principal_filter.map(|s| s.to_string()),
        host: r.host_filter.map(|s| s.to_string()),
        operation: r.operation,
        permission: r.permission_type,
    };
    if let Err(why) = filter.validate() {
        return req.respond(&refuse(code::INVALID_REQUEST, Some(why)));
    }
    let acls = ctx.acls();
    let mut by_resource: BTreeMap<(i8, &str, i8), Vec<&Acl>> = BTreeMap::new();
    for acl in acls.acls.iter().filter(|a| filter.matches(a)) {
        by_resource
            .entry((acl.resource_type, &acl.resource_name, acl.pattern_type))
            .or_default()
            .push(acl);
    }
    let resources = by_resource
        .into_iter()
        .map(|((rt, name, pt), list)| {
            DescribeAclsResource::default()
                .with_resource_type(rt)
                .with_resource_name(str_bytes(name))
                .with_pattern_type(pt)
                .with_acls(
                    list.into_iter()
                        .map(|a| {
                            AclDescription::default()
                                .with_principal(str_bytes(a.principal.as_str()))
                                .with_host(str_bytes(a.host.as_str()))
                                .with_operation(a.operation)
                                .with_permission_type(a.permission)
                        })
                        .collect(),
                )
        })
        .collect();
    req.respond(&DescribeAclsResponse::default().with_resources(resources))
}
