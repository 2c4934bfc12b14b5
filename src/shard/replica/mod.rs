//! Data replication on one shard, Kafka's way: for each partition this shard owns, the
//! broker is its leader (it tracks its followers' fetches in a
//! [`LeaderState`](crate::replication::LeaderState), moves the high watermark, and asks the
//! controller for ISR changes), or a follower (a fetcher task per leader broker copies the
//! leader's batches, truncating a diverged tail first), or neither.
//!
//! Roles follow the metadata: a task of the shard compares each log's assignment with the
//! role it plays every [`ROLE_CHECK`], so a new leader epoch takes effect within that.

pub(super) mod client;
pub use client::InterBrokerClient;
mod fetcher;
mod session;

use super::Shard;
use super::logs::Log;
use super::meta::Assignment;
use crate::cluster::image::Command;
use crate::protocol::code;
use crate::replication::{LeaderState, move_high_watermark};
use std::cell::{Cell, RefCell};
use std::collections::{HashMap, HashSet};
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How often roles, high watermarks and ISRs are checked against the metadata.
const ROLE_CHECK: Duration = Duration::from_millis(50);
/// How often changed high watermarks are checkpointed (Kafka's
/// `replica.high.watermark.checkpoint.interval.ms` default).
const HW_CHECKPOINT_EVERY: Duration = Duration::from_secs(5);

type Key = (String, i32);

/// A partition this broker follows: its leader and the leader's epoch.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Follow {
    pub leader: i32,
    pub epoch: i32,
}

/// The replication state of one shard.
pub struct Replication {
    leaders: RefCell<HashMap<Key, LeaderState>>,
    follows: RefCell<HashMap<Key, Follow>>,
    /// Leader brokers this shard runs a fetcher for.
    fetchers: RefCell<HashSet<i32>>,
    /// Partitions with an AlterPartition in flight.
    altering: RefCell<HashSet<Key>>,
    /// The high watermark last checkpointed per partition.
    checkpointed: RefCell<HashMap<Key, i64>>,
    stopped: Cell<bool>,
    started: Instant,
}

impl Default for Replication {
    fn default() -> Self {
        Replication {
            leaders: RefCell::default(),
            follows: RefCell::default(),
            fetchers: RefCell::default(),
            altering: RefCell::default(),
            checkpointed: RefCell::default(),
            stopped: Cell::new(false),
            started: Instant::now(),
        }
    }
}

impl Replication {
    fn now_ms(&self) -> u64 {
        u64::try_from(self.started.elapsed().as_millis()).unwrap_or(u64::MAX)
    }

    /// The partitions this shard follows `leader` for.
    fn followed_from(&self, leader: i32) -> Vec<(String, i32, i32)> {
        let mut out: Vec<(String, i32, i32)> = self
            .follows
            .borrow()
            .iter()
            .filter(|(_, f)| f.leader == leader)
            .map(|((t, p), f)| (t.clone(), *p, f.epoch))
            .collect();
        out.sort();
        out
    }
}

/// Starts the shard's replication task (in a cluster only).
pub fn start(shard: Rc<Shard>) -> Option<glommio::Task<()>> {
    shard.config.cluster.node_id?;
    Some(glommio::spawn_local(run(shard)))
}

async fn run(shard: Rc<Shard>) {
    struct Stop<'a>(&'a Replication);
    impl Drop for Stop<'_> {
        fn drop(&mut self) {
            self.0.stopped.set(true);
        }
    }
    let _stop = Stop(&shard.replication);
    let mut checkpointed_at = Instant::now();
    loop {
        reconcile(&shard);
        if checkpointed_at.elapsed() >= HW_CHECKPOINT_EVERY {
            checkpointed_at = Instant::now();
            checkpoint_high_watermarks(&shard).await;
        }
        glommio::timer::sleep(ROLE_CHECK).await;
    }
}

/// Writes the high watermark of every log whose high watermark moved since its last
/// checkpoint.
async fn checkpoint_high_watermarks(shard: &Rc<Shard>) {
    for (topic, p, log) in shard.all_logs() {
        let key = (topic, p);
        let hw = log.high_watermark();
        if shard.replication.checkpointed.borrow().get(&key) == Some(&hw) {
            continue;
        }
        match log.write_hw_checkpoint().await {
            Ok(written) => {
                shard
                    .replication
                    .checkpointed
                    .borrow_mut()
                    .insert(key, written);
            }
            Err(e) => tracing::warn!("{}-{}: high watermark checkpoint failed: {e}", key.0, key.1),
        }
    }
}

/// Brings every owned log's role in line with the metadata, moves leaders' high
/// watermarks and asks for the ISR changes they want.
fn reconcile(shard: &Rc<Shard>) {
    let view = shard.meta();
    let Some(c) = &view.meta.cluster else {
        return;
    };
    let me = c.node;
    let repl = &shard.replication;
    let now = repl.now_ms();
    let lag_max = shard.config.cluster.replica_lag_time_max_ms;
    let mut seen: HashSet<Key> = HashSet::new();
    let mut wanted_fetchers: HashSet<i32> = HashSet::new();
    let mut proposals = Vec::new();
    for (topic, p, log) in shard.all_logs() {
        let Some(a) = view.assignment(&topic, p) else {
            continue;
        };
        let key = (topic.clone(), p);
        seen.insert(key.clone());
        if a.leader == me {
            repl.follows.borrow_mut().remove(&key);
            crate::replication::isr_seen(&log, &a.isr);
            let mut leaders = repl.leaders.borrow_mut();
            let fresh = leaders.get(&key).is_none_or(|s| s.epoch != a.leader_epoch);
            if fresh {
                let state =
                    crate::replication::lead(&log, me, a.leader_epoch, &a.replicas, &a.isr, now);
                leaders.insert(key.clone(), state);
                tracing::info!(
                    "{topic}-{p}: leading in epoch {} (isr {:?}, log end {})",
                    a.leader_epoch,
                    a.isr,
                    log.log_end_offset()
                );
            }
            if let Some(state) = leaders.get(&key) {
                let hw = move_high_watermark(state, &log, &a.isr);
                let epoch_start = log
                    .epoch_start(a.leader_epoch)
                    .unwrap_or_else(|| log.log_end_offset());
                if !repl.altering.borrow().contains(&key)
                    && view.leads(&topic, p)
                    && let Some(isr) = state.wanted_isr(&a.isr, hw, epoch_start, now, lag_max)
                {
                    proposals.push((key.clone(), a.clone(), isr));
                }
            }
        } else {
            if repl.leaders.borrow_mut().remove(&key).is_some() {
                tracing::info!("{topic}-{p}: no longer leading (leader {})", a.leader);
            }
            log.set_leader_epoch(None);
            if a.replicas.contains(&me) && a.leader >= 0 {
                let follow = Follow {
                    leader: a.leader,
                    epoch: a.leader_epoch,
                };
                let before = repl.follows.borrow_mut().insert(key, follow.clone());
                if before.as_ref() != Some(&follow) {
                    tracing::info!(
                        "{topic}-{p}: following {} in epoch {} from offset {}",
                        follow.leader,
                        follow.epoch,
                        log.log_end_offset()
                    );
                }
                wanted_fetchers.insert(a.leader);
            } else {
                repl.follows.borrow_mut().remove(&key);
            }
        }
    }
    repl.leaders.borrow_mut().retain(|k, _| seen.contains(k));
    repl.follows.borrow_mut().retain(|k, _| seen.contains(k));
    for leader in wanted_fetchers {
        if repl.fetchers.borrow_mut().insert(leader) {
            glommio::spawn_local(fetcher::run(shard.clone(), leader)).detach();
        }
    }
    for (key, a, isr) in proposals {
        propose_isr(shard, key, a, isr);
    }
}

fn propose_isr(shard: &Rc<Shard>, key: Key, a: Assignment, isr: Vec<i32>) {
    shard.replication.altering.borrow_mut().insert(key.clone());
    let shard = shard.clone();
    glommio::spawn_local(async move {
        let (topic, partition) = key.clone();
        tracing::info!(
            "{topic}-{partition}: asking for isr {isr:?} (was {:?})",
            a.isr
        );
        let cmd = Command::AlterPartition {
            topic,
            partition,
            leader: a.leader,
            leader_epoch: a.leader_epoch,
            partition_epoch: a.partition_epoch,
            isr,
        };
        let outcome = shard.propose(cmd).await;
        if let Err(e) = &outcome {
            tracing::warn!("{}-{}: AlterPartition failed: {e}", key.0, key.1);
        }
        // The answer arrives with the metadata that applies it; until a new version is
        // installed here, another proposal would be made against the old one.
        let deadline = Instant::now() + Duration::from_secs(2);
        while Instant::now() < deadline
            && shard
                .meta()
                .assignment(&key.0, key.1)
                .is_some_and(|now| now.partition_epoch == a.partition_epoch)
        {
            glommio::timer::sleep(Duration::from_millis(10)).await;
        }
        shard.replication.altering.borrow_mut().remove(&key);
    })
    .detach();
}

impl Shard {
    /// A follower fetched `offset` of a partition this broker leads: its progress and the
    /// high watermark move.
    pub(super) fn replica_fetched(
        &self,
        topic: &str,
        p: i32,
        replica: i32,
        offset: i64,
        log: &Log,
    ) {
        let repl = &self.replication;
        let now = repl.now_ms();
        let key = (topic.to_string(), p);
        let mut leaders = repl.leaders.borrow_mut();
        let Some(state) = leaders.get_mut(&key) else {
            return;
        };
        let meta = self.meta();
        if let Some(a) = meta.assignment(topic, p) {
            crate::replication::follower_fetched(state, log, &a.isr, replica, offset, now);
        }
    }

    /// A fetch's `current_leader_epoch` against this broker's: older is FENCED_LEADER_EPOCH,
    /// newer UNKNOWN_LEADER_EPOCH (the client's metadata is ahead of ours). Alone, or with
    /// no epoch given (-1), nothing is checked.
    pub(super) fn leader_epoch_error(&self, topic: &str, p: i32, current: i32) -> Option<i16> {
        if current < 0 {
            return None;
        }
        let meta = self.meta();
        let a = meta.assignment(topic, p)?;
        match current.cmp(&a.leader_epoch) {
            std::cmp::Ordering::Less => Some(code::FENCED_LEADER_EPOCH),
            std::cmp::Ordering::Greater => Some(code::UNKNOWN_LEADER_EPOCH),
            std::cmp::Ordering::Equal => None,
        }
    }

    /// OffsetForLeaderEpoch at the leader. A log without epochs (a broker that runs alone,
    /// which Metadata reports in epoch 0) answers epoch 0 ending at its log end.
    pub(super) fn epoch_ends(
        &self,
        parts: Vec<super::messages::EpochEndPart>,
    ) -> Vec<super::messages::EpochEndResult> {
        use super::messages::EpochEndResult;
        parts
            .into_iter()
            .map(|part| {
                let log = match self.leader_log(&part.topic, part.partition) {
                    Ok(log) => log,
                    Err(c) => return EpochEndResult::error(c),
                };
                let current = part.current_leader_epoch;
                if let Some(c) = self.leader_epoch_error(&part.topic, part.partition, current) {
                    return EpochEndResult::error(c);
                }
                let (leader_epoch, end_offset) = match log.latest_epoch() {
                    None if part.leader_epoch >= 0 => (0, log.log_end_offset()),
                    _ => log.end_offset_for_epoch(part.leader_epoch),
                };
                EpochEndResult {
                    error_code: code::NONE,
                    leader_epoch,
                    end_offset,
                }
            })
            .collect()
    }

    /// For `acks=all`: NOT_ENOUGH_REPLICAS when the partition has fewer in-sync replicas
    /// than its `min.insync.replicas` (checked before appending, as Kafka does).
    pub(super) fn too_few_in_sync(&self, topic: &str, p: i32) -> bool {
        let meta = self.meta();
        let (Some(a), Some(t)) = (meta.assignment(topic, p), meta.topics.get(topic)) else {
            return false;
        };
        let min = usize::try_from(t.log.min_insync_replicas).unwrap_or(1);
        a.isr.len() < min
    }

    /// For `acks=all`: waits until the high watermark passes `last_offset` (every in-sync
    /// replica has the batch), the partition is no longer led here, or `timeout`.
    pub(super) async fn wait_replicated(
        &self,
        topic: &str,
        p: i32,
        log: &Log,
        last_offset: i64,
        timeout: Duration,
    ) -> i16 {
        let deadline = Instant::now() + timeout;
        loop {
            let changed = log.changed();
            if log.high_watermark() > last_offset {
                return if self.too_few_in_sync(topic, p) {
                    code::NOT_ENOUGH_REPLICAS_AFTER_APPEND
                } else {
                    code::NONE
                };
            }
            if !self.meta().leads(topic, p) || self.log(topic, p).is_none() {
                return code::NOT_LEADER_OR_FOLLOWER;
            }
            let now = Instant::now();
            if now >= deadline {
                return code::REQUEST_TIMED_OUT;
            }
            // Leadership moves without touching the log: look again at least every tick.
            let wait = (deadline - now).min(ROLE_CHECK);
            crate::rt::join::first_of(vec![
                Box::pin(changed) as crate::rt::LocalBoxFuture<'_, ()>,
                Box::pin(glommio::timer::sleep(wait)),
            ])
            .await;
        }
    }
}
