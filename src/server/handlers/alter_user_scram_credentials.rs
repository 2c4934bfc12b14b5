//! AlterUserScramCredentials, version 0: deletes and upserts SCRAM credentials. The client
//! sends the salt, the iteration count and SaltedPassword (never the password); the broker
//! keeps StoredKey and ServerKey made from them, durably, before the answer. Each user is
//! answered once, and all of one user's alterations apply or none does. Needs ALTER on
//! the cluster when the authorizer is on. A broker of a cluster keeps its own users (they
//! are not in the replicated metadata yet).

use super::{Ctx, Request, RequestError, str_bytes};
use crate::config::security::Mechanism;
use crate::protocol::code;
use crate::security::acl::{op, resource};
use crate::security::credentials::{
    Credential, ITERATIONS_DEFAULT, ITERATIONS_MAX, Users, check_user_name,
};
use bytes::Bytes;
use kafka_protocol::messages::alter_user_scram_credentials_response::AlterUserScramCredentialsResult;
use kafka_protocol::messages::{
    AlterUserScramCredentialsRequest, AlterUserScramCredentialsResponse,
};
use std::collections::BTreeMap;

/// Longest salt or SaltedPassword accepted, in bytes.
const SECRET_MAX: usize = 1024;

enum Change {
    Delete(Mechanism),
    Upsert(Mechanism, Credential),
}

fn mechanism(code: i8) -> Option<Mechanism> {
    match code {
        1 => Some(Mechanism::ScramSha256),
        2 => Some(Mechanism::ScramSha512),
        _ => None,
    }
}

type Refusal = (i16, String);

/// Checks one user's alterations against the users now; the changes to make, or why not.
fn check(users: &Users, name: &str, alterations: &[(i8, Option<Change>)]) -> Result<(), Refusal> {
    check_user_name(name).map_err(|e| (code::UNACCEPTABLE_CREDENTIAL, e.to_string()))?;
    let mut seen = Vec::new();
    for (m, change) in alterations {
        let Some(change) = change else {
            return Err((
                code::UNSUPPORTED_SASL_MECHANISM,
                format!("Unknown SCRAM mechanism type {m}"),
            ));
        };
        let mech = match change {
            Change::Delete(mech) | Change::Upsert(mech, _) => *mech,
        };
        if seen.contains(&mech) {
            return Err((
                code::DUPLICATE_RESOURCE,
                "A user credential cannot be altered twice in the same request".into(),
            ));
        }
        seen.push(mech);
        if let Change::Delete(mech) = change
            && users.lookup(name, *mech).is_none()
        {
            return Err((
                code::RESOURCE_NOT_FOUND,
                "Attempt to delete a user credential that does not exist".into(),
            ));
        }
    }
    Ok(())
}

pub async fn handle(ctx: &Ctx, req: &mut Request) -> Result<Bytes, RequestError> {
    let request: AlterUserScramCredentialsRequest = req.decode_body()?;
    // Every alteration grouped by user, in name order.
    let mut by_user: BTreeMap<String, Vec<(i8, Option<Change>)>> = BTreeMap::new();
    let mut refused: BTreeMap<String, Refusal> = BTreeMap::new();
    for d in &request.deletions {
        let change = mechanism(d.mechanism).map(Change::Delete);
        by_user
            .entry(d.name.to_string())
            .or_default()
            .push((d.mechanism, change));
    }
    for u in &request.upsertions {
        let name = u.name.to_string();
        let iterations = u32::try_from(u.iterations).unwrap_or(0);
        if !(ITERATIONS_DEFAULT..=ITERATIONS_MAX).contains(&iterations) {
            refused.insert(
                name.clone(),
                (
                    code::UNACCEPTABLE_CREDENTIAL,
                    format!("Iterations must be in {ITERATIONS_DEFAULT}..={ITERATIONS_MAX}"),
                ),
            );
        }
        let sizes_ok = !u.salt.is_empty()
            && !u.salted_password.is_empty()
            && u.salt.len() <= SECRET_MAX
            && u.salted_password.len() <= SECRET_MAX;
        if !sizes_ok {
            refused.insert(
                name.clone(),
                (
                    code::UNACCEPTABLE_CREDENTIAL,
                    "Bad salt or salted password".into(),
                ),
            );
        }
        let change = mechanism(u.mechanism).map(|m| {
            Change::Upsert(
                m,
                Credential::from_salted(m, &u.salt, u.salted_password.to_vec(), iterations),
            )
        });
        by_user.entry(name).or_default().push((u.mechanism, change));
    }
    let allowed = ctx.allowed(op::ALTER, resource::CLUSTER, resource::CLUSTER_NAME);
    let outcome = ctx
        .change_users(|users| {
            let mut answers = Vec::with_capacity(by_user.len());
            for (name, alterations) in &by_user {
                let verdict = if !allowed {
                    Err((code::CLUSTER_AUTHORIZATION_FAILED, String::new()))
                } else if let Some(r) = refused.get(name) {
                    Err(r.clone())
                } else {
                    check(users, name, alterations)
                };
                if verdict.is_ok() {
                    for (_, change) in alterations {
                        match change {
                            Some(Change::Delete(m)) => {
                                if let Some(creds) = users.users.get_mut(name) {
                                    creds.remove(m.name());
                                    if creds.is_empty() {
                                        users.users.remove(name);
                                    }
                                }
                            }
                            Some(Change::Upsert(m, c)) => {
                                users
                                    .users
                                    .entry(name.clone())
                                    .or_default()
                                    .insert(m.name().to_string(), c.clone());
                            }
                            None => {}
                        }
                    }
                }
                answers.push((name.clone(), verdict));
            }
            answers
        })
        .await;
    let results = match outcome {
        Ok(answers) => answers
            .into_iter()
            .map(|(name, verdict)| {
                let r = AlterUserScramCredentialsResult::default().with_user(str_bytes(name));
                match verdict {
                    Ok(()) => r,
                    Err((c, m)) => r
                        .with_error_code(c)
                        .with_error_message((!m.is_empty()).then(|| str_bytes(m))),
                }
            })
            .collect(),
        Err(e) => {
            let names: std::collections::BTreeSet<String> = request
                .deletions
                .iter()
                .map(|d| d.name.to_string())
                .chain(request.upsertions.iter().map(|u| u.name.to_string()))
                .collect();
            names
                .into_iter()
                .map(|n| {
                    AlterUserScramCredentialsResult::default()
                        .with_user(str_bytes(n))
                        .with_error_code(code::KAFKA_STORAGE_ERROR)
                        .with_error_message(Some(str_bytes(format!("cannot write the users: {e}"))))
                })
                .collect()
        }
    };
    req.respond(&AlterUserScramCredentialsResponse::default().with_results(results))
}
