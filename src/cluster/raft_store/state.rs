//! The log's logical content, as replay rebuilds it and as the live store keeps it: the
//! base (the index and term the log continues after, the installed snapshot's), the
//! entries after it and the last hard state. The same rules run when a record is written
//! and when it is read back, so a restart recovers exactly what was made durable.

use bytes::Bytes;
use raft::eraftpb::HardState;

/// An entry of the log, kept encoded: a compaction writes these bytes as they are.
#[derive(Debug, Clone)]
pub(super) struct LiveEntry {
    pub index: u64,
    pub term: u64,
    /// The protobuf encoding of the `Entry`.
    pub payload: Bytes,
}

#[derive(Debug, Default)]
pub(super) struct LogState {
    pub base_index: u64,
    pub base_term: u64,
    /// Contiguous: `entries[k].index == base_index + 1 + k`.
    pub entries: Vec<LiveEntry>,
    pub hard_state: HardState,
}

impl LogState {
    pub fn last_index(&self) -> u64 {
        self.entries.last().map_or(self.base_index, |e| e.index)
    }

    /// The term of the entry at `index`, if the log knows it (the base's term at the base).
    pub fn term_at(&self, index: u64) -> Option<u64> {
        if index == self.base_index {
            return Some(self.base_term);
        }
        let k = self.slot(index)?;
        self.entries.get(k).map(|e| e.term)
    }

    /// Position in `entries` of `index`, if it is after the base.
    fn slot(&self, index: u64) -> Option<usize> {
        let k = index.checked_sub(self.base_index)?.checked_sub(1)?;
        usize::try_from(k).ok()
    }

    /// Whether an entry at `index` may be written: after the base, and at most right after
    /// the last entry (Raft never leaves a gap; it may rewrite a suffix).
    pub fn check_entry(&self, index: u64) -> Result<(), String> {
        if index <= self.base_index {
            return Err(format!(
                "entry {index} is at or below the snapshot at {}",
                self.base_index
            ));
        }
        let last = self.last_index();
        if index > last.saturating_add(1) {
            return Err(format!(
                "entry {index} leaves a gap after the last entry {last}"
            ));
        }
        Ok(())
    }

    /// Appends `e` after dropping every entry at or above its index (Raft's conflict
    /// truncation). `check_entry(e.index)` must have passed.
    pub fn push(&mut self, e: LiveEntry) {
        if let Some(k) = self.slot(e.index) {
            self.entries.truncate(k);
        }
        self.entries.push(e);
    }

    /// Moves the base to a snapshot at (`index`, `term`). Entries at or below `index` go. The
    /// entries after it stay only if the log holds the snapshot's own entry (same index and
    /// term): a snapshot taken locally continues the log. Otherwise (a leader's snapshot
    /// that raft-rs installs only because the log does not match it) every later entry is
    /// from a diverged history and goes too, as `MemStorage::apply_snapshot` drops them;
    /// keeping them would let a restart bring back a log whose last term is older than
    /// the one this voter reported.
    pub fn set_base(&mut self, index: u64, term: u64) -> Result<(), String> {
        if index < self.base_index {
            return Err(format!(
                "snapshot at {index} is behind the log's base {}",
                self.base_index
            ));
        }
        if self.term_at(index) == Some(term) {
            let drop = self
                .slot(index)
                .map_or(0, |k| k.saturating_add(1))
                .min(self.entries.len());
            self.entries.drain(..drop);
        } else {
            self.entries.clear();
        }
        self.base_index = index;
        self.base_term = term;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn e(index: u64, term: u64) -> LiveEntry {
        LiveEntry {
            index,
            term,
            payload: Bytes::new(),
        }
    }

    fn indexes(s: &LogState) -> Vec<(u64, u64)> {
        s.entries.iter().map(|e| (e.index, e.term)).collect()
    }

    #[test]
    fn entries_truncate_conflicts_and_refuse_gaps() {
        let mut s = LogState::default();
        assert!(s.check_entry(0).is_err(), "index 0 is the empty base");
        assert!(s.check_entry(2).is_err(), "gap");
        for i in 1..=5 {
            s.check_entry(i).expect("next");
            s.push(e(i, 1));
        }
        s.check_entry(3).expect("a rewrite of a suffix");
        s.push(e(3, 2));
        assert_eq!(indexes(&s), vec![(1, 1), (2, 1), (3, 2)]);
        assert_eq!(s.last_index(), 3);
        assert_eq!(s.term_at(2), Some(1));
        assert_eq!(s.term_at(4), None);
    }

    #[test]
    fn a_matching_base_keeps_the_tail_and_a_diverged_one_drops_it() {
        let mut s = LogState::default();
        for i in 1..=6 {
            s.push(e(i, 1));
        }
        s.set_base(4, 1).expect("local snapshot");
        assert_eq!(indexes(&s), vec![(5, 1), (6, 1)]);
        assert_eq!(s.term_at(4), Some(1));
        s.set_base(4, 1).expect("the same snapshot again");
        assert_eq!(indexes(&s), vec![(5, 1), (6, 1)]);
        assert!(s.set_base(3, 1).is_err(), "behind the base");
        s.set_base(5, 2).expect("leader snapshot, other term");
        assert!(s.entries.is_empty());
        assert_eq!((s.base_index, s.base_term), (5, 2));
        s.set_base(9, 2).expect("leader snapshot past the log");
        assert!(s.entries.is_empty());
        assert!(s.check_entry(9).is_err() && s.check_entry(10).is_ok());
    }
}
