//! The shard table: which shard owns partition `(topic, p)`.
//!
//! Ownership is a pure function of the topic name, the partition and the shard count, so
//! every shard computes it without coordination. The topic hash picks where a topic's
//! partitions start and consecutive partitions go to consecutive shards, so the partitions
//! of one topic spread evenly. The hash is FNV-1a, not std's randomly seeded hasher: the
//! mapping must be the same on every shard and across restarts.

pub use crate::protocol::strings::name_hash as topic_hash;

/// The shard that owns partition `partition` of `topic` among `shards` shards.
pub fn owner(topic: &str, partition: i32, shards: usize) -> usize {
    debug_assert!(shards > 0 && partition >= 0);
    let start = topic_hash(topic) % shards as u64;
    ((start + partition as u64) % shards as u64) as usize
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn partitions_of_a_topic_spread_evenly() {
        for shards in 1..=8 {
            let mut count = vec![0; shards];
            for p in 0..(shards as i32 * 5) {
                count[owner("events", p, shards)] += 1;
            }
            assert!(count.iter().all(|&c| c == 5), "{shards}: {count:?}");
        }
    }

    #[test]
    fn ownership_is_stable() {
        // A change of this mapping moves partitions between shards on upgrade: keep it.
        assert_eq!(topic_hash(""), 0xcbf2_9ce4_8422_2325);
        assert_eq!(owner("a", 0, 2), owner("a", 2, 2));
        assert_ne!(owner("a", 0, 2), owner("a", 1, 2));
    }
}
