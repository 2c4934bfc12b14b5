//! Leadership and ISR changes of the image: AlterPartition from a partition's leader, and
//! the elections that fencing a broker or its return cause.

use super::{Image, TopicImage, UNCLEAN_ELECTION, codes};

/// Whether a partition of `t` whose in-sync replicas are all gone may be led by another
/// replica: the topic's `unclean.leader.election.enable`, else the cluster-wide dynamic
/// broker config of that name (`cluster_default`), else not.
fn unclean(t: &TopicImage, cluster_default: Option<&str>) -> bool {
    t.configs
        .get(UNCLEAN_ELECTION)
        .map(String::as_str)
        .or(cluster_default)
        == Some("true")
}

impl Image {
    pub(super) fn alter_partition(
        &mut self,
        topic: &str,
        partition: i32,
        leader: i32,
        leader_epoch: i32,
        partition_epoch: i32,
        isr: Vec<i32>,
    ) -> i16 {
        let live = self.live();
        let Some(p) = self
            .topics
            .get_mut(topic)
            .and_then(|t| t.partitions.get_mut(usize::try_from(partition).ok()?))
        else {
            return codes::UNKNOWN_TOPIC_OR_PARTITION;
        };
        if p.leader != leader {
            return codes::NOT_LEADER_OR_FOLLOWER;
        }
        if p.leader_epoch != leader_epoch {
            return codes::FENCED_LEADER_EPOCH;
        }
        if p.partition_epoch != partition_epoch {
            return codes::INVALID_UPDATE_VERSION;
        }
        let mut seen = Vec::with_capacity(isr.len());
        for r in &isr {
            if !p.replicas.contains(r) || !live.contains(r) || seen.contains(r) {
                return codes::INELIGIBLE_REPLICA;
            }
            seen.push(*r);
        }
        if !isr.contains(&leader) {
            return codes::INELIGIBLE_REPLICA;
        }
        p.isr = isr;
        p.partition_epoch = p.partition_epoch.saturating_add(1);
        // The preferred replica is back in sync: it leads again (Kafka's preferred leader
        // election, run as soon as it is possible).
        if let Some(&preferred) = p.replicas.first()
            && preferred != p.leader
            && p.isr.contains(&preferred)
        {
            p.leader = preferred;
            p.leader_epoch = p.leader_epoch.saturating_add(1);
        }
        codes::NONE
    }

    pub(super) fn fence(&mut self, id: i32) {
        let Some(b) = self.brokers.get_mut(&id) else {
            return;
        };
        b.fenced = true;
        let live = self.live();
        let default = self.broker_configs.default.get(UNCLEAN_ELECTION).cloned();
        for t in self.topics.values_mut() {
            let unclean = unclean(t, default.as_deref());
            for p in &mut t.partitions {
                let before = (p.leader, p.isr.len());
                // The last in-sync replica stays listed: it alone is known to hold
                // everything acknowledged.
                if p.isr.len() > 1 {
                    p.isr.retain(|r| *r != id);
                }
                if p.leader == id {
                    // Elections take an in-sync replica; with none alive, the partition
                    // waits for one (or, with unclean election, takes any live replica).
                    let clean = p.isr.iter().copied().find(|r| live.contains(r));
                    let next = clean.or_else(|| {
                        unclean
                            .then(|| p.replicas.iter().copied().find(|r| live.contains(r)))
                            .flatten()
                    });
                    p.leader = next.unwrap_or(-1);
                    if clean.is_none()
                        && let Some(n) = next
                    {
                        p.isr = vec![n];
                    }
                    p.leader_epoch = p.leader_epoch.saturating_add(1);
                }
                if (p.leader, p.isr.len()) != before {
                    p.partition_epoch = p.partition_epoch.saturating_add(1);
                }
            }
        }
    }

    /// A broker is back: it leads the partitions that had no leader and list it in sync
    /// (or list nobody: none was ever alive; or, with unclean election, any it holds a
    /// replica of). It rejoins other ISRs
    /// through their leaders once it has caught up.
    pub(super) fn broker_returned(&mut self, id: i32) {
        let default = self.broker_configs.default.get(UNCLEAN_ELECTION).cloned();
        for t in self.topics.values_mut() {
            let unclean = unclean(t, default.as_deref());
            for p in &mut t.partitions {
                if !p.replicas.contains(&id) || p.leader != -1 {
                    continue;
                }
                if p.isr.contains(&id) || p.isr.is_empty() || unclean {
                    p.leader = id;
                    p.isr = vec![id];
                    p.leader_epoch = p.leader_epoch.saturating_add(1);
                    p.partition_epoch = p.partition_epoch.saturating_add(1);
                }
            }
        }
    }

    /// After a config change: partitions without a leader whose topic now allows unclean
    /// election are led by their first live replica (Kafka elects them when the config
    /// is enabled, not only at the next broker change).
    pub(super) fn elect_unclean_where_allowed(&mut self) {
        let live = self.live();
        let default = self.broker_configs.default.get(UNCLEAN_ELECTION).cloned();
        for t in self.topics.values_mut() {
            if !unclean(t, default.as_deref()) {
                continue;
            }
            for p in &mut t.partitions {
                if p.leader != -1 {
                    continue;
                }
                if let Some(n) = p.replicas.iter().copied().find(|r| live.contains(r)) {
                    p.leader = n;
                    p.isr = vec![n];
                    p.leader_epoch = p.leader_epoch.saturating_add(1);
                    p.partition_epoch = p.partition_epoch.saturating_add(1);
                }
            }
        }
    }
}
