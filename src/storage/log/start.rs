//! The log start offset moved by a client (DeleteRecords) and its checkpoint.
//!
//! Retention moves the start to a segment boundary, which the segment files record. A
//! DeleteRecords start may fall inside a segment, so it is also written to
//! `<partition dir>/log-start-offset-checkpoint` in Kafka's checkpoint format (version 0,
//! one entry: `<topic> <partition> <offset>`), durably (temp file, fdatasync, rename,
//! directory fsync) before the new start is acknowledged, and taken back on open.

use super::PartitionLog;
use crate::storage::error::{Result, StorageError};
use crate::storage::io::{FileKind, Storage, StorageFile, segment_path};
use crate::storage::segment::Segment;
use bytes::Bytes;
use std::io;
use std::path::Path;

pub const START_CHECKPOINT: &str = "log-start-offset-checkpoint";
/// A checkpoint larger than this is not one this broker wrote.
const CHECKPOINT_MAX_BYTES: usize = 4096;

/// Kafka's checkpoint text for one partition, named by its directory (`<topic>-<n>`).
fn checkpoint_text(dir: &Path, offset: i64) -> String {
    let name = dir.file_name().and_then(|n| n.to_str()).unwrap_or("");
    let (topic, partition) = name.rsplit_once('-').unwrap_or((name, "0"));
    format!("0\n1\n{topic} {partition} {offset}\n")
}

/// The offset of a checkpoint's single entry, or why the text is not a checkpoint.
pub(crate) fn parse_checkpoint(text: &str) -> Result<i64, String> {
    // Every line ends with a newline: without the last one the file was cut short, and
    // its offset may have lost digits.
    if !text.ends_with('\n') {
        return Err(format!("truncated: {} bytes, no final newline", text.len()));
    }
    let mut lines = text.lines();
    if lines.next() != Some("0") {
        return Err("unknown checkpoint version".into());
    }
    if lines.next() != Some("1") {
        return Err("expected one entry".into());
    }
    let entry = lines.next().ok_or("missing entry")?;
    let fields: Vec<&str> = entry.split(' ').collect();
    let [_, _, offset] = fields.as_slice() else {
        return Err(format!(
            "entry {entry:?} is not `<topic> <partition> <offset>`"
        ));
    };
    let offset: i64 = offset.parse().map_err(|e| format!("bad offset: {e}"))?;
    if offset < 0 {
        return Err(format!("negative offset {offset}"));
    }
    Ok(offset)
}

/// The checkpointed start of the log in `dir`, if one was written. The checkpoint is
/// replaced by rename only after its temporary file was fsynced, so a crash never leaves a
/// torn one: a checkpoint that does not parse is damage ([`StorageError::Corrupt`]), and
/// ignoring it would make records deleted by DeleteRecords readable again.
pub(super) async fn read_checkpoint<S: Storage>(storage: &S, dir: &Path) -> Result<Option<i64>> {
    let path = dir.join(START_CHECKPOINT);
    match read_checkpoint_file(storage, dir, START_CHECKPOINT).await? {
        None => Ok(None),
        Some(Ok(offset)) => Ok(Some(offset)),
        Some(Err(e)) => Err(StorageError::corrupt(
            &path,
            format!("not a log start offset checkpoint: {e}"),
        )),
    }
}

/// The checkpoint `name` in `dir`: `None` when there is none, else its offset or why it
/// does not parse (each caller decides what an unreadable one means).
pub(super) async fn read_checkpoint_file<S: Storage>(
    storage: &S,
    dir: &Path,
    name: &str,
) -> Result<Option<Result<i64, String>>> {
    let path = dir.join(name);
    if !storage.exists(&path).await {
        return Ok(None);
    }
    let file = storage.open(&path, FileKind::Buffered, false).await?;
    let bytes = file.read_at(0, CHECKPOINT_MAX_BYTES).await;
    file.close().await?;
    Ok(Some(
        String::from_utf8(bytes?)
            .map_err(|e| e.to_string())
            .and_then(|t| parse_checkpoint(&t)),
    ))
}

/// Writes `offset` as the checkpoint `name` in `dir` durably: a temporary file, fdatasync,
/// rename over the old one, directory fsync.
pub(super) async fn write_checkpoint_file<S: Storage>(
    storage: &S,
    dir: &Path,
    name: &str,
    offset: i64,
) -> Result<()> {
    let tmp = dir.join(format!("{name}.tmp"));
    if storage.exists(&tmp).await {
        storage.remove_file(&tmp).await?;
    }
    let file = storage.open(&tmp, FileKind::Buffered, true).await?;
    let text = checkpoint_text(dir, offset);
    file.write_at(0, &[Bytes::from(text)]).await?;
    file.sync_data().await?;
    file.close().await?;
    storage.rename(&tmp, &dir.join(name)).await?;
    storage.sync_dir(dir).await?;
    Ok(())
}

impl<S: Storage> PartitionLog<S> {
    /// Moves the log start offset up to `offset` (`-1`: the high watermark), as Kafka's
    /// DeleteRecords does, and deletes the segments wholly below it. The new start is
    /// durable when this returns; returns the log start offset (the low watermark), which
    /// stays where it is when `offset` is below it. An offset above the high watermark, or
    /// negative other than `-1`, is [`StorageError::OffsetOutOfRange`].
    pub async fn delete_records_before(&self, offset: i64) -> Result<i64> {
        let guard = self.inner.assign_lock.lock().await;
        let (hw, start) = {
            let st = self.inner.state.borrow();
            self.check_open(&st)?;
            (self.visible(&st).1, st.log_start_offset)
        };
        let target = if offset == -1 { hw } else { offset };
        if target < 0 || target > hw {
            return Err(StorageError::OffsetOutOfRange {
                offset,
                log_start_offset: start,
                high_watermark: hw,
            });
        }
        if target <= start {
            return Ok(start);
        }
        // Under the assignment lock, so no roll or retention runs in between; appends wait
        // for one small write and fdatasync (DeleteRecords is an operator's request).
        self.write_checkpoint(target).await?;
        self.inner.state.borrow_mut().log_start_offset = target;
        self.inner.txns.borrow_mut().trim_below(target);
        self.inner.notify.notify_all();
        // The start has moved, durably: a segment that cannot be removed now is only space,
        // and the next DeleteRecords or open removes it.
        if let Err(e) = self.trim_below_start().await {
            tracing::warn!(
                "{}: segments below the log start {target} stay for now: {e}",
                self.inner.dir.display()
            );
        }
        drop(guard);
        Ok(target)
    }

    async fn write_checkpoint(&self, offset: i64) -> Result<()> {
        let (storage, dir) = (&self.inner.storage, &self.inner.dir);
        write_checkpoint_file(storage, dir, START_CHECKPOINT, offset).await
    }

    /// Deletes the segments whose every offset is below the log start (never the active
    /// one). Call with `assign_lock` held, or before the log is shared (open).
    pub(super) async fn trim_below_start(&self) -> Result<()> {
        let doomed: Vec<Segment<S::File>> = {
            let mut st = self.inner.state.borrow_mut();
            let start = st.log_start_offset;
            let n = st
                .segments
                .windows(2)
                .take_while(|w| w.get(1).is_some_and(|next| next.base_offset <= start))
                .count();
            st.segments.drain(..n).collect()
        };
        if !doomed.is_empty() {
            self.prune_snapshots().await;
        }
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
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn checkpoints_round_trip_and_garbage_is_refused() {
        let text = checkpoint_text(Path::new("/data/my-topic-12"), 4242);
        assert_eq!(text, "0\n1\nmy-topic 12 4242\n");
        assert_eq!(parse_checkpoint(&text), Ok(4242));
        for bad in [
            "",
            "1\n1\nt 0 5\n",
            "0\n2\nt 0 5\n",
            "0\n1\n",
            "0\n1\nt 0 x\n",
            "0\n1\nt 0 -3\n",
            "0\n1\nt 0 42",
            "0\n1\n42\n",
        ] {
            assert!(parse_checkpoint(bad).is_err(), "{bad:?}");
        }
    }

    use super::super::tests::{batch, cfg};
    use crate::config::FlushMode;
    use crate::storage::sim::SimStorage;
    use futures_lite::future::block_on;
    use std::path::PathBuf;

    #[test]
    fn delete_records_moves_the_start_deletes_old_segments_and_survives_reopen() {
        block_on(async {
            let sim = SimStorage::new(11);
            let dir = PathBuf::from("/d/t-0");
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("open");
            for i in 0..100 {
                log.append(batch(i, 3)).await.expect("append");
            }
            let hw = log.high_watermark();
            assert_eq!(hw, 300);
            let bases = log.segment_bases();
            assert!(bases.len() >= 4, "several segments: {bases:?}");
            // Inside the third segment: the first two go, the third stays.
            let target = bases[2] + 1;
            assert_eq!(
                log.delete_records_before(target).await.expect("delete"),
                target
            );
            assert_eq!(log.log_start_offset(), target);
            assert_eq!(log.segment_bases(), bases[2..].to_vec());
            let names = sim.list_dir(&dir).await.expect("list");
            for base in &bases[..2] {
                assert!(!names.contains(&format!("{base:020}.log")), "{names:?}");
            }
            assert!(names.contains(&START_CHECKPOINT.to_string()));
            assert!(matches!(
                log.read(target - 1, 100).await,
                Err(StorageError::OffsetOutOfRange { .. })
            ));
            assert!(log.read(target, 100).await.is_ok());
            // Below the start: nothing moves. Above the high watermark: refused.
            assert_eq!(log.delete_records_before(3).await.expect("noop"), target);
            for bad in [hw + 1, -2] {
                assert!(matches!(
                    log.delete_records_before(bad).await,
                    Err(StorageError::OffsetOutOfRange { .. })
                ));
            }
            assert_eq!(log.log_start_offset(), target);
            log.close().await.expect("close");
            // The start inside a segment comes back from the checkpoint.
            let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            assert_eq!(log.log_start_offset(), target);
            // -1 is the high watermark; the active segment stays.
            assert_eq!(log.delete_records_before(-1).await.expect("all"), hw);
            assert_eq!(log.segment_count(), 1);
            let info = log.append(batch(99, 1)).await.expect("append after");
            assert_eq!(info.base_offset, hw);
            log.close().await.expect("close");
            let log = PartitionLog::open(sim, dir, cfg(FlushMode::Fsync))
                .await
                .expect("reopen");
            assert_eq!(log.log_start_offset(), hw);
            assert_eq!(log.log_end_offset(), hw + 1);
        });
    }

    #[test]
    fn an_acknowledged_start_survives_any_crash_and_a_torn_checkpoint_keeps_the_old_one() {
        block_on(async {
            for seed in 0..16 {
                let sim = SimStorage::new(seed);
                let dir = PathBuf::from("/d/c-0");
                let log = PartitionLog::open(sim.clone(), dir.clone(), cfg(FlushMode::Fsync))
                    .await
                    .expect("open");
                for i in 0..100 {
                    log.append(batch(i, 3)).await.expect("append");
                }
                let bases = log.segment_bases();
                let old = bases[1] + 2;
                assert_eq!(log.delete_records_before(old).await.expect("delete"), old);
                // Every crash after the answer keeps the acknowledged start.
                let img = sim.crash_image(seed);
                let back = PartitionLog::open(img, dir.clone(), cfg(FlushMode::Fsync))
                    .await
                    .expect("reopen the crash image");
                assert_eq!(back.log_start_offset(), old, "seed {seed}");
                assert_eq!(back.high_watermark(), 300, "seed {seed}");
                // A crash at the checkpoint's first write: the old start, never garbage.
                let target = bases[2] + 1;
                sim.crash_at_write(1);
                assert!(log.delete_records_before(target).await.is_err());
                let img = sim.crash_image(seed);
                let back = PartitionLog::open(img, dir.clone(), cfg(FlushMode::Fsync))
                    .await
                    .expect("reopen after a torn checkpoint");
                assert_eq!(back.log_start_offset(), old, "seed {seed}");
                assert_eq!(back.high_watermark(), 300, "seed {seed}");
            }
        });
    }
}
