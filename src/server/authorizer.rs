//! The authorizer every shard consults: `authorizer.enabled`, `super.users`,
//! `allow.everyone.if.no.acl.found` and the ACL bindings (`security::acl`).
//!
//! The bindings are one immutable set behind an `RwLock<Arc<_>>` shared by the shards: a
//! check takes the read lock only to clone the `Arc`, and a change (CreateAcls,
//! DeleteAcls, rare) builds a new set, writes it durably on the blocking thread pool and
//! then swaps it in. Changes are serialised by an async lock, so two of them never lose
//! each other's bindings. A broker of a cluster keeps its own bindings (they are not in
//! the replicated metadata yet).

use crate::config::security::SecurityConfig;
use crate::security::acl::{AclSet, Requester, op, resource, write_atomically};
use std::path::PathBuf;
use std::sync::{Arc, RwLock};

pub struct Authorizer {
    pub enabled: bool,
    super_users: Vec<String>,
    allow_if_no_acl: bool,
    acls: RwLock<Arc<AclSet>>,
    changes: async_lock::Mutex<()>,
    data_dir: PathBuf,
}

impl Authorizer {
    pub fn new(config: &SecurityConfig, acls: AclSet, data_dir: PathBuf) -> Authorizer {
        Authorizer {
            enabled: config.authorizer_enabled,
            super_users: config.super_users.clone(),
            allow_if_no_acl: config.allow_everyone_if_no_acl_found,
            acls: RwLock::new(Arc::new(acls)),
            changes: async_lock::Mutex::new(()),
            data_dir,
        }
    }

    /// The bindings now.
    pub fn current(&self) -> Arc<AclSet> {
        match self.acls.read() {
            Ok(a) => a.clone(),
            Err(poisoned) => poisoned.into_inner().clone(),
        }
    }

    /// Whether `who` may do `operation` on a resource. Everything is allowed while the
    /// authorizer is off, and to super users.
    pub fn allows(
        &self,
        who: &Requester<'_>,
        operation: i8,
        resource_type: i8,
        name: &str,
    ) -> bool {
        if !self.enabled || self.super_users.iter().any(|u| u == who.principal) {
            return true;
        }
        self.current()
            .allows(who, operation, resource_type, name, self.allow_if_no_acl)
    }

    /// Whether `who` may create topic `name`: CREATE on the cluster or on the topic.
    pub fn may_create_topic(&self, who: &Requester<'_>, name: &str) -> bool {
        self.allows(who, op::CREATE, resource::CLUSTER, resource::CLUSTER_NAME)
            || self.allows(who, op::CREATE, resource::TOPIC, name)
    }

    /// Whether `who` may get a producer id for idempotent writes: IDEMPOTENT_WRITE on the
    /// cluster, or an ALLOW of WRITE on some topic (KIP-679), or topics open to all.
    pub fn may_write_idempotently(&self, who: &Requester<'_>) -> bool {
        self.allows(
            who,
            op::IDEMPOTENT_WRITE,
            resource::CLUSTER,
            resource::CLUSTER_NAME,
        ) || self.allow_if_no_acl
            || self
                .current()
                .grants_somewhere(who, op::WRITE, resource::TOPIC)
    }

    /// Applies `change` to a copy of the bindings, makes the copy durable, then serves it.
    /// Nothing changes when writing fails.
    pub async fn change<R>(&self, change: impl FnOnce(&mut AclSet) -> R) -> std::io::Result<R> {
        let _one_at_a_time = self.changes.lock().await;
        let mut next = (*self.current()).clone();
        let result = change(&mut next);
        let (bytes, tmp, path) = next.encode(&self.data_dir);
        glommio::executor()
            .spawn_blocking(move || write_atomically(&bytes, &tmp, &path))
            .await?;
        match self.acls.write() {
            Ok(mut a) => *a = Arc::new(next),
            Err(poisoned) => *poisoned.into_inner() = Arc::new(next),
        }
        Ok(result)
    }
}
