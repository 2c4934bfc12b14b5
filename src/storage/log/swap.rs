//! Swapping cleaned segments in, crash-safely, and finishing or undoing a half-done swap
//! when a log is opened; the cleaner checkpoint file.
//!
//! A group of segments `[base, end)` is replaced by one cleaned segment at `base`:
//! 1. the cleaned bytes are written to `<base>.log.cleaned` and synced (`log::compact`);
//! 2. it is renamed to `<base>.<end>.swap` and the directory synced: the commit point;
//! 3. the old segments' indexes and the `.log` files of the old segments after `base` are
//!    removed, `<base>.<end>.swap` is renamed over `<base>.log`, and the directory synced.
//!
//! On open, a `.cleaned` file is an uncommitted clean and is removed (the old segments
//! are whole); a `.swap` file is a committed one and step 3 is run again (each of its
//! steps can be repeated). So a crash at any point leaves either the old segments or the
//! cleaned one, never both and never neither; the indexes are rebuilt from the `.log`.

use crate::storage::error::{Result, StorageError};
use crate::storage::io::{Storage, segment_path};
use std::io;
use std::path::{Path, PathBuf};

/// The file the cleaner keeps its progress in: the offset up to which the log is clean.
pub const CHECKPOINT_FILE: &str = "cleaner-offset-checkpoint";

pub fn cleaned_path(dir: &Path, base: i64) -> PathBuf {
    dir.join(format!("{base:020}.log.cleaned"))
}

fn swap_path(dir: &Path, base: i64, end: i64) -> PathBuf {
    dir.join(format!("{base:020}.{end:020}.swap"))
}

fn digits(s: &str) -> Option<i64> {
    if s.len() != 20 || !s.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    s.parse().ok()
}

/// `(base, end)` of a `<base>.<end>.swap` name.
fn parse_swap(name: &str) -> Option<(i64, i64)> {
    let rest = name.strip_suffix(".swap")?;
    let (base, end) = rest.split_once('.')?;
    Some((digits(base)?, digits(end)?))
}

/// Base offsets of the `.log` files in `names`.
fn log_bases(names: &[String]) -> Vec<i64> {
    names
        .iter()
        .filter_map(|n| digits(n.strip_suffix(".log")?))
        .collect()
}

async fn remove_if_there<S: Storage>(storage: &S, path: &Path) -> Result<()> {
    match storage.remove_file(path).await {
        Err(e) if e.kind() != io::ErrorKind::NotFound => Err(e.into()),
        _ => Ok(()),
    }
}

/// Steps 2 and 3: commits the synced `<base>.log.cleaned` in place of the segments in
/// `[base, end)`.
pub async fn swap_in<S: Storage>(storage: &S, dir: &Path, base: i64, end: i64) -> Result<()> {
    storage.sync_dir(dir).await?;
    storage
        .rename(&cleaned_path(dir, base), &swap_path(dir, base, end))
        .await?;
    storage.sync_dir(dir).await?;
    finish_swap(storage, dir, base, end).await
}

/// Step 3, which a reopen repeats after a crash.
async fn finish_swap<S: Storage>(storage: &S, dir: &Path, base: i64, end: i64) -> Result<()> {
    let names = storage.list_dir(dir).await?;
    let mut old: Vec<i64> = log_bases(&names)
        .into_iter()
        .filter(|b| (base..end).contains(b))
        .collect();
    old.sort_unstable();
    for b in old {
        // An index without its log is removed on open anyway; the log goes last.
        remove_if_there(storage, &segment_path(dir, b, "index")).await?;
        remove_if_there(storage, &segment_path(dir, b, "timeindex")).await?;
        if b != base {
            remove_if_there(storage, &segment_path(dir, b, "log")).await?;
        }
    }
    storage
        .rename(&swap_path(dir, base, end), &segment_path(dir, base, "log"))
        .await?;
    storage.sync_dir(dir).await?;
    Ok(())
}

/// Run on open before the segments are read: removes uncommitted cleans and finishes
/// committed ones.
pub async fn recover_swaps<S: Storage>(storage: &S, dir: &Path) -> Result<()> {
    let names = storage.list_dir(dir).await?;
    for name in &names {
        if name.ends_with(".cleaned") || name == &format!("{CHECKPOINT_FILE}.tmp") {
            remove_if_there(storage, &dir.join(name)).await?;
        }
    }
    let mut swaps: Vec<(i64, i64)> = names.iter().filter_map(|n| parse_swap(n)).collect();
    swaps.sort_unstable();
    for (base, end) in swaps {
        if end <= base {
            return Err(StorageError::corrupt(
                dir,
                format!("swap file {base}.{end}"),
            ));
        }
        tracing::info!(dir = %dir.display(), base, end, "finishing an interrupted cleaner swap");
        finish_swap(storage, dir, base, end).await?;
    }
    Ok(())
}

/// The cleaner checkpoint: `None` when there is none (or it cannot be read: the next
/// clean starts from the log start, which is only more work).
pub async fn read_checkpoint<S: Storage>(storage: &S, dir: &Path) -> Result<Option<i64>> {
    use crate::storage::io::{FileKind, StorageFile};
    let path = dir.join(CHECKPOINT_FILE);
    if !storage.exists(&path).await {
        return Ok(None);
    }
    let f = storage.open(&path, FileKind::Buffered, false).await?;
    let bytes = f.read_at(0, 64).await?;
    f.close().await?;
    Ok(std::str::from_utf8(&bytes)
        .ok()
        .and_then(|s| s.trim().parse::<i64>().ok())
        .filter(|&o| o >= 0))
}

/// Writes the checkpoint through a temporary file, so a crash leaves the old or new one.
pub async fn write_checkpoint<S: Storage>(storage: &S, dir: &Path, offset: i64) -> Result<()> {
    use crate::storage::io::{FileKind, StorageFile};
    let tmp = dir.join(format!("{CHECKPOINT_FILE}.tmp"));
    let f = storage.open(&tmp, FileKind::Buffered, true).await?;
    f.truncate(0).await?;
    f.write_at(0, &[format!("{offset}\n").into()]).await?;
    f.sync_data().await?;
    f.close().await?;
    storage.rename(&tmp, &dir.join(CHECKPOINT_FILE)).await?;
    storage.sync_dir(dir).await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn swap_names_parse_and_others_do_not() {
        let dir = Path::new("/d");
        let name = swap_path(dir, 5, 120);
        let name = name.file_name().and_then(|n| n.to_str()).unwrap_or("");
        assert_eq!(parse_swap(name), Some((5, 120)));
        for other in ["00000000000000000005.log", "x.y.swap", "5.120.swap", ""] {
            assert_eq!(parse_swap(other), None, "{other}");
        }
        let names: Vec<String> = [
            "00000000000000000007.log",
            "00000000000000000007.index",
            "junk.log",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        assert_eq!(log_bases(&names), vec![7]);
    }
}
