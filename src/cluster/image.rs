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

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct BrokerReg {
    pub host: String,
    pub port: u16,
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
            Command::AlterTopicConfigs { topics } => Outcome::Topics(
                topics
                    .into_iter()
                    .map(|t| {
                        let error_code = match self.topics.get_mut(&t.name) {
                            Some(topic) => {
                                topic.configs = t.configs;
                                codes::NONE
                            }
                            None => codes::UNKNOWN_TOPIC_OR_PARTITION,
                        };
                        TopicOutcome {
                            name: t.name,
                            error_code,
                            message: None,
                        }
                    })
                    .collect(),
            ),
            Command::AlterBrokerConfigs { broker, configs } => {
                self.broker_configs.set(broker, configs);
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
        }
    }

    /// Partitions each live broker leads.
    fn leader_counts(&self, live: &[i32]) -> BTreeMap<i32, usize> {
        let mut counts: BTreeMap<i32, usize> = live.iter().map(|id| (*id, 0)).collect();
        for t in self.topics.values() {
            for p in &t.partitions {
                if let Some(c) = counts.get_mut(&p.leader) {
                    *c += 1;
                }
            }
        }
        counts
    }

    fn create(&mut self, t: NewTopic) -> TopicOutcome {
        let fail = |error_code, message: String| TopicOutcome {
            name: t.name.clone(),
            error_code,
            message: Some(message),
        };
        if self.topics.contains_key(&t.name) {
            return fail(
                codes::TOPIC_ALREADY_EXISTS,
                format!("topic {} already exists", t.name),
            );
        }
        let live = self.live();
        let partitions = match &t.assignments {
            Some(assignments) => {
                let rf = assignments.first().map_or(0, Vec::len);
                if rf == 0 {
                    return fail(
                        codes::INVALID_REPLICA_ASSIGNMENT,
                        "a manual assignment needs at least one partition with replicas".into(),
                    );
                }
                let mut partitions = Vec::with_capacity(assignments.len());
                for replicas in assignments {
                    if let Err(m) = self.check_assignment(replicas, rf) {
                        return fail(codes::INVALID_REPLICA_ASSIGNMENT, m);
                    }
                    partitions.push(assigned(replicas, &live));
                }
                partitions
            }
            None => {
                let rf = usize::try_from(t.replication_factor).unwrap_or(0);
                if rf == 0 || rf > live.len() {
                    return fail(
                        codes::INVALID_REPLICATION_FACTOR,
                        format!(
                            "replication factor {} needs that many live brokers; {} are alive",
                            t.replication_factor,
                            live.len()
                        ),
                    );
                }
                place(t.partitions, rf, &live, self.leader_counts(&live))
            }
        };
        self.topics.insert(
            t.name.clone(),
            TopicImage {
                id: t.id,
                configs: t.configs,
                partitions,
            },
        );
        TopicOutcome {
            name: t.name,
            error_code: codes::NONE,
            message: None,
        }
    }
}

impl Image {
    /// Adds the partitions of `t` to its topic, with Kafka's refusals: an unknown topic, a
    /// count that is not an increase, assignments that do not name one registered, distinct
    /// broker per replica for each new partition and as many replicas as the topic has.
    fn add_partitions(&mut self, t: NewPartitions) -> TopicOutcome {
        let fail = |error_code, message: Option<String>| TopicOutcome {
            name: t.name.clone(),
            error_code,
            message,
        };
        let Some(topic) = self.topics.get(&t.name) else {
            return fail(codes::UNKNOWN_TOPIC_OR_PARTITION, None);
        };
        let have = topic.partitions.len();
        let count = usize::try_from(t.count).unwrap_or(0);
        if count == have {
            return fail(
                codes::INVALID_PARTITIONS,
                Some(format!("Topic already has {have} partition(s).")),
            );
        }
        if count < have {
            return fail(
                codes::INVALID_PARTITIONS,
                Some(format!(
                    "The topic {} currently has {have} partition(s); {} would not be an \
                     increase.",
                    t.name, t.count
                )),
            );
        }
        let added = count - have;
        let rf = topic.partitions.first().map_or(1, |p| p.replicas.len());
        let live = self.live();
        let new = match &t.assignments {
            Some(assignments) => {
                if assignments.len() != added {
                    return fail(
                        codes::INVALID_REPLICA_ASSIGNMENT,
                        Some(format!(
                            "Attempted to add {added} additional partition(s), but only {} \
                             assignment(s) were specified.",
                            assignments.len()
                        )),
                    );
                }
                let mut new = Vec::with_capacity(added);
                for replicas in assignments {
                    if let Err(m) = self.check_assignment(replicas, rf) {
                        return fail(codes::INVALID_REPLICA_ASSIGNMENT, Some(m));
                    }
                    new.push(assigned(replicas, &live));
                }
                new
            }
            None => {
                if rf > live.len() {
                    return fail(
                        codes::INVALID_REPLICATION_FACTOR,
                        Some(format!(
                            "Unable to replicate the new partitions {rf} time(s): only {} \
                             broker(s) are alive.",
                            live.len()
                        )),
                    );
                }
                let added = i32::try_from(added).unwrap_or(0);
                place(added, rf, &live, self.leader_counts(&live))
            }
        };
        if let Some(topic) = self.topics.get_mut(&t.name) {
            topic.partitions.extend(new);
        }
        TopicOutcome {
            name: t.name,
            error_code: codes::NONE,
            message: None,
        }
    }

    fn check_assignment(&self, replicas: &[i32], rf: usize) -> Result<(), String> {
        if replicas.len() != rf {
            return Err(format!(
                "The manual partition assignment includes a partition with {} replica(s), but \
                 this is not consistent with previous partitions, which have {rf} replica(s).",
                replicas.len()
            ));
        }
        for (i, b) in replicas.iter().enumerate() {
            if !self.brokers.contains_key(b) {
                return Err(format!(
                    "The manual partition assignment includes broker {b}, but no such broker \
                     is registered."
                ));
            }
            if replicas[..i].contains(b) {
                return Err(format!(
                    "The manual partition assignment includes the broker {b} more than once."
                ));
            }
        }
        Ok(())
    }
}

/// A partition on the replicas a client chose: led by the first live one, with the live
/// ones in sync (no leader while none is alive).
fn assigned(replicas: &[i32], live: &[i32]) -> PartitionImage {
    let isr: Vec<i32> = replicas
        .iter()
        .copied()
        .filter(|r| live.contains(r))
        .collect();
    PartitionImage {
        leader: isr.first().copied().unwrap_or(-1),
        replicas: replicas.to_vec(),
        leader_epoch: 0,
        isr,
        partition_epoch: 0,
    }
}

/// Replica lists for `count` partitions of `rf` replicas over `live` (sorted, distinct,
/// at least `rf` of them). Each partition's leader is the live broker that leads the fewest
/// partitions so far (ties to the lower id), and its followers are the brokers after it in
/// id order, so leaders and replicas spread evenly across topics too.
pub fn place(
    count: i32,
    rf: usize,
    live: &[i32],
    mut leads: BTreeMap<i32, usize>,
) -> Vec<PartitionImage> {
    let n = live.len();
    let mut out = Vec::new();
    if n == 0 {
        return out;
    }
    for _ in 0..count.max(0) {
        let (pos, leader) = live
            .iter()
            .enumerate()
            .min_by_key(|(_, id)| (leads.get(id).copied().unwrap_or(0), **id))
            .map(|(pos, id)| (pos, *id))
            .unwrap_or((0, live[0]));
        *leads.entry(leader).or_insert(0) += 1;
        let replicas: Vec<i32> = (0..rf.min(n)).map(|k| live[(pos + k) % n]).collect();
        out.push(PartitionImage {
            isr: replicas.clone(),
            replicas,
            leader,
            leader_epoch: 0,
            partition_epoch: 0,
        });
    }
    out
}

mod elections;
#[cfg(test)]
mod tests;
