//! Where the ACL bindings and SASL users a connection is judged by live.
//!
//! A broker alone keeps them in its data dir (`Durable` files). A broker of a cluster uses
//! the cluster's, in the replicated metadata: a change made through any broker is
//! committed to the metadata log (`Command::ReplaceAcls` / `ReplaceUsers`, made against
//! the version read, retried when another change got there first) and holds on every
//! broker once applied. Users added offline with `ringbroker users add` stay in the data
//! dir of the broker they were added to and log in there too, under the cluster's users
//! of the same name (which take precedence), so the first administrator and the brokers'
//! own logins exist before the cluster does.

use super::handlers::Ctx;
use crate::cluster::image::{Command, Outcome};
use crate::security::acl::AclSet;
use crate::security::credentials::Users;
use crate::shard::meta::ClusterView;
use std::sync::Arc;
use std::time::Duration;

/// Attempts at a replacement before giving up to a stream of concurrent changes.
const ATTEMPTS: usize = 8;
/// How long a committed change may take to reach this broker's shard.
const APPLY_WAIT: Duration = Duration::from_secs(2);

impl Ctx {
    /// The ACL bindings in force.
    pub fn acls(&self) -> Arc<AclSet> {
        match &self.shard.meta().meta.cluster {
            Some(c) => c.acls.clone(),
            None => self.authorizer.current(),
        }
    }

    /// The users SASL logins are checked against.
    pub fn sasl_users(&self) -> Arc<Users> {
        let local = self.users.current();
        match &self.shard.meta().meta.cluster {
            Some(c) if local.users.is_empty() => c.users.clone(),
            Some(c) => {
                let mut all = (*local).clone();
                all.users
                    .extend(c.users.users.iter().map(|(k, v)| (k.clone(), v.clone())));
                Arc::new(all)
            }
            None => local,
        }
    }

    /// The users administration sees and changes: the cluster's, or this broker's.
    pub fn managed_users(&self) -> Arc<Users> {
        match &self.shard.meta().meta.cluster {
            Some(c) => c.users.clone(),
            None => self.users.current(),
        }
    }

    /// Applies `change` to the bindings and makes the result durable (in a cluster:
    /// committed to the metadata log) before it is served.
    pub async fn change_acls<R>(
        &self,
        mut change: impl FnMut(&mut AclSet) -> R,
    ) -> std::io::Result<R> {
        if self.shard.meta().meta.cluster.is_none() {
            return self.authorizer.change(change).await;
        }
        self.replace(
            |c| (c.acls_version, (*c.acls).clone()),
            &mut change,
            |version, acls| Command::ReplaceAcls { version, acls },
            |c| c.acls_version,
        )
        .await
    }

    /// Applies `change` to the users, as [`Self::change_acls`] does to the bindings.
    pub async fn change_users<R>(
        &self,
        mut change: impl FnMut(&mut Users) -> R,
    ) -> std::io::Result<R> {
        if self.shard.meta().meta.cluster.is_none() {
            return self.users.change(change).await;
        }
        self.replace(
            |c| (c.users_version, (*c.users).clone()),
            &mut change,
            |version, users| Command::ReplaceUsers { version, users },
            |c| c.users_version,
        )
        .await
    }

    async fn replace<T, R>(
        &self,
        read: impl Fn(&ClusterView) -> (u64, T),
        change: &mut impl FnMut(&mut T) -> R,
        command: impl Fn(u64, T) -> Command,
        version_of: impl Fn(&ClusterView) -> u64,
    ) -> std::io::Result<R> {
        for _ in 0..ATTEMPTS {
            let (version, mut next) = match &self.shard.meta().meta.cluster {
                Some(c) => read(c),
                None => return Err(std::io::Error::other("no longer in a cluster")),
            };
            let result = change(&mut next);
            match self.shard.propose(command(version, next)).await {
                Ok(Outcome::Stale) => {
                    // Another change came first: wait to see it, then redo this one on it.
                    self.applied_beyond(version, &version_of).await;
                }
                Ok(_) => {
                    self.applied_beyond(version, &version_of).await;
                    return Ok(result);
                }
                Err(e) => return Err(std::io::Error::other(e.to_string())),
            }
        }
        Err(std::io::Error::other(
            "too many concurrent changes of the cluster's security metadata",
        ))
    }

    /// Waits (briefly) until this broker has applied a replacement after `version`, so the
    /// client reads back what it wrote.
    async fn applied_beyond(&self, version: u64, version_of: &impl Fn(&ClusterView) -> u64) {
        let deadline = std::time::Instant::now() + APPLY_WAIT;
        while std::time::Instant::now() < deadline {
            let now = self
                .shard
                .meta()
                .meta
                .cluster
                .as_ref()
                .map_or(u64::MAX, version_of);
            if now > version {
                return;
            }
            glommio::timer::sleep(Duration::from_millis(5)).await;
        }
    }
}
