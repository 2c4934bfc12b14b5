//! Log compaction (`cleanup.policy=compact`): Kafka's cleaner, one partition at a time.
//!
//! A clean of a log (`PartitionLog::clean`, in `log::compact`):
//! 1. The dirty section is the sealed segments from the cleaner checkpoint (the offset up
//!    to which the log was cleaned before, Kafka's `cleaner-offset-checkpoint`) up to the
//!    first segment holding a record younger than `min.compaction.lag.ms`; the active
//!    segment is never touched.
//! 2. A [`KeyMap`] of key → latest offset is built over the dirty section, within a
//!    memory bound; when the bound is reached the dirty section ends at that segment.
//! 3. The segments from the log start to the end of the dirty section are rewritten, in
//!    groups of up to `segment.bytes`: a record stays if no later record has its key; a
//!    batch keeps its offsets (gaps are normal); a batch left with no record goes, except
//!    the last batch of an idempotent producer, kept empty so that the producer state
//!    rebuilt on open still knows its last sequence (Kafka does the same). A tombstone
//!    gets a delete horizon (now + `delete.retention.ms`, stored in its batch as Kafka's
//!    KIP-534 does) the first time it is cleaned, and goes at the first clean after that.
//! 4. Each group is written as `<base>.log.cleaned`, synced, and swapped in
//!    (`log::swap`), so that a crash at any point leaves the old or the new segments.

pub mod records;

use std::collections::HashMap;

/// Bytes one entry of the map is counted for, on top of its key: the hash table slot,
/// the boxed key's header and the offset.
const ENTRY_OVERHEAD_BYTES: u64 = 64;

/// Key → offset of its latest record in the dirty section, bounded in memory.
pub struct KeyMap {
    map: HashMap<Box<[u8]>, i64>,
    used_bytes: u64,
    limit_bytes: u64,
}

impl KeyMap {
    pub fn new(limit_bytes: u64) -> KeyMap {
        KeyMap {
            map: HashMap::new(),
            used_bytes: 0,
            limit_bytes,
        }
    }

    /// Records that `key`'s latest record is at `offset`. `false` (and nothing recorded)
    /// when a new key would pass the memory bound.
    pub fn put(&mut self, key: &[u8], offset: i64) -> bool {
        if let Some(o) = self.map.get_mut(key) {
            *o = (*o).max(offset);
            return true;
        }
        let cost = key.len() as u64 + ENTRY_OVERHEAD_BYTES;
        if self.used_bytes.saturating_add(cost) > self.limit_bytes {
            return false;
        }
        self.used_bytes += cost;
        self.map.insert(key.into(), offset);
        true
    }

    pub fn get(&self, key: &[u8]) -> Option<i64> {
        self.map.get(key).copied()
    }

    pub fn len(&self) -> usize {
        self.map.len()
    }

    pub fn is_empty(&self) -> bool {
        self.map.is_empty()
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }
}

/// Paces the cleaner's IO: called with the bytes read or written so far in a slice of
/// work, it waits as long as the byte rate requires (and lets the reactor run others).
#[allow(async_fn_in_trait)]
pub trait Pace {
    async fn pace(&self, bytes: u64);
}

/// No pacing (tests).
pub struct Unpaced;

impl Pace for Unpaced {
    async fn pace(&self, _bytes: u64) {}
}

/// What one clean did.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct CleanReport {
    /// The offset up to which the log is now clean (the new checkpoint).
    pub cleaned_to: i64,
    pub segments_before: usize,
    pub segments_after: usize,
    pub bytes_read: u64,
    pub bytes_written: u64,
    pub records_removed: u64,
    pub batches_removed: u64,
    /// Tombstones removed because their delete horizon passed.
    pub tombstones_removed: u64,
}

/// Why a log would be cleaned now, if it would.
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Cleanable {
    /// Bytes of the dirty section over bytes of all the cleanable segments.
    pub dirty_ratio: f64,
    /// The dirty section's bytes.
    pub dirty_bytes: u64,
    /// A record passed `max.compaction.lag.ms`, or a tombstone's delete horizon passed:
    /// clean whatever the ratio.
    pub overdue: bool,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn key_map_keeps_the_latest_offset_within_its_bound() {
        let mut m = KeyMap::new(3 * (ENTRY_OVERHEAD_BYTES + 1));
        assert!(m.put(b"a", 1) && m.put(b"b", 2) && m.put(b"a", 5) && m.put(b"a", 3));
        assert_eq!(m.get(b"a"), Some(5));
        assert!(m.put(b"c", 6));
        assert!(!m.put(b"d", 7), "a fourth key does not fit");
        assert_eq!((m.len(), m.get(b"d")), (3, None));
        assert!(m.put(b"c", 8), "an existing key still updates");
    }
}
