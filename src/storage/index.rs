//! Sparse segment indexes, in memory with an append-only file image.
//!
//! `.index`: 8-byte entries `(relative offset u32, position u32)`, big-endian, one per
//! `index.interval.bytes` of log. `.timeindex`: 12-byte entries `(timestamp i64, relative
//! offset u32)`. A time entry `(t, r)` means: every record before relative offset `r` in
//! this segment has a timestamp `<= t`, so a search for the first record at or after `T`
//! may start at the batch at `r` whenever `t < T`. Both are rebuilt from the log when
//! missing or damaged, so they are never fsynced on their own.

pub const OFFSET_ENTRY_BYTES: usize = 8;
pub const TIME_ENTRY_BYTES: usize = 12;

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct OffsetIndex {
    entries: Vec<(u32, u32)>,
    /// Entries already written to the file.
    persisted: usize,
}

impl OffsetIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[(u32, u32)] {
        &self.entries
    }

    pub fn last(&self) -> Option<(u32, u32)> {
        self.entries.last().copied()
    }

    pub fn push(&mut self, relative_offset: u32, position: u32) {
        debug_assert!(
            self.entries
                .last()
                .is_none_or(|&(r, p)| r < relative_offset && p < position)
        );
        self.entries.push((relative_offset, position));
    }

    /// The entry with the largest relative offset `<= relative_offset`.
    pub fn lookup(&self, relative_offset: u32) -> Option<(u32, u32)> {
        let i = self.entries.partition_point(|&(r, _)| r <= relative_offset);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries at or past `position` (after a truncation).
    pub fn truncate_to_position(&mut self, position: u64) {
        let keep = self
            .entries
            .partition_point(|&(_, p)| (p as u64) < position);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    /// The file bytes of entries not yet written, and the file position they go to.
    pub fn unpersisted(&self) -> Option<(u64, Vec<u8>)> {
        self.unpersisted_below(u64::MAX)
            .map(|(pos, bytes, _)| (pos, bytes))
    }

    /// As [`OffsetIndex::unpersisted`], for the entries at positions below `position`
    /// only; also returns the entry count to pass to `mark_persisted` once written.
    pub fn unpersisted_below(&self, position: u64) -> Option<(u64, Vec<u8>, usize)> {
        let upto = self
            .entries
            .partition_point(|&(_, p)| (p as u64) < position);
        if upto <= self.persisted {
            return None;
        }
        let mut out = Vec::with_capacity((upto - self.persisted) * OFFSET_ENTRY_BYTES);
        for &(r, p) in &self.entries[self.persisted..upto] {
            out.extend_from_slice(&r.to_be_bytes());
            out.extend_from_slice(&p.to_be_bytes());
        }
        Some(((self.persisted * OFFSET_ENTRY_BYTES) as u64, out, upto))
    }

    pub fn mark_persisted(&mut self, count: usize) {
        self.persisted = count.min(self.entries.len());
    }

    /// Decodes a file image. Returns `None` if it is damaged: a partial entry, or entries
    /// that do not strictly increase in both offset and position.
    pub fn decode(bytes: &[u8]) -> Option<OffsetIndex> {
        if !bytes.len().is_multiple_of(OFFSET_ENTRY_BYTES) {
            return None;
        }
        let mut entries = Vec::with_capacity(bytes.len() / OFFSET_ENTRY_BYTES);
        for e in bytes.chunks_exact(OFFSET_ENTRY_BYTES) {
            let r = u32::from_be_bytes([e[0], e[1], e[2], e[3]]);
            let p = u32::from_be_bytes([e[4], e[5], e[6], e[7]]);
            if let Some(&(lr, lp)) = entries.last()
                && (r <= lr || p <= lp)
            {
                return None;
            }
            entries.push((r, p));
        }
        let persisted = entries.len();
        Some(OffsetIndex { entries, persisted })
    }
}

#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct TimeIndex {
    entries: Vec<(i64, u32)>,
    persisted: usize,
}

impl TimeIndex {
    pub fn len(&self) -> usize {
        self.entries.len()
    }

    pub fn is_empty(&self) -> bool {
        self.entries.is_empty()
    }

    pub fn entries(&self) -> &[(i64, u32)] {
        &self.entries
    }

    /// Adds `(timestamp, relative_offset)` if it raises the indexed timestamp.
    pub fn maybe_push(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(t, r)) if timestamp <= t || relative_offset <= r => {}
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// Adds the closing entry `(largest timestamp, relative offset past the last record)`.
    pub fn seal(&mut self, timestamp: i64, relative_offset: u32) {
        match self.entries.last() {
            Some(&(t, r)) if timestamp < t || relative_offset <= r => {}
            _ => self.entries.push((timestamp, relative_offset)),
        }
    }

    /// The entry with the largest timestamp strictly below `target`: the search for the
    /// first record with timestamp `>= target` can start at its relative offset.
    pub fn lookup_before(&self, target: i64) -> Option<(i64, u32)> {
        let i = self.entries.partition_point(|&(t, _)| t < target);
        i.checked_sub(1).map(|i| self.entries[i])
    }

    /// Drops entries at or past `relative_offset`.
    pub fn truncate_to_offset(&mut self, relative_offset: u32) {
        let keep = self.entries.partition_point(|&(_, r)| r < relative_offset);
        self.entries.truncate(keep);
        self.persisted = self.persisted.min(keep);
    }

    pub fn unpersisted(&self) -> Option<(u64, Vec<u8>)> {
        self.unpersisted_upto(u32::MAX)
            .map(|(pos, bytes, _)| (pos, bytes))
    }

    /// Entries not yet written whose relative offset is `<= relative_offset`, their file
    /// position, and the count to pass to `mark_persisted` once written.
    pub fn unpersisted_upto(&self, relative_offset: u32) -> Option<(u64, Vec<u8>, usize)> {
        let upto = self.entries.partition_point(|&(_, r)| r <= relative_offset);
        if upto <= self.persisted {
            return None;
        }
        let mut out = Vec::with_capacity((upto - self.persisted) * TIME_ENTRY_BYTES);
        for &(t, r) in &self.entries[self.persisted..upto] {
            out.extend_from_slice(&t.to_be_bytes());
            out.extend_from_slice(&r.to_be_bytes());
        }
        Some(((self.persisted * TIME_ENTRY_BYTES) as u64, out, upto))
    }

    pub fn mark_persisted(&mut self, count: usize) {
        self.persisted = count.min(self.entries.len());
    }

    pub fn decode(bytes: &[u8]) -> Option<TimeIndex> {
        if !bytes.len().is_multiple_of(TIME_ENTRY_BYTES) {
            return None;
        }
        let mut entries: Vec<(i64, u32)> = Vec::with_capacity(bytes.len() / TIME_ENTRY_BYTES);
        for e in bytes.chunks_exact(TIME_ENTRY_BYTES) {
            let mut t = [0u8; 8];
            t.copy_from_slice(&e[..8]);
            let t = i64::from_be_bytes(t);
            let r = u32::from_be_bytes([e[8], e[9], e[10], e[11]]);
            if let Some(&(lt, lr)) = entries.last()
                && (t < lt || r <= lr)
            {
                return None;
            }
            entries.push((t, r));
        }
        let persisted = entries.len();
        Some(TimeIndex { entries, persisted })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn offset_lookup_finds_floor_entry() {
        let mut idx = OffsetIndex::default();
        idx.push(0, 0);
        idx.push(10, 4096);
        idx.push(20, 8192);
        assert_eq!(idx.lookup(0), Some((0, 0)));
        assert_eq!(idx.lookup(15), Some((10, 4096)));
        assert_eq!(idx.lookup(99), Some((20, 8192)));
        let mut empty = OffsetIndex::default();
        assert_eq!(empty.lookup(3), None);
        empty.push(5, 100);
        assert_eq!(empty.lookup(3), None);
    }

    #[test]
    fn offset_index_round_trips_and_detects_damage() {
        let mut idx = OffsetIndex::default();
        idx.push(1, 10);
        idx.push(5, 70);
        let (pos, bytes) = idx.unpersisted().expect("two entries");
        assert_eq!(pos, 0);
        let back = OffsetIndex::decode(&bytes).expect("decodes");
        assert_eq!(back.entries(), idx.entries());
        assert!(OffsetIndex::decode(&bytes[..7]).is_none());
        let mut swapped = bytes[8..].to_vec();
        swapped.extend_from_slice(&bytes[..8]);
        assert!(OffsetIndex::decode(&swapped).is_none());
    }

    #[test]
    fn unpersisted_tracks_file_position() {
        let mut idx = OffsetIndex::default();
        idx.push(1, 10);
        idx.mark_persisted(1);
        idx.push(2, 20);
        let (pos, bytes) = idx.unpersisted().expect("one new entry");
        assert_eq!((pos, bytes.len()), (8, 8));
        idx.truncate_to_position(20);
        assert_eq!(idx.len(), 1);
        assert!(idx.unpersisted().is_none());
    }

    #[test]
    fn time_index_lookup_is_strictly_below_target() {
        let mut t = TimeIndex::default();
        t.maybe_push(100, 1);
        t.maybe_push(100, 2); // not raising: skipped
        t.maybe_push(200, 3);
        assert_eq!(t.len(), 2);
        assert_eq!(t.lookup_before(100), None);
        assert_eq!(t.lookup_before(101), Some((100, 1)));
        assert_eq!(t.lookup_before(1000), Some((200, 3)));
        let (_, bytes) = t.unpersisted().expect("entries");
        assert_eq!(
            TimeIndex::decode(&bytes).expect("decodes").entries(),
            t.entries()
        );
        t.truncate_to_offset(3);
        assert_eq!(t.len(), 1);
    }
}
