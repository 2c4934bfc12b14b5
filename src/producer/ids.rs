//! Producer id allocation for InitProducerId.
//!
//! Ids must never repeat, across restarts too: a reused id would make a new producer's
//! batches look like duplicates of an old one's. The allocator reserves ids in blocks and
//! persists the end of the reserved block (written to a temporary file, fsynced, renamed,
//! directory fsynced) before handing out any id of it. A crash loses at most the unused
//! rest of one block.
//!
//! One allocator serves all shards. Reserving a block costs a blocking fsync, once every
//! [`BLOCK_SIZE`] ids, under the allocator's lock: callers on a reactor run `init` on the
//! blocking pool (the InitProducerId handler does).

use std::collections::HashMap;
use std::fs;
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicI64, Ordering};
use std::sync::{Arc, Mutex};

/// Ids reserved per persisted block.
pub const BLOCK_SIZE: i64 = 1000;
const FILE_NAME: &str = "producer_ids";
/// Epoch bumps are remembered for at most this many recently issued ids.
const TRACKED_MAX: usize = 100_000;

/// A producer id and epoch handed to a client.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProducerIdAndEpoch {
    pub producer_id: i64,
    pub epoch: i16,
}

struct Inner {
    next: i64,
    reserved_end: i64,
    /// In a cluster: the block that follows the current one, when it has arrived.
    spare: Option<(i64, i64)>,
    /// Current epoch of ids issued by this process, for KIP-360 epoch bumps.
    epochs: HashMap<i64, i16>,
}

pub struct ProducerIdAllocator {
    /// The block file; `None` in a cluster, where the controller hands out the blocks.
    path: Option<PathBuf>,
    inner: Mutex<Inner>,
    /// Every id below this was issued (in this life or an earlier one); none above. Logs
    /// read it without the lock to refuse batches of ids never issued.
    issued_below: Arc<AtomicI64>,
}

impl ProducerIdAllocator {
    /// Opens the allocator whose block file lives in `data_dir`. Ids resume after the last
    /// reserved block.
    pub fn open(data_dir: &Path) -> io::Result<ProducerIdAllocator> {
        let path = data_dir.join(FILE_NAME);
        let next = match fs::read_to_string(&path) {
            // Written as one line with its newline: without it the file was cut short, and
            // the number may have lost digits (ids would then repeat).
            Ok(s) if !s.ends_with('\n') => {
                return Err(io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!(
                        "{} is damaged: {s:?} is cut short (no final newline); ids could \
                         repeat. Restore it from a backup, or write a number above every \
                         producer id ever issued, followed by a newline",
                        path.display()
                    ),
                ));
            }
            Ok(s) => s.trim().parse::<i64>().map_err(|e| {
                io::Error::new(
                    io::ErrorKind::InvalidData,
                    format!("{}: bad producer id block {s:?}: {e}", path.display()),
                )
            })?,
            Err(e) if e.kind() == io::ErrorKind::NotFound => 0,
            Err(e) => return Err(e),
        };
        if next < 0 {
            return Err(io::Error::new(
                io::ErrorKind::InvalidData,
                format!("{}: negative producer id block {next}", path.display()),
            ));
        }
        Ok(ProducerIdAllocator {
            path: Some(path),
            issued_below: Arc::new(AtomicI64::new(next)),
            inner: Mutex::new(Inner {
                next,
                reserved_end: next,
                spare: None,
                epochs: HashMap::new(),
            }),
        })
    }

    /// The allocator of a broker in a cluster: ids come in blocks the controller hands out
    /// through the metadata log ([`Self::add_block`]), which never repeat across brokers.
    pub fn for_cluster() -> ProducerIdAllocator {
        ProducerIdAllocator {
            path: None,
            issued_below: Arc::new(AtomicI64::new(0)),
            inner: Mutex::new(Inner {
                next: 0,
                reserved_end: 0,
                spare: None,
                epochs: HashMap::new(),
            }),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Inner> {
        self.inner.lock().unwrap_or_else(|p| p.into_inner())
    }

    /// Ids left before a new block is needed (a cluster's broker asks for one early).
    pub fn remaining(&self) -> i64 {
        let inner = self.lock();
        let spare = inner.spare.map(|(s, e)| e.saturating_sub(s)).unwrap_or(0);
        inner
            .reserved_end
            .saturating_sub(inner.next)
            .saturating_add(spare)
    }

    /// A block `start..end` from the controller.
    pub fn add_block(&self, start: i64, end: i64) {
        let mut inner = self.lock();
        if start >= end {
            return;
        }
        if inner.next >= inner.reserved_end {
            inner.next = start;
            inner.reserved_end = end;
        } else {
            inner.spare = Some((start, end));
        }
        drop(inner);
        self.note_issued_below(end);
    }

    /// Every id below `bound` was handed out somewhere in the cluster: batches of those ids
    /// are legitimate here too.
    pub fn note_issued_below(&self, bound: i64) {
        self.issued_below.fetch_max(bound, Ordering::AcqRel);
    }

    /// The bound below which every producer id has been issued.
    pub fn issued_below(&self) -> Arc<AtomicI64> {
        self.issued_below.clone()
    }

    /// Answers InitProducerId for an idempotent producer. When the client passes the id and
    /// epoch it holds (KIP-360) and this process issued them, the epoch is bumped; otherwise
    /// (a first call, an unknown id, an exhausted epoch) a fresh id with epoch 0 is issued,
    /// as Kafka does for producers without a transactional id.
    pub fn init(&self, current: Option<ProducerIdAndEpoch>) -> io::Result<ProducerIdAndEpoch> {
        let mut inner = self.lock();
        if let Some(cur) = current
            && let Some(epoch) = inner.epochs.get_mut(&cur.producer_id)
            && *epoch == cur.epoch
            && cur.epoch < i16::MAX - 1
        {
            *epoch += 1;
            return Ok(ProducerIdAndEpoch {
                producer_id: cur.producer_id,
                epoch: *epoch,
            });
        }
        if inner.next >= inner.reserved_end {
            match (&self.path, inner.spare.take()) {
                (Some(path), _) => {
                    let end = inner.next + BLOCK_SIZE;
                    persist(path, end)?;
                    inner.reserved_end = end;
                }
                (None, Some((start, end))) => {
                    inner.next = start;
                    inner.reserved_end = end;
                }
                (None, None) => {
                    return Err(io::Error::new(
                        io::ErrorKind::WouldBlock,
                        "no producer ids yet: waiting for a block from the controller",
                    ));
                }
            }
        }
        let id = inner.next;
        inner.next += 1;
        self.issued_below.fetch_max(inner.next, Ordering::AcqRel);
        if inner.epochs.len() >= TRACKED_MAX {
            inner.epochs.clear();
        }
        inner.epochs.insert(id, 0);
        Ok(ProducerIdAndEpoch {
            producer_id: id,
            epoch: 0,
        })
    }
}

fn persist(path: &Path, end: i64) -> io::Result<()> {
    let tmp = path.with_extension("tmp");
    let mut f = fs::File::create(&tmp)?;
    f.write_all(format!("{end}\n").as_bytes())?;
    f.sync_all()?;
    fs::rename(&tmp, path)?;
    if let Some(dir) = path.parent() {
        fs::File::open(dir)?.sync_all()?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_never_repeat_across_reopens() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let first: Vec<i64> = (0..3).map(|_| a.init(None).unwrap().producer_id).collect();
        assert_eq!(first, vec![0, 1, 2]);
        drop(a);
        let b = ProducerIdAllocator::open(dir.path()).unwrap();
        let next = b.init(None).unwrap().producer_id;
        assert_eq!(
            next, BLOCK_SIZE,
            "a reopen skips the rest of the reserved block"
        );
        for _ in 0..BLOCK_SIZE + 5 {
            b.init(None).unwrap();
        }
        drop(b);
        let c = ProducerIdAllocator::open(dir.path()).unwrap();
        assert_eq!(c.init(None).unwrap().producer_id, 3 * BLOCK_SIZE);
    }

    #[test]
    fn known_ids_get_their_epoch_bumped() {
        let dir = tempfile::tempdir().unwrap();
        let a = ProducerIdAllocator::open(dir.path()).unwrap();
        let p = a.init(None).unwrap();
        let bumped = a.init(Some(p)).unwrap();
        assert_eq!(bumped.producer_id, p.producer_id);
        assert_eq!(bumped.epoch, 1);
        // A stale epoch, or an id this process never issued, gets a fresh id.
        assert_ne!(a.init(Some(p)).unwrap().producer_id, p.producer_id);
        let unknown = ProducerIdAndEpoch {
            producer_id: 999_999,
            epoch: 3,
        };
        assert_ne!(a.init(Some(unknown)).unwrap().producer_id, 999_999);
    }

    #[test]
    fn in_a_cluster_ids_come_only_from_the_controllers_blocks() {
        let a = ProducerIdAllocator::for_cluster();
        assert!(a.init(None).is_err(), "no block yet");
        a.add_block(5000, 5002);
        a.add_block(9000, 9001);
        let ids: Vec<i64> = (0..3).map(|_| a.init(None).unwrap().producer_id).collect();
        assert_eq!(ids, vec![5000, 5001, 9000]);
        assert!(a.init(None).is_err());
        assert_eq!(a.issued_below().load(Ordering::Acquire), 9001);
    }

    #[test]
    fn a_damaged_block_file_is_an_error() {
        let dir = tempfile::tempdir().unwrap();
        fs::write(dir.path().join(FILE_NAME), "garbage").unwrap();
        assert!(ProducerIdAllocator::open(dir.path()).is_err());
    }
}
