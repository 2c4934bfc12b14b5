//! The leader epochs of a log (KIP-101): for each epoch that wrote batches, the offset of its
//! first batch. A follower that may have diverged asks its new leader where its latest epoch
//! ends there ([`EpochCache::end_offset_for`]) and truncates past that point.
//!
//! Kafka keeps these in a `leader-epoch-checkpoint` file. Here the cache travels with the
//! producer state: a producer state snapshot written at each roll holds it as of the new
//! segment's base, and the open rebuilds the rest from the headers of the batches after
//! the snapshot in the same walk as the producer state (`storage::log::snapshots`). The
//! running log records every batch's epoch as that walk reads it back, so the cache a
//! snapshot takes is the one a walk of the whole log would build.

/// Epochs in increasing order, each with the offset of its first batch (increasing too).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct EpochCache {
    entries: Vec<(i32, i64)>,
}

impl EpochCache {
    /// Records that a batch of `epoch` starts at `offset`. Only a new, higher epoch opens
    /// an entry; batches without an epoch (-1, written before any leader stamped one) and
    /// batches of older epochs (a follower copying what its leader has) add nothing.
    pub fn assign(&mut self, epoch: i32, offset: i64) {
        if epoch < 0 {
            return;
        }
        match self.entries.last() {
            Some(&(last, _)) if epoch <= last => {}
            _ => self.entries.push((epoch, offset)),
        }
    }

    /// The latest epoch that wrote a batch.
    pub fn latest(&self) -> Option<i32> {
        self.entries.last().map(|e| e.0)
    }

    /// The first offset of `epoch`'s batches, when it wrote any.
    pub fn start_of(&self, epoch: i32) -> Option<i64> {
        self.entries
            .iter()
            .find(|(e, _)| *e == epoch)
            .map(|(_, o)| *o)
    }

    /// Kafka's OffsetForLeaderEpoch answer for `epoch` on a log that ends at `log_end`:
    /// the largest epoch at or below it, and the offset where that epoch ends (the start
    /// of the next epoch, or `log_end` for the latest). `(-1, -1)` when every known epoch
    /// is above `epoch` (the log cannot say where it ends).
    pub fn end_offset_for(&self, epoch: i32, log_end: i64) -> (i32, i64) {
        let at = self.entries.partition_point(|(e, _)| *e <= epoch);
        if at == 0 {
            return (-1, -1);
        }
        let found = self.entries[at - 1].0;
        let end = self.entries.get(at).map_or(log_end, |(_, start)| *start);
        (found, end)
    }

    /// Forgets the epochs that start at or after `offset` (the log was truncated there).
    pub fn truncate_from(&mut self, offset: i64) {
        self.entries.retain(|(_, start)| *start < offset);
    }

    /// Forgets what lies below `start` (the log starts there now), as Kafka's
    /// `truncateFromStart`: the entries before it go, except the last one, which moves up
    /// to `start` (its epoch wrote the first batch that is left). A full walk of the log
    /// from `start` builds the same cache when the batch at `start` is of that epoch.
    pub fn truncate_before(&mut self, start: i64) {
        let below = self.entries.partition_point(|(_, o)| *o < start);
        if below == 0 {
            return;
        }
        let covering = self.entries[below - 1].0;
        self.entries.drain(..below);
        if self.entries.first().is_none_or(|&(_, o)| o > start) {
            self.entries.insert(0, (covering, start));
        }
    }

    /// A cache of these entries; `None` unless epochs and offsets both increase (as
    /// [`Self::assign`] keeps them) and no epoch is negative.
    pub fn from_entries(entries: Vec<(i32, i64)>) -> Option<EpochCache> {
        let ordered = entries
            .windows(2)
            .all(|w| w[0].0 < w[1].0 && w[0].1 <= w[1].1);
        let valid = entries.iter().all(|&(e, o)| e >= 0 && o >= 0);
        (ordered && valid).then_some(EpochCache { entries })
    }

    pub fn entries(&self) -> &[(i32, i64)] {
        &self.entries
    }
}

/// The leader's side of KIP-595's check: a follower that last fetched `last_fetched_epoch`
/// and now fetches from `fetch_offset` has diverged when this log (`epochs`, ending at
/// `log_end`) does not hold that epoch, or holds it only up to a lower offset. Then the
/// answer is the largest epoch at or below the follower's and where it ends here. A log
/// without any epoch cannot tell, and a follower that names none is not checked.
pub fn diverging(
    epochs: &EpochCache,
    log_end: i64,
    last_fetched_epoch: i32,
    fetch_offset: i64,
) -> Option<(i32, i64)> {
    if last_fetched_epoch >= 0 && epochs.latest().is_some() {
        let (epoch, end) = epochs.end_offset_for(last_fetched_epoch, log_end);
        return (epoch != last_fetched_epoch || end < fetch_offset).then_some((epoch, end));
    }
    // Without epochs to compare, only a follower ahead of this log is known to differ
    // (a replica that was in sync but never fetched can be elected; what it lacks was
    // never committed): it cuts back to this log's end.
    (fetch_offset > log_end).then_some((-1, log_end))
}

/// Where a follower truncates, given its own epochs, its log end, and the leader's answer
/// `(epoch, end_offset)` for the follower's latest epoch (KIP-279): to the leader's end
/// offset when both logs have that epoch, else to where the follower's own copy of the
/// leader's epoch ends, whichever is lower; to the leader's end when it holds no epoch to
/// compare (epoch -1). `None` when the leader could not answer at all (-1, -1): the caller
/// then keeps only what it knows the leader has.
pub fn truncation_point(mine: &EpochCache, log_end: i64, leader: (i32, i64)) -> Option<i64> {
    let (epoch, end) = leader;
    if end < 0 {
        return None;
    }
    if epoch < 0 {
        // The leader holds no epoch to compare: keep no more than it has.
        return Some(end.min(log_end));
    }
    let (_, my_end) = mine.end_offset_for(epoch, log_end);
    let my_end = if my_end < 0 { 0 } else { my_end };
    Some(end.min(my_end).min(log_end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cache(entries: &[(i32, i64)]) -> EpochCache {
        let mut c = EpochCache::default();
        for &(e, o) in entries {
            c.assign(e, o);
        }
        c
    }

    #[test]
    fn only_higher_epochs_open_entries() {
        let c = cache(&[(-1, 0), (0, 0), (0, 5), (2, 10), (1, 12), (2, 13), (3, 20)]);
        assert_eq!(c.entries(), &[(0, 0), (2, 10), (3, 20)]);
        assert_eq!(c.latest(), Some(3));
        assert_eq!(c.start_of(2), Some(10));
        assert_eq!(c.start_of(1), None);
    }

    #[test]
    fn end_offsets_follow_kafkas_answer() {
        let c = cache(&[(1, 0), (3, 10), (4, 25)]);
        assert_eq!(c.end_offset_for(0, 40), (-1, -1));
        assert_eq!(c.end_offset_for(1, 40), (1, 10));
        // Epoch 2 wrote nothing here: the largest epoch below it, and where that ends.
        assert_eq!(c.end_offset_for(2, 40), (1, 10));
        assert_eq!(c.end_offset_for(3, 40), (3, 25));
        assert_eq!(c.end_offset_for(4, 40), (4, 40));
        assert_eq!(c.end_offset_for(9, 40), (4, 40));
        assert_eq!(EpochCache::default().end_offset_for(3, 7), (-1, -1));
    }

    #[test]
    fn truncation_forgets_later_epochs() {
        let mut c = cache(&[(1, 0), (3, 10), (4, 25)]);
        c.truncate_from(25);
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        c.truncate_from(11);
        assert_eq!(c.entries(), &[(1, 0), (3, 10)]);
        c.truncate_from(0);
        assert_eq!(c.latest(), None);
    }

    #[test]
    fn a_diverged_follower_truncates_where_the_logs_part() {
        // The follower led epoch 3 briefly and wrote 10..18 that the new leader never got;
        // the leader's epoch 3 ended at 12 (its epoch 4 starts there).
        let follower = cache(&[(1, 0), (3, 10)]);
        assert_eq!(truncation_point(&follower, 18, (3, 12)), Some(12));
        // The leader never saw epoch 3: it answers epoch 1 ending at 10.
        assert_eq!(truncation_point(&follower, 18, (1, 10)), Some(10));
        // The follower is simply behind: nothing to cut.
        assert_eq!(truncation_point(&follower, 11, (3, 30)), Some(11));
        // The leader has epoch 1 longer than the follower's copy: the follower's epoch 1
        // ended at 10, so everything from 10 is of another history.
        let follower = cache(&[(1, 0), (2, 10)]);
        assert_eq!(truncation_point(&follower, 15, (1, 14)), Some(10));
        assert_eq!(truncation_point(&follower, 15, (-1, -1)), None);
        assert_eq!(truncation_point(&follower, 15, (-1, 4)), Some(4));
    }

    #[test]
    fn the_leader_reports_divergence_only_where_the_logs_part() {
        let leader = cache(&[(1, 0), (4, 12)]);
        // Same history, behind or at the end: no divergence.
        assert_eq!(diverging(&leader, 30, 4, 20), None);
        assert_eq!(diverging(&leader, 30, 4, 30), None);
        assert_eq!(diverging(&leader, 30, 1, 12), None);
        // Ahead in the leader's own epoch: cut back to its end.
        assert_eq!(diverging(&leader, 30, 4, 35), Some((4, 30)));
        // An epoch the leader never had (the follower led alone in epoch 3).
        assert_eq!(diverging(&leader, 30, 3, 15), Some((1, 12)));
        // Epoch 1 longer at the follower than here.
        assert_eq!(diverging(&leader, 30, 1, 14), Some((1, 12)));
        assert_eq!(diverging(&leader, 30, -1, 14), None);
        assert_eq!(diverging(&EpochCache::default(), 30, 2, 14), None);
        // A leader without epochs (or a follower without) can still see a follower ahead.
        assert_eq!(diverging(&EpochCache::default(), 0, 2, 3), Some((-1, 0)));
        assert_eq!(diverging(&leader, 30, -1, 33), Some((-1, 30)));
    }
}
