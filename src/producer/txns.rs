//! Per-partition transaction state: the open transactions (which bound the last stable
//! offset) and the aborted ones (which `read_committed` consumers are told to skip), as
//! Kafka's `ProducerStateManager` and transaction index keep them.
//!
//! The log feeds it every transactional batch and every control batch (commit or abort
//! marker) in offset order, when appending and when rebuilding at open. It does no IO.

use std::collections::{BTreeMap, HashMap, VecDeque};

/// An aborted transaction of one producer: from its first batch to its abort marker.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct AbortedTxn {
    pub producer_id: i64,
    pub first_offset: i64,
    /// The offset of the abort marker.
    pub last_offset: i64,
}

/// The transactions of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct PartitionTxns {
    /// Open transactions: producer id -> offset of its first batch.
    open: HashMap<i64, i64>,
    /// The same, by first offset (the earliest bounds the last stable offset).
    by_first: BTreeMap<i64, i64>,
    /// Aborted transactions in marker order.
    aborted: VecDeque<AbortedTxn>,
}

impl PartitionTxns {
    /// A transactional data batch of `producer_id` at `offset`: opens its transaction
    /// unless one is open already.
    pub fn data(&mut self, producer_id: i64, offset: i64) {
        if producer_id < 0 || self.open.contains_key(&producer_id) {
            return;
        }
        self.open.insert(producer_id, offset);
        self.by_first.insert(offset, producer_id);
    }

    /// A commit or abort marker of `producer_id` at `offset`: closes its transaction. An
    /// abort with data before it is remembered for read_committed fetches and returned.
    pub fn marker(&mut self, producer_id: i64, offset: i64, commit: bool) -> Option<AbortedTxn> {
        let first = self.open.remove(&producer_id)?;
        self.by_first.remove(&first);
        if commit {
            return None;
        }
        let txn = AbortedTxn {
            producer_id,
            first_offset: first,
            last_offset: offset,
        };
        self.aborted.push_back(txn);
        Some(txn)
    }

    /// Whether `producer_id` has an open transaction here.
    pub fn is_open(&self, producer_id: i64) -> bool {
        self.open.contains_key(&producer_id)
    }

    /// The first offset of the earliest open transaction: nothing from there on is stable.
    pub fn first_unstable(&self) -> Option<i64> {
        self.by_first.keys().next().copied()
    }

    /// The open transactions: (producer id, first offset), by first offset.
    pub fn open(&self) -> Vec<(i64, i64)> {
        self.by_first.iter().map(|(&o, &p)| (p, o)).collect()
    }

    /// The aborted transactions a fetch of `[from, upto)` must report: those whose marker
    /// is at or after `from` and whose first batch is before `upto` (Kafka's
    /// `collectAbortedTxns`).
    pub fn aborted_between(&self, from: i64, upto: i64) -> Vec<AbortedTxn> {
        let start = self.aborted.partition_point(|t| t.last_offset < from);
        self.aborted
            .iter()
            .skip(start)
            .filter(|t| t.first_offset < upto)
            .copied()
            .collect()
    }

    /// Forgets aborted transactions wholly below the log start (retention removed them).
    pub fn trim_below(&mut self, log_start: i64) {
        while self
            .aborted
            .front()
            .is_some_and(|t| t.last_offset < log_start)
        {
            self.aborted.pop_front();
        }
    }

    /// The aborted transactions remembered, in marker order (for a snapshot).
    pub fn aborted(&self) -> Vec<AbortedTxn> {
        self.aborted.iter().copied().collect()
    }

    /// The transactions a snapshot held: the open ones (producer id, first offset) and
    /// the aborted ones in marker order. `None` when they contradict each other (a
    /// producer or a first offset twice, a negative id).
    pub fn restore(open: Vec<(i64, i64)>, aborted: Vec<AbortedTxn>) -> Option<PartitionTxns> {
        let mut t = PartitionTxns::default();
        for (producer_id, first) in open {
            if producer_id < 0
                || t.open.insert(producer_id, first).is_some()
                || t.by_first.insert(first, producer_id).is_some()
            {
                return None;
            }
        }
        if aborted
            .windows(2)
            .any(|w| w[0].last_offset > w[1].last_offset)
        {
            return None;
        }
        t.aborted = aborted.into();
        Some(t)
    }

    pub fn aborted_count(&self) -> usize {
        self.aborted.len()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_earliest_open_transaction_bounds_the_stable_offset() {
        let mut t = PartitionTxns::default();
        assert_eq!(t.first_unstable(), None);
        t.data(7, 10);
        t.data(8, 12);
        t.data(7, 14); // the same transaction goes on
        assert_eq!(t.first_unstable(), Some(10));
        assert_eq!(t.marker(7, 15, true), None);
        assert_eq!(t.first_unstable(), Some(12));
        let aborted = t.marker(8, 16, false);
        assert_eq!(
            aborted,
            Some(AbortedTxn {
                producer_id: 8,
                first_offset: 12,
                last_offset: 16
            })
        );
        assert_eq!(t.first_unstable(), None);
        // A marker with no open transaction (a retried marker) changes nothing.
        assert_eq!(t.marker(8, 17, false), None);
        assert_eq!(t.aborted_count(), 1);
    }

    #[test]
    fn fetches_see_the_aborted_transactions_that_overlap_them() {
        let mut t = PartitionTxns::default();
        t.data(1, 0);
        t.marker(1, 5, false);
        t.data(2, 6);
        t.marker(2, 9, false);
        t.data(3, 10);
        t.marker(3, 12, true);
        let ids = |v: Vec<AbortedTxn>| v.iter().map(|a| a.producer_id).collect::<Vec<_>>();
        assert_eq!(ids(t.aborted_between(0, 100)), vec![1, 2]);
        assert_eq!(ids(t.aborted_between(6, 100)), vec![2]);
        assert_eq!(ids(t.aborted_between(0, 6)), vec![1]);
        assert_eq!(ids(t.aborted_between(10, 100)), Vec::<i64>::new());
        t.trim_below(6);
        assert_eq!(ids(t.aborted_between(0, 100)), vec![2]);
    }
}
