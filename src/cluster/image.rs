//! The cluster metadata every node holds, and the pure `apply` of each command of the
//! replicated log. Every voter applies the same commands in the same order, so every
//! decision taken here (placement, leader elections, producer-id blocks) is the same on
//! every node; nothing here reads a clock, a random source or the local configuration.

use serde::{Deserialize, Serialize};
use std::collections::BTreeMap;

/// Kafka's error codes the commands answer with (the same values as `protocol::code`).
pub mod codes {
    pub const NONE: i16 = 0;
    pub const UNKNOWN_TOPIC_OR_PARTITION: i16 = 3;
    pub const TOPIC_ALREADY_EXISTS: i16 = 36;
    pub const INVALID_PARTITIONS: i16 = 37;
    pub const INVALID_REPLICATION_FACTOR: i16 = 38;
    pub const INVALID_REPLICA_ASSIGNMENT: i16 = 39;
    pub const NOT_LEADER_OR_FOLLOWER: i16 = 6;
    pub const FENCED_LEADER_EPOCH: i16 = 74;
    pub const INELIGIBLE_REPLICA: i16 = 107;
    pub const INVALID_UPDATE_VERSION: i16 = 108;
}

/// The topic config that lets a partition whose in-sync replicas are all gone be led by
/// any live replica, losing what only the lost ones had.
pub const UNCLEAN_ELECTION: &str = "unclean.leader.election.enable";

/// Ids of producer-id blocks handed out at once.
pub const PRODUCER_ID_BLOCK: i64 = 1000;

/// One listener of a broker, where clients and other brokers reach it (Kafka's endpoint:
/// the listener's name and its advertised address).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Endpoint {
    pub name: String,
    pub host: String,
    pub port: u16,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerReg {
    /// The first listener's address.
    pub host: String,
    pub port: u16,
    /// Every listener (absent in older snapshots: then only `host`/`port` are known).
    #[serde(default)]
    pub endpoints: Vec<Endpoint>,
    /// Drawn by the broker process at start: a new incarnation is a restart.
    pub incarnation: u64,
    /// Fenced brokers lead nothing and are not listed to clients.
    pub fenced: bool,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct PartitionImage {
    /// The brokers holding the partition, the preferred leader first.
    pub replicas: Vec<i32>,
    /// -1 when no replica is alive.
    pub leader: i32,
    /// Bumped by every change of leader.
    pub leader_epoch: i32,
    /// The in-sync replicas: the leader and the followers its high watermark waits for.
    /// Changed by the leader (AlterPartition) and by elections. When the last member is
    /// fenced it stays listed (it holds everything acknowledged) and leads on its return.
    pub isr: Vec<i32>,
    /// Bumped by every change of leader or ISR: an AlterPartition made against an older
    /// version is refused (absent in older snapshots).
    #[serde(default)]
    pub partition_epoch: i32,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicImage {
    /// Kafka topic id, 32 hex digits.
    pub id: String,
    pub configs: BTreeMap<String, String>,
    pub partitions: Vec<PartitionImage>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Image {
    pub brokers: BTreeMap<i32, BrokerReg>,
    pub topics: BTreeMap<String, TopicImage>,
    /// Every producer id below this has been handed out in a block.
    pub next_producer_id: i64,
    /// Dynamic broker configs, cluster-wide and per broker (absent in older snapshots).
    #[serde(default)]
    pub broker_configs: crate::config::dynamic::DynamicBrokerConfigs,
    /// The cluster's ACL bindings and SCRAM users (absent in older snapshots).
    #[serde(default)]
    pub security: SecurityImage,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewTopic {
    pub name: String,
    pub id: String,
    pub partitions: i32,
    /// -1 for the cluster's default, resolved by the proposer.
    pub replication_factor: i16,
    pub configs: BTreeMap<String, String>,
    /// The replicas of each partition when the client chose them (CreateTopics'
    /// assignments, in partition order); `partitions` and `replication_factor` then follow.
    #[serde(default)]
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// A topic's new config overrides, all of them (not a difference).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicConfigs {
    pub name: String,
    pub configs: BTreeMap<String, String>,
}

/// Partitions added to a topic (CreatePartitions): the new total count and, when the client
/// chose them, the replicas of each new partition (else they are placed as CreateTopics
/// places partitions). The proposer has bounded `count`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct NewPartitions {
    pub name: String,
    pub count: i32,
    pub assignments: Option<Vec<Vec<i32>>>,
}

/// One entry of the metadata log.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Command {
    /// A broker is alive at this address (sent by the controller on the first heartbeat
    /// of an incarnation, or of a fenced broker): it is unfenced and takes back the
    /// partitions that have no leader.
    Register {
        id: i32,
        host: String,
        port: u16,
        incarnation: u64,
        #[serde(default)]
        endpoints: Vec<Endpoint>,
    },
    /// The controller stopped hearing from the broker: fenced, its partitions get new
    /// leaders.
    Fence {
        id: i32,
    },
    /// The broker is stopping: the same as a fence, asked for by the broker itself.
    ControlledShutdown {
        id: i32,
        incarnation: u64,
    },
    /// Topics with placement decided at apply time over the unfenced brokers.
    CreateTopics {
        topics: Vec<NewTopic>,
    },
    DeleteTopics {
        names: Vec<String>,
    },
    /// Replaces each named topic's config overrides (validated by the proposer, which has
    /// the broker's log defaults; the image only stores them).
    AlterTopicConfigs {
        topics: Vec<TopicConfigs>,
    },
    /// Replaces all dynamic config overrides of one broker (`Some(id)`) or the cluster-wide
    /// ones (`None`); validated by the proposer, stored here. Every broker applies them.
    AlterBrokerConfigs {
        broker: Option<i32>,
        configs: BTreeMap<String, String>,
    },
    /// A block of producer ids for `broker`.
    AllocateProducerIds {
        broker: i32,
    },
    /// More partitions for existing topics.
    CreatePartitions {
        topics: Vec<NewPartitions>,
    },
    /// Kafka's AlterPartition: the leader of a partition, in `leader_epoch`, changes its
    /// ISR, made against `partition_epoch`. A preferred replica that rejoins gets its
    /// leadership back.
    AlterPartition {
        topic: String,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    },
    /// All ACL bindings, replacing those of `version` (refused as stale otherwise, so two
    /// concurrent changes never lose each other's work).
    ReplaceAcls {
        version: u64,
        acls: crate::security::acl::AclSet,
    },
    /// All SCRAM users, replacing those of `version` (refused as stale otherwise).
    ReplaceUsers {
        version: u64,
        users: crate::security::credentials::Users,
    },
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct TopicOutcome {
    pub name: String,
    pub error_code: i16,
    pub message: Option<String>,
}

/// What applying a command answered.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum Outcome {
    Done,
    Topics(Vec<TopicOutcome>),
    /// Producer ids `start..end`.
    ProducerIds {
        start: i64,
        end: i64,
    },
    /// A replacement made against an older version than the image's.
    Stale,
}

impl Image {
    /// The unfenced brokers, by id.
    pub fn live(&self) -> Vec<i32> {
        self.brokers
            .iter()
            .filter(|(_, b)| !b.fenced)
            .map(|(id, _)| *id)
            .collect()
    }

    pub fn is_live(&self, id: i32) -> bool {
        self.brokers.get(&id).is_some_and(|b| !b.fenced)
    }

    /// Applies one committed command. Deterministic: the outcome depends only on the image
    /// and the command.
    pub fn apply(&mut self, cmd: Command) -> Outcome {
        match cmd {
            Command::Register {
                id,
                host,
                port,
                incarnation,
                endpoints,
            } => {
                // A new incarnation of a broker still listed as alive restarted before the
                // controller noticed: what it led gets new leaders (and epochs) first, as
                // if it had been fenced, since its log may have lost its unflushed tail.
                if self
                    .brokers
                    .get(&id)
                    .is_some_and(|b| !b.fenced && b.incarnation != incarnation)
                {
                    self.fence(id);
                }
                self.brokers.insert(
                    id,
                    BrokerReg {
                        host,
                        port,
                        endpoints,
                        incarnation,
                        fenced: false,
                    },
                );
                self.broker_returned(id);
                Outcome::Done
            }
            Command::Fence { id } => {
                self.fence(id);
                Outcome::Done
            }
            Command::ControlledShutdown { id, incarnation } => {
                // A late request of an earlier life must not fence the current one.
                if self
                    .brokers
                    .get(&id)
                    .is_some_and(|b| b.incarnation == incarnation)
                {
                    self.fence(id);
                }
                Outcome::Done
            }
            Command::CreateTopics { topics } => {
                Outcome::Topics(topics.into_iter().map(|t| self.create(t)).collect())
            }
            Command::DeleteTopics { names } => Outcome::Topics(
                names
                    .into_iter()
                    .map(|name| {
                        let error_code = if self.topics.remove(&name).is_some() {
                            codes::NONE
                        } else {
                            codes::UNKNOWN_TOPIC_OR_PARTITION
                        };
                        TopicOutcome {
                            name,
                            error_code,
                            message: None,
                        }
                    })
                    .collect(),
            ),
            Command::AlterTopicConfigs { topics } => {
                let out = self.alter_topic_configs(topics);
                self.elect_unclean_where_allowed();
                out
            }
            Command::AlterBrokerConfigs { broker, configs } => {
                self.broker_configs.set(broker, configs);
                self.elect_unclean_where_allowed();
                Outcome::Done
            }
            Command::AllocateProducerIds { broker: _ } => {
                let start = self.next_producer_id;
                let end = start.saturating_add(PRODUCER_ID_BLOCK);
                self.next_producer_id = end;
                Outcome::ProducerIds { start, end }
            }
            Command::CreatePartitions { topics } => {
                Outcome::Topics(topics.into_iter().map(|t| self.add_partitions(t)).collect())
            }
            Command::AlterPartition {
                topic,
                partition,
                leader,
                leader_epoch,
                partition_epoch,
                isr,
            } => {
                let error_code = self.alter_partition(
                    &topic,
                    partition,
                    leader,
                    leader_epoch,
                    partition_epoch,
                    isr,
                );
                Outcome::Topics(vec![TopicOutcome {
                    name: topic,
                    error_code,
                    message: None,
                }])
            }
            Command::ReplaceAcls { version, acls } => self.security.replace_acls(version, acls),
            Command::ReplaceUsers { version, users } => self.security.replace_users(version, users),
        }
    }
}

mod elections;
mod placement;
mod security;
pub use placement::place;
pub use security::SecurityImage;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_security;
