//! The authorizer every shard consults: `authorizer.enabled`, `super.users`,
//! `allow.everyone.if.no.acl.found` and the ACL bindings (`security::acl`).
//!
//! A broker alone keeps its bindings in a [`Durable`] set shared by the shards (a check
//! clones an `Arc`; a CreateAcls or DeleteAcls is on disk before it is served). A broker of
//! a cluster is judged by the cluster's bindings, from the replicated metadata
//! (`server::security_store`); the caller passes the set in force.

use super::durable::Durable;
use crate::config::security::SecurityConfig;
use crate::security::acl::{ACLS_FILE, AclSet, Requester, op, resource};
use std::path::Path;
use std::sync::Arc;

pub struct Authorizer {
    pub enabled: bool,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    acls: Durable<AclSet>,
}

impl Authorizer {
    pub fn new(config: &SecurityConfig, acls: AclSet, data_dir: &Path) -> Authorizer {
        Authorizer {
            enabled: config.authorizer_enabled,
            super_users: config.super_users.clone(),
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            acls: Durable::new(acls, data_dir.join(ACLS_FILE)),
        }
    }

    /// The bindings now.
    pub fn current(&self) -> Arc<AclSet> {
        self.acls.current()
    }

    /// Whether `who` may do `operation` on a resource. Everything is allowed while the
    /// authorizer is off, and to super users.
    pub fn allows(
        &self,
        acls: &AclSet,
        who: &Requester<'_>,
        operation: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|u| u == who.principal) {
            return true;
        }
        acls.allows(who, operation, resource_type, name, self.allow_if_no_acl)
    }

    /// Whether `who` may create topic `name`: CREATE on the cluster or on the topic.
    pub fn may_create_topic(&self, acls: &AclSet, who: &Requester<'_>, name: &str) -> bool {
        self.allows(
            acls,
            who,
            op::CREATE,
            resource::CLUSTER,
            resource::CLUSTER_NAME,
        ) || self.allows(acls, who, op::CREATE, resource::TOPIC, name)
    }

    /// Whether `who` may get a producer id for idempotent writes: IDEMPOTENT_WRITE on the
    /// cluster, or an ALLOW of WRITE on some topic (KIP-679), or topics open to all.
    pub fn may_write_idempotently(&self, acls: &AclSet, who: &Requester<'_>) -> bool {
        self.allows(
            acls,
            who,
            op::IDEMPOTENT_WRITE,
            resource::CLUSTER,
            resource::CLUSTER_NAME,
        ) || self.allow_if_no_acl
            || acls.grants_somewhere(who, op::WRITE, resource::TOPIC)
    }

    /// Applies `change` to a copy of the bindings, makes the copy durable, then serves it.
    pub async fn change<R>(&self, change: impl FnOnce(&mut AclSet) -> R) -> std::io::Result<R> {
        self.acls.change(change).await
    }
}
