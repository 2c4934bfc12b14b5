//! Per-partition idempotent producer state: for each producer id, its epoch and the
//! metadata of its last five batches, as Kafka's `ProducerStateManager` keeps it.
//!
//! The log checks and updates this state under the same lock that assigns offsets, so two
//! appends of one producer cannot race between the check and the update.

use std::collections::HashMap;
use thiserror::Error;

/// How many batches per producer are remembered for duplicate detection. Kafka's
/// `max.in.flight.requests.per.connection` must not exceed this for idempotence.
pub const BATCHES_KEPT: usize = 5;

/// A batch with no producer id (non-idempotent producer).
pub const NO_PRODUCER_ID: i64 = -1;
/// The epoch of a producer whose state is unknown (Kafka's `RecordBatch.NO_PRODUCER_EPOCH`).
const NO_EPOCH: i16 = -1;

#[derive(Debug, Error, Clone, PartialEq, Eq)]
pub enum ProducerError {
    /// The batch's epoch is older than the producer's current epoch at this partition.
    #[error("producer {producer_id} epoch {epoch} is older than the current epoch {current}")]
    StaleEpoch {
        producer_id: i64,
        epoch: i16,
        current: i16,
    },
    /// The batch does not follow the producer's last sequence.
    #[error(
        "out of order sequence for producer {producer_id}: expected {expected}, got {first_seq}"
    )]
    OutOfOrder {
        producer_id: i64,
        expected: i32,
        first_seq: i32,
    },
    /// The batch names a producer id this broker never issued.
    #[error("producer id {producer_id} was not issued by this broker")]
    UnknownProducerId { producer_id: i64 },
}

impl ProducerError {
    /// The Kafka error code a client gets for this error.
    pub fn code(&self) -> i16 {
        use crate::protocol::code;
        match self {
            // Since Kafka 2.7 (KIP-588) Produce answers a stale epoch with
            // INVALID_PRODUCER_EPOCH, which producers treat as abortable; PRODUCER_FENCED
            // is for the transactional APIs.
            ProducerError::StaleEpoch { .. } => code::INVALID_PRODUCER_EPOCH,
            ProducerError::OutOfOrder { .. } => code::OUT_OF_ORDER_SEQUENCE_NUMBER,
            ProducerError::UnknownProducerId { .. } => code::UNKNOWN_PRODUCER_ID,
        }
    }
}

/// The identity and offsets of one batch of a producer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct BatchMeta {
    pub first_seq: i32,
    pub last_seq: i32,
    pub base_offset: i64,
    pub last_offset: i64,
}

/// The producer fields of a batch header, with its offsets once assigned.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerBatch {
    pub producer_id: i64,
    pub epoch: i16,
    pub first_seq: i32,
    /// `last_offset_delta` of the batch: the sequence advances by this much.
    pub last_offset_delta: i32,
}

impl ProducerBatch {
    pub fn last_seq(&self) -> i32 {
        increment_sequence(self.first_seq, self.last_offset_delta)
    }
}

/// `seq + delta` with Kafka's wraparound: after `i32::MAX` comes 0.
pub fn increment_sequence(seq: i32, delta: i32) -> i32 {
    if seq > i32::MAX - delta {
        delta - (i32::MAX - seq) - 1
    } else {
        seq + delta
    }
}

/// Whether `next` directly follows `last` (Kafka's `ProducerStateManager.inSequence`).
pub fn in_sequence(last: i32, next: i32) -> bool {
    next as i64 == last as i64 + 1 || (next == 0 && last == i32::MAX)
}

#[derive(Debug, Clone, Default, PartialEq, Eq)]
struct Entry {
    epoch: i16,
    /// Oldest first, at most [`BATCHES_KEPT`].
    batches: Vec<BatchMeta>,
    /// The largest timestamp of the producer's last batch (DescribeProducers shows it).
    last_timestamp: i64,
}

/// One producer of a partition, as DescribeProducers shows it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ActiveProducer {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_sequence: i32,
    pub last_timestamp: i64,
    /// The first offset of its open transaction here, or -1.
    pub txn_start_offset: i64,
}

impl Entry {
    fn unknown() -> Entry {
        Entry {
            epoch: NO_EPOCH,
            batches: Vec::new(),
            last_timestamp: -1,
        }
    }

    fn push(&mut self, epoch: i16, meta: BatchMeta) {
        if epoch != self.epoch {
            self.epoch = epoch;
            self.batches.clear();
        }
        if self.batches.len() == BATCHES_KEPT {
            self.batches.remove(0);
        }
        self.batches.push(meta);
    }
}

/// What to do with an append, decided by [`ProducerStates::check`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Verdict {
    /// Append it; then call [`ProducerStates::commit`] with the assigned offsets.
    Append,
    /// A retry of a batch already in the log: answer with these offsets, append nothing.
    Duplicate(BatchMeta),
}

/// One producer's state as a snapshot holds it (see `storage::snapshot`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProducerEntry {
    pub producer_id: i64,
    pub epoch: i16,
    pub last_timestamp: i64,
    /// Oldest first, at most [`BATCHES_KEPT`].
    pub batches: Vec<BatchMeta>,
}

/// The producer states of one partition.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct ProducerStates {
    producers: HashMap<i64, Entry>,
}

impl ProducerStates {
    pub fn len(&self) -> usize {
        self.producers.len()
    }

    pub fn is_empty(&self) -> bool {
        self.producers.is_empty()
    }

    /// Checks the batches of one append, in order, as Kafka's `ProducerAppendInfo` does.
    /// A duplicate of any remembered batch makes the whole append a duplicate (Kafka answers
    /// the request with the first duplicate's offsets). Changes nothing.
    pub fn check(&self, batches: &[ProducerBatch]) -> Result<Verdict, ProducerError> {
        // Batches of one producer later in the same append see the earlier ones.
        let mut staged: HashMap<i64, Entry> = HashMap::new();
        for b in batches {
            if b.producer_id < 0 {
                continue;
            }
            let current = staged
                .get(&b.producer_id)
                .or_else(|| self.producers.get(&b.producer_id));
            if let Some(e) = current
                && e.epoch == b.epoch
                && let Some(dup) = e
                    .batches
                    .iter()
                    .find(|m| m.first_seq == b.first_seq && m.last_seq == b.last_seq())
            {
                return Ok(Verdict::Duplicate(*dup));
            }
            let mut entry = current.cloned().unwrap_or_else(Entry::unknown);
            if b.epoch < entry.epoch {
                return Err(ProducerError::StaleEpoch {
                    producer_id: b.producer_id,
                    epoch: b.epoch,
                    current: entry.epoch,
                });
            }
            if b.first_seq < 0 {
                // No sequence: a coordinator's transactional write (TxnOffsetCommit), only
                // fenced by epoch, as Kafka skips the sequence checks of its coordinators.
                continue;
            }
            if b.epoch != entry.epoch {
                // A new epoch starts at sequence 0, except for a producer we know nothing
                // about (its state went with retention, or it never wrote here): Kafka 2.5+
                // accepts any sequence from it rather than answering UNKNOWN_PRODUCER_ID.
                if b.first_seq != 0 && entry.epoch != NO_EPOCH {
                    return Err(ProducerError::OutOfOrder {
                        producer_id: b.producer_id,
                        expected: 0,
                        first_seq: b.first_seq,
                    });
                }
            } else if let Some(last) = entry.batches.last()
                && !in_sequence(last.last_seq, b.first_seq)
            {
                return Err(ProducerError::OutOfOrder {
                    producer_id: b.producer_id,
                    expected: increment_sequence(last.last_seq, 1),
                    first_seq: b.first_seq,
                });
            }
            // Offsets are not known yet; only the sequences matter for the next check.
            entry.push(
                b.epoch,
                BatchMeta {
                    first_seq: b.first_seq,
                    last_seq: b.last_seq(),
                    base_offset: -1,
                    last_offset: -1,
                },
            );
            staged.insert(b.producer_id, entry);
        }
        Ok(Verdict::Append)
    }

    /// Records an appended (or recovered) batch at its offsets. No checks: call after
    /// [`ProducerStates::check`] accepted the append, or while rebuilding from the log.
    pub fn commit(
        &mut self,
        b: &ProducerBatch,
        base_offset: i64,
        last_offset: i64,
        max_timestamp: i64,
    ) {
        if b.producer_id < 0 {
            return;
        }
        if b.first_seq < 0 {
            self.fence(b.producer_id, b.epoch);
            return;
        }
        let entry = self
            .producers
            .entry(b.producer_id)
            .or_insert_with(Entry::unknown);
        if b.epoch < entry.epoch {
            // Only while rebuilding from a log that holds an older epoch after a newer one,
            // which an append never writes: keep the newer state.
            return;
        }
        entry.push(
            b.epoch,
            BatchMeta {
                first_seq: b.first_seq,
                last_seq: b.last_seq(),
                base_offset,
                last_offset,
            },
        );
        entry.last_timestamp = max_timestamp;
    }

    /// Whether a transaction marker of `producer_id` at `epoch` may be written: not when
    /// the producer has moved to a newer epoch here (the marker's coordinator is fenced).
    pub fn check_marker(&self, producer_id: i64, epoch: i16) -> Result<(), ProducerError> {
        match self.producers.get(&producer_id) {
            Some(e) if epoch < e.epoch => Err(ProducerError::StaleEpoch {
                producer_id,
                epoch,
                current: e.epoch,
            }),
            _ => Ok(()),
        }
    }

    /// A transaction marker of `producer_id` at `epoch` was written: a newer epoch (the
    /// coordinator bumped it to abort a timed-out transaction) fences the older one, whose
    /// next batch is refused as stale; its sequences start again at 0.
    pub fn fence(&mut self, producer_id: i64, epoch: i16) {
        if producer_id < 0 {
            return;
        }
        let entry = self
            .producers
            .entry(producer_id)
            .or_insert_with(Entry::unknown);
        if epoch > entry.epoch {
            entry.epoch = epoch;
            entry.batches.clear();
        }
    }

    /// Every producer with a batch in the partition, by producer id.
    pub fn active(&self) -> Vec<ActiveProducer> {
        let mut out: Vec<ActiveProducer> = self
            .producers
            .iter()
            .filter_map(|(&producer_id, e)| {
                Some(ActiveProducer {
                    producer_id,
                    epoch: e.epoch,
                    last_sequence: e.batches.last()?.last_seq,
                    last_timestamp: e.last_timestamp,
                    txn_start_offset: -1,
                })
            })
            .collect();
        out.sort_by_key(|p| p.producer_id);
        out
    }

    /// Every producer's state, by producer id (for a snapshot).
    pub fn export(&self) -> Vec<ProducerEntry> {
        let mut out: Vec<ProducerEntry> = self
            .producers
            .iter()
            .map(|(&producer_id, e)| ProducerEntry {
                producer_id,
                epoch: e.epoch,
                last_timestamp: e.last_timestamp,
                batches: e.batches.clone(),
            })
            .collect();
        out.sort_by_key(|e| e.producer_id);
        out
    }

    /// The states a snapshot held; `None` when an entry is not one [`Self::export`]
    /// could have produced (a negative id, a repeated id, more than [`BATCHES_KEPT`]
    /// batches).
    pub fn restore(entries: Vec<ProducerEntry>) -> Option<ProducerStates> {
        let mut producers = HashMap::with_capacity(entries.len());
        for e in entries {
            if e.producer_id < 0 || e.batches.len() > BATCHES_KEPT {
                return None;
            }
            let entry = Entry {
                epoch: e.epoch,
                batches: e.batches,
                last_timestamp: e.last_timestamp,
            };
            if producers.insert(e.producer_id, entry).is_some() {
                return None;
            }
        }
        Some(ProducerStates { producers })
    }

    /// The epoch and last batch of a producer (tests and diagnostics).
    pub fn last_batch(&self, producer_id: i64) -> Option<(i16, BatchMeta)> {
        let e = self.producers.get(&producer_id)?;
        Some((e.epoch, *e.batches.last()?))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pb(pid: i64, epoch: i16, first_seq: i32, n: i32) -> ProducerBatch {
        ProducerBatch {
            producer_id: pid,
            epoch,
            first_seq,
            last_offset_delta: n - 1,
        }
    }

    /// Checks and commits like the log does, at consecutive offsets from `next`.
    fn append(
        s: &mut ProducerStates,
        b: ProducerBatch,
        next: &mut i64,
    ) -> Result<Verdict, ProducerError> {
        let v = s.check(&[b])?;
        if v == Verdict::Append {
            let last = *next + b.last_offset_delta as i64;
            s.commit(&b, *next, last, *next * 10);
            *next = last + 1;
        }
        Ok(v)
    }

    #[test]
    fn sequence_arithmetic_wraps_at_i32_max() {
        assert_eq!(increment_sequence(5, 3), 8);
        assert_eq!(increment_sequence(i32::MAX, 1), 0);
        assert_eq!(increment_sequence(i32::MAX - 1, 3), 1);
        assert!(in_sequence(4, 5));
        assert!(in_sequence(i32::MAX, 0));
        assert!(!in_sequence(i32::MAX, i32::MIN));
        assert!(!in_sequence(4, 6));
        assert!(!in_sequence(4, 4));
    }

    #[test]
    fn duplicates_return_original_offsets_and_gaps_are_rejected() {
        let mut s = ProducerStates::default();
        let mut next = 100;
        assert_eq!(
            append(&mut s, pb(7, 0, 0, 3), &mut next),
            Ok(Verdict::Append)
        );
        assert_eq!(
            append(&mut s, pb(7, 0, 3, 2), &mut next),
            Ok(Verdict::Append)
        );
        assert_eq!(next, 105);
        let dup = append(&mut s, pb(7, 0, 0, 3), &mut next).unwrap();
        assert_eq!(
            dup,
            Verdict::Duplicate(BatchMeta {
                first_seq: 0,
                last_seq: 2,
                base_offset: 100,
                last_offset: 102
            })
        );
        assert_eq!(next, 105);
        assert!(matches!(
            append(&mut s, pb(7, 0, 6, 1), &mut next),
            Err(ProducerError::OutOfOrder { expected: 5, .. })
        ));
        // A batch overlapping but not equal to a remembered one is out of order, too.
        assert!(append(&mut s, pb(7, 0, 1, 2), &mut next).is_err());
        assert_eq!(
            append(&mut s, pb(7, 0, 5, 1), &mut next),
            Ok(Verdict::Append)
        );
    }

    #[test]
    fn only_the_last_five_batches_are_remembered() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        for seq in 0..7 {
            append(&mut s, pb(1, 0, seq, 1), &mut next).unwrap();
        }
        // Sequences 2..=6 are remembered; 0 and 1 are too old to tell from a gap.
        for seq in 2..7 {
            assert!(matches!(
                append(&mut s, pb(1, 0, seq, 1), &mut next),
                Ok(Verdict::Duplicate(m)) if m.base_offset == seq as i64
            ));
        }
        assert!(append(&mut s, pb(1, 0, 1, 1), &mut next).is_err());
    }

    #[test]
    fn epochs_fence_older_producers_and_restart_sequences() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        append(&mut s, pb(3, 1, 0, 2), &mut next).unwrap();
        assert!(matches!(
            append(&mut s, pb(3, 0, 2, 1), &mut next),
            Err(ProducerError::StaleEpoch { current: 1, .. })
        ));
        // A bumped epoch must start at 0 for a known producer.
        assert!(matches!(
            append(&mut s, pb(3, 2, 5, 1), &mut next),
            Err(ProducerError::OutOfOrder { expected: 0, .. })
        ));
        assert_eq!(
            append(&mut s, pb(3, 2, 0, 1), &mut next),
            Ok(Verdict::Append)
        );
        // After the bump the old epoch's batches are no longer duplicates but stale.
        assert!(append(&mut s, pb(3, 1, 0, 2), &mut next).is_err());
    }

    #[test]
    fn unknown_producers_may_start_at_any_sequence() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        assert_eq!(
            append(&mut s, pb(9, 4, 1234, 2), &mut next),
            Ok(Verdict::Append)
        );
        assert_eq!(
            append(&mut s, pb(9, 4, 1236, 1), &mut next),
            Ok(Verdict::Append)
        );
        assert!(append(&mut s, pb(9, 4, 1240, 1), &mut next).is_err());
    }

    #[test]
    fn sequences_wrap_around_at_i32_max() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        append(&mut s, pb(2, 0, i32::MAX - 1, 2), &mut next).unwrap();
        assert_eq!(
            append(&mut s, pb(2, 0, 0, 3), &mut next),
            Ok(Verdict::Append)
        );
        let b = pb(2, 0, i32::MAX, 3);
        assert_eq!(b.last_seq(), 1);
        assert_eq!(s.last_batch(2).map(|(_, m)| m.last_seq), Some(2));
    }

    #[test]
    fn batches_of_one_append_are_checked_in_order() {
        let s = ProducerStates::default();
        let ok = [pb(1, 0, 0, 2), pb(1, 0, 2, 2)];
        assert_eq!(s.check(&ok), Ok(Verdict::Append));
        let gap = [pb(1, 0, 0, 2), pb(1, 0, 3, 2)];
        assert!(s.check(&gap).is_err());
        // Non-idempotent batches are not tracked.
        assert_eq!(s.check(&[pb(-1, -1, -1, 5)]), Ok(Verdict::Append));
    }

    #[test]
    fn active_producers_show_their_epoch_last_sequence_and_timestamp() {
        let mut s = ProducerStates::default();
        let mut next = 0;
        append(&mut s, pb(9, 0, 0, 2), &mut next).expect("first");
        append(&mut s, pb(4, 1, 0, 3), &mut next).expect("second");
        append(&mut s, pb(9, 0, 2, 5), &mut next).expect("third");
        // A retry changes nothing.
        append(&mut s, pb(9, 0, 2, 5), &mut next).expect("retry");
        let active = s.active();
        assert_eq!(
            active,
            vec![
                ActiveProducer {
                    producer_id: 4,
                    epoch: 1,
                    last_sequence: 2,
                    last_timestamp: 20,
                    txn_start_offset: -1,
                },
                ActiveProducer {
                    producer_id: 9,
                    epoch: 0,
                    last_sequence: 6,
                    last_timestamp: 50,
                    txn_start_offset: -1,
                },
            ]
        );
    }
}
