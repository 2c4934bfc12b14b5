//! Upkeep of a log: segment rolls (by size, by `segment.ms`, on demand), retention, the
//! `interval` flush and lazy index writes run by `tick`, and flush, close and delete.

use super::{PartitionLog, file_kind};
use crate::config::{FlushMode, LogConfig};
use crate::storage::error::{Result, StorageError};
use crate::storage::io::{Storage, StorageFile, segment_path};
use crate::storage::segment::Segment;
use std::io;
use std::rc::Rc;

impl<S: Storage> PartitionLog<S> {
    /// Rolls to a new segment if this append would not fit the active one.
    pub(super) async fn maybe_roll(
        &self,
        config: &LogConfig,
        size: u64,
        records: i64,
        now: i64,
    ) -> Result<()> {
        let roll = {
            let st = self.inner.state.borrow();
            let seg = st.active();
            seg.size > 0
                && (seg.size + size > config.segment_bytes
                    || seg.size + size > u32::MAX as u64
                    || seg.next_offset + records - seg.base_offset > i32::MAX as i64
                    || now - seg.created_ms >= config.segment_ms as i64)
        };
        if roll { self.roll(now).await } else { Ok(()) }
    }

    /// Seals the active segment (all of it written and synced, indexes persisted and the
    /// largest timestamp recorded) and starts a new one. Call with `assign_lock` held.
    ///
    /// The new segment's files are created first: running out of file descriptors (or
    /// any failure to create them) leaves the active segment as it was and fails only this
    /// append, which the client retries; it does not fail the log. Once the old segment is
    /// being sealed, an IO error fails the log as any write error does.
    async fn roll(&self, now: i64) -> Result<()> {
        let next = self.inner.state.borrow().next_offset();
        self.wait_for(next, true).await?;
        let kind = file_kind(self.config().io);
        let dir = &self.inner.dir;
        let seg = match Segment::create(&self.inner.storage, dir, next, kind, now).await {
            Ok(seg) => seg,
            Err(e) => {
                // Leftover files at `next` would claim offsets the active segment is about
                // to take: remove them, or stop the log if that is impossible.
                for ext in ["log", "index", "timeindex"] {
                    let path = segment_path(dir, next, ext);
                    if self.inner.storage.exists(&path).await
                        && let Err(rm) = self.inner.storage.remove_file(&path).await
                    {
                        self.fail("removing a half-created segment", &rm);
                        return Err(StorageError::Io(rm));
                    }
                }
                tracing::warn!(
                    "cannot start a new segment in {}: {e}; the append is refused and the \
                     active segment stays",
                    dir.display()
                );
                return Err(e);
            }
        };
        let (log, jobs) = {
            let mut st = self.inner.state.borrow_mut();
            let active = st.active_mut();
            active.seal();
            (active.log.clone(), active.index_jobs(u64::MAX, i64::MAX))
        };
        let io = async {
            for job in jobs {
                job.run_and_sync().await?;
            }
            log.close().await?;
            // The new files' directory entries must survive a crash before anything
            // acknowledged lands in them.
            self.inner.storage.sync_dir(dir).await?;
            Ok(())
        };
        match io.await {
            Ok(()) => {
                {
                    let mut st = self.inner.state.borrow_mut();
                    st.segments.push(seg);
                    st.written_pos = 0;
                    st.synced_pos = 0;
                }
                // Everything below `next` is durable: the state as of `next` is what the
                // next open would rebuild from all of it.
                self.snapshot_at_roll(next).await;
                Ok(())
            }
            Err(StorageError::Io(e)) => {
                self.fail("segment roll", &e);
                Err(StorageError::Io(e))
            }
            Err(e) => Err(e),
        }
    }

    /// Makes everything appended so far durable.
    pub async fn flush(&self) -> Result<()> {
        let next = self.inner.state.borrow().next_offset();
        self.wait_for(next, true).await?;
        self.persist_indexes().await
    }

    async fn persist_indexes(&self) -> Result<()> {
        // Index entries are written lazily, since recovery rebuilds what is missing, and
        // only for bytes an fdatasync already covered. Recovery verifies batches after the
        // last index entry only, so an entry on disk must imply that everything before it
        // is durable: written-but-unsynced bytes may come back torn after a crash.
        let jobs = {
            let mut st = self.inner.state.borrow_mut();
            let (pos, off) = (st.synced_pos, st.synced_offset);
            st.active_mut().index_jobs(pos, off)
        };
        for job in jobs {
            job.run().await?;
        }
        Ok(())
    }

    /// Periodic work, called by the shard every ~100 ms: the `interval` flush, the
    /// `segment.ms` roll, retention, and lazy index writes. `now_ms` must come from the
    /// clock the log was opened with (the wall clock for [`PartitionLog::open`]).
    pub async fn tick(&self, now_ms: i64) -> Result<()> {
        let config = self.config();
        let now = now_ms;
        {
            let st = self.inner.state.borrow();
            if st.closed || st.failed.is_some() {
                return Ok(());
            }
        }
        if self.out_of_space() {
            // Retry the queued write; until it goes through, nothing else to do.
            let guard = self.inner.assign_lock.lock().await;
            let resumed = self.resume_after_no_space().await;
            drop(guard);
            if resumed.is_err() {
                return Ok(());
            }
        }
        if config.flush == FlushMode::Interval {
            let due = self
                .inner
                .state
                .borrow()
                .unsynced_since_ms
                .is_some_and(|t| now - t >= config.flush_interval_ms as i64);
            if due {
                let written = self.inner.state.borrow().written_offset;
                self.wait_for(written, true).await?;
            }
        }
        {
            let guard = self.inner.assign_lock.lock().await;
            let roll = {
                let st = self.inner.state.borrow();
                let seg = st.active();
                seg.size > 0 && now - seg.created_ms >= config.segment_ms as i64
            };
            if roll {
                self.roll(now).await?;
            }
            self.enforce_retention(&config, now).await?;
            drop(guard);
        }
        self.persist_indexes().await
    }

    /// Deletes whole segments from the front by `retention.ms` and `retention.bytes`
    /// (when `cleanup.policy` has `delete`). The
    /// active segment is rolled first if everything in it has expired. Call with
    /// `assign_lock` held.
    async fn enforce_retention(&self, config: &LogConfig, now: i64) -> Result<usize> {
        // `cleanup.policy=compact` alone keeps every segment (the cleaner shrinks them).
        if !config.cleanup_delete {
            return Ok(0);
        }
        if let Some(ms) = config.retention_ms {
            let (all_expired, nonempty) = {
                let st = self.inner.state.borrow();
                let seg = st.active();
                let expired = st
                    .segments
                    .iter()
                    .all(|s| s.size == 0 || now - s.max_timestamp > ms as i64);
                (expired, seg.size > 0)
            };
            if all_expired && nonempty {
                self.roll(now).await?;
            }
        }
        // Only what every in-sync replica has may go (Kafka's bound too): a segment is
        // deleted once it lies wholly below the high watermark.
        let hw = self.high_watermark();
        let doomed: Vec<Segment<S::File>> = {
            let mut st = self.inner.state.borrow_mut();
            let mut total: u64 = st.segments.iter().map(|s| s.size).sum();
            let mut n = 0;
            while n + 1 < st.segments.len() {
                if st.segments[n + 1].base_offset > hw {
                    break;
                }
                let seg = &st.segments[n];
                let by_time = config
                    .retention_ms
                    .is_some_and(|ms| now - seg.max_timestamp > ms as i64);
                let by_size = config
                    .retention_bytes
                    .is_some_and(|max| total.saturating_sub(seg.size) >= max);
                if !(by_time || by_size) {
                    break;
                }
                total -= seg.size;
                n += 1;
            }
            let doomed: Vec<_> = st.segments.drain(..n).collect();
            if n > 0 {
                let first = st.segments[0].base_offset;
                st.log_start_offset = st.log_start_offset.max(first);
                // Aborted transactions wholly gone with the segments are no longer reported.
                self.inner.txns.borrow_mut().trim_below(st.log_start_offset);
            }
            doomed
        };
        let count = doomed.len();
        for seg in doomed {
            // The .log goes first: an index without its log is removed on the next open.
            for ext in ["log", "index", "timeindex"] {
                let path = segment_path(&self.inner.dir, seg.base_offset, ext);
                if let Err(e) = self.inner.storage.remove_file(&path).await
                    && e.kind() != io::ErrorKind::NotFound
                {
                    return Err(e.into());
                }
            }
        }
        if count > 0 {
            self.prune_snapshots().await;
            self.inner.notify.notify_all();
        }
        Ok(count)
    }

    /// Runs retention now (tests and admin tools); `tick` runs it periodically.
    pub async fn apply_retention(&self) -> Result<usize> {
        let config = self.config();
        let now = self.now();
        let guard = self.inner.assign_lock.lock().await;
        let r = self.enforce_retention(&config, now).await;
        drop(guard);
        r
    }

    /// Rolls the active segment now if it holds anything.
    pub async fn force_roll(&self) -> Result<()> {
        let guard = self.inner.assign_lock.lock().await;
        let nonempty = self.inner.state.borrow().active().size > 0;
        let r = if nonempty {
            self.roll(self.now()).await
        } else {
            Ok(())
        };
        drop(guard);
        r
    }

    /// Writes and syncs everything, seals the active segment's indexes and trims its
    /// files. Later appends get [`StorageError::Closed`].
    pub async fn close(&self) -> Result<()> {
        let guard = self.inner.assign_lock.lock().await;
        if self.inner.state.borrow().closed {
            return Ok(());
        }
        let result = async {
            if self.inner.state.borrow().failed.is_none() {
                self.flush().await?;
                self.inner.state.borrow_mut().active_mut().seal();
                self.persist_indexes().await?;
            }
            let files: Vec<Rc<S::File>> = self
                .inner
                .state
                .borrow()
                .segments
                .iter()
                .map(|s| s.log.clone())
                .collect();
            for f in files {
                f.close().await?;
            }
            Ok(())
        }
        .await;
        self.inner.state.borrow_mut().closed = true;
        self.forget_cache();
        self.inner.notify.notify_all();
        drop(guard);
        result
    }

    /// Closes the log and deletes its directory (DeleteTopics).
    pub async fn delete(&self) -> Result<()> {
        let _ = self.close().await;
        self.inner.storage.remove_dir_all(&self.inner.dir).await?;
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::super::PartitionLog;
    use super::super::tests::{batch, cfg};
    use crate::config::{FlushMode, LogConfig};
    use crate::protocol::batch::testing::build_batch;
    use crate::storage::StorageError;
    use crate::storage::io::{Storage, segment_path};
    use crate::storage::sim::SimStorage;
    use bytes::Bytes;
    use futures_lite::future::block_on;
    use std::cell::Cell;
    use std::path::{Path, PathBuf};

    #[test]
    fn running_out_of_descriptors_at_a_roll_refuses_the_append_not_the_log() {
        block_on(async {
            let sim = SimStorage::new(9);
            let dir = PathBuf::from("/d/nofile-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            let mut sent = Vec::new();
            let mut i = 0;
            // Fill the first segment (4096 bytes) up to the next roll.
            while sim
                .file_bytes(&segment_path(&dir, 0, "log"))
                .map_or(0, |b| b.len())
                < 3500
            {
                let info = log.append(batch(i, 3)).await.expect("append");
                sent.push((info.base_offset, i));
                i += 1;
            }
            let files = sim_files(&sim, &dir);
            // The roll needs three new files; the second open fails as EMFILE would.
            sim.fail_open_at(2);
            let big = batch(i, 40);
            match log.append(big.clone()).await {
                Err(StorageError::Io(e)) => assert_eq!(e.raw_os_error(), Some(libc::EMFILE)),
                other => panic!("expected EMFILE, got {other:?}"),
            }
            assert_eq!(
                sim_files(&sim, &dir),
                files,
                "no half-created segment is left"
            );
            // The log is healthy: the retry rolls and lands right after the last offset.
            let next = sent.last().map(|(o, _)| o + 3).unwrap_or(0);
            let info = log
                .append(big)
                .await
                .expect("retry after descriptors are back");
            assert_eq!(info.base_offset, next);
            log.close().await.expect("close");
            let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            assert_eq!(log.high_watermark(), next + 40);
        });
    }

    fn sim_files(sim: &SimStorage, dir: &Path) -> Vec<String> {
        let mut names = block_on(sim.list_dir(dir)).expect("list");
        names.sort();
        names
    }

    thread_local! {
        static NOW: Cell<i64> = const { Cell::new(1_000_000) };
    }

    fn fake_now() -> i64 {
        NOW.with(|n| n.get())
    }

    fn advance(ms: i64) {
        NOW.with(|n| n.set(n.get() + ms));
    }

    #[test]
    fn retention_by_time_deletes_expired_segments_and_moves_log_start() {
        block_on(async {
            let sim = SimStorage::new(5);
            let dir = PathBuf::from("/d/t-0");
            let config = LogConfig {
                retention_ms: Some(60_000),
                ..cfg(FlushMode::None)
            };
            let log = PartitionLog::open_with_clock(sim.clone(), dir.clone(), config, fake_now)
                .await
                .expect("open");
            // Old records: timestamps a minute and a half ago.
            let old = fake_now() - 90_000;
            for i in 0..20 {
                let v = vec![b'o'; 400];
                log.append(Bytes::from(build_batch(&[&v], old + i)))
                    .await
                    .expect("append");
            }
            let fresh_from = log.log_end_offset();
            for i in 0..20 {
                let v = vec![b'n'; 400];
                log.append(Bytes::from(build_batch(&[&v], fake_now() + i)))
                    .await
                    .expect("append");
            }
            let segments = log.segment_count();
            log.tick(fake_now()).await.expect("tick");
            assert!(log.segment_count() < segments, "expired segments deleted");
            let start = log.log_start_offset();
            assert!(
                start > 0 && start <= fresh_from,
                "log start moved to a kept segment"
            );
            assert!(matches!(
                log.read(0, 100).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            // Deleted segments are gone from the disk too.
            let names = sim.list_dir(&dir).await.expect("list");
            assert!(!names.contains(&format!("{:020}.log", 0)));
            // Once everything expires, the active segment rolls and goes too; offsets go on.
            advance(120_000);
            let end = log.log_end_offset();
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.log_start_offset(), end);
            assert_eq!(log.segment_count(), 1);
            let info = log.append(batch(1, 1)).await.expect("append");
            assert_eq!(info.base_offset, end);
            log.close().await.expect("close");
            let reopened = PartitionLog::open_with_clock(sim, dir, cfg(FlushMode::None), fake_now)
                .await
                .expect("reopen");
            assert_eq!(reopened.log_start_offset(), end);
            assert_eq!(reopened.log_end_offset(), end + 1);
        });
    }

    #[test]
    fn segment_ms_rolls_the_active_segment() {
        block_on(async {
            let sim = SimStorage::new(6);
            let config = LogConfig {
                segment_ms: 10_000,
                segment_bytes: 1 << 30,
                ..cfg(FlushMode::None)
            };
            let log = PartitionLog::open_with_clock(sim, PathBuf::from("/d/t-0"), config, fake_now)
                .await
                .expect("open");
            log.append(batch(1, 1)).await.expect("append");
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.segment_count(), 1);
            advance(10_000);
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.segment_count(), 2, "rolled by age");
            assert_eq!(log.segment_bases(), vec![0, 1]);
            // An empty active segment does not roll again.
            advance(10_000);
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(log.segment_count(), 2);
        });
    }

    #[test]
    fn interval_flush_syncs_by_time_and_by_bytes() {
        block_on(async {
            let sim = SimStorage::new(7);
            let config = LogConfig {
                flush_interval_ms: 1_000,
                flush_interval_bytes: 10_000,
                ..cfg(FlushMode::Interval)
            };
            let log = PartitionLog::open_with_clock(
                sim.clone(),
                PathBuf::from("/d/t-0"),
                config,
                fake_now,
            )
            .await
            .expect("open");
            log.append(batch(1, 1)).await.expect("append");
            let syncs = sim.syncs();
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(sim.syncs(), syncs, "not due yet");
            advance(1_000);
            log.tick(fake_now()).await.expect("tick");
            assert_eq!(sim.syncs(), syncs + 1, "due by time");
            let before = sim.syncs();
            for i in 0..40 {
                log.append(batch(i, 3)).await.expect("append");
            }
            assert!(sim.syncs() > before, "due by bytes without a tick");
        });
    }
}
