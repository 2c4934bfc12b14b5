//! The cluster's ACL bindings and SCRAM users: replicated like the rest of the metadata,
//! so a binding created or a user added through any broker holds on every broker.
//!
//! Each is replaced whole by a command made against the version its proposer read; a
//! command made against an older version is refused (`Outcome::Stale`) and the proposer
//! reads again. Credentials arrive salted and hashed (the proposer draws the salt), so
//! applying them is deterministic.

use super::Outcome;
use crate::security::acl::AclSet;
use crate::security::credentials::Users;
use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct SecurityImage {
    pub acls: AclSet,
    /// Replacements of `acls` applied so far.
    pub acls_version: u64,
    pub users: Users,
    /// Replacements of `users` applied so far.
    pub users_version: u64,
}

impl SecurityImage {
    pub(super) fn replace_acls(&mut self, version: u64, acls: AclSet) -> Outcome {
        if version != self.acls_version {
            return Outcome::Stale;
        }
        self.acls = acls;
        self.acls_version = self.acls_version.saturating_add(1);
        Outcome::Done
    }

    pub(super) fn replace_users(&mut self, version: u64, users: Users) -> Outcome {
        if version != self.users_version {
            return Outcome::Stale;
        }
        self.users = users;
        self.users_version = self.users_version.saturating_add(1);
        Outcome::Done
    }
}
