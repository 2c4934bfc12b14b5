//! The per-shard cache of recently written batches, for `io = direct` logs.
//!
//! O_DIRECT writes bypass the page cache, so a consumer reading at the tail of a direct
//! log would read from the device. The writer hands each written chunk (whole batches, as
//! appended) to this cache, keyed by log, segment and file position; reads of ranges it
//! fully covers are answered from memory without a copy (the chunks are `Bytes`). The
//! cache holds at most `limit_bytes` and evicts oldest-written first across all logs of
//! the shard, which is the order in which tail consumers stop needing them.

use bytes::Bytes;
use std::collections::{BTreeMap, HashMap, VecDeque};

/// (segment base offset, position in the segment file).
type Key = (i64, u64);

pub struct BatchCache {
    limit_bytes: u64,
    used_bytes: u64,
    next_log: u64,
    order: VecDeque<(u64, Key)>,
    logs: HashMap<u64, BTreeMap<Key, Bytes>>,
}

impl BatchCache {
    pub fn new(limit_bytes: u64) -> BatchCache {
        BatchCache {
            limit_bytes,
            used_bytes: 0,
            next_log: 0,
            order: VecDeque::new(),
            logs: HashMap::new(),
        }
    }

    pub fn used_bytes(&self) -> u64 {
        self.used_bytes
    }

    /// A new log's id.
    pub fn register(&mut self) -> u64 {
        self.next_log += 1;
        self.logs.insert(self.next_log, BTreeMap::new());
        self.next_log
    }

    /// Adds a written chunk, then evicts the oldest chunks beyond the limit.
    pub fn insert(&mut self, log: u64, segment: i64, position: u64, bytes: Bytes) {
        if bytes.is_empty() || bytes.len() as u64 > self.limit_bytes {
            return;
        }
        let Some(map) = self.logs.get_mut(&log) else {
            return;
        };
        let len = bytes.len() as u64;
        if let Some(old) = map.insert((segment, position), bytes) {
            self.used_bytes -= old.len() as u64;
        } else {
            self.order.push_back((log, (segment, position)));
        }
        self.used_bytes += len;
        while self.used_bytes > self.limit_bytes {
            let Some((l, key)) = self.order.pop_front() else {
                break;
            };
            if let Some(b) = self.logs.get_mut(&l).and_then(|m| m.remove(&key)) {
                self.used_bytes -= b.len() as u64;
            }
        }
    }

    /// The bytes `[position, position + len)` of a segment, if the cache holds all of them.
    pub fn lookup(&self, log: u64, segment: i64, position: u64, len: u64) -> Option<Vec<Bytes>> {
        let map = self.logs.get(&log)?;
        let end = position + len;
        // The chunk that contains `position` starts at or before it.
        let (&(seg, start), first) = map.range(..=(segment, position)).next_back()?;
        if seg != segment || start + first.len() as u64 <= position {
            return None;
        }
        let mut out = Vec::new();
        let mut at = position;
        let mut chunk_start = start;
        let mut chunk = first.clone();
        loop {
            let from = (at - chunk_start) as usize;
            let to = ((end - chunk_start) as usize).min(chunk.len());
            out.push(chunk.slice(from..to));
            at = chunk_start + to as u64;
            if at >= end {
                return Some(out);
            }
            // The next chunk must start exactly where this one ended.
            chunk = map.get(&(segment, at))?.clone();
            chunk_start = at;
        }
    }

    /// Drops what a log holds of the segments with base offsets in `[from, to)` (their
    /// files were replaced by a cleaned one: the positions now hold other batches).
    pub fn forget_segments(&mut self, log: u64, from: i64, to: i64) {
        let Some(map) = self.logs.get_mut(&log) else {
            return;
        };
        let doomed: Vec<(i64, u64)> = map.range((from, 0)..(to, 0)).map(|(k, _)| *k).collect();
        for key in doomed {
            if let Some(b) = map.remove(&key) {
                self.used_bytes -= b.len() as u64;
            }
        }
        self.order
            .retain(|(l, (seg, _))| *l != log || !(from..to).contains(seg));
    }

    /// Drops everything of a log (closed or deleted).
    pub fn forget_log(&mut self, log: u64) {
        if let Some(map) = self.logs.remove(&log) {
            self.used_bytes -= map.values().map(|b| b.len() as u64).sum::<u64>();
        }
        self.order.retain(|(l, _)| *l != log);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn forgetting_segments_keeps_the_others() {
        let mut c = BatchCache::new(1 << 20);
        let log = c.register();
        for seg in [0, 10, 20] {
            c.insert(log, seg, 0, Bytes::from(vec![1u8; 100]));
        }
        c.forget_segments(log, 0, 20);
        assert!(c.lookup(log, 0, 0, 100).is_none() && c.lookup(log, 10, 0, 100).is_none());
        assert!(c.lookup(log, 20, 0, 100).is_some());
        assert_eq!(c.used_bytes(), 100);
        c.insert(log, 30, 0, Bytes::from(vec![1u8; 10]));
        assert!(
            c.lookup(log, 30, 0, 10).is_some(),
            "the log stays registered"
        );
    }

    fn bytes(n: usize, fill: u8) -> Bytes {
        Bytes::from(vec![fill; n])
    }

    #[test]
    fn covered_ranges_hit_and_gaps_miss() {
        let mut c = BatchCache::new(1 << 20);
        let log = c.register();
        c.insert(log, 0, 0, bytes(100, 1));
        c.insert(log, 0, 100, bytes(50, 2));
        c.insert(log, 0, 200, bytes(10, 3)); // a gap at 150..200
        let hit = c.lookup(log, 0, 40, 100).expect("inside two chunks");
        assert_eq!(hit.iter().map(|b| b.len()).sum::<usize>(), 100);
        assert_eq!((hit[0][0], hit[1][0]), (1, 2));
        assert!(c.lookup(log, 0, 120, 50).is_none(), "runs into the gap");
        assert!(c.lookup(log, 5, 0, 10).is_none(), "other segment");
        assert!(c.lookup(log, 0, 205, 10).is_none(), "past the end");
    }

    #[test]
    fn evicts_oldest_across_logs_and_forgets_logs() {
        let mut c = BatchCache::new(250);
        let a = c.register();
        let b = c.register();
        c.insert(a, 0, 0, bytes(100, 1));
        c.insert(b, 0, 0, bytes(100, 2));
        c.insert(a, 0, 100, bytes(100, 3));
        assert!(c.used_bytes() <= 250);
        assert!(c.lookup(a, 0, 0, 10).is_none(), "oldest evicted");
        assert!(c.lookup(b, 0, 0, 100).is_some());
        c.forget_log(b);
        assert_eq!(c.used_bytes(), 100);
        assert!(c.lookup(a, 0, 100, 100).is_some());
    }
}
