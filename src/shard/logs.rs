//! The partition logs a shard owns and its view of the metadata: what the shard's own
//! code and its group coordinator's offsets log both read.

use super::meta::{self, Metadata};
use crate::config::{LogConfig, topic};
use crate::storage::{GlommioStorage, PartitionLog};
use std::cell::RefCell;
use std::collections::{BTreeMap, HashMap};
use std::rc::Rc;
use std::sync::Arc;

pub type Log = PartitionLog<GlommioStorage>;

/// This shard's read-only view of the metadata, with what the hot path needs precomputed.
pub struct MetaView {
    pub meta: Arc<Metadata>,
    pub topics: HashMap<String, TopicView>,
    /// This broker's configuration in force: the static one with the dynamic broker
    /// configs of this version (cluster-wide, then this broker's).
    pub config: crate::config::BrokerConfig,
}

pub struct TopicView {
    pub partitions: i32,
    pub id: uuid::Uuid,
    pub log: LogConfig,
}

impl MetaView {
    pub(super) fn build(meta: Arc<Metadata>, base: &crate::config::BrokerConfig) -> MetaView {
        let node = meta.cluster.as_ref().map(|c| c.node).unwrap_or(0);
        let config = meta.broker_configs.effective(base, node);
        let defaults = &config.log;
        let topics = meta
            .topics
            .iter()
            .map(|(name, t)| {
                let mut log = topic::effective(defaults, &t.configs);
                if meta::is_internal(name) {
                    // The broker's own state: kept whatever the broker's retention defaults
                    // say (offsets are compacted in memory only).
                    log.retention_bytes = None;
                    log.retention_ms = None;
                }
                let view = TopicView {
                    partitions: t.partitions,
                    id: t.uuid(),
                    log,
                };
                (name.clone(), view)
            })
            .collect();
        MetaView {
            meta,
            topics,
            config,
        }
    }

    /// This broker's node id (0 for a broker that runs alone).
    pub fn node_id(&self) -> i32 {
        self.meta.cluster.as_ref().map(|c| c.node).unwrap_or(0)
    }

    /// The placement of a partition in a cluster; `None` alone or for an unknown partition.
    pub fn assignment(&self, topic: &str, partition: i32) -> Option<&meta::Assignment> {
        let t = self.meta.topics.get(topic)?;
        t.assignment.get(usize::try_from(partition).ok()?)
    }

    /// Whether this broker answers for the partition as its leader: always when it runs
    /// alone; in a cluster, when the metadata names it leader and it holds its lease.
    pub fn leads(&self, topic: &str, partition: i32) -> bool {
        match &self.meta.cluster {
            None => true,
            Some(c) => {
                c.lease
                    && self
                        .assignment(topic, partition)
                        .is_some_and(|a| a.leader == c.node)
            }
        }
    }

    /// Whether this broker holds a copy of the partition (opens its log).
    pub fn is_replica(&self, topic: &str, partition: i32) -> bool {
        match &self.meta.cluster {
            None => true,
            Some(c) => self
                .assignment(topic, partition)
                .is_some_and(|a| a.replicas.contains(&c.node)),
        }
    }
}

pub struct LogTable {
    pub(super) meta: RefCell<Rc<MetaView>>,
    pub(super) logs: RefCell<HashMap<String, BTreeMap<i32, Log>>>,
    /// Partitions of this shard whose log could not be opened (damage found on disk, an
    /// IO error), with the reason: offline until an operator repairs them and restarts
    /// the broker. Requests for them get KAFKA_STORAGE_ERROR.
    pub(super) offline: RefCell<HashMap<(String, i32), String>>,
}

impl LogTable {
    pub fn new(view: MetaView) -> LogTable {
        LogTable {
            meta: RefCell::new(Rc::new(view)),
            logs: RefCell::new(HashMap::new()),
            offline: RefCell::new(HashMap::new()),
        }
    }

    pub fn meta(&self) -> Rc<MetaView> {
        self.meta.borrow().clone()
    }

    /// The log of a partition this shard owns.
    pub fn log(&self, topic: &str, partition: i32) -> Option<Log> {
        self.logs.borrow().get(topic)?.get(&partition).cloned()
    }

    /// Why a partition of this shard is offline, if it is.
    pub fn offline(&self, topic: &str, partition: i32) -> Option<String> {
        self.offline
            .borrow()
            .get(&(topic.to_string(), partition))
            .cloned()
    }
}
