//! The transaction coordinator's state machine (Kafka's `TransactionCoordinator` and
//! `TransactionMetadata` transitions), without IO.
//!
//! Every change of a transactional id's state is first persisted (a record of
//! `__transaction_state`) and only then applied: an op returns [`Step::Write`] with the new
//! state, the host appends it and calls [`TxnCoordinator::written`] (or
//! [`TxnCoordinator::write_failed`]). While a write or the markers of an id are in flight
//! the id is busy, and other requests for it get CONCURRENT_TRANSACTIONS, which clients
//! retry.
//!
//! A commit or abort is decided when its `PrepareCommit` / `PrepareAbort` record is
//! durable (EndTxn is answered then); the host then writes a marker to every partition of
//! the transaction and persists `CompleteCommit` / `CompleteAbort` once they are all
//! written ([`TxnCoordinator::markers_written`]). After a restart, ids found prepared are
//! completed the same way ([`TxnCoordinator::prepared`]).

use super::{TxnError, TxnMeta, TxnStatus};
use std::collections::{BTreeSet, HashMap};

/// What the host does next for one request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// Nothing to persist: answer with this state.
    Done(TxnMeta),
    /// Persist this state first, then [`TxnCoordinator::written`]; when it is prepared
    /// (commit or abort decided), write the markers.
    Write(TxnMeta),
}

struct Entry {
    meta: TxnMeta,
    /// A write or the markers of this id are in flight.
    busy: bool,
}

/// The transactional ids of one shard's `__transaction_state` partitions.
pub struct TxnCoordinator {
    txns: HashMap<String, Entry>,
    /// `transaction.max.timeout.ms`.
    max_timeout_ms: i32,
    loaded: bool,
}

/// The epoch after which a producer id is used up: the next InitProducerId gets a new id.
const LAST_EPOCH: i16 = i16::MAX - 1;

impl TxnCoordinator {
    pub fn new(max_timeout_ms: i32) -> TxnCoordinator {
        TxnCoordinator {
            txns: HashMap::new(),
            max_timeout_ms,
            loaded: false,
        }
    }

    fn ready(&self) -> Result<(), TxnError> {
        if self.loaded {
            Ok(())
        } else {
            Err(TxnError::LoadInProgress)
        }
    }

    /// The id's entry, checked against the producer id and epoch the client holds.
    fn checked(&self, id: &str, producer_id: i64, epoch: i16) -> Result<&Entry, TxnError> {
        self.ready()?;
        let e = self
            .txns
            .get(id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if e.meta.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if e.meta.epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        if e.busy {
            return Err(TxnError::ConcurrentTransactions);
        }
        Ok(e)
    }

    fn claim(&mut self, id: &str, meta: TxnMeta) -> Step {
        if let Some(e) = self.txns.get_mut(id) {
            e.busy = true;
        } else {
            // A new id is held busy under a placeholder until its first record is written.
            self.txns.insert(
                id.to_string(),
                Entry {
                    meta: meta.clone(),
                    busy: true,
                },
            );
        }
        Step::Write(meta)
    }

    /// InitProducerId with a transactional id: a new producer id, or the id's next epoch
    /// (fencing the producer that held the previous one). An open transaction is aborted
    /// first, with CONCURRENT_TRANSACTIONS to the caller, who retries. `current` is the
    /// id and epoch the producer holds (KIP-360), `fresh_id` hands out a producer id.
    pub fn init(
        &mut self,
        id: &str,
        timeout_ms: i32,
        current: Option<(i64, i16)>,
        now_ms: i64,
        fresh_id: &mut dyn FnMut() -> Option<i64>,
    ) -> Result<Step, TxnError> {
        self.ready()?;
        if id.is_empty() {
            return Err(TxnError::InvalidRequest);
        }
        if timeout_ms <= 0 || timeout_ms > self.max_timeout_ms {
            return Err(TxnError::InvalidTransactionTimeout);
        }
        let fresh = |producer_id| TxnMeta {
            producer_id,
            epoch: 0,
            timeout_ms,
            status: TxnStatus::Empty,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            start_ms: -1,
        };
        let Some(e) = self.txns.get(id) else {
            let producer_id = fresh_id().ok_or(TxnError::CoordinatorNotAvailable)?;
            return Ok(self.claim(id, fresh(producer_id)));
        };
        if e.busy {
            return Err(TxnError::ConcurrentTransactions);
        }
        let meta = &e.meta;
        if let Some((pid, epoch)) = current {
            // The epoch before ours, when its transaction was aborted for it (a timeout, or
            // an init that fenced it): the producer recovers by bumping (KIP-360).
            let aborted_under_it =
                epoch.checked_add(1) == Some(meta.epoch) && meta.status == TxnStatus::CompleteAbort;
            let same = pid == meta.producer_id && (epoch == meta.epoch || aborted_under_it);
            // A retry whose answer was lost: the producer holds the epoch before ours.
            let retried = pid == meta.producer_id
                && epoch.checked_add(1) == Some(meta.epoch)
                && meta.status == TxnStatus::Empty;
            if retried {
                return Ok(Step::Done(meta.clone()));
            }
            if !same {
                return Err(TxnError::ProducerFenced);
            }
        }
        match meta.status {
            TxnStatus::Ongoing => {
                // Abort it under a bumped epoch (fencing the old producer's writes).
                let next = TxnMeta {
                    epoch: meta.epoch.saturating_add(1).min(LAST_EPOCH),
                    status: TxnStatus::PrepareAbort,
                    last_update_ms: now_ms,
                    ..meta.clone()
                };
                Ok(self.claim(id, next))
            }
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort | TxnStatus::PrepareEpochFence => {
                Err(TxnError::ConcurrentTransactions)
            }
            TxnStatus::Empty
            | TxnStatus::CompleteCommit
            | TxnStatus::CompleteAbort
            | TxnStatus::Dead => {
                let next = if meta.epoch >= LAST_EPOCH {
                    let producer_id = fresh_id().ok_or(TxnError::CoordinatorNotAvailable)?;
                    fresh(producer_id)
                } else {
                    TxnMeta {
                        epoch: meta.epoch + 1,
                        ..fresh(meta.producer_id)
                    }
                };
                Ok(self.claim(id, next))
            }
        }
    }

    /// AddPartitionsToTxn (and AddOffsetsToTxn, with the group's offsets partition): the
    /// transaction starts if it had not, and covers `partitions` from now on.
    pub fn add_partitions(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
        now_ms: i64,
    ) -> Result<Step, TxnError> {
        let meta = &self.checked(id, producer_id, epoch)?.meta;
        match meta.status {
            TxnStatus::Empty
            | TxnStatus::Ongoing
            | TxnStatus::CompleteCommit
            | TxnStatus::CompleteAbort => {}
            TxnStatus::PrepareCommit | TxnStatus::PrepareAbort => {
                return Err(TxnError::ConcurrentTransactions);
            }
            TxnStatus::Dead | TxnStatus::PrepareEpochFence => {
                return Err(TxnError::InvalidTxnState);
            }
        }
        let ongoing = meta.status == TxnStatus::Ongoing;
        if ongoing && partitions.iter().all(|p| meta.partitions.contains(p)) {
            return Ok(Step::Done(meta.clone()));
        }
        let mut next = meta.clone();
        if !ongoing {
            next.partitions.clear();
            next.start_ms = now_ms;
        }
        next.status = TxnStatus::Ongoing;
        next.partitions.extend(partitions.iter().cloned());
        next.last_update_ms = now_ms;
        Ok(self.claim(id, next))
    }

    /// AddPartitionsToTxn with `verify_only` (v4+, a broker checking a produce, KIP-890):
    /// whether each partition is in the producer's open transaction.
    pub fn verify(
        &self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        partitions: &[(String, i32)],
    ) -> Result<Vec<bool>, TxnError> {
        self.ready()?;
        let e = self
            .txns
            .get(id)
            .ok_or(TxnError::InvalidProducerIdMapping)?;
        if e.meta.producer_id != producer_id {
            return Err(TxnError::InvalidProducerIdMapping);
        }
        if e.meta.epoch != epoch {
            return Err(TxnError::ProducerFenced);
        }
        let open = e.meta.status == TxnStatus::Ongoing;
        Ok(partitions
            .iter()
            .map(|p| open && e.meta.partitions.contains(p))
            .collect())
    }

    /// EndTxn: decides the open transaction (persisting `PrepareCommit` or
    /// `PrepareAbort`, after which the markers go out). A retry of an end already done
    /// answers as it did.
    pub fn end(
        &mut self,
        id: &str,
        producer_id: i64,
        epoch: i16,
        commit: bool,
        now_ms: i64,
    ) -> Result<Step, TxnError> {
        self.ready()?;
        // A retried EndTxn may come while its markers are still being written.
        if let Some(e) = self.txns.get(id)
            && e.busy
            && e.meta.producer_id == producer_id
            && e.meta.epoch == epoch
        {
            return Err(TxnError::ConcurrentTransactions);
        }
        let meta = &self.checked(id, producer_id, epoch)?.meta;
        match (meta.status, commit) {
            (TxnStatus::Ongoing, _) => {
                let next = TxnMeta {
                    status: if commit {
                        TxnStatus::PrepareCommit
                    } else {
                        TxnStatus::PrepareAbort
                    },
                    last_update_ms: now_ms,
                    ..meta.clone()
                };
                Ok(self.claim(id, next))
            }
            (TxnStatus::CompleteCommit, true) | (TxnStatus::CompleteAbort, false) => {
                Ok(Step::Done(meta.clone()))
            }
            (TxnStatus::PrepareCommit, true) | (TxnStatus::PrepareAbort, false) => {
                Err(TxnError::ConcurrentTransactions)
            }
            _ => Err(TxnError::InvalidTxnState),
        }
    }

    /// The state the host was asked to persist is durable: it is the id's state now. A
    /// prepared state stays busy until its markers are written.
    pub fn written(&mut self, id: &str, meta: TxnMeta) {
        let busy = meta.status.is_prepared();
        self.txns.insert(id.to_string(), Entry { meta, busy });
    }

    /// Persisting failed: the id keeps its previous state (a new id is forgotten).
    pub fn write_failed(&mut self, id: &str, attempted: &TxnMeta) {
        if let Some(e) = self.txns.get_mut(id) {
            if e.meta == *attempted && attempted.epoch == 0 && attempted.status == TxnStatus::Empty
            {
                self.txns.remove(id);
                return;
            }
            e.busy = false;
        }
    }

    /// Every marker of the prepared transaction of `id` is written: the state to persist
    /// next (`CompleteCommit` / `CompleteAbort`, no partitions).
    pub fn markers_written(&mut self, id: &str, now_ms: i64) -> Option<TxnMeta> {
        let e = self.txns.get(id)?;
        let status = match e.meta.status {
            TxnStatus::PrepareCommit => TxnStatus::CompleteCommit,
            TxnStatus::PrepareAbort => TxnStatus::CompleteAbort,
            _ => return None,
        };
        Some(TxnMeta {
            status,
            partitions: BTreeSet::new(),
            last_update_ms: now_ms,
            start_ms: -1,
            ..e.meta.clone()
        })
    }

    /// Open transactions past their timeout, each to be aborted under a bumped epoch (the
    /// producer that let it time out is fenced): the states to persist.
    pub fn expired(&mut self, now_ms: i64) -> Vec<(String, TxnMeta)> {
        if !self.loaded {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, e) in self.txns.iter_mut() {
            let m = &e.meta;
            let due = m.start_ms.saturating_add(i64::from(m.timeout_ms));
            if e.busy || m.status != TxnStatus::Ongoing || now_ms <= due {
                continue;
            }
            e.busy = true;
            out.push((
                id.clone(),
                TxnMeta {
                    epoch: m.epoch.saturating_add(1).min(LAST_EPOCH),
                    status: TxnStatus::PrepareAbort,
                    last_update_ms: now_ms,
                    ..m.clone()
                },
            ));
        }
        out
    }

    /// Ids with no transaction open (Empty, CompleteCommit, CompleteAbort) whose last
    /// change is older than `expiration_ms`: each is claimed (busy) for its tombstone; the
    /// host calls [`TxnCoordinator::removed`] once the tombstone is written, or
    /// [`TxnCoordinator::write_failed`].
    pub fn expired_ids(&mut self, now_ms: i64, expiration_ms: i64) -> Vec<(String, TxnMeta)> {
        if !self.loaded {
            return Vec::new();
        }
        let mut out = Vec::new();
        for (id, e) in self.txns.iter_mut() {
            let idle = matches!(
                e.meta.status,
                TxnStatus::Empty | TxnStatus::CompleteCommit | TxnStatus::CompleteAbort
            );
            if e.busy || !idle || now_ms.saturating_sub(e.meta.last_update_ms) <= expiration_ms {
                continue;
            }
            e.busy = true;
            out.push((id.clone(), e.meta.clone()));
        }
        out
    }

    /// Writing the tombstone of `id` failed: it stays, usable again.
    pub fn release(&mut self, id: &str) {
        if let Some(e) = self.txns.get_mut(id) {
            e.busy = false;
        }
    }

    /// The tombstone of `id` is written: it is forgotten (its next producer starts afresh
    /// with a new producer id).
    pub fn removed(&mut self, id: &str) {
        self.txns.remove(id);
    }

    /// Ids whose outcome is decided but whose markers may not all be written (found at
    /// load): the host writes them again (markers are idempotent per transaction).
    pub fn prepared(&mut self) -> Vec<(String, TxnMeta)> {
        let mut out = Vec::new();
        for (id, e) in self.txns.iter_mut() {
            if e.meta.status.is_prepared() && !e.busy {
                e.busy = true;
                out.push((id.clone(), e.meta.clone()));
            }
        }
        out
    }

    /// Rebuilds the ids from the records of the shard's `__transaction_state` partitions,
    /// in log order (the last record of an id wins; a tombstone removes it).
    pub fn load(&mut self, records: impl IntoIterator<Item = (String, Option<TxnMeta>)>) {
        for (id, meta) in records {
            match meta {
                Some(meta) => {
                    self.txns.insert(id, Entry { meta, busy: false });
                }
                None => {
                    self.txns.remove(&id);
                }
            }
        }
        self.loaded = true;
    }

    /// Drops the ids `keep` does not keep (their partition moved to another broker).
    pub fn forget(&mut self, keep: impl Fn(&str) -> bool) {
        self.txns.retain(|id, _| keep(id));
    }

    pub fn is_loaded(&self) -> bool {
        self.loaded
    }

    /// The state of one id (DescribeTransactions).
    pub fn get(&self, id: &str) -> Option<&TxnMeta> {
        self.txns.get(id).map(|e| &e.meta)
    }

    /// Every id and its state (ListTransactions), by id.
    pub fn all(&self) -> Vec<(String, TxnMeta)> {
        let mut out: Vec<_> = self
            .txns
            .iter()
            .map(|(id, e)| (id.clone(), e.meta.clone()))
            .collect();
        out.sort_by(|a, b| a.0.cmp(&b.0));
        out
    }
}

#[cfg(test)]
#[path = "coordinator_tests.rs"]
mod tests;
