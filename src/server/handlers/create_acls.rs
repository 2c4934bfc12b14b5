//! CreateAcls, versions 1-3: SECURITY_DISABLED without `authorizer.enabled`, as Kafka
//! answers without an authorizer; else needs ALTER on the cluster. Each binding is checked and
//! answered on its own; the valid ones are added together and written durably before the
//! answer. Bindings already present are not doubled.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::protocol::code;
use crate::security::acl::{Acl, BINDINGS_MAX, op, resource};
use bytes::Bytes;
use kafka_protocol::messages::create_acls_response::AclCreationResult;
use kafka_protocol::messages::{CreateAclsRequest, CreateAclsResponse};

/// Kafka's answer to the ACL APIs of a broker without an authorizer.
pub const NO_AUTHORIZER: &str = "No Authorizer is configured.";

fn result(error: i16, message: Option<String>) -> AclCreationResult {
    AclCreationResult::default()
        .with_error_code(error)
        .with_error_message(message.map(str_bytes))
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: CreateAclsRequest = req.decode_body()?;
    if !ctx.authorizer.enabled {
        let results = request
            .creations
            .iter()
            .map(|_| result(code::SECURITY_DISABLED, Some(NO_AUTHORIZER.into())))
            .collect();
        return req.respond(&CreateAclsResponse::default().with_results(results));
    }
    if !ctx.allowed(op::ALTER, resource::CLUSTER, resource::CLUSTER_NAME) {
        let results = request
            .creations
            .iter()
            .map(|_| result(code::CLUSTER_AUTHORIZATION_FAILED, None))
            .collect();
        return req.respond(&CreateAclsResponse::default().with_results(results));
    }
    let mut checked: Vec<Result<Acl, String>> = request
        .creations
        .iter()
        .map(|c| {
            let acl = Acl {
                resource_type: c.resource_type,
                resource_name: c.resource_name.to_string(),
                pattern_type: c.resource_pattern_type,
                principal: c.principal.to_string(),
                host: c.host.to_string(),
                operation: c.operation,
                permission: c.permission_type,
            };
            acl.validate().map(|()| acl)
        })
        .collect();
    let valid: Vec<Acl> = checked
        .iter()
        .filter_map(|c| c.as_ref().ok().cloned())
        .collect();
    if !valid.is_empty() {
        let added = ctx
            .change_acls(|set| {
                let new = valid.iter().filter(|a| !set.acls.contains(*a)).count();
                if set.acls.len().saturating_add(new) > BINDINGS_MAX {
                    return false;
                }
                set.acls.extend(valid.iter().cloned());
                true
            })
            .await;
        let refusal = match added {
            Ok(true) => None,
            Ok(false) => Some(format!("more than {BINDINGS_MAX} ACL bindings")),
            Err(e) => Some(format!("cannot write the ACLs: {e}")),
        };
        if let Some(why) = refusal {
            for c in checked.iter_mut() {
                if c.is_ok() {
                    *c = Err(why.clone());
                }
            }
        }
    }
    let results = checked
        .into_iter()
        .map(|c| match c {
            Ok(_) => result(code::NONE, None),
            Err(why) => result(code::INVALID_REQUEST, Some(why)),
        })
        .collect();
    req.respond(&CreateAclsResponse::default().with_results(results))
}
