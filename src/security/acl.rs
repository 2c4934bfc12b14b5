//! Kafka's ACLs and the decision the authorizer makes from them, kept in
//! `<data>/__ringbroker_acls.json`.
//!
//! A binding allows or denies one operation on resources (a topic, group, the cluster, a
//! transactional id, by literal name, `*`, or name prefix) to a principal (`User:alice`,
//! `User:*`) from a host (an IP or `*`). The decision is Kafka's (AclAuthorizer): super
//! users may do everything; a DENY that applies wins; else an ALLOW of the operation, of
//! ALL, or of one that implies it (READ, WRITE, DELETE and ALTER imply DESCRIBE;
//! ALTER_CONFIGS implies DESCRIBE_CONFIGS); a resource no binding names at all is open
//! only when `allow.everyone.if.no.acl.found` is set.

use serde::{Deserialize, Serialize};
use std::collections::BTreeSet;
use std::path::Path;

pub const ACLS_FILE: &str = "__ringbroker_acls.json";
/// Bindings the broker keeps at most; more are refused (each is checked on requests).
pub const BINDINGS_MAX: usize = 100_000;
const NAME_MAX: usize = 1024;
const FILE_MAX_BYTES: u64 = 256 << 20;

/// Resource types (Kafka's `ResourceType`).
pub mod resource {
    pub const ANY: i8 = 1;
    pub const TOPIC: i8 = 2;
    pub const GROUP: i8 = 3;
    pub const CLUSTER: i8 = 4;
    pub const TRANSACTIONAL_ID: i8 = 5;
    /// The one name of the cluster resource.
    pub const CLUSTER_NAME: &str = "kafka-cluster";
}

/// Pattern types (Kafka's `PatternType`).
pub mod pattern {
    pub const ANY: i8 = 1;
    pub const MATCH: i8 = 2;
    pub const LITERAL: i8 = 3;
    pub const PREFIXED: i8 = 4;
}

/// Operations (Kafka's `AclOperation`).
pub mod op {
    pub const ANY: i8 = 1;
    pub const ALL: i8 = 2;
    pub const READ: i8 = 3;
    pub const WRITE: i8 = 4;
    pub const CREATE: i8 = 5;
    pub const DELETE: i8 = 6;
    pub const ALTER: i8 = 7;
    pub const DESCRIBE: i8 = 8;
    pub const CLUSTER_ACTION: i8 = 9;
    pub const DESCRIBE_CONFIGS: i8 = 10;
    pub const ALTER_CONFIGS: i8 = 11;
    pub const IDEMPOTENT_WRITE: i8 = 12;
}

/// Permission types (Kafka's `AclPermissionType`).
pub mod permission {
    pub const ANY: i8 = 1;
    pub const DENY: i8 = 2;
    pub const ALLOW: i8 = 3;
}

/// One ACL binding.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash, Serialize, Deserialize)]
pub struct Acl {
    pub resource_type: i8,
    pub resource_name: String,
    pub pattern_type: i8,
    pub principal: String,
    pub host: String,
    pub operation: i8,
    pub permission: i8,
}

/// A filter of DescribeAcls and DeleteAcls; `None` and the ANY values match everything.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AclFilter {
    pub resource_type: i8,
    pub resource_name: Option<String>,
    pub pattern_type: i8,
    pub principal: Option<String>,
    pub host: Option<String>,
    pub operation: i8,
    pub permission: i8,
}

/// Whether binding `acl` (of the resource's type) covers a resource named `name`.
fn covers(acl: &Acl, name: &str) -> bool {
    match acl.pattern_type {
        pattern::LITERAL => acl.resource_name == name || acl.resource_name == "*",
        pattern::PREFIXED => name.starts_with(acl.resource_name.as_str()),
        _ => false,
    }
}

impl AclFilter {
    /// Checks a filter as Kafka does: known codes, and no UNKNOWN values.
    pub fn validate(&self) -> Result<(), String> {
        if !(resource::ANY..=resource::TRANSACTIONAL_ID).contains(&self.resource_type) {
            return Err(format!("unknown resource type {}", self.resource_type));
        }
        if !(pattern::ANY..=pattern::PREFIXED).contains(&self.pattern_type) {
            return Err(format!("unknown pattern type {}", self.pattern_type));
        }
        if !(op::ANY..=op::IDEMPOTENT_WRITE).contains(&self.operation) {
            return Err(format!("unknown operation {}", self.operation));
        }
        if !(permission::ANY..=permission::ALLOW).contains(&self.permission) {
            return Err(format!("unknown permission type {}", self.permission));
        }
        Ok(())
    }

    pub fn matches(&self, acl: &Acl) -> bool {
        let any_or = |want: i8, any: i8, have: i8| want == any || want == have;
        let name_ok = match (&self.resource_name, self.pattern_type) {
            (None, _) => {
                self.pattern_type == pattern::ANY
                    || self.pattern_type == pattern::MATCH
                    || self.pattern_type == acl.pattern_type
            }
            (Some(name), pattern::MATCH) => covers(acl, name),
            (Some(name), pattern::ANY) => &acl.resource_name == name,
            (Some(name), p) => p == acl.pattern_type && &acl.resource_name == name,
        };
        any_or(self.resource_type, resource::ANY, acl.resource_type)
            && name_ok
            && self.principal.as_ref().is_none_or(|p| *p == acl.principal)
            && self.host.as_ref().is_none_or(|h| *h == acl.host)
            && any_or(self.operation, op::ANY, acl.operation)
            && any_or(self.permission, permission::ANY, acl.permission)
    }
}

impl Acl {
    /// Checks a binding to create: a concrete resource type, pattern, operation and
    /// permission; a `User:` principal; a host; the cluster resource by its one name.
    pub fn validate(&self) -> Result<(), String> {
        if !(resource::TOPIC..=resource::TRANSACTIONAL_ID).contains(&self.resource_type) {
            return Err(format!(
                "resource type {} cannot have ACLs",
                self.resource_type
            ));
        }
        if self.pattern_type != pattern::LITERAL && self.pattern_type != pattern::PREFIXED {
            return Err("the pattern type must be LITERAL or PREFIXED".into());
        }
        if !(op::ALL..=op::IDEMPOTENT_WRITE).contains(&self.operation) {
            return Err(format!("operation {} cannot be granted", self.operation));
        }
        if self.permission != permission::ALLOW && self.permission != permission::DENY {
            return Err("the permission type must be ALLOW or DENY".into());
        }
        let user = self.principal.strip_prefix("User:").unwrap_or_default();
        if user.is_empty() || self.principal.len() > NAME_MAX {
            return Err(format!("principal {:?} is not User:NAME", self.principal));
        }
        if self.host.is_empty() || self.host.len() > NAME_MAX {
            return Err("the host must be an address or *".into());
        }
        if self.resource_name.is_empty() || self.resource_name.len() > NAME_MAX {
            return Err("the resource name must not be empty".into());
        }
        if self.resource_type == resource::CLUSTER
            && (self.resource_name != resource::CLUSTER_NAME
                || self.pattern_type != pattern::LITERAL)
        {
            return Err(format!(
                "the cluster resource is the literal {}",
                resource::CLUSTER_NAME
            ));
        }
        Ok(())
    }
}

/// The operations whose ALLOW allows `operation`.
fn implying(operation: i8) -> &'static [i8] {
    match operation {
        op::DESCRIBE => &[
            op::DESCRIBE,
            op::ALL,
            op::READ,
            op::WRITE,
            op::DELETE,
            op::ALTER,
        ],
        op::DESCRIBE_CONFIGS => &[op::DESCRIBE_CONFIGS, op::ALL, op::ALTER_CONFIGS],
        op::READ => &[op::READ, op::ALL],
        op::WRITE => &[op::WRITE, op::ALL],
        op::CREATE => &[op::CREATE, op::ALL],
        op::DELETE => &[op::DELETE, op::ALL],
        op::ALTER => &[op::ALTER, op::ALL],
        op::CLUSTER_ACTION => &[op::CLUSTER_ACTION, op::ALL],
        op::ALTER_CONFIGS => &[op::ALTER_CONFIGS, op::ALL],
        op::IDEMPOTENT_WRITE => &[op::IDEMPOTENT_WRITE, op::ALL],
        _ => &[op::ALL],
    }
}

/// Every binding the broker holds.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct AclSet {
    pub acls: BTreeSet<Acl>,
}

/// Who asks: the principal and the host (IP) it connects from.
pub struct Requester<'a> {
    pub principal: &'a str,
    pub host: &'a str,
}

impl AclSet {
    /// Whether `who` may do `operation` on the resource, by the bindings alone (super
    /// users are the caller's business).
    pub fn allows(
        &self,
        who: &Requester<'_>,
        operation: i8,
        resource_type: i8,
        name: &str,
        allow_if_no_acl: bool,
    ) -> bool {
        let mut any = false;
        let mut allowed = false;
        for acl in self
            .acls
            .iter()
            .filter(|a| a.resource_type == resource_type && covers(a, name))
        {
            any = true;
            let applies = (acl.principal == who.principal || acl.principal == "User:*")
                && (acl.host == who.host || acl.host == "*");
            if !applies {
                continue;
            }
            if acl.permission == permission::DENY
                && (acl.operation == operation || acl.operation == op::ALL)
            {
                return false;
            }
            if acl.permission == permission::ALLOW && implying(operation).contains(&acl.operation) {
                allowed = true;
            }
        }
        allowed || (!any && allow_if_no_acl)
    }

    /// Whether some binding allows `who` `operation` on some resource of the type.
    pub fn grants_somewhere(&self, who: &Requester<'_>, operation: i8, resource_type: i8) -> bool {
        self.acls.iter().any(|a| {
            a.resource_type == resource_type
                && a.permission == permission::ALLOW
                && implying(operation).contains(&a.operation)
                && (a.principal == who.principal || a.principal == "User:*")
                && (a.host == who.host || a.host == "*")
        })
    }

    pub fn load(data_dir: &Path) -> Result<AclSet, String> {
        let path = data_dir.join(ACLS_FILE);
        let file = match std::fs::File::open(&path) {
            Ok(f) => f,
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(AclSet::default()),
            Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
        };
        let len = file.metadata().map(|m| m.len()).unwrap_or(0);
        if len > FILE_MAX_BYTES {
            return Err(format!(
                "{} is larger than {FILE_MAX_BYTES} bytes",
                path.display()
            ));
        }
        let set: AclSet = serde_json::from_reader(std::io::BufReader::new(file))
            .map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        for acl in &set.acls {
            acl.validate()
                .map_err(|e| format!("{} is damaged: {e}", path.display()))?;
        }
        Ok(set)
    }
}

/// Replaces a file atomically and durably: temporary file, fsync, rename, fsync the dir.
pub fn write_atomically(bytes: &[u8], tmp: &Path, path: &Path) -> std::io::Result<()> {
    use std::io::Write;
    let mut file = std::fs::File::create(tmp)?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(tmp, path)?;
    if let Some(dir) = path.parent() {
        std::fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn acl(rt: i8, name: &str, pt: i8, who: &str, operation: i8, perm: i8) -> Acl {
        Acl {
            resource_type: rt,
            resource_name: name.into(),
            pattern_type: pt,
            principal: who.into(),
            host: "*".into(),
            operation,
            permission: perm,
        }
    }

    fn alice() -> Requester<'static> {
        Requester {
            principal: "User:alice",
            host: "127.0.0.1",
        }
    }

    #[test]
    fn kafkas_decision() {
        use permission::*;
        let mut set = AclSet::default();
        let t = resource::TOPIC;
        assert!(
            !set.allows(&alice(), op::READ, t, "logs", false),
            "no ACL: closed"
        );
        assert!(
            set.allows(&alice(), op::READ, t, "logs", true),
            "no ACL: open if asked"
        );
        set.acls.insert(acl(
            t,
            "logs",
            pattern::LITERAL,
            "User:alice",
            op::READ,
            ALLOW,
        ));
        assert!(set.allows(&alice(), op::READ, t, "logs", false));
        assert!(
            set.allows(&alice(), op::DESCRIBE, t, "logs", false),
            "READ implies DESCRIBE"
        );
        assert!(
            !set.allows(&alice(), op::WRITE, t, "logs", true),
            "an ACL exists: closed"
        );
        let bob = Requester {
            principal: "User:bob",
            host: "127.0.0.1",
        };
        assert!(!set.allows(&bob, op::READ, t, "logs", true));
        set.acls
            .insert(acl(t, "app-", pattern::PREFIXED, "User:*", op::ALL, ALLOW));
        assert!(set.allows(&bob, op::WRITE, t, "app-1", false));
        assert!(!set.allows(&bob, op::WRITE, t, "ap", false));
        set.acls.insert(acl(
            t,
            "app-secret",
            pattern::LITERAL,
            "User:bob",
            op::WRITE,
            DENY,
        ));
        assert!(
            !set.allows(&bob, op::WRITE, t, "app-secret", false),
            "DENY wins"
        );
        assert!(set.allows(&bob, op::READ, t, "app-secret", false));
        set.acls.insert(acl(
            t,
            "*",
            pattern::LITERAL,
            "User:alice",
            op::DESCRIBE,
            ALLOW,
        ));
        assert!(set.allows(&alice(), op::DESCRIBE, t, "anything", false));
        assert!(!set.allows(&alice(), op::READ, t, "anything", false));
        let mut from_elsewhere = acl(
            resource::GROUP,
            "g",
            pattern::LITERAL,
            "User:alice",
            op::READ,
            ALLOW,
        );
        from_elsewhere.host = "10.0.0.9".into();
        set.acls.insert(from_elsewhere);
        assert!(!set.allows(&alice(), op::READ, resource::GROUP, "g", true));
    }

    #[test]
    fn filters_and_validation() {
        let a = acl(
            resource::TOPIC,
            "app-",
            pattern::PREFIXED,
            "User:alice",
            op::READ,
            permission::ALLOW,
        );
        assert!(a.validate().is_ok());
        let any = AclFilter {
            resource_type: resource::ANY,
            resource_name: None,
            pattern_type: pattern::ANY,
            principal: None,
            host: None,
            operation: op::ANY,
            permission: permission::ANY,
        };
        assert!(any.matches(&a));
        let by_match = AclFilter {
            resource_type: resource::TOPIC,
            resource_name: Some("app-1".into()),
            pattern_type: pattern::MATCH,
            ..any.clone()
        };
        assert!(by_match.matches(&a));
        let literal = AclFilter {
            resource_name: Some("app-1".into()),
            pattern_type: pattern::LITERAL,
            ..any.clone()
        };
        assert!(!literal.matches(&a));
        let bad = [
            acl(
                resource::ANY,
                "x",
                pattern::LITERAL,
                "User:a",
                op::READ,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "x",
                pattern::MATCH,
                "User:a",
                op::READ,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "x",
                pattern::LITERAL,
                "alice",
                op::READ,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "x",
                pattern::LITERAL,
                "User:a",
                op::ANY,
                permission::ALLOW,
            ),
            acl(
                resource::TOPIC,
                "",
                pattern::LITERAL,
                "User:a",
                op::READ,
                permission::ALLOW,
            ),
            acl(
                resource::CLUSTER,
                "c",
                pattern::LITERAL,
                "User:a",
                op::ALTER,
                permission::ALLOW,
            ),
        ];
        for b in bad {
            assert!(b.validate().is_err(), "{b:?}");
        }
    }

    #[test]
    fn bindings_survive_a_save_and_load() {
        let dir = tempfile::tempdir().unwrap();
        let mut set = AclSet::default();
        set.acls.insert(acl(
            resource::GROUP,
            "g",
            pattern::LITERAL,
            "User:a",
            op::READ,
            permission::ALLOW,
        ));
        let path = dir.path().join(ACLS_FILE);
        let bytes = serde_json::to_vec(&set).unwrap();
        write_atomically(&bytes, &dir.path().join("tmp"), &path).unwrap();
        assert_eq!(AclSet::load(dir.path()).unwrap(), set);
        std::fs::write(&path, b"{\"acls\": [{\"resource_type\": 9").unwrap();
        assert!(AclSet::load(dir.path()).is_err());
    }
}
