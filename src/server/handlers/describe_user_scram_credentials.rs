//! DescribeUserScramCredentials, version 0: the SCRAM mechanisms and iteration counts of
//! the users named (all users when none are), never their keys. Needs DESCRIBE on the
//! cluster when the authorizer is on. PLAIN credentials (a ringbroker addition) are not
//! listed: Kafka's answer has no code for them.

use super::{Ctx, Request, RequestError, str_bytes};
use crate::config::security::Mechanism;
use crate::protocol::code;
use crate::security::acl::{op, resource};
use bytes::Bytes;
use kafka_protocol::messages::describe_user_scram_credentials_response::{
    CredentialInfo, DescribeUserScramCredentialsResult,
};
use kafka_protocol::messages::{
    DescribeUserScramCredentialsRequest, DescribeUserScramCredentialsResponse,
};
use std::collections::BTreeMap;

/// Kafka's `ScramMechanism` codes.
pub fn scram_code(m: Mechanism) -> Option<i8> {
    match m {
        Mechanism::ScramSha256 => Some(1),
        Mechanism::ScramSha512 => Some(2),
        Mechanism::Plain => None,
    }
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: DescribeUserScramCredentialsRequest = req.decode_body()?;
    if !ctx.allowed(op::DESCRIBE, resource::CLUSTER, resource::CLUSTER_NAME) {
        let refused = DescribeUserScramCredentialsResponse::default()
            .with_error_code(code::CLUSTER_AUTHORIZATION_FAILED);
        return req.respond(&refused);
    }
    let users = ctx.sasl_users();
    let infos = |name: &str| -> Vec<CredentialInfo> {
        users
            .users
            .get(name)
            .map(|creds| {
                creds
                    .iter()
                    .filter_map(|(m, c)| {
                        let code = Mechanism::parse(m).and_then(scram_code)?;
                        Some(
                            CredentialInfo::default()
                                .with_mechanism(code)
                                .with_iterations(i32::try_from(c.iterations).unwrap_or(i32::MAX)),
                        )
                    })
                    .collect()
            })
            .unwrap_or_default()
    };
    let named: Vec<String> = match &request.users {
        Some(list) if !list.is_empty() => list.iter().map(|u| u.name.to_string()).collect(),
        _ => users
            .users
            .keys()
            .filter(|u| !infos(u).is_empty())
            .cloned()
            .collect(),
    };
    let mut times: BTreeMap<&str, usize> = BTreeMap::new();
    for n in &named {
        *times.entry(n.as_str()).or_default() += 1;
    }
    let mut results = Vec::new();
    for (name, count) in times {
        let result = DescribeUserScramCredentialsResult::default().with_user(str_bytes(name));
        let found = infos(name);
        results.push(if count > 1 {
            result
                .with_error_code(code::DUPLICATE_RESOURCE)
                .with_error_message(Some(str_bytes(format!(
                    "Cannot describe SCRAM credentials for the same user twice in a single request: {name}"
                ))))
        } else if found.is_empty() {
            result
                .with_error_code(code::RESOURCE_NOT_FOUND)
                .with_error_message(Some(str_bytes(format!(
                    "Attempt to describe a user credential that does not exist: {name}"
                ))))
        } else {
            result.with_credential_infos(found)
        });
    }
    req.respond(&DescribeUserScramCredentialsResponse::default().with_results(results))
}
