//! A partition leader's view of its followers, as a pure state machine: what each
//! follower's fetches say about its log end, when it last caught up, the high watermark
//! those ends allow, and which ISR change the leader should ask the controller for. The
//! shard feeds it fetches and clock ticks and does the IO; the simulation in
//! `tests/sim_replication.rs` drives the same code.

use crate::storage::PartitionLog;
use crate::storage::epochs::truncation_point;
use crate::storage::io::Storage;
use std::collections::BTreeMap;

/// One follower, as its fetches tell it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Progress {
    /// The follower's log end: the offset of its last fetch (-1 before any).
    pub log_end: i64,
    pub last_fetch_ms: u64,
    /// The leader's log end at the last fetch.
    pub leader_end_at_last_fetch: i64,
    /// When the follower last had everything the leader had (Kafka's lastCaughtUpTime).
    pub caught_up_ms: u64,
}

/// A leader's followers in one leader epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaderState {
    pub epoch: i32,
    me: i32,
    followers: BTreeMap<i32, Progress>,
}

impl LeaderState {
    /// A new leadership: every follower starts as just caught up (Kafka gives in-sync
    /// followers a full `replica.lag.time.max.ms` to fetch from a new leader).
    pub fn new(me: i32, epoch: i32, replicas: &[i32], now_ms: u64) -> LeaderState {
        let followers = replicas
            .iter()
            .filter(|r| **r != me)
            .map(|r| {
                let p = Progress {
                    log_end: -1,
                    last_fetch_ms: now_ms,
                    leader_end_at_last_fetch: -1,
                    caught_up_ms: now_ms,
                };
                (*r, p)
            })
            .collect();
        LeaderState {
            epoch,
            me,
            followers,
        }
    }

    pub fn progress(&self, replica: i32) -> Option<&Progress> {
        self.followers.get(&replica)
    }

    /// A follower fetched from `fetch_offset` while the leader's log ended at
    /// `leader_end`: its log ends there, and it is caught up if it had everything, or had
    /// everything the leader had at its previous fetch (then it was caught up as of that
    /// fetch). Unknown replicas are ignored.
    pub fn fetched(&mut self, replica: i32, fetch_offset: i64, leader_end: i64, now_ms: u64) {
        let Some(p) = self.followers.get_mut(&replica) else {
            return;
        };
        if fetch_offset >= leader_end {
            p.caught_up_ms = now_ms;
        } else if fetch_offset >= p.leader_end_at_last_fetch {
            p.caught_up_ms = p.caught_up_ms.max(p.last_fetch_ms);
        }
        p.log_end = fetch_offset;
        p.last_fetch_ms = now_ms;
        p.leader_end_at_last_fetch = leader_end;
    }

    /// The high watermark the in-sync replicas allow: the lowest log end among them and the
    /// leader's. `None` when the leader is the only member (its own end is the high
    /// watermark). The caller never lets it move back.
    pub fn high_watermark(&self, isr: &[i32], leader_end: i64) -> Option<i64> {
        let mut followers = isr.iter().filter(|r| **r != self.me).peekable();
        followers.peek()?;
        let low = followers
            .map(|r| self.followers.get(r).map_or(-1, |p| p.log_end))
            .min()
            .unwrap_or(leader_end);
        Some(low.min(leader_end))
    }

    /// The ISR the leader should ask for, if it differs from `isr`: members that have not
    /// caught up within `lag_max_ms` leave; followers outside it whose log reaches the high
    /// watermark and the start of this epoch (so they hold this leader's history) join.
    pub fn wanted_isr(
        &self,
        isr: &[i32],
        hw: i64,
        epoch_start: i64,
        now_ms: u64,
        lag_max_ms: u64,
    ) -> Option<Vec<i32>> {
        let mut out: Vec<i32> = isr
            .iter()
            .copied()
            .filter(|r| {
                *r == self.me
                    || self
                        .followers
                        .get(r)
                        .is_none_or(|p| now_ms.saturating_sub(p.caught_up_ms) <= lag_max_ms)
            })
            .collect();
        for (r, p) in &self.followers {
            if !out.contains(r) && p.log_end >= hw && p.log_end >= epoch_start {
                out.push(*r);
            }
        }
        (out != isr).then_some(out)
    }
}

/// Takes up the leadership of `log` in `epoch`: the epoch is stamped into every batch
/// appended from now on, and with followers in sync what this copy holds past what it
/// knows was replicated stays hidden until they have it too.
pub fn lead<S: Storage>(
    log: &PartitionLog<S>,
    me: i32,
    epoch: i32,
    replicas: &[i32],
    isr: &[i32],
    now_ms: u64,
) -> LeaderState {
    log.set_leader_epoch(Some(epoch));
    if isr.len() > 1 && log.hw_limit().is_none() {
        log.set_hw_limit(Some(log.log_start_offset()));
    }
    LeaderState::new(me, epoch, replicas, now_ms)
}

/// The leader's view of its ISR changed to `isr`. With followers in sync the high watermark
/// stops following the log end: it holds what was committed until then, and only their
/// fetches move it on. Call it before an append can see the new ISR (else a batch
/// appended after the followers joined would count as replicated).
pub fn isr_seen<S: Storage>(log: &PartitionLog<S>, isr: &[i32]) {
    if isr.len() > 1 && log.hw_limit().is_none() {
        log.set_hw_limit(Some(log.high_watermark()));
    }
}

/// Sets the log's high watermark from the in-sync replicas' ends; it never moves back.
/// Returns it.
pub fn move_high_watermark<S: Storage>(
    state: &LeaderState,
    log: &PartitionLog<S>,
    isr: &[i32],
) -> i64 {
    match state.high_watermark(isr, log.local_end()) {
        None => log.set_hw_limit(None),
        Some(hw) => {
            let before = log.hw_limit().unwrap_or_else(|| log.high_watermark());
            log.set_hw_limit(Some(hw.max(before)));
        }
    }
    log.high_watermark()
}

/// A follower fetched `offset` (its log end) from the leader's `log`: its progress and the
/// high watermark move.
pub fn follower_fetched<S: Storage>(
    state: &mut LeaderState,
    log: &PartitionLog<S>,
    isr: &[i32],
    replica: i32,
    offset: i64,
    now_ms: u64,
) {
    state.fetched(replica, offset, log.local_end(), now_ms);
    move_high_watermark(state, log, isr);
}

/// Where a follower cuts its log after its leader reported `diverging` (the largest epoch
/// both hold and where it ends at the leader), or `None` when nothing needs cutting. A
/// leader that could not say falls back to the follower's high watermark, as Kafka does.
pub fn truncation_for<S: Storage>(log: &PartitionLog<S>, diverging: (i32, i64)) -> Option<i64> {
    let end = log.log_end_offset();
    let to = truncation_point(&log.epochs(), end, diverging)
        .unwrap_or_else(|| log.hw_limit().unwrap_or(0).min(end));
    (to < end).then_some(to)
}

/// A follower learns its leader's high watermark (bounded by what it holds itself).
pub fn learn_high_watermark<S: Storage>(log: &PartitionLog<S>, leader_hw: i64) {
    let hw = leader_hw.min(log.local_end());
    if hw >= 0 && log.hw_limit().is_none_or(|h| hw > h) {
        log.set_hw_limit(Some(hw));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_high_watermark_is_the_lowest_in_sync_end() {
        let mut s = LeaderState::new(1, 4, &[1, 2, 3], 0);
        assert_eq!(s.high_watermark(&[1], 50), None);
        assert_eq!(s.high_watermark(&[1, 2, 3], 50), Some(-1));
        s.fetched(2, 40, 50, 10);
        s.fetched(3, 30, 50, 10);
        assert_eq!(s.high_watermark(&[1, 2, 3], 50), Some(30));
        assert_eq!(s.high_watermark(&[1, 2], 50), Some(40));
        // A follower ahead of what the leader has written is bounded by the leader.
        s.fetched(2, 60, 55, 11);
        assert_eq!(s.high_watermark(&[1, 2], 55), Some(55));
        s.fetched(9, 100, 50, 10);
        assert!(s.progress(9).is_none());
    }

    #[test]
    fn a_follower_that_stops_catching_up_leaves_and_one_that_catches_up_joins() {
        let lag = 1000;
        let mut s = LeaderState::new(1, 4, &[1, 2, 3], 0);
        // Both fetch steadily; 3 is always one batch behind but reaches what the leader
        // had at its previous fetch, so it counts as caught up as of that fetch.
        let mut end = 10;
        for t in (100..3000).step_by(100) {
            s.fetched(2, end, end, t);
            s.fetched(3, end - 10, end, t);
            end += 10;
        }
        assert_eq!(s.wanted_isr(&[1, 2, 3], end - 10, 0, 3000, lag), None);
        // 3 stops fetching: past the lag it should leave; 2 stays.
        for t in (3000..4500).step_by(100) {
            s.fetched(2, end, end, t);
            end += 10;
        }
        assert_eq!(s.wanted_isr(&[1, 2, 3], end, 0, 3500, lag), None);
        assert_eq!(
            s.wanted_isr(&[1, 2, 3], end, 0, 4500, lag),
            Some(vec![1, 2])
        );
        // 3 comes back and fetches up to the high watermark but not yet this epoch's
        // start: not yet; then past both: it joins.
        s.fetched(3, 100, end, 4600);
        assert_eq!(s.wanted_isr(&[1, 2], 100, 200, 4600, lag), None);
        s.fetched(3, 250, end, 4700);
        assert_eq!(
            s.wanted_isr(&[1, 2], 240, 200, 4700, lag),
            Some(vec![1, 2, 3])
        );
    }
}
