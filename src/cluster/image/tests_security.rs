//! The image's listeners and replicated security records.

use super::*;

#[test]
fn security_replacements_are_made_against_the_version_read() {
    use crate::security::acl::{Acl, AclSet};
    let mut img = Image::default();
    let mut acls = AclSet::default();
    acls.acls.insert(Acl {
        resource_type: 2,
        resource_name: "t".into(),
        pattern_type: 3,
        principal: "User:alice".into(),
        host: "*".into(),
        operation: 2,
        permission: 3,
    });
    assert_eq!(
        img.apply(Command::ReplaceAcls {
            version: 0,
            acls: acls.clone()
        }),
        Outcome::Done
    );
    assert_eq!(img.security.acls, acls);
    // A second change made against version 0 lost the race: refused, nothing changes.
    assert_eq!(
        img.apply(Command::ReplaceAcls {
            version: 0,
            acls: AclSet::default()
        }),
        Outcome::Stale
    );
    assert_eq!(
        (img.security.acls_version, img.security.acls.acls.len()),
        (1, 1)
    );
    let mut users = crate::security::credentials::Users::default();
    users
        .set(
            "alice",
            crate::config::security::Mechanism::ScramSha256,
            "pw",
            4096,
        )
        .expect("user");
    assert_eq!(
        img.apply(Command::ReplaceUsers {
            version: 1,
            users: users.clone()
        }),
        Outcome::Stale
    );
    assert_eq!(
        img.apply(Command::ReplaceUsers { version: 0, users }),
        Outcome::Done
    );
    assert!(
        img.security
            .users
            .lookup("alice", crate::config::security::Mechanism::ScramSha256)
            .is_some()
    );
    // The image round-trips through a snapshot with its security.
    let json = serde_json::to_vec(&img).expect("snapshot");
    let back: Image = serde_json::from_slice(&json).expect("restore");
    assert_eq!(back, img);
}

#[test]
fn a_broker_is_registered_with_every_listener() {
    let mut img = Image::default();
    let endpoints = vec![
        Endpoint {
            name: "CLIENT".into(),
            host: "h".into(),
            port: 1,
        },
        Endpoint {
            name: "BROKER".into(),
            host: "h".into(),
            port: 2,
        },
    ];
    img.apply(Command::Register {
        id: 1,
        host: "h".into(),
        port: 1,
        incarnation: 1,
        endpoints: endpoints.clone(),
    });
    assert_eq!(
        img.brokers.get(&1).map(|b| b.endpoints.clone()),
        Some(endpoints)
    );
}
