//! CreatePartitions: shard 0 checks each topic's new partition count with Kafka's rules and
//! the broker's limits, then persists the new count (alone) or proposes
//! `Command::CreatePartitions` to the metadata log (in a cluster). Every shard then opens the
//! logs of the new partitions it owns as it applies the new metadata, before the client is
//! answered.

use super::Shard;
use super::messages::{PartitionsChange, TopicResult};
use super::meta::{self, Metadata};
use crate::cluster::image::{Command, NewPartitions};
use crate::protocol::code;
use std::collections::{BTreeMap, BTreeSet};
use std::rc::Rc;

/// The node id of a broker that runs alone (what Metadata names it).
const ALONE_NODE_ID: i32 = 0;

impl Shard {
    /// Shard 0 only: validates, persists (or proposes) and broadcasts new partitions.
    pub(super) async fn create_partitions(
        self: &Rc<Self>,
        changes: Vec<PartitionsChange>,
        validate_only: bool,
    ) -> Vec<TopicResult> {
        debug_assert_eq!(self.id, 0, "metadata has one writer");
        let _writer = self.meta_write.lock().await;
        let mut next = (*self.meta().meta).clone();
        // Partitions the broker would hold, counting those this request adds so far.
        let mut held: i64 = next.topics.values().map(|t| i64::from(t.partitions)).sum();
        let mut results = Vec::with_capacity(changes.len());
        let mut changed = Vec::new();
        let mut proposed = Vec::new();
        for change in changes {
            let mut result = TopicResult {
                name: change.topic.clone(),
                error_code: code::NONE,
                error_message: None,
                partitions: change.count,
                id: String::new(),
            };
            match self.check_new_partitions(&next, &change, held) {
                Err((c, m)) => {
                    result.error_code = c;
                    result.error_message = Some(m);
                }
                Ok(added) => {
                    held = held.saturating_add(added);
                    if validate_only {
                    } else if next.cluster.is_some() {
                        proposed.push(NewPartitions {
                            name: change.topic,
                            count: change.count,
                            assignments: change.assignments,
                        });
                    } else if let Some(t) = next.topics.get_mut(&change.topic) {
                        t.partitions = change.count;
                        changed.push(results.len());
                    }
                }
            }
            results.push(result);
        }
        if !proposed.is_empty() {
            let want: BTreeMap<String, i32> =
                proposed.iter().map(|t| (t.name.clone(), t.count)).collect();
            let cmd = Command::CreatePartitions { topics: proposed };
            self.apply_outcome(cmd, &mut results, |m, n| {
                m.topics
                    .get(n)
                    .is_some_and(|t| Some(&t.partitions) >= want.get(n))
            })
            .await;
        }
        if !changed.is_empty()
            && let Err(e) = self.publish(next).await
        {
            tracing::error!("cannot persist new partitions: {e}");
            for i in changed {
                results[i].error_code = code::KAFKA_STORAGE_ERROR;
                results[i].error_message = Some(e.to_string());
            }
        }
        results
    }

    /// How many partitions `change` adds, or why it is refused. `held` is the number of
    /// partitions the broker holds counting earlier topics of the same request.
    fn check_new_partitions(
        &self,
        meta: &Metadata,
        change: &PartitionsChange,
        held: i64,
    ) -> Result<i64, (i16, String)> {
        let name = &change.topic;
        if meta::is_internal(name) {
            return Err((
                code::INVALID_REQUEST,
                format!("{name} is an internal topic; its partitions belong to the broker"),
            ));
        }
        let Some(t) = meta.topics.get(name) else {
            return Err((
                code::UNKNOWN_TOPIC_OR_PARTITION,
                format!("topic {name} does not exist"),
            ));
        };
        let (have, count) = (t.partitions, change.count);
        if count == have {
            return Err((
                code::INVALID_PARTITIONS,
                format!("Topic already has {have} partition(s)."),
            ));
        }
        if count < have {
            return Err((
                code::INVALID_PARTITIONS,
                format!(
                    "The topic {name} currently has {have} partition(s); {count} would not be \
                     an increase."
                ),
            ));
        }
        let max = self.config.limits.topic_partitions_max;
        if count > max {
            return Err((
                code::INVALID_PARTITIONS,
                format!("partitions must be in 1..={max} (topic.partitions.max)"),
            ));
        }
        let added = i64::from(count) - i64::from(have);
        let cap = self.config.limits.broker_partitions_max;
        if held.saturating_add(added) > cap {
            return Err((
                code::POLICY_VIOLATION,
                format!(
                    "the broker holds {held} partitions; {added} more would pass \
                     broker.partitions.max = {cap}"
                ),
            ));
        }
        // The replication factor of the topic and the brokers that may hold a replica.
        let (rf, brokers): (usize, BTreeSet<i32>) = match &meta.cluster {
            None => (1, [ALONE_NODE_ID].into()),
            Some(c) => (
                t.assignment.first().map_or(1, |a| a.replicas.len()),
                c.brokers.keys().copied().collect(),
            ),
        };
        match &change.assignments {
            Some(a) => check_assignments(a, added, rf, &brokers)?,
            None if rf > brokers.len() => {
                return Err((
                    code::INVALID_REPLICATION_FACTOR,
                    format!(
                        "Unable to replicate the new partitions {rf} time(s): only {} broker(s) \
                         are alive.",
                        brokers.len()
                    ),
                ));
            }
            None => {}
        }
        Ok(added)
    }
}

/// Kafka's checks of manual assignments: one per new partition, each naming `rf` distinct
/// known brokers. (In a cluster the image checks them again against the registrations.)
fn check_assignments(
    assignments: &[Vec<i32>],
    added: i64,
    rf: usize,
    brokers: &BTreeSet<i32>,
) -> Result<(), (i16, String)> {
    let invalid = |m: String| Err((code::INVALID_REPLICA_ASSIGNMENT, m));
    if i64::try_from(assignments.len()).ok() != Some(added) {
        return invalid(format!(
            "Attempted to add {added} additional partition(s), but only {} assignment(s) were \
             specified.",
            assignments.len()
        ));
    }
    for replicas in assignments {
        if replicas.len() != rf {
            return invalid(format!(
                "The manual partition assignment includes a partition with {} replica(s), but \
                 this is not consistent with previous partitions, which have {rf} replica(s).",
                replicas.len()
            ));
        }
        let mut seen = BTreeSet::new();
        for b in replicas {
            if !brokers.contains(b) {
                return invalid(format!(
                    "The manual partition assignment includes broker {b}, but no such broker \
                     is registered."
                ));
            }
            if !seen.insert(*b) {
                return invalid(format!(
                    "The manual partition assignment includes the broker {b} more than once."
                ));
            }
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn assignments_are_checked_as_kafka_checks_them() {
        let brokers: BTreeSet<i32> = [1, 2, 3].into();
        let ok = check_assignments(&[vec![1, 2], vec![3, 1]], 2, 2, &brokers);
        assert!(ok.is_ok());
        for (bad, added) in [
            (vec![vec![1, 2]], 2),
            (vec![vec![1, 2], vec![3]], 2),
            (vec![vec![1, 2], vec![3, 3]], 2),
            (vec![vec![1, 2], vec![3, 4]], 2),
            (vec![], 1),
        ] {
            let got = check_assignments(&bad, added, 2, &brokers);
            assert_eq!(
                got.map_err(|(c, _)| c),
                Err(code::INVALID_REPLICA_ASSIGNMENT),
                "{bad:?}"
            );
        }
    }
}
