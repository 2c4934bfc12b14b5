//! The writer: one task at a time writes the queued bytes of all appends in one gathered
//! write and issues the fdatasyncs waiters need (group commit). Whoever waits and finds no
//! writer running becomes the writer. A failed write or fdatasync fails the log.

use super::{Inner, PartitionLog};
use crate::config::FlushMode;
use crate::storage::error::{Result, StorageError};
use crate::storage::io::{Storage, StorageFile};
use bytes::Bytes;
use std::io;

/// ENOSPC and EDQUOT: the disk (or the quota) is full. By kind, since glommio's errors
/// keep the kind of the OS error but not its number.
fn is_no_space(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::StorageFull | io::ErrorKind::QuotaExceeded
    ) || matches!(e.raw_os_error(), Some(libc::ENOSPC) | Some(libc::EDQUOT))
}

/// Resets `writer_active` if the writer's future is dropped mid-flight, so another task
/// takes over the queued bytes.
struct WriterGuard<'a, S: Storage>(&'a Inner<S>);

impl<S: Storage> Drop for WriterGuard<'_, S> {
    fn drop(&mut self) {
        self.0.state.borrow_mut().writer_active = false;
        self.0.notify.notify_all();
    }
}

impl<S: Storage> PartitionLog<S> {
    /// Waits until every batch before `offset` is written (and synced if `durable`),
    /// becoming the writer if nobody is.
    pub(super) async fn wait_for(&self, offset: i64, durable: bool) -> Result<()> {
        if durable {
            let mut st = self.inner.state.borrow_mut();
            st.sync_wanted = st.sync_wanted.max(offset);
        }
        loop {
            let listen = {
                let st = self.inner.state.borrow();
                if let Some(reason) = &st.failed {
                    return Err(StorageError::Failed(reason.clone()));
                }
                let reached = if durable {
                    st.synced_offset
                } else {
                    st.written_offset
                };
                if reached >= offset {
                    return Ok(());
                }
                if let Some(reason) = &st.no_space {
                    return Err(StorageError::NoSpace(reason.clone()));
                }
                if st.writer_active {
                    Some(self.inner.notify.listen())
                } else {
                    None
                }
            };
            match listen {
                Some(l) => l.await,
                None => self.run_writer().await,
            }
        }
    }

    /// A write found the disk full: appends stop (see the log's contract) until
    /// [`Self::resume_after_no_space`] writes the queue.
    fn stall(&self, err: &io::Error) {
        let reason = format!("write failed in {}: {err}", self.inner.dir.display());
        let mut st = self.inner.state.borrow_mut();
        if !st.no_space_reported {
            st.no_space_reported = true;
            tracing::error!(
                "{reason}; appends to this log are refused (KAFKA_STORAGE_ERROR) until space \
                 is freed, reads go on"
            );
        }
        st.no_space = Some(reason);
        drop(st);
        self.inner.notify.notify_all();
    }

    /// After a full disk: cuts the active segment back to the end of the last completed
    /// write, verifies its batches from the last index entry up to there, and writes the
    /// queue again. `Ok` once appends may go on; `NoSpace` while the disk is still full.
    /// Call with `assign_lock` held.
    pub(super) async fn resume_after_no_space(&self) -> Result<()> {
        let (file, pos, from) = {
            let st = self.inner.state.borrow();
            if st.no_space.is_none() {
                return Ok(());
            }
            if let Some(reason) = &st.failed {
                return Err(StorageError::Failed(reason.clone()));
            }
            let seg = st.active();
            let pos = st.written_pos;
            let from = seg
                .index
                .entries()
                .iter()
                .rev()
                .map(|&(_, p)| u64::from(p))
                .find(|&p| p <= pos)
                .unwrap_or(0);
            (seg.log.clone(), pos, from)
        };
        if self.inner.state.borrow().writer_active {
            let st = self.inner.state.borrow();
            return Err(StorageError::NoSpace(
                st.no_space.clone().unwrap_or_default(),
            ));
        }
        let verified = async {
            file.truncate(pos).await?;
            let mut scanner = crate::storage::segment::Scanner::new(file.as_ref(), from, pos, true);
            while scanner.next().await?.is_some() {}
            if scanner.position != pos {
                return Err(StorageError::Failed(format!(
                    "the log tail does not verify after a full disk: {}",
                    scanner.stopped.unwrap_or_default()
                )));
            }
            Ok(())
        }
        .await;
        match verified {
            Ok(()) => {}
            Err(StorageError::Io(e)) => {
                self.fail("cutting back after a full disk", &e);
                return Err(StorageError::Io(e));
            }
            Err(e) => {
                let reason = e.to_string();
                tracing::error!("{reason}; the log stops accepting appends until restart");
                self.inner.state.borrow_mut().failed = Some(reason);
                self.inner.notify.notify_all();
                return Err(e);
            }
        }
        self.inner.state.borrow_mut().no_space = None;
        let queued = self.inner.state.borrow().next_offset();
        self.wait_for(queued, false).await?;
        self.inner.state.borrow_mut().no_space_reported = false;
        tracing::info!(
            "{}: the queued batches are written again; appends resume",
            self.inner.dir.display()
        );
        Ok(())
    }

    pub(super) fn fail(&self, what: &str, err: &io::Error) {
        let reason = format!("{what} failed in {}: {err}", self.inner.dir.display());
        tracing::error!("{reason}; the log stops accepting appends until restart");
        self.inner.state.borrow_mut().failed = Some(reason);
        self.inner.notify.notify_all();
    }

    /// The writer: writes queued bytes in as few writes as possible and issues the
    /// fdatasyncs waiters need, until nothing is left to do. Only one runs at a time.
    async fn run_writer(&self) {
        {
            let mut st = self.inner.state.borrow_mut();
            if st.writer_active || st.failed.is_some() {
                return;
            }
            st.writer_active = true;
        }
        let _guard = WriterGuard(&self.inner);
        loop {
            // Let every task that is ready run first: appenders just woken by the last
            // sync queue their next batches, and this round carries all of them. Without
            // this, rounds alternate between one batch and all the others.
            futures_lite::future::yield_now().await;
            let config = self.config();
            // Write everything queued, in one gathered write. The bytes stay queued until
            // the write completes, so a dropped writer loses nothing.
            let job = {
                let st = self.inner.state.borrow();
                if st.failed.is_some() {
                    return;
                }
                (!st.pending.is_empty()).then(|| {
                    let bufs: Vec<Bytes> = st.pending.iter().cloned().collect();
                    (st.active().log.clone(), st.written_pos, bufs)
                })
            };
            if let Some((file, pos, bufs)) = job {
                let n = bufs.len();
                let len: u64 = bufs.iter().map(|b| b.len() as u64).sum();
                let written = match file.write_at_keep(pos, &bufs).await {
                    Ok(w) => w,
                    Err(e) => {
                        if is_no_space(&e) {
                            self.stall(&e);
                        } else {
                            self.fail("write", &e);
                        }
                        return;
                    }
                };
                // A direct log's batch cache keeps what was written, in memory of its own:
                // the queued pieces are slices of request frames, which must not stay
                // pinned (with their memory-pool reservations) while cached.
                if let Some((cache, id)) = self.inner.cache.borrow().as_ref() {
                    let chunks = written.unwrap_or_else(|| {
                        let mut one = bytes::BytesMut::with_capacity(len as usize);
                        for b in &bufs {
                            one.extend_from_slice(b);
                        }
                        vec![one.freeze()]
                    });
                    let base = self.inner.state.borrow().active().base_offset;
                    let mut at = pos;
                    for chunk in chunks {
                        let n = chunk.len() as u64;
                        cache.borrow_mut().insert(*id, base, at, chunk);
                        at += n;
                    }
                }
                let mut st = self.inner.state.borrow_mut();
                st.pending.drain(..n);
                st.written_pos = pos + len;
                let mut appends = 0u64;
                while let Some(&(end, next)) = st.marks.front() {
                    if end > st.written_pos {
                        break;
                    }
                    st.written_offset = next;
                    st.marks.pop_front();
                    appends += 1;
                }
                self.inner.stats.write_batch.observe(appends);
                if st.unsynced_since_ms.is_none() {
                    st.unsynced_since_ms = Some(self.now());
                }
                drop(st);
                self.inner.notify.notify_all();
            }
            // Sync when a waiter needs it, or when `interval` says it is due by bytes.
            let sync = {
                let st = self.inner.state.borrow();
                let unsynced = st.written_pos - st.synced_pos;
                let wanted =
                    st.sync_wanted > st.synced_offset && st.written_offset > st.synced_offset;
                let by_bytes =
                    config.flush == FlushMode::Interval && unsynced >= config.flush_interval_bytes;
                ((wanted || by_bytes) && unsynced > 0)
                    .then(|| (st.active().log.clone(), st.written_pos, st.written_offset))
            };
            if let Some((file, pos, offset)) = sync {
                let started = std::time::Instant::now();
                if let Err(e) = file.sync_data().await {
                    self.fail("fdatasync", &e);
                    return;
                }
                self.inner.stats.sync_us.observe_since(started);
                let mut st = self.inner.state.borrow_mut();
                st.synced_pos = st.synced_pos.max(pos);
                st.synced_offset = st.synced_offset.max(offset);
                if st.synced_pos == st.written_pos {
                    st.unsynced_since_ms = None;
                }
                drop(st);
                self.inner.notify.notify_all();
                continue;
            }
            if self.inner.state.borrow().pending.is_empty() {
                return;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::super::PartitionLog;
    use super::super::tests::{batch, cfg, read_all};
    use crate::config::{FlushMode, LogConfig};
    use crate::storage::StorageError;
    use crate::storage::sim::SimStorage;
    use futures_lite::future::block_on;
    use std::path::PathBuf;

    #[test]
    fn failed_fsync_fails_the_log_and_acknowledges_nothing_more() {
        block_on(async {
            let sim = SimStorage::new(3);
            let dir = PathBuf::from("/d/t-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            log.append(batch(1, 1)).await.expect("first");
            sim.fail_sync_at(1);
            assert!(log.append(batch(2, 1)).await.is_err(), "not acknowledged");
            assert!(matches!(
                log.append(batch(3, 1)).await,
                Err(StorageError::Failed(_))
            ));
            assert_eq!(log.high_watermark(), 1, "unsynced batch never visible");
            let reopened = PartitionLog::open(sim.crash_image(9), dir, cfg(FlushMode::Fsync))
                .await
                .expect("recovers");
            assert_eq!(read_all(&reopened, 0).await.len(), 1);
        });
    }

    #[test]
    fn group_commit_shares_fsyncs_among_concurrent_appends() {
        block_on(async {
            let sim = SimStorage::new(4);
            let log = PartitionLog::open(
                sim.clone(),
                PathBuf::from("/d/t-0"),
                LogConfig {
                    flush: FlushMode::Fsync,
                    ..LogConfig::default()
                },
            )
            .await
            .expect("open");
            let appends = (0..16).map(|i| {
                let log = log.clone();
                async move { log.append(batch(i, 1)).await.expect("append") }
            });
            let infos = futures::future::join_all(appends).await;
            let mut offsets: Vec<i64> = infos.iter().map(|i| i.base_offset).collect();
            offsets.sort_unstable();
            assert_eq!(offsets, (0..16).collect::<Vec<_>>());
            assert_eq!(log.high_watermark(), 16);
            // The metrics count each fdatasync the disk saw, and every append written.
            assert_eq!(log.stats().sync_us.count(), sim.syncs());
            assert_eq!(log.stats().write_batch.snapshot().sum, 16);
            assert_eq!(log.stats().records_in.get(), 16);
            // 16 appends waiting together need far fewer than 16 fdatasyncs.
            assert!(
                sim.syncs() <= 4,
                "{} fdatasyncs for 16 appends",
                sim.syncs()
            );
        });
    }
}
