//! Where new partitions go: CreateTopics and CreatePartitions placement over the live
//! brokers, or the replicas a client chose.

use super::*;

impl Image {
    /// Replaces each named topic's config overrides.
    pub(super) fn alter_topic_configs(&mut self, topics: Vec<TopicConfigs>) -> Outcome {
        Outcome::Topics(
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
        )
    }

    /// Partitions each live broker leads.
    pub(super) fn leader_counts(&self, live: &[i32]) -> BTreeMap<i32, usize> {
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

    pub(super) fn create(&mut self, t: NewTopic) -> TopicOutcome {
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
    pub(super) fn add_partitions(&mut self, t: NewPartitions) -> TopicOutcome {
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

    pub(super) fn check_assignment(&self, replicas: &[i32], rf: usize) -> Result<(), String> {
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
