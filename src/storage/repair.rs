//! `ringbroker repair`: the operator's answer to a partition the broker took offline for
//! damage on disk. The broker never removes data it did not write in this life on its own
//! (only the torn tail of the last segment after a crash); this tool does, when told to.
//!
//! What it keeps is a prefix of the log: every batch up to the first damage, in offset
//! order. Everything after the first damage goes, even whole good segments behind a
//! missing one: the log's readers and the idempotent producer state assume offsets without
//! holes (outside compaction), and a prefix is exactly what a crash of a correct broker
//! could have left, so producers, consumers and the producer-state rebuild all handle it.
//! Damaged derived files (an index that points past the end of its segment, a time index
//! that claims more than its segment holds, when the log itself is whole) are removed and
//! rebuilt at the next start; an unreadable log start checkpoint is removed (the log then
//! starts at its first segment, so records an earlier DeleteRecords hid may show again).
//!
//! Nothing is deleted: removed files and cut-off tails are moved to `repair-<unix ms>/`
//! inside the partition directory (which the broker ignores), for the operator to inspect
//! and delete. Runs with the broker stopped, on plain blocking IO.

use crate::protocol::batch::{self, HEADER_BYTES, LOG_OVERHEAD};
use std::fs::{self, File};
use std::io::{self, Write};
use std::os::unix::fs::FileExt;
use std::path::{Path, PathBuf};

const START_CHECKPOINT: &str = super::log::START_CHECKPOINT;

/// One change the repair makes.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Cut `file` at `position`; the bytes after it go to the quarantine directory.
    Truncate { file: PathBuf, position: u64 },
    /// Move `file` to the quarantine directory.
    Remove { file: PathBuf },
}

/// What a repair found and would do.
#[derive(Debug, Default)]
pub struct Plan {
    /// What is wrong, one line per finding, in log order.
    pub damage: Vec<String>,
    pub actions: Vec<Action>,
    /// The offset after the last batch kept (`None`: no segment).
    pub end_offset: Option<i64>,
}

fn segment_name(base: i64, ext: &str) -> String {
    format!("{base:020}.{ext}")
}

/// Bases of the `<20 digits>.log` files of `dir`, sorted.
fn segment_bases(dir: &Path) -> io::Result<Vec<i64>> {
    let mut bases = Vec::new();
    for e in fs::read_dir(dir)? {
        let name = e?.file_name();
        let Some(name) = name.to_str() else { continue };
        let Some(stem) = name.strip_suffix(".log") else {
            continue;
        };
        if stem.len() == 20
            && stem.bytes().all(|b| b.is_ascii_digit())
            && let Ok(base) = stem.parse::<i64>()
        {
            bases.push(base);
        }
    }
    bases.sort_unstable();
    Ok(bases)
}

/// Walks the batches of one segment file: `(valid end position, next offset, damage)`.
fn walk(
    file: &File,
    base: i64,
    len: u64,
    compacted: bool,
) -> io::Result<(u64, i64, Option<String>)> {
    let mut pos = 0u64;
    let mut next = base;
    let mut header = [0u8; HEADER_BYTES];
    while pos < len {
        let left = len - pos;
        if left < HEADER_BYTES as u64 {
            return Ok((
                pos,
                next,
                Some(format!(
                    "{left} bytes at position {pos} are too few for a batch header"
                )),
            ));
        }
        file.read_exact_at(&mut header, pos)?;
        let h = match batch::BatchHeader::parse(&header) {
            Ok(h) => h,
            Err(e) => return Ok((pos, next, Some(format!("position {pos}: {e}")))),
        };
        let Ok(size) = u64::try_from(h.length) else {
            return Ok((
                pos,
                next,
                Some(format!(
                    "position {pos}: negative batch length {}",
                    h.length
                )),
            ));
        };
        let size = size.saturating_add(LOG_OVERHEAD as u64);
        if size < HEADER_BYTES as u64 || size > left {
            return Ok((
                pos,
                next,
                Some(format!(
                    "position {pos}: batch of {size} bytes does not fit the {left} bytes left"
                )),
            ));
        }
        let in_order = if compacted {
            h.base_offset >= next
        } else {
            h.base_offset == next
        };
        if !in_order {
            return Ok((
                pos,
                next,
                Some(format!(
                    "position {pos}: batch has base offset {}, expected {next}",
                    h.base_offset
                )),
            ));
        }
        let mut whole = vec![0u8; size as usize];
        file.read_exact_at(&mut whole, pos)?;
        if let Err(e) = batch::validate_stored_batch(&whole) {
            return Ok((
                pos,
                next,
                Some(format!("position {pos} (offset {}): {e}", h.base_offset)),
            ));
        }
        let Some(last) = h
            .base_offset
            .checked_add(i64::from(h.last_offset_delta))
            .filter(|l| *l >= h.base_offset && *l < i64::MAX)
        else {
            return Ok((
                pos,
                next,
                Some(format!(
                    "position {pos}: bad last offset delta {}",
                    h.last_offset_delta
                )),
            ));
        };
        next = last + 1;
        pos += size;
    }
    Ok((pos, next, None))
}

/// The last entry of an index file, if it has whole entries.
fn last_entry(path: &Path, entry_bytes: usize) -> io::Result<Option<Vec<u8>>> {
    let bytes = match fs::read(path) {
        Ok(b) => b,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
        Err(e) => return Err(e),
    };
    if bytes.len() < entry_bytes || !bytes.len().is_multiple_of(entry_bytes) {
        return Ok(None);
    }
    Ok(Some(bytes[bytes.len() - entry_bytes..].to_vec()))
}

fn be_u32(b: &[u8]) -> u32 {
    let mut a = [0u8; 4];
    a.copy_from_slice(&b[..4]);
    u32::from_be_bytes(a)
}

/// Finds the damage in the partition directory `dir` and plans the repair. `compacted`:
/// the topic's `cleanup.policy` has `compact` (offsets may then skip, inside and between
/// segments).
pub fn plan(dir: &Path, compacted: bool) -> io::Result<Plan> {
    let mut plan = Plan::default();
    let checkpoint = dir.join(START_CHECKPOINT);
    if checkpoint.exists() {
        let text = fs::read(&checkpoint)?;
        let parsed = String::from_utf8(text)
            .map_err(|e| e.to_string())
            .and_then(|t| super::log::parse_checkpoint(&t));
        if let Err(e) = parsed {
            plan.damage.push(format!("{}: {e}", checkpoint.display()));
            plan.actions.push(Action::Remove { file: checkpoint });
        }
    }
    let bases = segment_bases(dir)?;
    let mut next: Option<i64> = None;
    for (i, &base) in bases.iter().enumerate() {
        let path = dir.join(segment_name(base, "log"));
        let index = dir.join(segment_name(base, "index"));
        let time_index = dir.join(segment_name(base, "timeindex"));
        if let Some(n) = next {
            let gap = if compacted { base < n } else { base != n };
            if gap {
                plan.damage.push(format!(
                    "{}: starts at offset {base}, but the log before it ends at offset {n}",
                    path.display()
                ));
                plan.end_offset = Some(n);
                drop_from(&mut plan, dir, &bases[i..]);
                return Ok(plan);
            }
        }
        let file = File::open(&path)?;
        let len = file.metadata()?.len();
        let (valid, seg_next, damage) = walk(&file, base, len, compacted)?;
        let tail = i + 1 == bases.len();
        if let Some(why) = damage {
            plan.damage.push(format!("{}: {why}", path.display()));
            plan.end_offset = Some(seg_next);
            if valid == 0 && i > 0 {
                drop_from(&mut plan, dir, &bases[i..]);
            } else {
                plan.actions.push(Action::Truncate {
                    file: path,
                    position: valid,
                });
                for f in [index, time_index] {
                    if f.exists() {
                        plan.actions.push(Action::Remove { file: f });
                    }
                }
                drop_from(&mut plan, dir, &bases[i + 1..]);
            }
            return Ok(plan);
        }
        // Indexes that claim more than the log holds: the log was cut short at a batch
        // boundary (then the next segment does not follow on), or the index is damaged.
        let mut claims = Vec::new();
        if let Some(e) = last_entry(&index, 8)?
            && u64::from(be_u32(&e[4..])) + HEADER_BYTES as u64 > len
        {
            claims.push(format!(
                "{}: entry at position {} is past the end of the segment's {len} bytes",
                index.display(),
                be_u32(&e[4..])
            ));
        }
        if let Some(e) = last_entry(&time_index, 12)? {
            let sealed = base.saturating_add(i64::from(be_u32(&e[8..])));
            if sealed > seg_next {
                claims.push(format!(
                    "{}: says the segment was sealed at offset {sealed}, its batches end at {seg_next}",
                    time_index.display()
                ));
            }
        }
        let next_base = bases.get(i + 1).copied();
        let follows_on = next_base.is_none_or(|b| b == seg_next || (compacted && b > seg_next));
        if !claims.is_empty() {
            plan.damage.extend(claims);
            for f in [index, time_index] {
                if f.exists() {
                    plan.actions.push(Action::Remove { file: f });
                }
            }
            if !tail && !follows_on {
                // The log lost its end: the segments after it would leave a hole.
                plan.end_offset = Some(seg_next);
                drop_from(&mut plan, dir, &bases[i + 1..]);
                return Ok(plan);
            }
        }
        next = Some(seg_next);
    }
    plan.end_offset = next;
    Ok(plan)
}

/// Plans the removal of the segments at `bases` and their indexes.
fn drop_from(plan: &mut Plan, dir: &Path, bases: &[i64]) {
    for &base in bases {
        for ext in ["log", "index", "timeindex"] {
            let f = dir.join(segment_name(base, ext));
            if f.exists() {
                plan.actions.push(Action::Remove { file: f });
            }
        }
    }
}

/// Carries out `plan`: cut-off bytes and removed files go to a new `repair-<unix ms>/`
/// directory inside `dir`, whose path is returned. Every change is fsynced.
pub fn apply(dir: &Path, plan: &Plan) -> io::Result<PathBuf> {
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map(|d| d.as_millis())
        .unwrap_or(0);
    let quarantine = dir.join(format!("repair-{ms}"));
    fs::create_dir(&quarantine)?;
    File::open(dir)?.sync_all()?;
    for action in &plan.actions {
        match action {
            Action::Truncate { file, position } => {
                let f = fs::OpenOptions::new().read(true).write(true).open(file)?;
                let len = f.metadata()?.len();
                let name = file
                    .file_name()
                    .map(|n| n.to_string_lossy().to_string())
                    .unwrap_or_default();
                let mut out = File::create(quarantine.join(format!("{name}.from-{position}")))?;
                let mut at = *position;
                let mut buf = vec![0u8; 1 << 20];
                while at < len {
                    let n = (len - at).min(buf.len() as u64) as usize;
                    f.read_exact_at(&mut buf[..n], at)?;
                    out.write_all(&buf[..n])?;
                    at += n as u64;
                }
                out.sync_all()?;
                f.set_len(*position)?;
                f.sync_all()?;
            }
            Action::Remove { file } => {
                if let Some(name) = file.file_name() {
                    fs::rename(file, quarantine.join(name))?;
                }
            }
        }
    }
    File::open(&quarantine)?.sync_all()?;
    File::open(dir)?.sync_all()?;
    Ok(quarantine)
}
