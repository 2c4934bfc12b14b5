//! Producer state snapshots: `<partition dir>/<20-digit offset>.snapshot`, Kafka's name
//! for them. Each holds what the batches below `offset` made of the idempotent producer
//! states, the leader epochs and the transactions of the log ([`format`]). The log writes
//! one when it rolls a segment (the offset is the new segment's base), so an open loads
//! the newest one and walks only the batches after it instead of the whole log.
//!
//! A snapshot is written crash-safely: `<offset>.snapshot.tmp`, fdatasync, rename, directory
//! fsync. A crash leaves either no snapshot at that offset or a whole one (plus perhaps a
//! `.tmp` that the next open removes); a snapshot that does not decode anyway is skipped
//! with a warning, since every snapshot is only a shortcut: the full walk of the log gives
//! the same state.

pub mod format;

pub use format::{DecodeError, Snapshot};

use crate::storage::error::Result;
use crate::storage::io::{FileKind, Storage, StorageFile};
use bytes::Bytes;
use std::io;
use std::path::{Path, PathBuf};

/// Snapshots kept per log: the newest and two before it, in case the newest is damaged.
pub const KEPT: usize = 3;
const EXT: &str = "snapshot";
const TMP_EXT: &str = "snapshot.tmp";

pub fn path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{EXT}"))
}

fn tmp_path(dir: &Path, offset: i64) -> PathBuf {
    dir.join(format!("{offset:020}.{TMP_EXT}"))
}

fn offset_of(name: &str, ext: &str) -> Option<i64> {
    let stem = name.strip_suffix(ext)?.strip_suffix('.')?;
    if stem.len() != 20 || !stem.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    stem.parse().ok()
}

/// The offsets of the snapshots in `names` (a directory listing), oldest first.
pub fn offsets(names: &[String]) -> Vec<i64> {
    let mut out: Vec<i64> = names.iter().filter_map(|n| offset_of(n, EXT)).collect();
    out.sort_unstable();
    out
}

/// Whether `name` is a snapshot a crash left half-written.
pub fn is_tmp(name: &str) -> bool {
    offset_of(name, TMP_EXT).is_some()
}

/// Writes `snapshot` durably as `<offset>.snapshot` in `dir` (replacing one at that offset).
pub async fn write<S: Storage>(storage: &S, dir: &Path, snapshot: &Snapshot) -> Result<()> {
    let tmp = tmp_path(dir, snapshot.offset);
    if storage.exists(&tmp).await {
        storage.remove_file(&tmp).await?;
    }
    let file = storage.open(&tmp, FileKind::Buffered, true).await?;
    let bytes = Bytes::from(format::encode(snapshot));
    let written = async {
        file.truncate(0).await?;
        file.write_at(0, &[bytes]).await?;
        file.sync_data().await
    }
    .await;
    let closed = file.close().await;
    written?;
    closed?;
    storage.rename(&tmp, &path(dir, snapshot.offset)).await?;
    storage.sync_dir(dir).await?;
    Ok(())
}

/// Reads the snapshot at `offset` in `dir`: `Ok(Err(why))` when the file is there but is
/// not a snapshot of that offset this broker can use.
pub async fn read<S: Storage>(
    storage: &S,
    dir: &Path,
    offset: i64,
) -> Result<std::result::Result<Snapshot, String>> {
    let file = storage
        .open(&path(dir, offset), FileKind::Buffered, false)
        .await?;
    let len = usize::try_from(file.len()).unwrap_or(usize::MAX);
    let bytes = file.read_at(0, len).await;
    file.close().await?;
    let bytes = bytes?;
    if bytes.len() != len {
        return Ok(Err(format!("read {} of its {len} bytes", bytes.len())));
    }
    Ok(match format::decode(&bytes) {
        Ok(s) if s.offset == offset => Ok(s),
        Ok(s) => Err(format!("it holds the state as of offset {}", s.offset)),
        Err(e) => Err(e.to_string()),
    })
}

/// Removes the snapshots in `dir` for which `doomed(offset)` holds, and the `.tmp` files a
/// crash left; syncs the directory when something went. Returns how many snapshots went.
pub async fn remove_where<S: Storage>(
    storage: &S,
    dir: &Path,
    doomed: impl Fn(i64) -> bool,
) -> Result<usize> {
    let names = storage.list_dir(dir).await?;
    let mut removed = 0;
    let mut changed = false;
    for name in &names {
        let gone = match offset_of(name, EXT) {
            Some(offset) if doomed(offset) => {
                removed += 1;
                true
            }
            Some(_) => false,
            None => is_tmp(name),
        };
        if gone {
            match storage.remove_file(&dir.join(name)).await {
                Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e.into()),
                _ => changed = true,
            }
        }
    }
    if changed {
        storage.sync_dir(dir).await?;
    }
    Ok(removed)
}

/// Keeps the newest [`KEPT`] snapshots in `dir`, and none below `first_base` (the first
/// segment's base: a snapshot there or above is still usable).
pub async fn prune<S: Storage>(storage: &S, dir: &Path, first_base: i64) -> Result<usize> {
    let names = storage.list_dir(dir).await?;
    let all = offsets(&names);
    let keep_from = all
        .len()
        .checked_sub(KEPT)
        .and_then(|i| all.get(i))
        .copied()
        .unwrap_or(i64::MIN);
    remove_where(storage, dir, |o| o < first_base || o < keep_from).await
}

#[cfg(test)]
mod tests;
