//! What replication needs of a log: the leader epoch stamped into appended batches, the
//! replicated high watermark that bounds consumers, appends of a follower (batches that
//! already have their offsets, copied from the leader), the epochs' end offsets
//! (OffsetForLeaderEpoch) and truncation of a diverged tail.

use super::PartitionLog;
use crate::config::FlushMode;
use crate::producer::ProducerBatch;
use crate::protocol::batch;
use crate::storage::error::{Result, StorageError};
use crate::storage::io::{Storage, StorageFile, segment_path};
use crate::storage::segment::Scanner;
use bytes::Bytes;
use std::path::Path;

impl<S: Storage> PartitionLog<S> {
    /// Stamps `epoch` into every batch appended from now on (`None`: leave them as sent).
    pub fn set_leader_epoch(&self, epoch: Option<i32>) {
        self.inner.stamp_epoch.set(epoch);
    }

    /// Sets the replicated high watermark (`None`: this copy alone is in sync, its own end
    /// is the high watermark). Wakes long polls and `acks=all` waiters.
    pub fn set_hw_limit(&self, limit: Option<i64>) {
        if self.inner.hw_limit.get() != limit {
            self.inner.hw_limit.set(limit);
            self.inner.notify.notify_all();
        }
    }

    pub fn hw_limit(&self) -> Option<i64> {
        self.inner.hw_limit.get()
    }

    /// The latest leader epoch with batches in this log.
    pub fn latest_epoch(&self) -> Option<i32> {
        self.inner.epochs.borrow().latest()
    }

    /// The first offset `epoch` wrote here, if it wrote any.
    pub fn epoch_start(&self, epoch: i32) -> Option<i64> {
        self.inner.epochs.borrow().start_of(epoch)
    }

    /// OffsetForLeaderEpoch: the largest epoch at or below `epoch` and where it ends here.
    pub fn end_offset_for_epoch(&self, epoch: i32) -> (i32, i64) {
        let end = self.log_end_offset();
        self.inner.epochs.borrow().end_offset_for(epoch, end)
    }

    /// Whether a follower fetching `fetch_offset` after `last_fetched_epoch` diverged from
    /// this log (see [`crate::storage::epochs::diverging`]).
    pub fn diverging(&self, last_fetched_epoch: i32, fetch_offset: i64) -> Option<(i32, i64)> {
        let end = self.log_end_offset();
        crate::storage::epochs::diverging(
            &self.inner.epochs.borrow(),
            end,
            last_fetched_epoch,
            fetch_offset,
        )
    }

    /// The leader epochs of this log (for a follower's own truncation decision).
    pub fn epochs(&self) -> crate::storage::epochs::EpochCache {
        self.inner.epochs.borrow().clone()
    }

    /// Appends batches a follower fetched from its leader: offsets, epochs and timestamps
    /// stay as the leader wrote them. Batches the log already holds (a repeated fetch) are
    /// skipped; a batch that would leave a gap is refused. Resolves with the new log end
    /// once the batches are written (synced, under `fsync`), as a leader's append would.
    pub async fn append_replica(&self, batches: Bytes) -> Result<i64> {
        let config = self.config();
        let headers = batch::validate_batches(&batches)?;
        let ticket = self.inner.assign_lock.ticket();
        let guard = ticket.acquire().await;
        self.check_open(&self.inner.state.borrow())?;
        let next = self.inner.state.borrow().next_offset();
        // Skip what is already here; what is left must start exactly at the log end.
        let fresh: Vec<_> = headers
            .into_iter()
            .filter(|(h, _)| h.last_offset() >= next)
            .collect();
        let Some((first, first_range)) = fresh.first() else {
            drop(guard);
            return Ok(self.local_end());
        };
        if first.base_offset != next {
            return Err(StorageError::InvalidRecord(format!(
                "replicated batch at offset {} does not continue the log at {next}",
                first.base_offset
            )));
        }
        let mut expect = next;
        for (h, _) in &fresh {
            if h.base_offset != expect {
                return Err(StorageError::InvalidRecord(format!(
                    "replicated batches jump from offset {expect} to {}",
                    h.base_offset
                )));
            }
            expect = h.last_offset().saturating_add(1);
        }
        let start = first_range.start;
        let end = fresh.last().map_or(start, |(_, r)| r.end);
        let bytes = batches.slice(start..end);
        let size = bytes.len() as u64;
        let records: i64 = fresh.iter().map(|(h, _)| i64::from(h.record_count)).sum();
        let now = self.now();
        self.maybe_roll(&config, size, records, now).await?;
        let last = {
            let mut st = self.inner.state.borrow_mut();
            let mut producers = self.inner.producers.borrow_mut();
            let mut txns = self.inner.txns.borrow_mut();
            let mut epochs = self.inner.epochs.borrow_mut();
            let seg = st.active_mut();
            if seg.size == 0 {
                seg.created_ms = now;
            }
            let mut last = next - 1;
            for (h, range) in &fresh {
                last = h.last_offset();
                epochs.assign(h.partition_leader_epoch, h.base_offset);
                if h.producer_id >= 0 && h.attributes & batch::ATTR_CONTROL != 0 {
                    let commit = batches.get(range.clone()).and_then(batch::control_type)
                        == Some(batch::CONTROL_COMMIT);
                    txns.marker(h.producer_id, h.base_offset, commit);
                    producers.fence(h.producer_id, h.producer_epoch);
                } else if h.producer_id >= 0 {
                    if h.attributes & batch::ATTR_TRANSACTIONAL != 0 {
                        txns.data(h.producer_id, h.base_offset);
                    }
                    let pb = ProducerBatch {
                        producer_id: h.producer_id,
                        epoch: h.producer_epoch,
                        first_seq: h.base_sequence,
                        last_offset_delta: h.last_offset_delta,
                    };
                    producers.commit(&pb, h.base_offset, last, h.max_timestamp);
                }
                let position = seg.size;
                seg.index_batch(
                    position,
                    h.base_offset,
                    last,
                    range.len() as u64,
                    h.max_timestamp,
                    config.index_interval_bytes,
                );
            }
            let end_pos = seg.size;
            st.pending.push_back(bytes);
            st.marks.push_back((end_pos, last + 1));
            last
        };
        drop(guard);
        self.inner
            .stats
            .appended(size, u64::try_from(records).unwrap_or(0));
        let durable = config.flush == FlushMode::Fsync;
        self.wait_for(last + 1, durable).await?;
        Ok(self.local_end())
    }
}

/// The replicated high watermark of a partition, kept in its directory (Kafka keeps one
/// `replication-offset-checkpoint` per log directory with every partition's).
pub const HW_CHECKPOINT: &str = "replication-offset-checkpoint";

impl<S: Storage> PartitionLog<S> {
    /// Writes the high watermark durably, in Kafka's checkpoint format; returns the value
    /// written.
    pub async fn write_hw_checkpoint(&self) -> Result<i64> {
        let hw = self.high_watermark();
        let (storage, dir) = (&self.inner.storage, &self.inner.dir);
        super::start::write_checkpoint_file(storage, dir, HW_CHECKPOINT, hw).await?;
        Ok(hw)
    }

    /// Takes back a checkpointed high watermark (a broker of a cluster, at open): what it
    /// knew was replicated stays visible if it leads again, rather than nothing until its
    /// followers fetch. Bounded by the log as it recovered; an unreadable checkpoint is
    /// ignored (the high watermark then starts at the log start, which only hides data).
    pub async fn restore_hw_checkpoint(&self) {
        let (storage, dir) = (&self.inner.storage, &self.inner.dir);
        match super::start::read_checkpoint_file(storage, dir, HW_CHECKPOINT).await {
            Ok(None) => {}
            Ok(Some(Ok(hw))) => {
                let bounded = hw.clamp(self.log_start_offset(), self.local_end());
                self.set_hw_limit(Some(bounded));
            }
            Ok(Some(Err(e))) => {
                tracing::warn!("ignoring {}: {e}", dir.join(HW_CHECKPOINT).display())
            }
            Err(e) => tracing::warn!("cannot read {}: {e}", dir.join(HW_CHECKPOINT).display()),
        }
    }
}

/// Empties the log in `dir` (closed) and starts it again at `start`: a follower that fell
/// behind its leader's log start (retention deleted what it still needed) copies the log
/// from there (Kafka's truncateFullyAndStartAt). The new empty segment is created before
/// the old files go, newest first, so a crash leaves a log that still opens.
pub async fn restart_closed_at<S: Storage>(storage: &S, dir: &Path, start: i64) -> Result<()> {
    // The producer snapshots describe the old log: they go first (each is only a
    // shortcut, so losing them early is always safe).
    crate::storage::snapshot::remove_where(storage, dir, |_| true).await?;
    let names = storage.list_dir(dir).await?;
    let kind = crate::storage::io::FileKind::Buffered;
    let fresh = segment_path(dir, start, "log");
    let file = storage.open(&fresh, kind, true).await?;
    file.truncate(0).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.sync_dir(dir).await?;
    let mut doomed: Vec<&String> = names
        .iter()
        .filter(|n| {
            let path = dir.join(n);
            path != fresh
                && (n.ends_with(".log")
                    || n.ends_with(".index")
                    || n.ends_with(".timeindex")
                    || n.as_str() == HW_CHECKPOINT
                    || n.as_str() == super::START_CHECKPOINT)
        })
        .collect();
    doomed.sort_unstable_by(|a, b| b.cmp(a));
    for name in doomed {
        storage.remove_file(&dir.join(name)).await?;
    }
    storage.sync_dir(dir).await?;
    Ok(())
}

/// Cuts the log in `dir` (closed) back to `offset`: segments that start at or after it are
/// deleted (all but the first), and the segment holding it ends before the first batch
/// that reaches `offset`. Its indexes and the producer snapshots past `offset` are removed;
/// the next open rebuilds the indexes, and the producer state and leader epochs from what
/// is left. Returns the new log end.
pub async fn truncate_closed<S: Storage>(storage: &S, dir: &Path, offset: i64) -> Result<i64> {
    // Snapshots past the cut describe batches that are going: they go first, durably,
    // before new batches could take their offsets. (The open removes any snapshot above
    // the log end too, for a cut that ends below `offset`.)
    crate::storage::snapshot::remove_where(storage, dir, |o| o > offset).await?;
    let mut bases: Vec<i64> = storage
        .list_dir(dir)
        .await?
        .iter()
        .filter_map(|n| n.strip_suffix(".log"))
        .filter(|stem| stem.len() == 20 && stem.bytes().all(|b| b.is_ascii_digit()))
        .filter_map(|stem| stem.parse().ok())
        .collect();
    bases.sort_unstable();
    let Some(&first) = bases.first() else {
        return Ok(0);
    };
    let keep = bases.iter().rposition(|b| *b <= offset).unwrap_or(0);
    // Later segments go first, newest first: a crash midway leaves a shorter log, never
    // a gap.
    for &base in bases[keep + 1..].iter().rev() {
        for ext in ["timeindex", "index", "log"] {
            let path = segment_path(dir, base, ext);
            if storage.exists(&path).await {
                storage.remove_file(&path).await?;
            }
        }
    }
    let base = bases[keep];
    let kind = crate::storage::io::FileKind::Buffered;
    let file = storage
        .open(&segment_path(dir, base, "log"), kind, false)
        .await?;
    let len = file.len();
    let mut scanner = Scanner::new(&file, 0, len, false);
    let mut cut = 0u64;
    let mut end = base.max(first);
    while let Some(b) = scanner.next().await? {
        if b.last_offset >= offset {
            break;
        }
        cut = b.end();
        end = b.last_offset.saturating_add(1);
    }
    if cut < len {
        file.truncate(cut).await?;
        file.sync_data().await?;
        for ext in ["timeindex", "index"] {
            let path = segment_path(dir, base, ext);
            if storage.exists(&path).await {
                storage.remove_file(&path).await?;
            }
        }
    }
    file.close().await?;
    storage.sync_dir(dir).await?;
    Ok(end)
}

#[cfg(test)]
mod tests {
    use super::super::PartitionLog;
    use super::super::tests::{batch, cfg, read_all};
    use crate::config::FlushMode;
    use crate::protocol::batch::BatchHeader;
    use crate::storage::sim::SimStorage;
    use bytes::Bytes;
    use futures_lite::future::block_on;
    use std::path::PathBuf;

    /// Everything a follower would fetch from `from`, as the leader stores it.
    async fn fetched(log: &PartitionLog<SimStorage>, from: i64) -> Vec<Bytes> {
        let mut out = Vec::new();
        let mut next = from;
        loop {
            let slice = log.read_for_replica(next, 1000).await.expect("read");
            if slice.regions.is_empty() {
                return out;
            }
            for r in &slice.regions {
                let bytes = Bytes::from(r.read().await.expect("region"));
                let headers = crate::protocol::batch::validate_batches(&bytes).expect("batches");
                if let Some((h, _)) = headers.last() {
                    next = h.last_offset() + 1;
                }
                out.push(bytes);
            }
        }
    }

    fn epoch_of(b: &[u8]) -> i32 {
        BatchHeader::parse(b)
            .expect("header")
            .partition_leader_epoch
    }

    #[test]
    fn a_follower_copies_the_leader_byte_for_byte_and_truncates_a_diverged_tail() {
        block_on(async {
            let sim = SimStorage::new(5);
            let (ld, fd) = (PathBuf::from("/d/lead-0"), PathBuf::from("/d/follow-0"));
            let leader = PartitionLog::open(sim.clone(), ld, cfg(FlushMode::Fsync))
                .await
                .expect("open");
            let follower = PartitionLog::open(sim.clone(), fd.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            leader.set_leader_epoch(Some(3));
            for i in 0..40 {
                leader.append(batch(i, 1 + i % 3)).await.expect("append");
            }
            leader.set_leader_epoch(Some(5));
            for i in 40..60 {
                leader.append(batch(i, 2)).await.expect("append");
            }
            let start5 = leader.epoch_start(5).expect("epoch 5 wrote");
            assert_eq!(leader.end_offset_for_epoch(3), (3, start5));
            assert_eq!(leader.end_offset_for_epoch(4), (3, start5));
            assert_eq!(leader.end_offset_for_epoch(5), (5, leader.log_end_offset()));
            // Fetched in pieces (a repeated piece is skipped), across segment rolls.
            let chunks = fetched(&leader, 0).await;
            for (i, c) in chunks.iter().enumerate() {
                follower.append_replica(c.clone()).await.expect("replicate");
                if i == 2 {
                    follower
                        .append_replica(chunks[1].clone())
                        .await
                        .expect("repeat");
                }
            }
            assert_eq!(follower.log_end_offset(), leader.log_end_offset());
            assert_eq!(read_all(&follower, 0).await, read_all(&leader, 0).await);
            assert_eq!(follower.epochs(), leader.epochs());
            assert!(follower.segment_count() > 1);
            // A gap is refused and changes nothing.
            let end = follower.log_end_offset();
            let mut far = batch(99, 1).to_vec();
            crate::protocol::batch::set_base_offset(&mut far, end + 5);
            assert!(follower.append_replica(Bytes::from(far)).await.is_err());
            assert_eq!(follower.log_end_offset(), end);

            // Consumers of the follower see only what its leader said is replicated (a
            // high watermark is always at a batch boundary: it is some replica's end).
            let all = read_all(&leader, 0).await;
            let hw = all[6].0;
            follower.set_hw_limit(Some(hw));
            assert_eq!(follower.high_watermark(), hw);
            assert_eq!(read_all(&follower, 0).await, all[..6].to_vec());
            let beyond = follower
                .read(hw + 2, 1000)
                .await
                .expect("between hw and end");
            assert!(beyond.regions.is_empty());
            follower.set_hw_limit(None);

            // The follower truncates into epoch 5 (as if it had led epoch 5 alone) and
            // reopens with the producer state and epochs of what is left.
            follower.close().await.expect("close");
            let cut = start5 + 3;
            let new_end = super::truncate_closed(&sim, &fd, cut)
                .await
                .expect("truncate");
            assert!(new_end <= cut && new_end > start5, "{new_end} vs {cut}");
            let follower = PartitionLog::open(sim.clone(), fd, cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            assert_eq!(follower.log_end_offset(), new_end);
            let kept = read_all(&follower, 0).await;
            assert_eq!(kept[..], all[..kept.len()]);
            assert_eq!(follower.latest_epoch(), Some(5));
            for (_, b) in &kept {
                assert!(matches!(epoch_of(b), 3 | 5));
            }
            // And catches up again from there.
            for c in fetched(&leader, new_end).await {
                follower.append_replica(c).await.expect("catch up");
            }
            assert_eq!(read_all(&follower, 0).await, all);
        });
    }

    #[test]
    fn a_follower_behind_the_leaders_start_copies_from_there() {
        block_on(async {
            let sim = SimStorage::new(9);
            let (ld, fd) = (PathBuf::from("/d/lead-1"), PathBuf::from("/d/follow-1"));
            let leader = PartitionLog::open(sim.clone(), ld, cfg(FlushMode::Fsync))
                .await
                .expect("open");
            let follower = PartitionLog::open(sim.clone(), fd.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            leader.set_leader_epoch(Some(2));
            for i in 0..60 {
                leader.append(batch(i, 2)).await.expect("append");
            }
            // The follower got the first few batches only, then the leader's start moved on.
            let first = fetched(&leader, 0).await;
            follower
                .append_replica(first[0].clone())
                .await
                .expect("replicate");
            let bases = leader.segment_bases();
            let start = bases[bases.len() / 2];
            leader
                .delete_records_before(start)
                .await
                .expect("move the start");
            assert_eq!(leader.log_start_offset(), start);
            follower.close().await.expect("close");
            super::restart_closed_at(&sim, &fd, start)
                .await
                .expect("restart");
            let follower = PartitionLog::open(sim.clone(), fd, cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            assert_eq!(
                (follower.log_start_offset(), follower.log_end_offset()),
                (start, start)
            );
            for c in fetched(&leader, start).await {
                follower
                    .append_replica(c)
                    .await
                    .expect("copy from the start");
            }
            assert_eq!(
                read_all(&follower, start).await,
                read_all(&leader, start).await
            );
            assert_eq!(follower.latest_epoch(), Some(2));
        });
    }

    #[test]
    fn retention_keeps_what_the_followers_lack() {
        block_on(async {
            let sim = SimStorage::new(11);
            let log = PartitionLog::open(sim, PathBuf::from("/d/ret-0"), cfg(FlushMode::None))
                .await
                .expect("open");
            for i in 0..300 {
                log.append(batch(i, 3)).await.expect("append");
            }
            let bases = log.segment_bases();
            assert!(bases.len() > 4, "{bases:?}");
            // The in-sync followers have only the first two segments.
            log.set_hw_limit(Some(bases[2]));
            let mut config = log.config();
            config.retention_bytes = Some(1);
            log.set_config(config);
            log.apply_retention().await.expect("retention");
            assert_eq!(
                log.segment_bases()[0],
                bases[2],
                "nothing at or above the hw went"
            );
            log.set_hw_limit(None);
            log.apply_retention().await.expect("retention");
            assert_eq!(log.segment_count(), 1);
        });
    }
}
