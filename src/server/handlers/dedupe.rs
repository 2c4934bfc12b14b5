//! Requests cannot amplify: a topic, partition or group named many times is looked up and
//! answered once (Kafka collapses them too). Without this, one request naming a 10,000-
//! partition topic 100,000 times asks for a billion partition entries.

use kafka_protocol::messages::OffsetCommitRequest;
use kafka_protocol::messages::offset_delete_request::OffsetDeleteRequestTopic;
use std::collections::{HashMap, HashSet};
use std::hash::Hash;

/// The items in their first-seen order, each once.
pub fn unique<T: Eq + Hash + Clone>(items: impl IntoIterator<Item = T>) -> Vec<T> {
    let mut seen = HashSet::new();
    items
        .into_iter()
        .filter(|i| seen.insert(i.clone()))
        .collect()
}

/// How a (topic, partition) of a Produce or ListOffsets request is named.
#[derive(Debug, PartialEq, Eq)]
pub enum Naming {
    /// Named once.
    Once,
    /// The first of several places that name it: answered here, with INVALID_REQUEST.
    FirstOfMany,
    /// A later place: left out of the answer.
    Repeat,
}

/// The partitions of a request that names some more than once. Most requests name each
/// partition once; those with a single partition build no map at all.
pub struct Repeats<'a> {
    counts: Option<HashMap<(&'a str, i32), u32>>,
    answered: HashSet<(&'a str, i32)>,
}

impl<'a> Repeats<'a> {
    pub fn count(keys: impl Iterator<Item = (&'a str, i32)> + Clone) -> Repeats<'a> {
        let counts = (keys.clone().nth(1).is_some()).then(|| {
            let mut counts: HashMap<(&'a str, i32), u32> = HashMap::new();
            for k in keys {
                *counts.entry(k).or_default() += 1;
            }
            counts
        });
        Repeats {
            counts,
            answered: HashSet::new(),
        }
    }

    /// Visits the next place in request order.
    pub fn visit(&mut self, key: (&'a str, i32)) -> Naming {
        let Some(counts) = &self.counts else {
            return Naming::Once;
        };
        if !self.answered.insert(key) {
            Naming::Repeat
        } else if counts.get(&key).is_some_and(|n| *n > 1) {
            Naming::FirstOfMany
        } else {
            Naming::Once
        }
    }
}

/// Topics with their partitions, each (topic, partition) once: a topic named twice is
/// merged into its first place.
pub fn unique_partitions(topics: Vec<(String, Vec<i32>)>) -> Vec<(String, Vec<i32>)> {
    let mut out: Vec<(String, Vec<i32>)> = Vec::new();
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    for (topic, partitions) in topics {
        let fresh: Vec<i32> = partitions
            .into_iter()
            .filter(|p| seen.insert((topic.clone(), *p)))
            .collect();
        match out.iter_mut().find(|(t, _)| *t == topic) {
            Some((_, ps)) => ps.extend(fresh),
            None => out.push((topic, fresh)),
        }
    }
    out
}

/// Keeps the last commit of each (topic, partition), as Kafka's map of offsets does, and
/// drops topics left empty.
pub fn last_commit_per_partition(req: &mut OffsetCommitRequest) {
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    for t in req.topics.iter_mut().rev() {
        let name = t.name.0.to_string();
        let mut keep: Vec<bool> = t
            .partitions
            .iter()
            .rev()
            .map(|p| seen.insert((name.clone(), p.partition_index)))
            .collect();
        keep.reverse();
        let mut keep = keep.into_iter();
        t.partitions.retain(|_| keep.next().unwrap_or(false));
    }
    req.topics.retain(|t| !t.partitions.is_empty());
}

/// Each (topic, partition) of an OffsetDelete once.
pub fn unique_offset_deletes(topics: &mut Vec<OffsetDeleteRequestTopic>) {
    let mut seen: HashSet<(String, i32)> = HashSet::new();
    for t in topics.iter_mut() {
        let name = t.name.0.to_string();
        t.partitions
            .retain(|p| seen.insert((name.clone(), p.partition_index)));
    }
    topics.retain(|t| !t.partitions.is_empty());
}

#[cfg(test)]
mod tests {
    use super::*;
    use kafka_protocol::messages::TopicName;
    use kafka_protocol::messages::offset_commit_request::{
        OffsetCommitRequestPartition, OffsetCommitRequestTopic,
    };
    use kafka_protocol::protocol::StrBytes;

    #[test]
    fn repeated_names_collapse() {
        assert_eq!(unique(vec!["b", "a", "b", "a", "c"]), vec!["b", "a", "c"]);
        let merged = unique_partitions(vec![
            ("t".into(), vec![0, 1, 0]),
            ("u".into(), vec![2]),
            ("t".into(), vec![1, 3]),
        ]);
        assert_eq!(
            merged,
            vec![("t".into(), vec![0, 1, 3]), ("u".into(), vec![2])]
        );
    }

    #[test]
    fn a_partition_named_twice_is_answered_once() {
        let keys = [("t", 0), ("t", 1), ("t", 0), ("u", 0)];
        let mut r = Repeats::count(keys.iter().copied());
        let seen: Vec<Naming> = keys.iter().map(|k| r.visit(*k)).collect();
        assert_eq!(
            seen,
            vec![
                Naming::FirstOfMany,
                Naming::Once,
                Naming::Repeat,
                Naming::Once
            ]
        );
        let mut one = Repeats::count([("t", 0)].into_iter());
        assert_eq!(one.visit(("t", 0)), Naming::Once);
    }

    #[test]
    fn the_last_commit_of_a_partition_wins() {
        let part = |p, o| {
            OffsetCommitRequestPartition::default()
                .with_partition_index(p)
                .with_committed_offset(o)
        };
        let topic = |ps| {
            OffsetCommitRequestTopic::default()
                .with_name(TopicName(StrBytes::from_static_str("t")))
                .with_partitions(ps)
        };
        let mut req = OffsetCommitRequest::default().with_topics(vec![
            topic(vec![part(0, 1), part(1, 5)]),
            topic(vec![part(0, 9)]),
        ]);
        last_commit_per_partition(&mut req);
        let got: Vec<(i32, i64)> = req
            .topics
            .iter()
            .flat_map(|t| t.partitions.iter())
            .map(|p| (p.partition_index, p.committed_offset))
            .collect();
        assert_eq!(got, vec![(1, 5), (0, 9)]);
    }
}
