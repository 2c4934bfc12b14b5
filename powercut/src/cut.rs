//! The power cut: take back, in the backing directory, everything not durable.

use std::fs::OpenOptions;
use std::io;
use std::os::unix::fs::FileExt;
use std::path::PathBuf;

use crate::state::{MetaKind, PAGE, State, TRASH};

/// Tear one pending write instead of dropping it whole: the most recent write not yet made
/// durable (to a file whose name ends with `suffix`, if given) keeps its first `keep` bytes,
/// rounded down to a multiple of `align` (1: any byte; [`PAGE`]: whole pages). With
/// `size_survives`, the file keeps the length that write gave it: the size update reached
/// the disk but the data past the tear did not (zeros past the old end, old bytes before
/// it), as with a journaled size and unwritten data blocks.
#[derive(Clone, Debug)]
pub struct Tear {
    pub suffix: Option<String>,
    pub keep: u64,
    pub align: u64,
    pub size_survives: bool,
}

/// What a cut took back.
#[derive(Clone, Debug, Default)]
pub struct CutReport {
    /// Files whose data went back to their last fsync.
    pub files_reverted: usize,
    /// Bytes written since those fsyncs (dropped, but for a torn prefix).
    pub bytes_dropped: u64,
    /// Each reverted file: (path, length kept, bytes written since its last sync).
    pub reverted: Vec<(PathBuf, u64, u64)>,
    /// Each namespace operation undone, last first.
    pub undone: Vec<String>,
    /// Namespace operations undone (creations, renames, unlinks, mkdirs, rmdirs).
    pub meta_undone: usize,
    /// The torn write: (file, offset, bytes kept of how many).
    pub torn: Option<(PathBuf, u64, u64, u64)>,
    /// Durability points seen before the cut: (file syncs, directory syncs).
    pub syncs: (u64, u64),
    /// Undo steps that could not be applied (a model limit was reached; see the crate docs).
    pub errors: Vec<String>,
}

impl State {
    /// Freezes the filesystem (every later operation fails with EIO) and rewrites the backing
    /// directory to what survives.
    pub fn cut(&mut self, tear: Option<&Tear>) -> CutReport {
        self.frozen = true;
        let mut report = CutReport {
            syncs: (self.file_syncs, self.dir_syncs),
            ..CutReport::default()
        };
        let torn = tear.and_then(|t| self.torn_prefix(t, &mut report));
        self.handles.clear();

        let dirty: Vec<_> = self.dirty.drain().collect();
        for (ino, d) in dirty {
            report.files_reverted += 1;
            report.bytes_dropped += d.written;
            let Some(rel) = self.paths.get(&ino) else {
                continue;
            };
            let path = self.abs(rel);
            report.reverted.push((rel.clone(), d.orig_len, d.written));
            let res = (|| -> io::Result<()> {
                let f = OpenOptions::new().write(true).open(&path)?;
                f.set_len(d.orig_len)?;
                for (page, bytes) in &d.pages {
                    f.write_all_at(bytes, page * PAGE)?;
                }
                Ok(())
            })();
            if let Err(e) = res {
                report
                    .errors
                    .push(format!("revert data of {}: {e}", path.display()));
            }
        }
        if let Some((ino, offset, bytes, size)) = torn
            && let Some(rel) = self.paths.get(&ino)
        {
            let path = self.abs(rel);
            let res = OpenOptions::new().write(true).open(&path).and_then(|f| {
                f.write_all_at(&bytes, offset)?;
                match size {
                    Some(size) if f.metadata()?.len() < size => f.set_len(size),
                    _ => Ok(()),
                }
            });
            if let Err(e) = res {
                report
                    .errors
                    .push(format!("torn write to {}: {e}", path.display()));
            }
        }

        let journal = std::mem::take(&mut self.journal);
        for op in journal.into_iter().rev() {
            if op.durable {
                continue;
            }
            report.meta_undone += 1;
            report
                .undone
                .push(format!("{:?} {}", op.kind, op.path.display()));
            let path = self.abs(&op.path);
            let res = match &op.kind {
                MetaKind::Create => std::fs::remove_file(&path),
                MetaKind::Mkdir => std::fs::remove_dir_all(&path),
                MetaKind::Unlink { trash } => std::fs::rename(self.abs(trash), &path),
                MetaKind::Rmdir => std::fs::create_dir(&path),
                MetaKind::Rename { from, replaced } => std::fs::rename(&path, self.abs(from))
                    .and_then(|()| match replaced {
                        Some(t) => std::fs::rename(self.abs(t), &path),
                        None => Ok(()),
                    }),
            };
            if let Err(e) = res {
                report
                    .errors
                    .push(format!("undo {:?} of {}: {e}", op.kind, path.display()));
            }
        }
        let _ = std::fs::remove_dir_all(self.backing.join(TRASH));
        report
    }

    /// The bytes the torn write keeps, read before anything is reverted.
    fn torn_prefix(
        &self,
        tear: &Tear,
        report: &mut CutReport,
    ) -> Option<(u64, u64, Vec<u8>, Option<u64>)> {
        let (ino, (_, offset, len)) = self
            .dirty
            .iter()
            .filter_map(|(&ino, d)| Some((ino, d.last_write?)))
            .filter(|(ino, _)| match (&tear.suffix, self.paths.get(ino)) {
                (None, _) => true,
                (Some(s), Some(p)) => p.to_string_lossy().ends_with(s.as_str()),
                (Some(_), None) => false,
            })
            .max_by_key(|(_, w)| w.0)?;
        let align = tear.align.max(1);
        let keep = tear.keep.min(len) / align * align;
        let rel = self.paths.get(&ino)?;
        let path = self.abs(rel);
        let mut bytes = vec![0u8; keep as usize];
        let f = std::fs::File::open(&path).ok()?;
        f.read_exact_at(&mut bytes, offset).ok()?;
        report.torn = Some((rel.clone(), offset, keep, len));
        Some((
            ino,
            offset,
            bytes,
            tear.size_survives.then_some(offset + len),
        ))
    }
}
