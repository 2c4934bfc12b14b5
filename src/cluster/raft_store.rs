//! The durable state of a Raft voter: its log, hard state and latest snapshot, over the
//! storage seam (glommio in the broker, the fault-injecting disk in tests).
//!
//! The node keeps raft-rs's `MemStorage` in memory and calls this store before it acts on
//! a `Ready`: when `save` returns, the entries and hard state are on disk (fdatasync), so
//! the messages that depend on them may go out. `open` returns what rebuilds the
//! `MemStorage` after a restart.
//!
//! Files in the store's directory (see `format` for the bytes):
//! - `<gen, 20 digits>.raftlog`: the log, append-only. Each `save` is one frame (one write
//!   and one fdatasync) of entry records and a hard-state record; an entry at index `i`
//!   replaces every entry at or above `i` when the log is replayed. Installing a snapshot
//!   appends a base record. A log file begins with a header frame that states how many of
//!   its bytes were synced before the file was named: a damaged frame there is corruption,
//!   never a torn write. The highest generation is the log; `compact` writes the next one.
//! - `<seq, 20 digits>.snapshot`: one frame holding a snapshot. The highest sequence is
//!   the latest installed snapshot.
//! - `*.tmp`: a file being written before its rename; removed by `open`.
//!
//! A snapshot install makes the snapshot file durable first and then appends the base
//! record, which drops the entries the snapshot covers (and, for a leader's snapshot that
//! does not match the log, every entry after it too). A crash between the two leaves a
//! snapshot the log does not know yet; `open` applies and records its base then.
//!
//! New files are written under a temporary name, synced, renamed to a name no other file
//! has, and made durable by a directory fsync before anything depends on them; the file
//! they supersede is removed only afterwards. No file is ever replaced in place, so a
//! crash at any step leaves either the old or the new file under its name, whole, however
//! the file system orders a rename and an unsynced removal.
//!
//! After a failed write or fdatasync nothing tells which bytes reached the disk (Linux
//! drops the dirty pages of a failed writeback), so the store refuses every later call:
//! only a restart, and recovery from what is on disk, brings it back.
//!
//! The store keeps the encoded entries after the snapshot in memory, so a compaction
//! writes them without reading the file back; the node's `MemStorage` holds the same
//! entries, and its periodic snapshots bound both.

mod format;
mod state;
#[cfg(test)]
mod tests;
#[cfg(test)]
mod tests_crash;
#[cfg(test)]
mod tests_damage;

use crate::storage::{FileKind, Storage, StorageFile};
use bytes::Bytes;
use format::{
    FRAME_HEADER, Frames, HEADER_FRAME_BYTES, KIND_BASE, KIND_ENTRY, KIND_HARD_STATE,
    KIND_SNAPSHOT, RECORD_HEADER,
};
use protobuf::Message;
use raft::eraftpb::{Entry, HardState, Snapshot};
use state::{LiveEntry, LogState};
use std::io;
use std::path::{Path, PathBuf};

/// Largest frame body: one save. A larger save is split into several frames, each its own
/// write and fdatasync (each a prefix Raft can restart from); a single larger entry is
/// refused. Also the bound on every length read back from a log file.
pub const FRAME_BODY_MAX: usize = 64 << 20;
/// Largest snapshot file body.
pub const SNAPSHOT_BYTES_MAX: usize = 256 << 20;
/// `compact` rewrites the log only once it is at least this large (and twice its content).
pub const COMPACT_BYTES_MIN: u64 = 4 << 20;
// A frame's length is a u32; the snapshot bound is the larger one.
const _: () = assert!(FRAME_BODY_MAX <= SNAPSHOT_BYTES_MAX);
const _: () = assert!(SNAPSHOT_BYTES_MAX <= u32::MAX as usize);
// The format: a frame header of 12 bytes, a record header of 5, a file header frame of 37.
const _: () = assert!(FRAME_HEADER == 12 && RECORD_HEADER == 5 && HEADER_FRAME_BYTES == 37);

const LOG_EXT: &str = "raftlog";
const SNAPSHOT_EXT: &str = "snapshot";
const TMP_EXT: &str = "tmp";

#[derive(Debug, Default)]
pub struct Recovered {
    pub hard_state: HardState,
    /// The latest installed snapshot (its metadata carries index, term and conf state; its
    /// data is opaque bytes: the node's metadata image), if any.
    pub snapshot: Option<Snapshot>,
    /// Entries after the snapshot's index, in index order, contiguous.
    pub entries: Vec<Entry>,
}

#[derive(Debug, thiserror::Error)]
pub enum RaftStoreError {
    #[error("raft store IO failed: {0}")]
    Io(#[from] io::Error),
    /// What is on disk cannot be explained by a crash: a restart would lose or invent state.
    #[error("raft store is corrupt: {0}")]
    Corrupt(String),
    /// An earlier write or fdatasync failed; see the module doc.
    #[error("raft store failed after an IO error and accepts no more writes")]
    Failed,
    /// The caller broke the store's contract (a gap, an entry below the snapshot, a
    /// snapshot older than the installed one); nothing was written.
    #[error("raft store refused the call: {0}")]
    Invalid(String),
    /// A record larger than the store's bound; nothing was written.
    #[error("raft record of {bytes} bytes exceeds the limit of {max} bytes")]
    TooLarge { bytes: u64, max: u64 },
}

impl RaftStoreError {
    /// Kafka's code for a client whose request failed on this error.
    pub fn code(&self) -> i16 {
        use crate::protocol::code;
        match self {
            RaftStoreError::Io(_) | RaftStoreError::Corrupt(_) | RaftStoreError::Failed => {
                code::KAFKA_STORAGE_ERROR
            }
            RaftStoreError::Invalid(_) | RaftStoreError::TooLarge { .. } => {
                code::UNKNOWN_SERVER_ERROR
            }
        }
    }
}

fn invalid(e: String) -> RaftStoreError {
    RaftStoreError::Invalid(e)
}

fn encode<M: Message>(m: &M) -> Result<Vec<u8>, RaftStoreError> {
    m.write_to_bytes()
        .map_err(|e| RaftStoreError::Invalid(format!("protobuf encoding: {e}")))
}

/// A file of the store: its kind and generation or sequence.
#[derive(Debug, PartialEq, Eq)]
enum Name {
    Log(u64),
    Snapshot(u64),
    Tmp,
}

fn parse_name(name: &str) -> Option<Name> {
    if let Some(named) = name.strip_suffix(&format!(".{TMP_EXT}")) {
        return parse_name(named).map(|_| Name::Tmp);
    }
    let (num, ext) = name.split_once('.')?;
    if num.len() != 20 || !num.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    let n = num.parse().ok()?;
    match ext {
        LOG_EXT => Some(Name::Log(n)),
        SNAPSHOT_EXT => Some(Name::Snapshot(n)),
        _ => None,
    }
}

fn file_path(dir: &Path, n: u64, ext: &str) -> PathBuf {
    dir.join(format!("{n:020}.{ext}"))
}

fn tmp_path(path: &Path) -> PathBuf {
    let mut s = path.as_os_str().to_owned();
    s.push(format!(".{TMP_EXT}"));
    PathBuf::from(s)
}

pub struct RaftStore<S: Storage> {
    storage: S,
    dir: PathBuf,
    log: S::File,
    log_gen: u64,
    /// Length of the log file: where the next frame goes.
    log_len: u64,
    /// Sequence of the installed snapshot file; 0 when there is none.
    snapshot_seq: u64,
    state: LogState,
    failed: bool,
    compact_bytes_min: u64,
    frame_body_max: usize,
}

impl<S: Storage> RaftStore<S> {
    /// Opens (creating `dir` if needed) and recovers. A torn or corrupt tail of the log
    /// (crash mid-write) is cut off, as the partition log's recovery does; corruption
    /// before the tail that cannot be explained by a torn write is an error.
    pub async fn open(
        storage: S,
        dir: PathBuf,
    ) -> Result<(RaftStore<S>, Recovered), RaftStoreError> {
        let existed = storage.exists(&dir).await;
        storage.create_dir_all(&dir).await?;
        // A new directory's own entry must survive a crash too.
        if !existed && let Some(parent) = dir.parent().filter(|p| !p.as_os_str().is_empty()) {
            storage.sync_dir(parent).await?;
        }
        let (mut logs, mut snaps) = (Vec::new(), Vec::new());
        for name in storage.list_dir(&dir).await? {
            match parse_name(&name) {
                Some(Name::Log(g)) => logs.push(g),
                Some(Name::Snapshot(s)) => snaps.push(s),
                // Never named, so nothing depends on it.
                Some(Name::Tmp) => remove_quietly(&storage, &dir.join(&name)).await,
                None => {}
            }
        }
        logs.sort_unstable();
        snaps.sort_unstable();
        let log_gen = match logs.last() {
            Some(&g) => g,
            None if !snaps.is_empty() => {
                return Err(RaftStoreError::Corrupt(format!(
                    "{} holds a snapshot but no log",
                    dir.display()
                )));
            }
            None => {
                let path = file_path(&dir, 1, LOG_EXT);
                let header = format::header_frame(HEADER_FRAME_BYTES as u64)?;
                write_tmp(&storage, &tmp_path(&path), &[header]).await?;
                storage.rename(&tmp_path(&path), &path).await?;
                storage.sync_dir(&dir).await?;
                1
            }
        };
        let log = storage
            .open(
                &file_path(&dir, log_gen, LOG_EXT),
                FileKind::Buffered,
                false,
            )
            .await?;
        let replayed = format::replay(&log, FRAME_BODY_MAX).await?;
        if replayed.valid_len < log.len() {
            tracing::warn!(
                "raft log {}: cutting a torn tail of {} bytes at {}",
                dir.display(),
                log.len().saturating_sub(replayed.valid_len),
                replayed.valid_len
            );
            log.truncate(replayed.valid_len).await?;
            log.sync_data().await?;
        }
        let snapshot_seq = snaps.last().copied().unwrap_or(0);
        let snapshot = match snaps.last() {
            Some(&s) => Some(read_snapshot(&storage, &file_path(&dir, s, SNAPSHOT_EXT)).await?),
            None => None,
        };
        let mut store = RaftStore {
            storage,
            dir,
            log,
            log_gen,
            log_len: replayed.valid_len,
            snapshot_seq,
            state: replayed.state,
            failed: false,
            compact_bytes_min: COMPACT_BYTES_MIN,
            frame_body_max: FRAME_BODY_MAX,
        };
        store.finish_install(snapshot.as_ref()).await?;
        // Superseded files, left by a crash before their removal (or brought back by a
        // file system that lost an unsynced removal).
        for &g in logs.iter().filter(|g| **g < log_gen) {
            remove_quietly(&store.storage, &file_path(&store.dir, g, LOG_EXT)).await;
        }
        for &s in snaps.iter().filter(|s| **s < snapshot_seq) {
            remove_quietly(&store.storage, &file_path(&store.dir, s, SNAPSHOT_EXT)).await;
        }
        let mut entries = Vec::with_capacity(store.state.entries.len());
        for e in &store.state.entries {
            entries.push(
                Entry::parse_from_bytes(&e.payload)
                    .map_err(|err| RaftStoreError::Corrupt(format!("entry {}: {err}", e.index)))?,
            );
        }
        let recovered = Recovered {
            hard_state: store.state.hard_state.clone(),
            snapshot,
            entries,
        };
        Ok((store, recovered))
    }

    /// The snapshot file is made durable before the log's base record: a crash between
    /// the two leaves a snapshot the log does not know yet. Its base is applied (with the
    /// same rule `save_snapshot` applies) and recorded now, before any later entry could
    /// change what the rule decides.
    async fn finish_install(&mut self, snapshot: Option<&Snapshot>) -> Result<(), RaftStoreError> {
        let (base_index, base_term) = (self.state.base_index, self.state.base_term);
        let Some(snap) = snapshot else {
            if base_index != 0 {
                return Err(RaftStoreError::Corrupt(format!(
                    "the log continues after index {base_index} but there is no snapshot"
                )));
            }
            return Ok(());
        };
        let (index, term) = (snap.get_metadata().index, snap.get_metadata().term);
        if (index, term) == (base_index, base_term) {
            return Ok(());
        }
        if index < base_index {
            return Err(RaftStoreError::Corrupt(format!(
                "the snapshot at {index} is behind the log's base {base_index}"
            )));
        }
        self.append_base(index, term).await
    }

    /// Sets how large the log must be before `compact` rewrites it.
    pub fn set_compact_bytes_min(&mut self, bytes: u64) {
        self.compact_bytes_min = bytes;
    }

    fn usable(&self) -> Result<(), RaftStoreError> {
        if self.failed {
            Err(RaftStoreError::Failed)
        } else {
            Ok(())
        }
    }

    fn fail(&mut self, what: &str, e: &io::Error) {
        tracing::error!(
            "raft store {}: {what} failed ({e}); no more writes until a restart",
            self.dir.display()
        );
        self.failed = true;
    }

    /// Writes `frames` at the end of the log in one write and makes them durable.
    async fn append_durably(&mut self, frames: &[Bytes]) -> Result<(), RaftStoreError> {
        let len: u64 = frames.iter().map(|f| f.len() as u64).sum();
        let r = async {
            self.log.write_at(self.log_len, frames).await?;
            self.log.sync_data().await
        }
        .await;
        if let Err(e) = r {
            self.fail("log append", &e);
            return Err(e.into());
        }
        self.log_len = self.log_len.saturating_add(len);
        Ok(())
    }

    /// Records in the log that it continues after the snapshot at (`index`, `term`).
    async fn append_base(&mut self, index: u64, term: u64) -> Result<(), RaftStoreError> {
        let mut f = Frames::new(self.frame_body_max);
        f.push(KIND_BASE, &format::base_payload(index, term))?;
        self.append_durably(&f.finish()?).await?;
        self.state.set_base(index, term).map_err(invalid)
    }

    /// Makes `entries` (contiguous, ascending) and then `hard_state` (if Some) durable, in
    /// one write and one fdatasync. An entry with index i replaces every stored entry with
    /// index >= i (Raft's conflict truncation). Entries must start after the snapshot and
    /// at most right after the last stored entry.
    pub async fn save(
        &mut self,
        entries: &[Entry],
        hard_state: Option<&HardState>,
    ) -> Result<(), RaftStoreError> {
        self.usable()?;
        if entries.is_empty() && hard_state.is_none() {
            return Ok(());
        }
        if let Some(first) = entries.first() {
            self.state.check_entry(first.index).map_err(invalid)?;
            for (k, e) in entries.iter().enumerate() {
                if Some(e.index) != first.index.checked_add(k as u64) {
                    return Err(invalid(format!(
                        "entries are not contiguous: {} at position {k} after {}",
                        e.index, first.index
                    )));
                }
            }
        }
        let mut frames = Frames::new(self.frame_body_max);
        let mut live = Vec::with_capacity(entries.len());
        for e in entries {
            let payload = Bytes::from(encode(e)?);
            frames.push(KIND_ENTRY, &payload)?;
            live.push(LiveEntry {
                index: e.index,
                term: e.term,
                payload,
            });
        }
        if let Some(hs) = hard_state {
            frames.push(KIND_HARD_STATE, &encode(hs)?)?;
        }
        // One frame is one write: the scan after a crash takes a damaged frame for a torn
        // tail only if no valid frame follows it.
        for frame in frames.finish()? {
            self.append_durably(&[frame]).await?;
        }
        for e in live {
            self.state.push(e);
        }
        if let Some(hs) = hard_state {
            self.state.hard_state = hs.clone();
        }
        Ok(())
    }

    /// Installs a snapshot (received from the leader, or taken locally): durable and
    /// atomic (temp file, fdatasync, rename, directory fsync); afterwards entries with
    /// index <= snapshot index are no longer needed, and later `open` returns only entries
    /// after it. Entries after it are kept when the log holds the snapshot's own entry
    /// (a local snapshot), and dropped otherwise (a leader's snapshot replaces a diverged
    /// log): see `LogState::set_base`.
    pub async fn save_snapshot(&mut self, snapshot: &Snapshot) -> Result<(), RaftStoreError> {
        self.usable()?;
        let (index, term) = (snapshot.get_metadata().index, snapshot.get_metadata().term);
        if index == 0 || index < self.state.base_index {
            return Err(invalid(format!(
                "snapshot at {index} is not after the installed one at {}",
                self.state.base_index
            )));
        }
        let mut f = Frames::new(SNAPSHOT_BYTES_MAX);
        f.push(KIND_SNAPSHOT, &encode(snapshot)?)?;
        let frames = f.finish()?;
        let seq = self.snapshot_seq.saturating_add(1);
        let path = file_path(&self.dir, seq, SNAPSHOT_EXT);
        let tmp = tmp_path(&path);
        if let Err(e) = write_tmp(&self.storage, &tmp, &frames).await {
            // Nothing names the new file yet: the store is as it was.
            remove_quietly(&self.storage, &tmp).await;
            return Err(e.into());
        }
        // From the rename on, a restart may find the new snapshot: the log must follow it.
        let named = async {
            self.storage.rename(&tmp, &path).await?;
            self.storage.sync_dir(&self.dir).await
        }
        .await;
        if let Err(e) = named {
            self.fail("snapshot rename", &e);
            return Err(e.into());
        }
        self.append_base(index, term).await?;
        let old = std::mem::replace(&mut self.snapshot_seq, seq);
        if old > 0 {
            remove_quietly(&self.storage, &file_path(&self.dir, old, SNAPSHOT_EXT)).await;
        }
        Ok(())
    }

    /// Rewrites the log without entries at or below `index` (after a snapshot covered
    /// them) when it has grown past a threshold, crash-safely (a crash at any point leaves
    /// a state `open` recovers to the same logical content). The log's content already
    /// excludes what the installed snapshot covers, so `index` may not pass it; the
    /// rewrite happens once the file is at least `compact_bytes_min` and twice the
    /// rewritten size.
    pub async fn compact(&mut self, index: u64) -> Result<(), RaftStoreError> {
        self.usable()?;
        if index > self.state.base_index {
            return Err(invalid(format!(
                "compaction to {index} passes the snapshot at {}",
                self.state.base_index
            )));
        }
        let hard_state = encode(&self.state.hard_state)?;
        // What the rewrite would hold, give or take the headers of frames after the first.
        let content: u64 = self
            .state
            .entries
            .iter()
            .map(|e| (RECORD_HEADER + e.payload.len()) as u64)
            .fold(
                (HEADER_FRAME_BYTES + FRAME_HEADER + 2 * RECORD_HEADER + 16 + hard_state.len())
                    as u64,
                u64::saturating_add,
            );
        if self.log_len < self.compact_bytes_min.max(content.saturating_mul(2)) {
            return Ok(());
        }
        let mut f = Frames::new(self.frame_body_max);
        f.push(
            KIND_BASE,
            &format::base_payload(self.state.base_index, self.state.base_term),
        )?;
        f.push(KIND_HARD_STATE, &hard_state)?;
        for e in &self.state.entries {
            f.push(KIND_ENTRY, &e.payload)?;
        }
        let body = f.finish()?;
        let initial_len = body
            .iter()
            .map(|b| b.len() as u64)
            .fold(HEADER_FRAME_BYTES as u64, u64::saturating_add);
        let mut frames = vec![format::header_frame(initial_len)?];
        frames.extend(body);
        let next_gen = self.log_gen.saturating_add(1);
        let path = file_path(&self.dir, next_gen, LOG_EXT);
        let tmp = tmp_path(&path);
        if let Err(e) = write_tmp(&self.storage, &tmp, &frames).await {
            remove_quietly(&self.storage, &tmp).await;
            return Err(e.into());
        }
        // From the rename on, a restart may take the new file for the log: appends must
        // go there, so a failure leaves no usable log.
        let named = async {
            self.storage.rename(&tmp, &path).await?;
            self.storage.sync_dir(&self.dir).await?;
            self.storage.open(&path, FileKind::Buffered, false).await
        }
        .await;
        let log = match named {
            Ok(log) => log,
            Err(e) => {
                self.fail("log rewrite", &e);
                return Err(e.into());
            }
        };
        let old = std::mem::replace(&mut self.log, log);
        if let Err(e) = old.close().await {
            tracing::warn!(
                "raft store {}: closing the old log: {e}",
                self.dir.display()
            );
        }
        let old_gen = std::mem::replace(&mut self.log_gen, next_gen);
        self.log_len = initial_len;
        remove_quietly(&self.storage, &file_path(&self.dir, old_gen, LOG_EXT)).await;
        Ok(())
    }
}

/// Writes a whole new file under its temporary name and makes its bytes durable.
async fn write_tmp<S: Storage>(storage: &S, tmp: &Path, frames: &[Bytes]) -> io::Result<()> {
    let f = storage.open(tmp, FileKind::Buffered, true).await?;
    // A leftover of an earlier attempt must not show through.
    f.truncate(0).await?;
    f.write_at(0, frames).await?;
    f.sync_data().await?;
    f.close().await
}

/// Removes a file nothing depends on any more; a failure only leaves it for the next open.
async fn remove_quietly<S: Storage>(storage: &S, path: &Path) {
    if let Err(e) = storage.remove_file(path).await {
        tracing::warn!("raft store: cannot remove {}: {e}", path.display());
    }
}

async fn read_snapshot<S: Storage>(storage: &S, path: &Path) -> Result<Snapshot, RaftStoreError> {
    let corrupt = |why: String| RaftStoreError::Corrupt(format!("{}: {why}", path.display()));
    let f = storage.open(path, FileKind::Buffered, false).await?;
    let len = usize::try_from(f.len())
        .ok()
        .filter(|n| *n <= SNAPSHOT_BYTES_MAX.saturating_add(FRAME_HEADER))
        .ok_or_else(|| corrupt(format!("{} bytes is past the bound", f.len())))?;
    let bytes = f.read_at(0, len).await?;
    f.close().await?;
    let body = format::whole_frame(&bytes, SNAPSHOT_BYTES_MAX)
        .ok_or_else(|| corrupt("not one whole, valid frame".into()))?;
    let snap = match format::records(body).map_err(corrupt)?.as_slice() {
        [(KIND_SNAPSHOT, p)] => {
            Snapshot::parse_from_bytes(p).map_err(|e| corrupt(e.to_string()))?
        }
        _ => return Err(corrupt("not a single snapshot record".into())),
    };
    if snap.get_metadata().index == 0 {
        return Err(corrupt("a snapshot at index 0".into()));
    }
    Ok(snap)
}
