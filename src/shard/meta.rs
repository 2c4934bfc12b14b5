//! Cluster metadata: topics, partition counts and topic configs.
//!
//! Shard 0 is the only writer. It persists a new version to `<data>/__ringbroker_meta.toml`
//! (temp file, fdatasync, rename, directory fsync, so a crash leaves the old or the new
//! version, never a torn one) and then broadcasts it; every shard keeps a read-only copy.
//!
//! The file's first line is a TOML comment with the CRC-32C and length of the rest: a file
//! damaged or cut short (which may still parse, without its last topics) is refused at
//! start instead of losing topics silently. Files of older versions have no such line and
//! are read as they are; the next change writes it.

use crate::storage::{FileKind, Storage, StorageFile};
use bytes::Bytes;
use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use thiserror::Error;

pub const META_FILE: &str = "__ringbroker_meta.toml";
const META_TMP: &str = "__ringbroker_meta.toml.tmp";

/// Kafka's limit: 249 characters, so `<topic>-<partition>` fits a 255-byte file name.
pub const TOPIC_NAME_MAX: usize = 249;

#[derive(Debug, Error)]
pub enum MetaError {
    #[error("cannot read {path}: {reason}")]
    Read { path: String, reason: String },
    #[error("cannot parse {path}: {reason}")]
    Parse { path: String, reason: String },
    #[error(
        "{path} is damaged: {reason}. Restore it from a backup (the topics' data directories \
         are untouched)"
    )]
    Damaged { path: String, reason: String },
    #[error("cannot persist metadata: {0}")]
    Persist(#[from] std::io::Error),
}

#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct Metadata {
    /// Bumped by every change; a shard ignores a broadcast older than its copy.
    pub version: u64,
    #[serde(default)]
    pub topics: BTreeMap<String, TopicMeta>,
    /// Dynamic broker configs (AlterConfigs of BROKER resources): cluster-wide and per
    /// broker. Absent from the files of older versions.
    #[serde(default)]
    pub broker_configs: crate::config::dynamic::DynamicBrokerConfigs,
    /// In a cluster: the brokers, the controller and this broker's standing. `None` for a
    /// broker that runs alone (it leads every partition).
    #[serde(skip)]
    pub cluster: Option<ClusterView>,
}

/// What a broker of a cluster knows beyond the topics, from the applied metadata log.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct ClusterView {
    /// This broker's node id.
    pub node: i32,
    /// The Raft leader, if known.
    pub controller: Option<i32>,
    /// The unfenced brokers and where clients reach them.
    pub brokers: BTreeMap<i32, (String, u16)>,
    /// The registered brokers that are fenced (DescribeCluster v2 lists them on request).
    pub fenced: BTreeMap<i32, (String, u16)>,
    /// Every listener of each registered broker (empty for a broker of an older version,
    /// known only by its first listener's address).
    pub endpoints: BTreeMap<i32, Vec<crate::cluster::image::Endpoint>>,
    /// The cluster's ACL bindings and SCRAM users, and how many replacements of each the
    /// metadata log has applied (a change is made against that version).
    pub acls: std::sync::Arc<crate::security::acl::AclSet>,
    pub acls_version: u64,
    pub users: std::sync::Arc<crate::security::credentials::Users>,
    pub users_version: u64,
    /// This broker may lead: it is unfenced and has heard from the controller within
    /// `broker.session.timeout.ms`. A broker cut off from the controller stops answering
    /// as leader even before the others have fenced it.
    pub lease: bool,
    /// Producer ids below this were handed out somewhere in the cluster.
    pub producer_ids_issued: i64,
}

impl ClusterView {
    /// Where broker `id` listens as `listener`, if it is unfenced and has that listener. A
    /// broker registered without its listeners (an older version) is reached at its one
    /// address whatever the listener.
    pub fn address_on(&self, id: i32, listener: &str) -> Option<(String, u16)> {
        self.endpoint(id, listener, self.brokers.get(&id)?)
    }

    /// As [`Self::address_on`], for a fenced broker too (DescribeCluster lists those).
    pub fn listed_address_on(&self, id: i32, listener: &str) -> Option<(String, u16)> {
        let first = self.brokers.get(&id).or_else(|| self.fenced.get(&id))?;
        self.endpoint(id, listener, first)
    }

    fn endpoint(&self, id: i32, listener: &str, first: &(String, u16)) -> Option<(String, u16)> {
        match self.endpoints.get(&id) {
            Some(list) if !list.is_empty() => list
                .iter()
                .find(|e| e.name == listener)
                .map(|e| (e.host.clone(), e.port)),
            _ => Some(first.clone()),
        }
    }
}

/// One partition's placement in a cluster.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Assignment {
    pub replicas: Vec<i32>,
    pub leader: i32,
    pub leader_epoch: i32,
    pub isr: Vec<i32>,
    /// The version of leader and ISR an AlterPartition is made against.
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct TopicMeta {
    pub partitions: i32,
    /// Kafka topic id (a UUID), as 32 hex digits.
    pub id: String,
    /// Only the configs the topic overrides.
    #[serde(default)]
    pub configs: BTreeMap<String, String>,
    /// In a cluster, per partition; empty for a broker that runs alone.
    #[serde(skip)]
    pub assignment: Vec<Assignment>,
}

impl TopicMeta {
    pub fn uuid(&self) -> uuid::Uuid {
        uuid::Uuid::parse_str(&self.id).unwrap_or_default()
    }
}

pub fn new_topic_id() -> String {
    uuid::Uuid::from_u128(rand::random::<u128>())
        .simple()
        .to_string()
}

/// Topics that belong to the broker: clients may read them but not produce to, create,
/// delete or reconfigure them. Their data is the broker's own state (committed offsets,
/// later transactions), which a forged record or a lost segment would corrupt.
pub const INTERNAL_TOPICS: &[&str] = &["__consumer_offsets", "__transaction_state"];

pub fn is_internal(name: &str) -> bool {
    INTERNAL_TOPICS.contains(&name)
}

/// The configs of `__consumer_offsets`: compacted, as Kafka has it, with segments of the
/// broker's `offsets.topic.segment.bytes` (Kafka's 100 MiB by default). Until the log cleaner runs, its records are
/// compacted only in memory, so retention is off outright (time or size retention would
/// drop live offsets whatever the policy says).
pub fn offsets_topic_configs(group: &crate::config::GroupConfig) -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "compact".to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
        (
            "segment.bytes",
            group.offsets_topic_segment_bytes.to_string(),
        ),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

/// Adds `__consumer_offsets` to the metadata if it is missing, and the configs of
/// [`offsets_topic_configs`] it lacks if it exists (a data directory of an older
/// ringbroker, whose topic has `retention.ms = -1` only); a config it has is kept.
/// Runs on the main thread before the shards start, so every shard opens its partitions
/// with the others. Returns whether the metadata changed.
pub fn ensure_offsets_topic(
    mut meta: Metadata,
    config: &crate::config::BrokerConfig,
) -> (Metadata, bool) {
    let name = crate::group::OFFSETS_TOPIC;
    if let Some(topic) = meta.topics.get_mut(name) {
        let mut changed = false;
        for (k, v) in offsets_topic_configs(&config.group) {
            if let std::collections::btree_map::Entry::Vacant(e) = topic.configs.entry(k) {
                e.insert(v);
                changed = true;
            }
        }
        if changed {
            meta.version += 1;
        }
        return (meta, changed);
    }
    meta.topics.insert(
        name.to_string(),
        TopicMeta {
            partitions: config.group.offsets_topic_partitions,
            id: new_topic_id(),
            configs: offsets_topic_configs(&config.group),
            assignment: Vec::new(),
        },
    );
    meta.version += 1;
    (meta, true)
}

/// Kafka's topic name rule: 1..=249 characters of `[a-zA-Z0-9._-]`, and not `.` or `..`.
pub fn validate_topic_name(name: &str) -> Result<(), &'static str> {
    if name.is_empty() {
        return Err("topic name is empty");
    }
    if name == "." || name == ".." {
        return Err("topic name cannot be \".\" or \"..\"");
    }
    if name.len() > TOPIC_NAME_MAX {
        return Err("topic name is longer than 249 characters");
    }
    if !name
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b == b'.' || b == b'_' || b == b'-')
    {
        return Err("topic name may contain only ASCII letters, digits, '.', '_' and '-'");
    }
    Ok(())
}

/// Loads the metadata at startup (before the shards run, so plain blocking IO).
pub fn load(data_dir: &Path) -> Result<Metadata, MetaError> {
    let path = data_dir.join(META_FILE);
    let text = match std::fs::read_to_string(&path) {
        Ok(t) => t,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Ok(Metadata::default()),
        Err(e) => {
            return Err(MetaError::Read {
                path: path.display().to_string(),
                reason: e.to_string(),
            });
        }
    };
    let body = check_header(&text).map_err(|reason| MetaError::Damaged {
        path: path.display().to_string(),
        reason,
    })?;
    toml::from_str(body).map_err(|e| MetaError::Parse {
        path: path.display().to_string(),
        reason: e.to_string(),
    })
}

const HEADER_PREFIX: &str = "# ringbroker metadata: crc32c ";

/// The metadata text with its checksum line first.
fn with_header(body: &str) -> String {
    let crc = crc32c::crc32c(body.as_bytes());
    format!("{HEADER_PREFIX}{crc:08x} length {}\n{body}", body.len())
}

/// The TOML after the checksum line, checked against it (files without the line, from
/// older versions, as they are).
fn check_header(text: &str) -> Result<&str, String> {
    if text.is_empty() {
        return Err("the file is empty".into());
    }
    let Some(rest) = text.strip_prefix(HEADER_PREFIX) else {
        return Ok(text);
    };
    let (line, body) = rest
        .split_once('\n')
        .ok_or("the checksum line is cut off")?;
    let mut words = line.split(' ');
    let (Some(crc), Some("length"), Some(len), None) =
        (words.next(), words.next(), words.next(), words.next())
    else {
        return Err(format!("bad checksum line {line:?}"));
    };
    let crc = u32::from_str_radix(crc, 16).map_err(|e| format!("bad checksum {crc:?}: {e}"))?;
    let len: usize = len
        .parse()
        .map_err(|e| format!("bad length {len:?}: {e}"))?;
    if body.len() != len {
        return Err(format!(
            "{} bytes after the checksum line, {len} written",
            body.len()
        ));
    }
    let actual = crc32c::crc32c(body.as_bytes());
    if actual != crc {
        return Err(format!("checksum {actual:08x}, {crc:08x} written"));
    }
    Ok(body)
}

/// Writes `meta` durably: temp file, fdatasync, rename over the old file, fsync the
/// directory.
pub async fn persist<S: Storage>(
    storage: &S,
    data_dir: &Path,
    meta: &Metadata,
) -> Result<(), MetaError> {
    let text = toml::to_string(meta)
        .map_err(|e| std::io::Error::other(format!("cannot encode metadata: {e}")))?;
    let text = with_header(&text);
    let tmp: PathBuf = data_dir.join(META_TMP);
    if storage.exists(&tmp).await {
        storage.remove_file(&tmp).await?;
    }
    let file = storage.open(&tmp, FileKind::Buffered, true).await?;
    file.write_at(0, &[Bytes::from(text)]).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.rename(&tmp, &data_dir.join(META_FILE)).await?;
    storage.sync_dir(data_dir).await?;
    Ok(())
}

/// `persist` for the main thread before the shards run (plain blocking IO), with the same
/// temp file, fdatasync, rename and directory fsync.
pub fn persist_blocking(data_dir: &Path, meta: &Metadata) -> Result<(), MetaError> {
    use std::io::Write;
    let text = toml::to_string(meta)
        .map_err(|e| std::io::Error::other(format!("cannot encode metadata: {e}")))?;
    let text = with_header(&text);
    let tmp: PathBuf = data_dir.join(META_TMP);
    let mut file = std::fs::File::create(&tmp)?;
    file.write_all(text.as_bytes())?;
    file.sync_data()?;
    drop(file);
    std::fs::rename(&tmp, data_dir.join(META_FILE))?;
    std::fs::File::open(data_dir)?.sync_all()?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_offsets_topic_is_compacted_and_older_data_dirs_gain_its_configs() {
        let config = crate::config::BrokerConfig::default();
        let (meta, added) = ensure_offsets_topic(Metadata::default(), &config);
        assert!(added);
        let configs = &meta.topics["__consumer_offsets"].configs;
        assert_eq!(configs["cleanup.policy"], "compact");
        assert_eq!(configs["retention.ms"], "-1");
        assert_eq!(configs["retention.bytes"], "-1");
        assert_eq!(configs["segment.bytes"], "104857600");
        // The broker's retention settings do not reach it: live offsets are never deleted
        // by age or size, whatever the policy does.
        let mut strict = config.log.clone();
        strict.retention_ms = Some(1);
        strict.retention_bytes = Some(1);
        let log = crate::config::topic::effective(&strict, configs);
        assert_eq!((log.retention_ms, log.retention_bytes), (None, None));
        let (_, again) = ensure_offsets_topic(meta, &config);
        assert!(!again, "nothing changes the second time");
        // A topic from an older ringbroker: retention.ms only, and a segment size of its own.
        let mut old = Metadata::default();
        old.topics.insert(
            "__consumer_offsets".into(),
            TopicMeta {
                partitions: 3,
                id: "x".into(),
                configs: [
                    ("retention.ms".to_string(), "-1".to_string()),
                    ("segment.bytes".to_string(), "2000000".to_string()),
                ]
                .into(),
                assignment: Vec::new(),
            },
        );
        let (meta, changed) = ensure_offsets_topic(old, &config);
        assert!(changed);
        let t = &meta.topics["__consumer_offsets"];
        assert_eq!((t.partitions, t.id.as_str()), (3, "x"));
        assert_eq!(t.configs["cleanup.policy"], "compact");
        assert_eq!(t.configs["retention.bytes"], "-1");
        assert_eq!(t.configs["segment.bytes"], "2000000");
    }

    #[test]
    fn dynamic_broker_configs_round_trip_and_older_files_load() {
        let old: Metadata = toml::from_str("version = 4\n").unwrap();
        assert_eq!(old.broker_configs, Default::default());
        let mut m = Metadata {
            version: 5,
            ..Default::default()
        };
        let one = |k: &str, v: &str| [(k.to_string(), v.to_string())].into();
        m.broker_configs.set(None, one("log.retention.ms", "1000"));
        m.broker_configs
            .set(Some(0), one("message.max.bytes", "5000"));
        let back: Metadata = toml::from_str(&toml::to_string(&m).unwrap()).unwrap();
        assert_eq!(back, m);
    }

    #[test]
    fn topic_names_follow_kafka_rules() {
        for ok in ["a", "events.v1", "A_b-c.9", &"x".repeat(249)] {
            assert!(validate_topic_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a b", "a/b", "é", &"x".repeat(250)] {
            assert!(validate_topic_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn metadata_round_trips_through_toml() {
        let mut m = Metadata {
            version: 3,
            ..Default::default()
        };
        m.topics.insert(
            "my.topic".into(),
            TopicMeta {
                partitions: 4,
                id: new_topic_id(),
                configs: [("flush".to_string(), "fsync".to_string())].into(),
                assignment: Vec::new(),
            },
        );
        let text = toml::to_string(&m).unwrap();
        let back: Metadata = toml::from_str(&text).unwrap();
        assert_eq!(m, back);
        assert_ne!(back.topics["my.topic"].uuid(), uuid::Uuid::nil());
    }
}
