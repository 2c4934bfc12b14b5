//! The transaction coordinators of a shard: the runtime around `txn::TxnCoordinator` on
//! this shard's partitions of `__transaction_state` (persisting each state change there),
//! the transaction markers it writes to the partitions of a transaction (on their owning
//! shards here, with WriteTxnMarkers on other brokers), the timeout sweep, and the loading
//! of the ids when this shard starts coordinating a partition.

use super::Shard;
use super::internal_log::replicated;
use super::logs::MetaView;
use super::messages::{ShardReply, ShardRequest};
use crate::storage::log::wall_clock_ms;
use crate::txn::{TXN_TOPIC, TxnError, TxnMeta, TxnOp, TxnReply, TxnStatus, records};
use std::collections::BTreeMap;
use std::rc::Rc;
use std::time::{Duration, Instant};

/// How long a request for a busy transactional id (its state write or its markers in
/// flight) waits for it to settle before CONCURRENT_TRANSACTIONS is answered. Kafka answers
/// at once and clients retry after `retry.backoff.ms` (librdkafka: 100 ms), which caps a
/// producer that begins its next transaction right after a commit at ten a second; the
/// markers take a few milliseconds.
const BUSY_WAIT: Duration = Duration::from_secs(2);

/// The configs of `__transaction_state`: compacted, no retention, like
/// `__consumer_offsets`.
pub fn txn_topic_configs(config: &crate::config::TxnConfig) -> BTreeMap<String, String> {
    [
        ("cleanup.policy", "compact".to_string()),
        ("retention.ms", "-1".to_string()),
        ("retention.bytes", "-1".to_string()),
        ("segment.bytes", config.state_segment_bytes.to_string()),
    ]
    .into_iter()
    .map(|(k, v)| (k.to_string(), v))
    .collect()
}

fn partitions_of(meta: &MetaView) -> Option<i32> {
    meta.topics.get(TXN_TOPIC).map(|t| t.partitions)
}

impl Shard {
    /// The shard that coordinates `id` (the owner of its `__transaction_state` partition),
    /// or `None` while the topic does not exist.
    pub fn txn_coordinator(&self, id: &str) -> Option<(usize, i32)> {
        let n = partitions_of(&self.meta())?;
        let p = crate::txn::txn_partition(id, n);
        Some((self.owner(TXN_TOPIC, p), p))
    }

    /// Whether this shard coordinates `id` now: it owns the id's `__transaction_state`
    /// partition and this broker leads it.
    pub(super) fn coordinates_txn(&self, id: &str) -> bool {
        self.txn_coordinator(id)
            .is_some_and(|(owner, p)| owner == self.id && self.meta().leads(TXN_TOPIC, p))
    }

    /// Creates `__transaction_state` if it is missing (on shard 0, the metadata writer);
    /// whether it exists afterwards.
    pub async fn ensure_txn_topic(self: &Rc<Self>) -> bool {
        if partitions_of(&self.meta()).is_some() {
            return true;
        }
        let _ = self.call(0, ShardRequest::CreateTxnTopic).await;
        partitions_of(&self.meta()).is_some()
    }

    /// Shard 0: adds `__transaction_state` to the metadata (a broker alone) or proposes
    /// it to the controller (a cluster: as many replicas as brokers are alive, up to
    /// `transaction.state.log.replication.factor`).
    pub(super) async fn create_txn_topic(self: &Rc<Self>) {
        let _writer = self.meta_write.lock().await;
        let view = self.meta();
        if view.topics.contains_key(TXN_TOPIC) {
            return;
        }
        let partitions = self.config.txn.state_partitions;
        let configs = txn_topic_configs(&self.config.txn);
        let id = super::meta::new_topic_id();
        match &view.meta.cluster {
            Some(c) => {
                let live = i16::try_from(c.brokers.len()).unwrap_or(i16::MAX).max(1);
                let cmd = crate::cluster::image::Command::CreateTopics {
                    topics: vec![crate::cluster::image::NewTopic {
                        name: TXN_TOPIC.to_string(),
                        id,
                        partitions,
                        replication_factor: self.config.txn.state_replication_factor.min(live),
                        configs,
                        assignments: None,
                    }],
                };
                drop(_writer);
                if let Err(e) = self.propose(cmd).await {
                    tracing::warn!("cannot create {TXN_TOPIC}: {e}");
                }
            }
            None => {
                let mut next = (*view.meta).clone();
                next.topics.insert(
                    TXN_TOPIC.to_string(),
                    super::meta::TopicMeta {
                        partitions,
                        id,
                        configs,
                        assignment: Vec::new(),
                    },
                );
                if let Err(e) = self.publish(next).await {
                    tracing::error!("cannot create {TXN_TOPIC}: {e}");
                } else {
                    tracing::info!("created {TXN_TOPIC} with {partitions} partitions");
                }
            }
        }
    }

    /// Sends `op` to the coordinator of its transactional id (creating
    /// `__transaction_state` first if needed) and waits for the answer.
    pub async fn route_txn(self: &Rc<Self>, op: TxnOp) -> TxnReply {
        let Some(id) = op.id() else {
            return op.refuse(TxnError::InvalidRequest);
        };
        if id.is_empty() {
            return op.refuse(TxnError::InvalidRequest);
        }
        if !self.ensure_txn_topic().await {
            return op.refuse(TxnError::CoordinatorNotAvailable);
        }
        let Some((owner, _)) = self.txn_coordinator(id) else {
            return op.refuse(TxnError::CoordinatorNotAvailable);
        };
        let refused = op.refuse(TxnError::CoordinatorNotAvailable);
        match self.call(owner, ShardRequest::Txn(Box::new(op))).await {
            Some(ShardReply::Txn(r)) => r,
            _ => refused,
        }
    }

    /// Runs one transactional op on this shard, its coordinator.
    pub(super) async fn txn_handle(self: &Rc<Self>, op: TxnOp) -> TxnReply {
        if let Some(id) = op.id()
            && !self.coordinates_txn(id)
        {
            return op.refuse(TxnError::NotCoordinator);
        }
        let now = wall_clock_ms();
        match op {
            TxnOp::Init {
                id,
                timeout_ms,
                current,
            } => {
                let ids = self.producer_ids.clone();
                let mut fresh = || match ids.init(None) {
                    Ok(p) => Some(p.producer_id),
                    Err(e) => {
                        tracing::error!("cannot allocate a producer id: {e}");
                        None
                    }
                };
                let deadline = Instant::now() + BUSY_WAIT;
                let mut current = current;
                loop {
                    let done = self
                        .txn_settled_step(&id, deadline, |c| {
                            c.init(&id, timeout_ms, current, now, &mut fresh)
                        })
                        .await;
                    match done {
                        // An open transaction of the id is being aborted first (under a
                        // bumped epoch): once that settles, the init runs again.
                        Ok(m) if m.status == TxnStatus::PrepareAbort => {
                            if Instant::now() >= deadline {
                                break TxnReply::Init(Err(TxnError::ConcurrentTransactions));
                            }
                            // The producer's own epoch was bumped by the abort.
                            current = current.map(|(p, _)| (p, m.epoch));
                        }
                        Ok(m) => break TxnReply::Init(Ok((m.producer_id, m.epoch))),
                        Err(e) => break TxnReply::Init(Err(e)),
                    }
                }
            }
            TxnOp::AddPartitions {
                id,
                producer_id,
                epoch,
                partitions,
                verify_only,
            } => {
                if verify_only {
                    let v = self
                        .txns
                        .borrow()
                        .verify(&id, producer_id, epoch, &partitions);
                    return TxnReply::Verified(v);
                }
                let deadline = Instant::now() + BUSY_WAIT;
                let done = self
                    .txn_settled_step(&id, deadline, |c| {
                        c.add_partitions(&id, producer_id, epoch, &partitions, now)
                    })
                    .await;
                TxnReply::Done(done.map(|_| ()))
            }
            TxnOp::End {
                id,
                producer_id,
                epoch,
                commit,
            } => {
                let deadline = Instant::now() + BUSY_WAIT;
                let done = self
                    .txn_settled_step(&id, deadline, |c| {
                        c.end(&id, producer_id, epoch, commit, now)
                    })
                    .await;
                TxnReply::Done(done.map(|_| ()))
            }
            TxnOp::Describe(ids) => {
                let c = self.txns.borrow();
                TxnReply::Described(
                    ids.into_iter()
                        .map(|id| {
                            let found = c.get(&id).cloned().ok_or(TxnError::InvalidRequest);
                            (id, found)
                        })
                        .collect(),
                )
            }
            TxnOp::List => TxnReply::Listed(self.txns.borrow().all()),
        }
    }

    /// Runs `op` on the coordinator and carries out its step; while the id is busy (its
    /// state write or its markers in flight) waits for it to settle and runs `op` again,
    /// until `deadline`, after which CONCURRENT_TRANSACTIONS goes back as Kafka answers it.
    async fn txn_settled_step(
        self: &Rc<Self>,
        id: &str,
        deadline: Instant,
        mut op: impl FnMut(&mut crate::txn::TxnCoordinator) -> Result<crate::txn::Step, TxnError>,
    ) -> Result<TxnMeta, TxnError> {
        loop {
            // Listening before the attempt: a settle in between is not missed.
            let settled = self.txn_settled.listen();
            let step = op(&mut self.txns.borrow_mut());
            let left = deadline.saturating_duration_since(Instant::now());
            match step {
                Err(TxnError::ConcurrentTransactions) if !left.is_zero() => {
                    let timer = async move {
                        glommio::timer::sleep(left).await;
                    };
                    futures_lite::future::or(settled, timer).await;
                }
                step => return self.txn_step(id, step).await,
            }
        }
    }

    /// Carries out a coordinator step: persists the new state (and, for a decided
    /// transaction, starts its markers); the state the request is answered with.
    async fn txn_step(
        self: &Rc<Self>,
        id: &str,
        step: Result<crate::txn::Step, TxnError>,
    ) -> Result<TxnMeta, TxnError> {
        let meta = match step? {
            crate::txn::Step::Done(m) => return Ok(m),
            crate::txn::Step::Write(m) => m,
        };
        if let Err(e) = self.txn_persist(id, &meta).await {
            self.txns.borrow_mut().write_failed(id, &meta);
            self.txn_settled.notify_all();
            return Err(e);
        }
        self.txns.borrow_mut().written(id, meta.clone());
        self.txn_settled.notify_all();
        if meta.status.is_prepared() {
            self.txn_complete_later(id.to_string(), meta.clone());
        }
        Ok(meta)
    }

    /// Appends the state of `id` to its `__transaction_state` partition and waits until it
    /// is as durable as the partition makes acknowledged writes (and, with replicas, on
    /// every in-sync replica).
    async fn txn_persist(&self, id: &str, meta: &TxnMeta) -> Result<(), TxnError> {
        let value = records::encode_value(meta).ok_or(TxnError::InvalidRequest)?;
        self.txn_append(id, Some(value)).await
    }

    /// Appends the tombstone of `id` (an expired id), as [`Shard::txn_persist`] a state.
    async fn txn_tombstone(&self, id: &str) -> Result<(), TxnError> {
        self.txn_append(id, None).await
    }

    /// Appends the record of `id` (`None`: its tombstone) to its partition of
    /// `__transaction_state` and waits for the in-sync replicas.
    async fn txn_append(&self, id: &str, value: Option<Vec<u8>>) -> Result<(), TxnError> {
        let (_, p) = self
            .txn_coordinator(id)
            .ok_or(TxnError::CoordinatorNotAvailable)?;
        let log = self
            .leader_log(TXN_TOPIC, p)
            .map_err(|_| TxnError::NotCoordinator)?;
        let key = records::encode_key(id).ok_or(TxnError::InvalidRequest)?;
        let batch = crate::group::records::build_batch(&[(key, value)], wall_clock_ms())
            .ok_or(TxnError::InvalidRequest)?;
        let info = log.append(batch).await.map_err(|e| {
            tracing::warn!("cannot persist transactional id {id}: {e}");
            match e {
                crate::storage::StorageError::Closed => TxnError::NotCoordinator,
                _ => TxnError::CoordinatorNotAvailable,
            }
        })?;
        if !replicated(&log, info.last_offset).await {
            return Err(TxnError::CoordinatorNotAvailable);
        }
        Ok(())
    }

    /// Writes the markers of a decided transaction, then persists its completion; in a
    /// task of its own, retrying until done or this shard stops coordinating the id.
    fn txn_complete_later(self: &Rc<Self>, id: String, meta: TxnMeta) {
        if crate::fatal::faults().hold_txn_markers {
            tracing::warn!("test fault: the markers of {id} are not written");
            return;
        }
        let shard = self.clone();
        glommio::spawn_local(async move {
            if !shard.txn_markers(&id, &meta).await {
                return;
            }
            loop {
                let Some(done) = shard
                    .txns
                    .borrow_mut()
                    .markers_written(&id, wall_clock_ms())
                else {
                    return;
                };
                match shard.txn_persist(&id, &done).await {
                    Ok(()) => {
                        shard.txns.borrow_mut().written(&id, done);
                        shard.txn_settled.notify_all();
                        return;
                    }
                    Err(TxnError::NotCoordinator) => return,
                    Err(_) => glommio::timer::sleep(Duration::from_millis(200)).await,
                }
            }
        })
        .detach();
    }

    /// Aborts open transactions past their timeout (from the shard's tick, every
    /// `transaction.abort.timed.out.transaction.cleanup.interval.ms`).
    pub(super) fn txn_tick(self: &Rc<Self>) {
        let now = wall_clock_ms();
        let interval = i64::try_from(self.config.txn.abort_check_interval_ms).unwrap_or(i64::MAX);
        if now < self.txn_checked_at.get().saturating_add(interval) {
            return;
        }
        self.txn_checked_at.set(now);
        let expiration = i64::try_from(self.config.txn.id_expiration_ms).unwrap_or(i64::MAX);
        let idle = self.txns.borrow_mut().expired_ids(now, expiration);
        for (id, _) in idle {
            let shard = self.clone();
            glommio::spawn_local(async move {
                match shard.txn_tombstone(&id).await {
                    Ok(()) => {
                        shard.txns.borrow_mut().removed(&id);
                        tracing::info!("transactional id {id} expired");
                    }
                    Err(e) => {
                        shard.txns.borrow_mut().release(&id);
                        tracing::warn!("cannot expire transactional id {id}: {e}");
                    }
                }
                shard.txn_settled.notify_all();
            })
            .detach();
        }
        let expired = self.txns.borrow_mut().expired(now);
        for (id, meta) in expired {
            let shard = self.clone();
            glommio::spawn_local(async move {
                tracing::info!(
                    "aborting the transaction of {id} (producer {}): past its timeout",
                    meta.producer_id
                );
                let step = Ok(crate::txn::Step::Write(meta));
                if let Err(e) = shard.txn_step(&id, step).await {
                    tracing::warn!("cannot abort the timed-out transaction of {id}: {e}");
                }
            })
            .detach();
        }
    }

    /// Loads the transactional ids of this shard's `owned` partitions of
    /// `__transaction_state` and completes the transactions found decided.
    pub async fn load_txns(self: &Rc<Self>, owned: &[i32]) {
        let mut loaded = Vec::new();
        for p in owned {
            if let Some(log) = self.log(TXN_TOPIC, *p) {
                let mut records = Vec::new();
                super::internal_log::read_records(&log, TXN_TOPIC, *p, &mut records).await;
                for r in records {
                    if let Some(id) = records::decode_key(&r.key) {
                        loaded.push((id, r.value.as_deref().and_then(records::decode_value)));
                    }
                }
            }
        }
        let count = {
            let mut c = self.txns.borrow_mut();
            c.load(loaded);
            c.all().len()
        };
        if count > 0 {
            tracing::info!("shard {}: loaded {count} transactional ids", self.id);
        }
        let prepared = self.txns.borrow_mut().prepared();
        for (id, meta) in prepared {
            self.txn_complete_later(id, meta);
        }
    }

    /// This shard's partitions of `__transaction_state` that this broker leads.
    pub fn owned_txn_partitions(&self, meta: &MetaView) -> Vec<i32> {
        let n = partitions_of(meta).unwrap_or(0);
        (0..n)
            .filter(|p| self.owner(TXN_TOPIC, *p) == self.id && meta.leads(TXN_TOPIC, *p))
            .collect()
    }

    /// After a metadata change: the ids of partitions this shard stopped leading are
    /// forgotten, those of partitions it started leading (or that were just created) are
    /// loaded.
    pub(super) async fn move_txn_coordinators(self: &Rc<Self>, before: &MetaView, now: &MetaView) {
        let was = self.owned_txn_partitions(before);
        let is = self.owned_txn_partitions(now);
        if was == is {
            return;
        }
        let n = partitions_of(now).unwrap_or(1);
        let keep: Vec<i32> = is.iter().copied().filter(|p| was.contains(p)).collect();
        self.txns
            .borrow_mut()
            .forget(|id| keep.contains(&crate::txn::txn_partition(id, n)));
        let gained: Vec<i32> = is.iter().copied().filter(|p| !was.contains(p)).collect();
        self.load_txns(&gained).await;
    }
}
